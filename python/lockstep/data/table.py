"""The one data model (``Panel``: many series as grouped arrays) and the one reader (``read``).

A ``Panel`` holds every series back to back: series ``i`` is rows ``indptr[i]:indptr[i+1]`` of
``y`` (float64), ``ds`` (datetime64[ns], or None without dates) and ``exog`` (covariates). All
operations on it are vectorised over the rows; nothing loops over series in Python.

``read`` takes a bundled data set name, a CSV or Parquet path, a pandas DataFrame, a NumPy
array or a list of numbers, in long form (id, time, value and covariate columns) or wide form
(a time column and one column per series), and validates it in one place: every problem is a
``DataError`` of one line naming the series, the file's line (header = line 1) and the fix.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np

from . import _BUNDLED, MAX_ABS, DataError, _open_regular
from . import calendar as cal
from .calendar import NAT

# cells read as missing in value and covariate columns (pandas' default NA strings); id and time
# columns are read as text: an id "NA" is a name
NA_STRINGS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
              "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
_YMD = re.compile(r"^\d{4}-\d{1,2}(-\d{1,2})?\b")
_GRID_MAX = 5_000_000  # stamps of one common date grid for the regularity check


def _pd():
    try:
        import pandas as pd
    except ImportError as e:  # pragma: no cover - pandas is a dependency
        raise DataError(f"reading tables needs pandas ({e}); pip install pandas") from None
    return pd


def _q(x, n=40) -> str:
    """A cell or a name quoted for a message, cut to ``n`` characters."""
    s = str(x)
    return repr(s if len(s) <= n else s[:n] + "...")


def _names(cols, n=20) -> str:
    more = f", ... ({len(cols)} in all)" if len(cols) > n else ""
    return ", ".join(map(str, cols[:n])) + more


# ---- the data model --------------------------------------------------------------------------

@dataclass(eq=False)
class Panel:
    """Series keyed by id as grouped arrays: series ``i`` is rows ``indptr[i]:indptr[i+1]`` of
    ``y``, ``ds`` and ``exog``; all at one regular frequency ``freq`` (None without dates)."""

    ids: np.ndarray  # (n,) unicode, unique, in order of first appearance in the input
    indptr: np.ndarray  # (n+1,) int64
    y: np.ndarray  # (rows,) float64, finite
    ds: np.ndarray | None  # (rows,) datetime64[ns], regular at freq in each series; None: steps
    exog: np.ndarray  # (rows, e) float64, finite
    exog_names: tuple  # e names
    freq: str | None  # pandas frequency string; None without dates
    source: str = ""
    period: int | None = None  # a season given explicitly (undated data); else season_of(freq)

    def __post_init__(self):
        self.ids = np.asarray(self.ids, dtype=str).reshape(-1)
        self.indptr = np.asarray(self.indptr, np.int64).reshape(-1)
        self.y = np.asarray(self.y, np.float64).reshape(-1)
        rows = len(self.y)
        if self.ds is not None:
            self.ds = np.asarray(self.ds, "datetime64[ns]").reshape(-1)
        ex = np.asarray(self.exog, np.float64)
        if ex.size == 0:
            ex = ex.reshape(rows, ex.shape[1] if ex.ndim == 2 and ex.shape[0] == rows else 0)
        self.exog = ex
        self.exog_names = tuple(str(n) for n in self.exog_names)
        ip = self.indptr
        if (len(ip) != len(self.ids) + 1 or ip[0] != 0 or ip[-1] != rows
                or (len(ip) > 1 and (np.diff(ip) < 0).any())):
            raise DataError(f"a panel of {len(self.ids)} series needs indptr of {len(self.ids) + 1} "
                            f"non-decreasing offsets from 0 to {rows}")
        if self.ds is not None and len(self.ds) != rows:
            raise DataError(f"ds has {len(self.ds)} stamps for {rows} values")
        if ex.ndim != 2 or ex.shape != (rows, len(self.exog_names)):
            raise DataError(f"exog of shape {ex.shape} does not match {rows} rows and "
                            f"{len(self.exog_names)} covariate names")

    @property
    def season(self) -> int:
        return int(self.period) if self.period is not None else cal.season_of(self.freq)

    def __len__(self):
        return len(self.ids)

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def rows(self, i) -> slice:
        return slice(int(self.indptr[i]), int(self.indptr[i + 1]))

    def values(self, i) -> np.ndarray:
        return self.y[self.rows(i)]

    def last_dates(self):
        """Each series' last stamp, (n,) datetime64[ns] (NaT for an empty series); None
        without dates."""
        if self.ds is None:
            return None
        out = np.full(len(self), np.datetime64("NaT"), "datetime64[ns]")
        has = self.lengths() > 0
        out[has] = self.ds[self.indptr[1:][has] - 1]
        return out

    def fingerprint(self) -> str:
        """SHA-256 of the ids, the grouping, the values, the covariates and their names."""
        h = hashlib.sha256()
        for part in ("\0".join(self.ids.tolist()).encode(), self.indptr.tobytes(),
                     np.ascontiguousarray(self.y).tobytes(),
                     np.ascontiguousarray(self.exog).tobytes(),
                     "\0".join(self.exog_names).encode()):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)
        return h.hexdigest()

    def _take_rows(self, keep, indptr, **kw) -> "Panel":  # noqa: D401
        return replace(self, indptr=indptr, y=self.y[keep],
                       ds=None if self.ds is None else self.ds[keep], exog=self.exog[keep], **kw)

    def truncated(self, drop_last) -> "Panel":
        """Each series without its last ``drop_last`` rows (an int, or one per series): a
        backtest's past. A series shorter than that is left empty."""
        L = self.lengths()
        d = np.broadcast_to(np.asarray(drop_last, np.int64), L.shape)
        if (d < 0).any():
            raise DataError(f"cannot drop a negative number of rows ({int(d.min())})")
        keep_n = np.maximum(L - d, 0)
        pos = np.arange(len(self.y), dtype=np.int64) - np.repeat(self.indptr[:-1], L)
        keep = pos < np.repeat(keep_n, L)
        return self._take_rows(keep, np.concatenate([[0], np.cumsum(keep_n)]))

    def subset(self, idx) -> "Panel":
        """The series at integer positions ``idx`` (or a boolean mask), in that order."""
        pos = np.arange(len(self))[np.asarray(idx) if not isinstance(idx, slice) else idx]
        pos = np.atleast_1d(pos)
        if len(np.unique(pos)) != len(pos):
            raise DataError("subset names a series more than once; ids must stay unique")
        L = self.lengths()[pos]
        indptr = np.concatenate([[0], np.cumsum(L)]).astype(np.int64)
        rows = np.repeat(self.indptr[pos] - indptr[:-1], L) + np.arange(indptr[-1], dtype=np.int64)
        return self._take_rows(rows, indptr, ids=self.ids[pos])

    def to_frame(self):
        """Long form: unique_id, ds (an integer ``step`` column instead without dates), y and
        the covariate columns."""
        pd = _pd()
        L = self.lengths()
        d = {"unique_id": np.repeat(self.ids, L)}
        if self.ds is not None:
            d["ds"] = self.ds
        else:
            d["step"] = np.arange(len(self.y), dtype=np.int64) - np.repeat(self.indptr[:-1], L)
        d["y"] = self.y
        for j, n in enumerate(self.exog_names):
            d[n] = self.exog[:, j]
        return pd.DataFrame(d)

    def describe(self) -> list:
        """One dict per series: unique_id, rows, start, end (stamps, or step numbers without
        dates), freq, season, min, max, mean (None for an empty series)."""
        L = self.lengths()
        n = len(self)
        has = L > 0
        mn = np.full(n, np.nan)
        mx = np.full(n, np.nan)
        mean = np.full(n, np.nan)
        if has.any():
            starts = self.indptr[:-1][has]
            mn[has] = np.minimum.reduceat(self.y, starts)
            mx[has] = np.maximum.reduceat(self.y, starts)
            mean[has] = np.add.reduceat(self.y, starts) / L[has]
        if self.ds is not None:
            first = np.where(has, self.indptr[:-1], 0)
            last = np.where(has, self.indptr[1:] - 1, 0)
            start = cal.stamps(self.ds[first]) if len(self.ds) else [None] * n
            end = cal.stamps(self.ds[last]) if len(self.ds) else [None] * n
        else:
            start, end = [0] * n, (L - 1).tolist()
        season = self.season
        out = []
        for i, (sid, k) in enumerate(zip(self.ids.tolist(), L.tolist())):
            ok = k > 0
            out.append({"unique_id": sid, "rows": k, "start": start[i] if ok else None,
                        "end": end[i] if ok else None, "freq": self.freq, "season": season,
                        "min": float(mn[i]) if ok else None, "max": float(mx[i]) if ok else None,
                        "mean": float(mean[i]) if ok else None})
        return out


