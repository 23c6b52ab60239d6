"""Training-step time of backend "cpu" (lockstep._cpu) against torch.nn.LSTM + Linear + SGD and
the NumPy reference, float32, measured alternately in one run (a script, not a test).

Alternation is in bursts (--burst, default 5 consecutive steps per implementation, 9 rounds):
every implementation sees the same machine state over the run, and the median step sees warm
caches as in training. --burst 1 alternates step by step.

    python bench/cpu_vs_torch.py [--threads 2] [--reps 7] [--sizes seed,h128,h256,h512]

One step = forward over T steps, MSE on every step, backpropagation through time, SGD update,
on one (T, B, I) batch. "cpu" is called through its engine with one batch per call (so its time
includes the Python call and the batch gather); torch runs zero_grad/forward/loss/backward/step.
Before timing, the cpu engine is checked bit for bit against reference.train_step on a small
problem (validate before timing).

GFLOP/s counts the matrix products only: forward gates 2*T*B*4H*(I+H), backward dh
2*T*B*4H*H, weight gradients 2*T*B*4H*(I+H+1), plus the head 6*T*B*H*O; a stacked layer adds
its own three terms with I = H and the dh it sends below, 2*T*B*4H*H; element-wise work
(the canonical sigmoid/tanh) is not counted. The no-FMA peak comes from a micro-kernel in
this file (separate vector multiply and add chains, -mavx2 or -mavx512f without -mfma,
-ffp-contract=off), compiled at run time with the system C compiler for 256- and (where the CPU
has AVX-512) 512-bit vectors: 2 flops per lane per multiply+add pair; the better width is the
machine's no-FMA peak. --isas avx2 also times the engine's AVX2 unit beside the default one.

Peak memory is measured in a fresh child process per implementation and size: the growth of
its peak RSS (ru_maxrss) over a warm-up plus 3 steps, relative to its RSS after the imports and
the data were created; for "cpu" the engine's own buffer bytes are printed too.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

# The NumPy reference uses no BLAS: keep OpenBLAS from starting (spinning) threads that would
# compete with the two OpenMP runtimes (lockstep's libgomp and torch's) on a small machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

SIZES = {  # name: (I, H, T, B) or (I, H, T, B, layers)
    "seed": (1, 50, 12, 32),
    "h128": (1, 128, 24, 64),
    "h128x2": (1, 128, 24, 64, 2),  # two stacked layers
    "h256": (1, 256, 48, 64),
    "h512": (32, 512, 64, 64),
    "h64": (1, 64, 24, 64),  # h64 .. h1024: GFLOP/s across H (time growing no faster than FLOPs)
    "h1024": (32, 1024, 16, 64),
}
DTYPE = np.float32  # --dtype


def size(name):
    """(I, H, T, B, layers) of a size."""
    v = SIZES[name]
    return v if len(v) == 5 else (*v, 1)
O = 1
LR = 0.01

PEAK_SRC = r"""
#include <omp.h>
#ifndef REAL
#define REAL float
#endif
#ifndef VBYTES
#define VBYTES 32
#endif
#define LANES (VBYTES / (int)sizeof(REAL))
typedef REAL v8 __attribute__((vector_size(VBYTES)));
/* Per thread 6 independent multiply chains (x = x*m, then x = x*minv: values stay bounded) and
   6 independent add chains (a = a + c, then a = a - c), all in place: 12 vector registers plus
   4 constants, no temporaries, so no spills; 6 chains cover the 3-cycle latency of 2 mul and
   2 add pipes. 24 vector operations per iteration, separate mul and add: compiled with -mavx2
   or -mavx512f (VBYTES 32 or 64; neither enables FMA) and -ffp-contract=off. Returns a sum to
   keep everything live. Every constant and start value comes from the arguments: with
   compile-time ones the compiler folds (a + c) - c (exact for them) and drops the add chains
   (the kernel before 2026-12-03 did, and its "peak" counted adds that never ran). */
