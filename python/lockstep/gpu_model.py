"""A GPU cost model: the SIMT emulator's counter records (docs/cuda.md, "Cost counters") ->
a predicted time on a named GPU.

The model, per kernel launch (one counter record):

    DRAM    = dram_bytes / dram_bw, where dram_bytes = footprint = 32 * unique_sectors (loads
              + stores) when the launch's footprint fits in L2; beyond it the re-reads (32 *
              sectors - footprint) miss with probability 1 - L2 / footprint, so dram_bytes
              grows from the footprint towards 32 * sectors (every request from DRAM) as the
              footprint outgrows L2 (a step at L2 would charge a launch just past 50 MB all its
              L2 traffic, although most of it re-reads a small hot set)
    L2      = 32 * sectors (loads + stores) / l2_bw
    FP      = f32 ops / f32_rate + f64 ops / f64_rate; every counted operation (add, mul, div,
              sqrt, cmp) is one op, and the rate is the no-FMA one (one add or one mul per
              lane per cycle: half the FMA-counted peak)
    shared  = shared-memory wavefronts (loads + stores) / (SMs * clock), one 128-byte
              wavefront per SM per cycle
    serial  = waves * max_thread_flops * dep_latency / clock: the busiest thread's operations
              as one dependent chain (a sequential sum is one), once per wave of blocks, where
              waves = ceil(blocks / (SMs * resident blocks per SM)) and the resident blocks
              per SM are the real occupancy: the registers and static shared memory ptxas gave
              the kernel (gpu_resources.json, `python -m lockstep.sass --write-docs`) with the
              launch's block size and dynamic shared memory (`sass.occupancy`); a kernel the
              table lacks counts as one wave
    occupancy: a launch of blocks < SMs keeps only `blocks` SMs busy, so the four throughput
              terms (DRAM, L2, FP, shared) are multiplied by SMs / blocks
    time    = launch + grid_syncs * grid_barrier + max(DRAM, L2, FP, shared, serial)

a max-of-terms roofline per launch, summed over the launches. The step's roofline is
max(all DRAM bytes / dram_bw, all ops / rate): what the step would take with every launch
overlapped perfectly and no latency; roofline / predicted is the fraction of it reached.

Limits (what the model does not see): L2 reuse *between* launches (every launch pays its own
DRAM footprint, so a weight matrix read by T step kernels is counted T times even when it stays
in the 50 MB L2: pessimistic for small models), L1 hits (every request is L2 traffic), the
temporal locality inside a launch beyond the footprint rule above, memory latency in a
dependent chain (a thread that waits for each load is not charged), warps with few active
lanes (FP counts lane operations, not issued warp instructions), the tail of a grid that does
not fill whole waves (beyond the serial term's whole waves), instruction issue, latency hiding
by the resident warps (the occupancy only sets the waves), and the instruction sequence behind one
division or square root (one op each). The launch latency is added to every launch, not
overlapped with the previous kernel (pessimistic by up to launch_s for long kernels), and the
occupancy correction gives a small grid only its SMs' share of L2 and DRAM bandwidth, although
a lone SM can draw more than 1/132 of it (pessimistic for grids of a few blocks). It is a
comparison tool for strategies whose counts differ by orders of magnitude, not a simulator;
bench/gpu_micro.py and bench/device_check.sh measure the latencies and peaks on a lent GPU, and
`GpuSpec.calibrated(micro)` puts those measurements in place of the published figures.

Counting a long sequence on the emulator is slow, so `extrapolate` builds the records of a
T-step run from runs at T1 < T2 < T steps and a dry run (no kernel executes) at T: launches
whose signature (kernel, geometry, scalar arguments) the T2 run also has (the per-step kernels
and every launch that does not depend on T) take its records as they are; the few launches
whose scalar arguments depend on T (whole-sequence GEMMs, the persistent kernels, the loss
rows) get every counter extrapolated linearly from T1 and T2 and their geometry from the dry
run. tests/test_gpu_model.py shows the result equals a direct count on tiny shapes: geometry
and memory counters exactly when T*B fills whole GEMM tiles (B a multiple of 256; otherwise a
tiled GEMM over T*B rows reloads its other operand once per row tile, a step function of T,
and the extrapolation is off by up to one tile's share), flops within 1% (the canonical
exp/tanh take data-dependent
branches, so one time step's flop count differs slightly from another's; the T2 records of a
signature are averaged). Whether clipping fires is data-dependent too (it changes a few loads
of the update). Counting from T1 = 1 is not exact: a buffer reused from step to step (dcn) has
a footprint that is not linear between 1 and 2 steps, so the callers use T1 = 2, T2 = 4.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np

SECTOR = 32  # bytes


@dataclass(frozen=True)
class GpuSpec:
    """Published peaks of one GPU (rates are per second, sizes in bytes)."""

    name: str
    sms: int
    clock_hz: float
    dram_bw: float           # bytes/s
    l2_bytes: int
    l2_bw: float             # bytes/s
    f32_rate: float          # no-FMA op/s
    f64_rate: float          # no-FMA op/s
    smem_per_block: int      # opt-in shared memory per block
    launch_s: float = 3e-6   # one kernel launch, back to back in a stream
    grid_barrier_s: float = 1.5e-6
    dep_latency_cycles: float = 4.0   # a dependent FP32/FP64 add or mul
    wavefronts_per_sm_clock: float = 1.0
    notes: str = ""
    arch: str = "sm_90"      # whose registers and shared memory (gpu_resources.json) apply

    def calibrated(self, micro: dict) -> "GpuSpec":
        """This spec with the figures bench/gpu_micro.py measured (its `run` dict): launch
        latency, grid-barrier latency, copy bandwidth as DRAM bandwidth and the no-FMA peak of
        its dtype as that precision's rate."""
        kw = {"name": f"{self.name} (measured {micro.get('device', 'GPU')})"}
        if micro.get("launch_us"):
            kw["launch_s"] = micro["launch_us"] * 1e-6
        if micro.get("grid_barrier_us"):
            kw["grid_barrier_s"] = micro["grid_barrier_us"] * 1e-6
        if micro.get("copy_gbs"):
            kw["dram_bw"] = micro["copy_gbs"] * 1e9
        if micro.get("muladd_gflops"):
            kw["f64_rate" if micro.get("dtype") == "float64" else "f32_rate"] = \
                micro["muladd_gflops"] * 1e9
        return replace(self, **kw)


