"""Preprocessing fitted on each series' training part only, as arrays indexed by series, each
step with an exact inverse; the seed project's "encoded change" classification task.

The transforms use lockstep's canonical log/exp (float64) so a run's inputs are the same bits
on every machine, like everything after them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import arith
from . import DataError

SCALES = ("standard", "minmax", "rms", "none")
SEASONALITY = ("difference", "indices")  # how the season leaves the series
TRANSFORMS = ("auto", "log", "log1p", "none")  # what a series' values go through first
_CODES = {"none": 0, "log": 1, "log1p": 2}  # per-series transform, stored as a small integer
CODE_NAMES = {v: k for k, v in _CODES.items()}


def positions(indptr) -> np.ndarray:
    """Each row's position inside its series (0, 1, ... per series) for grouped arrays."""
    lengths = np.diff(indptr)
    return np.arange(indptr[-1]) - np.repeat(indptr[:-1], lengths)


def group_of(indptr) -> np.ndarray:
    """Each row's series index."""
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))


def lagged(v, indptr, lag, pos=None):
    """v[r] - v[r - lag[series]] where the row ``lag`` before is in the same series, NaN
    before that; ``lag`` an int or one per series (0: the values unchanged)."""
    pos = positions(indptr) if pos is None else pos
    lag_r = np.repeat(np.broadcast_to(np.asarray(lag, np.int64), (len(indptr) - 1,)),
                      np.diff(indptr))
    out = v - v[np.maximum(np.arange(len(v)) - lag_r, 0)]
    out[(pos < lag_r) & (lag_r > 0)] = np.nan
    keep = lag_r == 0
    out[keep] = v[keep]
    return out


def group_stats(v, group, use, n, scale):
    """(center, spread) of the rows ``use`` of each of ``n`` groups: mean and standard
    deviation (``standard``), mid-range and half-range (``minmax``), 0 and the root mean
    square (``rms``: the values keep their mean, only their size is set) or 0 and 1 (``none``);
    sums run over the rows in order (np.bincount), so the bits depend on nothing else. A
    zero spread becomes 1. ``v`` is (rows,) or (rows, e)."""
    two = v.ndim == 2
    v2 = v if two else v[:, None]
    g, w = group[use], v2[use]
    e = v2.shape[1]
    if scale == "none" or e == 0:
        c, s = np.zeros((n, e)), np.ones((n, e))
    elif scale in ("standard", "rms"):
        cnt = np.bincount(g, minlength=n).astype(np.float64)
        per = np.maximum(cnt, 1)[:, None]
        c = np.stack([np.bincount(g, w[:, j], n) for j in range(e)], 1) / per \
            if scale == "standard" else np.zeros((n, e))
        d = w - c[g]
        s = np.sqrt(np.stack([np.bincount(g, d[:, j] * d[:, j], n) for j in range(e)], 1) / per)
    else:
        lo = np.full((n, e), np.inf)
        hi = np.full((n, e), -np.inf)
        np.minimum.at(lo, g, w)
        np.maximum.at(hi, g, w)
        seen = np.isfinite(lo)  # a group without rows (refused later, by name) gets 0 and 1
        c = np.where(seen, (np.where(seen, lo, 0) + np.where(seen, hi, 0)) / 2, 0.0)
        s = np.where(seen, (np.where(seen, hi, 0) - np.where(seen, lo, 0)) / 2, 1.0)
    s = np.where(s > 0, s, 1.0)
    return (c, s) if two else (c[:, 0], s[:, 0])


