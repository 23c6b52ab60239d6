"""Runs the numba-cuda checks under Numba's CUDA simulator; started by tests/test_numba_sim.py
in a subprocess with NUMBA_ENABLE_CUDASIM=1 (the flag must be set before numba is imported,
and the main pytest process must not get the simulator).

    NUMBA_ENABLE_CUDASIM=1 python tests/numba_sim_driver.py [ID_PREFIX ...] [--skip ID_PREFIX ...]

Prints one JSON object per check: {"id", "ok", "msg", "seconds"}; exits 0 when every selected
check passed, 1 otherwise, 2 when the simulator is not active.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
from numba import cuda  # module level: the simulator swaps this global inside kernels

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

DTYPES = (np.float32, np.float64)
STRATEGIES = ("per-sample", "fused")
# (id, I, H, O, T, B, loss, loss_on, optimizer, clip, momentum): together both losses, both
# loss_on, SGD, SGD with momentum, Adam, with and without clipping (and a clip threshold that
# some batches exceed and others do not); N = 2B+1 (short batch). The last case is larger than
# one simulator tile in every dimension and a multiple of none (H = 7: 2 unit tiles of 4, 7 x 2
# transpose tiles for 2 x 2 blocks; wgrad: 28 gate rows and 7 head rows in tiles of 6, 11
# columns in tiles of 6, T*B = 10 samples in stages of 4; B = 5: 3 sample tiles of 2), so the
# multi-tile and partial-tile paths run.
CASES = (
    ("mse_all_sgd", 2, 5, 3, 3, 2, "mse", "all", "sgd", 0.0, 0.0),
    ("ce_last_adam_clip", 2, 5, 3, 3, 2, "ce", "last", "adam", 0.6, 0.0),  # clips 2 of 3
    ("ce_all_momentum_clip", 1, 3, 4, 2, 3, "ce", "all", "sgd", 0.05, 0.9),
    ("mse_last_adam", 3, 2, 2, 3, 1, "mse", "last", "adam", 0.0, 0.0),
    ("mse_all_momentum_tiles", 3, 7, 7, 2, 5, "mse", "all", "sgd", 0.0, 0.9),
    # further make_case arguments (a 12th field): grad_shards: groups of 2, 2, 1 (and 1, 0, 0
    # for the short batch); then S > B, so empty groups add their +0 partials
    ("mse_all_adam_clip_shards3", 2, 5, 3, 3, 5, "mse", "all", "adam", 0.3, 0.0,
     {"grad_shards": 3}),
    ("ce_last_momentum_shards4", 1, 3, 2, 2, 3, "ce", "last", "sgd", 0.0, 0.9,
     {"grad_shards": 4}),
)
# Stacked layers, as few and as tiny as the simulator allows: 2 and 3 layers, B = 1, T = 1,
# both losses and loss_on, SGD / momentum / Adam, clipping (each threshold is exceeded by some
# steps and not by others), dropout (with 3 layers: masks on both the input and the dh_above of
# the middle layer; with grad_shards 2 the second group reads its own columns of the masks);
# H = 5 spans two unit tiles of the fused steps and partial wgrad tiles. MSE on all steps: the
# 2-layer golden file.
STACKED_CASES = (
    ("l2_ce_all_sgd_b1", 2, 3, 2, 3, 1, "ce", "all", "sgd", 0.0, 0.0, {"layers": 2}),
    ("l3_ce_last_adam_clip_dropout", 1, 3, 3, 2, 3, "ce", "last", "adam", 0.5, 0.0,
     {"layers": 3, "dropout": 0.4}),
    ("l2_mse_last_momentum_clip_t1_dropout_shards2", 3, 5, 1, 1, 3, "mse", "last", "sgd", 1.0,
     0.9, {"layers": 2, "dropout": 0.5, "grad_shards": 2}),
)
# Every golden file (test_numba_sim.py runs the larger ones with "fused" only on request).
SIM_GOLDEN = ("mse_all_sgd", "mse_last_adam_clip", "ce_all_momentum_clip", "ce_last_adam_b1_t1",
              "mse_all_adam_h1_fullbatch", "mse_all_adam_2layers", "ce_last_sgd_3layers_dropout")


def _math_inputs(dt, n=1500, seed=7):
    """Random values over exp's and log's whole ranges plus every edge case."""
    fi = np.finfo(dt)
    rng = np.random.default_rng(seed)
    wide = 120.0 if dt == np.float32 else 800.0
    x = np.concatenate([rng.standard_normal(n // 3) * 6, rng.uniform(-wide, wide, n // 3),
                        np.exp(rng.uniform(-80.0, 80.0, n - 2 * (n // 3)))])
    c_exp_hi = 89.0 if dt == np.float32 else 710.0
    c_exp_lo = -104.0 if dt == np.float32 else -746.0
    edge = [0.0, np.inf, np.nan, fi.tiny, fi.tiny / 3, fi.smallest_subnormal, fi.max, 1.0,
            0.5, 2.0 ** -30, 1e-300 if dt == np.float64 else 1e-38, c_exp_hi,
            np.nextafter(dt(c_exp_hi), dt(np.inf)), c_exp_lo, np.nextafter(dt(c_exp_lo), dt(0)),
            np.nextafter(dt(c_exp_lo), dt(-np.inf)), float.fromhex("0x1.c9p-4"),
            float.fromhex("0x1.19p-1"), 20.0, 40.0, np.nextafter(dt(20.0), dt(0)),
            np.nextafter(dt(40.0), dt(0)), 88.72, 709.78, 1.4142135, 0.70710677]
    edge = np.array(edge, dt)
    return np.concatenate([x.astype(dt), edge, -edge])


def check_math(dt, name):
    from conftest import assert_same_bits
    from lockstep import arith
    from lockstep.numba_kernels.math import make_math

    mm = make_math(dt)
    f = getattr(mm, name)

    @cuda.jit
    def apply(inp, out):
        for i in range(cuda.grid(1), inp.size, cuda.gridsize(1)):
            out[i] = f(inp[i])

    x = _math_inputs(dt)
    out = np.full_like(x, 7)
    apply[1, 16](x, out)
    assert_same_bits(out, getattr(arith, name)(x), f"{np.dtype(dt).name} {name}")
    return f"{x.size} values bit-identical"


def check_helpers(dt):
    """The rounded helpers return working-dtype values equal to NumPy's operators, and a
    float32 kernel's typed constants stay float32 (1/3 rounds differently in float64)."""
    from conftest import assert_same_bits
    from lockstep.numba_kernels.math import make_math

    mm = make_math(dt)
    mul, add, sub, div, sqrt = mm.mul, mm.add, mm.sub, mm.div, mm.sqrt
    THREE = mm.F(3)

    @cuda.jit
    def ops(a, b, out):
        for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
            out[0, i] = add(mul(a[i], b[i]), a[i])
            out[1, i] = sub(a[i], div(b[i], THREE))
            out[2, i] = sqrt(mul(a[i], a[i]))
            out[3, i] = div(mm.ONE, THREE)

    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(200).astype(dt), rng.standard_normal(200).astype(dt)
    out = np.zeros((4, 200), dt)
    ops[1, 8](a, b, out)
    three = np.dtype(dt).type(3)
    with np.errstate(all="raise"):
        want = np.stack([(a * b) + a, a - (b / three), np.sqrt(a * a),
                         np.full(200, np.dtype(dt).type(1) / three)])
    assert_same_bits(out, want, f"{np.dtype(dt).name} helpers")
    return "add/sub/mul/div/sqrt equal NumPy's operators in the working dtype"


