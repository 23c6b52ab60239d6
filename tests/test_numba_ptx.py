"""Every numba-cuda kernel compiled to PTX for compute capability 9.0 (no GPU needed, only
NVVM) obeys the arithmetic contract: no fma anywhere, no f64 arithmetic in float32 kernels.
The checker itself is shown to catch both faults."""

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")

if cuda.config.ENABLE_CUDASIM:
    pytest.skip("this process runs the CUDA simulator; PTX needs the real compiler",
                allow_module_level=True)

from numba import float32, float64  # noqa: E402

from lockstep.numba_kernels import ptx  # noqa: E402
from lockstep.numba_kernels.math import make_math  # noqa: E402

CC = (9, 0)


def _nvvm_or_skip():
    def probe(a, b):
        return a + b
    try:
        ptx.compile_ptx(probe, (float32, float32), CC, device=True)
    except Exception as e:  # noqa: BLE001 - any failure here means no usable NVVM
        pytest.skip(f"NVVM cannot compile PTX here: {type(e).__name__}: {e}")


@pytest.fixture(scope="module")
def all_ptx():
    _nvvm_or_skip()
    return {np.dtype(dt).name: ptx.kernel_ptx(dt, CC) for dt in (np.float32, np.float64)}


def test_every_kernel_is_compiled(all_ptx):
    names = set(ptx.kernels(np.float32))
    assert {"per_sample.sample_step", "fused.transpose_whh", "fused.forward_step",
            "fused.backward_step", "fused.dh_above", "fused.mask_input", "common.wgrad",
            "common.row_norms", "common.update"} <= names
    for dn, by_name in all_ptx.items():
        assert set(by_name) == names, dn
        for name, text in by_name.items():
            assert ".entry" in text and ptx.cuda_build.ptx_functions(text), f"{dn} {name}"


@pytest.mark.parametrize("dn", ["float32", "float64"])
def test_kernels_have_no_fma_and_float32_has_no_f64(all_ptx, dn):
    problems = {name: ptx.ptx_problems(text, dn == "float32")
                for name, text in all_ptx[dn].items()}
    assert not any(problems.values()), {k: v for k, v in problems.items() if v}


@pytest.mark.parametrize("dn,op", [("float32", "mul.rn.f32"), ("float64", "mul.rn.f64")])
def test_kernels_really_do_their_arithmetic_in_the_working_dtype(all_ptx, dn, op):
    """The check above is not vacuous: the rounded operations are there, in the right type."""
    assert op in all_ptx[dn]["per_sample.sample_step"]
    assert op in all_ptx[dn]["fused.forward_step"]


@pytest.mark.parametrize("dn", ["float32", "float64"])
def test_tiled_kernels_stage_through_shared_memory(all_ptx, dn):
    """The tiled kernels really use shared memory and barriers, and wgrad's micro-tile of
    accumulators is in registers (a local-memory array would cost a memory trip per term)."""
    for name in ("common.wgrad", "fused.transpose_whh", "fused.forward_step",
                 "fused.backward_step"):
        text = all_ptx[dn][name]
        assert ".shared" in text and "bar.sync" in text, name
    assert ".local" not in all_ptx[dn]["common.wgrad"]


def test_checker_flags_contraction_and_float64_promotion():
    _nvvm_or_skip()
    mm = make_math(np.float32)
    mul, add = mm.mul, mm.add

    def plain(a, b, c, out):
        i = cuda.grid(1)
        if i < a.size:
            out[i] = a[i] * b[i] + c[i]  # NVVM contracts this into fma.rn.f32

    def literal(a, out):
        i = cuda.grid(1)
        if i < a.size:
            out[i] = mul(a[i], a[i]) * 0.1  # a Python float is float64: promotes

    def clean(a, b, c, out):
        i = cuda.grid(1)
        if i < a.size:
            out[i] = add(mul(a[i], b[i]), c[i])

    v = float32[::1]
    fma_ptx = ptx.compile_ptx(plain, (v, v, v, v), CC)
    assert any("fma" in p for p in ptx.ptx_problems(fma_ptx, float32=True))
    f64_ptx = ptx.compile_ptx(literal, (v, v), CC)
    assert any("f64" in p for p in ptx.ptx_problems(f64_ptx, float32=True))
    assert ptx.ptx_problems(ptx.compile_ptx(clean, (v, v, v, v), CC), float32=True) == []


@pytest.mark.parametrize("dt,ty", [(np.float32, float32), (np.float64, float64)],
                         ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["exp", "log", "sigmoid", "tanh"])
def test_canonical_device_functions_compile_clean(dt, ty, name):
    _nvvm_or_skip()
    f = getattr(make_math(dt), name)

    def apply(x, out):
        i = cuda.grid(1)
        if i < x.size:
            out[i] = f(x[i])

    text = ptx.compile_ptx(apply, (ty[::1], ty[::1]), CC)
    assert ptx.ptx_problems(text, dt == np.float32) == []
    assert ("mul.rn.f32" if dt == np.float32 else "mul.rn.f64") in text
