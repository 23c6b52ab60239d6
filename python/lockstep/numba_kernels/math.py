"""Non-contracting arithmetic and the canonical transcendental functions as Numba CUDA device
functions, for one working dtype (docs/arithmetic.md sections 1-3, twin of ``arith.py``).

``make_math(dtype)`` returns a namespace of device functions. On a GPU the five rounded
operations call ``numba.cuda.libdevice`` ``*_rn`` functions, so NVVM can never contract
``(a * b) + c`` into an FMA (Numba does that even with ``fastmath=False``). Under the simulator
(``NUMBA_ENABLE_CUDASIM=1``) the libdevice functions are stubs returning None, so the same
helpers use plain operators on NumPy scalars, which round once in the scalar's dtype.

Every constant is a NumPy scalar of the working dtype (a Python float literal in a float32
kernel would be a float64 and promote the expression). Exact operations (floor, copysign,
bit casts for 2**k and for splitting a float) have one GPU and one simulator form each.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
from numba import cuda  # module-level: the simulator swaps this global inside kernels

from .. import arith


def simulating() -> bool:
    """True when this process runs the Numba CUDA simulator."""
    from numba.cuda import config
    return bool(config.ENABLE_CUDASIM)


@functools.lru_cache(maxsize=None)
def make_math(dtype) -> SimpleNamespace:
    """Device helpers and canonical functions for float32 or float64 (cached per dtype)."""
    dt = np.dtype(dtype)
    c = arith.constants(dt)
    F = dt.type
    f32 = dt == np.float32
    sim = simulating()
    dev = cuda.jit(device=True)

    def K(v):
        return arith.const(v, dt)

    ZERO, ONE, TWO, HALF = F(0), F(1), F(2), F(0.5)
    INF, NAN = F(np.inf), F(np.nan)
    LOG2E, LN2_HI, LN2_LO = K(c.log2e), K(c.ln2_hi), K(c.ln2_lo)
    SQRT2, EXP_HI, EXP_LO = K(c.sqrt2), K(c.exp_hi), K(c.exp_lo)
    TANH_LO, TANH_MID, TANH_ONE = K(c.tanh_lo), K(c.tanh_mid), K(c.tanh_one)
    TINY = F(np.finfo(dt).tiny)
    SUB_BITS = c.log_subnormal_scale_bits
    SUB_SCALE = F(2.0 ** SUB_BITS)
    MANT, BIAS = c.mant_bits, c.bias
    MANT_MASK = (1 << MANT) - 1
    ONE_BITS = BIAS << MANT
    # Horner runs from the highest coefficient down: the first one is the start value.
    EXP_TOP = K(c.exp_coeffs[-1])
    EXP_REST = tuple(K(h) for h in reversed(c.exp_coeffs[:-1]))
    LOG_TOP = K(c.log_coeffs[-1])
    LOG_REST = tuple(K(h) for h in reversed(c.log_coeffs[:-1]))
    IT = np.int32 if f32 else np.int64  # the integer type of the float's bits

    # ---- the five rounded operations and the exact ones -----------------------------------
    if sim:
        def mul(a, b):
            return a * b

        def add(a, b):
            return a + b

        def sub(a, b):
            return a - b

        def div(a, b):
            return a / b

        def sqrt(a):
            return np.sqrt(a)

        def floor(a):
            return np.floor(a)

        def copysign(a, b):
            return np.copysign(a, b)

        def bits_of(a):
            return int(F(a).view(IT))

        def from_bits(i):
            return IT(i).view(dt)
    else:
        from numba.cuda import libdevice as ld
        if f32:
            def mul(a, b):
                return ld.fmul_rn(a, b)

            def add(a, b):
                return ld.fadd_rn(a, b)

            def sub(a, b):
                return ld.fsub_rn(a, b)

            def div(a, b):
                return ld.fdiv_rn(a, b)

            def sqrt(a):
                return ld.fsqrt_rn(a)

            def floor(a):
                return ld.floorf(a)

            def copysign(a, b):
                return ld.copysignf(a, b)

            def bits_of(a):
                return ld.float_as_int(a)

            def from_bits(i):
                return ld.int_as_float(np.int32(i))
        else:
            def mul(a, b):
                return ld.dmul_rn(a, b)

            def add(a, b):
                return ld.dadd_rn(a, b)

            def sub(a, b):  # libdevice has no dsub_rn; a - b is a + (-b) in IEEE 754
                return ld.dadd_rn(a, -b)

            def div(a, b):
                return ld.ddiv_rn(a, b)

            def sqrt(a):
                return ld.dsqrt_rn(a)

            def floor(a):
                return ld.floor(a)

            def copysign(a, b):
                return ld.copysign(a, b)

            def bits_of(a):
                return ld.double_as_longlong(a)

            def from_bits(i):
                return ld.longlong_as_double(np.int64(i))

    if not sim:  # under the simulator they stay plain Python functions: much faster there
        mul, add, sub, div, sqrt = dev(mul), dev(add), dev(sub), dev(div), dev(sqrt)
        floor, copysign = dev(floor), dev(copysign)
        bits_of, from_bits = dev(bits_of), dev(from_bits)

    # ---- canonical functions: the operation sequence of arith.py, one scalar at a time ----
    @dev
    def pow2(k):
        """2**k from its bits; k an integer in the normal exponent range."""
        return from_bits((k + BIAS) << MANT)

    @dev
    def fast_two_sum(a, b):
        s = add(a, b)
        return s, add(sub(a, s), b)

    @dev
    def div_dw(n_hi, n_lo, d_hi, d_lo):
        q = div(n_hi, d_hi)
        return add(q, div(sub(n_lo, mul(q, d_lo)), d_hi))

    @dev
    def reduce(x):
        k = floor(add(mul(x, LOG2E), HALF))
        hi = sub(x, mul(k, LN2_HI))
        lo = mul(k, LN2_LO)
        r = sub(hi, lo)
        corr = sub(sub(hi, r), lo)
        return k, r, corr

    @dev
    def expm1_tail(r, corr):
        p = EXP_TOP
        for a in EXP_REST:
            p = add(a, mul(r, p))
        return add(mul(mul(r, r), p), add(corr, mul(corr, r)))

    @dev
    def scaled_expm1_dw(a, s, r, corr):
        h, e = fast_two_sum(a, mul(s, r))
        return fast_two_sum(h, add(e, mul(s, expm1_tail(r, corr))))

    @dev
    def exp_dw(x):
        """exp(x) as (hi, lo) for finite x in [EXP_LO, EXP_HI]."""
        k, r, corr = reduce(x)
        p_hi, p_lo = scaled_expm1_dw(ONE, ONE, r, corr)
        ki = int(k)
        k1 = ki >> 1
        s1 = pow2(k1)
        s2 = pow2(ki - k1)
        return mul(mul(p_hi, s1), s2), mul(mul(p_lo, s1), s2)

    @dev
    def exp(x):
        if x != x:
            return x
        if x > EXP_HI:
            return INF
        if x < EXP_LO:
            return ZERO
        hi, lo = exp_dw(x)
        return hi

    @dev
    def log(x):
        if x != x or x < ZERO:
            return NAN
        if x == ZERO:
            return -INF
        if x == INF:
            return INF
        e_adj = 0
        if x < TINY:
            x = mul(x, SUB_SCALE)  # exact
            e_adj = SUB_BITS
        bits = bits_of(x)
        e = (bits >> MANT) - BIAS - e_adj
        m = from_bits((bits & MANT_MASK) | ONE_BITS)
        if m > SQRT2:
            m = mul(m, HALF)
            e = e + 1
        f = sub(m, ONE)
        s = div(f, add(TWO, f))
        z = mul(s, s)
        p = LOG_TOP
        for a in LOG_REST:
            p = add(a, mul(z, p))
        big_r = mul(z, p)
        hfsq = mul(mul(HALF, f), f)
        dk = F(e)
        return sub(mul(dk, LN2_HI),
                   sub(sub(hfsq, add(mul(s, add(hfsq, big_r)), mul(dk, LN2_LO))), f))

    @dev
    def sigmoid(x):
        if x != x:
            return x
        m = -abs(x)
        e_hi = ZERO
        e_lo = ZERO
        if m >= EXP_LO:
            e_hi, e_lo = exp_dw(m)
        d_hi, d_lo = fast_two_sum(ONE, e_hi)
        d_lo = add(d_lo, e_lo)
        if x >= ZERO:
            return div_dw(ONE, ZERO, d_hi, d_lo)
        return div_dw(e_hi, e_lo, d_hi, d_lo)

    @dev
    def tanh(x):
        if x != x:
            return x
        a = abs(x)
        if a < TANH_MID:
            low = a < TANH_LO
            u = add(a, a)
            if low:
                u = -u
            k, r, corr = reduce(u)
            s = pow2(int(k))
            t_hi, t_lo = scaled_expm1_dw(sub(s, ONE), s, r, corr)
            d_hi, d_lo = fast_two_sum(TWO, t_hi)
            d_lo = add(d_lo, t_lo)
            if low:
                y = div_dw(-t_hi, -t_lo, d_hi, d_lo)
            else:
                y = div_dw(t_hi, t_lo, d_hi, d_lo)
        elif a >= TANH_ONE:
            y = ONE
        else:
            e_hi, e_lo = exp_dw(add(a, a))
            d2_hi, d2_lo = fast_two_sum(e_hi, ONE)
            y = sub(ONE, div_dw(TWO, ZERO, d2_hi, add(d2_lo, e_lo)))
        return copysign(y, x)

    return SimpleNamespace(dtype=dt, F=F, sim=sim, ZERO=ZERO, ONE=ONE, mul=mul, add=add,
                           sub=sub, div=div, sqrt=sqrt, floor=floor, copysign=copysign,
                           pow2=pow2, exp_dw=exp_dw, exp=exp, log=log, sigmoid=sigmoid,
                           tanh=tanh)