def check_reference(strategy, dt, case):
    from agreement import assert_matches_reference, make_case

    _, I, H, O, T, B, loss, loss_on, opt, clip, mom, *extra = case
    spec = f"numba-cuda:{strategy}@sim"
    assert_matches_reference(spec, *make_case(I, H, O, T, B, dt, loss=loss, loss_on=loss_on,
                                              optimizer=opt, clip=clip, momentum=mom,
                                              **(extra[0] if extra else {})))
    return "losses and final parameters bit-identical to reference.train"


def check_state(strategy, dt, layers=1, opts=(("adam", 0.0), ("sgd", 0.9), ("sgd", 0.0))):
    """load(params, opt_state) / state() round-trip the reference's formats (every tensor of
    param_names(layers), parameters and optimizer slots), and training on from a loaded state
    equals the reference continuing from the same state."""
    from agreement import make_case
    from conftest import assert_same_bits
    from lockstep import backends, reference
    from lockstep.backends import EpochBatches
    from lockstep.config import ConfigError

    for opt, mom in opts:
        mc, tc, params, x, y = make_case(2, 3, 2, 2, 2, dt, optimizer=opt, momentum=mom,
                                         clip=0.05, layers=layers)
        rng = np.random.Generator(np.random.PCG64(0))
        p_ref, hist = reference.train(params, (x, y), tc, rng=rng)  # 2 epochs: warm state
        opt_ref = hist["opt_state"]
        be = backends.get("numba-cuda")(mc, tc, dt, strategy=strategy, device="sim")
        if layers > 1:  # parameters of another depth are refused, not misread
            one = reference.init_params(dataclasses.replace(mc, num_layers=1), dt)
            try:
                be.load(one, None)
            except ConfigError as e:
                assert "1 layer(s), config says" in str(e), e
            else:
                raise AssertionError("one-layer parameters loaded into a stacked model")
        be.load(p_ref, opt_ref)
        p0, o0 = be.state()
        _same_state(p0, o0, p_ref, opt_ref, f"{opt} round trip")
        idx = reference.batch_order(x.shape[1], tc, rng)
        losses = be.train_epoch(EpochBatches(x, y, idx, tc.loss_on, "k"))
        want_losses = []
        p_want, o_want = p_ref, opt_ref
        for i in idx:
            xb, yb = reference.take_batch(x, y, i, tc)
            loss, p_want, o_want = reference.train_step(p_want, o_want, xb, yb, tc)
            want_losses.append(loss)
        assert all(np.asarray(v).dtype == np.dtype(dt) for v in losses), "loss dtype"
        assert_same_bits(np.array(losses), np.array(want_losses), f"{opt} batch losses")
        p1, o1 = be.state()
        _same_state(p1, o1, p_want, o_want, f"{opt} after an epoch")
        # predict / evaluate: the device forward pass equals reference.forward.
        assert_same_bits(be.predict(x), reference.forward(p_want, x)[0], f"{opt} predict")
        assert_same_bits(be.evaluate(x, y), reference.evaluate(p_want, x, y, tc), "evaluate")
    return "adam, momentum and plain SGD states round-trip and continue bit-identically"


