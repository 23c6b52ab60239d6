"""Frequencies, seasons and dates: the one place that knows about the calendar.

Dates are NumPy ``datetime64[ns]`` arrays (naive; time-zone aware input is converted to UTC),
frequencies are pandas frequency strings ('MS', 'QS-JAN', 'W-SUN', 'D', 'h', ...). Every
function here is vectorised: nothing loops over series or rows in Python.
"""

from __future__ import annotations

import functools
import re
import warnings

import numpy as np

from . import DataError

NAT = np.iinfo(np.int64).min  # NaT as an int64 of nanoseconds
_NS_MAX = np.iinfo(np.int64).max
LAST_DATE = "2262-04-11"  # the last date pandas' Timestamp (int64 nanoseconds) holds


def _pd():
    import pandas as pd

    return pd


# ---- parsing ---------------------------------------------------------------------------------

_QUARTER = re.compile(r"^\s*(\d{4})\s*-?\s*[Qq]([1-4])\s*$")
_MIXED_OK = re.compile(r"\d{4}|[A-Za-z]{3}")  # what dateutil may try: a 4-digit year or a month name


def _to_ns(idx) -> np.ndarray:
    """datetime64 of any unit (a DatetimeIndex, aware or naive) -> int64 ns, NAT where the
    value is missing or outside the nanosecond range."""
    pd = _pd()
    idx = pd.DatetimeIndex(idx)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    a = idx.to_numpy()
    unit, _ = np.datetime_data(a.dtype)
    per = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}.get(unit)
    v = a.view(np.int64)
    if per is None:  # an unusual unit: let numpy convert (dates in range only)
        return a.astype("datetime64[ns]").view(np.int64)
    if per == 1:
        return v.copy()
    ok = (v != NAT) & (v <= _NS_MAX // per) & (v >= -(_NS_MAX // per))
    return np.where(ok, np.where(ok, v, 0) * per, NAT)


def _parse_strings(u: np.ndarray) -> np.ndarray:
    """Unique cells (object array) -> int64 ns, NAT for what is not a date."""
    pd = _pd()
    out = np.full(len(u), NAT, np.int64)
    if not len(u):
        return out
    s = pd.Series(u, dtype=object)
    is_str = s.map(lambda x: isinstance(x, str)).to_numpy(bool)
    text = s.where(is_str, "").astype(str).str.strip()
    q = text.str.extract(_QUARTER)
    quarters = q[0].notna().to_numpy()
    if quarters.any():
        months = (q[0][quarters].astype(np.int64) - 1970) * 12 + (q[1][quarters].astype(np.int64) - 1) * 3
        out[quarters] = months.to_numpy().astype("datetime64[M]").astype("datetime64[ns]").view(np.int64)
    rest = ~quarters & is_str & (text != "").to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if rest.any():
            d = pd.to_datetime(text[rest], format="ISO8601", utc=True, errors="coerce")
            out[rest] = _to_ns(d)
        retry = rest & (out == NAT) & text.str.contains(_MIXED_OK).to_numpy(bool)
        if retry.any():  # 'Jan 2015', '01/31/2015': element by element
            d = pd.to_datetime(text[retry], format="mixed", utc=True, errors="coerce")
            out[retry] = _to_ns(d)
        other = ~is_str & s.notna().to_numpy(bool)
        if other.any():  # datetime / date objects in an object column
            d = pd.to_datetime(s[other], format="mixed", utc=True, errors="coerce")
            out[other] = _to_ns(d)
    return out


def _is_text(u) -> bool:
    pd = _pd()
    return pd.api.types.is_string_dtype(getattr(u, "dtype", None)) and \
        getattr(u, "dtype", None) != object


def _arrow_ns(values):
    """A text column held by Arrow (pandas' string dtype) -> int64 ns when every present cell
    is an ISO date or time stamp that Arrow's own parser takes (offsets converted to UTC, as
    pandas' utc=True does), else None. No Python object per cell: a column of millions of
    distinct stamps costs 8 bytes a row here."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:
        return None
    try:
        arr = pa.chunked_array(pa.array(values)) if not isinstance(values, pa.ChunkedArray) \
            else values
    except (TypeError, ValueError, pa.ArrowException):
        return None
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    ts = None
    for typ in (pa.timestamp("ns"), pa.timestamp("ns", "UTC")):  # naive stamps, then offsets
        try:
            ts = pc.cast(arr, typ)
            break
        except (pa.ArrowException, ValueError, OverflowError):
            continue
    if ts is None:
        return None
    ns = ts.cast(pa.int64()).fill_null(NAT).to_numpy()
    return np.ascontiguousarray(ns, np.int64)


def _arrow_agrees(u, out) -> bool:
    """Arrow's parse checked against pandas' on a sample of cells (first, last and a spread
    between): the two parsers must agree on what a stamp means."""
    pd = _pd()
    n = len(u)
    k = np.unique(np.linspace(0, n - 1, min(n, 64)).astype(np.int64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _to_ns(pd.to_datetime(pd.Index(np.asarray(u[k], object)), format="ISO8601",
                                    utc=True, errors="coerce"))
    return bool(np.array_equal(ref, out[k]))


def _strings_to_ns(u) -> np.ndarray:
    """Distinct text cells (a string-dtype Index, no missing values) -> int64 ns: ISO cells
    in one vectorized pass that makes no Python object per cell (a column of a million
    distinct time stamps stays compact); the others (quarters, 'Jan 2015', stray blanks) as
    ``_parse_strings`` does, one by one. Same values as ``_parse_strings`` for every cell."""
    pd = _pd()
    if not len(u):
        return np.zeros(0, np.int64)
    out = _arrow_ns(u)
    if out is not None and _arrow_agrees(u, out):
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = _to_ns(pd.to_datetime(u, format="ISO8601", utc=True, errors="coerce"))
        except (ValueError, TypeError, OverflowError):
            out = np.full(len(u), NAT, np.int64)
    rest = out == NAT
    if rest.any():
        out[rest] = _parse_strings(np.asarray(u[rest], object))
    return out


def to_ns(values) -> np.ndarray:
    """Like ``to_datetime`` but int64 nanoseconds with ``NAT`` where a cell is missing or not a
    date (the reader's form: it reports the cells itself). Strings are parsed once per
    distinct value."""
    pd = _pd()
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        return _to_ns(values)
    v = values if isinstance(values, (pd.Series, pd.Index)) else pd.Series(np.asarray(values, object)
                                                                           if not hasattr(values, "dtype") else values)
    dt = v.dtype
    if isinstance(dt, pd.DatetimeTZDtype) or dt.kind == "M":
        return _to_ns(v)
    if isinstance(dt, pd.PeriodDtype):
        return _to_ns(pd.PeriodIndex(v).to_timestamp())
    if isinstance(dt, pd.CategoricalDtype):
        cat_ns = _strings_to_ns(v.cat.categories) if _is_text(v.cat.categories) else \
            to_ns(pd.Series(v.cat.categories))
        codes = np.asarray(v.cat.codes, np.int64)
        return np.where(codes >= 0, cat_ns[np.maximum(codes, 0)], NAT) if len(cat_ns) else \
            np.full(len(codes), NAT, np.int64)
    if dt.kind in "iuf" or dt.kind == "b":  # whole numbers 1678..2261 are years; else not dates
        a = np.asarray(v, np.float64)
        ok = np.isfinite(a) & (a == np.round(a)) & (a >= 1678) & (a <= 2261) & (dt.kind != "b")
        out = np.full(len(a), NAT, np.int64)
        if ok.any():
            yr = a[ok].astype(np.int64) - 1970
            out[ok] = yr.astype("datetime64[Y]").astype("datetime64[ns]").view(np.int64)
        return out
    if _is_text(v):
        whole = _arrow_ns(v)
        if whole is not None and _arrow_agrees(pd.Index(v), whole):
            return whole
    codes, uniq = pd.factorize(v, use_na_sentinel=True)
    parsed = _strings_to_ns(pd.Index(uniq)) if _is_text(uniq) else \
        _parse_strings(np.asarray(uniq, object))
    codes = np.asarray(codes, np.int64)
    return np.where(codes >= 0, parsed[np.maximum(codes, 0)] if len(parsed) else NAT, NAT)


def to_datetime(values, errors="raise") -> np.ndarray:
    """Cells -> ``datetime64[ns]``: ISO dates and times ('2016-01' and '2016-01-01' in one
    column), ISO quarters ('2015-Q1', '2015Q1': the quarter's first day), other common forms
    element by element, whole numbers 1678..2261 as years, time-zone aware stamps (mixed DST
    offsets too) converted to UTC and made naive. ``errors='raise'``: a cell that is not a
    date raises ``DataError``; ``'coerce'``: it becomes NaT."""
    pd = _pd()
    ns = to_ns(values)
    if errors == "raise":
        bad = ns == NAT
        if bad.any():
            cells = values if isinstance(values, (pd.Series, pd.Index, np.ndarray)) else list(values)
            cells = pd.Series(np.asarray(cells, object) if not hasattr(cells, "dtype") else cells)
            missing = cells.isna().to_numpy(bool)
            real = bad & ~missing
            if real.any():
                k = int(np.flatnonzero(real)[0])
                raise DataError(f"{str(cells.iloc[k])[:40]!r} (item {k}) is not a date; use ISO "
                                "dates such as 2020-01-31, 2020-01 or 2020-Q1")
    return ns.view("datetime64[ns]")


# ---- frequencies -----------------------------------------------------------------------------

# pandas 1/2 aliases that pandas 3 refuses -> their pandas 3 names
_LEGACY = {"M": "ME", "Q": "QE", "Y": "YE", "A": "YE", "AS": "YS", "BA": "BYE", "BY": "BYE",
           "BAS": "BYS", "BM": "BME", "BQ": "BQE", "H": "h", "BH": "bh", "T": "min", "S": "s",
           "L": "ms", "U": "us", "N": "ns"}
_ALIAS = re.compile(r"^\s*([+-]?\d*)\s*([A-Za-z]+)(-[A-Za-z]+)?\s*$")


@functools.lru_cache(maxsize=256)
def _offset(freq: str):
    """The pandas offset of a frequency string, legacy aliases mapped; ValueError if none."""
    pd = _pd()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pd.tseries.frequencies.to_offset(freq)
        except (ValueError, TypeError):
            m = _ALIAS.match(freq)
            if not m or m.group(2) not in _LEGACY:
                raise ValueError(freq) from None
            return pd.tseries.frequencies.to_offset(m.group(1) + _LEGACY[m.group(2)]
                                                    + (m.group(3) or ""))


def check_freq(freq) -> str:
    """A user's --freq as a normalized pandas frequency string ('M' -> 'ME', 'W' -> 'W-SUN',
    'QS' -> 'QS-JAN'); DataError when it is none or is not a positive step."""
    msg = f"--freq {freq} is not a pandas frequency (e.g. MS, QS, W, D, h)"
    if not isinstance(freq, str) or not freq.strip():
        raise DataError(msg)
    try:
        off = _offset(freq.strip())
    except (ValueError, TypeError):
        raise DataError(msg) from None
    if off is None or off.n <= 0:
        raise DataError(f"--freq {freq} is not a positive step; give a frequency such as MS, QS, "
                        "W, D or h")
    return off.freqstr


def infer_freq(ds) -> str | None:
    """The pandas frequency string of regular timestamps (``pd.infer_freq``, normalized),
    None when they are irregular or fewer than 3."""
    pd = _pd()
    ds = np.asarray(ds, "datetime64[ns]")
    if len(ds) < 3:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            f = pd.infer_freq(pd.DatetimeIndex(ds))
        except (ValueError, TypeError):
            return None
        return None if f is None else pd.tseries.frequencies.to_offset(f).freqstr


@functools.lru_cache(maxsize=256)
def _kind(freq) -> str | None:
    """'monthly', 'quarterly', 'weekly', 'business-daily', 'daily', 'hourly', 'yearly' for
    one step of those; None for anything else (multiples, minutes, undated)."""
    if freq is None:
        return None
    pd = _pd()
    try:
        off = _offset(freq) if isinstance(freq, str) else freq
    except (ValueError, TypeError):
        return None
    if off is None or off.n != 1:
        return None
    o = pd.offsets
    for kinds, name in (((o.MonthBegin, o.MonthEnd, o.BusinessMonthBegin, o.BusinessMonthEnd), "monthly"),
                        ((o.QuarterBegin, o.QuarterEnd, o.BQuarterBegin, o.BQuarterEnd), "quarterly"),
                        ((o.Week,), "weekly"), ((o.BusinessDay,), "business-daily"),
                        ((o.Day,), "daily"), ((o.Hour,), "hourly"),
                        ((o.YearBegin, o.YearEnd, o.BYearBegin, o.BYearEnd), "yearly")):
        if type(off) in kinds:
            return name
    return None


_SEASONS = {"monthly": 12, "quarterly": 4, "weekly": 52, "business-daily": 5, "daily": 7,
            "hourly": 24, "yearly": 0}


def season_of(freq) -> int:
    """The seasonal period of a frequency: monthly 12, quarterly 4, weekly 52, business-daily
    5, daily 7, hourly 24; yearly, None (undated) and anything else 0 (none)."""
    return _SEASONS.get(_kind(freq), 0)


def freq_name(freq) -> str:
    """'monthly', 'quarterly', 'weekly', 'business-daily', 'daily', 'hourly', 'yearly', or the
    alias itself ('undated' for None)."""
    if freq is None:
        return "undated"
    return _kind(freq) or str(freq)


def calendar_features(ds, freq) -> np.ndarray:
    """(n, 2): sin and cos of the position in the season (month of the year, quarter, ISO
    week, day of the week, hour of the day); (n, 0) when the frequency has no season."""
    kind = _kind(freq)
    period = _SEASONS.get(kind, 0)
    if ds is None:
        return np.zeros((0, 0))
    d = np.asarray(ds, "datetime64[ns]")
    if not period:
        return np.zeros((len(d), 0))
    if kind == "monthly":
        p = d.astype("datetime64[M]").astype(np.int64) % 12
    elif kind == "quarterly":
        p = (d.astype("datetime64[M]").astype(np.int64) % 12) // 3
    elif kind == "weekly":
        pd = _pd()
        p = np.minimum(pd.DatetimeIndex(d).isocalendar().week.to_numpy(np.int64) - 1, 51)
    elif kind in ("daily", "business-daily"):
        p = (d.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    else:  # hourly
        p = (d.view(np.int64) // 3_600_000_000_000) % 24
    a = 2 * np.pi * np.asarray(p, np.float64) / period
    return np.stack([np.sin(a), np.cos(a)], axis=1)


# ---- future dates ----------------------------------------------------------------------------

def _horizon_error(steps):
    return DataError(f"--horizon {steps} runs past {LAST_DATE}, the last date pandas can "
                     "represent; forecast fewer steps")


def _fixed_step(off):
    """The step in nanoseconds of a fixed-width offset (h, min, s, D), else None."""
    pd = _pd()
    if isinstance(off, pd.offsets.Tick) or type(off) is pd.offsets.Day:
        try:
            return int(pd.Timedelta(off).value)
        except (ValueError, TypeError, OverflowError):
            return None
    return None


def _date_range_ns(start_ns, periods, off):
    pd = _pd()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = pd.date_range(pd.Timestamp(int(start_ns)), periods=periods, freq=off)
    return _to_ns(r)


def step_dates(last, steps: int, freq) -> np.ndarray:
    """The next ``steps`` stamps after each series' last one: (n, steps) ``datetime64[ns]``,
    row i equal to ``pd.date_range(last[i], periods=steps + 1, freq=freq)[1:]``. Vectorised:
    fixed steps by arithmetic; calendar steps by one ``date_range`` over all series (indexed
    with searchsorted), with one ``date_range`` per distinct last stamp for those off it."""
    pd = _pd()
    last = np.asarray(last, "datetime64[ns]").reshape(-1)
    steps = int(steps)
    n = len(last)
    if steps <= 0 or n == 0:
        return np.zeros((n, max(steps, 0)), "datetime64[ns]")
    off = _offset(freq) if isinstance(freq, str) else freq
    t = last.view(np.int64)
    if (t == NAT).any():
        raise DataError("a series has no last date (NaT); cannot step past it")
    step = _fixed_step(off)
    if step is not None:
        hi = int(t.max())
        if hi > _NS_MAX - step * steps or step <= 0:
            raise _horizon_error(steps)
        return (t[:, None] + step * np.arange(1, steps + 1, dtype=np.int64)).view("datetime64[ns]")
    out = np.empty((n, steps), np.int64)
    try:
        end = _date_range_ns(t.max(), steps + 1, off)[-1]
        lo = int(t.min())
        three = _date_range_ns(lo, 3, off)
        est = (end - lo) // max(int(three[2] - three[1]), 1)
        if est < 5_000_000:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                grid = _to_ns(pd.date_range(pd.Timestamp(lo), pd.Timestamp(int(end)), freq=off))
            pos = np.searchsorted(grid, t)
            on = pos < len(grid)
            on[on] = grid[pos[on]] == t[on]
            on &= pos + steps < len(grid)
        else:
            on = np.zeros(n, bool)
        if on.any():
            out[on] = grid[pos[on][:, None] + np.arange(1, steps + 1)]
        if not on.all():  # stamps off the common grid: one date_range per distinct last stamp
            u, inv = np.unique(t[~on], return_inverse=True)
            table = np.stack([_date_range_ns(v, steps + 1, off)[1:] for v in u])
            out[~on] = table[inv.reshape(-1)]
    except (OverflowError, pd.errors.OutOfBoundsDatetime):
        raise _horizon_error(steps) from None
    except ValueError as e:
        if "out of bounds" in str(e).lower() or "overflow" in str(e).lower():
            raise _horizon_error(steps) from None
        raise
    if (out == NAT).any():
        raise _horizon_error(steps)
    return out.view("datetime64[ns]")


# ---- stamps for people -----------------------------------------------------------------------

def stamp(t) -> str:
    """A timestamp for people: the date alone at midnight ('2015-01-01'), else date and time."""
    pd = _pd()
    ts = pd.Timestamp(t)
    if ts is pd.NaT:
        return "NaT"
    return str(ts.date()) if ts == ts.normalize() else str(ts.tz_localize(None) if ts.tz else ts)


def stamps(ds) -> list:
    """``stamp`` of every element of a datetime64 array, vectorised."""
    d = np.asarray(ds, "datetime64[ns]").reshape(-1)
    if not len(d):
        return []
    v = d.view(np.int64)
    day = 86_400_000_000_000
    midnight = (v % day == 0) & (v != NAT)
    out = np.datetime_as_string(d, unit="D").astype(object)
    if not midnight.all():
        whole = (v % 1_000_000_000 == 0)
        rest = ~midnight
        sec = rest & whole
        if sec.any():
            out[sec] = np.char.replace(np.datetime_as_string(d[sec], unit="s"), "T", " ")
        frac = rest & ~whole
        if frac.any():
            out[frac] = [stamp(x) for x in d[frac]]
    return out.tolist()
