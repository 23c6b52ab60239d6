"""Data: the bundled data sets, CSV and Parquet tables and a seeded synthetic generator.

``read`` (data.table) is the one reader: every source becomes a ``Panel`` (many series as
grouped arrays); ``load`` and ``synthetic`` return Panels too. ``Series``, ``load_csv`` and
``resolve`` are the older one-table reader, kept until their last users move to ``read``.
Problems with the input raise ``DataError`` with one line naming the problem and the fix.
"""

from __future__ import annotations

import array
import csv
import hashlib
import math
import os
import re
import stat
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import LockstepError

# The bundled real series (package data; sources, licences and derivations in SOURCES.md):
# name -> (file, value column, time column, seasonal period or None, what the values are).
_BUNDLED = {
    "airpassengers": ("airpassengers.csv", "Passengers", "Month", 12,
                      "monthly international airline passengers (thousands), 1949-01..1960-12"),
    "elec_equip": ("elec_equip.csv", "turnover_index", "month", 12,
                   "euro-area turnover index, manufacture of electrical equipment, "
                   "monthly 1995-01..2016-05 (Eurostat)"),
    "co2": ("co2.csv", "co2", "month", 12,
            "atmospheric CO2 at Mauna Loa (ppm), monthly means 1965-01..2001-12"),
    "nile": ("nile.csv", "volume", "year", None,
             "annual flow of the Nile at Aswan (10^8 m^3), 1871..1970"),
    # several series (value column None: every column), for the many-series models
    "macro": ("macro.csv", None, "quarter", 4,
              "eight US macroeconomic series (real GDP, consumption, investment, government "
              "spending, disposable income; CPI, M1, population), quarterly 1959-Q1..2009-Q3"),
}
BUNDLED = tuple(_BUNDLED)
MAX_COLUMNS = 10_000  # columns of a CSV header
MAX_ABS = 1e150  # larger values overflow the preprocessing (squares, differences) in float64


class DataError(LockstepError):
    """The data cannot be used; the message says what is wrong and how to fix it."""


@dataclass
class Series:
    values: np.ndarray  # (n, k) float64, finite
    names: list
    time: list | None = None  # one label per row, or None
    source: str = ""
    period: int | None = None  # seasonal period when known (12 for monthly data)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        v = np.asarray(self.values, dtype=np.float64)
        if v.ndim == 1:
            v = v[:, None]
        if v.ndim != 2 or v.shape[1] != len(self.names):
            raise DataError(f"values of shape {v.shape} do not match {len(self.names)} column names")
        if v.shape[0] == 0:
            raise DataError(f"{self.source or 'the series'} has no rows; give a file with data")
        bad = ~np.isfinite(v)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise DataError(f"{self.source or 'the series'}: value {v[r, c]} in column "
                            f"{self.names[c]!r} at row {r + 1} is not finite; remove or fill it")
        self.values = v

    def __len__(self):
        return self.values.shape[0]

    def check_trainable(self):
        """Refuse values so large that the float64 preprocessing (squares, differences)
        would overflow: training on them can only diverge."""
        big = np.abs(self.values) > MAX_ABS
        if big.any():
            r, c = np.argwhere(big)[0]
            raise DataError(f"{self.source or 'the series'}: value {self.values[r, c]:.6g} in "
                            f"column {self.names[c]!r} at row {r + 1} is beyond +-{MAX_ABS:g}, "
                            "where the float64 preprocessing overflows; rescale the column")

    @property
    def n_series(self):
        return self.values.shape[1]

    def fingerprint(self) -> str:
        """SHA-256 of the values and column names: identifies the data a model was trained on."""
        h = hashlib.sha256(np.ascontiguousarray(self.values).tobytes())
        h.update("\0".join(self.names).encode())
        return h.hexdigest()

    def describe(self) -> dict:
        v = self.values
        return {
            "source": self.source, "rows": len(self), "columns": self.names,
            "start": self.time[0] if self.time else None,
            "end": self.time[-1] if self.time else None, "period": self.period,
            "min": v.min(axis=0).tolist(), "max": v.max(axis=0).tolist(),
            "mean": v.mean(axis=0).tolist(), "std": v.std(axis=0).tolist(),
        }


