"""Series loading: the bundled AirPassengers data and CSV files."""

from __future__ import annotations

from importlib import resources

import numpy as np

BUNDLED = ("airpassengers",)


def load(name: str = "airpassengers") -> np.ndarray:
    """A bundled series as float64: "airpassengers" = Box & Jenkins series G, monthly
    international airline passengers in thousands, 1949-01..1960-12 (144 values)."""
    if name not in BUNDLED:
        raise ValueError(f"unknown bundled dataset {name!r}; choose one of {', '.join(BUNDLED)} "
                         "or pass a CSV path")
    text = (resources.files(__name__) / f"{name}.csv").read_text()
    rows = [ln.split(",") for ln in text.strip().splitlines()[1:]]
    return np.array([float(r[1]) for r in rows])
