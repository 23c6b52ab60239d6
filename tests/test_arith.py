"""Canonical math: accuracy against a higher-precision oracle, NumPy == C++ bit for bit,
the constants of arith.py and canonical.h agree, and the build neither contracts nor flushes."""

import math
import re
from fractions import Fraction
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from _accuracy import samples, ulp_errors
from conftest import assert_same_bits, bits

from lockstep import _cpu, arith

FUNCS = ("exp", "log", "sigmoid", "tanh")
N_SAMPLES = 10**6


def edge_values(dtype):
    """Special values, subnormals, range limits and every threshold the functions branch on."""
    dt = np.dtype(dtype)
    fi = np.finfo(dt)
    c = arith.constants(dt)
    base = [0.0, -0.0, np.inf, -np.inf, np.nan, fi.smallest_subnormal, -fi.smallest_subnormal,
            fi.tiny, -fi.tiny, fi.tiny - fi.smallest_subnormal, fi.max, -fi.max, 1.0, -1.0, 0.5,
            2.0, math.log(fi.max), math.log(float(fi.smallest_subnormal)) - math.log(2), math.log(fi.tiny)]
    for h in (c.exp_hi, c.exp_lo, c.tanh_lo, c.tanh_mid, c.tanh_one, c.sqrt2):
        base.append(float.fromhex(h))
    base += [v * 0.5 for v in base if np.isfinite(v)] + [-v for v in base if np.isfinite(v)]
    x = np.array(base, dt)
    with np.errstate(over="ignore"):  # nextafter(max, inf) is inf, on purpose
        return np.concatenate([x, np.nextafter(x, dt.type(np.inf)), np.nextafter(x, dt.type(-np.inf))])


@pytest.mark.parametrize("name", FUNCS)
def test_accuracy_within_2_ulp(name, dtype):
    x = np.concatenate([samples(name, dtype, N_SAMPLES), edge_values(dtype)])
    assert x.size >= N_SAMPLES
    err = ulp_errors(name, x, getattr(arith, name)(x))
    worst = int(np.argmax(err))
    assert err[worst] <= 2.0, (f"{name}[{dtype}] is {err[worst]:.3f} ulp off at "
                               f"x={x[worst]!r}: ours={getattr(arith, name)(x[worst:worst + 1])}")


SPECIALS = {
    "exp": [(0.0, 1.0), (-0.0, 1.0), (np.inf, np.inf), (-np.inf, 0.0), (np.nan, np.nan), (1e6, np.inf), (-1e6, 0.0)],
    "log": [(1.0, 0.0), (0.0, -np.inf), (-0.0, -np.inf), (np.inf, np.inf), (-1.0, np.nan),
            (-np.inf, np.nan), (np.nan, np.nan)],
    "sigmoid": [(0.0, 0.5), (-0.0, 0.5), (np.inf, 1.0), (-np.inf, 0.0), (np.nan, np.nan), (1e6, 1.0), (-1e6, 0.0)],
    "tanh": [(0.0, 0.0), (-0.0, -0.0), (np.inf, 1.0), (-np.inf, -1.0), (np.nan, np.nan), (1e6, 1.0), (-1e6, -1.0)],
}


@pytest.mark.parametrize("name", FUNCS)
def test_special_values(name, dtype):
    x = np.array([a for a, _ in SPECIALS[name]], dtype)
    want = np.array([b for _, b in SPECIALS[name]], dtype)
    got = getattr(arith, name)(x)
    same = (bits(got) == bits(want)) | (np.isnan(got) & np.isnan(want))
    assert same.all(), f"{name}({x[~same]}) = {got[~same]}, want {want[~same]}"
    # tanh keeps the sign of tiny and subnormal inputs exactly: tanh(x) == x there.
    if name == "tanh":
        tiny = np.array([np.finfo(dtype).smallest_subnormal, -np.finfo(dtype).tiny, 1e-30], dtype)
        assert_same_bits(arith.tanh(tiny), tiny, "tanh of tiny inputs")


@pytest.mark.parametrize("name", FUNCS)
def test_cpu_matches_numpy_bitwise(name, dtype):
    x = np.concatenate([samples(name, dtype, N_SAMPLES, seed=7), edge_values(dtype)])
    assert_same_bits(getattr(_cpu, name)(x), getattr(arith, name)(x), f"_cpu.{name} vs arith.{name}")
    # Shape and scalar handling: a 3-D slice and a 0-d array.
    x3 = x[:24].reshape(2, 3, 4)
    assert_same_bits(getattr(_cpu, name)(x3), getattr(arith, name)(x3), f"{name} 3-D")
    assert_same_bits(getattr(_cpu, name)(x[5:6].reshape(())), getattr(arith, name)(x[5]), f"{name} 0-d")


def test_cpu_rejects_other_dtypes():
    with pytest.raises(TypeError, match="float32 or float64"):
        _cpu.exp(np.arange(3))
    with pytest.raises(TypeError, match="float32 or float64"):
        arith.exp(np.arange(3))


def _header_text():
    path = resources.files("lockstep") / "include" / "lockstep" / "canonical.h"
    return path.read_text()