_GH100 = dict(sms=132, clock_hz=1.98e9, l2_bytes=50 * 10**6, l2_bw=5.5e12,
              f32_rate=33.5e12, f64_rate=17e12, smem_per_block=227 * 1024)
_NOTES = ("published (NVIDIA datasheet, SXM): 132 SMs, boost 1.98 GHz, FP32 67 and FP64 34 "
          "TFLOP/s counted with FMA = 2 (so 33.5 and 17 T op/s without FMA), 50 MB L2, 227 KiB "
          "opt-in shared memory per block; ASSUMED: L2 bandwidth 5.5 TB/s (NVIDIA publishes "
          "none; third-party microbenchmarks of GH100 measure about this), launch 3 us back to "
          "back (the usual figure for CUDA launches from a host stream), grid barrier 1.5 us "
          "(an atomic counting barrier over 132 blocks: a few L2 round trips), dependent add/mul "
          "4 cycles, shared memory one 128-byte wavefront per SM per cycle; bench/gpu_micro.py "
          "measures launch and barrier latency")
MODELS = {
    "h200": GpuSpec("NVIDIA H200 SXM (model)", dram_bw=4.8e12, notes="HBM3e 4.8 TB/s; " + _NOTES,
                    **_GH100),
    "h100": GpuSpec("NVIDIA H100 SXM (model)", dram_bw=3.35e12, notes="HBM3 3.35 TB/s; " + _NOTES,
                    **_GH100),
}

