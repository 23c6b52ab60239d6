"""Preprocessing fitted on the training part only, each step with an exact inverse; time-major
windows; the seed project's "encoded change" classification task.

The transforms use lockstep's canonical log/exp (float64) so a run's inputs are the same bits
on every machine, like everything after them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import arith
from . import DataError

SCALES = ("standard", "minmax", "none")


@dataclass
class Pipeline:
    """log -> lag-1 difference -> seasonal difference -> scaling, each optional.

    ``fit`` learns the scaling from the training part; ``forward`` maps values (n, k) to
    model space (n - lags, k); ``inverse`` maps model-space continuations back to values,
    given the values that precede them (the differences need their starting points).
    """

    log: bool = True
    diff: bool = False
    season: int = 0  # seasonal difference lag; 0 = none
    scale: str = "standard"
    center: np.ndarray | None = field(default=None, repr=False)
    spread: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.scale not in SCALES:
            raise DataError(f"scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
        if self.season < 0 or self.season == 1:
            raise DataError(f"seasonal lag must be 0 (off) or >= 2, got {self.season}; "
                            "use the lag-1 difference for 1")

    @property
    def lags(self) -> int:
        """Rows consumed at the start by the differences."""
        return int(self.diff) + self.season

    def _stages(self, values):
        """The series after each enabled step: [values, logged, differenced, seasonal]."""
        v = np.asarray(values, np.float64)
        if v.ndim == 1:
            v = v[:, None]
        out = [v]
        if self.log:
            if (v <= 0).any():
                raise DataError("the log transform needs positive values; pass --no-log "
                                "(or log=False) for series with zeros or negatives")
            v = arith.log(v)
        out.append(v)
        if self.diff:
            v = v[1:] - v[:-1]
        out.append(v)
        if self.season:
            v = v[self.season:] - v[:-self.season]
        out.append(v)
        return out

    def fit(self, train_values):
        z = self._stages(train_values)[-1]
        if z.shape[0] < 2:
            raise DataError(f"the training part is too short for these transforms: {z.shape[0]} "
                            f"values left after differencing (lags {self.lags})")
        if self.scale == "standard":
            self.center, self.spread = z.mean(axis=0), z.std(axis=0)
        elif self.scale == "minmax":
            lo, hi = z.min(axis=0), z.max(axis=0)
            self.center, self.spread = (lo + hi) / 2, (hi - lo) / 2
        else:
            self.center, self.spread = np.zeros(z.shape[1]), np.ones(z.shape[1])
        self.spread = np.where(self.spread > 0, self.spread, 1.0)
        return self

    def forward(self, values) -> np.ndarray:
        if self.center is None:
            raise DataError("the pipeline must be fitted on the training part before use")
        return (self._stages(values)[-1] - self.center) / self.spread

    def inverse(self, z_future, history) -> np.ndarray:
        """Values that continue ``history`` (raw values) when the model space continues with
        ``z_future`` (h, k): undo scaling, then each difference from its stage's history."""
        z = np.asarray(z_future, np.float64).reshape(len(z_future), -1)
        hist = self._stages(history)
        s = z * self.spread + self.center
        if self.season:
            s = _undifference(s, hist[2], self.season)
        if self.diff:
            s = _undifference(s, hist[1], 1)
        return arith.exp(s) if self.log else s

    def state(self) -> dict:
        return {"log": self.log, "diff": self.diff, "season": self.season, "scale": self.scale,
                "center": None if self.center is None else self.center.tolist(),
                "spread": None if self.spread is None else self.spread.tolist()}

    @classmethod
    def from_state(cls, st: dict) -> "Pipeline":
        p = cls(log=st["log"], diff=st["diff"], season=st["season"], scale=st["scale"])
        if st["center"] is not None:
            p.center, p.spread = np.array(st["center"]), np.array(st["spread"])
        return p


def _undifference(d, history, lag):
    """x[t] = d[t] + x[t - lag], continuing ``history``."""
    if len(history) < lag:
        raise DataError(f"need at least {lag} values of history to undo a lag-{lag} difference")
    out = np.concatenate([history[-lag:], np.empty_like(d)])
    for t in range(len(d)):
        out[lag + t] = d[t] + out[t]
    return out[lag:]


def windows(z, window: int, target: str = "all"):
    """Time-major windows of a (n, k) series: x (T, N, k) = z[i:i+T]; targets are the next
    values at every step (T, N, k) or at the last step only (N, k)."""
    z = np.asarray(z)
    n = z.shape[0] - window
    if window <= 0:
        raise DataError(f"window must be a positive integer, got {window}")
    if n <= 0:
        raise DataError(f"a series of {z.shape[0]} values makes no window of {window} plus a target")
    idx = np.arange(window)[:, None] + np.arange(n)[None, :]  # (T, N)
    x = z[idx]
    y = z[idx + 1] if target == "all" else z[window:window + n]
    return x, y


def split_windows(z, window: int, n_valid: int, target: str = "all"):
    """Chronological split of a training series into training and validation windows: the
    last ``n_valid`` values are validation targets only; training windows end before them."""
    if n_valid <= 0:
        return windows(z, window, target), None
    cut = len(z) - n_valid
    train = windows(z[:cut], window, target)
    valid = windows(z[cut - window:], window, target)
    return train, valid


# ---- the seed's "encoded change" task ------------------------------------------------------

def bound_lines(n: int):
    """The seed's upper (0.5 t + 15) and lower (-0.6 t - 7) bound lines for t = 0..n-1."""
    t = np.arange(n, dtype=np.float64)
    return 0.5 * t + 15, -0.6 * t - 7


def normalized_change(values):
    """Change x[t+1] - x[t] divided by the upper bound when >= 0, by |lower| when negative."""
    v = np.asarray(values, np.float64).reshape(-1)
    d = v[1:] - v[:-1]
    up, lo = bound_lines(len(d))
    return np.where(d >= 0, d / up, d / np.abs(lo))


def kmeans_1d(v, k: int = 3, iters: int = 100):
    """Lloyd's k-means on a line, started from the k smallest distinct values (the seed's
    choice); returns sorted centroids."""
    v = np.sort(np.asarray(v, np.float64))
    c = np.unique(v)[:k].copy()
    if len(c) < k:
        raise DataError(f"k-means needs at least {k} distinct changes, got {len(c)}")
    for _ in range(iters):
        lab = encode(v, c)
        new = np.array([v[lab == j].mean() if (lab == j).any() else c[j] for j in range(k)])
        if np.array_equal(new, c):
            break
        c = np.sort(new)
    return c


def encode(v, centroids):
    """Class tokens: boundaries at the midpoints between sorted centroids."""
    mids = (centroids[1:] + centroids[:-1]) / 2
    return np.searchsorted(mids, np.asarray(v), side="right")


def decode(tokens, start_t: int, centroids):
    """Changes from tokens: the centroid times the bound line at each month index."""
    tok = np.asarray(tokens)
    up, lo = bound_lines(start_t + len(tok))
    c = centroids[tok]
    t = np.arange(start_t, start_t + len(tok))
    return np.where(c >= 0, c * up[t], c * np.abs(lo[t]))


def one_hot(tokens, k: int, dtype=np.float64):
    tok = np.asarray(tokens)
    out = np.zeros(tok.shape + (k,), dtype)
    np.put_along_axis(out, tok[..., None], 1, axis=-1)
    return out
