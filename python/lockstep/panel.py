"""Many series, one global model: long or wide tables with dates, calendar and known-in-advance
covariates, conformal prediction intervals and rolling-origin backtests.

The LSTM never sees more than windows of numbers: each series is transformed on its own
training part (``prep.Pipeline``), covariates become extra input features, and the windows of
all series are pooled. So every backend trains it with the same bits, as any other model.

Input is pandas, in long form (``unique_id``, ``ds``, ``y`` plus covariate columns; the names
are settable) or wide form (a time column and one column per series). Problems name the series
and the rows, and say how to fix them (``DataError``).
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import forecast, reference
from .config import MAX_HORIZON, ConfigError, ModelConfig
from .data import DataError, prep
from .forecast import ForecastSettings, default_valid_size
from .train import Trainer

LEVELS_MAX = 99.9  # a level must leave some probability outside the interval


def _pd():
    try:
        import pandas as pd
    except ImportError as e:  # pragma: no cover - pandas is a dependency
        raise DataError(f"many-series input needs pandas ({e}); pip install pandas") from None
    return pd


# ---- frequencies -----------------------------------------------------------------------------

# pandas offset name prefix -> (seasonal period, what to call it, calendar position of a stamp)
_FREQS = (
    ("Q", 4, "quarterly", lambda d: d.quarter - 1),
    ("M", 12, "monthly", lambda d: d.month - 1),
    ("W", 52, "weekly", lambda d: np.minimum(d.isocalendar().week.to_numpy() - 1, 51)),
    ("B", 5, "business-daily", lambda d: d.day_of_week),
    ("D", 7, "daily", lambda d: d.day_of_week),
    ("h", 24, "hourly", lambda d: d.hour),
    ("H", 24, "hourly", lambda d: d.hour),
    ("Y", 0, "yearly", None),
    ("A", 0, "yearly", None),
)


_QUARTER = re.compile(r"^\d{4}-?Q[1-4]$")


def to_datetime(values, errors="raise"):
    """pandas.to_datetime, with ISO quarters ("2015-Q1", which pandas 3 no longer parses as
    dates) read as the first day of the quarter, and no "could not infer format" warning
    (element-wise parsing is what we want)."""
    pd = _pd()
    v = pd.Series(values)
    text = v.astype(str)
    quarters = (text.str.match(_QUARTER) & v.notna()).to_numpy()
    out = np.full(len(v), np.datetime64("NaT"), "datetime64[ns]")
    if quarters.any():
        out[quarters] = pd.PeriodIndex(text[quarters].str.replace("-", ""), freq="Q") \
            .to_timestamp().to_numpy()
    if (~quarters).any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out[~quarters] = pd.to_datetime(v[~quarters], errors=errors).to_numpy(
                "datetime64[ns]")
    return pd.Series(out, index=v.index)


def stamp(t) -> str:
    """A timestamp for people: the date alone at midnight."""
    return str(t.date()) if t == t.normalize() else str(t)


def _freq_info(freq: str):
    """(period, name, position function) of a pandas frequency string ('MS', 'QS-OCT', ...)."""
    for prefix, period, name, pos in _FREQS:
        if freq.startswith(prefix):
            return period, name, pos
    return 0, freq, None


def season_of(freq: str) -> int:
    """The seasonal period of a frequency: monthly 12, quarterly 4, weekly 52, daily 7,
    business-daily 5, hourly 24, yearly and others 0 (none)."""
    return _freq_info(freq)[0]


def calendar_features(ds, freq: str) -> np.ndarray:
    """(n, 2): sin and cos of the position in the season (month of the year, quarter, week,
    day of the week, hour of the day); (n, 0) when the frequency has no season."""
    period, _, pos = _freq_info(freq)
    pd = _pd()
    if not period or pos is None:
        return np.zeros((len(ds), 0))
    p = np.asarray(pos(pd.DatetimeIndex(ds)), np.float64)
    a = 2 * math.pi * p / period
    return np.stack([np.sin(a), np.cos(a)], axis=1)


# ---- the data --------------------------------------------------------------------------------

@dataclass
class Panel:
    """Series keyed by id, each a float64 target ``y``, its timestamps ``ds`` and covariate
    columns ``exog`` (n, e), all at one regular frequency ``freq``."""

    ids: list
    ds: dict
    y: dict
    exog: dict
    exog_names: list
    freq: str
    source: str = ""

    @property
    def season(self) -> int:
        return season_of(self.freq)

    def __len__(self):
        return len(self.ids)

    def lengths(self):
        return {i: len(self.y[i]) for i in self.ids}

    def fingerprint(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for i in self.ids:
            h.update(str(i).encode() + b"\0")
            h.update(np.ascontiguousarray(self.y[i]).tobytes())
            h.update(np.ascontiguousarray(self.exog[i]).tobytes())
        return h.hexdigest()

    def truncated(self, drop_last: int) -> "Panel":
        """The panel without each series' last ``drop_last`` rows (a backtest's past)."""
        cut = lambda a: a[:len(a) - drop_last]  # noqa: E731
        return replace(self, ds={i: cut(self.ds[i]) for i in self.ids},
                       y={i: cut(self.y[i]) for i in self.ids},
                       exog={i: cut(self.exog[i]) for i in self.ids})

    def to_frame(self):
        pd = _pd()
        parts = []
        for i in self.ids:
            d = {"unique_id": i, "ds": self.ds[i], "y": self.y[i]}
            d.update({n: self.exog[i][:, j] for j, n in enumerate(self.exog_names)})
            parts.append(pd.DataFrame(d))
        return pd.concat(parts, ignore_index=True)


def from_series(series) -> Panel:
    """A ``data.Series`` (a bundled series or a one-table CSV) as a panel: one series per
    column, its time labels parsed as dates."""
    pd = _pd()
    if not series.time:
        raise DataError(f"{series.source or 'the series'} has no time column: many-series "
                        "models need dates")
    df = pd.DataFrame({"ds": series.time})
    for j, name in enumerate(series.names):
        df[name] = series.values[:, j]
    p = read_panel(df)
    return replace(p, source=series.source or p.source)


def read_csv(path):
    """pandas.read_csv with decimal -> binary exact (round trip): pandas 3's default, an
    option before it."""
    pd = _pd()
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    return pd.read_csv(path, **exact)


def infer_freq(t):
    """pandas.infer_freq as a frequency string (pandas 3 moves towards offsets), or None."""
    pd = _pd()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        f = pd.infer_freq(t)
    return None if f is None else pd.tseries.frequencies.to_offset(f).freqstr


def read_table(source):
    """A DataFrame from a DataFrame, a .csv or a .parquet path."""
    pd = _pd()
    if isinstance(source, pd.DataFrame):
        return source.copy(), "the DataFrame"
    p = Path(source)
    if not p.is_file():
        raise DataError(f"no data file at {p}; give a CSV or Parquet file")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(p), str(p)
        return read_csv(p), str(p)
    except ImportError as e:
        raise DataError(f"reading {p} needs {e.name or 'a Parquet engine'}: pip install pyarrow, "
                        "or give a CSV file") from None
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {p}: {str(e).splitlines()[0]}; give a CSV or Parquet "
                        "file") from None


def read_panel(source, id_column="unique_id", time_column="ds", value_column="y", exog=(),
               freq=None) -> Panel:
    """Series from a long table (id, time, value and covariate columns) or, when it has no id
    column, a wide one (the time column and one numeric column per series). Timestamps must be
    unique and regular within each series, with one frequency for all (inferred unless
    ``freq`` is given)."""
    pd = _pd()
    df, where = read_table(source)
    cols = [str(c) for c in df.columns]
    df.columns = cols
    exog = [e for e in exog if e]
    if time_column not in cols:
        raise DataError(f"{where} has no time column {time_column!r}; columns are "
                        f"{', '.join(cols[:20])} (set --time-column)")
    if id_column not in cols:  # wide: one series per value column
        if exog:
            raise DataError(f"{where} is wide (no id column {id_column!r}): covariates need the "
                            "long form (unique_id, ds, y, covariates); set --id-column")
        value_cols = [c for c in cols if c != time_column]
        if not value_cols:
            raise DataError(f"{where} has only the time column; add value columns")
        df = df.melt(id_vars=[time_column], value_vars=value_cols, var_name=id_column,
                     value_name=value_column)
        # series of different lengths leave empty cells before their start and after their
        # end; an empty cell inside a series is refused below
        has = pd.to_numeric(df[value_column], errors="coerce").notna()
        g = has.groupby(df[id_column])
        df = df[(g.cummax() & g.transform(lambda v: v[::-1].cummax()[::-1])).to_numpy()]
    elif value_column not in cols:
        raise DataError(f"{where} has no value column {value_column!r}; columns are "
                        f"{', '.join(cols[:20])} (set --value-column)")
    missing = [e for e in exog if e not in df.columns]
    if missing:
        raise DataError(f"{where} has no covariate column {', '.join(map(repr, missing))}; "
                        f"columns are {', '.join(cols[:20])}")
    try:
        stamps = to_datetime(df[time_column])
    except (ValueError, TypeError) as e:
        bad = to_datetime(df[time_column], errors="coerce").isna()
        row = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
        raise DataError(f"{where}: time value {str(df[time_column].iloc[row])[:40]!r} at row "
                        f"{row + 2} is not a date ({str(e).splitlines()[0][:80]}); use ISO dates "
                        "such as 2020-01-31") from None
    if stamps.isna().any():
        row = int(np.flatnonzero(stamps.isna().to_numpy())[0])
        raise DataError(f"{where}: the time column {time_column!r} is empty at row {row + 2}; "
                        "give every row its date")
    df = df.assign(**{time_column: stamps})
    df["__row"] = np.arange(len(df)) + 2  # the file's line numbers (header = line 1)
    for c in [value_column, *exog]:
        num = pd.to_numeric(df[c], errors="coerce")
        bad = num.isna() | ~np.isfinite(num.to_numpy(np.float64, na_value=np.nan))
        if bad.any():
            r = df[bad.to_numpy()].iloc[0]
            raise DataError(f"{where}: column {c!r} of series {r[id_column]!r} has no finite "
                            f"number at row {r['__row']} ({str(r[c])[:40]!r}); fill or drop it")
        df[c] = num.astype(np.float64)
    ids, ds, y, ex, freqs = [], {}, {}, {}, {}
    for key, g in df.groupby(id_column, sort=False):
        g = g.sort_values(time_column, kind="stable")
        t = pd.DatetimeIndex(g[time_column])
        dup = t.duplicated(keep=False)
        if dup.any():
            rows = g["__row"].to_numpy()[dup][:4]
            raise DataError(f"{where}: series {key!r} has the timestamp {stamp(t[dup][0])} more than "
                            f"once (rows {', '.join(map(str, rows))}); keep one row per time")
        sid = str(key)
        ids.append(sid)
        ds[sid], y[sid] = t, g[value_column].to_numpy(np.float64)
        ex[sid] = g[exog].to_numpy(np.float64).reshape(len(g), len(exog))
        freqs[sid] = (infer_freq(t) if len(t) >= 3 else None, g)
    freq = freq or _common_freq(freqs, ds, where, time_column)
    for sid in ids:
        _check_regular(sid, ds[sid], freq, freqs[sid][1], where)
    return Panel(ids, ds, y, ex, list(exog), freq, where)


def _common_freq(freqs, ds, where, time_column):
    known = {sid: f for sid, (f, _) in freqs.items() if f}
    if not known:
        raise DataError(f"{where}: cannot infer the frequency of {time_column!r} (each series "
                        "needs 3 or more regular timestamps); pass --freq (e.g. MS, D, h)")
    names = sorted(set(known.values()))
    if len(names) > 1:
        raise DataError(f"{where}: series have different frequencies ({', '.join(names)}); "
                        "give series of one frequency")
    freq = names[0]
    for sid, (f, g) in freqs.items():
        if f is None and len(ds[sid]) >= 3:  # irregular: find the first break below
            _check_regular(sid, ds[sid], freq, g, where)
    return freq


def _check_regular(sid, t, freq, g, where):
    pd = _pd()
    if len(t) < 2:
        return
    want = pd.date_range(t[0], periods=len(t), freq=freq)
    off = np.flatnonzero(want != t)
    if off.size:
        k = int(off[0])
        rows = g["__row"].to_numpy()
        raise DataError(f"{where}: series {sid!r} is not regular at frequency {freq}: "
                        f"{stamp(t[k - 1]) if k else 'the start'} is followed by {stamp(t[k])} "
                        f"(row {rows[k]}), expected {stamp(want[k])}; fill the gap or resample")


def future_frame(source, panel: Panel, horizon: int, id_column="unique_id", time_column="ds"):
    """The covariates of each series' next ``horizon`` steps from a table (long form: id,
    time and the covariate columns): {id: (horizon, e)}; every step must be there."""
    df, where = read_table(source)
    pd = _pd()
    df.columns = [str(c) for c in df.columns]
    need = [id_column, time_column, *panel.exog_names]
    miss = [c for c in need if c not in df.columns]
    if miss:
        raise DataError(f"{where} lacks the column(s) {', '.join(miss)}: the future covariates "
                        f"need {', '.join(need)}")
    df[time_column] = to_datetime(df[time_column], errors="coerce")
    df[id_column] = df[id_column].astype(str)
    for c in panel.exog_names:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    out = {}
    for sid in panel.ids:
        steps = future_dates(panel, sid, horizon)
        g = df[(df[id_column] == sid) & df[time_column].isin(steps)]
        dup = g[time_column].duplicated()
        if dup.any():
            raise DataError(f"{where}: series {sid!r} has the future step "
                            f"{stamp(g[time_column][dup].iloc[0])} more than once; keep one row")
        g = g.set_index(time_column)
        have = steps.isin(g.index)
        if not have.all():
            k = int(np.flatnonzero(~have)[0])
            raise DataError(f"{where}: no covariates for series {sid!r} at {stamp(steps[k])} "
                            f"(step {k + 1} of {horizon}); give every future step up to "
                            f"{stamp(steps[-1])}")
        vals = g.loc[steps, panel.exog_names].to_numpy(np.float64)
        if not np.isfinite(vals).all():
            raise DataError(f"{where}: series {sid!r} has a missing or non-numeric covariate in "
                            f"the next {horizon} steps; fill it")
        out[sid] = vals
    return out


def future_dates(panel: Panel, sid, horizon: int):
    pd = _pd()
    return pd.date_range(panel.ds[sid][-1], periods=horizon + 1, freq=panel.freq)[1:]


# ---- metrics ---------------------------------------------------------------------------------

def metrics(actual, predicted, scale=None) -> dict:
    """forecast.metrics (RMSE, MAE, MAPE), sMAPE (percent) and, with the in-sample naive
    scale, MASE."""
    out = forecast.metrics(actual, predicted)
    a = np.asarray(actual, np.float64).reshape(-1)
    p = np.asarray(predicted, np.float64).reshape(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        den = np.abs(a) + np.abs(p)
        out["smape"] = float(np.mean(np.where(den > 0, 2 * np.abs(p - a) / den, 0.0)) * 100)
    if scale is not None:
        out["mase"] = out["mae"] / scale if scale > 0 else float("nan")
    return out


def naive_scale(y, season: int) -> float:
    """MASE's denominator: the in-sample MAE of the seasonal-naive forecast (lag ``season``,
    or 1 when the series has no season or is too short for it)."""
    m = season if season and len(y) > season else 1
    d = np.abs(np.asarray(y)[m:] - np.asarray(y)[:-m])
    return float(d.mean()) if d.size else float("nan")


def seasonal_naive(y, horizon, season):
    """forecast.seasonal_naive of one series (plain naive when it is shorter than a season)."""
    m = season if season and len(y) >= season else 1
    return forecast.seasonal_naive(y, horizon, m)[:, 0]


# ---- the global model ------------------------------------------------------------------------

@dataclass(frozen=True)
class PanelSettings:
    """A ForecastSettings for the LSTM and its training, plus what is particular to panels."""

    base: ForecastSettings = field(default_factory=ForecastSettings)
    calendar: bool = False  # sin/cos of the position in the season as input features
    levels: tuple = (80, 95)  # default conformal interval levels (percent)
    calibration: int | None = None  # forecast origins per series for the intervals (None: auto)
    # models trained from seeds seed, seed+1, ...; forecasts averaged. Three: the seed alone
    # moved a series' backtest MASE by up to 3x (docs/results.md, accuracy)
    ensemble: int = 3
    # a series whose validation forecast loses to seasonal naive's uses seasonal naive; off:
    # on the benchmark the decision from the validation span hurt more than it helped
    fallback: bool = False

    def __post_init__(self):
        if isinstance(self.ensemble, bool) or not isinstance(self.ensemble, int) \
                or not 1 <= self.ensemble <= 100:
            raise ConfigError(f"ensemble must be an integer in [1, 100], got {self.ensemble!r}")
        for lv in self.levels:
            if isinstance(lv, bool) or not isinstance(lv, (int, float)) or not 0 < lv <= LEVELS_MAX:
                raise ConfigError(f"level must be a percentage in (0, {LEVELS_MAX}], got {lv!r}")


class GlobalForecaster:
    """One LSTM for every series of a ``Panel``: ``fit(panel)``, ``predict(h)`` (a DataFrame
    of unique_id, ds, yhat and interval columns), ``backtest(...)``."""

    def __init__(self, settings: PanelSettings | None = None, backend="auto", strategy=None,
                 device=None, quiet=True, logger=None):
        self.settings = settings or PanelSettings()
        self.backend, self.strategy, self.device = backend, strategy, device
        self.quiet, self.logger = quiet, logger
        self.state = None

    # -- inputs --
    @property
    def _base(self):
        return self.settings.base

    def _season(self, panel):
        s = self._base.season
        return panel.season if s is None else s

    def _features(self, panel, sid, ds, exog):
        """(n, f) covariates of rows with timestamps ``ds``: calendar, then the scaled
        differenced covariates (``_exog_diff``)."""
        parts = []
        if self.settings.calendar:
            parts.append(calendar_features(ds, panel.freq))
        if panel.exog_names:
            mu, sd = self.exog_scale[sid]
            parts.append((np.asarray(exog, np.float64) - mu) / sd)
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(ds), 0))

    def _exog_diff(self, sid, ex):
        """Covariates differenced as the target is (lag 1 if diff, then the seasonal lag): a
        covariate that moves y moves the differenced y by its own difference, so the model
        sees what explains its target. The first rows (the lags) are NaN."""
        pipe, v = self.pipelines[sid], np.asarray(ex, np.float64)
        for lag in ([1] if pipe.diff else []) + ([pipe.season] if pipe.season else []):
            v = np.concatenate([np.full((lag, v.shape[1]), np.nan), v[lag:] - v[:-lag]])
        return v

    def _model_rows(self, panel, sid, y, ds, exog):
        """Model-space targets z (m,) and inputs A (m, 1 + f): A[t] = [z_t, covariates of the
        row z_{t+1} belongs to] (known in advance), for a series' rows ``y``."""
        pipe = self.pipelines[sid]
        z = pipe.forward(y[:, None])[:, 0]
        F = self._features(panel, sid, ds, self._exog_diff(sid, exog))[pipe.lags:]
        A = np.concatenate([z[:, None], np.zeros((len(z), F.shape[1]))], axis=1)
        A[:-1, 1:] = F[1:]
        return z, A

    def _windows(self, z, A, lo, hi):
        """Windows whose targets are z[lo+1 .. hi] (model space), time-major."""
        W, on_all = self._base.window, self._base.loss_on == "all"
        starts = np.arange(max(lo - W + 1, 0), hi - W + 1)
        if starts.size == 0:
            return None
        idx = starts[None, :] + np.arange(W)[:, None]  # (W, N)
        x = A[idx]
        y = z[idx + 1][..., None] if on_all else z[starts + W][:, None]
        return x, y

    def _prepare(self, panel, horizon_rows):
        """Fit each series' transforms on its training part (all but ``horizon_rows``) and
        pool the windows: ((x, y) train, (x, y) valid or None)."""
        st, season = self._base, self._season(panel)
        self.pipelines, self.exog_scale, self.scales, self.n_valid = {}, {}, {}, {}
        tr_x, tr_y, va_x, va_y = [], [], [], []
        for sid in panel.ids:
            n = len(panel.y[sid]) - horizon_rows
            y = panel.y[sid][:n]
            if st.log and (y <= 0).any():
                raise DataError(f"series {sid!r} has values <= 0: the log transform needs "
                                "positive values; pass --no-log (log=False)")
            pipe = prep.Pipeline(log=st.log, diff=st.diff, season=season if n > 2 * season + 2
                                 else 0, scale=st.scale)
            need = pipe.lags + st.window + 2
            if n < need:
                raise DataError(f"series {sid!r} has {n} rows before the last {horizon_rows}: "
                                f"too few for window {st.window} (+{pipe.lags} for differencing "
                                f"+ targets); need {need}; drop it or pass --skip-short")
            pipe.fit(y[:, None])
            self.pipelines[sid] = pipe
            ex = panel.exog[sid][:n]
            dx = self._exog_diff(sid, ex)[pipe.lags:]
            mu, sd = dx.mean(axis=0), dx.std(axis=0)
            self.exog_scale[sid] = (mu, np.where(sd > 0, sd, 1.0))
            self.scales[sid] = naive_scale(y, season)
            z, A = self._model_rows(panel, sid, y, panel.ds[sid][:n], ex)
            m = len(z)
            nv = st.valid_size if st.valid_size is not None else default_valid_size(
                pipe.season, m)
            nv = min(nv, max(0, m - st.window - 1))
            self.n_valid[sid] = nv
            tr = self._windows(z, A, 0, m - 1 - nv)
            if tr is not None:
                tr_x.append(tr[0])
                tr_y.append(tr[1])
            va = self._windows(z, A, m - 1 - nv, m - 1) if nv else None
            if va is not None:
                va_x.append(va[0])
                va_y.append(va[1])
        dt = np.dtype(st.dtype)
        cat = lambda a: np.concatenate(a, axis=1).astype(dt)  # noqa: E731
        train = (cat(tr_x), cat(tr_y))
        valid = (cat(va_x), cat(va_y)) if va_x else None
        return train, valid

    def skip_short(self, panel, horizon_rows):
        """The panel without the series too short to train on, and their ids."""
        st, season = self._base, self._season(panel)
        lags = int(st.diff) + season
        keep = [i for i in panel.ids if len(panel.y[i]) - horizon_rows >= lags + st.window + 2]
        short = [i for i in panel.ids if i not in keep]
        if not keep:
            raise DataError(f"every series is too short for window {st.window} and the last "
                            f"{horizon_rows} rows held out")
        return replace(panel, ids=keep), short

    # -- training --
    def fit(self, panel: Panel, holdout: int = 0):
        """Train on every series minus its last ``holdout`` rows: ``ensemble`` models from
        consecutive seeds (their forecasts averaged), then the fallback decisions and the
        interval calibration on the validation span."""
        self.panel, self.holdout = panel, holdout
        train, valid = self._prepare(panel, holdout)
        st = self._base
        f = train[0].shape[2]
        self.model_cfg = ModelConfig(f, st.hidden_size, 1, init=st.init, num_layers=st.num_layers)
        self.members, self.states, self.fallback = None, [], {}
        for m in range(self.settings.ensemble):
            tc = replace(st.train_config(), seed=st.seed + m)
            self.trainer = Trainer(self.model_cfg, tc, backend=self.backend, dtype=st.dtype,
                                   strategy=self.strategy, device=self.device,
                                   patience=st.patience, quiet=self.quiet, log=self.logger)
            if valid is not None:  # the Forecaster's model selection: recursive forecasts
                self.trainer.backend = _ForecastValidation(self.trainer.backend, self, panel,
                                                           holdout)
            params = reference.init_params(self.model_cfg, np.dtype(st.dtype), seed=st.seed + m)
            state = self.trainer.fit(self.trainer.new_state(params), train, valid)
            self.trainer.backend = getattr(self.trainer.backend, "_be", self.trainer.backend)
            self.states.append(state)
        self.state = self.states[0]
        self.members = [s.best_params if s.best_params is not None else s.params
                        for s in self.states]
        if self.settings.fallback and valid is not None:
            self.fallback = self._fallbacks(panel, holdout)
        self.scores = self._calibrate(panel, holdout)
        return self

    def _fallbacks(self, panel, holdout):
        """{series: True} where seasonal naive forecasts the validation span (from its start)
        with a smaller mean absolute error than the model does."""
        season = self._season(panel)
        sids = [i for i in panel.ids if self.n_valid[i]]
        sub = replace(panel, ids=sids)
        ends = [len(panel.y[i]) - holdout - self.n_valid[i] for i in sids]
        fc = self._forecast_values(sub, ends, max(self.n_valid[i] for i in sids), pad=True)
        out = {}
        for f, sid, e in zip(fc, sids, ends):
            actual = panel.y[sid][e:e + self.n_valid[sid]]
            naive = seasonal_naive(panel.y[sid][:e], len(actual), season)
            out[sid] = bool(np.mean(np.abs(naive - actual)) < np.mean(np.abs(f[:len(actual)]
                                                                               - actual)))
        return out

    @property
    def params(self):
        """The first ensemble member's parameters (all: ``members``)."""
        if self.members:
            return self.members[0]
        s = self.state
        return s.best_params if s.best_params is not None else s.params

    # -- forecasting --
    def _forecast_z(self, panel, ends, horizon, future=None, pad=False):
        """Model-space forecasts (len(ends), horizon) of every series from its first ``ends[i]``
        rows, recursively, all series in one batch. ``pad``: where the data's covariates end
        before the horizon, repeat the last row (step h reads covariates up to step h only,
        so the steps before the data ends, the only ones scored, are unaffected)."""
        st, W, dt = self._base, self._base.window, np.dtype(self._base.dtype)
        be = self.trainer.backend
        windows, feats = [], []
        for sid, n in zip(panel.ids, ends):
            ds, ex = panel.ds[sid], panel.exog[sid]
            fut_ds = _pd().date_range(ds[n - 1], periods=horizon + 1, freq=panel.freq)[1:]
            if panel.exog_names:
                fut_ex = ex[n:n + horizon] if future is None else future[sid]
                if pad and 0 < len(fut_ex) < horizon:
                    fut_ex = np.concatenate([fut_ex, np.repeat(fut_ex[-1:], horizon - len(fut_ex),
                                                               axis=0)])
                if len(fut_ex) < horizon:
                    raise DataError(f"series {sid!r} needs covariates for {horizon} future "
                                    f"steps, has {len(fut_ex)}; pass --future FILE")
            else:
                fut_ex = np.zeros((horizon, 0))
            z, A = self._model_rows(panel, sid, panel.y[sid][:n], ds[:n], ex[:n])
            dx = self._exog_diff(sid, np.concatenate([ex[:n], fut_ex[:horizon]]))[n:]
            F = self._features(panel, sid, fut_ds, dx)
            if F.shape[1]:
                A[-1, 1:] = F[0]
            windows.append(list(A[-W:]))
            feats.append(F)
        out = np.empty((len(ends), horizon))
        for h in range(horizon):
            x = np.stack([np.array(w[-W:]) for w in windows], axis=1).astype(dt)  # (W, B, f)
            zn = be.predict(x)[-1, :, 0].astype(np.float64)
            out[:, h] = zn
            for b, w in enumerate(windows):
                row = np.zeros(x.shape[2])
                row[0] = zn[b]
                if h + 1 < horizon and feats[b].shape[1]:
                    row[1:] = feats[b][h + 1]
                w.append(row)
        return out

    def _forecast_values(self, panel, ends, horizon, future=None, pad=False):
        """Forecasts in the series' units: the ensemble's mean in model space (members in
        order, float64; while training, the current parameters), then each series' inverse
        transform; seasonal naive for the series that fell back to it."""
        if self.members:
            be, z = self.trainer.backend, 0
            for params in self.members:
                be.load(params, None)
                z = z + self._forecast_z(panel, ends, horizon, future, pad)
            z = z / len(self.members)
        else:
            z = self._forecast_z(panel, ends, horizon, future, pad)
        season = self._season(panel)
        return [seasonal_naive(panel.y[sid][:n], horizon, season) if self.fallback.get(sid)
                else self.pipelines[sid].inverse(z[b][:, None], panel.y[sid][:n, None])[:, 0]
                for b, (sid, n) in enumerate(zip(panel.ids, ends))]

    def _calibrate(self, panel, holdout):
        """Conformal quantiles of |error| / scale per horizon step h (split conformal): every
        origin in a series' validation span (whose targets training never fitted) forecasts
        what remains of the span from the true history; the score is the absolute error over
        the series' naive scale. ``calibration`` origins per series (default: the validation
        span's) may reach back into the training span for more, optimistic, scores."""
        st = self._base
        spans = {}
        for sid in panel.ids:
            n = len(panel.y[sid]) - holdout
            k = self.settings.calibration or self.n_valid[sid]
            lo = max(self.pipelines[sid].lags + st.window + 1, n - k)
            spans[sid] = (list(range(lo, n)), n)
        H = max([n - e[0] for e, n in spans.values() if e] or [1])
        scores = [[] for _ in range(H)]
        for j in range(max(len(e) for e, _ in spans.values())):
            sub = replace(panel, ids=[i for i in panel.ids if j < len(spans[i][0])])
            ends = [spans[i][0][j] for i in sub.ids]
            for f, sid, e in zip(self._forecast_values(sub, ends, H, pad=True), sub.ids, ends):
                actual = panel.y[sid][e:spans[sid][1]]
                s = self.scales[sid] if self.scales[sid] > 0 else 1.0
                for h, a in enumerate(actual):
                    scores[h].append(abs(a - f[h]) / s)
        return [np.sort(np.array(v, np.float64)) for v in scores]

    def quantiles(self, level) -> np.ndarray:
        """Per horizon step h, the conformal quantile at ``level`` percent of the calibration
        scores: the ceil((n + 1) * level / 100)-th smallest of n (the largest when that rank
        exceeds n). Widths never shrink with h (further ahead is never surer) and stay at the
        last calibrated step's beyond the calibration span."""
        if isinstance(level, bool) or not isinstance(level, (int, float)) \
                or not 0 < level <= LEVELS_MAX:
            raise ConfigError(f"level must be a percentage in (0, {LEVELS_MAX}], got {level!r}")
        qs = []
        for s in self.scores:
            n = len(s)
            k = math.ceil((n + 1) * level / 100) - 1
            qs.append(float(s[min(k, n - 1)]) if n else (qs[-1] if qs else float("inf")))
        return np.maximum.accumulate(np.array(qs))

    def predict(self, horizon: int, future=None, level=None, at_end=False):
        """The next ``horizon`` steps after the training part of every series: a DataFrame
        with unique_id, ds, yhat and, per level (default: the settings' levels), yhat-lo-L /
        yhat-hi-L. ``future`` gives the covariates ({id: (horizon, e)} or a table read by
        ``future_frame``). ``at_end``: after the end of the data instead (the holdout
        included)."""
        if self.state is None:
            raise RuntimeError("fit() first")
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) \
                or not 1 <= horizon <= MAX_HORIZON:
            raise ConfigError(f"horizon must be an integer in [1, {MAX_HORIZON}], got {horizon!r}")
        panel, held = self.panel, 0 if at_end else self.holdout
        if panel.exog_names and future is None and held < horizon:
            raise DataError(f"the model reads covariates {', '.join(panel.exog_names)}: their "
                            f"values for the next {horizon} steps are needed; pass --future "
                            "FILE (future=...)")
        if future is not None and not isinstance(future, dict):
            if held:
                raise ConfigError("future covariates continue the data's end: predict with "
                                  "at_end=True")
            future = future_frame(future, panel, horizon)
        ends = [len(panel.y[i]) - held for i in panel.ids]
        fc = self._forecast_values(panel, ends, horizon, future)
        return self._frame(panel, ends, fc, level)

    def _frame(self, panel, ends, fc, levels=None):
        pd = _pd()
        rows = []
        for sid, n, f in zip(panel.ids, ends, fc):
            h = len(f)
            d = {"unique_id": sid,
                 "ds": pd.date_range(panel.ds[sid][n - 1], periods=h + 1, freq=panel.freq)[1:],
                 "yhat": f}
            for lv in levels or self.settings.levels:
                w = self._width(lv, h) * self.scales[sid]
                d[f"yhat-lo-{_lv(lv)}"], d[f"yhat-hi-{_lv(lv)}"] = f - w, f + w
            rows.append(pd.DataFrame(d))
        return pd.concat(rows, ignore_index=True)

    def _width(self, lv, h):
        q = self.quantiles(lv)
        return np.array([q[min(k, len(q) - 1)] for k in range(h)])

    # -- evaluation --
    def score(self, panel: Panel, held: int, horizon: int, window: int = 0) -> list:
        """Forecast ``horizon`` steps from ``held`` rows before each series' end (the true
        history before) and score them: one row per series with the model's and the
        seasonal-naive baseline's metrics (MASE scaled by the series' own past) and the
        intervals' coverage."""
        season = self._season(panel)
        ends = [len(panel.y[i]) - held for i in panel.ids]
        fc = self._forecast_values(panel, ends, horizon, pad=True)
        frame = self._frame(panel, ends, fc)
        rows = []
        for b, (sid, n) in enumerate(zip(panel.ids, ends)):
            actual = panel.y[sid][n:n + horizon]
            f = fc[b][:len(actual)]
            past = panel.y[sid][:n]
            scale = naive_scale(past, season)
            part = frame[frame.unique_id == sid].iloc[:len(actual)]
            rows.append({
                "window": window, "unique_id": sid, "cutoff": stamp(panel.ds[sid][n - 1]),
                "model": metrics(actual, f, scale),
                "baseline": metrics(actual, seasonal_naive(past, len(actual), season), scale),
                "coverage": {lv: float(np.mean((actual >= part[f"yhat-lo-{_lv(lv)}"])
                                               & (actual <= part[f"yhat-hi-{_lv(lv)}"])))
                             for lv in self.settings.levels}})
        return rows

    def evaluate_holdout(self) -> dict:
        """The fitted holdout, scored per series and overall (as one backtest window)."""
        if not self.holdout:
            raise ConfigError("evaluation needs a holdout: fit with holdout > 0")
        return self._result(self.score(self.panel, self.holdout, self.holdout), self.panel,
                            self.holdout, self.holdout, False)

    def _result(self, rows, panel, horizon, step, refit):
        season = self._season(panel)
        return {"windows": rows, "overall": _overall(rows, self.settings.levels),
                "horizon": horizon, "step": step, "refit": refit, "season": season,
                "baseline": f"seasonal naive (period {season})" if season > 1 else "naive"}

    # -- backtesting --
    def backtest(self, panel: Panel, horizon: int, windows: int = 3, step: int | None = None,
                 refit: bool = True) -> dict:
        """Rolling-origin evaluation: K windows of ``horizon`` steps, the last ending at each
        series' end, origins ``step`` apart (default: horizon). With ``refit`` the model is
        trained again before each window on everything before it; otherwise once, before the
        first window, and the later windows are forecast from the true history. Returns
        {"windows": per-window-and-series rows, "overall": {model, baseline, coverage}}."""
        step = step or horizon
        for name, v in (("horizon", horizon), ("windows", windows), ("step", step)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"backtest {name} must be a positive integer, got {v!r}")
        rows, model = [], None
        for k in range(windows):
            held = horizon + (windows - 1 - k) * step  # rows after the origin
            if refit or model is None:
                model = GlobalForecaster(self.settings, self.backend, self.strategy, self.device,
                                         self.quiet, self.logger).fit(panel, held)
            rows += model.score(panel, held, horizon, k)
        return self._result(rows, panel, horizon, step, refit)


