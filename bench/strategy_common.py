"""Shared plumbing of bench/lstm_forward.py and bench/lstm_backward.py (llm.c dev/cuda style):
one cuda-raw backend per strategy on the GPU (or the SIMT emulator with --emu), the NumPy
reference first, every strategy validated bit for bit before anything is timed, then one line
per (strategy, block size, shape) with time, GFLOP/s, GB/s and the fraction of the measured
no-FMA peak (bench/gpu_micro.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gpu_micro  # noqa: E402

from lockstep import reference  # noqa: E402
from lockstep.backends.cuda_raw import CudaRawBackend  # noqa: E402
from lockstep.config import ConfigError, ModelConfig, TrainConfig  # noqa: E402

STRATEGIES = ("naive", "fused", "persistent")
# (I, H, T, B): the seed's size, then growing; the emulator only validates tiny ones.
GPU_SHAPES = [(1, 50, 12, 32), (1, 128, 24, 64), (1, 256, 48, 64), (32, 512, 64, 64),
              (32, 1024, 64, 256)]
EMU_SHAPES = [(1, 5, 4, 3), (3, 13, 5, 2)]
GPU_BLOCKS = (64, 128, 256, 512)
EMU_BLOCKS = (8, 32)
REFERENCE_LIMIT = 2e9  # T*B*H*H above this: validate against "naive" instead (NumPy takes minutes)


def parse(doc):
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--emu", action="store_true", help="SIMT emulator (no GPU): validation only")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--json", help="write the lines as JSON here")
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


def sweep(doc, prepare, run):
    """The scripts' main loop. ``prepare(mc, tc, params, x, y)`` -> (flops, bytes, reference
    result or None when the shape is too big for NumPy); ``run(be, T, B, x, y)`` -> (result,
    the function to time). Every (strategy, block) result must equal the reference's bits (or
    naive's, for shapes too big for NumPy) before it is timed."""
    args = parse(doc)
    dev, peak, shapes, blocks, device = setup(args)
    dt = np.dtype(args.dtype)
    results = []
    for I, H, T, B in shapes:
        mc, tc, params, x, y = problem(I, H, T, B, dt)
        shape = (I, H, T, B)
        flops, nbytes, want = prepare(mc, tc, params, x, y, T * B * H * H <= REFERENCE_LIMIT)
        for strategy in STRATEGIES:
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
                line(results, strategy, block, shape, dev.time(fn, 1 if args.emu else 10),
                     flops, nbytes, peak)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


def bits_equal(a, b):
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.shape == b.shape and a.tobytes() == b.tobytes()


