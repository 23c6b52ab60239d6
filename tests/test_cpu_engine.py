"""The C++ engine behind backend "cpu": its vector activations equal the scalar canonical ones,
its kernel units do not contract into FMA, the backend interface round-trips the optimizer
state in the reference's format, and bad inputs are clear Python errors."""

import platform
import re

import numpy as np
import pytest
from agreement import make_case
from conftest import assert_same_bits, bits

from lockstep import arith, backends, harness, reference
from lockstep.config import ConfigError, ModelConfig

_cpu = pytest.importorskip("lockstep._cpu")
from test_agreement_cpu import ISAS  # noqa: E402


def _samples(dt):
    fi = np.finfo(dt)
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(20000) * s for s in (0.01, 0.3, 1, 3, 12, 60, 1e3)] +
                       [[0.0, -0.0, np.inf, -np.inf, np.nan, fi.tiny, -fi.tiny, fi.smallest_subnormal,
                         -fi.smallest_subnormal, fi.max, -fi.max, 20, 40, -20, -40, 89, -104, 710,
                         -746, float.fromhex("0x1.c9p-4"), float.fromhex("0x1.19p-1")]]).astype(dt)
    with np.errstate(over="ignore"):
        inf = np.dtype(dt).type(np.inf)
        return np.concatenate([x, np.nextafter(x, inf), np.nextafter(x, -inf)])


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("fn", ["sigmoid", "tanh"])
def test_vector_activations_equal_the_canonical_functions(fn, isa, dtype):
    x = _samples(dtype)[:-3]  # an odd length: the tail lanes go through the same vector code
    assert_same_bits(_cpu.kernel_act(x, fn, isa), getattr(arith, fn)(x), f"vector {fn} ({isa})")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("fn", ["sigmoid", "tanh"])
def test_vector_activations_with_uniform_lanes(fn, isa, dtype):
    """Sorted inputs: most vectors have every lane in one branch (the engine then skips the
    others) and a few straddle a threshold."""
    x = np.sort(_samples(dtype)[:-3])
    x = np.concatenate([x, x[::-1]])
    assert_same_bits(_cpu.kernel_act(x, fn, isa), getattr(arith, fn)(x), f"sorted {fn} ({isa})")


def test_profile_phases_and_the_thread_rule():
    e = _cpu.EngineF32(1, 9, 1)
    prof = e.profile()
    assert {"rec_gemm", "rec_cell", "wgrad", "optim"} <= set(prof) and all(
        v >= 0 for v in prof.values())
    before = _cpu.get_num_threads(), _cpu.get_adaptive_threads()
    try:
        _cpu.set_num_threads(2, adaptive=True)
        assert _cpu.get_adaptive_threads() and _cpu.get_num_threads() == 2
    finally:
        _cpu.set_num_threads(*before)


@pytest.mark.parametrize("isa", ISAS)
def test_contraction_canary_through_the_engine_units(isa, dtype):
    dt = np.dtype(dtype)
    one, eps = dt.type(1), np.finfo(dt).eps
    a = np.array([one + eps, 1 / dt.type(3), dt.type(0.1)], dt)
    b = np.array([one - eps, dt.type(3), dt.type(10)], dt)
    c = np.array([-one, -one, -one], dt)
    assert_same_bits(_cpu.kernel_muladd(a, b, c, isa), (a * b) + c, f"engine unit {isa}: (a*b)+c")
    # (1+eps)(1-eps) - 1 is -eps^2 when fused and exactly 0 when rounded first
    assert bits(_cpu.kernel_muladd(a, b, c, isa))[0] == 0


def _backend(mc, tc, dt, **kw):
    be = backends.get("cpu")(mc, tc, dt, **kw)
    return be


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("optimizer,momentum", [("adam", 0.0), ("sgd", 0.9), ("sgd", 0.0)])
def test_state_is_the_reference_format_and_resumes(optimizer, momentum, layers, dtype):
    mc, tc, params, x, y = make_case(2, 5, 3, 4, 3, dtype, optimizer=optimizer, momentum=momentum,
                                     epochs=2, clip=0.5, layers=layers)
    names = reference.param_names(layers)
    want, hist = reference.train(params, (x, y), tc)
    ref1, hist1 = reference.train(params, (x, y), tc.__class__(**{**tc.to_dict(), "epochs": 1}))
    be = _backend(mc, tc, dtype)
    be.load(params, None)
    rng = np.random.Generator(np.random.PCG64(tc.seed))
    be.train_epoch(backends.EpochBatches(x, y, reference.batch_order(x.shape[1], tc, rng)))
    p1, o1 = be.state()
    ro = hist1["opt_state"]
    assert set(o1) == set(ro) and o1["step"] == ro["step"] and type(o1["step"]) is int
    for k, v in ro.items():
        if isinstance(v, dict):
            assert list(o1[k]) == list(names)
            for n in names:
                assert_same_bits(o1[k][n], v[n], f"opt {k} {n}")
        elif k != "step":
            assert_same_bits(o1[k], v, f"opt {k}")
            assert type(o1[k]) is type(v)
    # resume in a fresh backend from the exported state: epoch 2 equals the reference's
    be2 = _backend(mc, tc, dtype)
    be2.load(p1, o1)
    be2.train_epoch(backends.EpochBatches(x, y, reference.batch_order(x.shape[1], tc, rng)))
    p2, o2 = be2.state()
    for n in names:
        assert_same_bits(p2[n], want[n], f"resumed {n}")
    assert o2["step"] == hist["opt_state"]["step"]


