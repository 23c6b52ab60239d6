import numpy as np
import pytest


def bits(a):
    """The raw bits of a float array, for exact (sign-of-zero and NaN-aware) comparison."""
    a = np.ascontiguousarray(a)
    return a.view({4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def assert_same_bits(ours, ref, what=""):
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.dtype == ref.dtype, f"{what}: dtype ours={ours.dtype} | ref={ref.dtype}"
    assert ours.shape == ref.shape, f"{what}: shape ours={ours.shape} | ref={ref.shape}"
    diff = bits(ours) != bits(ref)
    if diff.any():
        i = np.flatnonzero(diff.reshape(-1))[0]
        raise AssertionError(f"{what}: {diff.sum()} of {diff.size} values differ in their bits; "
                             f"first at flat index {i}: ours={ours.reshape(-1)[i]!r} "
                             f"ref={ref.reshape(-1)[i]!r}")


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return np.dtype(request.param)
