"""The machine code of every GPU kernel (cuda/*.cu through NVRTC, numba-cuda through nvJitLink)
for sm_80, sm_90 and sm_121: no contracted FMA, no flush to zero, no approximate special
function, no spill; the check is shown to catch contraction, FTZ and MUFU.EX2; the committed
resource table and the docs table are what the compilers give today."""

import json
from pathlib import Path

import numpy as np
import pytest

from lockstep import cuda_build, sass

ok, why = sass.tools_available()
pytestmark = pytest.mark.skipif(not ok, reason=f"SASS tools unavailable: {why}")

STALE = "run `python -m lockstep.sass --write-docs` and commit the result"


@pytest.fixture(scope="module")
def data():
    numba = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    if numba.config.ENABLE_CUDASIM:
        pytest.skip("this process runs the CUDA simulator; the SASS needs the real compiler")
    return sass.collect()


def _cuda_entries():
    out = {}
    for name in sass.cuda_sources():
        ptx = sass.nvrtc_module(name, "sm_90")[1]
        out.update({f: name for f in cuda_build.ptx_functions(ptx)
                    if f.endswith(("_f32", "_f64"))})
    return out


def test_archs_include_the_newest_nvrtc_targets():
    from cuda.bindings import nvrtc

    _, archs = nvrtc.nvrtcGetSupportedArchs()
    assert {"sm_80", "sm_90"} <= set(sass.ARCHS)
    assert f"sm_{max(archs)}" in sass.ARCHS, \
        f"NVRTC now targets sm_{max(archs)}: add it to lockstep.sass.ARCHS, then {STALE}"


def test_tools_come_from_the_pypi_wheels():
    for t in ("nvdisasm", "cuobjdump"):
        assert "/nvidia/" in sass.tool(t), sass.tool(t)  # lockstep[test], not a system CUDA


def test_every_kernel_of_every_arch_is_checked(data):
    from lockstep.numba_kernels import ptx as nptx

    entries = _cuda_entries()
    numba = {f"{dn} {k}" for dn in ("float32", "float64") for k in nptx.kernels(np.float32)}
    assert len(entries) > 50 and len(numba) == 32
    for arch in sass.ARCHS:
        got = set(data["kernels"][arch])
        assert set(entries) <= got, (arch, set(entries) - got)
        assert numba <= got, (arch, numba - got)


def test_no_contraction_ftz_or_approximation_anywhere(data):
    bad = {f"{a} {k}": v["problems"] for a, ks in data["kernels"].items() for k, v in ks.items()
           if v["problems"]}
    assert not bad, bad


def test_division_and_root_sequences_match_the_source(data):
    """Every correctly rounded f32/f64 division, reciprocal and square root of the PTX shows up
    as one recognised sequence (so the FMAs the check lets through are exactly those)."""
    for arch in sass.ARCHS:
        for name in sass.cuda_sources():
            cubin, ptx = sass.nvrtc_module(name, arch)
            funcs = cuda_build.ptx_functions(ptx)
            for f, body in funcs.items():
                want = {f"{k[1]} {k[0]}": n for k, n in sass.ptx_counts(body).items()
                        if n and k[0] != "int"}
                assert data["kernels"][arch][f]["sequences"] == want, (arch, f)
    ks = data["kernels"]["sm_90"]
    assert ks["canonical_tanh_f32"]["sequences"] == {"f32 div": 6}
    assert ks["adam_f64"]["sequences"] == {"f64 div": 10, "f64 sqrt": 5}
    assert ks["fused_fwd_step_f64"]["fma_in_sequences"] > 0
    # numba's float64 update divides and takes roots through libdevice's slow paths
    assert ks["float64 common.update"]["fma_in_slowpaths"] > 0


def test_no_kernel_spills(data):
    spills = {f"{a} {k}": v["local"] for a, ks in data["kernels"].items()
              for k, v in ks.items() if v["local"]}
    assert not spills, spills
    # and the cuda-raw kernels need no call stack either
    stack = {f"{a} {k}": v["stack"] for a, ks in data["kernels"].items()
             for k, v in ks.items() if v["stack"] and v["source"] != "numba"}
    assert not stack, stack