# ---- where rows came from --------------------------------------------------------------------

class _Src:
    """The source's name and how to point at a row: a CSV's line (header = line 1) or a
    table's row position."""

    def __init__(self, where: str, lines: bool):
        self.where, self.lines = where, lines

    def num(self, row) -> int:
        return int(row) + 2 if self.lines else int(row)

    def at(self, row) -> str:
        return f"{'line' if self.lines else 'row'} {self.num(row)}"

    def unit(self) -> str:
        return "lines" if self.lines else "rows"


# ---- cells -> arrays -------------------------------------------------------------------------

def _floats(s):
    """A column -> (float64 values with NaN where missing, mask of cells that hold text that is
    not a number)."""
    pd = _pd()
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        v, bad = _floats(pd.Series(np.asarray(s.cat.categories, object), dtype=object))
        c = np.asarray(s.cat.codes, np.int64)
        if not len(v):
            return np.full(len(c), np.nan), np.zeros(len(c), bool)
        return np.where(c >= 0, v[np.maximum(c, 0)], np.nan), (c >= 0) & bad[np.maximum(c, 0)]
    if dt.kind in "iufb":
        return s.to_numpy(np.float64, na_value=np.nan), np.zeros(len(s), bool)
    if dt.kind == "c":
        return np.full(len(s), np.nan), np.ones(len(s), bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        num = pd.to_numeric(s, errors="coerce")
        v = num.to_numpy(np.float64, na_value=np.nan)
        nan = np.isnan(v)
        if not nan.any():
            return v, np.zeros(len(s), bool)
        cells = s[nan]
        missing = np.array(cells.isna().to_numpy(bool))
        text = cells[~missing].astype(str).str.strip()
        missing[~missing] = text.isin(NA_STRINGS).to_numpy(bool) | \
            text.str.lower().isin(("nan", "-nan", "+nan")).to_numpy(bool)
    bad = np.zeros(len(s), bool)
    bad[np.flatnonzero(nan)[~missing]] = True
    return v, bad


def _id_text(x) -> str:
    if isinstance(x, (float, np.floating)) and float(x).is_integer():
        return str(int(x))
    return str(x)


def _ids(s):
    """An id column -> (int64 codes in order of first appearance, -1 where empty; names)."""
    pd = _pd()
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = np.asarray(s.cat.categories.astype(str), object)
        codes, uniq = pd.factorize(np.asarray(s.cat.codes, np.int64))
        uniq = np.asarray(uniq, np.int64)
        names = [cats[u] if u >= 0 else None for u in uniq]
    else:
        codes, uniq = pd.factorize(s, use_na_sentinel=True)
        names = [_id_text(u) for u in np.asarray(uniq, object)]
    codes = np.asarray(codes, np.int64)
    bad = [k for k, nm in enumerate(names) if nm is None or nm == ""]
    merged = len(set(names)) != len(names)
    if bad or merged:  # drop empty names; ids that read alike (1 and "1") become one series
        keep = [nm for nm in names if nm is not None and nm != ""]
        c2, u2 = pd.factorize(np.asarray(keep, object))
        remap = np.full(len(names) + 1, -1, np.int64)
        j = 0
        for k, nm in enumerate(names):
            if nm is None or nm == "":
                continue
            remap[k] = c2[j]
            j += 1
        codes = remap[codes]  # codes -1 -> remap[-1] = -1
        names = [str(u) for u in u2]
    return codes, names


# ---- the plan: which columns mean what -------------------------------------------------------

@dataclass
class _Plan:
    long: bool
    id: str | None
    time: str | None
    values: list
    exog: list
    index_time: bool = False  # a wide DataFrame's DatetimeIndex as its time axis

    def columns(self):
        return [c for c in (self.id, None if self.index_time else self.time) if c] + \
            list(self.values) + list(self.exog)


def _plan(cols, where, id_column, time_column, value_column, exog, first_is_time,
          index_time=False) -> _Plan:
    exog = list(exog)
    if len(set(exog)) != len(exog):
        raise DataError(f"--exog names a column more than once ({', '.join(exog)})")
    long = id_column is not None or "unique_id" in cols
    idc = id_column if id_column is not None else "unique_id"
    if time_column is not None and time_column not in cols:
        raise DataError(f"{where} has no time column {_q(time_column)}; columns are "
                        f"{_names(cols)} (set --time-column)")
    if long:
        if idc not in cols:
            raise DataError(f"{where} has no id column {_q(idc)}; columns are {_names(cols)} "
                            "(set --id-column, or leave it out for a wide table)")
        if isinstance(value_column, (list, tuple)):
            if len(value_column) != 1:
                raise DataError(f"a long table has one value column; --value-column names "
                                f"{len(value_column)}")
            value_column = value_column[0]
        val = value_column if value_column is not None else "y"
        time = time_column if time_column is not None else ("ds" if "ds" in cols else None)
        if time == idc:
            raise DataError(f"--time-column {time} is the id column; give the column of dates")
        if val == idc:
            raise DataError(f"--value-column {val} is the id column; give the column of values")
        if val == time:
            raise DataError(f"--value-column {val} is the time column; give the column of values")
        if val not in cols:
            raise DataError(f"{where} has no value column {_q(val)}; columns are {_names(cols)} "
                            "(set --value-column)")
        for e in exog:
            for what, c in (("id", idc), ("time", time), ("value", val)):
                if e == c:
                    raise DataError(f"--exog {e} is the {what} column; covariates are other "
                                    "columns")
            if e not in cols:
                raise DataError(f"{where} has no covariate column {_q(e)}; columns are "
                                f"{_names(cols)}")
        return _Plan(True, idc, time, [val], exog)
    if exog:
        raise DataError(f"{where} is a wide table (no id column 'unique_id'): covariates "
                        "(--exog) need the long form (unique_id, ds, y, covariates); set "
                        "--id-column")
    if time_column is not None:
        time = time_column
    elif "ds" in cols:
        time = "ds"
    elif index_time:
        time = None
    elif len(cols) > 1 and first_is_time():
        time = cols[0]
    else:
        time = None
    if value_column is None:
        vals = [c for c in cols if c != time]
    else:
        vals = [value_column] if isinstance(value_column, str) else list(value_column)
        for v in vals:
            if v == time:
                raise DataError(f"--value-column {v} is the time column; give columns of values")
            if v not in cols:
                raise DataError(f"{where} has no value column {_q(v)}; columns are "
                                f"{_names(cols)}")
        if len(set(vals)) != len(vals):
            raise DataError(f"--value-column names a column more than once ({_names(vals)})")
    if not vals:
        raise DataError(f"{where} has only the time column {_q(time)}; add a column of values "
                        "per series")
    if any(v == "" for v in vals):
        raise DataError(f"{where}: column {cols.index('') + 1} has no name in the header; name "
                        "the series")
    return _Plan(False, None, time, vals, [], index_time=index_time and time is None)


def _numeric_column(s) -> bool:
    """Whether a column holds only numbers (and empty cells): not a time column."""
    pd = _pd()
    if s.dtype.kind in "iufb":
        return True
    if s.dtype.kind == "M" or isinstance(s.dtype, (pd.DatetimeTZDtype, pd.PeriodDtype)):
        return False
    v, bad = _floats(s)
    return not bad.any()


# ---- validation: the one place ---------------------------------------------------------------

def _check_values(v, bad_text, sid_of, src, text_of=None):
    """Refuse text, missing, infinite and huge values; ``sid_of(row)``/``col_of(row)`` name
    the series and the column for the message. Rows are positions in ``v``."""
    for kind in ("text", "missing", "inf", "big"):
        if kind == "text":
            m = bad_text
        elif kind == "missing":
            m = np.isnan(v)
        elif kind == "inf":
            m = np.isinf(v)
        else:
            with np.errstate(invalid="ignore"):
                m = np.abs(v) > MAX_ABS
        if m is None or not m.any():
            continue
        k = int(np.flatnonzero(m)[0])
        sid, col, row = sid_of(k)
        c = f" in column {_q(col)}" if col is not None else ""
        head = f"{src.where}: series {_q(sid)}"
        if kind == "text":
            raise DataError(f"{head}: {_q(text_of(k))} at {src.at(row)}{c} is not a number; fix "
                            "the cell or choose other columns")
        if kind == "missing":
            raise DataError(f"{head} has no value at {src.at(row)}{c} (empty or NA); fill the "
                            "cell or drop the row")
        if kind == "inf":
            raise DataError(f"{head}: value {v[k]} at {src.at(row)}{c} is not finite; remove or "
                            "fill it")
        raise DataError(f"{head}: value {v[k]:.6g} at {src.at(row)}{c} is beyond "
                        f"\u00b1{MAX_ABS:g}, where the float64 preprocessing overflows; rescale "
                        "the column")


def _check_times(ns, missing, text_of, sid_of, src, time_col):
    bad = ns == NAT
    if not bad.any():
        return
    empty = bad & missing
    other = bad & ~missing
    if other.any():
        k = int(np.flatnonzero(other)[0])
        sid, row = sid_of(k)
        cell = str(text_of(k))
        hint = " (a month past 12 or a day past the month's end?)" if _YMD.match(cell.strip()) else ""
        raise DataError(f"{src.where}: series {_q(sid)}: time value {_q(cell)} at {src.at(row)} is "
                        f"not a date{hint}; use ISO dates such as 2020-01-31, 2020-01 or 2020-Q1")
    k = int(np.flatnonzero(empty)[0])
    sid, row = sid_of(k)
    raise DataError(f"{src.where}: series {_q(sid)} has no date at {src.at(row)} (the time "
                    f"column {_q(time_col)} is empty); give every row its date")


def _infer(ds, indptr, names, src, time_col):
    L = np.diff(indptr)
    cand = [int(np.argmax(L))] + [int(i) for i in np.flatnonzero(L >= 3)[:5]]
    found = {}
    for i in dict.fromkeys(cand):
        f = cal.infer_freq(ds[indptr[i]:indptr[i + 1]])
        if f is not None:
            found.setdefault(f, i)
    if not found:  # irregular: infer from the start of the longest series, to name the break
        i = cand[0]
        for m in sorted({int(L[i]) // 2, 24, 12, 6, 3}, reverse=True):
            if 3 <= m < L[i]:
                f = cal.infer_freq(ds[indptr[i]:indptr[i] + m])
                if f is not None:
                    return f
        raise DataError(f"{src.where}: cannot infer the frequency of the time column "
                        f"{_q(time_col)}: the longest series {_q(names[i])} ({int(L[i])} rows) "
                        "needs 3 or more regular timestamps; pass --freq (e.g. MS, D, h)")
    if len(found) > 1:
        kinds = ", ".join(f"{f} for {_q(names[i])}" for f, i in found.items())
        raise DataError(f"{src.where}: series have different frequencies ({kinds}); give series "
                        "of one frequency")
    return next(iter(found))


def _date_range(start_ns, periods, off):
    return cal._date_range_ns(start_ns, periods, off)


def _irregular(ds, codes, indptr, off) -> np.ndarray:
    """Rows whose stamp is not the one the frequency puts there after the series' previous
    stamp (or, for a series' first row, a stamp off the frequency's anchor): a bool mask."""
    t = ds.view(np.int64)
    rows = len(t)
    bad = np.zeros(rows, bool)
    same = codes[1:] == codes[:-1]
    step = cal._fixed_step(off)
    if step is not None:
        bad[1:] = same & (np.diff(t) != step)
        return bad
    pd = _pd()
    L = np.diff(indptr)
    lo, hi = int(t.min()), int(t.max())
    on_series = np.zeros(len(L), bool)
    try:
        three = _date_range(lo, 3, off)
        est = (hi - lo) // max(int(three[2] - three[1]), 1)
    except (OverflowError, ValueError):
        est = _GRID_MAX + 1
    if est <= _GRID_MAX:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            grid = cal._to_ns(pd.date_range(pd.Timestamp(lo), pd.Timestamp(hi), freq=off))
        pos = np.searchsorted(grid, t)
        on = pos < len(grid)
        on[on] = grid[pos[on]] == t[on]
        on_series = np.bincount(codes, weights=~on, minlength=len(L)) == 0
        step_bad = np.diff(pos) != 1
        bad[1:] = same & on_series[codes[1:]] & step_bad
    off_rows = np.flatnonzero(~on_series[codes])
    if off_rows.size:  # series off the common grid: one date_range per distinct first stamp
        ser = np.flatnonzero(~on_series & (L > 0))
        firsts = t[indptr[:-1][ser]]
        u, inv = np.unique(firsts, return_inverse=True)
        inv = inv.reshape(-1)
        maxlen = np.zeros(len(u), np.int64)
        np.maximum.at(maxlen, inv, L[ser])
        goff = np.concatenate([[0], np.cumsum(maxlen)])
        flat = np.concatenate([_date_range(v, int(m), off) for v, m in zip(u, maxlen)])
        group = np.full(len(L), -1, np.int64)
        group[ser] = inv
        c = codes[off_rows]
        within = off_rows - indptr[c]
        bad[off_rows] = t[off_rows] != flat[goff[group[c]] + within]
    return bad


def _regularity_error(src, sid, t, rows, freq, given, ref):
    """The message for series ``sid`` (stamps ``t``, source rows ``rows``) not regular at
    ``freq``."""
    g = cal.infer_freq(t)
    if g is not None and g != freq:
        other = "the given --freq" if given else f"the frequency of series {_q(ref)}"
        raise DataError(f"{src.where}: series {_q(sid)} is at frequency {g}, not {freq} ({other}); "
                        "give series of one frequency")
    want = _date_range(int(t.view(np.int64)[0]), len(t), cal._offset(freq))
    k = int(np.flatnonzero(want != t.view(np.int64))[0])
    if k == 0:
        raise DataError(f"{src.where}: series {_q(sid)} starts at {cal.stamp(t[0])} "
                        f"({src.at(rows[0])}), which is not a stamp of frequency {freq} (the next "
                        f"is {cal.stamp(want.view('datetime64[ns]')[0])}); align the dates to the "
                        "frequency or pass another --freq")
    prev = cal.stamp(t[k - 1])
    raise DataError(f"{src.where}: series {_q(sid)} is not regular at frequency {freq}: {prev} "
                    f"is followed by {cal.stamp(t[k])} ({src.at(rows[k])}), expected "
                    f"{cal.stamp(want.view('datetime64[ns]')[k])}; fill the gap or resample")


def _spans(n):
    """Position ranges ``(a, b)`` covering ``0..n``, each sharing its last position with the
    next one's first, so that every pair of neighbours lies in one range: the stamp checks'
    temporaries stay a small part of the data's size."""
    step = max(1 << 16, n >> 6)
    a = 0
    while True:
        b = min(n, a + step + 1)
        yield a, b
        if b >= n:
            return
        a = b - 1


def _assemble(names, indptr, ds, y, exog, exog_names, rows, src, freq, period, time_col):
    """The Panel of grouped arrays (series ``i`` is positions ``indptr[i]:indptr[i+1]``), after
    checking the order and regularity of each series' stamps. ``rows(a, b)``: the series and
    the source row of positions ``a..b-1``, made per range so that neither is stored per
    value."""
    n = len(names)
    if n == 0 or len(y) == 0:
        raise DataError(f"{src.where} has no data rows; give a table with values")
    ids = np.asarray(names, dtype=str)
    if ds is None:
        if freq is not None:
            raise DataError(f"--freq {freq} needs dates: {src.where} has no time column (set "
                            "--time-column)")
        return Panel(ids, indptr, y, None, exog, exog_names, None, src.where, period)
    # of the bad rows, the first in the source is reported (then the first series): the ranges
    # come in position order, so an equal row found later belongs to a later series
    worst = None
    for a, b in _spans(len(y)):
        codes, rowno = rows(a, b)
        d = np.diff(ds[a:b].view(np.int64))
        bad = (codes[1:] == codes[:-1]) & (d <= 0)
        if bad.any():
            k = np.flatnonzero(bad)
            k = int(k[np.argmin(rowno[k + 1])])
            if worst is None or rowno[k + 1] < worst[0]:
                worst = (rowno[k + 1], names[codes[k]], d[k], a + k, rowno[k])
    if worst is not None:
        r1, sid, dk, k, r0 = worst
        if dk == 0:
            raise DataError(f"{src.where}: series {_q(sid)} has the timestamp "
                            f"{cal.stamp(ds[k])} more than once ({src.unit()} "
                            f"{src.num(r0)}, {src.num(r1)}); keep one row per time")
        raise DataError(f"{src.where}: series {_q(sid)}: {cal.stamp(ds[k + 1])} at "
                        f"{src.at(r1)} comes after {cal.stamp(ds[k])}; sort the table by time")
    given = freq is not None
    if freq is None:
        freq = _infer(ds, indptr, names, src, time_col)
    off = cal._offset(freq)
    for a, b in _spans(len(y)):
        codes, rowno = rows(a, b)
        j0 = int(codes[0])
        local = np.clip(indptr[j0:int(codes[-1]) + 2], a, b) - a
        irr = _irregular(ds[a:b], codes - j0, local, off)
        if irr.any():
            k = np.flatnonzero(irr)
            k = int(k[np.argmin(rowno[k])])
            if worst is None or rowno[k] < worst[0]:
                worst = (rowno[k], int(codes[k]))
    if worst is not None:
        i = worst[1]
        r = slice(indptr[i], indptr[i + 1])
        ref = names[int(np.argmax(np.diff(indptr)))]
        _regularity_error(src, names[i], ds[r], rows(r.start, r.stop)[1], freq, given, ref)
    return Panel(ids, indptr, y, ds, exog, exog_names, freq, src.where, period)


# ---- tables -> long arrays -------------------------------------------------------------------

class _Cols:
    """Column access to a table: ``get(name)`` a pandas Series; ``floats(name)`` a value column
    as ``_floats`` gives it; ``block(names)`` value columns as one (columns, rows) array (a
    ``_Block``, which the caller may overwrite); ``text(name, row)`` a cell for messages.
    ``parsed``: value columns parsed already (float64 arrays by name), handed over by
    ``floats`` so that their memory goes once the caller is done with each; ``block``: value
    columns the CSV reader read into one array."""

    def __init__(self, df, names, src, index_ns=None, block=None):
        self.df, self.names, self.src, self.index_ns = df, names, src, index_ns
        self.parsed, self._block = {}, block
        self.rows = len(df)

    def get(self, name):
        return self.df.iloc[:, self.names.index(name)]

    def floats(self, name):
        if self._block is not None:
            return self._block.column(name)
        if name in self.parsed:
            v = self.parsed.pop(name)
            return v, np.zeros(len(v), bool)
        return _floats(self.get(name))

    def block(self, names) -> "_Block":
        b, self._block = self._block, None
        if b is not None and b.names == list(names):
            return b
        V = np.empty((len(names), self.rows))
        bad = np.zeros(V.shape, bool)
        cells = {}
        for j, c in enumerate(names):
            V[j], bad[j] = _floats(self.get(c))
            if bad[j].any():
                r = int(np.argmax(bad[j]))
                cells[c] = {r: self.get(c).iloc[r]}
        return _Block(V, self.rows, names, bad, cells)

    def text(self, name, row):
        if self._block is not None and name in self._block.cells:
            return self._block.cells[name][row]
        return self.get(name).iloc[row]


def _missing_text(s) -> np.ndarray:
    """Cells that are empty (None/NaN or blank text)."""
    pd = _pd()
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = np.asarray(s.cat.categories.astype(str).str.strip() == "", bool)
        c = np.asarray(s.cat.codes, np.int64)
        return (c < 0) | (cats[np.maximum(c, 0)] if len(cats) else True)
    miss = np.array(s.isna().to_numpy(bool))
    if s.dtype.kind in "OUT" or pd.api.types.is_string_dtype(s.dtype):
        txt = s[~miss]
        miss[~miss] = (txt.astype(str).str.strip() == "").to_numpy(bool)
    return miss


def _long(cols: _Cols, plan: _Plan, freq, period):
    src = cols.src
    idcol = cols.get(plan.id)
    codes, names = _ids(idcol)
    id_missing = codes < 0
    rowno = np.arange(len(codes), dtype=np.int64)
    vcols = plan.values + plan.exog
    nums = [cols.floats(c) for c in vcols]
    t_missing = _missing_text(cols.get(plan.time)) if plan.time else None
    blank = id_missing.copy()
    for v, b in nums:
        blank &= np.isnan(v) & ~b
    if t_missing is not None:
        blank &= t_missing
    if blank.any():  # blank lines
        keep = ~blank
        codes, rowno, id_missing = codes[keep], rowno[keep], id_missing[keep]
        nums = [(v[keep], b[keep]) for v, b in nums]
        t_missing = None if t_missing is None else t_missing[keep]
    if id_missing.any():
        k = int(np.flatnonzero(id_missing)[0])
        raise DataError(f"{src.where} {src.at(rowno[k])}: the id column {_q(plan.id)} is empty; "
                        "give every row its series id")
    for c, (v, b) in zip(vcols, nums):
        _check_values(v, b, lambda k: (names[codes[k]], c, rowno[k]), src,
                      text_of=lambda k: cols.text(c, rowno[k]))
    ds = None
    if plan.time:
        ns = cal.to_ns(cols.get(plan.time))
        if blank.any():
            ns = ns[~blank]
        _check_times(ns, t_missing, lambda k: cols.text(plan.time, rowno[k]),
                     lambda k: (names[codes[k]], rowno[k]), src, plan.time)
        ds = ns.view("datetime64[ns]")
    y = nums[0][0]
    exog = np.stack([v for v, _ in nums[1:]], axis=1) if plan.exog else \
        np.zeros((len(y), 0))
    del nums
    if len(codes) > 1 and (codes[1:] < codes[:-1]).any():  # group the rows by series, stably
        order = np.argsort(codes, kind="stable")
        codes, y, exog, rowno = codes[order], y[order], exog[order], rowno[order]
        ds = None if ds is None else ds[order]
        del order
    indptr = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(names)))])
    return _assemble(names, indptr, ds, y, exog, tuple(plan.exog),
                     lambda a, b: (codes[a:b], rowno[a:b]), src, freq, period, plan.time)


