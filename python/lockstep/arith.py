"""Canonical arithmetic for NumPy: the executable form of docs/arithmetic.md.

Every function here is built from correctly rounded ``+ - * /`` and ``sqrt`` in the working
dtype plus exact operations (floor, comparisons, copysign, building 2**k from bits). NumPy's
own exp/log/tanh and BLAS differ between machines and are never used. The C++/CUDA twin is
``csrc/include/lockstep/canonical.h``; both must evaluate the same expression trees with the
same constants (tests/test_arith.py compares them bit for bit and parses the header's
constants).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass(frozen=True)
class _Consts:
    """Constants of one working dtype, written as exact hex literals (same as canonical.h)."""

    dtype: np.dtype
    uint: type
    mant_bits: int
    bias: int
    exp_coeffs: tuple  # 1/n! for n = 2.. (Taylor coefficients of (exp(r) - 1 - r) / r^2)
    log_coeffs: tuple  # 2/(2j+1) for j = 1.. (atanh series of log(1+f))
    log2e: str
    ln2_hi: str  # trailing zeros: k * ln2_hi is exact for every k the functions produce
    ln2_lo: str
    sqrt2: str
    exp_hi: str  # above: exp overflows -> +inf
    exp_lo: str  # below: exp underflows -> +0
    log_subnormal_scale_bits: int  # subnormal inputs of log are scaled by 2**this first
    tanh_lo: str  # |x| below: tanh = -t/(2+t), t = expm1(-2|x|)   (~log(5/4)/2)
    tanh_mid: str  # |x| below: tanh = t/(t+2), t = expm1(2|x|)    (~log(3)/2)
    tanh_one: str  # |x| at or above: tanh is exactly 1


_F32 = _Consts(
    dtype=np.dtype(np.float32), uint=np.uint32, mant_bits=23, bias=127,
    exp_coeffs=("0x1p-1", "0x1.555556p-3", "0x1.555556p-5", "0x1.111112p-7",
                "0x1.6c16c2p-10", "0x1.a01a02p-13", "0x1.a01a02p-16"),
    log_coeffs=("0x1.555556p-1", "0x1.99999ap-2", "0x1.24924ap-2", "0x1.c71c72p-3"),
    log2e="0x1.715476p+0", ln2_hi="0x1.62e4p-1", ln2_lo="0x1.7f7d1cp-20",
    sqrt2="0x1.6a09e6p+0", exp_hi="0x1.64p+6", exp_lo="-0x1.ap+6",
    log_subnormal_scale_bits=25, tanh_lo="0x1.c9p-4", tanh_mid="0x1.19p-1", tanh_one="0x1.4p+4",
)

_F64 = _Consts(
    dtype=np.dtype(np.float64), uint=np.uint64, mant_bits=52, bias=1023,
    exp_coeffs=("0x1p-1", "0x1.5555555555555p-3", "0x1.5555555555555p-5",
                "0x1.1111111111111p-7", "0x1.6c16c16c16c17p-10", "0x1.a01a01a01a01ap-13",
                "0x1.a01a01a01a01ap-16", "0x1.71de3a556c734p-19", "0x1.27e4fb7789f5cp-22",
                "0x1.ae64567f544e4p-26", "0x1.1eed8eff8d898p-29", "0x1.6124613a86d09p-33"),
    log_coeffs=("0x1.5555555555555p-1", "0x1.999999999999ap-2", "0x1.2492492492492p-2",
                "0x1.c71c71c71c71cp-3", "0x1.745d1745d1746p-3", "0x1.3b13b13b13b14p-3",
                "0x1.1111111111111p-3", "0x1.e1e1e1e1e1e1ep-4", "0x1.af286bca1af28p-4",
                "0x1.8618618618618p-4"),
    log2e="0x1.71547652b82fep+0", ln2_hi="0x1.62e42feep-1", ln2_lo="0x1.a39ef35793c76p-33",
    sqrt2="0x1.6a09e667f3bcdp+0", exp_hi="0x1.63p+9", exp_lo="-0x1.750p+9",
    log_subnormal_scale_bits=54, tanh_lo="0x1.c9p-4", tanh_mid="0x1.19p-1", tanh_one="0x1.4p+5",
)

_CONSTS = {c.dtype: c for c in (_F32, _F64)}


def constants(dtype) -> _Consts:
    """The constant table of a working dtype (float32 or float64)."""
    try:
        return _CONSTS[np.dtype(dtype)]
    except KeyError:
        raise TypeError(f"unsupported dtype {np.dtype(dtype)}: use float32 or float64") from None


def const(value, dtype):
    """A constant as a working-dtype scalar; hex strings are exact, floats are rounded once."""
    dt = np.dtype(dtype)
    return dt.type(float.fromhex(value) if isinstance(value, str) else value)


def _quiet(fn):
    """Masked lanes may overflow or divide by zero on purpose; their results are discarded."""
    @functools.wraps(fn)
    def wrapper(x):
        with np.errstate(all="ignore"):
            return fn(x)
    return wrapper


def _check(x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype not in DTYPES:
        raise TypeError(f"canonical math needs float32 or float64 arrays, got {x.dtype}")
    return x


def _pow2(k: np.ndarray, c: _Consts) -> np.ndarray:
    """2**k built from its bits; k must lie in the normal exponent range."""
    bits = (k.astype(np.int64) + c.bias).astype(c.uint) << c.uint(c.mant_bits)
    return bits.view(c.dtype)


def _reduce(x, c: _Consts):
    """x = k*ln2 + r + corr: k = floor(x*log2e + 1/2), hi = x - k*ln2_hi (exact),
    lo = k*ln2_lo, r = hi - lo, corr = (hi - r) - lo (what rounding r dropped)."""
    dt = c.dtype
    k = np.floor((x * const(c.log2e, dt)) + const(0.5, dt))
    hi = x - (k * const(c.ln2_hi, dt))
    lo = k * const(c.ln2_lo, dt)
    r = hi - lo
    corr = (hi - r) - lo
    return k, r, corr


def _expm1_tail(r, corr, c: _Consts):
    """exp(r + corr) - 1 - r for |r| <= ~ln2/2: ((r*r) * P(r)) + (corr + (corr*r)),
    P(r) = 1/2! + r*(1/3! + r*(...)) by Horner from the highest coefficient."""
    dt = c.dtype
    coeffs = [const(h, dt) for h in c.exp_coeffs]
    p = coeffs[-1]
    for a in reversed(coeffs[:-1]):
        p = a + (r * p)
    return ((r * r) * p) + (corr + (corr * r))


def _fast_two_sum(a, b):
    """(s, e) with s = a + b rounded and s + e == a + b exactly, given |a| >= |b| or a == 0."""
    s = a + b
    return s, (a - s) + b


def _div_dw(n_hi, n_lo, d_hi, d_lo):
    """(n_hi + n_lo) / (d_hi + d_lo) to within ~1 ulp: q = n_hi/d_hi, then one correction."""
    q = n_hi / d_hi
    return q + ((n_lo - (q * d_lo)) / d_hi)


def _scaled_expm1_dw(a, s, r, corr, c: _Consts):
    """a + s*exp(r + corr) - s as a double word (hi, lo), with a = s or s - 1 and s = 2**k
    exact: h = a + s*r by Fast2Sum, then everything else is added at the result's scale."""
    h, e = _fast_two_sum(a, s * r)
    return _fast_two_sum(h, e + (s * _expm1_tail(r, corr, c)))


