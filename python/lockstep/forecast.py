"""The one Forecaster: one global LSTM for one series or fifty thousand.

A single series is a table of one series. ``fit`` reads any source into a ``data.Panel``
(grouped arrays), fits each series' transforms on its training part (``prep.Transforms``,
arrays indexed by series), draws the windows of all series by index, and trains
``ensemble`` models from consecutive seeds with the ``Trainer`` on any backend (bit-exact).
Model selection scores each epoch by recursive forecasts of every series' validation span;
split-conformal intervals come from the validation span's forecast errors. ``predict``,
``evaluate_holdout`` and ``backtest`` run every series (and every calibration origin) through
the engine together, one call per horizon step; a share of the Theta method's forecast of
each row (``prep.theta``, on the host) is mixed in after the log (``theta_weight``).

Checkpoints hold two sections (``checkpoint.write``): ``data`` (the panel) and ``model``
(settings, per-series state, members' training states, calibration); each is validated here,
field by field, before use. Runs resume bit-exactly, on any backend and any number of MPI
processes dividing ``grad_shards``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from . import backends, checkpoint, limits, reference
from .config import MAX_HORIZON, ConfigError, ModelConfig, TrainConfig, check_types
from .data import DataError, calendar, prep
from .data.table import Panel, read
from .metrics import baseline_name, metrics, naive_scale, seasonal_naive
from .train import Trainer, TrainState

TASKS = ("regress", "classify-change")
# The Theta method's share of a forecast by default. On the validation windows (the last
# horizon of each M3 series' training part; the bundled series' windows before their test
# windows) mixing 0.25 / 0.5 of it in took M3 sMAPE from 14.06 / 9.79 / 19.12 / 4.00
# (monthly / quarterly / yearly / other) to 13.95 / 9.31 / 18.86 / 3.97 and 13.91 / 9.03 /
# 18.73 / 4.05, and the bundled mean MASE from 0.652 to 0.641 and 0.703; 0.25 has the
# smallest mean relative change over the five (docs/results.md)
THETA_WEIGHT = 0.25
HEADS = ("recursive", "direct")
LEVELS_MAX = 99.9  # a level must leave some probability outside the interval
MAX_ABS = 1e150  # values (and transform parameters) beyond this overflow the float64 transforms
PREDICT_BYTES = 64 << 20  # a forecast engine call's windows and activations
# Calibration origins across all series: beyond this, each series gets fewer origins, spread
# evenly over its validation span (so every horizon step is still calibrated); the scores of
# 100k (series, origin) pairs pin a quantile far tighter than the forecasts vary.
CALIBRATION_ROWS = 100_000
# Series whose validation forecasts score each epoch: beyond this, a subset spread evenly over
# the table (every k-th series); 10k series' forecast errors rank epochs as all would, and
# scoring 50k series would cost half an epoch.
VALIDATION_SERIES = 10_000


# ---- settings ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ForecastSettings:
    """Everything that determines a run's bits (the backend does not: all agree)."""

    task: str = "regress"
    hidden_size: int = 32
    window: int = 12
    epochs: int = 150
    # Adam's step: on the M3 validation split (with the scaling below) 0.002 beat 0.001, 0.003
    # and 0.005 overall (monthly / quarterly / yearly / other sMAPE 14.06 / 9.79 / 19.12 / 4.00
    # against 14.32 / 10.03 / 19.31 / 4.02 at 0.005), and on the bundled series' validation
    # windows (mean MASE 0.652 against 0.679; docs/results.md)
    lr: float = 0.002
    optimizer: str = "adam"
    momentum: float = 0.0
    batch_size: int = 16
    clip: float = 1.0
    loss_on: str = "all"
    init: str = "uniform"
    dtype: str = "float64"
    seed: int = 0
    transform: str = "auto"  # per series: log where its training values are all positive
    diff: bool = False  # the lag-1 difference for every series
    # the lag-1 difference for series without a seasonal one (their trend): on the M3
    # validation split it took yearly sMAPE from 29.75 to 21.02 and "other" from 9.06 to 4.06
    # and left monthly and quarterly as they were (docs/results.md)
    diff_nonseasonal: bool = True
    season: int | None = None  # None: the data's period (12 for monthly data) or 0
    # how the season leaves the series: seasonal indices removed after the log (each series'
    # own, where its seasonality is significant; ES-RNN's and NAIVE2's idea), then the lag-1
    # difference; or a seasonal difference. Indices by default: on the M3 validation split
    # monthly sMAPE 17.66 -> 16.95, quarterly 10.59 -> 9.78 (docs/results.md)
    seasonality: str = "indices"
    # rms: each series' model-space values divided by their root mean square, not centred
    # on their mean: that mean (the drift, after the difference) over the whole training
    # part hands every training window the drift of its own future, which a forecast never
    # has. running_mean centres each row instead on the mean of the values before it (known
    # then) and gives that mean as an input. Together, on the M3 validation split: monthly
    # sMAPE 16.95 -> 14.32, yearly 21.02 -> 19.31, other 4.06 -> 4.02, quarterly 9.78 ->
    # 10.03 (docs/results.md)
    scale: str = "rms"
    running_mean: bool = True
    valid_size: int | None = None  # validation points per series; None: default_valid_size
    patience: int | None = 10  # epochs without a better validation forecast
    train_start: float = 0.0  # fraction of each series skipped at the start
    holdout: int = 0
    grad_shards: int = 1  # S groups per batch (docs/arithmetic.md); fixes the bits for any R
    num_layers: int = 1
    dropout: float = 0.0
    calendar: bool = False  # sin/cos of the position in the season as inputs
    levels: tuple = (80, 95)  # conformal interval levels (percent)
    calibration: int | None = None  # forecast origins per series for the intervals
    # models from seeds seed, seed+1, ...; forecasts averaged in model space. One by default:
    # on the M3 validation split three were better on monthly series (sMAPE 16.13 vs 16.95)
    # and worse on quarterly, yearly and other ones, at three times the cost (docs/results.md)
    ensemble: int = 1
    fallback: bool = False  # seasonal naive for series whose validation forecast loses to it
    # recursive: one step ahead, each forecast fed back in; direct: the last time step
    # predicts the next head_steps values at once (MQ-RNN's multi-step head), longer
    # horizons in blocks of head_steps
    head: str = "recursive"
    head_steps: int = 0
    # a series shorter than window + targets still trains: its windows start before its
    # first value, the missing rows zeros (inputs and targets), so no series is dropped and
    # no window shrinks for all because of a few short ones (regress only)
    pad: bool = False
    # the forecast's share taken from the Theta method (prep.theta) run on each series' own
    # log, deseasonalised history: (1 - w) model + w Theta, mixed after the log and before
    # the season goes back in (a weighted geometric mean of the two forecasts). 0: the
    # model alone. None: THETA_WEIGHT, set when the data is read (``prepare``), 0 for data
    # with covariates (the Theta method cannot see them) and for classify-change
    theta_weight: float | None = None

    def __post_init__(self):
        check_types(self)
        object.__setattr__(self, "levels", tuple(self.levels))
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.head not in HEADS:
            raise ConfigError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.head == "direct" and not 1 <= self.head_steps <= MAX_HORIZON:
            raise ConfigError(f"the direct head needs head_steps in [1, {MAX_HORIZON}] (the "
                              f"values each window predicts), got {self.head_steps}; pass "
                              "--head-steps N")
        if self.head == "direct" and self.task != "regress":
            raise ConfigError("the direct head forecasts values (task regress); "
                              "classify-change predicts one class at a time: use head recursive")
        if self.pad and self.task != "regress":
            raise ConfigError("pad is for task regress (classify-change has no zero class to "
                              "pad with); drop --pad")
        if self.theta_weight is None and self.task != "regress":
            object.__setattr__(self, "theta_weight", 0.0)
        if self.theta_weight is not None and not 0 <= self.theta_weight <= 1:
            raise ConfigError(f"theta_weight must be in [0, 1] (the Theta method's share of "
                              f"the forecast), got {self.theta_weight}")
        if self.theta_weight and self.task != "regress":
            raise ConfigError("theta_weight mixes in value forecasts (task regress); "
                              "classify-change predicts classes: drop --theta-weight")
        if self.head == "recursive" and self.head_steps:
            raise ConfigError(f"head_steps {self.head_steps} is for the direct head; pass "
                              "--head direct or drop --head-steps")
        if self.window <= 0:
            raise ConfigError(f"window must be a positive integer, got {self.window!r}")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.transform not in prep.TRANSFORMS:
            raise ConfigError(f"transform must be one of {', '.join(prep.TRANSFORMS)}, got "
                              f"{self.transform!r}")
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
        if self.seasonality not in prep.SEASONALITY:
            raise ConfigError(f"seasonality must be one of {', '.join(prep.SEASONALITY)}, got "
                              f"{self.seasonality!r}")
        if self.scale not in prep.SCALES:
            raise ConfigError(f"scale must be one of {', '.join(prep.SCALES)}, got {self.scale!r}")
        if not 1 <= self.ensemble <= 100:
            raise ConfigError(f"ensemble must be an integer in [1, 100], got {self.ensemble!r}")
        if self.calibration is not None and self.calibration < 1:
            raise ConfigError(f"calibration must be >= 1 origins, got {self.calibration}")
        for lv in self.levels:
            check_level(lv)
        ModelConfig(1, self.hidden_size, 1, init=self.init, num_layers=self.num_layers)
        reference.check_dropout(self.train_config(), self.num_layers)

    def train_config(self, member: int = 0) -> TrainConfig:
        # the direct head's loss is on the last step's head_steps outputs
        loss_on = "last" if self.head == "direct" else self.loss_on
        return TrainConfig(loss="mse" if self.task == "regress" else "ce", loss_on=loss_on,
                           optimizer=self.optimizer, lr=self.lr, momentum=self.momentum,
                           clip=self.clip, epochs=self.epochs, batch_size=self.batch_size,
                           seed=self.seed + member, grad_shards=self.grad_shards,
                           dropout=self.dropout)

    def to_dict(self):
        d = asdict(self)
        d["levels"] = list(self.levels)
        return d