def _wide(cols: _Cols, plan: _Plan, freq, period):
    src = cols.src
    names = list(plan.values)
    K, T = len(names), cols.rows
    # one (series, rows) block that becomes the values in place; per series its first and last
    # value, its first hole between them, whether it holds an infinite (2) or huge (1) value;
    # the errors come after, in the order of the checks over the whole table
    blk = cols.block(names)
    text_at = blk.first_text()
    first, last = np.zeros(K, np.int64), np.full(K, -1, np.int64)
    hole_at = np.full(K, T, np.int64)
    odd = np.zeros(K, np.int8)
    for j in range(K):
        present = ~np.isnan(blk.V[j, :T])
        if present.any():
            first[j], last[j] = np.argmax(present), T - 1 - np.argmax(present[::-1])
            inside = blk.V[j, first[j]:last[j] + 1]
            if not present[first[j]:last[j] + 1].all():
                hole_at[j] = first[j] + np.argmin(present[first[j]:last[j] + 1])
            with np.errstate(invalid="ignore"):
                odd[j] = 2 if np.isinf(inside).any() else int((np.abs(inside) > MAX_ABS).any())
    if (text_at < T).any():
        j = int(np.argmin(text_at))
        r = int(text_at[j])
        raise DataError(f"{src.where}: series {_q(names[j])}: {_q(blk.cells[names[j]][r])} at "
                        f"{src.at(r)} is not a number; fix the cell or choose columns with "
                        "--value-column")
    has = last >= 0  # an empty row inside a series is a hole; before or after it, nothing
    if not has.all():
        j = int(np.flatnonzero(~has)[0])
        raise DataError(f"{src.where}: series {_q(names[j])} has no values; fill the column or "
                        "leave it out (--value-column)")
    if (hole_at < T).any():
        j = int(np.argmin(hole_at))
        raise DataError(f"{src.where}: series {_q(names[j])} has an empty cell at "
                        f"{src.at(hole_at[j])} between its first and last values; fill it (only "
                        "the start and end of a column may be empty)")
    ns = None
    if plan.index_time:
        ns = cols.index_ns
        t_missing = ns == NAT
    elif plan.time:
        ns = cal.to_ns(cols.get(plan.time))
        t_missing = _missing_text(cols.get(plan.time))
    if ns is not None:  # every row that holds a value needs its date
        cover = np.zeros(T + 1, np.int64)
        np.add.at(cover, first, 1)
        np.add.at(cover, last + 1, -1)
        bad_t = (ns == NAT) & (np.cumsum(cover[:T]) > 0)
        if bad_t.any():
            i = int(np.flatnonzero(bad_t)[0])
            j = int(np.flatnonzero((first <= i) & (last >= i))[0])
            sid_of = lambda k: (names[j], i)  # noqa: E731
            text = (lambda k: "") if plan.index_time else (lambda k: cols.text(plan.time, i))
            _check_times(ns[i:i + 1], t_missing[i:i + 1], text, sid_of, src,
                         plan.time or "the index")
    if odd.any():  # the first series with an infinite value, else with a huge one
        j = int(np.argmax(odd == odd.max()))
        _check_values(blk.V[j, first[j]:last[j] + 1], None,
                      lambda k: (names[j], None, first[j] + k), src)
    indptr = np.concatenate([[0], np.cumsum(last - first + 1)])
    # series j moves left from its row of the block to indptr[j]: y fills the block's start
    flat, cap = blk.V.reshape(-1), blk.V.shape[1]
    blk = None
    for j in range(K):
        flat[indptr[j]:indptr[j + 1]] = flat[j * cap + first[j]:j * cap + last[j] + 1]
    y = flat[:indptr[-1]]
    if len(flat) > len(y) + len(y) // 4:  # a block much larger than the values: give it back
        y = y.copy()
    del flat
    ds = None
    if ns is not None:
        ds = np.empty(len(y), "datetime64[ns]")
        for j in range(K):
            ds[indptr[j]:indptr[j + 1]] = ns[first[j]:last[j] + 1].view("datetime64[ns]")

    def rows(a, b):
        q = np.arange(a, b, dtype=np.int64)
        j = np.searchsorted(indptr, q, "right") - 1
        return j, first[j] + (q - indptr[j])

    return _assemble(names, indptr, ds, y, np.zeros((len(y), 0)), (), rows, src, freq, period,
                     plan.time)