@dataclass
class Transforms:
    """Per-series transforms of grouped arrays, every field an array indexed by series:
    ``code`` (0 none, 1 log, 2 log1p) -> lag-1 difference (``diff``: per series) -> seasonal
    difference at ``lag`` (0 = none) -> scaling by ``center`` / ``spread``. The covariates
    are differenced the same way and scaled by ``exog_center`` / ``exog_spread``.

    ``fit`` learns everything from each series' training part; ``forward`` maps every row to
    model space (NaN in the rows the differences consume); ``inverse`` continues a history
    with model-space values. The logs are lockstep's canonical ones (float64), so the model's
    inputs are the same bits on every machine."""

    code: np.ndarray
    diff: np.ndarray  # bool per series (a single bool is broadcast)
    lag: np.ndarray
    center: np.ndarray
    spread: np.ndarray
    exog_center: np.ndarray
    exog_spread: np.ndarray
    scale: str = "standard"
    # the smallest training value of each series: a later value below it (a zero after a
    # positive training part) is raised to it before the log, so inputs stay finite
    floor: np.ndarray | None = None
    # seasonal indices (n, period) subtracted after the log (seasonality "indices"): each
    # series' mean deviation from its centred moving average per position in the season,
    # zero where the series shows no significant seasonality (the M3's NAIVE2 rule)
    index: np.ndarray | None = None

    def __post_init__(self):
        self.diff = np.broadcast_to(np.asarray(self.diff, bool), np.shape(self.code)).copy()

    @property
    def period(self) -> int:
        return 0 if self.index is None else self.index.shape[1]

    @property
    def lags(self) -> np.ndarray:
        """Rows each series' differences consume at its start."""
        return self.lag + self.diff.astype(np.int64)

    @classmethod
    def fit(cls, y, exog, indptr, n_train, skip, *, transform="auto", diff=False, season=0,
            scale="standard", diff_nonseasonal=False, min_rows=0, seasonality="difference"):
        """Fit on rows [skip, n_train) of each series (positions inside the series).
        ``transform`` auto takes the log of a series whose training values are all positive
        and leaves the others as they are (zeros and negatives train too). ``diff``: every
        series gets the lag-1 difference; ``diff_nonseasonal``: those without a seasonal
        difference do (their trend is left otherwise). A series keeps the seasonal difference
        only if it has more than two seasons and ``min_rows`` rows (the model's window and
        targets) after it. ``seasonality`` "indices" removes the season by seasonal indices
        instead (``seasonal_indices``), so no series spends rows on a seasonal difference."""
        if seasonality not in SEASONALITY:
            raise DataError(f"seasonality must be one of {', '.join(SEASONALITY)}, got "
                            f"{seasonality!r}")
        if transform not in TRANSFORMS:
            raise DataError(f"transform must be one of {', '.join(TRANSFORMS)}, got {transform!r}")
        if scale not in SCALES:
            raise DataError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
        n = len(indptr) - 1
        pos, group = positions(indptr), group_of(indptr)
        train = (pos >= skip[group]) & (pos < n_train[group])
        lo = np.full(n, np.inf)
        np.minimum.at(lo, group[train], y[train])
        if transform == "auto":
            code = np.where(lo > 0, _CODES["log"], _CODES["none"]).astype(np.int8)
        else:
            code = np.full(n, _CODES[transform], np.int8)
            need = {"log": (lo > 0, "positive values"), "log1p": (lo > -1, "values above -1")}
            if transform in need and not need[transform][0].all():
                raise DataError(f"series {int(np.flatnonzero(~need[transform][0])[0])} has "
                                f"values that the {transform} transform cannot take (it needs "
                                f"{need[transform][1]}); use --transform auto or none")
        usable = n_train - skip
        lag = np.where((usable > 2 * season + 2) & (usable - season - int(diff) >= min_rows),
                       season, 0).astype(np.int64) if season and seasonality == "difference" \
            else np.zeros(n, np.int64)
        d = np.full(n, bool(diff)) | (bool(diff_nonseasonal) & (lag == 0))
        t = cls(code, d, lag, np.zeros(n), np.ones(n), np.zeros((n, 0)),
                np.ones((n, 0)), scale, np.where(np.isfinite(lo), lo, 0.0))
        if seasonality == "indices" and season:
            t.index = seasonal_indices(t.stage1(y, group), indptr, pos, group, skip, n_train,
                                       season)
        first = skip + t.lags
        use = (pos >= first[group]) & (pos < n_train[group])
        t.center, t.spread = group_stats(t._differenced(t.stage1(y, group, pos), indptr, pos),
                                         group, use, n, scale)
        dx = t._differenced(np.asarray(exog, np.float64), indptr, pos)
        t.exog_center, t.exog_spread = group_stats(dx, group, use, n, "standard")
        return t

    def stage1(self, y, group, pos=None):
        """The values after the per-series log / log1p (canonical, float64), less the
        seasonal index of each row's position ``pos`` (needed when there are indices)."""
        y = np.asarray(y, np.float64)
        c = self.code[group]
        out = y.copy()
        if self.floor is not None and (c > 0).any():
            y = np.maximum(y, np.where(c > 0, self.floor[group], -np.inf))
        m = c == _CODES["log"]
        out[m] = arith.log(y[m])
        m = c == _CODES["log1p"]
        out[m] = arith.log(1.0 + y[m])
        if self.period:
            if pos is None:
                raise ValueError("stage1 of seasonal indices needs each row's position")
            out = out - self.index[group, pos % self.period]
        return out

    def _differenced(self, v, indptr, pos):
        if self.diff.any():  # lag 1 where diff, unchanged (lag 0) elsewhere
            v = lagged(v, indptr, self.diff.astype(np.int64), pos)
        return lagged(v, indptr, self.lag, pos)

    def forward(self, y, indptr):
        """Model-space values of every row (NaN in the rows the differences consume)."""
        pos, group = positions(indptr), group_of(indptr)
        return (self._differenced(self.stage1(y, group, pos), indptr, pos) - self.center[group]) \
            / self.spread[group]

    def exog_forward(self, exog, indptr):
        """Scaled differenced covariates of every row (0 in the rows the differences use)."""
        pos, group = positions(indptr), group_of(indptr)
        d = (self._differenced(np.asarray(exog, np.float64), indptr, pos)
             - self.exog_center[group]) / self.exog_spread[group]
        return np.nan_to_num(d, nan=0.0)

    def inverse(self, z, series, s1_hist, start=None):
        """Values that continue each row's history when its model space continues with ``z``
        (B, h). ``series`` (B,) names each row's series; ``s1_hist`` (B, k) holds the last k
        stage-1 values (after the log) of its history, k >= max lag + 1; ``start`` (B,): the
        position of the first value (for the seasonal indices)."""
        return self.from_stage1(self.to_stage1(z, series, s1_hist), series, start)

    def to_stage1(self, z, series, s1_hist):
        """The stage-1 values (after the log, less the seasonal indices) that continue each
        row's history when its model space continues with ``z`` (see ``inverse``)."""
        z = np.asarray(z, np.float64)
        B, h = z.shape
        s = z * self.spread[series][:, None] + self.center[series][:, None]
        hist = np.asarray(s1_hist, np.float64)
        d = self.diff[series]
        with np.errstate(invalid="ignore"):  # the rows without a difference take the values
            d_hist = np.where(d[:, None], hist[:, 1:] - hist[:, :-1], hist[:, 1:])
        lag = self.lag[series]
        if lag.any():  # x[t] = d[t] + x[t - lag], continuing the differenced history
            ext = np.concatenate([d_hist, np.empty((B, h))], axis=1)
            k0 = d_hist.shape[1]
            rows = np.arange(B)
            for t in range(h):
                prev = ext[rows, k0 + t - np.maximum(lag, 1)]
                ext[:, k0 + t] = np.where(lag > 0, s[:, t] + prev, s[:, t])
            s = ext[:, k0:]
        if d.any():  # x[t] = d[t] + x[t - 1] where differenced
            out = np.empty_like(s)
            prev = hist[:, -1]
            for t in range(h):
                prev = s[:, t] + prev
                out[:, t] = prev
            s = np.where(d[:, None], out, s)
        return s

    def from_stage1(self, s, series, start=None):
        """Values from stage-1 values ``s`` (B, h): the seasonal indices of the positions from
        ``start`` (B,) on added back, then the exp / expm1 of each series' log."""
        h = s.shape[1]
        if self.period:
            k = (np.asarray(start)[:, None] + np.arange(h)[None, :]) % self.period
            s = s + self.index[series[:, None], k]
        c = self.code[series][:, None]
        with np.errstate(over="ignore"):
            e = arith.exp(s)
        return np.where(c == _CODES["log"], e, np.where(c == _CODES["log1p"], e - 1.0, s))

    def names(self):
        """Each series' transform by name (for summaries)."""
        return [CODE_NAMES[int(c)] for c in self.code]


