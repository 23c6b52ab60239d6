"""Measuring canonical math against a higher-precision oracle, in units in the last place."""

from __future__ import annotations

import numpy as np

# float64 is a > 2**29-times finer oracle for float32; x86 long double (64-bit significand)
# is 2**11 finer than float64. Where long double is no wider than double, mpmath takes over.
LONGDOUBLE_OK = np.finfo(np.longdouble).nmant >= 63


def _oracle_np(name, x, wide):
    xw = x.astype(wide)
    one = wide(1)
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        if name == "exp":
            return np.exp(xw)
        if name == "log":
            return np.log(xw)
        if name == "tanh":
            return np.tanh(xw)
        if name == "sigmoid":
            return one / (one + np.exp(-xw))
    raise KeyError(name)


def _oracle_mpmath(name, x):
    import mpmath

    mpmath.mp.prec = 120
    out = []
    for v in x.tolist():
        v = mpmath.mpf(v)
        if name == "exp":
            out.append(mpmath.exp(v))
        elif name == "log":
            out.append(mpmath.log(v) if v > 0 else (mpmath.ninf if v == 0 else mpmath.nan))
        elif name == "tanh":
            out.append(mpmath.tanh(v))
        else:
            out.append(1 / (1 + mpmath.exp(-v)))
    return out


def ulp_errors(name, x, y):
    """|y - f(x)| in ulps of the exact result's binade in x's dtype (subnormal ulp floor)."""
    dt = x.dtype
    p, emin = (24, -149) if dt == np.float32 else (53, -1074)
    if dt == np.float32:
        ref = _oracle_np(name, x, np.float64)
        wide = np.float64
    elif LONGDOUBLE_OK:
        ref = _oracle_np(name, x, np.longdouble)
        wide = np.longdouble
    else:  # pragma: no cover - exotic platforms only
        import mpmath

        ref_mp = _oracle_mpmath(name, x)
        out = np.empty(x.shape, np.float64)
        for i, (r, v) in enumerate(zip(ref_mp, y.tolist())):
            if mpmath.isnan(r) or mpmath.isinf(r):
                out[i] = 0.0 if (np.isnan(v) and mpmath.isnan(r)) or v == float(r) else np.inf
                continue
            e = mpmath.frexp(r)[1] if r != 0 else emin
            out[i] = float(abs(mpmath.mpf(v) - r) / mpmath.ldexp(1, max(e - p, emin)))
        return out
    finite = np.isfinite(ref) & (np.abs(ref) <= np.finfo(dt).max)
    err = np.zeros(x.shape, np.float64)
    _, e = np.frexp(np.where(finite, ref, wide(1)))
    ulp = np.ldexp(wide(1), np.maximum(e - p, emin))
    with np.errstate(invalid="ignore", over="ignore"):
        err[finite] = (np.abs(y[finite].astype(wide) - ref[finite]) / ulp[finite]).astype(np.float64)
        # Beyond the finite range the only right answer is the rounded one: inf, nan or a limit.
        nf = ~finite
        expect = np.where(np.isnan(ref[nf]), np.nan, np.clip(ref[nf], -np.inf, np.inf)).astype(dt)
        ok = (y[nf] == expect) | (np.isnan(y[nf]) & np.isnan(expect))
    err[nf] = np.where(ok, 0.0, np.inf)
    return err


def samples(name, dtype, n, seed=0):
    """n inputs over the domain training uses, plus random bit patterns across all binades."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    uint = np.uint32 if dt == np.float32 else np.uint64
    bits = rng.integers(0, np.iinfo(uint).max, n // 4, dtype=uint, endpoint=True).view(dt)
    bits = bits[np.isfinite(bits)]
    wide = {"exp": (-104, 89) if dt == np.float32 else (-746, 710),
            "log": (0, 4), "sigmoid": (-110, 40) if dt == np.float32 else (-750, 40),
            "tanh": (-25, 25)}[name]
    m = n - 2 * (n // 4) - bits.size  # what the non-finite bit patterns left out, too
    parts = [rng.uniform(*wide, n // 4), rng.uniform(-3, 3, n // 4),
             np.ldexp(rng.uniform(0.5, 1, m), rng.integers(-40, 6, m)) * rng.choice([-1, 1], m)]
    x = np.concatenate(parts + [bits]).astype(dt)
    if name == "log":
        x = np.abs(x)
    return x