def _exp_dw(x, c: _Consts):
    """exp(x) as (hi, lo) for finite x in [exp_lo, exp_hi]; hi is exactly exp(x)'s result."""
    one = const(1.0, c.dtype)
    k, r, corr = _reduce(x, c)
    p_hi, p_lo = _scaled_expm1_dw(one, one, r, corr, c)  # exp(r), in [0.7, 1.42]
    ki = k.astype(np.int64)
    k1 = ki >> 1  # floor(k/2): both halves stay normal, so only the last multiply rounds
    s1, s2 = _pow2(k1, c), _pow2(ki - k1, c)
    return (p_hi * s1) * s2, (p_lo * s1) * s2


@_quiet
def exp(x):
    """Canonical exp: Cody-Waite reduction, Taylor polynomial, 2**k applied in two halves."""
    x = _check(x)
    c = constants(x.dtype)
    dt = c.dtype
    nan = np.isnan(x)
    over = x > const(c.exp_hi, dt)
    under = x < const(c.exp_lo, dt)
    y, _ = _exp_dw(np.where(nan | over | under, dt.type(0), x), c)
    y = np.where(over, dt.type(np.inf), y)
    y = np.where(under, dt.type(0), y)
    return np.where(nan, x, y)


def _expm1_small_dw(u, c: _Consts):
    """exp(u) - 1 as (hi, lo) for -0.25 <= u <= 1.1 (tanh's range): (s - 1) + s*exp(r)..."""
    k, r, corr = _reduce(u, c)
    s = _pow2(k, c)
    return _scaled_expm1_dw(s - const(1.0, c.dtype), s, r, corr, c)


@_quiet
def log(x):
    """Canonical natural log (fdlibm's scheme with Taylor atanh coefficients)."""
    x = _check(x)
    c = constants(x.dtype)
    dt = c.dtype
    one, half = const(1.0, dt), const(0.5, dt)
    nan = np.isnan(x) | (x < 0)
    zero = x == 0
    inf = np.isposinf(x)
    xs = np.where(nan | zero | inf, one, x)
    tiny = xs < np.finfo(dt).tiny
    xs = np.where(tiny, xs * dt.type(2.0 ** c.log_subnormal_scale_bits), xs)  # exact
    bits = xs.view(c.uint)
    e = (bits >> c.uint(c.mant_bits)).astype(np.int64) - c.bias
    mant_mask = c.uint((1 << c.mant_bits) - 1)
    m = ((bits & mant_mask) | c.uint(c.bias << c.mant_bits)).view(dt)  # m in [1, 2)
    big = m > const(c.sqrt2, dt)
    m = np.where(big, m * half, m)  # m in (sqrt2/2, sqrt2]
    e = e + big - np.where(tiny, c.log_subnormal_scale_bits, 0)
    f = m - one  # exact (Sterbenz)
    s = f / (const(2.0, dt) + f)
    z = s * s
    coeffs = [const(h, dt) for h in c.log_coeffs]
    p = coeffs[-1]
    for a in reversed(coeffs[:-1]):
        p = a + (z * p)
    big_r = z * p
    hfsq = (half * f) * f
    dk = e.astype(dt)
    y = (dk * const(c.ln2_hi, dt)) - (
        (hfsq - ((s * (hfsq + big_r)) + (dk * const(c.ln2_lo, dt)))) - f)
    y = np.where(zero, dt.type(-np.inf), y)
    y = np.where(inf, dt.type(np.inf), y)
    return np.where(nan, dt.type(np.nan), y)


