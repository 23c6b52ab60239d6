"""Backend "cuda-raw" on device "emu": the .cu kernels of every strategy, run by the SIMT
emulator, reproduce the reference and the golden files bit for bit (per-epoch losses, final
parameters, optimizer state), for one layer and for stacks with dropout, keep the data on the
"device", and report their limits."""

import sys
import types
from pathlib import Path

import numpy as np
import pytest
from agreement import GOLDEN_FILES, assert_matches_golden, assert_matches_reference, make_case
from conftest import assert_same_bits

from lockstep import backends, distributed, reference
from lockstep.backends import cuda_raw
from lockstep.config import ConfigError
from lockstep.train import new_rng, run_epochs

ok, why = cuda_raw.CudaRawBackend.available("emu")
pytestmark = pytest.mark.skipif(not ok, reason=f"SIMT emulator unavailable: {why}")

STRATEGIES = ["naive", "fused", "persistent"]

# (I, H, O, T, B, loss, loss_on, optimizer, clip, momentum): odd sizes, both losses, both
# optimizers (and momentum SGD), clipping on and off, T = 1, B = 1, short last batches.
CASES = [
    (1, 1, 1, 1, 1, "mse", "all", "sgd", 0.0, 0.0),
    (2, 5, 3, 4, 3, "ce", "all", "adam", 0.5, 0.0),
    (3, 13, 2, 4, 3, "mse", "last", "sgd", 0.1, 0.9),
    (2, 13, 4, 1, 3, "ce", "last", "sgd", 0.0, 0.0),
    (1, 5, 1, 4, 1, "mse", "all", "adam", 0.0, 0.0),
    (2, 1, 3, 4, 3, "ce", "all", "sgd", 0.05, 0.9),
]


# Stacks (emulator-sized: H <= 9, T <= 4, B <= 3): (I, H, O, T, B, layers, dropout, loss,
# loss_on, optimizer, clip, momentum, grad_shards): 2 and 3 layers, T = 1, B = 1, H = 1,
# dropout with and without sharded batches, both losses, SGD, momentum and Adam, clipping.
STACKED = [
    (2, 5, 3, 4, 3, 2, 0.0, "ce", "all", "adam", 0.5, 0.0, 1),
    (1, 9, 1, 1, 1, 3, 0.0, "mse", "all", "sgd", 0.0, 0.0, 1),
    (3, 7, 2, 3, 2, 2, 0.4, "mse", "last", "sgd", 0.1, 0.9, 1),
    (2, 1, 2, 2, 3, 3, 0.5, "ce", "last", "adam", 0.0, 0.0, 1),
    (1, 3, 1, 4, 3, 2, 0.2, "mse", "all", "adam", 0.05, 0.0, 2),
]


def stacked_case(c, dtype, **kw):
    I, H, O, T, B, layers, p, loss, loss_on, opt, clip, mu, S = c
    return make_case(I, H, O, T, B, dtype, loss=loss, loss_on=loss_on, optimizer=opt, clip=clip,
                     momentum=mu, grad_shards=S, layers=layers, dropout=p, **kw)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_emu_matches_golden(strategy, path):
    assert_matches_golden(f"cuda-raw:{strategy}@emu", path)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_emu_matches_reference(strategy, case, dtype):
    I, H, O, T, B, loss, loss_on, opt, clip, mu = case
    assert_matches_reference(f"cuda-raw:{strategy}@emu",
                             *make_case(I, H, O, T, B, dtype, loss=loss, loss_on=loss_on,
                                        optimizer=opt, clip=clip, momentum=mu))


