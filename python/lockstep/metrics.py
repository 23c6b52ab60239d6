"""Forecast accuracy, one definition each: RMSE, MAE, MAPE, sMAPE, MASE, interval coverage,
and the seasonal-naive baseline they are compared with. Used by the forecaster, the CLI,
backtests and the benchmarks alike (float64 on the host; not part of the bit contract)."""

from __future__ import annotations

import numpy as np

from .errors import LockstepError

KEYS = ("rmse", "mae", "mape", "smape", "mase")


def metrics(actual, predicted, scale=None) -> dict:
    """RMSE, MAE, MAPE (percent; NaN when an actual value is 0), sMAPE (percent, the M3
    competition's: mean of 2|p - a| / (|a| + |p|), 0 where both are 0) and, with the
    in-sample naive ``scale`` (``naive_scale``), MASE (NaN when the scale is 0)."""
    a = np.asarray(actual, np.float64).reshape(-1)
    p = np.asarray(predicted, np.float64).reshape(-1)
    if a.shape != p.shape or a.size == 0:
        raise ValueError(f"actual and predicted must have the same non-zero size: {a.size} vs "
                         f"{p.size}")
    err = p - a
    with np.errstate(divide="ignore", invalid="ignore"):
        mape = float(np.mean(np.abs(err) / np.abs(a)) * 100) if np.all(a != 0) else float("nan")
        den = np.abs(a) + np.abs(p)
        smape = float(np.mean(np.where(den > 0, 2 * np.abs(err) / den, 0.0)) * 100)
    mae = float(np.mean(np.abs(err)))
    out = {"rmse": float(np.sqrt(np.mean(err * err))), "mae": mae, "mape": mape, "smape": smape}
    if scale is not None:
        out["mase"] = mae / scale if scale > 0 else float("nan")
    return out


def naive_scale(y, season: int) -> float:
    """MASE's denominator: the in-sample MAE of the seasonal-naive forecast (lag ``season``,
    or 1 when the series has no season or is too short for it); NaN for one value."""
    y = np.asarray(y, np.float64)
    m = season if season and len(y) > season else 1
    d = np.abs(y[m:] - y[:-m])
    return float(d.mean()) if d.size else float("nan")


def seasonal_naive(history, horizon: int, season: int) -> np.ndarray:
    """y[n + h] = y[n + h - m * ceil(h / m)]: the last season repeated; plain naive (the last
    value) when there is no season or the history is shorter than one."""
    h = np.asarray(history, np.float64).reshape(-1)
    if h.size == 0:
        raise LockstepError("seasonal naive needs at least one value of history")
    m = season if season and len(h) >= season else 1
    return h[len(h) - m + (np.arange(horizon) % m)]


def coverage(actual, lo, hi) -> float:
    """The share of actual values inside [lo, hi]."""
    a = np.asarray(actual, np.float64)
    return float(np.mean((a >= np.asarray(lo)) & (a <= np.asarray(hi))))


def baseline_name(season: int) -> str:
    """What the baseline is: 'seasonal naive (period 12)' or 'naive (last value)'."""
    return f"seasonal naive (period {season})" if season and season > 1 else "naive (last value)"