@pytest.mark.parametrize("loss,loss_on,layers", [("mse", "all", 1), ("ce", "last", 1),
                                                ("mse", "last", 3), ("ce", "all", 2)])
def test_evaluate_and_predict_equal_the_reference(loss, loss_on, layers, dtype):
    # with dropout configured: evaluation and prediction use no masks
    mc, tc, params, x, y = make_case(3, 13, 4, 5, 7, dtype, loss=loss, loss_on=loss_on,
                                     layers=layers, dropout=0.5 if layers > 1 else 0.0)
    be = _backend(mc, tc, dtype)
    be.load(params, None)
    assert_same_bits(be.predict(x), reference.forward(params, x)[0], "predict")
    got = be.evaluate(x, y)
    assert_same_bits(got, reference.evaluate(params, x, y, tc), "evaluate")
    assert isinstance(got, np.floating) and got.dtype == dtype


def test_registry_and_auto_prefer_cpu_over_numpy():
    assert backends.availability("cpu") == (True, "available")
    order = [c.partition("@")[0] for c in backends.AUTO_ORDER]
    assert order.index("cpu") < order.index("numpy")
    assert backends.resolve("auto")[0] != "numpy"
    rows = backends.runs(["cpu"])
    assert ("cpu", "blocked", "cpu", True, "available") in rows
    mc, tc, params, x, y = make_case(1, 3, 1, 2, 2, np.float32)
    losses, final = harness.train_with("cpu:blocked@cpu", mc, tc, np.float32, params, x, y)
    assert losses.dtype == np.float32 and len(losses) == tc.epochs


def test_engine_reports_its_buffers_and_isa():
    e = _cpu.EngineF32(3, 50, 4)
    assert e.isa == ISAS[-1] == _cpu.isa()  # the widest unit by default
    assert e.bytes > 4 * (4 * 50 * (3 + 50 + 1) + 4 * 50 + 4)
    for isa, name in (("avx2", "AVX2"), ("avx512", "AVX-512")):
        if isa in ISAS:
            assert _cpu.EngineF32(1, 1, 1, isa=isa).isa == isa
        else:
            with pytest.raises(ValueError, match=f"no {name}"):
                _cpu.EngineF32(1, 1, 1, isa=isa)
    with pytest.raises(ValueError, match="isa must be"):
        _cpu.EngineF32(1, 1, 1, isa="sse9")


# ---- bad inputs ------------------------------------------------------------------------------

def _engine(loss="mse", loss_on="all", dt=np.float32):
    mc, tc, params, x, y = make_case(2, 5, 3, 4, 3, dt, loss=loss, loss_on=loss_on)
    e = (_cpu.EngineF32 if dt == np.float32 else _cpu.EngineF64)(2, 5, 3, loss=loss, loss_on=loss_on)
    for n in reference.PARAM_NAMES:
        e.set("params", n, params[n])
    return e, x, y


def test_bad_engine_inputs_raise_clear_errors():
    e, x, y = _engine()
    idx = [np.arange(3)]
    with pytest.raises(ValueError, match=r"x must be a \(T, N, 2\) float32"):
        e.train_epoch(x.astype(np.float64), y, idx)
    with pytest.raises(ValueError, match=r"x must be a \(T, N, 2\)"):
        e.train_epoch(x[..., :1].copy(), y, idx)
    with pytest.raises(ValueError, match=r"x must be"):
        e.train_epoch(x[:0], y[:0], idx)
    with pytest.raises(ValueError, match="MSE targets must be a"):
        e.train_epoch(x, y[:, :, :2], idx)
    with pytest.raises(ValueError, match="MSE targets must be a"):
        e.train_epoch(x, y.astype(np.float64), idx)
    with pytest.raises(ValueError, match="sample index 7 outside"):
        e.train_epoch(x, y, [np.array([0, 7])])
    with pytest.raises(ValueError, match="1-D integer array"):
        e.train_epoch(x, y, [np.array([0.0, 1.0])])
    with pytest.raises(ValueError, match="empty batch"):
        e.train_epoch(x, y, [np.array([], np.int64)])
    with pytest.raises(ValueError, match=r"params W_hh must be a \(20, 5\) float32 array"):
        e.set("params", "W_hh", np.zeros((20, 4), np.float32))
    with pytest.raises(ValueError, match="float32"):
        e.set("params", "b", np.zeros(20, np.float64))
    with pytest.raises(ValueError, match="unknown slot 'mom'"):
        e.set("mom", "b", np.zeros(20, np.float32))
    with pytest.raises(ValueError, match="unknown tensor 'W'"):
        e.get("params", "W")
    with pytest.raises(TypeError):
        e.train_epoch("x", y, idx)
    with pytest.raises(ValueError, match="loss must be"):
        _cpu.EngineF64(1, 1, 1, loss="l1")
    with pytest.raises(ValueError, match="must be positive"):
        _cpu.EngineF64(0, 1, 1)