def load(name: str = "airpassengers") -> "Panel":
    """A bundled real data set as a ``Panel``: "airpassengers" = Box & Jenkins series G, monthly
    international airline passengers in thousands, 1949-01..1960-12 (144 values);
    "elec_equip" (257 months), "co2" (444 months), "nile" (100 years) and "macro" (eight
    quarterly US series, 203 quarters): see ``describe_bundled()`` and SOURCES.md beside the
    files."""
    if name not in BUNDLED:
        raise DataError(f"unknown dataset {name!r}: use one of {', '.join(BUNDLED)} or a CSV path")
    return read(name)


def _load_series(name: str) -> Series:
    """A bundled data set as a one-table ``Series`` (the reader ``resolve`` keeps for now)."""
    if name not in BUNDLED:
        raise DataError(f"unknown dataset {name!r}: use one of {', '.join(BUNDLED)} or a CSV path")
    file, value, time, period, _ = _BUNDLED[name]
    path = resources.files(__name__) / file
    with resources.as_file(path) as p:
        s = load_csv(p, value_columns=None if value is None else [value], time_column=time)
    s.source, s.period = name, period
    return s


def describe_bundled() -> dict:
    """name -> what the bundled series holds, in words."""
    return {k: v[4] for k, v in _BUNDLED.items()}


def _column_index(spec, header, what):
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isascii() and spec.isdigit()
                                 and spec not in header):
        i = int(spec)
        if not 0 <= i < len(header):
            raise DataError(f"{what} index {i} is out of range: the file has {len(header)} columns "
                            f"({_names(header)})")
        return i
    if spec not in header:
        raise DataError(f"{what} {spec!r} not found; columns are: {_names(header)}")
    return header.index(spec)


def _names(header, n=20):
    """A header for a message: its first ``n`` names."""
    more = f", ... ({len(header)} in all)" if len(header) > n else ""
    return ", ".join(header[:n]) + more


def _number(cell: str):
    try:
        return float(cell)
    except ValueError:
        return None


