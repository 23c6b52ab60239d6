"""The GPU code is tested on every run without a GPU. Other test files skip when a tool is
missing (so that they say why); this one fails instead, so that a broken install can never
turn those checks into silent skips in CI."""

from lockstep import backends, cuda_build


def test_nvrtc_compiles_kernels():
    ok, why = cuda_build.nvrtc_available()
    assert ok, why


def test_simt_emulator_is_built():
    ok, why = backends.availability("cuda-raw", "emu")
    assert ok, why


def test_cpu_engine_is_built():
    ok, why = backends.availability("cpu")
    assert ok, why


def test_numba_compiles_ptx_without_a_gpu():
    from numba import float32

    from lockstep.numba_kernels import ptx

    def probe(a, b):
        return a + b

    assert "add.f32" in ptx.compile_ptx(probe, (float32, float32), (9, 0), device=True)