def _same_state(p, o, p_want, o_want, what):
    from conftest import assert_same_bits
    from lockstep import reference

    names = reference.names_of(p_want)
    assert list(p) == list(names), f"{what}: parameter names {list(p)} != {list(names)}"
    for n in names:
        assert_same_bits(p[n], p_want[n], f"{what}: {n}")
    assert list(o) == list(o_want), f"{what}: opt_state keys {list(o)} != {list(o_want)}"
    assert o["step"] == o_want["step"], f"{what}: step {o['step']} != {o_want['step']}"
    for k in o_want:
        if isinstance(o_want[k], dict):
            assert list(o[k]) == list(names), f"{what}: {k} names {list(o[k])}"
            for n in names:
                assert_same_bits(o[k][n], o_want[k][n], f"{what}: {k}[{n}]")
        elif k != "step":
            assert_same_bits(o[k], o_want[k], f"{what}: {k}")


class _OneRank:
    """A communicator of one process: DataParallel then calls shard_partial for every group."""

    rank, size = 0, 1

    def Allgather(self, send, recv):
        recv[...] = send


def check_data_parallel(strategy, dt):
    """DataParallel over shard_partial / apply_grads (the path of MPI runs) with 2 layers,
    dropout and 2 groups per batch: each group's masks arrive sliced, and the result equals
    reference.train (arithmetic.md, "Sharded gradients")."""
    from agreement import make_case
    from conftest import assert_same_bits
    from lockstep import backends, reference
    from lockstep.distributed import DataParallel
    from lockstep.train import new_rng, run_epochs

    mc, tc, params, x, y = make_case(2, 3, 2, 2, 3, dt, optimizer="adam", clip=0.1, layers=2,
                                     dropout=0.4, grad_shards=2)
    be = DataParallel(backends.get("numba-cuda")(mc, tc, dt, strategy=strategy, device="sim"),
                      _OneRank())
    be.load(params, None)
    losses = list(run_epochs(be, x, y, tc, new_rng(tc.seed), tc.epochs, data_key=id(x)))
    want, hist = reference.train(params, (x, y), tc)
    assert_same_bits(np.array(losses), np.array(hist["train_loss"]), "data-parallel losses")
    got, _ = be.state()
    for n in reference.names_of(want):
        assert_same_bits(got[n], want[n], f"data-parallel final {n}")
    return "shard_partial with sliced masks, combined on the host, equals reference.train"