class _ForecastValidation:
    """The backend with ``evaluate`` scoring recursive forecasts of every series' whole
    validation span from its start, in model space (the Forecaster's model selection,
    forecast.ForecastValidation, for many series): the mean squared error over every series
    and step, in float64 on the host. The forecasts are the same bits on every backend, so
    the best epoch is too."""

    def __init__(self, backend, model, panel, holdout):
        self._be, self._model, self._panel = backend, model, panel
        sids = [i for i in panel.ids if model.n_valid[i]]
        self._sub = replace(panel, ids=sids)
        self._ends = [len(panel.y[i]) - holdout - model.n_valid[i] for i in sids]
        self._h = max(model.n_valid[i] for i in sids)
        self._true = [model._model_rows(panel, i, panel.y[i][:e + model.n_valid[i]],
                                        panel.ds[i][:e + model.n_valid[i]],
                                        panel.exog[i][:e + model.n_valid[i]])[0][-model.n_valid[i]:]
                      for i, e in zip(sids, self._ends)]

    def __getattr__(self, name):  # load, state, predict, train_epoch, run_name, dtype, ...
        return getattr(self._be, name)

    def evaluate(self, x=None, y=None):
        z = self._model._forecast_z(self._sub, self._ends, self._h, pad=True)
        with np.errstate(all="ignore"):  # a diverging run gives inf: the Trainer reports it
            err = np.concatenate([z[b, :len(t)] - t for b, t in enumerate(self._true)])
            return self._be.dtype.type(np.mean(err * err))