@pytest.mark.parametrize("case", STACKED, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_emu_stacked_matches_reference(strategy, case, dtype):
    assert_matches_reference(f"cuda-raw:{strategy}@emu", *stacked_case(case, dtype))


def _backend(strategy, mc, tc, dtype):
    return backends.get("cuda-raw")(mc, tc, dtype, strategy=strategy, device="emu")


@pytest.mark.parametrize("optimizer,mu", [("adam", 0.0), ("sgd", 0.9), ("sgd", 0.0)])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_state_and_resume_match_the_reference(strategy, optimizer, mu, dtype):
    mc, tc, params, x, y = make_case(2, 5, 2, 3, 2, dtype, optimizer=optimizer, momentum=mu,
                                     clip=0.3, epochs=2)
    want, hist = reference.train(params, (x, y), tc)
    rng = new_rng(tc.seed)
    be = _backend(strategy, mc, tc, dtype)
    be.load(params, None)
    list(run_epochs(be, x, y, tc, rng, 1))
    mid_params, mid_opt = be.state()
    be2 = _backend(strategy, mc, tc, dtype)  # resume from the exported state
    be2.load(mid_params, mid_opt)
    list(run_epochs(be2, x, y, tc, rng, 1))
    got, opt = be2.state()
    for n in reference.PARAM_NAMES:
        assert_same_bits(got[n], want[n], f"final {n}")
    ref_opt = hist["opt_state"]
    assert set(opt) == set(ref_opt) and opt["step"] == ref_opt["step"]
    for key in ("b1_pow", "b2_pow"):
        if key in ref_opt:
            assert_same_bits(opt[key], ref_opt[key], key)
    for key in ("m", "v", "velocity"):
        if key in ref_opt:
            for n in reference.PARAM_NAMES:
                assert_same_bits(opt[key][n], ref_opt[key][n], f"{key}[{n}]")


@pytest.mark.parametrize("optimizer,mu", [("adam", 0.0), ("sgd", 0.9)])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_stacked_state_and_resume_match_the_reference(strategy, optimizer, mu):
    # Every tensor of param_names(3) and its optimizer slots go out through state() and back
    # in through load(); dropout masks keep coming from the same generator.
    dtype = np.float32
    mc, tc, params, x, y = make_case(2, 5, 2, 3, 2, dtype, optimizer=optimizer, momentum=mu,
                                     clip=0.3, layers=3, dropout=0.3)
    want, hist = reference.train(params, (x, y), tc)
    rng = new_rng(tc.seed)
    be = _backend(strategy, mc, tc, dtype)
    be.load(params, None)
    list(run_epochs(be, x, y, tc, rng, 1))
    be2 = _backend(strategy, mc, tc, dtype)
    be2.load(*be.state())
    list(run_epochs(be2, x, y, tc, rng, 1))
    got, opt = be2.state()
    names = reference.param_names(3)
    assert tuple(got) == names
    for n in names:
        assert_same_bits(got[n], want[n], f"final {n}")
    ref_opt = hist["opt_state"]
    assert set(opt) == set(ref_opt) and opt["step"] == ref_opt["step"]
    for key in ("m", "v", "velocity"):
        if key in ref_opt:
            assert tuple(opt[key]) == names
            for n in names:
                assert_same_bits(opt[key][n], ref_opt[key][n], f"{key}[{n}]")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_stacked_shard_partials_take_the_given_masks(strategy):
    # Data-parallel training (one rank here): each group's partials come from shard_partial
    # with that group's columns of the masks; the combined run equals the sharded reference.
    class OneRank:
        size, rank = 1, 0

        @staticmethod
        def Allgather(mine, every):
            every[...] = mine

    dtype = np.float64
    mc, tc, params, x, y = make_case(2, 5, 2, 3, 3, dtype, optimizer="adam", clip=0.2,
                                     layers=2, dropout=0.4, grad_shards=3)
    want, hist = reference.train(params, (x, y), tc)
    dp = distributed.DataParallel(_backend(strategy, mc, tc, dtype), OneRank())
    dp.load(params, None)
    losses = list(run_epochs(dp, x, y, tc, new_rng(tc.seed), tc.epochs))
    assert_same_bits(np.array(losses, dtype), np.array(hist["train_loss"], dtype), "losses")
    got, _ = dp.state()
    for n in reference.param_names(2):
        assert_same_bits(got[n], want[n], f"final {n}")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_stacked_predict_and_evaluate_use_no_masks(strategy):
    dtype = np.float64
    mc, tc, params, x, y = make_case(3, 5, 3, 4, 3, dtype, loss="ce", loss_on="last", layers=3,
                                     dropout=0.5)
    be = _backend(strategy, mc, tc, dtype)
    be.load(params, None)
    assert_same_bits(be.predict(x), reference.forward(params, x)[0], "predict")
    assert_same_bits(be.evaluate(x, y), reference.evaluate(params, x, y, tc), "evaluate")


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("loss,loss_on", [("mse", "all"), ("ce", "last")])
def test_predict_and_evaluate_match_the_reference(strategy, loss, loss_on, dtype):
    mc, tc, params, x, y = make_case(3, 5, 3, 4, 3, dtype, loss=loss, loss_on=loss_on)
    be = _backend(strategy, mc, tc, dtype)
    be.load(params, None)
    assert_same_bits(be.predict(x), reference.forward(params, x)[0], "predict")
    assert_same_bits(be.evaluate(x, y), reference.evaluate(params, x, y, tc), "evaluate")


class _Counting:
    """Wraps an emu device: counts launches, cooperative launches and transfers."""

    def __init__(self, dev):
        self.dev, self.launches, self.coop, self.up, self.down = dev, [], 0, 0, 0

    def __getattr__(self, name):
        return getattr(self.dev, name)

    def launch(self, name, grid, block, args, shared_mem=0, cooperative=False):
        self.launches.append(name)
        self.coop += cooperative
        self.dev.launch(name, grid, block, args, shared_mem, cooperative)

    def upload(self, a, dtype=None):
        self.up += 1
        return self.dev.upload(a, dtype)

    def download(self, a):
        self.down += 1
        return self.dev.download(a)


def test_strategies_differ_in_launches_and_keep_data_on_the_device(dtype):
    T = 4
    mc, tc, params, x, y = make_case(2, 5, 2, T, 3, dtype, optimizer="adam", clip=0.2)
    counts = {}
    for strategy in STRATEGIES:
        be = _backend(strategy, mc, tc, dtype)
        be.load(params, None)
        be.dev = _Counting(be.dev)
        order = reference.batch_order(x.shape[1], tc, new_rng(0))
        losses = list(run_epochs(be, x, y, tc, new_rng(0), 1, data_key="k"))
        assert len(losses) == 1
        dev = be.dev
        # x, y and the epoch's indices go up once; only the batch losses come back.
        assert (dev.up, dev.down) == (3, 1), strategy
        list(run_epochs(be, x, y, tc, new_rng(1), 1, data_key="k"))
        assert (dev.up, dev.down) == (4, 2), f"{strategy}: same data_key re-uploaded x or y"
        per_batch = len(dev.launches) // 2 / len(order)
        counts[strategy] = (per_batch, dev.coop)
        assert all(n.endswith("_f32" if dtype == np.float32 else "_f64") for n in dev.launches)
    naive, fused, persistent = (counts[s] for s in STRATEGIES)
    assert naive[0] > fused[0] > persistent[0]
    assert (naive[1], fused[1]) == (0, 0) and persistent[1] == 2 * 2 * len(order)
    # fused: the W_hh transpose, a projection GEMM and T + T step kernels; persistent: the
    # projection GEMM and one launch each way
    assert fused[0] - persistent[0] == (2 + 2 * T) - (1 + 2)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_stacked_layers_add_their_launches_and_upload_only_the_masks(strategy):
    # Layer by layer: every layer above the first adds its own forward and BPTT launches, its
    # mask multiplications (forward and backward), the dh_above GEMM and its weight gradients;
    # the only extra transfer is one upload of the dropout masks per minibatch.
    T, counts = 3, {}
    for L in (1, 2, 3):
        mc, tc, params, x, y = make_case(2, 5, 2, T, 3, np.float32, optimizer="adam", clip=0.2,
                                         layers=L, dropout=0.3 if L > 1 else 0.0, epochs=1)
        be = _backend(strategy, mc, tc, np.float32)
        be.load(params, None)
        be.dev = _Counting(be.dev)
        batches = len(reference.batch_order(x.shape[1], tc, new_rng(0)))
        list(run_epochs(be, x, y, tc, new_rng(0), 1, data_key="k"))
        assert (be.dev.up, be.dev.down) == (3 + (L > 1) * batches, 1), (L, be.dev.up)
        counts[L] = len(be.dev.launches) / batches
        assert be.dev.launches.count("mask_mul_f32") == 2 * (L - 1) * batches
    per_layer = counts[2] - counts[1]
    assert per_layer > 0 and counts[3] - counts[2] == per_layer


def test_persistent_limits_name_fused():
    sm, smem = cuda_raw.EMU_PROPS["sm_count"], cuda_raw.EMU_PROPS["smem_per_block"]
    for itemsize in (4, 8):
        hmax = cuda_raw.persistent_max_hidden(itemsize, sm, smem)
        blocks, hs, need = cuda_raw.persistent_plan(hmax, itemsize, sm, smem)
        assert need <= smem and blocks <= sm and blocks * hs >= hmax
        with pytest.raises(ConfigError, match="Use strategy fused"):
            cuda_raw.persistent_plan(hmax + 1, itemsize, sm, smem)
    # An H200 (132 SMs, 227 KiB per block): docs/cuda.md quotes these.
    assert cuda_raw.persistent_max_hidden(4, 132, 232448) == 1320
    assert cuda_raw.persistent_max_hidden(8, 132, 232448) == 924
    mc, tc, *_ = make_case(1, 200, 1, 2, 2, np.float32)
    with pytest.raises(ConfigError, match=r"H=200.*Use strategy fused"):
        _backend("persistent", mc, tc, np.float32)
    _backend("fused", mc, tc, np.float32)  # fused has no such limit


def test_gpu_device_is_unavailable_here_with_a_reason():
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed")
    except ImportError:
        pass
    ok, why = cuda_raw.CudaRawBackend.available("gpu")
    assert not ok and "CuPy" in why
    mc, tc, *_ = make_case(1, 2, 1, 2, 2, np.float64)
    with pytest.raises(ConfigError, match="unavailable"):
        backends.get("cuda-raw")(mc, tc, np.float64, strategy="fused", device="gpu")
    assert ("cuda-raw", "fused", "emu", True, "available") in backends.runs(["cuda-raw"])


def test_bad_inputs_are_clear_errors():
    mc, tc, params, x, y = make_case(2, 3, 1, 2, 2, np.float64)
    be = _backend("fused", mc, tc, np.float64)
    with pytest.raises(ConfigError, match="load"):
        be.state()
    with pytest.raises(ConfigError, match="parameters are for"):
        be.load(reference.init_params(type(mc)(2, 4, 1), np.float64), None)
    be.load(params, None)
    with pytest.raises(ConfigError, match=r"x must be a \(T, N, 2\) float64"):
        be.train_epoch(backends.EpochBatches(x.astype(np.float32), y, [np.arange(2)]))


class _FakeCupy(types.ModuleType):
    """Just the CuPy surface the gpu device uses, backed by NumPy and the SIMT emulator: it runs
    the gpu code path (cuda_build.load_module -> cubin on disk -> RawModule(path=...) ->
    get_function -> kernel(grid, block, args, shared_mem=...)) end to end without a GPU."""

    def __init__(self):
        super().__init__("cupy")
        from lockstep import _simt

        simt, fake = _simt, self
        self.loaded = []

        class Kernel:
            def __init__(self, name, coop):
                self.name, self.coop, self.max_dynamic_shared_size_bytes = name, coop, 0

            def __call__(self, grid, block, args, shared_mem=0, **kw):
                assert not kw, f"unexpected launch options {kw}"  # CuPy has none per call
                assert isinstance(grid, tuple) and isinstance(block, tuple)
                simt.launch(self.name, grid, block, list(args), shared_mem, self.coop)

        class RawModule:
            def __init__(self, code=None, *, path=None, enable_cooperative_groups=False):
                assert code is None, "RawModule(code=...) adds -ftz=true"
                self.data, self.coop = Path(path).read_bytes(), enable_cooperative_groups
                assert self.data[:4] == b"\x7fELF"
                fake.loaded.append(path)

            def get_function(self, name):
                if name.encode() + b"\0" not in self.data:
                    raise KeyError(name)
                return Kernel(name, self.coop)

        class Device:
            id, compute_capability = 0, "90"
            attributes = {"MultiProcessorCount": 4, "MaxSharedMemoryPerBlock": 48 * 1024,
                          "MaxSharedMemoryPerBlockOptin": 48 * 1024}

            def __init__(self, i=0):
                pass

        runtime = types.SimpleNamespace(getDeviceCount=lambda: 1,
                                        getDeviceProperties=lambda i: {"name": b"FakeGPU"})
        self.cuda = types.SimpleNamespace(Device=Device, runtime=runtime)
        self.RawModule = RawModule
        self.zeros = np.zeros
        self.asarray = lambda a: np.array(a, copy=True)  # a device copy, never an alias
        self.asnumpy = lambda a: np.array(a, copy=True)


@pytest.fixture(scope="module")
def cubin_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("kernels")  # NVRTC compiles the cubins once for the module


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_gpu_code_path_through_a_fake_cupy(strategy, monkeypatch, cubin_cache):
    tmp_path = cubin_cache
    monkeypatch.setenv("LOCKSTEP_CACHE", str(tmp_path))
    fake = _FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    assert cuda_raw.CudaRawBackend.available("gpu") == (True, "available")
    assert_matches_golden(f"cuda-raw:{strategy}@gpu", GOLDEN_FILES[0])
    assert len(fake.loaded) == len(cuda_raw.SOURCES)
    assert all(str(p).startswith(str(tmp_path)) and p.endswith(".cubin") for p in fake.loaded)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_gpu_code_path_through_a_fake_cupy_trains_a_stack(strategy, monkeypatch, cubin_cache):
    monkeypatch.setenv("LOCKSTEP_CACHE", str(cubin_cache))
    monkeypatch.setitem(sys.modules, "cupy", _FakeCupy())
    stacked = [p for p in GOLDEN_FILES if "layers_dropout" in p.stem]
    assert stacked
    assert_matches_golden(f"cuda-raw:{strategy}@gpu", stacked[0])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_blocks_on_several_os_threads_give_the_same_bits(strategy):
    from lockstep import _simt

    old = _simt.workers()
    _simt.set_workers(2)  # ordinary launches now run their blocks concurrently
    try:
        assert_matches_reference(f"cuda-raw:{strategy}@emu",
                                 *make_case(3, 13, 2, 4, 3, np.float32, loss="ce",
                                            optimizer="adam", clip=0.2))
    finally:
        _simt.set_workers(old)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_emu_matches_reference_on_a_wider_problem(strategy):
    # Many grid-stride iterations per thread and persistent slices of 16 units over 4 blocks.
    assert_matches_reference(f"cuda-raw:{strategy}@emu",
                             *make_case(5, 64, 3, 12, 16, np.float64, loss="mse", loss_on="last",
                                        optimizer="adam", clip=0.5, epochs=1, n=35))


def _counted_epoch(strategy, H, B, T, dtype=np.float32, I=1, **kw):
    """One training epoch (one batch) on emu with the cost counters on: the launch records."""
    from lockstep import _simt

    mc, tc, params, x, y = make_case(I, H, 1, T, B, dtype, n=B, epochs=1, **kw)
    be = _backend(strategy, mc, tc, dtype)
    be.load(params, None)
    _simt.take_counters()
    _simt.set_counting(True)
    try:
        list(run_epochs(be, x, y, tc, new_rng(0), 1))
    finally:
        _simt.set_counting(False)
    return _simt.take_counters()


def test_fused_steps_are_coalesced_and_read_the_weights_once_per_step():
    # The target shape (float32, H=256, B=64); the step kernels do not depend on T, so
    # two steps each way show every request of the T=32 run.
    H, B = 256, 64
    recs = _counted_epoch("fused", H, B, 2)
    steps = [r for r in recs if r["kernel"] in ("fused_fwd_step_f32", "fused_bwd_step_f32")]
    assert len(steps) == 4
    w_sectors = 4 * H * H * 4 // 32
    for r in steps:
        for side in ("load", "store"):
            g = r["global"][side]
            assert g["sectors"] <= 1.25 * g["min_sectors"], (r["kernel"], side, g)
        assert sum(r["flops"]["f64"].values()) == 0, "f64 arithmetic in a float32 kernel"
        w = {a["index"]: a for a in r["args"]}.get(1 if "fwd" in r["kernel"] else 3)
        if w is None:  # the backward step at t = T-1 has no recurrent terms
            assert "bwd" in r["kernel"]
            continue
        assert w["load"]["unique_sectors"] == w_sectors  # from DRAM once per step
    fwd = next(r for r in steps if "fwd" in r["kernel"])
    # the recurrent products: B * 4H * H multiplies and as many adds (no FMA anywhere)
    assert fwd["flops"]["f32"]["mul"] >= B * 4 * H * H and fwd["flops"]["f32"]["add"] >= B * 4 * H * H
    assert [r["kernel"] for r in recs].count("fused_transpose_f32") == 1


def test_gemms_and_clipping_are_coalesced_and_reuse_their_tiles():
    # The issue's target shape (H=256, B=64; the GEMMs' requests per row of T*B do not depend on
    # T) with I = 40 (a projection with more than one k tile) and clipping on (rowsq).
    H, B, T, I = 256, 64, 2, 40
    N = T * B
    recs = _counted_epoch("fused", H, B, T, I=I, clip=1e-3)
    gemms = [r for r in recs if r["kernel"].split("_f32")[0] in
             ("linear", "matmul_tn", "rowsq", "colsum")]
    assert {r["kernel"] for r in gemms} == {"linear_f32", "matmul_tn_f32", "rowsq_f32",
                                            "colsum_f32"}
    for r in gemms:
        for side in ("load", "store"):
            g = r["global"][side]
            assert g["sectors"] <= 1.25 * g["min_sectors"], (r["kernel"], side, g)
        sh = r["shared"]
        for side in ("load", "store"):
            assert sh[side]["wavefronts"] == sh[side]["min_wavefronts"], (r["kernel"], sh)
    # dW_hh = da^T h: (4H x H) outputs over N samples in 64 x 64 tiles; each operand comes from
    # L2 once per tile of the other side (4H/64 row tiles read h, H/64 column tiles read da),
    # and every multiply and add is a real term (2 * 4H * H * N operations, no padding).
    dwhh = [r for r in recs if r["kernel"] == "matmul_tn_f32"][1]
    args = {a["index"]: a["load"] for a in dwhh["args"]}
    da, h = args[1], args[2]
    assert da["sectors"] == (H // 64) * da["unique_sectors"] == (H // 64) * N * 4 * H * 4 // 32
    assert h["sectors"] == (4 * H // 64) * h["unique_sectors"] == (4 * H // 64) * N * H * 4 // 32
    f = dwhh["flops"]["f32"]
    assert f["mul"] == f["add"] == 4 * H * H * N
    assert dwhh["global"]["store"]["sectors"] == 4 * H * H * 4 // 32
    rowsq = next(r for r in recs if r["kernel"] == "rowsq_f32")
    grad = rowsq["args"][0]["load"]
    assert grad["sectors"] == grad["unique_sectors"]  # every gradient entry read once


def test_persistent_is_coalesced_and_keeps_the_weights_on_chip():
    # The issue's target shape with the H200's launch geometry (32 blocks of 8 units, 256
    # threads); the kernels' per-step requests do not depend on T, so T = 2 shows them all.
    from lockstep import _simt

    H, B, T = 256, 64, 2
    mc, tc, params, x, y = make_case(1, H, 1, T, B, np.float32, n=B, epochs=1)
    be = backends.get("cuda-raw")(mc, tc, np.float32, strategy="persistent", device="emu",
                                  emulate="h200")
    assert be.plan[:2] == (32, 8)
    be.load(params, None)
    _simt.take_counters()
    _simt.set_counting(True)
    try:
        losses = list(run_epochs(be, x, y, tc, new_rng(0), 1))
    finally:
        _simt.set_counting(False)
    recs = _simt.take_counters()
    want = reference.train(params, (x, y), tc)[1]["train_loss"]
    assert_same_bits(np.array(losses, np.float32).reshape(-1)[:1], np.array(want[:1]), "loss")
    steps = [r for r in recs if r["kernel"].startswith("persistent_")]
    assert [r["kernel"] for r in steps] == ["persistent_fwd_f32", "persistent_bwd_f32"]
    w_sectors = 4 * H * H * 4 // 32
    for r in steps:
        for side in ("load", "store"):
            g = r["global"][side]
            assert g["sectors"] <= 1.25 * g["min_sectors"], (r["kernel"], side, g)
        assert r["grid_syncs"] == T - 1 and sum(r["flops"]["f64"].values()) == 0
        w = {a["index"]: a for a in r["args"]}[1 if "fwd" in r["kernel"] else 2]["load"]
        assert w["sectors"] == w["unique_sectors"] == w_sectors  # once per sequence
