"""The kernel loader: every .cu compiles to PTX with NVRTC under the contract, and the PTX
checks can tell a violation when they see one."""

import pytest

from lockstep import cuda_build

ok, why = cuda_build.nvrtc_available()
pytestmark = pytest.mark.skipif(not ok, reason=f"NVRTC unavailable: {why}")

SOURCES = sorted(p.stem for p in cuda_build.cuda_dir().glob("*.cu"))
ARCHS = ["sm_80", "sm_90"]


def test_kernel_sources_ship_with_the_package():
    assert "canonical" in SOURCES
    assert (cuda_build.include_dir() / "lockstep" / "canonical.h").is_file()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", SOURCES)
def test_every_kernel_compiles_without_fma_or_f64_in_f32(name, arch, tmp_path, monkeypatch):
    monkeypatch.setenv("LOCKSTEP_CACHE", str(tmp_path))
    fname, src = cuda_build.read_source(name)
    ptx = cuda_build.compile(src, fname, arch).decode()
    funcs = cuda_build.ptx_functions(ptx)
    entries = [f for f in funcs if f.endswith(("_f32", "_f64"))]
    assert entries, f"{name}.cu defines no _f32/_f64 kernels"
    assert {f[:-4] for f in entries if f.endswith("_f32")} == \
        {f[:-4] for f in entries if f.endswith("_f64")}, "every kernel needs both dtypes"
    assert cuda_build.ptx_violations(ptx) == []
    assert f".target {arch}" in ptx


def test_ptx_checks_catch_contraction_and_double_math(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCKSTEP_CACHE", str(tmp_path))
    src = ('extern "C" __global__ void bad_f32(const float* a, float* y) {\n'
           '  y[0] = (a[0] * a[1]) + a[2];\n'
           '  y[1] = (float)((double)a[0] * 1.1);\n}\n')
    opts = cuda_build.options("sm_90")
    fused = cuda_build._nvrtc_compile(src, "bad.cu", [o.replace("--fmad=false", "--fmad=true")
                                                      for o in opts], "ptx").decode()
    problems = cuda_build.ptx_violations(fused)
    assert any("fma" in p for p in problems), problems
    assert any("f64" in p for p in problems), problems
    strict = cuda_build.compile(src, "bad.cu", "sm_90").decode()
    assert not any("fma" in p for p in cuda_build.ptx_violations(strict))


def test_contract_breaking_options_are_refused():
    with pytest.raises(cuda_build.KernelBuildError, match="break the arithmetic contract"):
        cuda_build.options("sm_90", ["-ftz=true"])
    with pytest.raises(cuda_build.KernelBuildError, match="architecture"):
        cuda_build.options("ampere")


def test_compile_errors_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCKSTEP_CACHE", str(tmp_path))
    with pytest.raises(cuda_build.KernelBuildError, match="broken.cu"):
        cuda_build.compile('#line 1 "broken.cu"\nextern "C" __global__ void k() { nope; }',
                           "broken.cu", "sm_90")


def test_results_are_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCKSTEP_CACHE", str(tmp_path))
    fname, src = cuda_build.read_source("canonical")
    a = cuda_build.compile(src, fname, "sm_80")
    files = list((tmp_path / "kernels").iterdir())
    assert len(files) == 1
    files[0].write_bytes(b"sentinel")  # a hit returns the cached bytes without compiling
    assert cuda_build.compile(src, fname, "sm_80") == b"sentinel"
    assert cuda_build.compile(src + "\n", fname, "sm_80") == a  # new content, new key


def test_kernel_path_gives_a_cached_cubin_and_includes_the_shared_headers(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCKSTEP_CACHE", str(tmp_path))
    path = cuda_build.kernel_path("lstm_fused", "sm_90")
    assert path.is_file() and path.parent == tmp_path / "kernels"
    assert path.read_bytes()[:4] == b"\x7fELF"  # a cubin, for cupy.RawModule(path=...)
    assert cuda_build.kernel_path("lstm_fused", "sm_90") == path  # a cache hit: same file
    opts = cuda_build.options("sm_90")
    assert f"-I{cuda_build.cuda_dir()}" in opts and "--fmad=false" in opts
    assert not any("ftz" in o or "fast" in o for o in opts)
    assert (cuda_build.cuda_dir() / "ls_cuda.cuh").is_file()  # shipped with the .cu files


def test_load_module_without_cupy_is_a_clear_error():
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed")
    except ImportError:
        pass
    with pytest.raises(cuda_build.KernelBuildError, match="CuPy is missing"):
        cuda_build.load_module("lstm_common", "sm_90")