def test_header_ships_with_package_and_constants_match():
    text = _header_text()
    f32 = text.split("template <> struct Consts<float>")[1]
    f32, f64 = f32.split("template <> struct Consts<double>")
    blocks = {"float32": f32, "float64": f64.split("template <class T> LS_HD T pow2i")[0]}
    for name, block in blocks.items():
        c = arith.constants(name)
        hexes = [h.rstrip("f") for h in re.findall(r"-?0x[0-9a-fA-F.]+p[-+]?\d+f?", block)]
        header = [float.fromhex(h) for h in hexes]
        ours = [float.fromhex(h) for h in c.exp_coeffs + c.log_coeffs + (
            c.log2e, c.ln2_hi, c.ln2_lo, c.sqrt2, c.exp_hi, c.exp_lo, c.tanh_lo, c.tanh_mid,
            c.tanh_one)]
        # Every arith constant appears in the header's block, in the same order.
        pos = 0
        for v in ours:
            assert v in header[pos:], f"{name}: constant {v.hex()} of arith.py missing from canonical.h"
            pos = header.index(v, pos) + 1
        assert f"kExpCoeffs = {len(c.exp_coeffs)}, kLogCoeffs = {len(c.log_coeffs)}" in block


def _fused(a, b, c, dtype):
    """fma(a, b, c) rounded once to dtype: the exact value from Fractions, then rounded."""
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    if np.dtype(dtype) == np.float64:
        return np.float64(float(exact))  # Fraction -> float rounds correctly
    f = np.float32(float(exact))  # double rounding is harmless: checked against neighbours
    near = [np.nextafter(f, np.float32(-np.inf)), f, np.nextafter(f, np.float32(np.inf))]
    return min(near, key=lambda v: abs(Fraction(float(v)) - exact))


def test_contraction_canary(dtype):
    """(a*b)+c from the C++ build equals the separately rounded result and differs from FMA."""
    dt = np.dtype(dtype)
    one = dt.type(1)
    eps = np.finfo(dt).eps
    a = np.array([one + eps, 1 / dt.type(3), dt.type(0.1)], dt)
    b = np.array([one - eps, dt.type(3), dt.type(10)], dt)
    c = np.array([-one, -one, -one], dt)
    unfused = (a * b) + c
    fused = np.array([_fused(*v, dt) for v in zip(a, b, c)], dt)
    assert (bits(fused) != bits(unfused)).all(), "canary inputs must tell FMA from mul+add"
    assert_same_bits(_cpu.muladd(a, b, c), unfused, "_cpu (a*b)+c (contracted into an FMA?)")


def test_no_flush_to_zero(dtype):
    fi = np.finfo(dtype)
    env = _cpu.fp_env()
    assert not env["ftz"] and not env["daz"], f"flush-to-zero is on in this process: {env}"
    sub = np.array([fi.smallest_subnormal * 3, fi.tiny / 4], dtype)
    assert_same_bits(_cpu.muladd(sub, np.array([1, 1], dtype), np.zeros(2, dtype)), sub, "subnormals")
    x = np.array([np.log(fi.tiny) - 2], dtype)  # exp lands in the subnormal range
    y = _cpu.exp(x)
    assert 0 < y[0] < fi.tiny
    assert_same_bits(y, arith.exp(x), "exp into subnormals")
    assert not _cpu.build_info()["fast_math"]


def _seq_matmul(start, a, b):
    dt = a.dtype.type
    out = np.array(start, dtype=a.dtype, copy=True)
    for r in range(a.shape[0]):
        for c in range(b.shape[1]):
            acc = dt(out[r, c])
            for k in range(a.shape[1]):
                acc = dt(acc + dt(a[r, k] * b[k, c]))
            out[r, c] = acc
    return out


def test_matmul_is_sequential_in_k_and_cpu_agrees(dtype):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((5, 17)).astype(dtype) * np.logspace(-6, 6, 17).astype(dtype)
    b = rng.standard_normal((17, 3)).astype(dtype)
    start = rng.standard_normal((5, 3)).astype(dtype)
    want = _seq_matmul(start, a, b)
    assert_same_bits(arith.matmul(start, a, b), want, "arith.matmul vs scalar loop")
    assert_same_bits(_cpu.matmul(start, a, b), want, "_cpu.matmul vs scalar loop")
    # The order is observable: reversing k gives other bits here, so the test has teeth.
    rev = _seq_matmul(start, a[:, ::-1].copy(), b[::-1].copy())
    assert (bits(rev) != bits(want)).any()


def test_ordered_sum_is_left_to_right_from_plus_zero(dtype):
    rng = np.random.default_rng(4)
    a = (rng.standard_normal(1000) * np.logspace(-8, 8, 1000)).astype(dtype)
    acc = np.dtype(dtype).type(0)
    for v in a:
        acc = acc + v
    assert_same_bits(arith.ordered_sum(a), acc, "ordered_sum vs loop")
    assert bits(np.sum(a)) != bits(acc), "pairwise np.sum differs here, so the check has teeth"
    assert_same_bits(arith.ordered_sum(np.array([-0.0], dtype)), np.dtype(dtype).type(0.0), "+0 start")
    m = rng.standard_normal((7, 4)).astype(dtype)
    assert_same_bits(arith.ordered_sum(m, axis=1), np.array([arith.ordered_sum(r) for r in m]), "axis")


FORBIDDEN = re.compile(r"np\.(exp|tanh|log|log1p|expm1|dot|matmul|einsum|sum)\(|\s@\s|\.dot\(")


@pytest.mark.parametrize("module", ["arith.py", "reference.py"])
def test_canonical_path_uses_no_numpy_math_or_blas(module):
    source = Path(resources.files("lockstep") / module).read_text()
    code = [ln for ln in source.splitlines() if not ln.lstrip().startswith("#")]
    hits = [ln for ln in code if FORBIDDEN.search(ln.split("#")[0])]
    assert not hits, f"{module} calls NumPy math or BLAS: {hits}"