def seasonal_indices(v, indptr, pos, group, skip, n_train, m):
    """(n, m) seasonal indices of the values ``v`` (after the log): per series, over its rows
    [skip, n_train), the mean of v minus its centred moving average (2 x m for an even m)
    per position in the season, centred to sum to zero; zero for a series with fewer than
    three seasons or without a significant lag-m autocorrelation (90 %, the M3's NAIVE2
    test). Sums run in order (cumsum, bincount), so the bits depend on nothing else."""
    n = len(indptr) - 1
    out = np.zeros((n, m))
    for i in range(n):
        lo, hi = indptr[i] + skip[i], indptr[i] + n_train[i]
        x = v[lo:hi]
        if len(x) < 3 * m or not _seasonal(x, m):
            continue
        c = np.concatenate([[0.0], np.cumsum(x)])
        ma = (c[m:] - c[:-m]) / m  # ma[j] = mean of x[j:j + m]
        if m % 2 == 0:  # centre the even moving average: mean of two neighbours
            trend = (ma[:-1] + ma[1:]) / 2
            off = m // 2
        else:
            trend, off = ma, m // 2
        dev = x[off:off + len(trend)] - trend
        p = (pos[lo + off:lo + off + len(trend)]) % m
        cnt = np.bincount(p, minlength=m)
        si = np.bincount(p, dev, minlength=m) / np.maximum(cnt, 1)
        out[i] = si - np.sum(si) / m
    return out