def _lv(lv):
    return int(lv) if float(lv).is_integer() else lv


def _overall(rows, levels):
    """Means over every (window, series) of each metric, and of interval coverage."""
    keys = rows[0]["model"].keys()
    mean = lambda who, k: float(np.nanmean([r[who][k] for r in rows]))  # noqa: E731
    return {"model": {k: mean("model", k) for k in keys},
            "baseline": {k: mean("baseline", k) for k in keys},
            "coverage": {lv: float(np.mean([r["coverage"][lv] for r in rows])) for lv in levels}}


def backtest_table(res) -> str:
    """The backtest's windows and overall means as a text table."""
    lines = [f"{'window':>6}  {'series':<16} {'cutoff':<20} {'MASE':>7} {'baseline':>8} "
             f"{'sMAPE %':>8} {'RMSE':>10}"]
    for r in res["windows"]:
        lines.append(f"{r['window']:>6}  {r['unique_id'][:16]:<16} {r['cutoff'][:20]:<20} "
                     f"{r['model']['mase']:7.3f} {r['baseline']['mase']:8.3f} "
                     f"{r['model']['smape']:8.2f} {r['model']['rmse']:10.4g}")
    o = res["overall"]
    lines.append(f"overall: MASE {o['model']['mase']:.3f} (baseline {res['baseline']} "
                 f"{o['baseline']['mase']:.3f}), sMAPE {o['model']['smape']:.2f} % "
                 f"(baseline {o['baseline']['smape']:.2f} %), coverage "
                 + ", ".join(f"{lv}%: {c * 100:.1f}%" for lv, c in o["coverage"].items()))
    return "\n".join(lines)