def _build(cols: _Cols, plan: _Plan, freq, period):
    return (_long if plan.long else _wide)(cols, plan, freq, period)


# ---- sources ---------------------------------------------------------------------------------

def _frame(df, where, opts, freq, period, lines=False):
    pd = _pd()
    names = [str(c) for c in df.columns]
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise DataError(f"{where} has duplicate column names: {_names(dup)}; name each column once")
    src = _Src(where, lines)
    index_ns = None
    if isinstance(df.index, pd.DatetimeIndex):
        index_ns = cal.to_ns(df.index)
    cols = _Cols(df, names, src, index_ns)

    def first_is_time():
        return not _numeric_column(df.iloc[:, 0])

    plan = _plan(names, where, *opts, first_is_time, index_time=index_ns is not None)
    return _build(cols, plan, freq, period)


def _pd_read(raw, p, each=None, **kw):
    """pandas.read_csv from the start of the open file; its errors as one-line DataErrors.
    ``each``: with ``chunksize``, called on each chunk."""
    pd = _pd()
    raw.seek(0)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = pd.read_csv(raw, **kw)
            if each is not None:
                with df:
                    for chunk in df:
                        each(chunk)
        if any(issubclass(w.category, pd.errors.ParserWarning) and "Length of header" in
               str(w.message) for w in caught):
            _long_row(raw, p)  # a row with more cells than the header
        return df
    except pd.errors.EmptyDataError:
        raise DataError(f"{p} is empty; it needs a header row and at least one data row") from None
    except IndexError:  # pandas' usecols on a file of a header alone
        raise DataError(f"{p} has a header but no data rows; add rows") from None
    except UnicodeDecodeError:
        raise DataError(f"{p} is not UTF-8 text; save it as a UTF-8 CSV file") from None
    except pd.errors.ParserError as e:
        msg = str(e).strip().splitlines()[-1].split("C error: ")[-1] if str(e).strip() else ""
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", msg)
        if m:
            raise DataError(f"{p} line {m.group(2)} has {m.group(3)} cells but the header has "
                            f"{m.group(1)}; fix the row") from None
        raise DataError(f"{p}: not valid CSV ({msg[:120]}); fix the file") from None
    except OSError as e:
        raise DataError(f"cannot read {p}: {e.strerror or e}") from None
    finally:
        raw.seek(0)