def test_bad_dropout_masks_raise_clear_errors():
    mc, tc, params, x, y = make_case(2, 5, 3, 4, 3, np.float32, layers=3)
    e = _cpu.EngineF32(2, 5, 3, num_layers=3)
    for n in reference.param_names(3):
        e.set("params", n, params[n])
    idx = [np.arange(3), np.arange(3, 7)]
    ok = [np.ones((2, 4, 3, 5), np.float32), np.ones((2, 4, 4, 5), np.float32)]
    e.train_epoch(x, y, idx, ok)
    e.train_epoch(x, y, idx, [None, ok[1]])  # a batch without masks trains undropped
    with pytest.raises(ValueError, match=r"one entry per batch \(2\), got 1"):
        e.train_epoch(x, y, idx, ok[:1])
    with pytest.raises(ValueError, match=r"masks must be a \(2, 4, 4, 5\) float32 array, "
                                         r"got \(2, 4, 3, 5\)"):
        e.train_epoch(x, y, idx, [ok[0], ok[0]])
    with pytest.raises(ValueError, match=r"\(2, 4, 3, 5\) float32 array, got \(2, 4, 3, 5\) "
                                         r"float64"):
        e.train_epoch(x, y, idx, [ok[0].astype(np.float64), ok[1]])
    with pytest.raises(ValueError, match=r"masks must be a \(2, 4, 2, 5\)"):
        e.shard_partial(x, y, np.arange(2), 24, masks=ok[0])
    with pytest.raises(ValueError, match="unknown tensor 'W_ih_l3'"):
        e.get("params", "W_ih_l3")
    with pytest.raises(ValueError, match=r"params W_ih_l1 must be a \(20, 5\) float32"):
        e.set("params", "W_ih_l1", np.zeros((20, 2), np.float32))
    one, *_ = _engine()
    with pytest.raises(ValueError, match="num_layers >= 2"):
        one.train_epoch(x, y, idx[:1], ok[:1])
    with pytest.raises(ValueError, match="num_layers must be >= 1"):
        _cpu.EngineF32(2, 5, 3, num_layers=0)
    with pytest.raises(ConfigError, match="lack W_ih_l1, W_hh_l1, b_l1"):
        _backend(mc, tc, np.float32).load(reference.init_params(ModelConfig(2, 5, 3), np.float32))


def test_bad_cross_entropy_targets_raise():
    e, x, y = _engine("ce", "last", np.float64)
    with pytest.raises(ValueError, match=r"class index 3 outside \[0, 3\)"):
        e.train_epoch(x, np.full(7, 3), [np.arange(3)])
    with pytest.raises(ValueError, match="integer array of class indices"):
        e.train_epoch(x, y.astype(np.float64), [np.arange(3)])
    with pytest.raises(ValueError, match=r"\(7,\)"):
        e.forward(x, np.zeros((4, 3), np.int64))


def test_backend_rejects_parameters_of_another_model():
    mc, tc, params, x, y = make_case(2, 5, 3, 4, 3, np.float64)
    be = _backend(mc, tc, np.float32)
    with pytest.raises(ConfigError, match="float64"):
        be.load(params, None)


def test_no_fused_multiply_add_instruction_in_the_module():
    """No unit of the extension contains an FMA instruction (x86-64: vfmadd/vfmsub/vfnmadd/
    vfnmsub of any width), whatever -m flags it was compiled with."""
    import shutil
    import subprocess
    objdump = shutil.which("objdump")
    if objdump is None or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("needs objdump (binutils) on x86-64")
    text = subprocess.run([objdump, "-d", "--no-show-raw-insn", _cpu.__file__], check=True,
                          capture_output=True, text=True).stdout
    assert "vmulps" in text and "vaddpd" in text  # the disassembly is of vector code
    if "avx512" in ISAS:
        assert "zmm" in text  # the AVX-512 unit is in there
    fused = [ln for ln in text.splitlines() if re.search(r"\bv?f(n)?m(add|sub)\w*\s", ln)]
    assert not fused, fused[:5]
