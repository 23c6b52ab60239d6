"""Data: the bundled data sets, CSV and Parquet tables and a seeded synthetic generator.

``read`` (data.table) is the one reader: every source becomes a ``Panel`` (many series as
grouped arrays); ``load`` and ``synthetic`` return Panels too.
Problems with the input raise ``DataError`` with one line naming the problem and the fix.
"""

from __future__ import annotations

import os
import stat
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
MAX_ABS = 1e150  # larger values overflow the preprocessing (squares, differences) in float64


class DataError(LockstepError):
    """The data cannot be used; the message says what is wrong and how to fix it."""


def load(name: str = "airpassengers") -> "Panel":
    """A bundled real data set as a ``Panel``: "airpassengers" = Box & Jenkins series G, monthly
    international airline passengers in thousands, 1949-01..1960-12 (144 values);
    "elec_equip" (257 months), "co2" (444 months), "nile" (100 years) and "macro" (eight
    quarterly US series, 203 quarters): see ``describe_bundled()`` and SOURCES.md beside the
    files."""
    if name not in BUNDLED:
        raise DataError(f"unknown dataset {name!r}: use one of {', '.join(BUNDLED)} or a CSV path")
    return read(name)


def describe_bundled() -> dict:
    """name -> what the bundled series holds, in words."""
    return {k: v[4] for k, v in _BUNDLED.items()}


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


from .table import Panel, read  # noqa: E402 - the reader needs DataError and _BUNDLED