#define CH(X) X(0) X(1) X(2) X(3) X(4) X(5)
double peak(long iters, REAL m, REAL minv, int threads, REAL half) {
  double total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    const v8 vm = (v8){} + m, vi = (v8){} + minv, c = (v8){} + half;
#define INIT(i) v8 x##i = (v8){} + (REAL)(1.0f + 0.01f * i), a##i = (v8){} + (REAL)i * m;
    CH(INIT)
    for (long it = 0; it < iters; ++it) {
#define STEP1(i) x##i = x##i * vm; a##i = a##i + c;
#define STEP2(i) x##i = x##i * vi; a##i = a##i - c;
      CH(STEP1)
      CH(STEP2)
    }
#define SUM(i) for (int l = 0; l < LANES; ++l) total += a##i[l] + x##i[l];
    CH(SUM)
  }
  return total;
}
"""


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return []


# vector width in bytes -> compiler flag of the peak micro-kernel (the widths the engine uses)
PEAK_WIDTHS = {32: "-mavx2", 64: "-mavx512f"}


def measure_peak(threads, vbytes=32):
    """No-FMA peak of the working dtype (DTYPE) in GFLOP/s on vbytes-wide vectors (None if no
    compiler or the CPU lacks the width): best of 8."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return None, "micro-kernel is x86-64 only"
    if vbytes == 64 and "avx512f" not in _cpu_flags():
        return None, "no AVX-512 on this CPU"
    d = tempfile.mkdtemp(prefix="ls_peak_")
    src, lib = os.path.join(d, "peak.c"), os.path.join(d, "peak.so")
    real = "double" if DTYPE == np.float64 else "float"
    with open(src, "w") as f:
        f.write(PEAK_SRC)
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-O3", PEAK_WIDTHS[vbytes], "-ffp-contract=off", "-fno-fast-math", "-fopenmp",
           "-shared", "-fPIC", f"-DREAL={real}", f"-DVBYTES={vbytes}", src, "-o", lib]
    try:
        subprocess.run(cmd, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        return None, f"cannot compile the micro-kernel: {e}"
    fn = ctypes.CDLL(lib).peak
    fn.restype = ctypes.c_double
    c_real = ctypes.c_double if real == "double" else ctypes.c_float
    fn.argtypes = [ctypes.c_long, c_real, c_real, ctypes.c_int, c_real]
    lanes = vbytes // np.dtype(DTYPE).itemsize
    iters = 2_000_000
    best = 0.0
    for _ in range(8):
        t0 = time.perf_counter()
        fn(iters, 1.0001, 1 / 1.0001, threads, 0.5)
        dt = time.perf_counter() - t0
        best = max(best, threads * iters * 24 * lanes / dt / 1e9)  # 24 vector ops
    return best, " ".join(cmd[:5])


def machine_peak(threads):
    """{width: GFLOP/s} of every vector width, the best (the machine's no-FMA peak), and how the
    256-bit kernel was compiled."""
    runs = {w: measure_peak(threads, w) for w in PEAK_WIDTHS}
    got = {w: v for w, (v, _) in runs.items() if v}
    return got, (max(got.values()) if got else None), runs[32][1]


def flops(I, H, T, B, L=1):
    layer = lambda K: 2 * T * B * 4 * H * (K + H) + 2 * T * B * 4 * H * H \
        + 2 * T * B * 4 * H * (K + H + 1)  # noqa: E731 - forward, dh, weight gradients
    return layer(I) + (L - 1) * (layer(H) + 2 * T * B * 4 * H * H) + 6 * T * B * H * O


def make_data(I, H, T, B, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I)).astype(DTYPE)
    y = rng.standard_normal((T, B, O)).astype(DTYPE)
    return x, y


# ---- implementations: each returns a zero-argument step function -------------------------

def make_cpu(I, H, T, B, x, y, L=1, isa="auto"):
    from lockstep import _cpu, reference
    from lockstep.config import ModelConfig
    p = reference.init_params(ModelConfig(I, H, O, num_layers=L), DTYPE, seed=0)
    Eng = _cpu.EngineF64 if DTYPE == np.float64 else _cpu.EngineF32
    e = Eng(I, H, O, num_layers=L, loss="mse", optimizer="sgd", lr=LR, isa=isa)
    for n in reference.param_names(L):
        e.set("params", n, p[n])
    idx = [np.arange(B)]
    return (lambda: e.train_epoch(x, y, idx)), e


def make_numpy(I, H, T, B, x, y, L=1):
    from lockstep import reference
    from lockstep.config import ModelConfig, TrainConfig
    tc = TrainConfig(loss="mse", optimizer="sgd", lr=LR, batch_size=B)
    state = {"p": reference.init_params(ModelConfig(I, H, O, num_layers=L), DTYPE, seed=0)}
    state["o"] = reference.init_opt_state(state["p"], tc)

    def step():
        _, state["p"], state["o"] = reference.train_step(state["p"], state["o"], x, y, tc)
    return step, None