def _long_row(raw, p):
    """Name the first row with more cells than the header (pandas only warns of it)."""
    import csv
    import io

    raw.seek(0)
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    try:
        reader = csv.reader(text)
        header = next(reader, [])
        for r in reader:
            if len(r) > len(header):
                raise DataError(f"{p} line {reader.line_num} has {len(r)} cells but the header "
                                f"has {len(header)}; fix the row")
        raise DataError(f"{p}: a row has more cells than the header; fix the file")
    except csv.Error as e:
        raise DataError(f"{p} line {reader.line_num}: not valid CSV ({e}); fix the file") from None
    finally:
        text.detach()


class _Found(Exception):
    """Stops a chunked read early."""


def _read_csv(p: Path, where, opts, freq, period):
    pd = _pd()
    with _open_regular(p) as fh:
        raw = fh.buffer
        h = _pd_read(raw, p, header=None, nrows=1, dtype=str, keep_default_na=False,
                     encoding="utf-8-sig", index_col=False, skip_blank_lines=False)
        if not len(h):
            raise DataError(f"{p} is empty; it needs a header row and at least one data row")
        header = [str(c) for c in h.iloc[0].tolist()]
        if not any(c.strip() for c in header):
            raise DataError(f"{p}: line 1 is empty; the first line must name the columns")
        if len(set(header)) != len(header):
            dup = sorted({c for c in header if header.count(c) > 1})
            raise DataError(f"{p} has duplicate column names in its header: {_names(dup)}; "
                            "name each column once")
        base = dict(header=0, index_col=False, encoding="utf-8-sig", keep_default_na=False,
                    skip_blank_lines=False, engine="c")  # columns by position: names as written

        def first_is_time():  # in chunks, up to the first cell that is not a number
            def each(chunk):
                if not _numeric_column(chunk.iloc[:, 0]):
                    raise _Found

            try:
                _pd_read(raw, p, each=each, usecols=[0], dtype=str, chunksize=1 << 12, **base)
            except _Found:
                return True
            return False

        plan = _plan(header, where, *opts, first_is_time)
        need = plan.columns()
        pos = [header.index(c) for c in need]
        dtype, na = {}, {}
        for c, j in zip(need, pos):
            if c == plan.time and not plan.long:
                dtype[j] = str  # a wide table's times are distinct: compact (Arrow) text
            elif c in (plan.id, plan.time):
                dtype[j] = "category"  # parsed once per distinct cell
            else:
                dtype[j], na[j] = "float64", list(NA_STRINGS)
        # every column used: no usecols, so that a row with too many cells is refused
        cols = sorted(pos) if len(pos) < len(header) else None
        order = sorted(pos) if cols is not None else list(range(len(header)))
        at = {c: order.index(j) for c, j in zip(need, pos)}  # need's columns in the file's order
        vals = [c for c in need if c not in (plan.id, plan.time)]
        block = None
        if plan.long:  # one read: ids and times as categories, parsed once per distinct cell
            try:
                df = _pd_read(raw, p, usecols=cols, dtype=dtype, na_values=na, **base)
            except (ValueError, TypeError, OverflowError) as e:
                if isinstance(e, DataError):
                    raise
                df, block = _read_chunks(raw, p, cols, at, vals, base, coded=True)
            else:
                parsed = {c: df.iloc[:, at[c]].to_numpy(np.float64) for c in vals}
                # the frame keeps the id and time columns: the values' memory is the arrays'
                df = pd.DataFrame({c: df.iloc[:, at[c]] for c in need if c not in parsed},
                                  index=df.index, copy=False)
        else:  # the values straight into one block, which becomes the panel's values
            df, block = _read_chunks(raw, p, cols, at, vals, base, dtype, na)
        for c, j in zip(need, pos):  # categories inferred as numbers ('007' read as 7): as text
            if c in (plan.id, plan.time) and isinstance(df[c].dtype, pd.CategoricalDtype) and \
                    not pd.api.types.is_string_dtype(df[c].cat.categories.dtype):
                df[c] = _pd_read(raw, p, usecols=[j], dtype=str, **base).iloc[:, 0].to_numpy()
        if not len(df):
            raise DataError(f"{p} has a header but no data rows")
        cols = _Cols(df, list(df.columns), _Src(where, True), block=block)
        if block is None:
            cols.parsed = parsed
            del parsed
        del df, block
        return _build(cols, plan, freq, period)