def test_resource_table_and_docs_are_current(data):
    res = sass.resources_table(data)
    committed = json.loads(sass.resources_path().read_text())
    assert committed == res, f"python/lockstep/{sass.RESOURCES_FILE} is stale: {STALE}"
    # the checkout's docs (the package may be installed elsewhere, as in CI)
    docs = (Path(__file__).resolve().parents[1] / "docs" / "cuda.md").read_text()
    assert sass.docs_table(res) in docs, f"the SASS table in docs/cuda.md is stale: {STALE}"


# ---- the check can fail ------------------------------------------------------------------

_SRC = ('extern "C" __global__ void k_f32(const float* a, float* y) {\n'
        '  y[0] = (a[0] * a[1]) + a[2];\n  y[1] = a[3] / a[4];\n}\n')


def _cubin(src, opts_edit=lambda o: o):
    """A cubin past the loader's contract guard (test only: it refuses --fmad=true)."""
    opts = opts_edit(cuda_build.options("sm_90"))
    cubin = cuda_build._nvrtc_compile(src, "t.cu", opts, "cubin")
    ptx = cuda_build._nvrtc_compile(src, "t.cu", opts, "ptx").decode()
    return sass.check_cubin(cubin, ptx)["k_f32"]


def test_a_division_is_allowed_and_a_contraction_is_caught():
    strict = _cubin(_SRC)
    assert strict["problems"] == [] and strict["sequences"] == {"f32 div": 1}
    fused = _cubin(_SRC, lambda o: [x.replace("--fmad=false", "--fmad=true") for x in o])
    assert sum("contracted FFMA" in p for p in fused["problems"]) == 1, fused["problems"]
    assert fused["sequences"] == {"f32 div": 1}  # the division's own FMAs still pass


def test_contraction_in_a_real_kernel_is_caught():
    fname, src = cuda_build.read_source("lstm_fused")
    opts = [x.replace("--fmad=false", "--fmad=true") for x in cuda_build.options("sm_90")]
    cubin = cuda_build._nvrtc_compile(src, fname, opts, "cubin")
    ptx = cuda_build._nvrtc_compile(src, fname, opts, "ptx").decode()
    res = sass.check_cubin(cubin, ptx)
    for k in ("fused_fwd_step_f32", "fused_bwd_step_f64"):
        assert any("contracted" in p for p in res[k]["problems"]), k


def test_ftz_and_fast_exp_are_caught():
    src = ('extern "C" __global__ void k_f32(const float* a, float* y) {\n'
           '  y[0] = __expf(a[0]);\n  y[1] = a[1] * a[2];\n}\n')
    res = _cubin(src)
    assert any("approximate MUFU.EX2" in p for p in res["problems"]), res["problems"]
    ftz = _cubin('extern "C" __global__ void k_f32(const float* a, float* y) '
                 '{ y[0] = a[1] * a[2]; }\n', lambda o: o + ["-ftz=true"])
    assert any("flush to zero in FMUL.FTZ" in p for p in ftz["problems"]), ftz["problems"]


def test_numba_contraction_is_caught_after_ptxas():
    cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    if cuda.config.ENABLE_CUDASIM:
        pytest.skip("the CUDA simulator has no compiler")
    from numba import float32

    from lockstep.numba_kernels import ptx as nptx
    from lockstep.numba_kernels.math import make_math

    mm = make_math(np.float32)
    mul, add = mm.mul, mm.add

    def plain(a, b, c, out):
        i = cuda.grid(1)
        if i < a.size:
            out[i] = a[i] * b[i] + c[i]

    def clean(a, b, c, out):
        i = cuda.grid(1)
        if i < a.size:
            out[i] = add(mul(a[i], b[i]), c[i])

    v = float32[::1]
    for fn, bad in ((plain, True), (clean, False)):
        text = nptx.compile_ptx(fn, (v, v, v, v), (9, 0))
        res = sass.check_cubin(sass.assemble_ptx(text, "sm_90"), text)
        problems = [p for r in res.values() for p in r["problems"]]
        assert any("contracted FFMA" in p for p in problems) == bad, problems