THETA_GRID = np.round(np.arange(1, 21) * 0.05, 2)  # smoothing constants tried, then refined
# the Theta method smooths each history's last THETA_MEMORY values at most (their first one
# the starting level): (1 - 0.01)^512 < 0.6 %, so older values barely count even at the
# smallest constant, and a long history costs no more than that
THETA_MEMORY = 512


def _ses(xv, valid, a):
    """Simple exponential smoothing of each row of ``xv`` (B, T) over its ``valid`` values
    (a prefix of the row; the first one the starting level) for the smoothing constants
    ``a`` (A, 1) or (A, B): the in-sample one-step squared error, the last level and
    (1 - a)^(values), each (A, B), every one running over t in order."""
    B, T = xv.shape
    level = np.broadcast_to(xv[:, 0], (a.shape[0], B)).copy()
    sse = np.zeros_like(level)
    q = np.broadcast_to(1.0 - a, level.shape).copy()
    for t in range(1, T):
        e = xv[:, t] - level
        on = valid[:, t]
        sse = sse + np.where(on, e * e, 0.0)
        level = np.where(on, level + a * e, level)
        q = np.where(on, q * (1.0 - a), q)
    return sse, level, q


def theta(x, n, h):
    """The Theta method's forecasts (B, h) of the rows of ``x`` (B, T), each from its first
    n[b] >= 1 values (deseasonalised already): simple exponential smoothing of the last
    THETA_MEMORY of them plus half the least-squares slope ``b`` of all of them as the
    drift, the SES-with-drift form of Hyndman and Billah (2003): level + b / 2 (k - 1 +
    (1 - (1 - a)^m) / a) for k = 1..h over m smoothed values. The smoothing constant ``a``
    is the one of THETA_GRID with the smallest in-sample one-step squared error, refined in
    steps of 0.01 around it (the first of equal errors). Sums run over t in order,
    elementwise over rows, so a row's bits depend on its own values only (not on the rows
    or the padding beside it)."""
    x = np.asarray(x, np.float64)
    n = np.asarray(n, np.int64)
    B, T = x.shape
    rows = np.arange(B)
    xv = np.where(np.arange(T)[None, :] < n[:, None], x, 0.0)
    sx = np.cumsum(xv, axis=1)[rows, n - 1]  # np.cumsum adds in order
    stx = np.cumsum(xv * np.arange(T, dtype=np.float64), axis=1)[rows, n - 1]
    nf = n.astype(np.float64)
    st, stt = nf * (nf - 1) / 2, (nf - 1) * nf * (2 * nf - 1) / 6  # sums of t and t^2
    den = nf * stt - st * st
    slope = np.where(den > 0, (nf * stx - st * sx) / np.where(den > 0, den, 1.0), 0.0)
    m = np.minimum(n, THETA_MEMORY)  # the smoothed values, left-aligned
    K = int(m.max())
    idx = (n - m)[:, None] + np.minimum(np.arange(K)[None, :], m[:, None] - 1)
    valid = np.arange(K)[None, :] < m[:, None]
    xs = np.where(valid, x[rows[:, None], idx], 0.0)
    grid = THETA_GRID[:, None]
    best = grid[np.argmin(_ses(xs, valid, grid)[0], axis=0), 0]
    fine = np.round(np.clip(best[None, :] + np.arange(-4, 5)[:, None] * 0.01, 0.01, 1.0), 2)
    sse, level, q = _ses(xs, valid, fine)
    k = np.argmin(sse, axis=0)
    a, level, q = fine[k, rows], level[k, rows], q[k, rows]
    steps = np.arange(h, dtype=np.float64)[None, :]
    return level[:, None] + (slope / 2)[:, None] * (steps + ((1.0 - q) / a)[:, None])