def check_level(lv):
    if isinstance(lv, bool) or not isinstance(lv, (int, float)) or not 0 < lv <= LEVELS_MAX:
        raise ConfigError(f"level must be a percentage in (0, {LEVELS_MAX}], got {lv!r}")
    return lv


def _lv(lv):
    return int(lv) if float(lv).is_integer() else lv


def default_valid_size(season, n, task="regress"):
    """Validation points of each series when valid_size is None: three seasons (36 months)
    for the regress task, at most a third of its ``n`` model-space values; one season for
    classify-change; 20% (10% for classify-change) without a season. ``season`` and ``n``
    may be arrays (one entry per series)."""
    season = np.asarray(0 if season is None else season, np.int64)
    n = np.asarray(n, np.int64)
    if task != "regress":
        out = np.where(season > 0, season, np.maximum(1, n // 10))
    else:
        out = np.where(season > 0, np.maximum(1, np.minimum(3 * season, n // 3)),
                       np.maximum(1, n // 5))
    return int(out) if out.ndim == 0 else out


# ---- windows drawn by index ----------------------------------------------------------------

class Windows:
    """Training windows of the pooled series, drawn by index from the model rows (never
    materialised as a whole unless they fit in ``train.CHUNK_BYTES``): window k is rows
    starts[k] .. starts[k] + W - 1 of the inputs ``A`` with targets the next rows of ``Z``.
    With ``lo`` (padding), rows before lo[k], its series' first row, are zeros."""

    def __init__(self, A, Z, starts, W, loss_on, dtype, classify, steps=1, lo=None):
        self.A, self.Z, self.starts, self.W, self.lo = A, Z, starts, W, lo
        self.loss_on, self.dtype, self.classify = loss_on, np.dtype(dtype), classify
        self.steps = steps  # >1: the direct head's targets, the next `steps` values
        self.shape = (W, len(starts), A.shape[1])
        self.window_bytes = (W * (A.shape[1] + 1) + steps) * self.dtype.itemsize

    def gather(self, idx):
        s = self.starts[idx]
        rows = s[None, :] + np.arange(self.W)[:, None]  # (W, n)
        lo = None if self.lo is None else self.lo[idx][None, :]
        x = padded(self.A, rows, lo).astype(self.dtype)
        if self.steps > 1:  # (n, steps): the values after the window (never padding)
            return x, self.Z[s[:, None] + self.W + np.arange(self.steps)].astype(self.dtype)
        t = padded(self.Z, rows + 1, lo) if self.loss_on == "all" else self.Z[s + self.W]
        return x, (t.astype(np.int64) if self.classify else t[..., None].astype(self.dtype))

    def compact(self):
        """The whole set as arrays when it is small, else itself (gathered in chunks)."""
        from .train import CHUNK_BYTES

        if self.shape[1] * self.window_bytes <= CHUNK_BYTES:
            return self.gather(np.arange(self.shape[1]))
        return self, None


def padded(v, rows, lo):
    """v[rows], zeros where a row lies before ``lo`` (its series' first row; None: none do)."""
    if lo is None:
        return v[rows]
    before = rows < lo
    out = v[np.maximum(rows, lo)]
    out[before] = 0
    return out


class _Validation:
    """The backend with ``evaluate`` scoring what a forecaster is for: recursive forecasts of
    every series' whole validation span from its start, in model space; the score is the
    mean squared error over every series and step (float64 on the host). One-step loss on
    the validation windows kept falling long after multi-step forecasts got worse
    (docs/results.md, model selection). The forecasts are the same bits on every backend,
    so the best epoch is too."""

    def __init__(self, backend, fc, series, ends, n_valid):
        self._be, self._fc = backend, fc
        self._series, self._ends, self._n_valid = series, ends, n_valid
        self._h = int(n_valid.max())
        start = fc.panel.indptr[series]
        k = np.arange(self._h)
        self._mask = k[None, :] < n_valid[:, None]
        rows = np.minimum(start[:, None] + ends[:, None] + k[None, :], len(fc._Z) - 1)
        self._true = fc._Zv[rows]

    def __getattr__(self, name):  # load, state, predict, train_epoch, run_name, dtype, ...
        return getattr(self._be, name)

    def evaluate(self, x=None, y=None):
        z = self._fc._uncentred(self._fc._forecast_model(self._be, self._series, self._ends,
                                                         self._h, steps=self._n_valid),
                                self._series, self._ends)
        with np.errstate(all="ignore"):  # a diverging run gives inf: the Trainer reports it
            err = (z[self._mask] - self._true[self._mask])
            return self._be.dtype.type(np.mean(err * err))


# ---- the forecaster ------------------------------------------------------------------------

READER_OPTIONS = ("id_column", "time_column", "value_column", "exog", "freq")


class Forecaster:
    """``Forecaster(hidden_size=..., window=..., backend=..., seed=..., **settings)``, then
    ``fit(data)`` with a data set name, a CSV or Parquet path, a pandas DataFrame (long:
    unique_id, ds, y and covariates; or wide), a NumPy array or a ``data.Panel``;
    ``predict(h)`` gives a DataFrame (unique_id, ds, yhat, yhat-lo-L, yhat-hi-L);
    ``evaluate_holdout()``, ``backtest(...)``, ``save(path)`` and ``Forecaster.load(path)``."""

    def __init__(self, hidden_size=32, window=12, backend="auto", seed=0, *, strategy=None,
                 device=None, quiet=False, progress=None, logger=None, comm=None,
                 id_column=None, time_column=None, value_column=None, exog=(), freq=None,
                 **settings):
        self.read_options = {"id_column": id_column, "time_column": time_column,
                             "value_column": value_column, "exog": tuple(exog or ()),
                             "freq": freq}
        self.settings = ForecastSettings(hidden_size=hidden_size, window=window, seed=seed,
                                         **settings)
        self.backend_name, self.strategy, self.device = backend, strategy, device
        backends.resolve(backend, device)  # unknown or unavailable backends fail here
        self.quiet, self.progress, self.logger, self.comm = quiet, progress, logger, comm
        self.panel = None
        self.states, self.members, self.trainer = [], [], None
        self.continue_early_stopped = False

    # -- reading --
    def read(self, source) -> Panel:
        """``source`` as a Panel, with this forecaster's reader options (the one reader)."""
        return read(source, **self.read_options)

    # -- preparing --
    @property
    def season(self) -> int:
        s = self.settings.season
        return (self.panel.season if s is None else s) or 0

    @property
    def baseline_season(self) -> int:
        return self.season or 1

    @property
    def baseline_name(self) -> str:
        return baseline_name(self.baseline_season)

    def prepare(self, panel: Panel):
        """Fit each series' transforms on its training part (all but the last ``holdout``
        rows), build the model rows of every series and the training windows. Refuses, in
        one line, what cannot train: too-short series (named), values beyond +-1e150, sizes
        that cannot fit in memory."""
        st = self.settings
        if st.theta_weight is None:  # the default: Theta cannot see covariates
            st = self.settings = replace(st, theta_weight=0.0 if panel.exog_names
                                         else THETA_WEIGHT)
        self.panel, self.holdout = panel, st.holdout
        y, ip, n = panel.y, panel.indptr, len(panel)
        lengths = np.diff(ip)
        big = np.abs(y) > MAX_ABS
        if big.any():
            r = int(np.flatnonzero(big)[0])
            g = int(np.searchsorted(ip, r, side="right") - 1)
            raise DataError(f"series {str(panel.ids[g])!r}: value {y[r]:.6g} at row "
                            f"{r - ip[g] + 1} is beyond +-{MAX_ABS:g}, where the float64 "
                            "transforms overflow; rescale it")
        n_train = lengths - st.holdout
        skip = (st.train_start * np.maximum(n_train, 0)).astype(np.int64)
        classify = st.task == "classify-change"
        if classify:
            self.tf = prep.Transforms(np.zeros(n, np.int8), False, np.zeros(n, np.int64),
                                      np.zeros(n), np.ones(n), np.zeros((n, 0)), np.ones((n, 0)))
            lags = np.ones(n, np.int64)
        else:
            self.tf = prep.Transforms.fit(y, panel.exog, ip, np.maximum(n_train, 1), skip,
                                          transform=st.transform, diff=st.diff,
                                          season=self.season, scale=st.scale,
                                          diff_nonseasonal=st.diff_nonseasonal,
                                          seasonality=st.seasonality,
                                          min_rows=st.window + 1 + (
                                              st.head_steps if st.head == "direct" else 1))
            lags = self.tf.lags
        first = skip + lags
        H = st.head_steps if st.head == "direct" else 1  # targets after each window
        need = _rows_needed(st)
        short = np.flatnonzero(n_train - first < need)
        if short.size:
            i = int(short[0])
            raise DataError(f"series {str(panel.ids[i])!r} has {lengths[i]} rows: too few for "
                            f"holdout {st.holdout} + "
                            f"{'one row' if st.pad else f'window {st.window}'} (+{lags[i]} for "
                            f"differencing) + targets; need {st.holdout + first[i] + need} rows "
                            f"({short.size} series too short: drop them, pass --skip-short"
                            f"{'' if st.pad else ' or --pad'})")
        self.first, self.n_train = first, n_train
        m = n_train - first
        lag_for_valid = self.tf.lag if not classify and st.seasonality == "difference" \
            else np.full(n, self.season)
        nv = np.full(n, st.valid_size, np.int64) if st.valid_size is not None else \
            default_valid_size(lag_for_valid, m, st.task)
        self.n_valid = np.minimum(nv, np.maximum(0, m - st.window - H))
        self._model_rows(classify)
        counts = m - self.n_valid - st.window - H + 1
        pad = np.maximum(0, 1 - counts) if st.pad else np.zeros(n, np.int64)  # one window
        counts = counts + pad
        starts = np.repeat(ip[:-1] + first - pad, counts) + _ranges(counts)
        lo = np.repeat(ip[:-1] + first, counts) if pad.any() else None
        mc = self.model_cfg
        need_b = limits.training_bytes(mc.input_size, mc.hidden_size, mc.output_size,
                                       st.window, 1, st.batch_size,
                                       np.dtype(st.dtype).itemsize, 0, mc.num_layers)
        from .train import CHUNK_BYTES

        itemsize = np.dtype(st.dtype).itemsize
        need_b += min(len(starts) * st.window * (mc.input_size + 1) * itemsize, CHUNK_BYTES)
        need_b += self._A.nbytes + 3 * y.nbytes  # model rows, values, transforms
        need_b += 0 if lo is None else lo.nbytes
        limits.check_memory(need_b, f"training {n} series ({len(starts)} windows) with hidden "
                            f"size {st.hidden_size} and window {st.window}",
                            "choose a smaller --hidden or --window, or fewer series")
        self.windows = Windows(self._A, self._Z, starts, st.window, st.train_config().loss_on,
                               st.dtype, classify, H, lo)
        return self.windows

    def _model_rows(self, classify, centroids=None):
        """Model-space values ``_Z`` of every row (tokens for classify-change) and the model
        inputs ``_A`` (rows, I): A[r] = [z_r (one-hot tokens for classify-change), the
        features of row r + 1] (known in advance: calendar position, scaled covariates)."""
        st, p = self.settings, self.panel
        ip, n = p.indptr, len(p)
        group = prep.group_of(ip)
        if classify:
            pos = prep.positions(ip)
            nc = np.full(len(p.y), np.nan)
            d_ok = pos >= 1
            prev = np.maximum(np.arange(len(p.y)) - 1, 0)
            nc[d_ok] = prep.scaled_change(p.y - p.y[prev], pos - 1)[d_ok]
            use = d_ok & (pos >= self.first[group]) & (pos < self.n_train[group])
            self.centroids = prep.kmeans_groups(nc[use], group[use], n) if centroids is None \
                else centroids
            tok = np.zeros(len(p.y), np.int64)
            for i in range(n):  # encode with each series' own centroids
                r = slice(ip[i], ip[i + 1])
                tok[r] = prep.encode(np.nan_to_num(nc[r]), self.centroids[i])
            self._Z = np.where(d_ok, tok, -1).astype(np.float64)
            value = prep.one_hot(np.maximum(tok, 0), 3)
        else:
            self.centroids = None
            self._Z = self.tf.forward(p.y, ip)
        self._S1 = self.tf.stage1(p.y, group, prep.positions(ip))
        # the running mean: row r's value centred on the mean through row r - 1 (known at
        # r), that mean also an input; _Zv keeps the values before the centring
        self._M = self._running_mean(self._Z) if st.running_mean and not classify else None
        self._Zv = self._Z
        if self._M is not None:
            self._Z = self._Z - self._previous(self._M)
        if not classify:
            value = np.nan_to_num(self._Z)[:, None]
        F = self._features_rows()
        A = np.concatenate([value, np.zeros((len(p.y), F.shape[1]))], axis=1)
        if F.shape[1]:
            nxt = np.arange(len(p.y)) + 1
            inside = np.ones(len(p.y), bool)
            inside[ip[1:] - 1] = False
            A[inside, value.shape[1]:] = F[nxt[inside]]
        self._A = A
        I = A.shape[1]
        O = 3 if classify else (st.head_steps if st.head == "direct" else 1)
        self.model_cfg = ModelConfig(I, st.hidden_size, O, init=st.init,
                                     num_layers=st.num_layers)

    def _features_rows(self):
        """(rows, f) features of every row: calendar (sin, cos), scaled covariates, then the
        running mean."""
        p = self.panel
        parts = []
        if self.settings.calendar:
            parts.append(self._calendar(p.ds))
        if p.exog_names:
            parts.append(self.tf.exog_forward(p.exog, p.indptr))
        if self._M is not None:  # row r's input: the mean through row r - 1, known then
            parts.append(self._previous(self._M)[:, None])
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(p.y), 0))

    def _previous(self, v):
        """v of the row before in the same series (0 for a series' first row)."""
        prev = np.concatenate([[0.0], v[:-1]])
        prev[self.panel.indptr[:-1]] = 0.0
        return prev

    def _uncentred(self, z, series, ends):
        """Forecasts ``z`` (B, h) from the origins (series, ends) back from values centred on
        the running mean through the origin."""
        if self._M is None:
            return z
        return z + self._M[self.panel.indptr[series] + ends - 1][:, None]

    def _running_mean(self, z):
        """M[r]: the mean of the model-space values ``z`` of rows first..r of row r's series
        (0 before its first), one float64 scan in row order, so the same bits everywhere."""
        ip = self.panel.indptr
        group, pos = prep.group_of(ip), prep.positions(ip)
        first = self.first[group]
        cs = np.cumsum(np.where(pos >= first, np.nan_to_num(z), 0.0))
        base = np.concatenate([[0.0], cs])[ip[:-1]][group]
        return (cs - base) / np.maximum(pos - first + 1, 1)

    def _calendar(self, ds):
        p = self.panel
        if p.ds is None or not calendar.season_of(p.freq):
            return np.zeros((len(ds) if ds is not None else 0, 0))
        return calendar.calendar_features(np.asarray(ds).reshape(-1), p.freq)

    # -- training --
    def fit(self, data, checkpoint_path=None, resume=False, on_epoch=None):
        """Train on every series minus its last ``holdout`` rows: ``ensemble`` models from
        consecutive seeds (each with the best validation epoch kept), then the fallback
        decisions and the interval calibration. After every good epoch ``on_epoch(self)``
        runs (default: save ``checkpoint_path``). ``resume``: continue the checkpoint at
        ``checkpoint_path`` bit-exactly (its settings and data must be this run's)."""
        panel = data if isinstance(data, Panel) else self.read(data)
        st = self.settings
        if self.comm is not None:
            from .distributed import check_ranks

            check_ranks(self.comm.size, st.grad_shards)
        # prepared already (the CLI prepares first, to refuse before touching --out)?
        same = self.panel is panel and getattr(self, "windows", None) is not None
        train = (self.windows if same else self.prepare(panel)).compact()
        self.members = []
        self.states = self._resume_states(checkpoint_path) if resume else []
        save_at_end = on_epoch is None and checkpoint_path
        if save_at_end:
            on_epoch = lambda fc: fc.save(checkpoint_path)  # noqa: E731
        for m in range(st.ensemble):
            self._fit_member(m, train, on_epoch)
        self._finish()
        if save_at_end:
            self.save(checkpoint_path)  # with the calibration: a model Forecaster.load takes
        return self

    def _trainer(self, member):
        st = self.settings
        tr = Trainer(self.model_cfg, st.train_config(member), backend=self.backend_name,
                     dtype=st.dtype, strategy=self.strategy, device=self.device,
                     patience=st.patience, quiet=self.quiet, progress=self.progress,
                     log=self.logger, comm=self.comm)
        if st.ensemble > 1 and not self.quiet:
            log = tr.log
            tr.log = lambda msg: log(f"model {member + 1}/{st.ensemble}: {msg}")
        return tr

    def _fit_member(self, m, train, on_epoch):
        st = self.settings
        self.trainer = self._trainer(m)
        if m < len(self.states):
            state = self.states[m]
            if state.stopped == "early-stop" and self.continue_early_stopped:
                state.stopped, self.trainer.patience = None, None
            elif state.stopped == "completed" and state.epoch < st.epochs:
                state.stopped = None  # more epochs asked for: train on
            if state.stopped is not None:
                return
        else:
            params = reference.init_params(self.model_cfg, np.dtype(st.dtype), seed=st.seed + m)
            state = self.trainer.new_state(params)
            self.states.append(state)
        has_valid = bool(self.n_valid.any())
        if has_valid and st.task == "regress":
            sel = _spread(np.flatnonzero(self.n_valid), VALIDATION_SERIES)
            self.trainer.backend = _Validation(self.trainer.backend, self, sel,
                                               self.n_train[sel] - self.n_valid[sel],
                                               self.n_valid[sel])
            valid = ((), ())
        elif has_valid:
            valid = self._valid_windows()
        else:
            valid = None
        hook = None if on_epoch is None else (lambda s: on_epoch(self))
        self.states[m] = self.trainer.fit(state, train, valid, on_epoch=hook)
        self.trainer.backend = getattr(self.trainer.backend, "_be", self.trainer.backend)

    def _valid_windows(self):
        """classify-change: one-step windows whose targets are the validation span's."""
        st, ip = self.settings, self.panel.indptr
        counts = self.n_valid
        ends = ip[:-1] + self.n_train - 1 - st.window  # the last window's start
        starts = np.repeat(ends - counts + 1, counts) + _ranges(counts)
        w = Windows(self._A, self._Z, starts, st.window, st.loss_on, st.dtype, True)
        return w.gather(np.arange(len(starts)))

    def _finish(self):
        """The members' parameters, the fallback decisions and the calibration."""
        self.members = [s.best_params if s.best_params is not None else s.params
                        for s in self.states]
        self.state = self.states[0]
        self.fallback = np.zeros(len(self.panel), bool)
        if self.settings.fallback and self.n_valid.any():
            self.fallback = self._fallbacks()
        self._calibrate()

    @property
    def params(self):
        """The first ensemble member's parameters (all: ``members``)."""
        return self.members[0] if self.members else None

    @property
    def history(self):
        s = self.state
        return {"train_loss": [float(v) for v in s.train_loss],
                "valid_loss": [float(v) for v in s.valid_loss]}

    # -- the recursion --
    def _feature_block(self, series, ends, horizon, future=None):
        """(B, horizon, f) features of the rows at positions ends + k (k < horizon) of each
        row's series: from the data inside it, beyond its end from ``future`` (B, horizon', e)
        raw covariates (calendar from the dates); without ``future`` the last covariates
        are repeated (only steps inside the data are ever scored then). The running mean
        stays at the origin's: a forecast never updates it with its own values."""
        p, st = self.panel, self.settings
        B = len(series)
        parts = []
        if st.calendar and p.ds is not None and calendar.season_of(p.freq):
            last = p.ds[p.indptr[series] + ends - 1]
            dates = calendar.step_dates(last, horizon, p.freq)  # (B, horizon)
            parts.append(calendar.calendar_features(dates.reshape(-1), p.freq)
                         .reshape(B, horizon, -1))
        if p.exog_names:
            parts.append(self._exog_block(series, ends, horizon, future))
        if self._M is not None:  # the mean through the origin, held over the horizon
            m = self._M[p.indptr[series] + ends - 1]
            parts.append(np.repeat(m[:, None, None], horizon, axis=1))
        if not parts:
            return np.zeros((B, horizon, 0))
        return np.concatenate(parts, axis=2)

    def _exog_block(self, series, ends, horizon, future):
        """Scaled, differenced covariates at positions ends + k, continuing the data with
        the ``future`` raw values."""
        p, tf = self.panel, self.tf
        start, length = p.indptr[series], np.diff(p.indptr)[series]
        back = int(tf.lags.max()) if len(tf.lags) else 0
        k = np.arange(-back, horizon)
        pos = ends[:, None] + k[None, :]  # (B, K)
        inside = pos < length[:, None]
        rows = start[:, None] + np.clip(pos, 0, length[:, None] - 1)
        raw = p.exog[rows]  # (B, K, e); beyond the end: the last row, unless future says
        if future is not None:
            fpos = pos - length[:, None]
            have = (~inside) & (fpos < future.shape[1])
            bi, ki = np.nonzero(have)
            raw[bi, ki] = future[bi, fpos[bi, ki]]
        d = raw
        dif = tf.diff[series]
        if dif.any():
            dd = np.concatenate([np.full_like(d[:, :1], np.nan), d[:, 1:] - d[:, :-1]], axis=1)
            d = np.where(dif[:, None, None], dd, d)
        lag = tf.lag[series]
        if lag.any():
            idx = np.arange(len(k))[None, :] - lag[:, None]
            prev = np.take_along_axis(d, np.maximum(idx, 0)[..., None], axis=1)
            d = np.where((lag > 0)[:, None, None], d - prev, d)
        d = (d[:, back:] - tf.exog_center[series][:, None]) / tf.exog_spread[series][:, None]
        return np.nan_to_num(d, nan=0.0)

    def _forecast_model(self, be, series, ends, horizon, future=None, steps=None):
        """Model-space forecasts (B, horizon) of the rows (series[b], ends[b]): each from the
        first ends[b] rows of its series, recursively, every row in one engine call per
        step (in chunks of PREDICT_BYTES). classify-change gives class tokens. ``steps``
        (B,): a row needs only its first steps[b] forecasts (the rest are NaN); the rows
        still running form a prefix of each chunk (rows ordered by steps), so finished rows
        cost nothing."""
        st, p = self.settings, self.panel
        W, dt = st.window, np.dtype(st.dtype)
        I = self._A.shape[1]
        classify = st.task == "classify-change"
        nv = 3 if classify else 1
        block = st.head_steps if st.head == "direct" else 1  # values per engine call
        out = np.full((len(series), horizon), np.nan)
        steps = np.full(len(series), horizon) if steps is None else np.minimum(steps, horizon)
        order = np.argsort(-steps, kind="stable")
        mc = self.model_cfg  # the inputs and ~10 values per hidden unit and layer per step
        chunk = max(1, PREDICT_BYTES // (W * (I + 10 * mc.hidden_size * mc.num_layers) * 8))
        for lo in range(0, len(series), chunk):
            idx = order[lo:lo + chunk]
            s, e, need = series[idx], ends[idx], steps[idx]
            F = self._feature_block(s, e, horizon, None if future is None else future[idx])
            rows = (p.indptr[s] + e)[None, :] + np.arange(-W, 0)[:, None]  # (W, B)
            lo = (p.indptr[s] + self.first[s])[None, :]
            x = padded(self._A, rows, lo if (rows < lo).any() else None).copy()
            if F.shape[2]:
                x[-1, :, nv:] = F[:, 0]
            h = 0
            while h < horizon:  # one engine call per step (per block of the direct head)
                k = int((need > h).sum())  # the rows still running: a prefix
                if k == 0:
                    break
                x = x[:, :k]
                y = np.asarray(be.predict(np.ascontiguousarray(x.astype(dt))))[-1]  # (k, O)
                take = min(block, horizon - h)
                if classify:
                    tok = np.argmax(y, axis=1)
                    out[idx[:k], h] = tok
                    vals = prep.one_hot(tok, 3)[None]  # (1, k, 3)
                else:
                    out[idx[:k], h:h + take] = y[:, :take]
                    vals = y[:, :take].astype(np.float64).T[..., None]  # (take, k, 1)
                if h + take < horizon:
                    new = np.zeros((take, k, I))
                    new[:, :, :nv] = vals
                    if F.shape[2]:
                        new[:, :, nv:] = F[:k, h + 1:h + 1 + take].transpose(1, 0, 2)
                    x = np.concatenate([x, new], axis=0)[-W:]
                h += take
        return out

    def _forecast_values(self, series, ends, horizon, future=None, steps=None):
        """Forecasts in the series' units (B, horizon): the ensemble's mean in model space
        (members in order, float64; while training, the current parameters), then each
        series' inverse transform; seasonal naive for series that fell back to it. With
        ``steps``, row b's forecasts after its first steps[b] are NaN (not computed)."""
        be = self.trainer.backend
        classify = self.settings.task == "classify-change"
        acc = 0
        for params in self.members or [None]:
            if params is not None:
                be.load(params, None)
            z = self._forecast_model(be, series, ends, horizon, future, steps)
            unused = np.isnan(z)
            z[unused] = 0.0  # the steps not asked for: kept out of the inverse's arithmetic
            acc = acc + (self._values(z, series, ends) if classify else z)
        acc = acc / max(1, len(self.members))
        # regress: the mean in model space, then the inverse; classify-change: of the values
        vals = acc if classify else self._values(acc, series, ends)
        vals[unused] = np.nan
        fb = getattr(self, "fallback", None)
        if fb is not None and fb[series].any():
            for b in np.flatnonzero(fb[series]):
                vals[b] = seasonal_naive(self._history(series[b], ends[b]), horizon,
                                         self.baseline_season)
        return vals

    def _history(self, i, e):
        p = self.panel
        return p.y[p.indptr[i]:p.indptr[i] + e]

    def _values(self, z, series, ends):
        """Model space -> values, continuing each row's history."""
        p = self.panel
        start = p.indptr[series]
        if self.settings.task == "classify-change":
            t = (ends - 1)[:, None] + np.arange(z.shape[1])[None, :]
            ch = prep.decode(z.astype(np.int64), t, self.centroids[series])
            return p.y[start + ends - 1][:, None] + np.cumsum(ch, axis=1)
        k = int(self.tf.lags.max()) + 1
        idx = start[:, None] + ends[:, None] + np.arange(-k, 0)[None, :]
        hist = self._S1[np.maximum(idx, 0)]
        s = self.tf.to_stage1(self._uncentred(z, series, ends), series, hist)
        w = self.settings.theta_weight
        if w:
            s = (1 - w) * s + w * self._theta(series, ends, s.shape[1])
        return self.tf.from_stage1(s, series, ends)

    def _theta(self, series, ends, horizon):
        """The Theta method's stage-1 forecasts (B, horizon) from each row's stage-1 history
        (rows first - lags .. ends - 1 of its series), in chunks of PREDICT_BYTES."""
        start = self.panel.indptr[series] + self.first[series] - self.tf.lags[series]
        n = np.maximum(ends - (self.first[series] - self.tf.lags[series]), 1)
        out = np.empty((len(series), horizon))
        T = int(n.max()) if len(n) else 1
        chunk = max(1, PREDICT_BYTES // (T * 8 * 6))  # the history and prep.theta's sums
        for lo in range(0, len(series), chunk):
            sl = slice(lo, lo + chunk)
            k = n[sl]
            T = int(k.max())
            idx = start[sl, None] + np.minimum(np.arange(T)[None, :], k[:, None] - 1)
            out[sl] = prep.theta(self._S1[idx], k, horizon)
        return out

    # -- calibration --
    def _calibration_rows(self):
        """(series, origins, stop) of every calibration forecast: the origins of each
        series' validation span (or the last ``calibration`` origins), each forecasting up
        to its training end. Beyond CALIBRATION_ROWS in all, each series keeps k origins
        spread evenly over its span (the first kept, so every step is calibrated)."""
        st, W = self.settings, self.settings.window
        n = len(self.panel)
        k = self.n_valid if st.calibration is None else np.full(n, st.calibration)
        lo = np.maximum(self.first + W + 1, self.n_train - k)
        span = np.maximum(self.n_train - lo, 0)
        keep = max(1, CALIBRATION_ROWS // max(1, n))
        counts = np.minimum(span, keep)
        series = np.repeat(np.arange(n), counts)
        j = _ranges(counts)
        c = np.repeat(counts, counts)
        step = np.where(c > 1, (np.repeat(span, counts) - 1) / np.maximum(c - 1, 1), 0)
        origins = np.repeat(lo, counts) + np.floor(j * step).astype(np.int64)
        return series, origins, self.n_train[series]

    def _calibrate(self):
        """Split-conformal scores per horizon step h: |actual - forecast| over the series'
        naive scale, from every calibration origin at once (one engine call per step). Stored
        sorted and flat (``scores``, ``score_ptr``), so nothing grows with the series but
        array lengths."""
        p = self.panel
        self.scales = self._scales(self.n_train)
        series, origins, stop = self._calibration_rows()
        if not len(series):
            self.scores, self.score_ptr = np.zeros(0), np.zeros(1, np.int64)
            return
        H = int((stop - origins).max())
        f = self._forecast_values(series, origins, H, steps=stop - origins)
        k = np.arange(H)
        ok = k[None, :] < (stop - origins)[:, None]
        actual = p.y[np.minimum(p.indptr[series][:, None] + origins[:, None] + k[None, :],
                                len(p.y) - 1)]
        s = self.scales[series]
        s = np.where(s > 0, s, 1.0)
        sc = np.abs(actual - f) / s[:, None]
        per = [np.sort(sc[ok[:, h], h]) for h in range(H)]
        self.scores = np.concatenate(per)
        self.score_ptr = np.concatenate([[0], np.cumsum([len(v) for v in per])]).astype(np.int64)

    def _scales(self, ends):
        """Each series' naive scale (MASE's denominator) over its first ``ends`` rows."""
        p, m = self.panel, self.baseline_season
        out = np.empty(len(p))
        for i in range(len(p)):
            out[i] = naive_scale(self._history(i, ends[i]), m)
        return np.nan_to_num(out, nan=0.0)

    def quantiles(self, level) -> np.ndarray:
        """Per horizon step, the conformal quantile at ``level`` percent of the scores: the
        ceil((n + 1) * level / 100)-th smallest of n (the largest when that rank exceeds n).
        Widths never shrink with h and stay at the last calibrated step's beyond it."""
        check_level(level)
        qs = []
        for h in range(len(self.score_ptr) - 1):
            s = self.scores[self.score_ptr[h]:self.score_ptr[h + 1]]
            n = len(s)
            k = math.ceil((n + 1) * level / 100) - 1
            qs.append(float(s[min(k, n - 1)]) if n else (qs[-1] if qs else float("inf")))
        return np.maximum.accumulate(np.array(qs)) if qs else np.array([float("inf")])

    def _fallbacks(self):
        """True where seasonal naive forecasts the validation span (from its start) with a
        smaller mean absolute error than the model does."""
        sel = np.flatnonzero(self.n_valid)
        ends = self.n_train[sel] - self.n_valid[sel]
        h = int(self.n_valid[sel].max())
        self.fallback = np.zeros(len(self.panel), bool)
        f = self._forecast_values(sel, ends, h)
        out = np.zeros(len(self.panel), bool)
        for b, i in enumerate(sel):
            nv = self.n_valid[i]
            actual = self._history(i, ends[b] + nv)[ends[b]:]
            naive = seasonal_naive(self._history(i, ends[b]), nv, self.baseline_season)
            out[i] = np.mean(np.abs(naive - actual)) < np.mean(np.abs(f[b, :nv] - actual))
        return out

    # -- forecasting --
    def predict(self, horizon: int, future=None, level=None, at_end=None):
        """The next ``horizon`` steps of every series: a DataFrame with unique_id, ds, yhat
        and, per level (default: the settings' levels), yhat-lo-L / yhat-hi-L. After the
        training part, or with ``at_end`` (the default when there is no holdout, or for a
        loaded model) after the end of the data. ``future``: the covariates of the next
        steps (a table: unique_id, ds and the covariate columns)."""
        if not self.members:
            raise RuntimeError("fit() or Forecaster.load() first")
        check_horizon(horizon)
        p = self.panel
        if at_end is None:  # future covariates continue the data's end
            at_end = future is not None or self.holdout == 0 or getattr(self, "loaded", False)
        held = 0 if at_end else self.holdout
        fut = None
        if future is not None and not p.exog_names:
            raise ConfigError("future covariates go to a model trained with covariates "
                              "(--exog); this one has none: drop --future")
        if p.exog_names:
            if future is None and held < horizon:
                raise DataError(f"the model reads covariates {', '.join(p.exog_names)}: their "
                                f"values for the next {horizon} steps are needed; pass --future "
                                "FILE (future=...)")
            if future is not None:
                if held:
                    raise ConfigError("future covariates continue the data's end: predict with "
                                      "at_end=True")
                fut = self.future_covariates(future, horizon)
        series = np.arange(len(p))
        ends = np.diff(p.indptr) - held
        f = self._forecast_values(series, ends, horizon, fut)
        return self._frame(series, ends, f, level)

    def future_covariates(self, source, horizon) -> np.ndarray:
        """(series, horizon, e) covariates of every series' next ``horizon`` steps from a
        long table (unique_id, ds and the covariate columns); every step must be there."""
        import pandas as pd

        p = self.panel
        t = read(source, id_column="unique_id", time_column="ds",
                 value_column=p.exog_names[0], exog=p.exog_names[1:], freq=p.freq) \
            if not isinstance(source, Panel) else source
        out = np.full((len(p), horizon, len(p.exog_names)), np.nan)
        pos = {sid: k for k, sid in enumerate(t.ids)}
        steps = calendar.step_dates(p.last_dates(), horizon, p.freq)
        for i, sid in enumerate(p.ids):
            k = pos.get(sid)
            if k is None:
                raise DataError(f"the future covariates have no series {str(sid)!r}; give its next "
                                f"{horizon} steps")
            r = t.rows(k)
            vals = np.concatenate([t.y[r][:, None], t.exog[r]], axis=1)
            where = pd.Index(t.ds[r]).get_indexer(steps[i])
            if (where < 0).any():
                j = int(np.flatnonzero(where < 0)[0])
                raise DataError(f"no covariates for series {str(sid)!r} at "
                                f"{calendar.stamp(steps[i][j])} (step {j + 1} of {horizon}); "
                                f"give every future step up to {calendar.stamp(steps[i][-1])}")
            out[i] = vals[where]
        return out

    def _dates(self, series, ends, horizon):
        """(B, horizon) dates of the forecast steps (ISO stamps), or step numbers."""
        p = self.panel
        if p.ds is None:
            return ends[:, None] + np.arange(horizon)[None, :]
        return calendar.step_dates(p.ds[p.indptr[series] + ends - 1], horizon, p.freq)

    def _frame(self, series, ends, f, levels=None):
        import pandas as pd

        B, h = f.shape
        d = {"unique_id": np.repeat(self.panel.ids[series], h),
             "ds": self._dates(series, ends, h).reshape(-1), "yhat": f.reshape(-1)}
        for lv in levels or self.settings.levels:
            w = self._width(lv, h)[None, :] * self.scales[series][:, None]
            with np.errstate(invalid="ignore", over="ignore"):  # a diverged run's inf
                d[f"yhat-lo-{_lv(lv)}"] = (f - w).reshape(-1)
                d[f"yhat-hi-{_lv(lv)}"] = (f + w).reshape(-1)
        return pd.DataFrame(d)

    def baseline_frame(self, horizon, max_series=None):
        """The baseline's forecast of the holdout (unique_id, ds, y) for the first
        ``max_series`` series (for plots)."""
        import pandas as pd

        p = self.panel
        k = len(p) if max_series is None else min(max_series, len(p))
        series = np.arange(k)
        ends = np.diff(p.indptr)[:k] - self.holdout
        y = [seasonal_naive(self._history(i, ends[i]), horizon, self.baseline_season)
             for i in series]
        return pd.DataFrame({"unique_id": np.repeat(p.ids[:k], horizon),
                             "ds": self._dates(series, ends, horizon).reshape(-1),
                             "y": np.concatenate(y) if y else np.zeros(0)})

    def _width(self, lv, h):
        q = self.quantiles(lv)
        return q[np.minimum(np.arange(h), len(q) - 1)]

    # -- evaluation --
    def score(self, held: int, horizon: int, window: int = 0) -> list:
        """Forecast ``horizon`` steps from ``held`` rows before each series' end (the true
        history before) and score them: one row per series with the model's and the
        baseline's metrics (MASE scaled by the series' own past) and interval coverage."""
        p = self.panel
        series = np.arange(len(p))
        ends = np.diff(p.indptr) - held
        f = self._forecast_values(series, ends, horizon)
        levels = self.settings.levels
        widths = {lv: self._width(lv, horizon) for lv in levels}
        scales = self._scales(ends)
        rows = []
        stamps = self._cutoffs(series, ends)
        for i in series:
            actual = self._history(i, ends[i] + horizon)[ends[i]:]
            fi = f[i, :len(actual)]
            past = self._history(i, ends[i])
            s = scales[i]
            cov = {}
            for lv in levels:
                w = widths[lv][:len(actual)] * self.scales[i]
                with np.errstate(invalid="ignore", over="ignore"):  # a diverged run's inf
                    cov[lv] = float(np.mean((actual >= fi - w) & (actual <= fi + w)))
            rows.append({"window": window, "unique_id": str(p.ids[i]), "cutoff": stamps[i],
                         "model": metrics(actual, fi, s),
                         "baseline": metrics(actual, seasonal_naive(past, len(actual),
                                                                    self.baseline_season), s),
                         "coverage": cov, "forecast": fi.tolist()})
        return rows

    def _cutoffs(self, series, ends):
        p = self.panel
        if p.ds is None:
            return [str(int(e) - 1) for e in ends]
        return [calendar.stamp(t) for t in p.ds[p.indptr[series] + ends - 1]]

    def evaluate_holdout(self) -> dict:
        """The holdout forecast, scored per series and overall (as one backtest window); for
        classify-change also the class accuracy and confusion (``classes``)."""
        if not self.holdout:
            raise ConfigError("evaluation needs a holdout: fit with holdout > 0")
        res = self._result(self.score(self.holdout, self.holdout), self.holdout, self.holdout,
                           False)
        if self.settings.task == "classify-change":
            res["classes"] = self.classify_holdout()
        return res

    def _result(self, rows, horizon, step, refit):
        return {"windows": rows, "overall": _overall(rows, self.settings.levels),
                "horizon": horizon, "step": step, "refit": refit, "season": self.season,
                "baseline": self.baseline_name}

    def classify_holdout(self) -> dict:
        """classify-change: the class of each held-out change predicted one step ahead from
        the true history (the members' mean logits), its accuracy, the confusion matrix
        (rows: true class, columns: predicted) and the accuracy of always predicting the
        training part's most frequent class, over every series."""
        p, h = self.panel, self.holdout
        lengths = np.diff(p.indptr)
        series = np.repeat(np.arange(len(p)), h)
        ends = np.repeat(lengths - h, h) + np.tile(np.arange(h), len(p))
        be, W = self.trainer.backend, self.settings.window
        rows = (p.indptr[series] + ends)[None, :] + np.arange(-W, 0)[:, None]
        x = np.ascontiguousarray(self._A[rows].astype(self.settings.dtype))
        logits = 0
        for params in self.members:
            be.load(params, None)
            logits = logits + np.asarray(be.predict(x))[-1].astype(np.float64)
        pred = np.argmax(logits, axis=1)
        true = self._Z[p.indptr[series] + ends].astype(np.int64)
        conf = np.zeros((3, 3), np.int64)
        np.add.at(conf, (true, pred), 1)
        group, pos = prep.group_of(p.indptr), prep.positions(p.indptr)
        tr = (pos >= 1) & (pos < self.n_train[group])
        majority = int(np.bincount(self._Z[tr].astype(np.int64), minlength=3).argmax())
        return {"accuracy": float(np.mean(pred == true)), "confusion": conf.tolist(),
                "predicted": pred.tolist(), "actual": true.tolist(),
                "centroids": self.centroids.tolist(), "majority_class": majority,
                "majority_accuracy": float(np.mean(true == majority))}

    # -- backtesting --
    def backtest(self, data, horizon: int, windows: int = 3, step: int | None = None,
                 refit: bool = True):
        """Rolling-origin evaluation: ``windows`` windows of ``horizon`` steps, the last
        ending at each series' end, origins ``step`` apart (default: horizon). With
        ``refit`` the model is trained again before each window on everything before it;
        otherwise once, and later windows are forecast from the true history. A DataFrame
        with one row per window and series; the whole result is in ``.attrs["backtest"]``."""
        import pandas as pd

        res = self.backtest_result(data, horizon, windows, step, refit)
        rows = [{"window": r["window"], "unique_id": r["unique_id"], "cutoff": r["cutoff"],
                 **r["model"], **{f"baseline_{k}": v for k, v in r["baseline"].items()},
                 **{f"coverage_{lv}": c for lv, c in r["coverage"].items()}}
                for r in res["windows"]]
        out = pd.DataFrame(rows)
        out.attrs["backtest"] = res
        return out

    def backtest_result(self, data, horizon, windows=3, step=None, refit=True) -> dict:
        step = step or horizon
        for name, v in (("horizon", horizon), ("windows", windows), ("step", step)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"backtest {name} must be a positive integer, got {v!r}")
        panel = data if isinstance(data, Panel) else self.read(data)
        rows, model = [], None
        for k in range(windows):
            held = horizon + (windows - 1 - k) * step  # rows after the origin
            if refit or model is None:
                model = self.clone(holdout=held)
                model.fit(panel)
            rows += model.score(held, horizon, k)
        return model._result(rows, horizon, step, refit)

    def clone(self, **settings) -> "Forecaster":
        """An unfitted Forecaster with these settings changed."""
        kw = {f.name: getattr(self.settings, f.name) for f in fields(ForecastSettings)}
        kw.update(settings)
        return Forecaster(backend=self.backend_name, strategy=self.strategy, device=self.device,
                          quiet=self.quiet, progress=self.progress, logger=self.logger,
                          comm=self.comm, **self.read_options, **kw)

    def skip_short(self, panel: Panel):
        """The panel without the series too short to train on, and their ids."""
        st = self.settings
        # prepare's rule: a series too short for its seasonal difference drops it, so what
        # it must hold is the skipped start, the lag-1 difference, the window and targets
        lengths = panel.lengths()
        n_train = lengths - st.holdout
        skip = (st.train_start * np.maximum(n_train, 0)).astype(np.int64)
        lag1 = int(st.diff or st.diff_nonseasonal or st.task != "regress")
        keep = np.flatnonzero(n_train - skip - lag1 >= _rows_needed(st))
        if not len(keep):
            raise DataError(f"every series is too short for window {st.window} and the last "
                            f"{st.holdout} rows held out")
        short = np.setdiff1d(np.arange(len(panel)), keep)
        return (panel.subset(keep) if len(keep) < len(panel) else panel), \
            [str(i) for i in panel.ids[short]]

    # -- checkpoints --
    def save(self, path):
        """Write the fitted (or partly trained) model, its data and its calibration as one
        checkpoint, atomically; ``load`` gives back a model that forecasts the same bits."""
        p, st = self.panel, self.settings
        data_arrays = {"ids": np.asarray(p.ids, str), "indptr": p.indptr, "y": p.y,
                       "exog": p.exog}
        if p.ds is not None:
            data_arrays["ds"] = p.ds.astype("datetime64[ns]").view(np.int64)
        data_meta = {"source": p.source, "freq": p.freq, "period": p.period,
                     "exog_names": list(p.exog_names), "fingerprint": p.fingerprint()}
        arrays = {"code": self.tf.code, "lag": self.tf.lag, "center": self.tf.center,
                  "spread": self.tf.spread, "exog_center": self.tf.exog_center,
                  "exog_spread": self.tf.exog_spread, "n_valid": self.n_valid,
                  "diff": self.tf.diff,
                  "season_index": self.tf.index if self.tf.index is not None
                  else np.zeros((len(p), 0)),
                  "floor": self.tf.floor if self.tf.floor is not None else np.zeros(len(p))}
        if self.centroids is not None:
            arrays["centroids"] = self.centroids
        # calibration forecasts that overflow (a diverged model) leave it incomplete: its
        # training state is kept, but it is never loaded as a forecaster
        done = len(self.members) == st.ensemble and hasattr(self, "scores") \
            and bool(np.isfinite(self.scores).all())
        if done:
            arrays |= {"scales": self.scales, "fallback": self.fallback, "scores": self.scores,
                       "score_ptr": self.score_ptr}
        members = []
        for m, s in enumerate(self.states):
            members.append({
                "epoch": s.epoch, "stopped": s.stopped, "best_epoch": s.best_epoch,
                "rng_state": checkpoint.rng_state(s.rng),
                "params": checkpoint.pack(f"m{m}.params", s.params, arrays),
                "opt_state": checkpoint.pack(f"m{m}.opt", s.opt_state, arrays),
                "best": None if s.best_params is None else {
                    "valid": checkpoint.pack(f"m{m}.best_valid", np.asarray(s.best_valid),
                                             arrays),
                    "params": checkpoint.pack(f"m{m}.best", s.best_params, arrays)},
                "history": {"train_loss": checkpoint.pack(f"m{m}.train_loss",
                                                          np.asarray(s.train_loss, st.dtype),
                                                          arrays),
                            "valid_loss": checkpoint.pack(f"m{m}.valid_loss",
                                                          np.asarray(s.valid_loss, st.dtype),
                                                          arrays)}})
        meta = {"settings": st.to_dict(), "model": self.model_cfg.to_dict(),
                "complete": done, "members": members,
                "backend": self.trainer.run_name if self.trainer else None}
        return checkpoint.write(path, {"data": {"meta": data_meta, "arrays": data_arrays},
                                       "model": {"meta": meta, "arrays": arrays}})

    def _resume_states(self, path) -> list:
        """The members' training states from the checkpoint at ``path``, which must hold
        this run's settings (the epochs excepted) and data."""
        if path is None:
            raise ConfigError("resume needs the checkpoint's path")
        ck = _Loaded(path)
        want = self.settings.to_dict()
        have = dict(ck.settings.to_dict(), epochs=want["epochs"])
        diff = [k for k in want if have.get(k) != want[k]]
        if diff:
            k = diff[0]
            raise checkpoint.CheckpointError(
                f"checkpoint {path} was trained with {k}={_said(k, have.get(k))}, this run "
                f"asks for {_said(k, want[k])}; use the same settings to resume, or drop "
                "--resume")
        if ck.panel.fingerprint() != self.panel.fingerprint():
            raise checkpoint.CheckpointError(
                f"checkpoint {path} was trained on other data (fingerprint mismatch); resume "
                "with the same --data, or drop --resume")
        return ck.states(self.model_cfg)

    @classmethod
    def load(cls, path, backend="auto", strategy=None, device=None, quiet=True):
        """A fitted Forecaster from a checkpoint, ready to predict (after the data's end)."""
        ck = _Loaded(path)
        if not ck.complete:
            raise checkpoint.CheckpointError(
                f"{path} holds a run that stopped before its last model finished; finish it "
                "with lockstep train --resume first")
        self = cls(backend=backend, strategy=strategy, device=device, quiet=quiet,
                   **ck.settings_kw())
        self.panel = ck.panel
        self.prepare_loaded(ck)
        return self

    from_checkpoint = load  # the old name

    def prepare_loaded(self, ck):
        """The state of a model read from a checkpoint: transforms, model rows, members."""
        st = self.settings
        p = self.panel
        self.holdout = st.holdout
        lengths = np.diff(p.indptr)
        self.n_train = lengths - st.holdout
        self.tf = ck.transforms
        lags = np.ones(len(p), np.int64) if st.task == "classify-change" else self.tf.lags
        self.first = (st.train_start * np.maximum(self.n_train, 0)).astype(np.int64) + lags
        self.n_valid = ck.n_valid
        self._model_rows(st.task == "classify-change", ck.centroids)
        if self.model_cfg != ck.model_cfg:
            raise checkpoint.CheckpointError(f"{ck.path}: field model.meta.model does not match "
                                             "the data and settings; delete it or train again")
        self.states = ck.states(self.model_cfg)
        self.trainer = self._trainer(0)
        self.members = [s.best_params if s.best_params is not None else s.params
                        for s in self.states]
        self.state = self.states[0]
        self.scales, self.fallback = ck.scales, ck.fallback
        self.scores, self.score_ptr = ck.scores, ck.score_ptr
        self.loaded = True


def _rows_needed(st) -> int:
    """Model rows a series needs: a window (one row when padded) and its targets."""
    H = st.head_steps if st.head == "direct" else 1
    return (1 if st.pad else st.window) + 1 + H


def check_horizon(horizon):
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) \
            or not 1 <= horizon <= MAX_HORIZON:
        raise ConfigError(f"horizon must be an integer in [1, {MAX_HORIZON}], got {horizon!r}")


def _said(key, v):
    """A setting's value for a message (patience None is early stopping off)."""
    return "0 (off)" if key == "patience" and v is None else repr(v)


def _ranges(counts) -> np.ndarray:
    """concatenate([arange(c) for c in counts]) without a Python loop."""
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    if not total:
        return np.zeros(0, np.int64)
    ends = np.cumsum(counts)
    return np.arange(total) - np.repeat(ends - counts, counts)


def _spread(idx, k):
    """At most k of the indices ``idx``, spread evenly (the first and last kept)."""
    if len(idx) <= k:
        return idx
    return idx[np.unique(np.linspace(0, len(idx) - 1, k).round().astype(np.int64))]


def _overall(rows, levels):
    """Means over every (window, series) of each metric, and of interval coverage."""
    keys = rows[0]["model"].keys()
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a metric NaN for every series
            mean = lambda who, k: float(np.nanmean([r[who][k] for r in rows]))  # noqa: E731
            return {"model": {k: mean("model", k) for k in keys},
                    "baseline": {k: mean("baseline", k) for k in keys},
                    "coverage": {lv: float(np.mean([r["coverage"][lv] for r in rows]))
                                 for lv in levels}}


# ---- reading a checkpoint ------------------------------------------------------------------

class _Loaded:
    """A checkpoint read by ``checkpoint.read`` and validated field by field: the ``data``
    section (the panel) and the ``model`` section (settings, per-series state as arrays,
    members, calibration), with semantic bounds (a window the data can hold, finite
    transform parameters of sane magnitude). Any failure is one CheckpointError line."""

    def __init__(self, path):
        self.path = path
        ck = checkpoint.read(path)
        secs = ck["sections"]
        if set(secs) != {"data", "model"}:
            raise checkpoint.CheckpointError(
                f"{path} holds sections {', '.join(sorted(secs)) or 'none'}, not a forecaster's "
                "(data, model); it is not a lockstep model")
        self._data(secs["data"])
        self._model(secs["model"])

    def _data(self, sec):
        f = checkpoint.Fields(self.path, "data", sec["arrays"])
        m = f.dict(sec["meta"], "meta", ("source", "freq", "period", "exog_names",
                                         "fingerprint"))
        ids = f.array("ids", kind="U", ndim=1)
        n = len(ids)
        if n < 1 or len(np.unique(ids)) != n:
            f.fail("ids", "must name one or more series, each once")
        ip = f.array("indptr", dtype=np.int64, kind="i", shape=(n + 1,))
        if ip[0] != 0 or (np.diff(ip) < 1).any():
            f.fail("indptr", "must start at 0 and grow by at least 1 per series")
        y = f.array("y", dtype=np.float64, shape=(int(ip[-1]),))
        if (np.abs(y) > MAX_ABS).any():
            f.fail("y", f"holds values beyond +-{MAX_ABS:g}")
        names = m["exog_names"]
        if not (isinstance(names, list) and all(isinstance(x, str) and len(x) <= 4096
                                                for x in names)):
            f.fail("meta.exog_names", "must be a list of strings")
        ex = f.array("exog", dtype=np.float64, shape=(len(y), len(names)))
        freq = m["freq"]
        if freq is not None:
            f.str(freq, "meta.freq", 40)
            try:
                calendar.check_freq(freq)
            except DataError:
                f.fail("meta.freq", "is not a frequency")
        ds = None
        if "ds" in sec["arrays"]:
            if freq is None:
                f.fail("ds", "needs meta.freq")
            ds = f.array("ds", dtype=np.int64, kind="i", shape=(len(y),)).view("datetime64[ns]")
        elif freq is not None:
            f.fail("ds", "is missing (meta.freq names a frequency)")
        period = m["period"]
        if period is not None:
            f.int(period, "meta.period", 0, 1 << 20)
        self.panel = Panel(ids, ip, y, ds, ex, tuple(names), freq,
                           f.str(m["source"], "meta.source"), period)
        if self.panel.fingerprint() != f.str(m["fingerprint"], "meta.fingerprint", 64):
            f.fail("meta.fingerprint", "does not match the data stored")

    def _model(self, sec):
        f = checkpoint.Fields(self.path, "model", sec["arrays"])
        self._f = f
        m = f.dict(sec["meta"], "meta", ("settings", "model", "complete", "members", "backend"))
        st = f.dataclass(ForecastSettings, _settings_in(m["settings"]), "meta.settings")
        self.settings = st
        mc = f.dataclass(ModelConfig, m["model"], "meta.model")
        self.model_cfg = mc
        p = self.panel
        n, lengths = len(p), p.lengths()
        if st.window > lengths.max():
            f.fail("meta.settings.window", f"is {st.window}, longer than any series stored")
        if st.holdout >= lengths.min():
            f.fail("meta.settings.holdout", "leaves a series without training rows")
        if (mc.hidden_size, mc.num_layers, mc.init) != (st.hidden_size, st.num_layers, st.init):
            f.fail("meta.model", "does not match meta.settings (hidden_size, num_layers, init)")
        self.complete = f.bool(m["complete"], "meta.complete")
        code = f.array("code", kind="i", shape=(n,), dtype=np.int8)
        if ((code < 0) | (code > 2)).any():
            f.fail("code", "must hold transform codes 0, 1 or 2")
        lag = f.array("lag", kind="i", shape=(n,), dtype=np.int64)
        if ((lag < 0) | (lag == 1) | (lag > lengths)).any():
            f.fail("lag", "must hold seasonal lags 0 or >= 2 within each series")
        diff = f.array("diff", kind="b", shape=(n,), dtype=np.bool_)
        if st.task != "regress":
            want = np.zeros(n, bool)  # classify-change reads the classes of the changes
        else:
            want = np.full(n, st.diff) | (st.diff_nonseasonal & (lag == 0))
        if (diff != want).any():
            f.fail("diff", "does not match meta.settings (diff, diff_nonseasonal) and the lags")
        arrs = {}
        for k, shape in (("center", (n,)), ("spread", (n,)),
                         ("exog_center", (n, len(p.exog_names))),
                         ("exog_spread", (n, len(p.exog_names)))):
            a = f.array(k, dtype=np.float64, shape=shape)
            if (np.abs(a) > MAX_ABS).any() or (k.endswith("spread") and (a <= 0).any()):
                f.fail(k, f"must be finite{' and positive' if 'spread' in k else ''} and within "
                       f"+-{MAX_ABS:g}")
            arrs[k] = a
        floor = f.array("floor", dtype=np.float64, shape=(n,))
        if ((code == 1) & ~(floor > 0)).any() or ((code == 2) & ~(floor > -1)).any():
            f.fail("floor", "must be above each series' transform's domain edge (0 for log, "
                   "-1 for log1p)")
        index = f.array("season_index", dtype=np.float64, ndim=2)
        if index.shape[0] != n or index.shape[1] not in (0, self._season(st, p)) \
                or (np.abs(index) > 1e3).any() or (st.seasonality == "difference"
                                                   and index.shape[1]):
            f.fail("season_index", "must hold one row of seasonal indices (of sane size) per "
                   "series, for seasonality indices only")
        self.transforms = prep.Transforms(code, diff, lag, arrs["center"], arrs["spread"],
                                          arrs["exog_center"], arrs["exog_spread"], st.scale,
                                          floor, index if index.shape[1] else None)
        self.n_valid = f.array("n_valid", dtype=np.int64, kind="i", shape=(n,))
        if ((self.n_valid < 0) | (self.n_valid >= lengths)).any():
            f.fail("n_valid", "must be in [0, rows) per series")
        self.centroids = None
        if st.task == "classify-change":
            self.centroids = f.array("centroids", dtype=np.float64, shape=(n, 3))
            if not (np.diff(self.centroids, axis=1) > 0).all():
                f.fail("centroids", "must be three increasing values per series")
        if self.complete:
            self.scales = f.array("scales", dtype=np.float64, shape=(n,))
            if (self.scales < 0).any():
                f.fail("scales", "must be non-negative")
            self.fallback = f.array("fallback", dtype=np.bool_, kind="b", shape=(n,))
            ptr = f.array("score_ptr", dtype=np.int64, kind="i", ndim=1)
            sc = f.array("scores", dtype=np.float64, ndim=1)
            if len(ptr) < 1 or ptr[0] != 0 or (np.diff(ptr) < 0).any() or ptr[-1] != len(sc):
                f.fail("score_ptr", "must index the scores from 0 to their end")
            if (sc < 0).any() or any((np.diff(sc[a:b]) < 0).any()
                                     for a, b in zip(ptr[:-1], ptr[1:])):
                f.fail("scores", "must be sorted non-negative values per step")
            self.scores, self.score_ptr = sc, ptr
        mem = m["members"]
        if not isinstance(mem, list) or not 1 <= len(mem) <= st.ensemble \
                or (self.complete and len(mem) != st.ensemble):
            f.fail("meta.members", f"must hold 1 to {st.ensemble} members "
                   f"({st.ensemble} when complete)")
        self._members = mem
        if m["backend"] is not None:
            f.str(m["backend"], "meta.backend", 200)

    @staticmethod
    def _season(st, p):
        return (p.season if st.season is None else st.season) or 0

    def settings_kw(self):
        return self.settings.to_dict()

    def states(self, model_cfg) -> list:
        """The members' TrainStates, each field checked (shapes from ``model_cfg``)."""
        f, st, mc = self._f, self.settings, model_cfg
        dt = np.dtype(st.dtype)
        H, I, O = mc.hidden_size, mc.input_size, mc.output_size
        shapes = {}
        for l in range(mc.num_layers):
            n_ih, n_hh, n_b = reference.layer_names(l)
            shapes |= {n_ih: (4 * H, I if l == 0 else H), n_hh: (4 * H, H), n_b: (4 * H,)}
        shapes |= {"W_out": (O, H), "b_out": (O,)}
        out = []
        for k, v in enumerate(self._members):
            fld = f"meta.members.{k}"
            f.dict(v, fld, ("epoch", "stopped", "best_epoch", "rng_state", "params",
                            "opt_state", "best", "history"))
            epoch = f.int(v["epoch"], f"{fld}.epoch", 0, 10_000_000)
            if v["stopped"] not in (None, "completed", "early-stop", "diverged"):
                f.fail(f"{fld}.stopped", "must be null, completed, early-stop or diverged")
            params = self._params(v["params"], f"{fld}.params", shapes, dt)
            opt = self._opt(v["opt_state"], f"{fld}.opt_state", shapes, dt)
            checkpoint.check_rng_state(f, v["rng_state"], f"{fld}.rng_state")
            h = f.dict(v["history"], f"{fld}.history", ("train_loss", "valid_loss"))
            tl = self._array(h["train_loss"], f"{fld}.history.train_loss", dt, (epoch,))
            vl = self._array(h["valid_loss"], f"{fld}.history.valid_loss", dt, None)
            if vl.ndim != 1 or len(vl) not in (0, epoch):
                f.fail(f"{fld}.history.valid_loss", f"must hold 0 or {epoch} values")
            s = TrainState(params=params, opt_state=opt,
                           rng=checkpoint.rng_from_state(v["rng_state"]), epoch=epoch,
                           train_loss=list(tl), valid_loss=list(vl), stopped=v["stopped"])
            if v["best"] is not None:
                b = f.dict(v["best"], f"{fld}.best", ("valid", "params"))
                s.best_epoch = f.int(v["best_epoch"], f"{fld}.best_epoch", 1, max(1, epoch))
                s.best_valid = self._array(b["valid"], f"{fld}.best.valid", dt, ())[()]
                s.best_params = self._params(b["params"], f"{fld}.best.params", shapes, dt)
            out.append(s)
        return out

    def _array(self, ref, field, dtype, shape):
        a = checkpoint.unpack(ref, self._f.arrays, self._f, field)
        a = np.asarray(a) if isinstance(a, (np.ndarray, np.generic)) else a
        if not isinstance(a, np.ndarray) or a.dtype != dtype or \
                (shape is not None and a.shape != tuple(shape)) or not np.isfinite(a).all():
            self._f.fail(field, f"must be a finite {dtype} array"
                         + (f" of shape {tuple(shape)}" if shape is not None else ""))
        return a

    def _params(self, ref, field, shapes, dt):
        return self._check_tree(checkpoint.unpack(ref, self._f.arrays, self._f, field), field,
                                shapes, dt)

    def _check_tree(self, tree, field, shapes, dt):
        if not isinstance(tree, dict) or set(tree) != set(shapes):
            self._f.fail(field, f"must hold {', '.join(shapes)}")
        for k, shape in shapes.items():
            a = tree[k]
            if not isinstance(a, np.ndarray) or a.dtype != dt or a.shape != shape \
                    or not np.isfinite(a).all():
                self._f.fail(f"{field}.{k}", f"must be a finite {dt} array of shape {shape}")
        return {k: tree[k] for k in shapes}

    def _opt(self, ref, field, shapes, dt):
        f, st = self._f, self.settings
        tree = checkpoint.unpack(ref, f.arrays, f, field)
        if tree is None:
            return None
        keys = ("step", "b1_pow", "b2_pow", "m", "v") if st.optimizer == "adam" else \
            (("step", "velocity") if st.momentum else ("step",))
        f.dict(tree, field, keys)
        step = tree["step"]
        step = int(step) if isinstance(step, np.integer) else step
        out = {"step": f.int(step, f"{field}.step", 0, 1 << 62)}
        for k in ("b1_pow", "b2_pow"):
            if k in keys:
                a = tree[k]
                if not isinstance(a, (np.ndarray, np.generic)) or a.dtype != dt \
                        or np.shape(a) != () or not 0 <= a <= 1:
                    f.fail(f"{field}.{k}", "must be a scalar in [0, 1]")
                out[k] = np.asarray(a)[()]
        for k in ("m", "v", "velocity"):
            if k in keys:
                out[k] = self._check_tree(tree[k], f"{field}.{k}", shapes, dt)
        return out


def _settings_in(d):
    """Settings from JSON: levels back to a tuple."""
    if isinstance(d, dict) and isinstance(d.get("levels"), list):
        d = dict(d, levels=tuple(d["levels"]))
    if isinstance(d, dict) and "running_mean" not in d:  # saved before the input existed
        d = dict(d, running_mean=False)
    if isinstance(d, dict) and "theta_weight" not in d:  # saved before the Theta mix
        d = dict(d, theta_weight=0.0)
    return d
