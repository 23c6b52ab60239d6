"""Forecaster: fit an LSTM to a series, forecast recursively in original units, compare with a
seasonal-naive baseline. Checkpoints make runs resumable bit-exactly on any backend."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import backends, checkpoint, limits, reference
from .config import MAX_HORIZON, ConfigError, ModelConfig, TrainConfig, check_types
from .data import DataError, Series
from .data import prep
from .train import Trainer, TrainState

TASKS = ("regress", "classify-change")


def _is_frame(obj) -> bool:
    """A pandas DataFrame (without importing pandas when it is not one)."""
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "columns")


# ---- metrics and baselines ---------------------------------------------------------------

def metrics(actual, predicted) -> dict:
    """RMSE, MAE and MAPE (percent) over every value of a forecast."""
    a = np.asarray(actual, np.float64).reshape(-1)
    p = np.asarray(predicted, np.float64).reshape(-1)
    if a.shape != p.shape or a.size == 0:
        raise ValueError(f"actual and predicted must have the same non-zero size: {a.size} vs {p.size}")
    err = p - a
    with np.errstate(divide="ignore", invalid="ignore"):
        mape = float(np.mean(np.abs(err) / np.abs(a)) * 100) if np.all(a != 0) else float("nan")
    return {"rmse": float(np.sqrt(np.mean(err * err))), "mae": float(np.mean(np.abs(err))),
            "mape": mape}


def seasonal_naive(history, horizon: int, season: int):
    """y[n + h] = y[n + h - season * ceil(h / season)]: last season repeated (season 1 = naive)."""
    h = np.asarray(history, np.float64)
    h = h[:, None] if h.ndim == 1 else h
    s = max(1, season)
    if len(h) < s:
        raise DataError(f"seasonal naive needs {s} values of history, got {len(h)}")
    return np.stack([h[len(h) - s + (i % s)] for i in range(horizon)])


# ---- model selection -----------------------------------------------------------------------

class ForecastValidation:
    """A backend whose ``evaluate`` scores what a forecaster is for: recursive multi-step
    forecasts of the validation span (the default model selection for the regress task).

    Every origin o in the validation span whose ``horizon`` steps still fall inside it starts
    a forecast from the ``window`` true values before o, feeding each prediction back in; the
    score is the MSE of all these forecasts against the true values (model space; the same
    ordered loss as training, reference.loss_grad with every step counted). One-step loss on
    the validation windows, the old criterion, kept falling long after multi-step forecasts
    got worse (docs/results.md, model selection). The Trainer's best epoch, patience and
    checkpointed ``best`` then follow this score; everything else is the wrapped backend."""

    def __init__(self, backend, z, n_valid, window, horizon, dtype, train_cfg):
        from dataclasses import replace

        self._be = backend
        z = np.asarray(z, dtype)
        cut = len(z) - n_valid
        self.horizon = h = max(1, min(horizon, n_valid))
        self.origins = list(range(cut, len(z) - h + 1))
        self.window = window
        self._x0 = np.stack([z[o - window:o] for o in self.origins], axis=1)  # (W, B, k)
        self._y = np.stack([z[o:o + h] for o in self.origins], axis=1)  # (h, B, k)
        self._cfg = replace(train_cfg, loss="mse", loss_on="all")

    def __getattr__(self, name):  # load, state, predict, train_epoch, run_name, dtype, ...
        return getattr(self._be, name)

    def forecasts(self):
        """(horizon, origins, k) recursive forecasts with the backend's current parameters."""
        buf, out = self._x0, []
        for _ in range(self.horizon):
            y = np.asarray(self._be.predict(np.ascontiguousarray(buf)))[-1]  # (B, k)
            out.append(y)
            buf = np.concatenate([buf[1:], y[None]], axis=0)
        return np.stack(out)

    def evaluate(self, x=None, y=None):
        with np.errstate(all="ignore"):  # a diverging run gives inf, which the Trainer reports
            return reference.loss_grad(self.forecasts(), self._y, self._cfg)[0]