def make_torch(I, H, T, B, x, y, threads, L=1):
    import torch
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = True
    torch.manual_seed(0)
    lstm, lin = torch.nn.LSTM(I, H, num_layers=L), torch.nn.Linear(H, O)
    if DTYPE == np.float64:
        lstm, lin = lstm.double(), lin.double()
    params = list(lstm.parameters()) + list(lin.parameters())
    opt = torch.optim.SGD(params, lr=LR)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    mse = torch.nn.MSELoss()

    def step():
        torch.set_num_threads(threads)  # "torch-1t" and "torch" alternate in one process
        opt.zero_grad(set_to_none=True)
        out, _ = lstm(xt)
        loss = mse(lin(out), yt)
        loss.backward()
        opt.step()
    return step, None


def n_reps(t):
    return f"  [{len(t)} reps]"


def make(impl, I, H, T, B, x, y, threads, L=1):
    if impl == "cpu":
        return make_cpu(I, H, T, B, x, y, L)
    if impl.startswith("cpu-"):  # the engine on another kernel unit (--isas)
        return make_cpu(I, H, T, B, x, y, L, isa=impl[4:])
    if impl == "numpy":
        return make_numpy(I, H, T, B, x, y, L)
    return make_torch(I, H, T, B, x, y, 1 if impl == "torch-1t" else threads, L)


def validate():
    """The engine equals reference.train_step bit for bit on small problems (3 steps; one
    layer and a stack of two)."""
    from lockstep import _cpu, reference
    from lockstep.config import ModelConfig, TrainConfig
    I, H, T, B = 2, 13, 5, 7
    x, y = make_data(I, H, T, B, seed=1)
    for L in (1, 2):
        mc = ModelConfig(I, H, O, num_layers=L)
        tc = TrainConfig(loss="mse", optimizer="sgd", lr=LR, batch_size=B)
        p = reference.init_params(mc, DTYPE, seed=1)
        o = reference.init_opt_state(p, tc)
        Eng = _cpu.EngineF64 if DTYPE == np.float64 else _cpu.EngineF32
        e = Eng(I, H, O, num_layers=L, loss="mse", optimizer="sgd", lr=LR)
        for n in reference.param_names(L):
            e.set("params", n, p[n])
        for _ in range(3):
            loss, p, o = reference.train_step(p, o, x, y, tc)
            got = e.train_epoch(x, y, [np.arange(B)])[0]
            assert got.tobytes() == loss.tobytes(), (L, got, loss)
        for n in reference.param_names(L):
            assert e.get("params", n).tobytes() == p[n].tobytes(), (L, n)


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_child(impl, name, threads):
    """Run in a fresh process: print JSON with the peak-RSS growth of one implementation.

    The baseline is the RSS after the imports and the data; then the kernel's peak-RSS mark
    is reset (/proc/self/clear_refs, "5") and VmHWM after the steps is the peak."""
    I, H, T, B, L = size(name)
    x, y = make_data(I, H, T, B)
    if impl == "torch":
        import torch
        torch.set_num_threads(threads)
    else:
        from lockstep import _cpu, reference  # noqa: F401
        _cpu.set_num_threads(threads)
    base = _status_kib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        how = "VmHWM after clear_refs"
    except OSError:
        how = "ru_maxrss (not reset: includes the imports)"
    step, eng = make(impl, I, H, T, B, x, y, threads, L)
    for _ in range(1 if impl == "numpy" and H >= 256 else 4):
        step()
    peak = _status_kib("VmHWM") if how.startswith("VmHWM") else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rss_mib": max(peak - base, 0) / 1024, "how": how,
                      "engine_mib": eng.bytes / 2**20 if eng is not None else None}))


def peak_memory(impl, size, threads):
    cmd = [sys.executable, __file__, "--rss-child", impl, size, "--threads", str(threads),
           "--dtype", np.dtype(DTYPE).name]
    r = subprocess.run(cmd, capture_output=True, text=True,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"rss_mib": float("nan"), "engine_mib": None, "error": r.stderr[-300:]}


