"""The SIMT emulator (lockstep._simt): each CUDA feature the kernels use, tested on its own, and
the canonical.cu kernels run on it bit-identically to NumPy."""

import numpy as np
import pytest
from conftest import assert_same_bits

from lockstep import arith, cuda_build

_simt = pytest.importorskip("lockstep._simt")


def test_thread_and_block_ids_in_three_dimensions():
    grid, block = (3, 2, 2), (4, 3, 2)
    nt, nb = 4 * 3 * 2, 3 * 2 * 2
    out = np.full((nb * nt, 12), -1, np.int32)
    _simt.launch("simt_selftest_ids", grid, block, [out])
    want = []
    for bz in range(2):
        for by in range(2):
            for bx in range(3):
                for tz in range(2):
                    for ty in range(3):
                        for tx in range(4):
                            want.append([tx, ty, tz, bx, by, bz, *block, *grid])
    np.testing.assert_array_equal(out, np.array(want, np.int32))


@pytest.mark.parametrize("workers", [1, 2])
def test_syncthreads_orders_shared_memory(workers):
    n, nb = 64, 5
    x = np.arange(nb * n, dtype=np.float32)
    out = np.zeros_like(x)
    old = _simt.workers()
    _simt.set_workers(workers)
    try:
        _simt.launch("simt_selftest_reverse", nb, n, [x, out, 1])
    finally:
        _simt.set_workers(old)
    np.testing.assert_array_equal(out, x.reshape(nb, n)[:, ::-1].reshape(-1))


def test_without_the_barrier_the_reverse_is_wrong():
    # Proves the barrier test can fail: fibers run in order, so without __syncthreads the low
    # threads read slots the high threads have not written yet.
    n = 64
    x = np.arange(2 * n, dtype=np.float32)
    out = np.zeros_like(x)
    _simt.launch("simt_selftest_reverse", 2, n, [x, out, 0])
    assert not np.array_equal(out, x.reshape(2, n)[:, ::-1].reshape(-1))


def test_barriers_in_a_loop():
    n, nb, rounds = 33, 3, 7
    x = np.random.default_rng(0).standard_normal(nb * n)
    out = np.zeros_like(x)
    _simt.launch("simt_selftest_rotate", (nb,), (n,), [x, out, rounds])
    np.testing.assert_array_equal(out, np.roll(x.reshape(nb, n), -rounds, axis=1).reshape(-1))


def test_dynamic_shared_memory():
    n, nb = 17, 4
    x = np.random.default_rng(1).standard_normal(nb * n)
    out = np.zeros(nb)
    _simt.launch("simt_selftest_dynsum", nb, n, [x, out], shared_mem=n * 8)
    assert_same_bits(out, arith.ordered_sum(x.reshape(nb, n), axis=1), "block sums")


@pytest.mark.parametrize("nb,threads", [(1, 1), (5, 3), (16, 32)])
def test_grid_barrier(nb, threads):
    rounds = 6
    buf = np.zeros(2 * nb, np.int64)
    out = np.zeros(nb, np.int64)
    bar = np.zeros(2, np.uint32)
    _simt.launch("simt_selftest_grid", nb, threads, [buf, out, rounds, bar], cooperative=True)
    v = np.arange(nb, dtype=np.int64)
    for _ in range(rounds):
        v = np.roll(v, 1) + v
    np.testing.assert_array_equal(out, v)


def test_grid_barrier_needs_a_cooperative_launch():
    buf, out, bar = np.zeros(4, np.int64), np.zeros(2, np.int64), np.zeros(2, np.uint32)
    with pytest.raises(RuntimeError, match="cooperative"):
        _simt.launch("simt_selftest_grid", 2, 4, [buf, out, 1, bar])


@pytest.mark.parametrize("nb", [2, 5])
def test_a_block_skipping_the_grid_barrier_is_an_error_not_a_hang(nb):
    out, bar = np.zeros(nb, np.int32), np.zeros(2, np.uint32)
    with pytest.raises(RuntimeError, match="exited"):
        _simt.launch("simt_selftest_grid_skip", nb, 3, [out, bar], cooperative=True)


def test_a_thread_returning_before_a_barrier_is_an_error():
    with pytest.raises(RuntimeError, match="1 of 4 threads|3 of 4 threads"):
        _simt.launch("simt_selftest_early_return", 1, 4, [np.zeros(4, np.float32)])