# ---- checkpoints -----------------------------------------------------------------------------

PANEL_VERSION = 1


def save(model: GlobalForecaster, path):
    """Write a fitted global model, its data and its calibration as one checkpoint
    (atomically): ``load`` gives back a model that forecasts the same bits."""
    from . import __version__, checkpoint

    p, st = model.panel, model.settings
    arrays = {}
    ref = checkpoint._flatten
    series = []
    for k, sid in enumerate(p.ids):
        series.append(ref(f"s{k}", {"ds": np.array([t.isoformat() for t in p.ds[sid]]),
                                    "y": p.y[sid], "exog": p.exog[sid]}, arrays))
    meta = {
        "format": checkpoint.PANEL_FORMAT, "format_version": PANEL_VERSION,
        "lockstep_version": __version__,
        "config": {"settings": st.base.to_dict(), "calendar": st.calendar,
                   "levels": list(st.levels), "calibration": st.calibration,
                   "ensemble": st.ensemble, "fallback": st.fallback,
                   "model": model.model_cfg.to_dict()},
        "members": [ref(f"m{k}", {n: p_[n] for n in reference.names_of(p_)}, arrays)
                    for k, p_ in enumerate(model.members)],
        "data": {"ids": list(p.ids), "freq": p.freq, "exog_names": list(p.exog_names),
                 "source": p.source, "fingerprint": p.fingerprint(), "series": series},
        "fit": {"holdout": model.holdout, "epoch": model.state.epoch,
                "stopped": model.state.stopped, "backend": model.trainer.run_name,
                "pipelines": [model.pipelines[i].state() for i in p.ids],
                "exog_scale": [[model.exog_scale[i][0].tolist(), model.exog_scale[i][1].tolist()]
                               for i in p.ids],
                "scales": [model.scales[i] for i in p.ids],
                "n_valid": [model.n_valid[i] for i in p.ids],
                "fallback": [bool(model.fallback.get(i)) for i in p.ids],
                "scores": ref("scores", {str(h): s for h, s in enumerate(model.scores)}, arrays)},
    }
    return checkpoint.write(path, meta, arrays)