def check_golden(strategy, name):
    from agreement import GOLDEN_FILES, assert_matches_golden

    (path,) = [p for p in GOLDEN_FILES if p.stem == name]
    assert_matches_golden(f"numba-cuda:{strategy}@sim", path)
    return "per-epoch losses and final parameters equal the golden file"


def check_availability():
    from lockstep import backends

    ok, why = backends.availability("numba-cuda", "sim")
    assert ok, why
    ok, why = backends.availability("numba-cuda", "gpu")
    assert not ok and "simulator" in why, why
    return why


def check_selftest_must_fail():
    """Deliberately wrong: the per-sample backend against a reference trained with another
    learning rate. The outer tests use it to show that failures are reported."""
    from agreement import make_case
    from conftest import assert_same_bits
    from lockstep import harness, reference

    mc, tc, params, x, y = make_case(1, 2, 1, 2, 1, np.float32)
    losses, _ = harness.train_with("numba-cuda:per-sample@sim", mc, tc, x.dtype, params, x, y)
    _, hist = reference.train(params, (x, y), dataclasses.replace(tc, lr=tc.lr * 2))
    assert_same_bits(losses, np.array(hist["train_loss"]), "self-test losses")
    return "unexpectedly equal"


def all_checks(selftest=False):
    """(id, function, args) of every check; the self-test only when asked for by name."""
    checks = [("availability", check_availability, ())]
    if selftest:
        checks.append(("selftest-must-fail", check_selftest_must_fail, ()))
    for dt in DTYPES:
        dn = np.dtype(dt).name
        checks.append((f"helpers-{dn}", check_helpers, (dt,)))
        for name in ("exp", "log", "sigmoid", "tanh"):
            checks.append((f"math-{name}-{dn}", check_math, (dt, name)))
    for s in STRATEGIES:
        for dt in DTYPES:
            dn = np.dtype(dt).name
            for case in CASES:
                checks.append((f"reference-{s}-{case[0]}-{dn}", check_reference, (s, dt, case)))
            for case in STACKED_CASES:
                checks.append((f"stacked-{s}-{case[0]}-{dn}", check_reference, (s, dt, case)))
            checks.append((f"state-{s}-{dn}", check_state, (s, dt)))
        # 2 layers: every tensor's parameters and Adam / momentum slots, one dtype each
        checks.append((f"state-{s}-2layers", check_state,
                       (s, np.float64 if s == "fused" else np.float32, 2,
                        (("adam", 0.0), ("sgd", 0.9)))))
        checks.append((f"dataparallel-{s}-2layers-dropout", check_data_parallel,
                       (s, np.float32 if s == "fused" else np.float64)))
        for g in SIM_GOLDEN:
            for dn in ("float32", "float64"):
                checks.append((f"golden-{s}-{g}_{dn}", check_golden, (s, f"{g}_{dn}")))
    return checks


def main(argv):
    if not cuda.config.ENABLE_CUDASIM:
        print(json.dumps({"id": "simulator", "ok": False,
                          "msg": "NUMBA_ENABLE_CUDASIM=1 must be set before numba is imported"}))
        return 2
    # The simulator runs one Python thread per CUDA thread and polls them; a short switch
    # interval keeps it from spending most of its time waiting for the GIL.
    sys.setswitchinterval(5e-4)
    # Overflow to inf and the like are the correct results of edge cases; NumPy's scalar
    # warnings about them (raised in the simulator's threads) are noise here.
    warnings.simplefilter("ignore", RuntimeWarning)
    skip = []
    if "--skip" in argv:
        i = argv.index("--skip")
        argv, skip = argv[:i], argv[i + 1:]
    failed = 0
    for cid, fn, args in all_checks(selftest="selftest-must-fail" in argv):
        if argv and not any(cid.startswith(p) for p in argv):
            continue
        if any(cid.startswith(p) for p in skip):
            continue
        t0 = time.perf_counter()
        try:
            msg, ok = fn(*args), True
        except Exception as e:  # noqa: BLE001 - every failure is reported, then the next check runs
            tb = traceback.format_exception(type(e), e, e.__traceback__)
            msg, ok = f"{type(e).__name__}: {e}\n{''.join(tb[-3:])}", False
            failed += 1
        print(json.dumps({"id": cid, "ok": ok, "msg": msg,
                          "seconds": round(time.perf_counter() - t0, 2)}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        print("warning: NUMBA_ENABLE_CUDASIM is not 1", file=sys.stderr)
    sys.exit(main(sys.argv[1:]))
