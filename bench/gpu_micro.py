"""GPU micro-benchmarks: kernel-launch latency, grid-barrier latency, the no-FMA arithmetic peak
and copy bandwidth, with the kernels of cuda/micro.cu compiled by lockstep's own loader.

    python bench/gpu_micro.py [--json FILE] [--dtype float32|float64]   # on an NVIDIA GPU
    python bench/gpu_micro.py --emu                                     # SIMT emulator: checks
                                                                        # the script, times nothing useful
Napkin math: micro_muladd does iters * 8 links * 2 flops per thread; micro_copy moves
2 * n * itemsize bytes. The strategy scripts (lstm_forward.py, lstm_backward.py) report their
GFLOP/s and GB/s as fractions of these measured peaks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


class Gpu:
    """CuPy: cubins from lockstep.cuda_build (never RawModule(code=...): it adds -ftz=true)."""

    def __init__(self):
        import cupy

        from lockstep import cuda_build

        self.cp = cupy
        self.mod = cuda_build.load_module("micro")
        self.coop = cuda_build.load_module("micro", cooperative=True)
        dev = cupy.cuda.Device()
        self.sm = dev.attributes["MultiProcessorCount"]
        self.name = cupy.cuda.runtime.getDeviceProperties(dev.id)["name"].decode()
        self.xp = cupy

    def launch(self, name, grid, block, args, cooperative=False):
        (self.coop if cooperative else self.mod).get_function(name)((grid,), (block,), tuple(args))

    def time(self, fn, reps=1):
        """Seconds per call of fn(), measured with CUDA events around ``reps`` calls."""
        fn()
        self.cp.cuda.Device().synchronize()
        start, stop = self.cp.cuda.Event(), self.cp.cuda.Event()
        start.record()
        for _ in range(reps):
            fn()
        stop.record()
        stop.synchronize()
        return self.cp.cuda.get_elapsed_time(start, stop) / 1e3 / reps


class Emu:
    """The SIMT emulator: validates the kernels and this script on a CPU-only machine."""

    name = "SIMT emulator (lockstep._simt)"
    sm = 2
    xp = np

    def __init__(self):
        from lockstep import _simt

        self.simt = _simt

    def launch(self, name, grid, block, args, cooperative=False):
        self.simt.launch(name, grid, block, args, 0, cooperative)

    def time(self, fn, reps=1):
        fn()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t0) / reps


def run(dev, dtype="float32", small=False):
    xp = dev.xp
    dt = np.dtype(dtype)
    s = "_f32" if dt == np.float32 else "_f64"
    out = {"device": dev.name, "dtype": dt.name}
    y = xp.zeros(1, dt)

    # Launch latency: back-to-back launches of an empty kernel (enqueue + execute).
    reps = 20 if small else 5000
    out["launch_us"] = 1e6 * dev.time(lambda: dev.launch("micro_noop" + s, 1, 1, [y]), reps)

    # Grid barrier: one block per SM, all resident; (t(iters) - t(0)) / iters.
    bar = xp.zeros(2, np.uint32)
    iters = 10 if small else 2000
    threads = 32 if small else 256
    t_k = dev.time(lambda: dev.launch("micro_barrier" + s, dev.sm, threads,
                                      [bar, np.int32(iters), y], cooperative=True))
    if float((y.get() if hasattr(y, "get") else y)[0]) != iters:
        raise RuntimeError("micro_barrier did not run to completion")
    t_0 = dev.time(lambda: dev.launch("micro_barrier" + s, dev.sm, threads,
                                      [bar, np.int32(0), y], cooperative=True))
    out["grid_barrier_us"] = 1e6 * max(t_k - t_0, 0.0) / iters
    out["grid_barrier_blocks"] = dev.sm

    # No-FMA arithmetic peak.
    n = 4 * 32 if small else dev.sm * 2048 * 4
    it = 8 if small else 4096
    buf = xp.zeros(n, dt)
    t = dev.time(lambda: dev.launch("micro_muladd" + s, -(-n // 128), 128,
                                    [buf, np.int32(it), np.int64(n)]), 1 if small else 5)
    out["muladd_gflops"] = n * it * 8 * 2 / t / 1e9

    # Copy bandwidth.
    n = 1 << (10 if small else 27)
    a, b = xp.ones(n, dt), xp.zeros(n, dt)
    t = dev.time(lambda: dev.launch("micro_copy" + s, dev.sm * 8, 256, [a, b, np.int64(n)]),
                 1 if small else 10)
    if not bool((b == a).all()):
        raise RuntimeError("micro_copy copied wrong values")
    out["copy_gbs"] = 2 * n * dt.itemsize / t / 1e9
    return out


def resources():
    """Every cuda/*.cu kernel as the driver loaded it: registers, local and static shared
    memory (cuFuncGetAttribute through CuPy) beside lockstep/gpu_resources.json for this
    device's architecture (made by `python -m lockstep.sass --write-docs` on the CPU machine).
    Returns (rows, mismatches)."""
    from lockstep import cuda_build, sass

    arch = cuda_build.device_arch()
    table = sass.load_resources()["kernels"]
    known = table.get(arch)
    rows, bad = [], []
    for name in sass.cuda_sources():
        mod = cuda_build.load_module(name, cooperative=name == "lstm_persistent")
        ptx = sass.nvrtc_module(name, arch)[1]
        for k in cuda_build.ptx_functions(ptx):
            fn = mod.get_function(k)
            got = {"regs": fn.num_regs, "local": fn.local_size_bytes,
                   "shared": fn.shared_size_bytes}
            want = (known or {}).get(k)
            row = {"kernel": k, "arch": arch, **got, "table": want}
            rows.append(row)
            if got["local"]:
                bad.append(f"{k}: {got['local']} bytes of local memory (a spill)")
            if want and any(got[f] != want[f] for f in ("regs", "shared", "local")):
                bad.append(f"{k}: loaded {got}, table {want}")
    return rows, bad


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--emu", action="store_true", help="run on the SIMT emulator (no GPU)")
    ap.add_argument("--resources", action="store_true",
                    help="compare the loaded kernels' registers and shared memory with "
                         "lockstep/gpu_resources.json instead of timing")
    args = ap.parse_args(argv)
    if args.resources:
        rows, bad = resources()
        arch = rows[0]["arch"] if rows else "?"
        print(f"{len(rows)} kernels loaded for {arch}; "
              + ("table has no entry for this arch" if rows and rows[0]["table"] is None
                 else f"{len(bad)} differ from lockstep/gpu_resources.json"))
        for b in bad:
            print("  " + b)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=2)
        return 1 if bad else 0
    dev = Emu() if args.emu else Gpu()
    results = [run(dev, dt, small=args.emu) for dt in ("float32", "float64")]
    for r in results:
        print(f"{r['device']} {r['dtype']}: launch {r['launch_us']:.2f} us | grid barrier "
              f"{r['grid_barrier_us']:.2f} us ({r['grid_barrier_blocks']} blocks) | no-FMA peak "
              f"{r['muladd_gflops']:.1f} GFLOP/s | copy {r['copy_gbs']:.1f} GB/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