def load(path, backend="auto", strategy=None, device=None) -> GlobalForecaster:
    """A global model from its checkpoint, ready to ``predict``."""
    from . import checkpoint

    ck = checkpoint.load(path)
    if ck.get("kind") != "panel":
        raise checkpoint.CheckpointError(f"{path} holds a one-series model; use "
                                         "Forecaster.from_checkpoint")
    return from_loaded(ck, backend, strategy, device)


def from_loaded(ck, backend="auto", strategy=None, device=None) -> GlobalForecaster:
    """A global model from a checkpoint already read by ``checkpoint.load``."""
    cfg = ck["config"]
    st = PanelSettings(base=cfg["settings"], calendar=cfg["calendar"],
                       levels=tuple(cfg["levels"]), calibration=cfg["calibration"],
                       ensemble=cfg["ensemble"], fallback=cfg["fallback"])
    g = GlobalForecaster(st, backend, strategy, device)
    g.panel, g.holdout, g.model_cfg = ck["panel"], ck["holdout"], cfg["model"]
    g.pipelines, g.exog_scale, g.scales, g.n_valid, g.fallback = (ck[k] for k in (
        "pipelines", "exog_scale", "scales", "n_valid", "fallback"))
    g.scores = ck["scores"]
    base = st.base
    g.trainer = Trainer(g.model_cfg, base.train_config(), backend=backend, dtype=base.dtype,
                        strategy=strategy, device=device, quiet=True)
    g.members = ck["members"]
    g.state = g.trainer.new_state(g.members[0])
    g.state.epoch, g.state.stopped = ck["epoch"], ck["stopped"]
    g.states = [g.state]
    return g