def _seasonal(x, m) -> bool:
    """The lag-m autocorrelation is beyond 1.645 standard errors (Bartlett)."""
    d = x - np.sum(x) / len(x)
    den = np.sum(d * d)
    if den <= 0:
        return False
    r = np.array([np.sum(d[k:] * d[:-k]) / den for k in range(1, m + 1)])
    limit = 1.645 * np.sqrt((1 + 2 * np.sum(r[:-1] ** 2)) / len(x))
    return abs(r[-1]) > limit


def kmeans_groups(v, group, n, k=3):
    """Per-group ``kmeans_1d`` centroids (n, k) of the values ``v`` of each group."""
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(n + 1))
    vs = v[order]
    return np.stack([kmeans_1d(vs[bounds[i]:bounds[i + 1]], k) for i in range(n)])


# ---- the seed's "encoded change" task ------------------------------------------------------

def bounds(t):
    """The seed's upper (0.5 t + 15) and lower (-0.6 t - 7) bound lines at indices ``t``."""
    t = np.asarray(t, np.float64)
    return 0.5 * t + 15, -0.6 * t - 7


def bound_lines(n: int):
    """``bounds`` for t = 0..n-1."""
    return bounds(np.arange(n))


def scaled_change(d, t):
    """A change ``d`` at index ``t`` over the upper bound when >= 0, over |lower| when not."""
    up, lo = bounds(t)
    return np.where(d >= 0, d / up, d / np.abs(lo))


def normalized_change(values, t=None):
    """Each change x[t+1] - x[t] of a series, ``scaled_change`` at t = 0, 1, ... (or ``t``)."""
    v = np.asarray(values, np.float64).reshape(-1)
    d = v[1:] - v[:-1]
    return scaled_change(d, np.arange(len(d)) if t is None else t)


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


def decode(tokens, t, centroids):
    """Changes from tokens: the centroid times the bound line at each change's index ``t``
    (tokens, t and centroids broadcast: (B, h), (B, h), (B, 3) per row)."""
    tok = np.asarray(tokens)
    t = np.asarray(t, np.float64)
    c = np.take_along_axis(np.asarray(centroids), tok, axis=-1) if np.ndim(centroids) > 1 \
        else np.asarray(centroids)[tok]
    up, lo = bounds(t)
    return np.where(c >= 0, c * up, c * np.abs(lo))


def one_hot(tokens, k: int, dtype=np.float64):
    tok = np.asarray(tokens)
    out = np.zeros(tok.shape + (k,), dtype)
    np.put_along_axis(out, tok[..., None], 1, axis=-1)
    return out