def test_arguments_are_typed_and_checked():
    ci, oi = np.array([5], np.int32), np.zeros(1, np.int32)
    ol, of, od = np.zeros(1, np.int64), np.zeros(1, np.float32), np.zeros(1, np.float64)
    cu, ou = np.array([2], np.uint32), np.zeros(1, np.uint32)
    args = [7, 2**40, 3, np.float32(0.1), 0.1, ci, oi, ol, of, od, cu, ou]
    _simt.launch("simt_selftest_args", 1, 1, args)
    assert (oi[0], ol[0], ou[0]) == (12, 2**40, 5)
    assert of[0] == np.float32(0.1) and od[0] == 0.1
    assert _simt.signature("simt_selftest_args")[:5] == ["int", "long long", "unsigned int",
                                                          "float", "double"]
    bad = [(3, 0.1, TypeError, "float"),            # a Python float is not a float32
           (3, np.float64(0.1), TypeError, "float32"),
           (0, 2**40, ValueError, "out of range"),
           (5, ci.astype(np.int64), TypeError, "int32"),
           (6, np.zeros(4, np.int32)[::2], ValueError, "contiguous"),
           (2, -1, ValueError, "out of range"),
           (6, [0], TypeError, "NumPy array")]
    for i, value, exc, msg in bad:
        a = list(args)
        a[i] = value
        with pytest.raises(exc, match=msg):
            _simt.launch("simt_selftest_args", 1, 1, a)
    ro = oi.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _simt.launch("simt_selftest_args", 1, 1, args[:6] + [ro] + args[7:])
    with pytest.raises(TypeError, match="takes 12 arguments"):
        _simt.launch("simt_selftest_args", 1, 1, args[:-1])
    with pytest.raises(KeyError, match="no SIMT kernel"):
        _simt.launch("nope_f32", 1, 1, [])
    with pytest.raises(ValueError, match="1024 threads"):
        _simt.launch("simt_selftest_args", 1, (32, 33), args)
    with pytest.raises(ValueError, match="grid"):
        _simt.launch("simt_selftest_args", (0,), 1, args)


def test_every_cu_kernel_is_registered(tmp_path, monkeypatch):
    ok, why = cuda_build.nvrtc_available()
    if not ok:
        pytest.skip(why)
    monkeypatch.setenv("LOCKSTEP_CACHE", str(tmp_path))
    names = set(_simt.kernels())
    for path in sorted(cuda_build.cuda_dir().glob("*.cu")):
        fname, src = cuda_build.read_source(path.stem)
        entries = {f for f in cuda_build.ptx_functions(cuda_build.compile(src, fname, "sm_80")
                                                      .decode()) if f.endswith(("_f32", "_f64"))}
        assert entries <= names, f"{path.name}: not exported with LS_EXPORT: {entries - names}"


@pytest.mark.parametrize("fn", ["exp", "log", "sigmoid", "tanh"])
def test_canonical_kernels_match_numpy(fn, dtype):
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.uniform(-30, 30, 3000), rng.standard_normal(3000) * 1e-3,
                        [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-310, 88.5, -103.9]]).astype(dtype)
    if fn == "log":
        x = np.abs(x)
    y = np.empty_like(x)
    sfx = "f32" if dtype == np.float32 else "f64"
    n = x.size
    _simt.launch(f"canonical_{fn}_{sfx}", (n + 127) // 128, 128, [x, y, np.int64(n)])
    with np.errstate(all="ignore"):
        assert_same_bits(y, getattr(arith, fn)(x), f"canonical_{fn}_{sfx}")


def test_muladd_does_not_contract(dtype):
    # (a*b)+c where an FMA would keep the product's low bits: 1+2^-p1 squared minus 1.
    eps = np.finfo(dtype).eps
    a = np.array([1 + eps], dtype)
    c = np.array([-1 - 2 * eps], dtype)
    y = np.empty_like(a)
    sfx = "f32" if dtype == np.float32 else "f64"
    _simt.launch(f"muladd_{sfx}", 1, 1, [a, a.copy(), c, y, np.int64(1)])
    assert y[0] == dtype.type(0)  # rounded product 1+2eps; an FMA would give eps*eps