@_quiet
def sigmoid(x):
    """1/(1+E) for x >= 0, E/(1+E) below, E = exp(-|x|) as a double word and 1+E by
    Fast2Sum, so that only the quotient and its correction round: no overflow, no
    cancellation, ~1 ulp."""
    x = _check(x)
    c = constants(x.dtype)
    dt = c.dtype
    one, zero = const(1.0, dt), dt.type(0)
    pos = x >= 0
    nan = np.isnan(x)
    m = -np.abs(x)
    in_range = m >= const(c.exp_lo, dt)
    e_hi, e_lo = _exp_dw(np.where(in_range & ~nan, m, zero), c)
    e_hi = np.where(in_range, e_hi, zero)
    e_lo = np.where(in_range, e_lo, zero)
    d_hi, d_lo = _fast_two_sum(one, e_hi)
    d_lo = d_lo + e_lo
    y = _div_dw(np.where(pos, one, e_hi), np.where(pos, zero, e_lo), d_hi, d_lo)
    return np.where(nan, x, y)


@_quiet
def tanh(x):
    """Canonical tanh from t = expm1(+-2|x|) as a double word where the quotient is well
    conditioned: |x| < tanh_lo: -t/(2+t), t = expm1(-2|x|); |x| < tanh_mid: t/(t+2),
    t = expm1(2|x|); |x| < tanh_one: 1 - 2/(E+1), E = exp(2|x|); beyond: 1. Sign of x."""
    x = _check(x)
    c = constants(x.dtype)
    dt = c.dtype
    one, two, zero = const(1.0, dt), const(2.0, dt), dt.type(0)
    a = np.abs(x)
    nan = np.isnan(x)
    low = a < const(c.tanh_lo, dt)
    mid = ~low & (a < const(c.tanh_mid, dt))
    far = a >= const(c.tanh_one, dt)
    a_near = np.where(low | mid, a, zero)
    # low: u = -2|x| and n = -t; mid: u = 2|x| and n = t. Either way 2 + t > 0 is exact-ish.
    u = np.where(low, -(a_near + a_near), a_near + a_near)
    t_hi, t_lo = _expm1_small_dw(u, c)
    d_hi, d_lo = _fast_two_sum(two, t_hi)
    d_lo = d_lo + t_lo
    y_near = _div_dw(np.where(low, -t_hi, t_hi), np.where(low, -t_lo, t_lo), d_hi, d_lo)
    a_high = np.where(low | mid | far | nan, one, a)
    e_hi, e_lo = _exp_dw(a_high + a_high, c)
    d2_hi, d2_lo = _fast_two_sum(e_hi, one)
    y_high = one - _div_dw(two, zero, d2_hi, d2_lo + e_lo)
    y = np.where(low | mid, y_near, np.where(far, one, y_high))
    return np.where(nan, x, np.copysign(y, x))


def ordered_sum(a, axis=0, start=None):
    """Sequential sum along ``axis``: ((start + a[0]) + a[1]) + ..., start defaults to +0."""
    a = _check(a)
    a = np.moveaxis(a, axis, 0)
    s = np.zeros(a.shape[1:], a.dtype) if start is None else np.asarray(start, a.dtype)
    if a.shape[0] == 0:
        return s.copy()
    # add.accumulate is strictly sequential (unlike np.sum's pairwise tree).
    return np.add.accumulate(np.concatenate([s[None], a]), axis=0)[-1]


def matmul(start, a, b):
    """out[r, c] = start[r, c] + sum_k a[r, k] * b[k, c], terms added in ascending k.

    Each product is rounded, then added: never fused, never reordered, never BLAS.
    """
    a, b = _check(a), _check(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul shapes do not chain: {a.shape} x {b.shape}")
    out_shape = (a.shape[0], b.shape[1])
    if start is None:
        acc = np.zeros(out_shape, a.dtype)
    else:
        acc = np.array(np.broadcast_to(np.asarray(start, a.dtype), out_shape))
    for k in range(a.shape[1]):
        acc += a[:, k, None] * b[None, k, :]
    return acc


def sum_sq(a, start=None):
    """Sequential sum of squares over a flat (C-order) array: start + a[0]*a[0] + ..."""
    a = _check(a).reshape(-1)
    return ordered_sum(a * a, 0, start)
