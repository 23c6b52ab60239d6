"""Shared plumbing of bench/lstm_forward.py and bench/lstm_backward.py (llm.c dev/cuda style):
one cuda-raw backend per strategy on the GPU (or the SIMT emulator with --emu), the NumPy
reference first, every strategy validated bit for bit before anything is timed, then one line
per (strategy, block size, shape) with time, GFLOP/s, GB/s and the fraction of the measured
no-FMA peak (bench/gpu_micro.py).

Beside the timings, every (strategy, shape) is counted on the SIMT emulator with the H200's
launch geometry (132 SMs, PREDICT_BLOCK threads per block) and priced by the GPU cost model
(python/lockstep/gpu_model.py): one "model" line with the counters and the predicted time, and
on a GPU the measured time at PREDICT_BLOCK beside it (also with the model calibrated by the
micro-benchmarks' latencies and peaks). Long sequences are counted at T' = 2 and 4 steps and
extrapolated to T; a shape whose counting would exceed --predict-budget emulated operations is
left unpredicted (say so). `python bench/strategy_common.py --compare A.json B.json` prints the
predicted-beside-measured table of the scripts' JSON files (bench/device_check.sh does)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gpu_micro  # noqa: E402

from lockstep import gpu_model, reference  # noqa: E402
from lockstep.backends.cuda_raw import CudaRawBackend  # noqa: E402
from lockstep.config import ConfigError, ModelConfig, TrainConfig  # noqa: E402

STRATEGIES = ("naive", "fused", "persistent")
# (I, H, T, B): the seed's size, then growing; the emulator only validates tiny ones.
GPU_SHAPES = [(1, 50, 12, 32), (1, 128, 24, 64), (1, 256, 48, 64), (32, 512, 64, 64),
              (32, 1024, 64, 256)]
EMU_SHAPES = [(1, 5, 4, 3), (3, 13, 5, 2), (2, 16, 10, 32)]  # the last: T' = 2, 4 extrapolated
GPU_BLOCKS = (64, 128, 256, 512)
EMU_BLOCKS = (8, 32)
REFERENCE_LIMIT = 2e9  # T*B*H*H above this: validate against "naive" instead (NumPy takes minutes)
PREDICT_BLOCK = 256   # the GPU device's default threads per block: the predicted launches'
MODEL = "h200"
DIRECT_STEPS = 8      # count all T steps up to this T, else T' = 2 and 4 and extrapolate


def parse(doc):
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--emu", action="store_true", help="SIMT emulator (no GPU): validation only")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--json", help="write the lines as JSON here")
    ap.add_argument("--predict-budget", type=float, default=2e9,
                    help="most emulated operations to count one (strategy, shape) for the "
                    "model's prediction (0 = no predictions; default 2e9, ~1 min on one core)")
    return ap.parse_args()


def setup(args):
    dev = gpu_micro.Emu() if args.emu else gpu_micro.Gpu()
    peak = gpu_micro.run(dev, args.dtype, small=args.emu)
    print(f"# {dev.name} {args.dtype}: measured no-FMA peak {peak['muladd_gflops']:.1f} GFLOP/s, "
          f"copy {peak['copy_gbs']:.1f} GB/s")
    shapes = EMU_SHAPES if args.emu else GPU_SHAPES
    blocks = EMU_BLOCKS if args.emu else GPU_BLOCKS
    return dev, peak, shapes, blocks, "emu" if args.emu else "gpu"


def problem(I, H, T, B, dtype, O=1):
    rng = np.random.default_rng(0)
    mc = ModelConfig(I, H, O)
    tc = TrainConfig(loss="mse", optimizer="sgd", lr=0.01, batch_size=B)
    params = reference.init_params(mc, dtype, seed=0)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    y = rng.standard_normal((T, B, O)).astype(dtype)
    return mc, tc, params, x, y


def backend(strategy, device, mc, tc, dtype, params, block):
    """A loaded cuda-raw backend whose kernels launch with ``block`` threads, or None with the
    reason when the strategy cannot run this shape (the persistent strategy's limits)."""
    try:
        be = CudaRawBackend(mc, tc, dtype, strategy=strategy, device=device)
    except ConfigError as e:
        return None, str(e).split(";")[0]
    be.dev.threads = block
    be.dev.persistent_threads = block
    be.load(params, None)
    return be, None


def line(results, strategy, block, shape, seconds, flops, nbytes, peak):
    gf, gbs = flops / seconds / 1e9, nbytes / seconds / 1e9
    r = {"strategy": strategy, "block": block, "I,H,T,B": shape, "ms": seconds * 1e3,
         "gflops": gf, "gbs": gbs, "peak_fraction": gf / peak["muladd_gflops"]}
    results.append(r)
    print(f"{strategy:<10} block {block:4d} | I,H,T,B {str(shape):<20} | {r['ms']:9.3f} ms | "
          f"{gf:9.2f} GFLOP/s | {gbs:8.2f} GB/s | {100 * r['peak_fraction']:5.1f}% of peak",
          flush=True)
    return r


# ---- the model's prediction -----------------------------------------------------------------

def _emu_h200(strategy, mc, tc, dt, params):
    be = CudaRawBackend(mc, tc, dt, strategy=strategy, device="emu", emulate=MODEL)
    be.dev.threads = be.dev.persistent_threads = PREDICT_BLOCK
    be.load(params, None)
    return be


def count(strategy, mc, tc, dt, params, x, y, run, budget):
    """The counter records of the scripts' timed function on the emulator with the H200's
    geometry and how they were counted, or (None, why not). ``run(be, T, B, x, y)`` ->
    (result, fn) as in the scripts; what is counted is fn's next call, as the timing sees it."""
    T, B, I = x.shape
    H = mc.hidden_size
    steps = T if T <= DIRECT_STEPS else 6
    est = 24.0 * steps * B * H * (H + I)  # emulated ops, generous (backward ~3x forward)
    if est > budget:
        return None, (f"not counted: ~{est:.2g} emulated ops > --predict-budget {budget:.2g} "
                      "(lockstep bench --device emu --shape I,H,T,B counts a whole step)")
    from lockstep import _simt

    old = _simt.workers()
    _simt.set_workers(os.cpu_count() or 1)  # counts do not depend on it (tests/test_gpu_model.py)
    t0 = time.perf_counter()
    try:
        if T <= DIRECT_STEPS:
            be = _emu_h200(strategy, mc, tc, dt, params)
            _, recs = gpu_model.count(be.dev, run(be, T, B, x, y)[1])
            how = f"counted all T = {T} steps"
        else:
            runs = []
            for t in (2, 4):
                be = _emu_h200(strategy, mc, tc, dt, params)
                fn = run(be, t, B, x[:t], _steps(y, t, tc))[1]
                runs.append((t, gpu_model.count(be.dev, fn)[1]))
            be = _emu_h200(strategy, mc, tc, dt, params)
            with gpu_model.Recorder(be.dev, execute=False) as rec:  # a dry run at T
                fn = run(be, T, B, x, y)[1]
                rec.sigs.clear()
                fn()
            recs, _ = gpu_model.extrapolate(runs[0], runs[1], rec.sigs, T)
            how = f"counted T' = 2 and 4, extrapolated to T = {T}"
    except ConfigError as e:
        return None, str(e).split(";")[0]
    finally:
        _simt.set_workers(old)
    return recs, f"{how} in {time.perf_counter() - t0:.1f} s of emulation"


def _steps(y, t, tc):
    return y[:t] if tc.loss_on == "all" else y


def model_line(strategy, shape, p, how, measured=None, calibrated=None):
    """One line per (strategy, shape): the counters, the prediction and, on a GPU, the
    measured time at PREDICT_BLOCK beside it."""
    head = f"{'model':<10} {MODEL} | I,H,T,B {str(shape):<20} | {strategy:<10}"
    if p is None:
        print(f"{head} | {how}", flush=True)
        return
    bank = "-" if p["bank_conflicts"] is None else f"{p['bank_conflicts']:.2f}"
    bound = max(p["bound_s"], key=p["bound_s"].get) if p["bound_s"] else "-"
    txt = (f"{head} | {p['launches']} launches, {p['grid_syncs']} grid barriers | DRAM "
           f"{p['dram_bytes'] / 1e6:.3g} MB, L2 {p['l2_bytes'] / 1e6:.3g} MB, "
           f"{p['ops'] / 1e9:.3g} GFLOP | coalescing {p['coalescing'] or 0:.2f}, bank "
           f"{bank} | predicted {p['predicted_s'] * 1e3:.4g} ms (launches "
           f"{p['terms_s']['launch'] * 1e3:.3g} ms, most often bound by {bound}; "
           f"{100 * p['roofline_fraction']:.2g}% of the roofline)")
    if measured is not None:
        txt += f" | measured {measured:.4g} ms at block {PREDICT_BLOCK}: " \
               f"{measured / (p['predicted_s'] * 1e3):.2f}x the prediction"
        if calibrated is not None:
            txt += f" ({measured / (calibrated['predicted_s'] * 1e3):.2f}x the prediction " \
                   "with the measured latencies and peaks)"
    print(f"{txt} | {how}", flush=True)


def sweep(doc, prepare, run):
    """The scripts' main loop. ``prepare(mc, tc, params, x, y)`` -> (flops, bytes, reference
    result or None when the shape is too big for NumPy); ``run(be, T, B, x, y)`` -> (result,
    the function to time). Every (strategy, block) result must equal the reference's bits (or
    naive's, for shapes too big for NumPy) before it is timed; then the model's line."""
    args = parse(doc)
    dev, peak, shapes, blocks, device = setup(args)
    dt = np.dtype(args.dtype)
    calibrated = None if args.emu else gpu_model.get(MODEL).calibrated(peak)
    results = []
    for I, H, T, B in shapes:
        mc, tc, params, x, y = problem(I, H, T, B, dt)
        shape = (I, H, T, B)
        flops, nbytes, want = prepare(mc, tc, params, x, y, T * B * H * H <= REFERENCE_LIMIT)
        for strategy in STRATEGIES:
            lines = []
            for block in blocks:
                be, why = backend(strategy, device, mc, tc, dt, params, block)
                if be is None:
                    print(f"{strategy:<10} block {block:4d} | I,H,T,B {shape} | skipped: {why}")
                    break
                got, fn = run(be, T, B, x, y)
                want = got if want is None else want  # too big for NumPy: naive is the yardstick
                bad = [k for k in want if not bits_equal(got[k], want[k])]
                if bad:
                    raise SystemExit(f"{strategy} block {block} {shape}: {bad} differ from the "
                                     "reference")
                lines.append(line(results, strategy, block, shape,
                                  dev.time(fn, 1 if args.emu else 10), flops, nbytes, peak))
            recs, how = (None, "no prediction (--predict-budget 0)") if not args.predict_budget \
                else count(strategy, mc, tc, dt, params, x, y, run, args.predict_budget)
            p = None if recs is None else gpu_model.predict(recs, MODEL)
            cal = None if recs is None or calibrated is None else \
                gpu_model.predict(recs, calibrated)
            measured = next((r["ms"] for r in lines if r["block"] == PREDICT_BLOCK), None)
            model_line(strategy, shape, p, how, measured, cal)
            for r in lines:  # every line of this (strategy, shape) carries the prediction
                r["predicted_block"] = PREDICT_BLOCK
                r["predicted_ms"] = None if p is None else p["predicted_s"] * 1e3
                r["predicted_calibrated_ms"] = None if cal is None else cal["predicted_s"] * 1e3
                r["prediction"] = how if p is None else {**p, "how": how}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


def bits_equal(a, b):
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def compare(paths):
    """Predicted beside measured, from the JSON files of lstm_forward.py / lstm_backward.py: one
    row per (script, strategy, shape) at the predicted block size. Returns the rows."""
    rows = []
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0]
        if not os.path.isfile(path):
            print(f"(no {path}: its step wrote nothing)")
            continue
        with open(path) as f:
            lines = json.load(f)
        for r in lines:
            if r.get("block") != r.get("predicted_block", PREDICT_BLOCK):
                continue
            pred, cal = r.get("predicted_ms"), r.get("predicted_calibrated_ms")
            rows.append({"script": name, "strategy": r["strategy"], "I,H,T,B": r["I,H,T,B"],
                         "measured_ms": r["ms"], "predicted_ms": pred,
                         "predicted_calibrated_ms": cal,
                         "measured_over_predicted": r["ms"] / pred if pred else None})
    fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
    print(f"| script | strategy | I,H,T,B | measured ms (block {PREDICT_BLOCK}) | predicted ms "
          f"({MODEL}, published) | predicted ms (measured latencies and peaks) | measured / "
          "predicted |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['script']} | {r['strategy']} | {tuple(r['I,H,T,B'])} | "
              f"{fmt(r['measured_ms'])} | {fmt(r['predicted_ms'])} | "
              f"{fmt(r['predicted_calibrated_ms'])} | {fmt(r['measured_over_predicted'])} |")
    if not rows:
        print(f"(no line at block {PREDICT_BLOCK}: run the scripts on a GPU first)")
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="predicted beside measured, from the JSON files "
                                 "of bench/lstm_forward.py and bench/lstm_backward.py")
    ap.add_argument("--compare", nargs="+", required=True, metavar="JSON")
    compare(ap.parse_args().compare)