def _open_regular(p: Path):
    """Open ``p`` for reading only if it is a regular file: a FIFO, socket or device as
    --data would block or never end. O_NONBLOCK makes even a FIFO swapped in after the
    check return at once; fstat then tells what was opened."""
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise DataError(f"no such file: {p}; pass an existing CSV path or --data airpassengers") \
            from None
    except OSError as e:
        raise DataError(f"cannot read {p}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise DataError(f"{p} is a directory; pass a CSV file")
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{p} is not a regular file (a FIFO, socket or device); pass a CSV file")
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise DataError(f"cannot read {p}: {e.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DataError(f"{p} is not a regular file (a FIFO, socket or device); pass a CSV file")
    return open(fd, encoding="utf-8-sig", newline="")


def load_csv(path, value_columns=None, time_column=None) -> Series:
    """A univariate or multivariate series from a CSV file with a header row.

    ``value_columns``: names or indices of the series (default: every column but the time
    column); ``time_column``: name or index of a label column (default: the first column when
    its first cell is not a number). Empty or non-numeric cells and NaN/inf in a value column
    are errors that name the line and column.

    The file is read as a stream, one row at a time, into compact arrays: memory stays
    close to the size of the values kept, and a bad row anywhere is refused without
    building the whole table first. A cell longer than ``csv.field_size_limit()``
    (131072 characters; an unclosed quote makes one) is an error naming the line.
    """
    p = Path(path)
    with _open_regular(p) as fh:
        reader = csv.reader(fh)
        try:
            return _read_rows(p, reader, value_columns, time_column)
        except UnicodeDecodeError:
            raise DataError(f"{p} is not UTF-8 text (line {reader.line_num + 1}); save it as a "
                            "UTF-8 CSV file") from None
        except csv.Error as e:
            limit = csv.field_size_limit()
            if "field larger than field limit" in str(e):
                raise DataError(f"{p} line {reader.line_num}: a cell is longer than {limit} "
                                "characters (an unclosed quote?); fix the file") from None
            raise DataError(f"{p} line {reader.line_num}: not valid CSV ({e}); fix the "
                            "file") from None
        except OSError as e:
            raise DataError(f"cannot read {p}: {e.strerror}") from None


def _read_rows(p, reader, value_columns, time_column) -> Series:
    rows = (r for r in reader if any(c.strip() for c in r))
    header = next(rows, None)
    if header is None:
        raise DataError(f"{p} is empty; it needs a header row and at least one data row")
    header = [c.strip() for c in header]
    if len(header) > MAX_COLUMNS:
        raise DataError(f"{p} has {len(header)} columns, more than the limit of {MAX_COLUMNS}; "
                        "keep the columns you need")
    if len(set(header)) != len(header):
        raise DataError(f"{p} has duplicate column names in its header: {_names(header)}")
    first = next(rows, None)
    if first is None:
        raise DataError(f"{p} has a header but no data rows")
    if time_column is not None:
        t_idx = _column_index(time_column, header, "time column")
    elif len(header) > 1 and len(first) == len(header) and _number(first[0]) is None:
        t_idx = 0  # a leading non-numeric column holds the time labels
    else:
        t_idx = None
    if value_columns is None:
        cols = [j for j in range(len(header)) if j != t_idx]
    else:
        specs = [value_columns] if isinstance(value_columns, (str, int)) else list(value_columns)
        cols = [_column_index(c, header, "value column") for c in specs]
    if not cols:
        raise DataError(f"{p}: no value column is left besides the time column; add a column "
                        "of values, name one with --value-column or drop --time-column")
    values = array.array("d")
    time = [] if t_idx is not None else None
    n = len(header)
    for r in _chain(first, rows):
        if len(r) != n:
            raise DataError(f"{p} line {reader.line_num} has {len(r)} cells but the header has {n}")
        for j in cols:
            v = _number(r[j])
            if v is None:
                raise DataError(f"{p} line {reader.line_num}, column {header[j]!r}: {r[j][:40]!r} "
                                "is not a number; fix the cell or choose columns with "
                                "--value-column")
            if not math.isfinite(v):
                raise DataError(f"{p} line {reader.line_num}, column {header[j]!r}: {r[j].strip()} "
                                "is not finite; remove or fill the value")
            values.append(v)
        if time is not None:
            time.append(r[t_idx].strip())
    v = np.frombuffer(values, dtype=np.float64).reshape(-1, len(cols)).copy()
    return Series(v, [header[j] for j in cols], time, source=str(p), period=infer_period(time))


# The seasonal period of a regular time axis: one year of months or quarters, one week of days,
# one year of weeks, one day of hours (what a forecaster's seasonal-naive baseline repeats).
_PERIODS = {"hourly": 24, "daily": 7, "weekly": 52, "monthly": 12, "quarterly": 4}
_ISO = re.compile(r"(\d{4})-(\d{1,2})(?:-(\d{1,2})(?:[T ](\d{1,2})(?::(\d{2})(?::(\d{2}))?)?)?)?"
                  r"(?:Z|[+-]\d{2}:?\d{2})?")
_QUARTER = re.compile(r"(\d{4})[- ]?Q([1-4])", re.IGNORECASE)


def infer_frequency(time) -> str | None:
    """'hourly', 'daily', 'weekly', 'monthly' or 'quarterly' when every step between ISO
    dates (2020-01, 2020-01-31, 2020-01-31 13:00, 2020-Q1) is one such step; else None.
    A small explicit rule (no pandas): months and quarters by calendar, the others by an
    exact number of seconds."""
    import datetime as dt

    if not time or len(time) < 3:
        return None
    q = [_QUARTER.fullmatch(t) for t in time]
    if all(q):
        idx = [int(m.group(1)) * 4 + int(m.group(2)) for m in q]
        return "quarterly" if all(b - a == 1 for a, b in zip(idx, idx[1:])) else None
    stamps = []
    for t in time:
        m = _ISO.fullmatch(t.strip())
        if not m:
            return None
        y, mo, d, hh, mi, ss = (int(g) if g else None for g in m.groups())
        try:
            stamps.append((dt.datetime(y, mo, d or 1, hh or 0, mi or 0, ss or 0), d is None))
        except ValueError:
            return None
    months = [s.year * 12 + s.month for s, _ in stamps]
    dm = {b - a for a, b in zip(months, months[1:])}
    same_day = len({(s.day, s.hour, s.minute) for s, _ in stamps}) == 1 or \
        all(no_day for _, no_day in stamps) or _month_ends(stamps)
    if same_day and dm == {1}:
        return "monthly"
    if same_day and dm == {3}:
        return "quarterly"
    secs = {(b[0] - a[0]).total_seconds() for a, b in zip(stamps, stamps[1:])}
    for name, step in (("hourly", 3600), ("daily", 86400), ("weekly", 7 * 86400)):
        if secs == {step}:
            return name
    return None


def _month_ends(stamps) -> bool:
    import calendar

    return all(s.day == calendar.monthrange(s.year, s.month)[1] for s, _ in stamps)


def infer_period(time) -> int | None:
    """The seasonal period of a time axis (monthly 12, quarterly 4, weekly 52, daily 7,
    hourly 24), or None when the dates are not ISO dates at one regular step."""
    f = infer_frequency(time)
    return _PERIODS[f] if f else None


def _chain(first, rest):
    yield first
    yield from rest


def _synthetic_values(n_series, length, seed, periods, noise):
    if n_series <= 0 or length <= 0:
        raise DataError(f"synthetic data needs n_series > 0 and length > 0, got {n_series}, {length}")
    rng = np.random.Generator(np.random.PCG64(seed))
    t = np.arange(length)[:, None]
    level = rng.uniform(50, 500, n_series)
    slope = rng.uniform(-0.2, 1.0, n_series) / length
    y = 1.0 + slope * t * 10
    for p in periods:
        amp = rng.uniform(0.05, 0.3, n_series)
        phase = rng.uniform(0, 2 * np.pi, n_series)
        y = y + amp * np.sin(2 * np.pi * t / p + phase)
    y = y + noise * rng.standard_normal((length, n_series)) * 0.2
    return level * np.maximum(y, 0.05)  # (length, n_series)


# months from 2000-01 that pandas' nanosecond timestamps still hold (up to 2262-04)
_SYNTHETIC_MONTHS = (2262 - 2000) * 12 + 4


def synthetic(n_series: int = 8, length: int = 2000, seed: int = 0, periods=(12, 52),
              noise: float = 0.1) -> "Panel":
    """Seeded synthetic series as a ``Panel``: positive level * (trend + seasonalities) +
    noise, for heavy benchmarks. Each series ("s0", "s1", ...) draws its own level, trend
    slope, amplitudes and phases; monthly dates from 2000-01-01 (freq "MS") while they fit in
    pandas' timestamps (up to 2262), undated beyond that."""
    values = _synthetic_values(n_series, length, seed, periods, noise)
    dated = length <= _SYNTHETIC_MONTHS
    ds = None
    if dated:
        months = np.datetime64("2000-01", "M") + np.arange(length)
        ds = np.tile(months.astype("datetime64[ns]"), n_series)
    period = periods[0] if periods else None
    if dated and period == 12:
        period = None  # the monthly season
    return Panel(np.array([f"s{i}" for i in range(n_series)]),
                 np.arange(n_series + 1, dtype=np.int64) * length,
                 np.ascontiguousarray(values.T).reshape(-1), ds, np.zeros((n_series * length, 0)),
                 (), "MS" if dated else None, f"synthetic(seed={seed})", period)


def resolve(spec: str, value_column=None, time_column=None) -> Series:
    """A bundled name or a CSV path, as the CLI's --data takes it (a one-table ``Series``)."""
    if spec in BUNDLED:
        s = _load_series(spec)
        for c in [value_column] if isinstance(value_column, (str, int)) else value_column or []:
            if c not in s.names and str(c) != "0":
                raise DataError(f"value column {c!r} not found; columns are: {', '.join(s.names)}")
        return s
    if spec.startswith("synthetic"):
        v = _synthetic_values(8, 2000, 0, (12, 52), 0.1)
        return Series(v, [f"s{i}" for i in range(8)], None, source="synthetic(seed=0)", period=12)
    return load_csv(spec, value_columns=value_column, time_column=time_column)


# the one data model and reader (they import DataError and the bundled table from here)
from .table import Panel, read  # noqa: E402