class PanelSchema:
    """Format 1 of a global model's checkpoint, field by field (``checkpoint.load`` hands such
    files here); each failure names the field."""

    def __init__(self, path, arrays):
        from .checkpoint import _Schema

        self.s = _Schema(path, arrays)

    def checkpoint(self, meta) -> dict:
        from .checkpoint import CheckpointError
        from .config import ModelConfig

        s, pd = self.s, _pd()
        if meta.get("format_version") != PANEL_VERSION:
            raise CheckpointError(f"{s.path} has panel checkpoint format "
                                  f"{str(meta.get('format_version'))[:20]}; this lockstep reads "
                                  f"format {PANEL_VERSION}")
        s.dict(meta, "", ("format", "format_version", "lockstep_version", "config", "members",
                          "data", "fit"))
        c = s.dict(meta["config"], "config", ("settings", "calendar", "levels", "calibration",
                                               "ensemble", "fallback", "model"))
        s.int(c["ensemble"], "config.ensemble", 1, 100)
        if not isinstance(c["fallback"], bool):
            s.fail("config.fallback", "must be true or false")
        st = s.dataclass(ForecastSettings, c["settings"], "config.settings",
                         optional=("grad_shards", "num_layers", "dropout"))
        mc = s.dataclass(ModelConfig, c["model"], "config.model", optional=("num_layers",))
        if not isinstance(c["calendar"], bool):
            s.fail("config.calendar", "must be true or false")
        if not (isinstance(c["levels"], list) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= LEVELS_MAX
                for v in c["levels"])):
            s.fail("config.levels", f"must be a list of percentages in (0, {LEVELS_MAX}]")
        if c["calibration"] is not None:
            s.int(c["calibration"], "config.calibration", 1, 1 << 31)
        if (mc.hidden_size, mc.num_layers, mc.output_size) != (st.hidden_size, st.num_layers, 1):
            s.fail("config.model", "does not match config.settings (hidden_size, num_layers)")
        dt, H, I = np.dtype(st.dtype), mc.hidden_size, mc.input_size
        shapes = {}
        for l in range(mc.num_layers):
            n_ih, n_hh, n_b = reference.layer_names(l)
            shapes |= {n_ih: (4 * H, I if l == 0 else H), n_hh: (4 * H, H), n_b: (4 * H,)}
        shapes |= {"W_out": (1, H), "b_out": (1,)}
        if not isinstance(meta["members"], list) or len(meta["members"]) != c["ensemble"]:
            s.fail("members", f"must hold config.ensemble = {c['ensemble']} parameter sets")
        members = [s.params(v, f"members.{k}", shapes, dt) for k, v in enumerate(meta["members"])]

        d = s.dict(meta["data"], "data", ("ids", "freq", "exog_names", "source", "fingerprint",
                                          "series"))
        ids, names = d["ids"], d["exog_names"]
        for f, v in (("data.ids", ids), ("data.exog_names", names)):
            if not (isinstance(v, list) and all(isinstance(x, str) and len(x) <= 4096 for x in v)):
                s.fail(f, "must be a list of strings")
        if not ids or len(set(ids)) != len(ids):
            s.fail("data.ids", "must name one or more series, each once")
        freq = s.str(d["freq"], "data.freq", 40)
        if not isinstance(d["series"], list) or len(d["series"]) != len(ids):
            s.fail("data.series", f"must hold {len(ids)} series (one per id)")
        e = len(names)
        want_f = 1 + (2 if c["calendar"] and season_of(freq) else 0) + e
        if I != want_f:
            s.fail("config.model.input_size", f"must be {want_f} (value, calendar, covariates)")
        ds, y, ex = {}, {}, {}
        for k, (sid, v) in enumerate(zip(ids, d["series"])):
            f = f"data.series.{k}"
            s.dict(v, f, ("ds", "y", "exog"))
            yy = s.array(v["y"], f"{f}.y", np.float64)
            if yy.ndim != 1 or len(yy) < 2:
                s.fail(f"{f}.y", "must be a 1-D array of 2 or more values")
            stamps = s.array(v["ds"], f"{f}.ds", shape=(len(yy),), kind="U")
            try:
                ds[sid] = pd.DatetimeIndex(pd.to_datetime(stamps))
            except (ValueError, TypeError):
                s.fail(f"{f}.ds", "must hold ISO timestamps")
            y[sid], ex[sid] = yy, s.array(v["exog"], f"{f}.exog", np.float64, (len(yy), e))
        panel = Panel(list(ids), ds, y, ex, list(names), freq, s.str(d["source"], "data.source"))
        if panel.fingerprint() != d["fingerprint"]:
            s.fail("data.fingerprint", "does not match the data stored")

        fit = s.dict(meta["fit"], "fit", ("holdout", "epoch", "stopped", "backend", "pipelines",
                                          "exog_scale", "scales", "n_valid", "fallback",
                                          "scores"))
        holdout = s.int(fit["holdout"], "fit.holdout", 0, min(len(v) for v in y.values()) - 1)
        for k in ("pipelines", "exog_scale", "scales", "n_valid", "fallback"):
            if not isinstance(fit[k], list) or len(fit[k]) != len(ids):
                s.fail(f"fit.{k}", f"must hold {len(ids)} entries (one per series)")
        pipes = {sid: prep.Pipeline.from_state(s.pipeline(v, st, 1)) for sid, v in
                 zip(ids, fit["pipelines"])}
        xs = {}
        for sid, v in zip(ids, fit["exog_scale"]):
            if not (isinstance(v, list) and len(v) == 2 and all(
                    isinstance(a, list) and len(a) == e and all(
                        isinstance(x, (int, float)) and math.isfinite(x) for x in a) for a in v)
                    and all(x > 0 for x in v[1])):
                s.fail("fit.exog_scale", f"must hold [means, positive spreads] of {e} values")
            xs[sid] = (np.array(v[0], np.float64), np.array(v[1], np.float64))
        scales = {}
        for sid, v in zip(ids, fit["scales"]):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0:
                s.fail("fit.scales", "must be non-negative numbers")
            scales[sid] = float(v)
        n_valid = {sid: s.int(v, "fit.n_valid", 0, 1 << 31) for sid, v in zip(ids, fit["n_valid"])}
        if not all(isinstance(v, bool) for v in fit["fallback"]):
            s.fail("fit.fallback", "must be true or false per series")
        fallback = dict(zip(ids, fit["fallback"]))
        sc = fit["scores"]
        if not isinstance(sc, dict) or sorted(sc, key=lambda k: int(k) if k.isdigit() else -1) \
                != [str(h) for h in range(len(sc))]:
            s.fail("fit.scores", "must map steps 0, 1, ... to arrays")
        scores = [s.array(sc[str(h)], f"fit.scores.{h}", np.float64) for h in range(len(sc))]
        if any(a.ndim != 1 or (a < 0).any() or (np.diff(a) < 0).any() for a in scores):
            s.fail("fit.scores", "must be sorted non-negative 1-D arrays")
        if fit["stopped"] not in (None, "completed", "early-stop", "diverged"):
            s.fail("fit.stopped", "must be null, completed, early-stop or diverged")
        return {"kind": "panel", "config": {"settings": st, "calendar": c["calendar"],
                                            "levels": c["levels"],
                                            "calibration": c["calibration"],
                                            "ensemble": c["ensemble"], "fallback": c["fallback"],
                                            "model": mc},
                "members": members, "panel": panel, "holdout": holdout, "fallback": fallback,
                "epoch": s.int(fit["epoch"], "fit.epoch", 0, 1 << 40), "stopped": fit["stopped"],
                "pipelines": pipes, "exog_scale": xs, "scales": scales, "n_valid": n_valid,
                "scores": scores, "lockstep_version": s.str(meta["lockstep_version"],
                                                            "lockstep_version", 100)}
