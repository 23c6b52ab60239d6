"""numba-cuda on a real GPU: both strategies reproduce the golden files and reference.train bit
for bit (both dtypes, both losses, SGD / momentum / Adam, clipping; 1, 2 and 3 layers, dropout)
on small and larger shapes, and the canonical device functions equal arith.py on many values. Marked gpu: they
skip with the reason when no CUDA device answers."""

import numpy as np
import pytest
from agreement import GOLDEN_FILES, assert_matches_golden, assert_matches_reference, make_case
from conftest import assert_same_bits

from lockstep.backends.numba_cuda import NumbaCudaBackend

_OK, _WHY = NumbaCudaBackend.available("gpu")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _OK, reason=f"numba-cuda@gpu: {_WHY}"),
    # Small test grids make Numba warn about GPU under-utilization: expected here (matched by
    # message: the category is numba-cuda's own class, not numba.core's).
    pytest.mark.filterwarnings("ignore:.*Grid size"),
]
STRATEGIES = ("per-sample", "fused")


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_matches_golden(path, strategy):
    assert_matches_golden(f"numba-cuda:{strategy}@gpu", path)


SMALL = [("mse", "all", "sgd", 0.0, 0.0), ("ce", "last", "adam", 0.05, 0.0),
         ("ce", "all", "sgd", 0.05, 0.9), ("mse", "last", "adam", 0.0, 0.0)]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("loss,loss_on,optimizer,clip,momentum", SMALL)
def test_matches_reference_small(strategy, loss, loss_on, optimizer, clip, momentum, dtype):
    assert_matches_reference(f"numba-cuda:{strategy}@gpu",
                             *make_case(2, 5, 3, 3, 2, dtype, loss=loss, loss_on=loss_on,
                                        optimizer=optimizer, clip=clip, momentum=momentum))


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("loss,optimizer,clip,momentum", [("mse", "adam", 0.5, 0.0),
                                                          ("ce", "sgd", 0.1, 0.9)])
def test_matches_reference_larger(strategy, loss, optimizer, clip, momentum, dtype):
    """H = 40 spans two 32-unit tiles and B = 9 two 8-sample tiles in the fused kernels;
    wgrad: 160 gate rows in 32-row tiles, 44 columns in 32-column tiles, T*B = 108 samples in
    stages of 16."""
    assert_matches_reference(f"numba-cuda:{strategy}@gpu",
                             *make_case(3, 40, 4, 12, 9, dtype, loss=loss, optimizer=optimizer,
                                        clip=clip, momentum=momentum, epochs=2, n=23))


# Stacked layers: (I, H, O, T, B, loss, loss_on, optimizer, clip, momentum, layers, dropout,
# grad_shards); odd sizes, B = 1, T = 1, and H = 37 spanning two 32-unit tiles.
STACKED = [(2, 3, 2, 3, 1, "ce", "all", "sgd", 0.0, 0.0, 2, 0.0, 1),
           (1, 5, 3, 2, 3, "ce", "last", "adam", 0.5, 0.0, 3, 0.4, 1),
           (3, 5, 1, 1, 3, "mse", "last", "sgd", 1.0, 0.9, 2, 0.5, 2),
           (2, 6, 2, 4, 4, "mse", "all", "adam", 0.0, 0.0, 2, 0.0, 1),
           (3, 37, 4, 7, 9, "mse", "all", "adam", 0.5, 0.0, 3, 0.25, 1)]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("case", STACKED, ids=lambda c: f"{c[10]}layers-{c[5]}-{c[7]}-H{c[1]}")
def test_matches_reference_stacked(strategy, case, dtype):
    I, H, O, T, B, loss, loss_on, optimizer, clip, momentum, layers, dropout, shards = case
    assert_matches_reference(f"numba-cuda:{strategy}@gpu",
                             *make_case(I, H, O, T, B, dtype, loss=loss, loss_on=loss_on,
                                        optimizer=optimizer, clip=clip, momentum=momentum,
                                        layers=layers, dropout=dropout, grad_shards=shards))


@pytest.mark.parametrize("name", ["exp", "log", "sigmoid", "tanh"])
def test_canonical_math_on_device(name, dtype):
    from numba import cuda

    from lockstep import arith
    from lockstep.numba_kernels.math import make_math

    f = getattr(make_math(dtype), name)

    @cuda.jit
    def apply(inp, out):
        i = cuda.grid(1)
        if i < inp.size:
            out[i] = f(inp[i])

    rng = np.random.default_rng(11)
    fi = np.finfo(dtype)
    wide = 120.0 if dtype == np.float32 else 800.0
    x = np.concatenate([rng.standard_normal(100_000) * 6, rng.uniform(-wide, wide, 100_000),
                        np.exp(rng.uniform(-80.0, 80.0, 100_000))]).astype(dtype)
    edge = np.array([0.0, np.inf, np.nan, fi.tiny, fi.tiny / 3, fi.smallest_subnormal, fi.max,
                     1.0, 0.5, 20.0, 40.0, 89.0, 710.0, -104.0, -746.0], dtype)
    x = np.concatenate([x, edge, -edge])
    d_out = cuda.device_array_like(x)
    apply[(x.size + 255) // 256, 256](cuda.to_device(x), d_out)
    assert_same_bits(d_out.copy_to_host(), getattr(arith, name)(x), f"{dtype} {name} on the GPU")
