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


# ---- cost counters (docs/cuda.md, "Cost counters"): each with a known answer -------------------

def _aligned(n, dtype):
    """n elements of dtype starting on a 256-byte boundary, as a GPU allocation would."""
    item = np.dtype(dtype).itemsize
    raw = np.zeros(n * item + 256, np.uint8)
    off = (-raw.ctypes.data) % 256
    return raw[off:off + n * item].view(dtype)


@pytest.fixture
def counting():
    _simt.take_counters()
    _simt.set_counting(True)
    try:
        yield
    finally:
        _simt.set_counting(False)
        _simt.take_counters()


def _one(name, grid, block, args):
    _simt.launch(name, grid, block, args)
    recs = _simt.take_counters()
    assert len(recs) == 1 and recs[0]["kernel"] == name
    return recs[0]


@pytest.mark.parametrize("stride,sectors", [(1, 4), (2, 8), (4, 16), (8, 32), (32, 32)])
def test_global_sectors_per_request(counting, stride, sectors):
    n, warps = 64, 2
    x = _aligned(n * stride, np.float32)
    x[:] = 3.0
    y = _aligned(n, np.float32)
    r = _one("simt_selftest_strided", warps, 32, [x, y, np.int32(stride), np.int32(n)])
    np.testing.assert_array_equal(y, 6.0)
    ld, st = r["global"]["load"], r["global"]["store"]
    assert ld["requests"] == warps and ld["sectors"] == warps * sectors
    assert ld["min_sectors"] == warps * 4 and ld["bytes"] == n * 4
    assert ld["unique_sectors"] == warps * sectors
    assert (st["requests"], st["sectors"], st["min_sectors"]) == (warps, warps * 4, warps * 4)
    by_arg = {a["index"]: a for a in r["args"]}
    assert by_arg[0]["load"] == ld and by_arg[0]["store"]["requests"] == 0
    assert by_arg[1]["store"] == st and by_arg[1]["load"]["requests"] == 0
    assert r["flops"]["f32"] == {"add": 0, "mul": n, "div": 0, "sqrt": 0, "cmp": 0}
    assert sum(r["flops"]["f64"].values()) == 0 and r["max_thread_flops"] == 1
    assert (r["threads"], r["warps"], r["syncthreads"], r["grid_syncs"]) == (64, 2, 0, 0)


def test_float64_requests_and_misalignment(counting):
    x, y = _aligned(80, np.float64), _aligned(64, np.float64)
    r = _one("simt_selftest_strided64", 2, 32, [x, y, np.int32(1), np.int32(64)])
    ld = r["global"]["load"]
    assert (ld["sectors"], ld["min_sectors"]) == (16, 16) and r["flops"]["f64"]["add"] == 64
    # 8 bytes off the sector grid, each 256-byte request touches one sector more than it needs.
    r = _one("simt_selftest_strided64", 2, 32, [x[1:], y, np.int32(1), np.int32(64)])
    ld = r["global"]["load"]
    assert (ld["sectors"], ld["min_sectors"]) == (18, 16)


@pytest.mark.parametrize("stride,degree", [(1, 1), (2, 2), (4, 4), (32, 32), (33, 1)])
def test_shared_bank_conflicts(counting, stride, degree):
    out = np.zeros(32, np.float32)
    r = _one("simt_selftest_banks", 1, 32, [out, np.int32(stride)])
    np.testing.assert_array_equal(out, (np.arange(32) * stride) % 1024)
    assert r["shared"]["store"] == {"requests": 32, "wavefronts": 32, "min_wavefronts": 32}
    assert r["shared"]["load"] == {"requests": 1, "wavefronts": degree, "min_wavefronts": 1}
    assert r["syncthreads"] == 1


def test_divergent_lanes_form_one_request_per_site(counting):
    x, y = _aligned(128, np.float32), _aligned(32, np.float32)
    x[:] = np.arange(128)
    r = _one("simt_selftest_diverge", 1, 32, [x, y])
    i = np.arange(32)
    np.testing.assert_array_equal(y, np.where(i % 2 == 0, i, i + 64) + i)
    # even lanes' load (16 lanes, stride 2: 4 sectors for 64 bytes), odd lanes' load (the same),
    # then the common load (4 sectors)
    ld = r["global"]["load"]
    assert (ld["requests"], ld["sectors"], ld["min_sectors"]) == (3, 12, 8)


def test_counting_is_off_by_default_and_grid_barriers_are_counted(counting):
    nb, rounds = 3, 4
    buf, out = np.zeros(2 * nb, np.int64), np.zeros(nb, np.int64)
    bar = np.zeros(2, np.uint32)
    _simt.launch("simt_selftest_grid", nb, 4, [buf, out, rounds, bar], 0, True)
    (r,) = _simt.take_counters()
    assert r["grid_syncs"] == rounds
    _simt.set_counting(False)
    _simt.launch("simt_selftest_reverse", 1, 32, [np.zeros(32, np.float32),
                                                  np.zeros(32, np.float32), 1])
    assert _simt.take_counters() == []