def _read_chunks(raw, p, usecols, at, vals, base, dtype=None, na=None, coded=False):
    """The table read in chunks of about a million cells, the value columns ``vals`` written
    into one (columns, rows) float64 block as they come, so that no column is held twice nor
    as text. ``dtype``, ``na``: read with these (the C parser's numbers); without them, or when a
    value cell is not a number, every cell is read as text and parsed as ``_floats`` parses it.
    ``at``: each needed column's position among the columns read; ``coded``: the other columns
    as categories (a long table's ids and times: compact). -> (frame of the other columns,
    _Block)."""
    pd = _pd()
    raw.seek(0)
    cap, size = 1, 0  # rows: at most one per line end (a quoted cell may hold one)
    while buf := raw.read(1 << 20):
        cap += buf.count(b"\n") + buf.count(b"\r")
        size += len(buf)
    del buf
    V = np.empty((len(vals), cap))  # pages untouched until written
    kv = [at[c] for c in vals]
    ko = {c: k for c, k in at.items() if c not in vals}
    width = max(at.values()) + 1 if usecols is None else len(usecols)
    for typed in ((True, False) if dtype is not None else (False,)):
        # chunks of cells in proportion to the file, so that the parser's buffers (~40 bytes a
        # cell; ~60 as text, a Python string each) stay a small part of it
        rows = max(16, max(1 << 16, size >> (8 if typed else 11)) // width)
        parts = {c: [] for c in ko}
        bad = None if typed else np.zeros(V.shape, bool)
        cells = {}
        seen = [0]

        def each(chunk):
            a, b = seen[0], seen[0] + len(chunk)
            for c, k in ko.items():
                parts[c].append(chunk.iloc[:, k].astype("category") if coded else
                                chunk.iloc[:, k])
            if typed:
                V[:, a:b] = chunk.iloc[:, kv].to_numpy(np.float64).T
            else:
                for j, (c, k) in enumerate(zip(vals, kv)):
                    s = chunk.iloc[:, k]
                    V[j, a:b], bad[j, a:b] = _floats(s)
                    if c not in cells and bad[j, a:b].any():
                        r = int(np.argmax(bad[j, a:b]))
                        cells[c] = {a + r: s.iloc[r]}
            seen[0] = b

        kw = dict(dtype=dtype, na_values=na) if typed else dict(dtype=str)
        try:
            _pd_read(raw, p, each=each, usecols=usecols, chunksize=rows, **kw, **base)
            break
        except (ValueError, TypeError, OverflowError) as e:
            if isinstance(e, DataError) or not typed:
                raise
    T = seen[0]
    join = (lambda ch: pd.Series(pd.api.types.union_categoricals(ch))) if coded else \
        (lambda ch: pd.concat(ch, ignore_index=True))
    other = {c: join(ch) if ch else pd.Series([], dtype=str) for c, ch in parts.items()}
    df = pd.DataFrame(other, index=pd.RangeIndex(T), copy=False)
    return df, _Block(V, T, vals, None if bad is None else bad[:, :T], cells)


class _Block:
    """Value columns read into rows ``0..rows-1`` of one (columns, capacity) float64 array
    ``V``; ``bad``: text cells (None: none), ``cells``: the first text cell of each column
    ({row: text})."""

    def __init__(self, V, rows, names, bad, cells):
        self.V, self.rows, self.names, self.bad, self.cells = V, rows, list(names), bad, cells

    def column(self, name):
        j = self.names.index(name)
        v = self.V[j, :self.rows]
        return v, np.zeros(len(v), bool) if self.bad is None else self.bad[j]

    def first_text(self):
        """Each column's first text cell's row (rows: none)."""
        if self.bad is None:
            return np.full(len(self.names), self.rows, np.int64)
        has = self.bad.any(axis=1)
        return np.where(has, np.argmax(self.bad, axis=1), self.rows)


def _read_parquet(p: Path, where, opts, freq, period):
    fh = _open_regular(p)
    with fh:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError(f"reading {p} needs pyarrow: pip install pyarrow (or give a CSV "
                            "file)") from None
        try:
            pf = pq.ParquetFile(fh.buffer)
            header = [n for n in pf.schema_arrow.names if not n.startswith("__index_level_")]

            def first_is_time():
                c0 = pf.read(columns=[header[0]]).to_pandas().iloc[:, 0]
                return not _numeric_column(c0)

            plan = _plan(header, where, *opts, first_is_time)
            need = plan.columns()
            df = pf.read(columns=need).to_pandas().reset_index(drop=True)
            df = df[need]
        except DataError:
            raise
        except Exception as e:  # pyarrow's errors: ArrowInvalid, OSError, ...
            raise DataError(f"cannot read {p} as Parquet ({str(e).splitlines()[0][:120]}); give "
                            "a Parquet or CSV file") from None
        if not len(df):
            raise DataError(f"{p} has no data rows")
        return _build(_Cols(df, need, _Src(where, False)), plan, freq, period)


def _array(a, where, opts, freq, period):
    pd = _pd()
    try:
        v = np.asarray(a, dtype=np.float64)
    except (ValueError, TypeError):
        raise DataError(f"{where} does not hold numbers only; give numbers (one column per "
                        "series)") from None
    if v.ndim == 1:
        v = v[:, None]
        cols = ["y"]
    elif v.ndim == 2:
        cols = [str(j) for j in range(v.shape[1])]
    else:
        raise DataError(f"{where} has {v.ndim} dimensions; give (rows,) or (rows, series)")
    if v.shape[0] == 0 or v.shape[1] == 0:
        raise DataError(f"{where} is empty; give values")
    if opts[0] is not None or opts[1] is not None or opts[3]:
        raise DataError(f"{where} has no id, time or covariate columns; give a table for "
                        "--id-column, --time-column or --exog")
    df = pd.DataFrame(v, columns=cols)
    return _frame(df, where, opts, freq, period)


def read(source, *, id_column=None, time_column=None, value_column=None, exog=(), freq=None,
         season=None) -> Panel:
    """Series from any source, validated, as one ``Panel``.

    ``source``: a Panel (returned as is), a bundled data set name (``BUNDLED``), a .csv,
    .parquet or .pq path, a pandas DataFrame, a NumPy array (1-D: one series "y"; 2-D: one
    series per column, "0".."k-1"; no dates) or a list of numbers.

    Long form when the table has the id column (``id_column``, default "unique_id"): value
    column ``value_column`` (default "y"), time column ``time_column`` (default "ds"; without
    it the rows are steps), covariates ``exog``. Wide form otherwise: a time column (the named
    one, "ds", or the first column when it is not numeric) and one column of values per series
    (``value_column``: a name or a list picks some); a column may start and end with empty
    cells. ``freq``: a pandas frequency (inferred when None); ``season``: the seasonal period
    (default: from the frequency)."""
    pd = _pd()
    if isinstance(source, Panel):
        return source
    if season is not None:
        if isinstance(season, bool) or not isinstance(season, (int, np.integer)) or season < 0:
            raise DataError(f"season must be a whole number >= 0 (0: none), got {season!r}")
        season = int(season)
    if freq is not None:
        freq = cal.check_freq(freq)
    exog = (exog,) if isinstance(exog, str) else tuple(str(e) for e in (exog or ()) if e)
    opts = (id_column, time_column, value_column, exog)
    if isinstance(source, str) and source in _BUNDLED:
        file, value, time, per, _ = _BUNDLED[source]
        if value_column is None:
            value_column = value
        opts = (None, time, value_column, exog)
        with resources.as_file(resources.files(__package__) / file) as p:
            return _read_csv(Path(p), source, opts, freq, per if season is None else season)
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.suffix.lower() in (".parquet", ".pq"):
            return _read_parquet(p, str(p), opts, freq, season)
        return _read_csv(p, str(p), opts, freq, season)
    if isinstance(source, pd.DataFrame):
        return _frame(source, "the DataFrame", opts, freq, season)
    if isinstance(source, pd.Series):
        df = source.to_frame(name=str(source.name) if source.name is not None else "y")
        return _frame(df, "the Series", opts, freq, season)
    if isinstance(source, np.ndarray):
        return _array(source, "the array", opts, freq, season)
    if isinstance(source, (list, tuple)):
        return _array(source, "the list", opts, freq, season)
    raise DataError(f"cannot read a {type(source).__name__}: give a bundled name, a CSV or "
                    "Parquet path, a DataFrame, a NumPy array or a list of numbers")