TERMS = ("dram", "l2", "fp", "shared", "serial")  # inside the max
OVERHEADS = ("launch", "barrier")                 # added to it


def get(name: str) -> GpuSpec:
    from .config import ConfigError

    try:
        return MODELS[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown GPU model {name!r}; choose from {', '.join(MODELS)}") from None


def _ops(d: dict) -> int:
    return sum(int(v) for v in d.values())


def launch_cost(rec: dict, gpu: GpuSpec) -> dict:
    """The model's numbers for one launch: every value is additive over launches (seconds,
    bytes, ops, counts), plus ``bound``, the name of the term that set its time."""
    ld, st = rec["global"]["load"], rec["global"]["store"]
    sectors = ld["sectors"] + st["sectors"]
    footprint = SECTOR * (ld["unique_sectors"] + st["unique_sectors"])
    dram = footprint  # every sector once: the launch's data stays in L2 ...
    if footprint > gpu.l2_bytes:  # ... unless it does not fit: re-reads miss more and more
        dram += (SECTOR * sectors - footprint) * (1 - gpu.l2_bytes / footprint)
    f32, f64 = _ops(rec["flops"]["f32"]), _ops(rec["flops"]["f64"])
    sh = rec["shared"]
    wavefronts = sh["load"]["wavefronts"] + sh["store"]["wavefronts"]
    blocks = math.prod(rec["grid"])
    occ = max(1.0, gpu.sms / max(blocks, 1))
    bps = resident_blocks(rec, gpu)
    waves = -(-blocks // (gpu.sms * bps)) if bps else 1
    t = {"dram": dram / gpu.dram_bw * occ,
         "l2": SECTOR * sectors / gpu.l2_bw * occ,
         "fp": (f32 / gpu.f32_rate + f64 / gpu.f64_rate) * occ,
         "shared": wavefronts / (gpu.sms * gpu.clock_hz * gpu.wavefronts_per_sm_clock) * occ,
         "serial": waves * rec["max_thread_flops"] * gpu.dep_latency_cycles / gpu.clock_hz,
         "launch": gpu.launch_s,
         "barrier": rec["grid_syncs"] * gpu.grid_barrier_s}
    bound = max(TERMS, key=lambda k: t[k])
    row = {"launches": 1, "grid_syncs": rec["grid_syncs"], "dram_bytes": dram,
           "l2_bytes": SECTOR * sectors, "f32_ops": f32, "f64_ops": f64,
           "sectors": sectors, "min_sectors": ld["min_sectors"] + st["min_sectors"],
           "wavefronts": wavefronts,
           "min_wavefronts": sh["load"]["min_wavefronts"] + sh["store"]["min_wavefronts"],
           "low_occupancy": int(occ > 1), "waves": waves}
    row.update({f"t_{k}": v for k, v in t.items()})
    row["t"] = t["launch"] + t["barrier"] + t[bound]
    row["bound"] = bound
    return row


def resident_blocks(rec: dict, gpu: GpuSpec):
    """Blocks of this launch one SM holds at once, from the kernel's real registers and static
    shared memory on ``gpu.arch`` (lockstep.sass), or None when the table lacks the kernel."""
    from . import sass

    res = sass.kernel_resources(rec["kernel"], gpu.arch)
    if res is None:
        return None
    occ = sass.occupancy(res["regs"], res["shared"], math.prod(rec["block"]),
                         int(rec.get("shared_mem", 0)))
    return occ["blocks_per_sm"] or None


def predict(records, gpu: GpuSpec | str) -> dict:
    """Sum the per-launch model over ``records``: terms, counts, predicted seconds, the step's
    roofline and the fraction of it reached, and per kernel the predicted seconds."""
    gpu = get(gpu) if isinstance(gpu, str) else gpu
    tot = defaultdict(float)
    bound = defaultdict(float)
    kernels = defaultdict(lambda: {"launches": 0, "t": 0.0})
    for rec in records:
        row = launch_cost(rec, gpu)
        for k, v in row.items():
            if k != "bound":
                tot[k] += v
        bound[row["bound"]] += row[f"t_{row['bound']}"]
        kn = kernels[rec["kernel"]]
        kn["launches"] += 1
        kn["t"] += row["t"]
    ops = tot["f32_ops"] + tot["f64_ops"]
    roof = max(tot["dram_bytes"] / gpu.dram_bw,
               tot["f32_ops"] / gpu.f32_rate + tot["f64_ops"] / gpu.f64_rate)
    pred = tot["t"]
    return {
        "gpu": gpu.name, "launches": int(tot["launches"]), "grid_syncs": int(tot["grid_syncs"]),
        "dram_bytes": tot["dram_bytes"], "l2_bytes": tot["l2_bytes"], "ops": ops,
        "f32_ops": tot["f32_ops"], "f64_ops": tot["f64_ops"],
        "coalescing": tot["sectors"] / tot["min_sectors"] if tot["min_sectors"] else None,
        "bank_conflicts": (tot["wavefronts"] / tot["min_wavefronts"]
                           if tot["min_wavefronts"] else None),
        "low_occupancy_launches": int(tot["low_occupancy"]),
        "terms_s": {k: tot[f"t_{k}"] for k in TERMS + OVERHEADS},
        "bound_s": dict(bound),
        "predicted_s": pred, "roofline_s": roof,
        "roofline_fraction": roof / pred if pred else None,
        "kernels": {k: dict(v) for k, v in sorted(kernels.items(), key=lambda kv: -kv[1]["t"])},
    }


# ---- recording launches: counted runs and dry runs ---------------------------------------

def signature(name, grid, block, args, shared_mem=0, cooperative=False) -> tuple:
    """What identifies "the same launch" across runs of different length: the kernel, its
    geometry and its scalar arguments (not its pointers)."""
    scalars = tuple(a.item() if isinstance(a, np.generic) else a for a in args
                    if isinstance(a, (int, float, np.generic)))
    return (name, _dim3(grid), _dim3(block), int(shared_mem), bool(cooperative), scalars)


def _dim3(d):
    d = tuple(int(v) for v in (d if isinstance(d, (tuple, list)) else (d,)))
    return d + (1,) * (3 - len(d))


class Recorder:
    """Replaces ``dev.launch`` of a cuda-raw device for the duration of a ``with``: records
    every launch's signature, and runs it (``execute=True``) or not (a dry run)."""

    def __init__(self, dev, execute=True):
        self.dev, self.execute, self.sigs = dev, execute, []

    def __enter__(self):
        orig = self.dev.launch

        def launch(name, grid, block, args, shared_mem=0, cooperative=False):
            self.sigs.append(signature(name, grid, block, args, shared_mem, cooperative))
            if self.execute:
                orig(name, grid, block, args, shared_mem, cooperative)

        self.dev.launch = launch
        return self

    def __exit__(self, *exc):
        del self.dev.launch  # the class's method again
        return False


def count(dev, fn):
    """Run ``fn()`` (which launches on the emulator device ``dev``) with the cost counters on:
    (fn's result, the launch records, each with its ``signature``)."""
    from . import _simt

    _simt.take_counters()
    _simt.set_counting(True)
    try:
        with Recorder(dev) as rec:
            result = fn()
    finally:
        _simt.set_counting(False)
    recs = _simt.take_counters()
    if len(recs) != len(rec.sigs) or any(r["kernel"] != s[0] for r, s in zip(recs, rec.sigs)):
        raise RuntimeError(f"{len(recs)} counter records for {len(rec.sigs)} launches")
    for r, s in zip(recs, rec.sigs):
        r["signature"] = s
    return result, recs


def dry_run(dev, fn):
    """The launch signatures ``fn()`` would issue, without running any kernel."""
    with Recorder(dev, execute=False) as rec:
        fn()
    return rec.sigs


# ---- extrapolation in T ------------------------------------------------------------------

_GEOMETRY = ("kernel", "grid", "block", "shared_mem", "cooperative", "threads", "warps",
             "signature")


def _lerp(a, b, f):
    """a + f * (b - a) over the numbers of two records of the same shape (ints rounded)."""
    if isinstance(a, dict):
        return {k: _lerp(a[k], b[k], f) for k in a}
    if isinstance(a, list):
        return [_lerp(x, y, f) for x, y in zip(a, b)]
    if isinstance(a, bool) or not isinstance(a, (int, float)):
        return a
    v = a + f * (b - a)
    return int(round(v)) if isinstance(a, int) else v


def _with_geometry(rec, sig):
    name, grid, block, smem, coop, _ = sig
    out = dict(rec)
    tpb = math.prod(block)
    out.update(kernel=name, grid=tuple(grid), block=tuple(block), shared_mem=smem,
               cooperative=coop, threads=math.prod(grid) * tpb,
               warps=math.prod(grid) * -(-tpb // 32), signature=sig)
    return out


def _args_lerp(a, b, f):
    """Per-argument counts: matched by argument index; an index only one run has is dropped."""
    bi = {x["index"]: x for x in b}
    return [_lerp(x, bi[x["index"]], f) for x in a if x["index"] in bi]


def extrapolate(run1, run2, dry, T):
    """Records of a T-step run from counted runs ``run1 = (T1, records)``, ``run2 = (T2,
    records)`` (T1 < T2, records with signatures from `count`) and the signatures of a dry run
    at T (`dry_run`). Returns (records, info) where info says how many launches were taken
    as counted and how many were extrapolated."""
    (T1, r1), (T2, r2) = run1, run2
    if not T1 < T2:
        raise ValueError(f"extrapolate needs T1 < T2, got {T1}, {T2}")
    f = (T - T1) / (T2 - T1)
    by_sig = defaultdict(list)
    for r in r2:
        by_sig[r["signature"]].append(r)
    dry_set = set(dry)
    var1 = defaultdict(list)  # per kernel: the launches whose signature depends on T
    var2 = defaultdict(list)
    for r in r1:
        if r["signature"] not in by_sig:
            var1[r["kernel"]].append(r)
    for r in r2:
        if r["signature"] not in dry_set:
            var2[r["kernel"]].append(r)
    vardry = defaultdict(list)
    for s in dry:
        if s not in by_sig:
            vardry[s[0]].append(s)
    for k in set(var1) | set(var2) | set(vardry):
        n = (len(var1[k]), len(var2[k]), len(vardry[k]))
        if len(set(n)) != 1:
            raise ValueError(f"cannot extrapolate {k}: its launches that depend on T number "
                             f"{n[0]} at T={T1}, {n[1]} at T={T2} and {n[2]} at T={T}")
    out, used, lerped = [], defaultdict(int), 0
    for s in dry:
        same = by_sig.get(s)
        if same:
            out.append(copy.deepcopy(same[0] if len(same) == 1 else _mean(same)))
            continue
        i = used[s[0]]
        used[s[0]] += 1
        a, b = var1[s[0]][i], var2[s[0]][i]
        rec = {k: _lerp(a[k], b[k], f) for k in a if k not in _GEOMETRY and k != "args"}
        rec["args"] = _args_lerp(a.get("args", []), b.get("args", []), f)
        out.append(_with_geometry(rec, s))
        lerped += 1
    return out, {"T1": T1, "T2": T2, "T": T, "launches": len(out),
                 "launches_as_counted": len(out) - lerped, "launches_extrapolated": lerped}


def _mean(recs):
    """The element-wise mean of records that share a signature (equal when the arrays of
    every time step start on the same sector boundary, as on the shapes that matter)."""
    def avg(*xs):
        x0 = xs[0]
        if isinstance(x0, dict):
            return {k: avg(*(x[k] for x in xs)) for k in x0}
        if isinstance(x0, list):
            return [avg(*v) for v in zip(*xs)]
        if isinstance(x0, bool) or not isinstance(x0, (int, float)):
            return x0
        return int(round(sum(xs) / len(xs)))
    return avg(*recs)
