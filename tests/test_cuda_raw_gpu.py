"""Backend "cuda-raw" on a real GPU (marked gpu; skipped with the reason where none answers):
the same bit-for-bit agreement as on the emulator, the canonical kernels with subnormals (no
flush-to-zero), stacked layers with dropout, and larger shapes (H up to 1024, B up to 256, T
up to 128)."""

import numpy as np
import pytest
from agreement import GOLDEN_FILES, assert_matches_golden, assert_matches_reference, make_case
from conftest import assert_same_bits
from test_cuda_raw import CASES, STACKED, STRATEGIES, stacked_case

from lockstep import arith, harness, reference
from lockstep.backends import cuda_raw
from lockstep.config import ConfigError

ok, why = cuda_raw.CudaRawBackend.available("gpu")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not ok, reason=f"no GPU for cuda-raw: {why}")]


@pytest.mark.parametrize("fn", ["exp", "log", "sigmoid", "tanh"])
def test_canonical_kernels_on_the_device_match_numpy(fn, dtype):
    import cupy

    from lockstep import cuda_build

    rng = np.random.default_rng(7)
    tiny = np.finfo(dtype).smallest_subnormal
    x = np.concatenate([rng.uniform(-30, 30, 100000), rng.standard_normal(1000) * 1e-3,
                        [0.0, -0.0, np.inf, -np.inf, np.nan, tiny, 3 * tiny, -104.0, 88.7]]
                       ).astype(dtype)
    if fn == "log":
        x = np.abs(x)
    mod = cuda_build.load_module("canonical")
    k = mod.get_function(f"canonical_{fn}_{'f32' if dtype == np.float32 else 'f64'}")
    xd = cupy.asarray(x)
    yd = cupy.empty_like(xd)
    k(((x.size + 255) // 256,), (256,), (xd, yd, np.int64(x.size)))
    with np.errstate(all="ignore"):
        assert_same_bits(cupy.asnumpy(yd), getattr(arith, fn)(x), f"{fn} on the device")


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_gpu_matches_golden(strategy, path):
    assert_matches_golden(f"cuda-raw:{strategy}@gpu", path)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_gpu_matches_reference(strategy, case, dtype):
    I, H, O, T, B, loss, loss_on, opt, clip, mu = case
    assert_matches_reference(f"cuda-raw:{strategy}@gpu",
                             *make_case(I, H, O, T, B, dtype, loss=loss, loss_on=loss_on,
                                        optimizer=opt, clip=clip, momentum=mu))


@pytest.mark.parametrize("case", STACKED, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_gpu_stacked_matches_reference(strategy, case, dtype):
    assert_matches_reference(f"cuda-raw:{strategy}@gpu", *stacked_case(case, dtype))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_gpu_stacked_matches_reference_on_a_mid_size_problem(strategy, dtype):
    # Three layers of 40 units (two k tiles of the dh_above GEMM's 4H rows), dropout, shards.
    assert_matches_reference(f"cuda-raw:{strategy}@gpu",
                             *make_case(3, 40, 2, 8, 16, dtype, loss="ce", optimizer="adam",
                                        clip=1.0, epochs=1, n=40, layers=3, dropout=0.25,
                                        grad_shards=2))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_gpu_matches_reference_on_a_mid_size_problem(strategy, dtype):
    # Large enough for many blocks and multi-unit persistent slices; small enough for NumPy.
    assert_matches_reference(f"cuda-raw:{strategy}@gpu",
                             *make_case(4, 96, 3, 12, 32, dtype, loss="mse", optimizer="adam",
                                        clip=1.0, epochs=1, n=64))


@pytest.mark.parametrize("H,B,T", [(257, 65, 33),
                                   pytest.param(1024, 256, 128, marks=pytest.mark.slow)])
def test_large_shapes_all_strategies_agree(H, B, T, dtype):
    # The reference would take hours here: every strategy must give the same bits as the
    # others (each was proven equal to the reference above), and persistent must either run
    # or refuse with the documented limit.
    mc, tc, params, x, y = make_case(2, H, 2, T, B, dtype, loss="ce", optimizer="adam",
                                     clip=1.0, epochs=1, n=B)
    be = cuda_raw.CudaRawBackend(mc, tc, dtype, strategy="fused", device="gpu")
    hmax = cuda_raw.persistent_max_hidden(dtype.itemsize, be.dev.props["sm_count"],
                                          be.dev.props["smem_per_block"])
    results = {}
    for strategy in STRATEGIES:
        if strategy == "persistent" and H > hmax:
            with pytest.raises(ConfigError, match="Use strategy fused"):
                cuda_raw.CudaRawBackend(mc, tc, dtype, strategy=strategy, device="gpu")
            continue
        results[strategy] = harness.train_with(f"cuda-raw:{strategy}@gpu", mc, tc, dtype,
                                               params, x, y)
    base_losses, base = results.pop("fused")
    assert np.isfinite(base_losses).all()
    for strategy, (losses, final) in results.items():
        assert_same_bits(losses, base_losses, f"{strategy} vs fused: losses")
        for n in reference.PARAM_NAMES:
            assert_same_bits(final[n], base[n], f"{strategy} vs fused: {n}")