def default_valid_size(season, n, task="regress") -> int:
    """Validation points when valid_size is None: three seasons (36 months) for the regress
    task, at most a third of the ``n`` model-space values; one season for classify-change;
    20% (10% for classify-change) without a season."""
    if task != "regress":
        return season or max(1, n // 10)
    return max(1, min(3 * season, n // 3)) if season else max(1, n // 5)


def validation_horizon(n_valid) -> int:
    """Steps of each validation forecast: the whole validation span from its start (one
    origin). Measured against half the span from every origin that fits (a rolling origin)
    and the one-step loss, on four real series and three seeds: docs/results.md."""
    return max(1, n_valid)


# ---- settings ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ForecastSettings:
    """Everything that determines a run's bits (the backend does not: all agree)."""

    task: str = "regress"
    hidden_size: int = 32
    window: int = 12
    epochs: int = 150
    lr: float = 0.005
    optimizer: str = "adam"
    momentum: float = 0.0
    batch_size: int = 16
    clip: float = 1.0
    loss_on: str = "all"
    init: str = "uniform"
    dtype: str = "float64"
    seed: int = 0
    log: bool = True
    diff: bool = False
    season: int | None = None  # None: the series' period (12 for monthly data) or 0
    scale: str = "standard"
    valid_size: int | None = None  # validation points; None: default_valid_size (3 seasons)
    patience: int | None = 10  # epochs without a better validation forecast
    train_start: float = 0.0  # fraction of the series skipped at the start (the seed used 0.4)
    holdout: int = 0
    grad_shards: int = 1  # S groups per batch (docs/arithmetic.md); fixes the bits for any R
    num_layers: int = 1  # stacked LSTM layers
    dropout: float = 0.0  # between stacked layers, training only

    def __post_init__(self):
        check_types(self)
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window <= 0:
            raise ConfigError(f"window must be a positive integer, got {self.window!r}")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.holdout < 0:
            raise ConfigError(f"holdout must be >= 0, got {self.holdout}")
        if not 0 <= self.train_start < 1:
            raise ConfigError(f"train_start must be in [0, 1), got {self.train_start}")
        if self.valid_size is not None and self.valid_size < 0:
            raise ConfigError(f"valid_size must be >= 0, got {self.valid_size}")
        if self.patience is not None and self.patience <= 0:
            raise ConfigError(f"patience must be a positive number of epochs or None (off), "
                              f"got {self.patience}")
        if self.season is not None and (self.season < 0 or self.season == 1):
            raise ConfigError(f"season must be 0 (off) or a lag >= 2, got {self.season}; use "
                              "diff for a lag-1 difference")
        if self.scale not in prep.SCALES:
            raise ConfigError(f"scale must be one of {', '.join(prep.SCALES)}, got {self.scale!r}")
        # Fail early on the model and training configs too (their own validation).
        ModelConfig(1, self.hidden_size, 1, init=self.init, num_layers=self.num_layers)
        reference.check_dropout(self.train_config(), self.num_layers)

    def train_config(self) -> TrainConfig:
        return TrainConfig(loss="mse" if self.task == "regress" else "ce", loss_on=self.loss_on,
                           optimizer=self.optimizer, lr=self.lr, momentum=self.momentum,
                           clip=self.clip, epochs=self.epochs, batch_size=self.batch_size,
                           seed=self.seed, grad_shards=self.grad_shards, dropout=self.dropout)

    def to_dict(self):
        return asdict(self)


def _said(key, v):
    """A setting's value for a message (patience None is early stopping off)."""
    return "0 (off)" if key == "patience" and v is None else repr(v)


# ---- the forecaster ------------------------------------------------------------------------

class Forecaster:
    """``Forecaster(hidden_size=..., window=..., backend=..., seed=...).fit(series)`` then
    ``.predict(horizon)``: recursive multi-step forecasts in the series' original units."""

    # options of many-series tables (a DataFrame given to fit: lockstep.panel)
    PANEL_OPTIONS = {"id_column": "unique_id", "time_column": "ds", "value_column": "y",
                     "exog": (), "calendar": False, "levels": (80, 95), "freq": None}

    def __init__(self, hidden_size=32, window=12, backend="auto", seed=0, *, strategy=None,
                 device=None, quiet=False, progress=None, logger=None, comm=None, **settings):
        self.panel_options = {k: settings.pop(k, v) for k, v in self.PANEL_OPTIONS.items()}
        self.settings = ForecastSettings(hidden_size=hidden_size, window=window, seed=seed,
                                         **settings)
        self.panel = None  # the global model, when fit() was given a table of many series
        self.backend_name, self.strategy, self.device = backend, strategy, device
        backends.resolve(backend, device)  # unknown or unavailable backends fail here
        self.quiet, self.progress, self.logger = quiet, progress, logger
        self.comm = comm  # an MPI communicator: data-parallel training (lockstep.distributed)
        self.state = None
        self.series = None

    @property
    def baseline_season(self) -> int:
        """The seasonal-naive baseline's period: --season when given, else the data's own
        (inferred from the dates), else 1 (plain naive: the last value repeated)."""
        s = self.settings.season
        return (s if s is not None else self.series.period) or 1

    @property
    def baseline_name(self) -> str:
        """What the baseline really is: 'seasonal naive (period 12)' or 'naive (last value)'."""
        p = self.baseline_season
        return f"seasonal naive (period {p})" if p > 1 else "naive (last value)"

    # -- data preparation --
    def _season(self, series: Series) -> int:
        s = self.settings.season
        return (series.period or 0) if s is None else s

    def prepare(self, series: Series):
        """Fit the preprocessing on the training part; ((x, y) train, (x, y) valid or None)."""
        st = self.settings
        series.check_trainable()
        n_train = len(series) - st.holdout
        start = int(st.train_start * n_train)
        if st.task == "classify-change":
            if series.n_series != 1:
                raise DataError("the classify-change task needs a univariate series; pick one "
                                "column with --value-column")
            need = st.window + 3
        else:
            need = st.window + 2
        season = self._season(series)
        self.pipeline = prep.Pipeline(log=st.log, diff=st.diff,
                                      season=season if st.task == "regress" else 0, scale=st.scale)
        lags = self.pipeline.lags if st.task == "regress" else 1
        if n_train - start - lags < need:
            raise DataError(f"{series.source or 'the series'} has {len(series)} rows: too few for "
                            f"holdout {st.holdout} + window {st.window} (+{lags} for differencing) "
                            f"+ targets; need at least {st.holdout + start + lags + need} rows")
        train_vals = series.values[start:n_train]
        if st.task == "regress":
            self.pipeline.fit(train_vals)
            z = self.pipeline.forward(train_vals)
            k = series.n_series
            self.model_cfg = ModelConfig(k, st.hidden_size, k, init=st.init,
                                         num_layers=st.num_layers)
        else:
            nc = prep.normalized_change(series.values[:n_train, 0])[max(start - 1, 0):]
            self.centroids = prep.kmeans_1d(nc)
            z = prep.encode(nc, self.centroids)
            self.model_cfg = ModelConfig(3, st.hidden_size, 3, init=st.init,
                                         num_layers=st.num_layers)
        n_valid = st.valid_size if st.valid_size is not None else default_valid_size(
            season, len(z), st.task)
        if len(z) - n_valid - st.window < 1:
            n_valid = max(0, len(z) - st.window - 1)
        self._z, self.n_valid = z, n_valid  # the validation span: the last n_valid values of z
        mc = self.model_cfg
        need = limits.training_bytes(mc.input_size, mc.hidden_size, mc.output_size, st.window,
                                     max(1, len(z) - st.window), st.batch_size,
                                     np.dtype(st.dtype).itemsize, n_valid, mc.num_layers)
        limits.check_memory(need, f"training with hidden size {st.hidden_size}, window "
                            f"{st.window} and {len(z)} rows", "choose a smaller --hidden, "
                            "--window or --batch-size")
        (xt, yt), valid = prep.split_windows(z, st.window, n_valid, st.loss_on)
        return self._model_io(xt, yt), None if valid is None else self._model_io(*valid)

    def _model_io(self, x, y):
        """Model inputs and targets: scaled values (regress) or one-hot tokens with class
        targets (classify-change)."""
        dt = np.dtype(self.settings.dtype)
        if self.settings.task == "regress":
            return x.astype(dt), y.astype(dt)
        return prep.one_hot(x, 3, dt), y.astype(np.int64)

    # -- training --
    def fit(self, series, checkpoint_path=None, resume=False, on_epoch=None):
        """Train on ``series`` minus its last ``holdout`` rows (a Series or an array).
        After every good epoch ``on_epoch(state)`` runs (default: save ``checkpoint_path``).
        A pandas DataFrame (long form unique_id, ds, y [, covariates], or wide) trains one
        global model for all its series (lockstep.panel); ``predict`` then returns a
        DataFrame with intervals."""
        if _is_frame(series):
            return self._fit_panel(series, checkpoint_path)
        series = series if isinstance(series, Series) else Series(np.asarray(series, float),
                                                                  ["value"])
        self.series = series
        train, valid = self.prepare(series)
        st = self.settings
        self.trainer = Trainer(self.model_cfg, st.train_config(), backend=self.backend_name,
                               dtype=st.dtype, strategy=self.strategy, device=self.device,
                               patience=st.patience, quiet=self.quiet, progress=self.progress,
                               log=self.logger, comm=self.comm)
        if valid is not None and st.task == "regress":
            self.trainer.backend = ForecastValidation(
                self.trainer.backend, self._z, self.n_valid, st.window,
                validation_horizon(self.n_valid), np.dtype(st.dtype), st.train_config())
        if resume and checkpoint_path is not None:
            self.state = self._resume_state(checkpoint_path, series)
            if self.state.stopped == "early-stop" and getattr(self, "continue_early_stopped",
                                                             False):
                # on to the epochs asked for; early stopping stays off for the rest
                self.state.stopped, self.trainer.patience = None, None
        else:
            params = reference.init_params(self.model_cfg, np.dtype(st.dtype), seed=st.seed)
            self.state = self.trainer.new_state(params)
        if on_epoch is None and checkpoint_path:
            on_epoch = lambda s: self.save(checkpoint_path)  # noqa: E731
        self.state = self.trainer.fit(self.state, train, valid, on_epoch=on_epoch)
        return self

    @property
    def params(self):
        """The parameters used for forecasts: the best validation epoch's when there was
        validation data, else the last epoch's."""
        s = self.state
        return s.best_params if s.best_params is not None else s.params

    @property
    def history(self):
        return {"train_loss": [float(v) for v in self.state.train_loss],
                "valid_loss": [float(v) for v in self.state.valid_loss]}

    # -- forecasting --
    def _predict_model_space(self, z_hist, horizon):
        be = self.trainer.backend
        be.load(self.params, None)
        st = self.settings
        buf = list(z_hist[-st.window:])
        out = []
        for _ in range(horizon):
            w = np.array(buf[-st.window:])
            if st.task == "regress":
                y = be.predict(w[:, None, :].astype(st.dtype))[-1, 0]
                nxt = y
            else:
                logits = be.predict(prep.one_hot(w, 3, np.dtype(st.dtype))[:, None, :])[-1, 0]
                nxt = int(np.argmax(logits))
            out.append(nxt)
            buf.append(nxt)
        return np.array(out)

    def _global_model(self):
        from . import panel

        o = self.panel_options
        st = panel.PanelSettings(base=self.settings, calendar=o["calendar"],
                                 levels=tuple(o["levels"]))
        return panel.GlobalForecaster(st, self.backend_name, self.strategy, self.device,
                                      quiet=self.quiet, logger=self.logger)

    def _read_panel(self, df):
        from . import panel

        o = self.panel_options
        return panel.read_panel(df, o["id_column"], o["time_column"], o["value_column"],
                                o["exog"], o["freq"])

    def _fit_panel(self, df, checkpoint_path=None):
        from . import panel

        self.panel = self._global_model().fit(self._read_panel(df), holdout=self.settings.holdout)
        self.state, self.trainer = self.panel.state, self.panel.trainer
        if checkpoint_path:
            panel.save(self.panel, checkpoint_path)
        return self

    def backtest(self, df, horizon: int, windows: int = 3, step: int | None = None,
                 refit: bool = True):
        """Rolling-origin backtest of a table of series (lockstep.panel): a DataFrame with one
        row per window and series (cutoff, the model's and the baseline's metrics, interval
        coverage); the whole result is in ``.attrs["backtest"]``."""
        import pandas as pd

        res = self._global_model().backtest(self._read_panel(df), horizon, windows, step, refit)
        rows = [{"window": r["window"], "unique_id": r["unique_id"], "cutoff": r["cutoff"],
                 **r["model"], **{f"baseline_{k}": v for k, v in r["baseline"].items()},
                 **{f"coverage_{lv}": c for lv, c in r["coverage"].items()}}
                for r in res["windows"]]
        out = pd.DataFrame(rows)
        out.attrs["backtest"] = res
        return out

    def predict(self, horizon: int, history=None, level=None):
        """Forecast ``horizon`` steps after ``history`` (default: the training part). After
        fitting a table of series: a DataFrame (unique_id, ds, yhat, yhat-lo-L, yhat-hi-L for
        each ``level``, default 80 and 95)."""
        if self.panel is not None:
            if history is not None:
                raise ConfigError("a many-series model forecasts after its training part; "
                                  "fit it on the history you mean")
            return self.panel.predict(horizon, level=level)
        if level is not None:
            raise ConfigError("prediction intervals come with many-series models: fit a "
                              "DataFrame (unique_id, ds, y)")
        if self.state is None:
            raise RuntimeError("fit() (or from_checkpoint()) first")
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) \
                or not 1 <= horizon <= MAX_HORIZON:
            raise ConfigError(f"horizon must be an integer in [1, {MAX_HORIZON}], got {horizon!r}")
        st = self.settings
        if history is None:
            history = self.series.values[:len(self.series) - st.holdout]
        history = np.asarray(history, np.float64).reshape(len(history), -1)
        start = int(st.train_start * (len(self.series) - st.holdout))
        if st.task == "regress":
            z_hist = self.pipeline.forward(history[start:])
            return self.pipeline.inverse(self._predict_model_space(z_hist, horizon), history[start:])
        nc = prep.normalized_change(history[:, 0])
        tokens = self._predict_model_space(prep.encode(nc, self.centroids), horizon)
        changes = prep.decode(tokens, len(nc), self.centroids)
        return (history[-1, 0] + np.cumsum(changes))[:, None]

    def evaluate_holdout(self) -> dict:
        """Forecast the held-out tail; metrics of the model and of seasonal naive (per series
        and overall for a many-series model)."""
        if self.panel is not None:
            return self.panel.evaluate_holdout()
        st = self.settings
        if st.holdout <= 0:
            raise ConfigError("evaluation needs a holdout: set holdout > 0")
        history = self.series.values[:len(self.series) - st.holdout]
        actual = self.series.values[len(self.series) - st.holdout:]
        forecast = self.predict(st.holdout, history)
        naive = seasonal_naive(history, st.holdout, self.baseline_season)
        out = {"forecast": forecast, "actual": actual, "baseline_forecast": naive,
                "metrics": metrics(actual, forecast),
                # the key stays "seasonal_naive" (period 1 = naive); "name" says which it is
                "baseline": {"seasonal_naive": metrics(actual, naive),
                             "name": self.baseline_name, "period": self.baseline_season}}
        if st.task == "classify-change":
            out["classes"] = self.classify_holdout()
        return out

    def classify_holdout(self) -> dict:
        """classify-change: the class of each held-out step's change predicted one step
        ahead (from the true history), its accuracy, the confusion matrix (rows: true class,
        columns: predicted), and the accuracy of always predicting the training part's most
        frequent class. Classes are sorted by their centroid: 0 the largest falls, 2 the
        largest rises."""
        st = self.settings
        n_train = len(self.series) - st.holdout
        tokens = prep.encode(prep.normalized_change(self.series.values[:, 0]), self.centroids)
        idx = range(n_train - 1, len(tokens))  # the change into each held-out value
        pred = np.array([self._predict_model_space(tokens[:j], 1)[0] for j in idx], np.int64)
        true = tokens[n_train - 1:]
        conf = np.zeros((3, 3), np.int64)
        np.add.at(conf, (true, pred), 1)
        train_tokens = tokens[:n_train - 1]
        majority = int(np.bincount(train_tokens, minlength=3).argmax())
        return {"accuracy": float(np.mean(pred == true)), "confusion": conf.tolist(),
                "predicted": pred.tolist(), "actual": true.tolist(),
                "centroids": [float(c) for c in self.centroids],
                "majority_class": majority,
                "majority_accuracy": float(np.mean(true == majority))}

    # -- checkpoints --
    def _config(self):
        return {"settings": self.settings.to_dict(), "model": self.model_cfg.to_dict(),
                "train": self.settings.train_config().to_dict()}

    def save(self, path):
        s = self.state
        extra = {"series": {"values": self.series.values, "names": self.series.names,
                            # labels as an array: a long series keeps the JSON small
                            "time": None if self.series.time is None
                            else np.asarray(self.series.time, dtype=str),
                            "source": self.series.source,
                            "period": self.series.period, "fingerprint": self.series.fingerprint()},
                 "pipeline": self.pipeline.state() if self.settings.task == "regress" else None,
                 "centroids": getattr(self, "centroids", None) if self.settings.task != "regress"
                 else None,
                 "best": {"epoch": s.best_epoch, "valid": s.best_valid, "params": s.best_params}
                 if s.best_params is not None else None,
                 "stopped": s.stopped, "backend": self.trainer.run_name}
        return checkpoint.save(path, params=s.params, opt_state=s.opt_state,
                               rng_state=checkpoint.rng_state(s.rng), epoch=s.epoch,
                               history={"train_loss": s.train_loss, "valid_loss": s.valid_loss},
                               config=self._config(), extra=extra)

    def _resume_state(self, path, series):
        ck = checkpoint.load(path)
        want, have = self._config(), ck["config"]
        have_s = dict(have["settings"], epochs=want["settings"]["epochs"])
        want_s = want["settings"]
        diff = [k for k in want_s if have_s.get(k) != want_s[k]]
        if diff:
            k = diff[0]
            raise checkpoint.CheckpointError(
                f"checkpoint {path} was trained with {k}={_said(k, have_s.get(k))}, this run "
                f"asks for {_said(k, want_s[k])}; use the same settings to resume, or drop "
                "--resume")
        if ck["extra"]["series"]["fingerprint"] != series.fingerprint():
            raise checkpoint.CheckpointError(
                f"checkpoint {path} was trained on other data (fingerprint mismatch); resume with "
                "the same --data, or drop --resume")
        best = ck["extra"].get("best")
        st = TrainState(params=ck["params"], opt_state=ck["opt_state"],
                        rng=checkpoint.rng_from_state(ck["rng_state"]), epoch=ck["epoch"],
                        train_loss=list(ck["history"]["train_loss"]),
                        valid_loss=list(ck["history"]["valid_loss"]))
        if best:
            st.best_epoch, st.best_valid, st.best_params = best["epoch"], best["valid"], best["params"]
        if ck["extra"].get("stopped") == "early-stop":
            st.stopped = "early-stop"  # an uninterrupted run would not have gone on either
        return st

    @classmethod
    def from_checkpoint(cls, path, backend="auto", strategy=None, device=None):
        """A fitted Forecaster from a checkpoint, ready to predict."""
        ck = checkpoint.load(path)
        settings = dict(ck["config"]["settings"])
        self = cls(backend=backend, strategy=strategy, device=device, quiet=True, **settings)
        ex = ck["extra"]
        s = ex["series"]
        self.series = Series(np.asarray(s["values"]), list(s["names"]), s["time"],
                             source=s["source"], period=s["period"])
        self.model_cfg = ModelConfig(**ck["config"]["model"])
        if ex.get("pipeline") is not None:
            self.pipeline = prep.Pipeline.from_state(ex["pipeline"])
        if ex.get("centroids") is not None:
            self.centroids = np.asarray(ex["centroids"])
        self.trainer = Trainer(self.model_cfg, self.settings.train_config(), backend=backend,
                               dtype=self.settings.dtype, strategy=strategy, device=device,
                               quiet=True)
        self.state = self._resume_state(path, self.series)
        return self