PHASES = ("inproj", "rec_gemm", "rec_cell", "rec_sync", "head", "loss", "bwd_pack", "bwd_gemm",
          "bwd_cell", "bwd_sync", "wgrad", "natural", "dh_above", "optim", "repack")


def profile(args):
    """Where a training step's time goes (thread 0's clock, LOCKSTEP_CPU_PROFILE=1): a phase
    that ends in a barrier includes the wait for the other threads."""
    os.environ["LOCKSTEP_CPU_PROFILE"] = "1"
    from lockstep import _cpu
    _cpu.set_num_threads(args.threads, adaptive=args.adaptive)
    print(f"# cpu engine profile, {args.dtype}, {args.threads} threads, ms per step "
          f"(% of the step); load average {os.getloadavg()[0]:.2f}")
    out = []
    for name in args.sizes.split(","):
        I, H, T, B, L = size(name)
        x, y = make_data(I, H, T, B)
        step, e = make_cpu(I, H, T, B, x, y, L)
        for _ in range(3):
            step()
        e.profile(reset=True)
        n = max(5, args.reps * args.burst)
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        wall = (time.perf_counter() - t0) / n
        prof = {k: v / n for k, v in e.profile().items()}
        tot = sum(prof.values())
        parts = "  ".join(f"{k} {prof[k] * 1e3:.3f} ({prof[k] / tot * 100:.0f}%)"
                          for k in PHASES if prof[k] > 0.005 * tot)
        print(f"{name:6s} step {wall * 1e3:.3f} ms (phases {tot * 1e3:.3f}): {parts}")
        out.append({"size": name, "wall_s": wall, "phases_s": prof})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "dtype": args.dtype, "profile": out}, f, indent=1)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--numpy-budget", type=float, default=60.0,
                    help="seconds of NumPy-reference timing per size at most (fewer reps)")
    ap.add_argument("--burst", type=int, default=5,
                    help="consecutive steps of one implementation before switching (the median "
                         "over all steps then reflects warm caches, as in training; 1 = strict "
                         "step-by-step alternation, where each step starts with the caches the "
                         "other library left)")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--torch-1t", action="store_true",
                    help="also time torch on one thread (shows what a loaded machine does to "
                         "torch's per-operation OpenMP barriers)")
    ap.add_argument("--adaptive", action="store_true",
                    help="cpu engine: its adaptive thread rule (one thread per 8 MFLOP of a "
                         "call's products, fewer on a loaded machine; docs/cpu.md); default: "
                         "always --threads")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--isas", default="",
                    help="also time the cpu engine on these kernel units (comma-separated: base, "
                         "avx2, avx512), side by side with the default one ('cpu')")
    ap.add_argument("--no-numpy", action="store_true", help="skip the NumPy reference")
    ap.add_argument("--profile", action="store_true",
                    help="cpu engine only: seconds per phase (LOCKSTEP_CPU_PROFILE=1), no timing")
    ap.add_argument("--rss-child", nargs=2, metavar=("IMPL", "SIZE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    global DTYPE
    DTYPE = np.float64 if args.dtype == "float64" else np.float32
    if args.profile:
        return profile(args)
    if args.rss_child:
        return rss_child(*args.rss_child, args.threads)

    import torch
    from lockstep import _cpu
    _cpu.set_num_threads(args.threads, adaptive=args.adaptive)
    torch.set_num_threads(args.threads)
    validate()
    widths1, peak1, how = machine_peak(1)
    widthsn, peakn, _ = machine_peak(args.threads)
    info = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "threads": args.threads, "torch": torch.__version__, "dtype": args.dtype,
            "mkldnn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
            "isa": _cpu.isa(), "adaptive_threads": _cpu.get_adaptive_threads(),
            "load_avg": os.getloadavg(), "peak_gflops_1t": peak1,
            "peak_gflops": peakn, "peak_kernel": how,
            "peak_gflops_by_width_1t": widths1, "peak_gflops_by_width": widthsn}
    print(f"# lockstep cpu vs torch {info['torch']} (oneDNN {'on' if info['mkldnn'] else 'off'}) "
          f"vs numpy, {args.dtype}, {args.threads} threads"
          f"{' (cpu: adaptive thread count)' if info['adaptive_threads'] else ''}, "
          f"engine ISA {info['isa']}, "
          f"load average {info['load_avg'][0]:.2f}")
    if peakn:
        each = ", ".join(f"{w * 8}-bit {widths1[w]:.1f} / {widthsn.get(w, 0):.1f}" for w in widths1)
        print(f"# no-FMA peak (micro-kernel, best width): {peak1:.1f} GFLOP/s on 1 thread, "
              f"{peakn:.1f} on {args.threads} ({each})")
    print("size   (I,H,T,B[,layers])    impl     median ms   GFLOP/s  %peak  vs cpu   peak RSS MiB")
    results = []
    for name in args.sizes.split(","):
        I, H, T, B, L = size(name)
        x, y = make_data(I, H, T, B)
        impls = ("cpu",) + tuple(f"cpu-{i}" for i in args.isas.split(",") if i) + ("torch",) + \
            (("torch-1t",) if args.torch_1t else ()) + \
            (() if args.no_numpy else ("numpy",))
        steps = {impl: make(impl, I, H, T, B, x, y, args.threads, L)[0] for impl in impls}
        times = {k: [] for k in steps}
        for k, f in steps.items():  # warm-up (and the NumPy reference's cost estimate)
            t0 = time.perf_counter()
            f()
            if k == "numpy":
                times[k].append(time.perf_counter() - t0)
        # the NumPy reference is slow at the large sizes: a budget of seconds instead of reps
        # (when even the warm-up step exceeds a third of it, that step is the one sample)
        if "numpy" in steps:
            numpy_reps = max(1, min(args.reps, int(args.numpy_budget / max(times["numpy"][0], 1e-9))))
            if times["numpy"][0] < args.numpy_budget / 3:
                times["numpy"] = []
        for r in range(args.reps):
            for k, f in steps.items():  # alternate bursts: cpu x burst, torch x burst, numpy, ...
                if k == "numpy" and len(times[k]) >= numpy_reps:
                    continue
                for _ in range(1 if k == "numpy" else args.burst):
                    t0 = time.perf_counter()
                    f()
                    times[k].append(time.perf_counter() - t0)
        fl = flops(I, H, T, B, L)
        med = {k: statistics.median(v) for k, v in times.items()}
        for k in impls:
            skip = args.no_memory or k == "torch-1t" or k.startswith("cpu-")
            mem = ({"rss_mib": float("nan"), "engine_mib": None} if skip
                   else peak_memory(k, name, args.threads))
            row = {"size": name, "I": I, "H": H, "T": T, "B": B, "layers": L, "impl": k,
                   "median_s": med[k],
                   "min_s": min(times[k]), "times_s": times[k],
                   "reps": len(times[k]), "gflops": fl / med[k] / 1e9,
                   "pct_peak": (fl / med[k] / 1e9 / peakn * 100) if peakn else None,
                   "ratio_vs_cpu": med[k] / med["cpu"], **mem}
            results.append(row)
            eng = f" (engine {mem['engine_mib']:.1f})" if mem.get("engine_mib") is not None else ""
            pct = f"{row['pct_peak']:5.1f}" if peakn else "    -"
            shape = (I, H, T, B) if L == 1 else (I, H, T, B, L)
            print(f"{name:6s} {str(shape):21s} {k:8s} {med[k] * 1e3:10.3f} "
                  f"{row['gflops']:9.2f} "
                  f"{pct}  {row['ratio_vs_cpu']:6.2f}x  {mem['rss_mib']:8.1f}{eng}"
                  f"{'' if k != 'numpy' or len(times[k]) == args.reps else n_reps(times[k])}")
        sys.stdout.flush()
    # the peak again at the end: on a shared machine one of the two measurements may have met
    # another process; the larger one is the machine's
    _, p1b, _ = machine_peak(1)
    _, pnb, _ = machine_peak(args.threads)
    info["peak_gflops_1t_end"], info["peak_gflops_end"] = p1b, pnb
    if peakn and pnb:
        best = max(peakn, pnb)
        print(f"# no-FMA peak again at the end: {p1b:.1f} GFLOP/s on 1 thread, {pnb:.1f} on "
              f"{args.threads}; best {best:.1f}")
        for row in results:
            row["pct_best_peak"] = row["gflops"] / best * 100
        cpu512 = [r for r in results if r["impl"] == "cpu" and r["H"] == 512]
        for r in cpu512:
            print(f"# cpu at H=512: {r['pct_best_peak']:.1f}% of the best no-FMA peak")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
