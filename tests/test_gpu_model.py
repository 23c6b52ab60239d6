"""The GPU cost model (python/lockstep/gpu_model.py): every term on hand-made counter records
with known answers, the extrapolation in T, and `lockstep bench --device emu --model h200`
end to end on the emulator's real counters."""

import json
import math
from dataclasses import replace

import pytest

from lockstep import bench, cli, gpu_model
from lockstep.gpu_model import GpuSpec

# A round GPU so that every expected time is simple arithmetic: 10 SMs at 1 GHz.
G = GpuSpec("test", sms=10, clock_hz=1e9, dram_bw=1e12, l2_bytes=1_000_000, l2_bw=2e12,
            f32_rate=4e12, f64_rate=2e12, smem_per_block=1 << 16, launch_s=3e-6,
            grid_barrier_s=2e-6, dep_latency_cycles=4)


def _side(requests=0, sectors=0, min_sectors=None, unique=None, nbytes=0):
    return {"requests": requests, "sectors": sectors,
            "min_sectors": sectors if min_sectors is None else min_sectors, "bytes": nbytes,
            "unique_sectors": sectors if unique is None else unique}


def rec(kernel="k_f32", blocks=10, load=None, store=None, f32=None, f64=None, wavefronts=0,
        min_wavefronts=None, max_thread_flops=0, grid_syncs=0):
    ops = {"add": 0, "mul": 0, "div": 0, "sqrt": 0, "cmp": 0}
    return {"kernel": kernel, "grid": (blocks, 1, 1), "block": (256, 1, 1), "shared_mem": 0,
            "cooperative": bool(grid_syncs), "threads": blocks * 256, "warps": blocks * 8,
            "global": {"load": load or _side(), "store": store or _side()}, "args": [],
            "shared": {"load": {"requests": 0, "wavefronts": wavefronts,
                                "min_wavefronts": wavefronts if min_wavefronts is None
                                else min_wavefronts},
                       "store": {"requests": 0, "wavefronts": 0, "min_wavefronts": 0}},
            "flops": {"f32": {**ops, **(f32 or {})}, "f64": {**ops, **(f64 or {})}},
            "max_thread_flops": max_thread_flops, "syncthreads": 0, "grid_syncs": grid_syncs}


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-18)


def test_published_figures():
    h = gpu_model.MODELS["h200"]
    assert (h.sms, h.clock_hz, h.dram_bw, h.l2_bytes) == (132, 1.98e9, 4.8e12, 50 * 10**6)
    assert (h.f32_rate, h.f64_rate, h.l2_bw) == (33.5e12, 17e12, 5.5e12)
    assert (h.launch_s, h.grid_barrier_s, h.smem_per_block) == (3e-6, 1.5e-6, 227 * 1024)
    assert gpu_model.MODELS["h100"].dram_bw == 3.35e12
    # the no-FMA rate is one add or mul per FP32 lane per cycle: 128 lanes x 132 SMs x 1.98 GHz
    assert abs(h.f32_rate - 128 * 132 * 1.98e9) / h.f32_rate < 0.01
    assert "ASSUMED" in h.notes and "L2 bandwidth" in h.notes
    with pytest.raises(Exception, match="unknown GPU model"):
        gpu_model.get("a100")


def test_dram_is_the_footprint_when_it_fits_in_l2():
    # 1000 sectors of traffic over a 100-sector footprint (32 kB < 1 MB of L2)
    r = rec(load=_side(800, 800, unique=60), store=_side(200, 200, unique=40))
    c = gpu_model.launch_cost(r, G)
    assert c["dram_bytes"] == 100 * 32 and close(c["t_dram"], 3200 / 1e12)
    assert c["l2_bytes"] == 1000 * 32 and close(c["t_l2"], 32000 / 2e12)


def test_dram_beyond_l2_charges_the_missing_fraction_of_re_reads():
    # footprint 2 MB on a 1 MB L2: half of the 2 MB of re-reads miss
    fp_sectors, sectors = 62500, 125000
    r = rec(load=_side(sectors, sectors, unique=fp_sectors))
    c = gpu_model.launch_cost(r, G)
    footprint, reread = 32 * fp_sectors, 32 * (sectors - fp_sectors)
    assert close(c["dram_bytes"], footprint + reread * (1 - 1e6 / footprint))
    assert close(c["dram_bytes"], 3e6)
    # far beyond L2 it tends to every sector from DRAM
    big = rec(load=_side(10**9, 10**9, unique=10**8))
    assert gpu_model.launch_cost(big, G)["dram_bytes"] / (32 * 10**9) > 0.99


def test_fp_shared_serial_launch_and_barrier_terms():
    r = rec(f32={"add": 4000, "mul": 4000, "div": 1000, "cmp": 1000}, f64={"mul": 2000},
            wavefronts=50_000, min_wavefronts=25_000, max_thread_flops=1000, grid_syncs=3)
    c = gpu_model.launch_cost(r, G)
    assert c["f32_ops"] == 10_000 and c["f64_ops"] == 2000
    assert close(c["t_fp"], 10_000 / 4e12 + 2000 / 2e12)
    assert close(c["t_shared"], 50_000 / (10 * 1e9))       # one wavefront per SM per cycle
    assert close(c["t_serial"], 1000 * 4 / 1e9)            # a dependent chain of 4-cycle ops
    assert close(c["t_launch"], 3e-6) and close(c["t_barrier"], 3 * 2e-6)
    # the time is launch + barriers + the largest term
    assert c["bound"] == "shared" and close(c["t"], 3e-6 + 6e-6 + 5e-6)


def test_few_blocks_scale_the_throughput_terms_not_the_serial_chain():
    r = rec(blocks=2, load=_side(1000, 1000), f32={"add": 8000}, wavefronts=1000,
            max_thread_flops=10)
    full = gpu_model.launch_cost(dict(r, grid=(10, 1, 1)), G)
    few = gpu_model.launch_cost(r, G)
    for k in ("dram", "l2", "fp", "shared"):
        assert close(few[f"t_{k}"], 5 * full[f"t_{k}"]), k  # 10 SMs / 2 blocks
    assert close(few["t_serial"], full["t_serial"]) and few["low_occupancy"] == 1


def test_predict_sums_launches_and_reports_the_roofline():
    a = rec(load=_side(1000, 1250, min_sectors=1000, unique=100), f32={"add": 2 * 10**6})
    b = rec(kernel="b_f32", store=_side(10, 10), wavefronts=40, min_wavefronts=20,
            max_thread_flops=5000, grid_syncs=1)
    p = gpu_model.predict([a, b], G)
    ca, cb = gpu_model.launch_cost(a, G), gpu_model.launch_cost(b, G)
    assert p["launches"] == 2 and p["grid_syncs"] == 1
    assert close(p["predicted_s"], ca["t"] + cb["t"])
    for k in gpu_model.TERMS + gpu_model.OVERHEADS:
        assert close(p["terms_s"][k], ca[f"t_{k}"] + cb[f"t_{k}"])
    assert close(p["coalescing"], (1250 + 10) / (1000 + 10))
    assert close(p["bank_conflicts"], 40 / 20)
    roof = max(p["dram_bytes"] / G.dram_bw, 2e6 / G.f32_rate)
    assert close(p["roofline_s"], roof) and close(p["roofline_fraction"], roof / p["predicted_s"])
    assert set(p["kernels"]) == {"k_f32", "b_f32"}
    assert close(sum(p["bound_s"].values()) + p["terms_s"]["launch"] + p["terms_s"]["barrier"],
                 p["predicted_s"])
    assert gpu_model.predict([a], G)["bank_conflicts"] is None  # no shared memory


def test_calibrated_takes_the_measured_latencies_and_peaks():
    micro = {"device": "H200", "dtype": "float32", "launch_us": 2.5, "grid_barrier_us": 0.9,
             "muladd_gflops": 30000.0, "copy_gbs": 4000.0}
    c = gpu_model.MODELS["h200"].calibrated(micro)
    got = (c.launch_s, c.grid_barrier_s, c.f32_rate, c.dram_bw)
    assert all(close(a, b) for a, b in zip(got, (2.5e-6, 0.9e-6, 3e13, 4e12))), got
    assert c.f64_rate == 17e12
    assert close(gpu_model.MODELS["h200"].calibrated({"dtype": "float64", "muladd_gflops": 1e4})
                 .f64_rate, 1e13)


# ---- extrapolation in T on hand-made runs --------------------------------------------------

def _run(T):
    """Records of a toy strategy: a whole-sequence kernel whose scalar argument is T and whose
    counts are 100 + 10 T, one step kernel per time step, one fixed kernel."""
    seq = dict(rec("seq_f32", load=_side(100 + 10 * T, 100 + 10 * T), f32={"add": 7 * T},
                   max_thread_flops=3 * T), signature=("seq_f32", (10, 1, 1), (256, 1, 1), 0,
                                                       False, (T, 4)))
    step = dict(rec("step_f32", load=_side(50, 50), f32={"mul": 9}),
                signature=("step_f32", (10, 1, 1), (256, 1, 1), 0, False, (4,)))
    fixed = dict(rec("fixed_f32", store=_side(5, 5)),
                 signature=("fixed_f32", (1, 1, 1), (32, 1, 1), 0, False, ()))
    return [seq] + [dict(step) for _ in range(T)] + [fixed]


def test_extrapolate_repeats_step_launches_and_extends_the_others_linearly():
    T = 9
    dry = [r["signature"] for r in _run(T)]
    got, info = gpu_model.extrapolate((2, _run(2)), (4, _run(4)), dry, T)
    want = _run(T)
    assert info["launches"] == T + 2 and info["launches_extrapolated"] == 1
    assert [r["kernel"] for r in got] == [r["kernel"] for r in want]
    for g, w in zip(got, want):
        for k in ("global", "flops", "max_thread_flops", "grid", "block", "threads", "warps"):
            assert g[k] == w[k], (g["kernel"], k)
    pg, pw = (gpu_model.predict(r, G)["predicted_s"] for r in (got, want))
    assert close(pg, pw)


def test_extrapolate_refuses_launch_lists_that_do_not_line_up():
    dry = [r["signature"] for r in _run(9)]
    r4 = _run(4)
    r4.insert(0, dict(r4[0], signature=r4[0]["signature"][:-1] + ((99, 4),)))
    with pytest.raises(ValueError, match="seq_f32"):
        gpu_model.extrapolate((2, _run(2)), (4, r4), dry, 9)


# ---- the real counters ---------------------------------------------------------------------

def _has_counters():
    try:
        from lockstep import _simt
    except ImportError:
        return False
    return hasattr(_simt, "set_counting")


needs_counters = pytest.mark.skipif(not _has_counters(), reason="lockstep._simt has no cost "
                                    "counters (set_counting)")
STRATEGIES = ("naive", "fused", "persistent")
# Clipping that never clips: whether the norm exceeds the threshold is the only data-dependent
# branch of the memory traffic (clip_norm and the update read the scale only when clipped).
NO_CLIP = dict(bench.MODEL_RECIPE, clip=1e6)
# (I, H, B) with every per-step array a whole number of 32-byte sectors (B*I, B*H, B*4H floats)
# and B a multiple of the warp, so each time step's accesses line up like every other's; B a
# multiple of the GEMMs' tallest tile (256 rows), so the whole-sequence GEMMs over T*B rows
# always cover whole tiles and their counts are linear in T too.
TINY = (8, 8, None, 256)
MEMORY = ("global", "shared", "args", "syncthreads", "grid_syncs", "grid", "block", "threads",
          "warps", "kernel", "shared_mem", "cooperative")


def _sum_by_kernel(recs):
    out = {}
    for r in recs:
        acc = out.setdefault(r["kernel"], {})
        for side in ("load", "store"):
            for k, v in r["global"][side].items():
                acc[f"g.{side}.{k}"] = acc.get(f"g.{side}.{k}", 0) + v
            for k, v in r["shared"][side].items():
                acc[f"s.{side}.{k}"] = acc.get(f"s.{side}.{k}", 0) + v
        acc["grid_syncs"] = acc.get("grid_syncs", 0) + r["grid_syncs"]
        acc["syncthreads"] = acc.get("syncthreads", 0) + r["syncthreads"]
        acc["launches"] = acc.get("launches", 0) + 1
    return out


@needs_counters
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_memory_counts_are_linear_in_T(strategy):
    """Counts at T, 2T and 3T: every kernel's summed memory counters (requests, sectors,
    footprints, shared wavefronts, barriers, launches) grow by the same amount per T."""
    T = 2
    runs = [bench.count_step(strategy, TINY, "float32", k * T, NO_CLIP) for k in (1, 2, 3)]
    assert all(ok for _, ok, _ in runs)
    s1, s2, s3 = (_sum_by_kernel(r) for r, _, _ in runs)
    assert set(s1) == set(s2) == set(s3)
    for kern in s1:
        for key in s1[kern]:
            assert s3[kern][key] - s2[kern][key] == s2[kern][key] - s1[kern][key], (kern, key)


@needs_counters
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_extrapolated_counts_equal_a_direct_count(strategy):
    """Counted at T' = 2 and 4 and extrapolated to T = 7: the same launches, geometry and memory
    counts as counting all 7 steps; flops within 1% (the canonical exp/tanh take
    data-dependent branches, so a step's flop count varies slightly with its values)."""
    T = 7
    direct, ok, _ = bench.count_step(strategy, TINY, "float32", T, NO_CLIP)
    r2, ok2, _ = bench.count_step(strategy, TINY, "float32", 2, NO_CLIP)
    r4, ok4, _ = bench.count_step(strategy, TINY, "float32", 4, NO_CLIP)
    assert ok and ok2 and ok4
    dry = bench.dry_step(strategy, TINY, "float32", T, NO_CLIP)
    assert dry == [r["signature"] for r in direct]
    got, info = gpu_model.extrapolate((2, r2), (4, r4), dry, T)
    assert len(got) == len(direct) == info["launches"]
    for g, d in zip(got, direct):
        for k in MEMORY:
            assert g[k] == d[k], (d["kernel"], k)
        fd, fg = (sum(r["flops"]["f32"].values()) for r in (d, g))
        assert abs(fg - fd) <= 0.01 * fd, d["kernel"]
    pd, pg = (gpu_model.predict(r, "h200")["predicted_s"] for r in (direct, got))
    assert abs(pg - pd) <= 0.01 * pd


@needs_counters
def test_counts_do_not_depend_on_the_emulator_worker_count():
    from lockstep import _simt

    old = _simt.workers()
    try:
        _simt.set_workers(1)
        one, _, _ = bench.count_step("fused", TINY, "float32", 3)
        _simt.set_workers(2)
        two, _, _ = bench.count_step("fused", TINY, "float32", 3)
    finally:
        _simt.set_workers(old)
    assert one == two


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@needs_counters
def test_bench_device_emu_model_h200_end_to_end(tmp_path, capsys):
    out = tmp_path / "m.json"
    code, stdout, err = run_cli(capsys, "bench", "--device", "emu", "--model", "h200", "--shape",
                                "2,8,6,32", "--count-steps", "2", "--json-file", str(out))
    assert code == 0, err
    res = json.loads(out.read_text())
    assert res["model"] == "h200" and res["shape"] == {"I": 2, "H": 8, "T": 6, "B": 32, "O": 1}
    rows = {r["strategy"]: r for r in res["results"]}
    assert set(rows) == set(STRATEGIES)
    for r in rows.values():
        assert r["validated"] and r["validation"] == "same bits"
        assert r["counted"]["extrapolated"] and r["counted"]["T1"] == 2
        p = r["prediction"]
        assert p["predicted_s"] > 0 and 0 < p["roofline_fraction"] <= 1
        assert p["launches"] > 0 and p["coalescing"] >= 1
        assert math.isclose(p["predicted_s"], sum(p["bound_s"].values())
                            + p["terms_s"]["launch"] + p["terms_s"]["barrier"], rel_tol=1e-9)
    # fewer launches as the strategies fuse more
    assert rows["naive"]["prediction"]["launches"] > rows["fused"]["prediction"]["launches"] \
        > rows["persistent"]["prediction"]["launches"]
    assert rows["persistent"]["prediction"]["grid_syncs"] > 0
    assert "| strategy" in stdout and "predicted ms" in stdout and "% of roofline" in stdout
    assert "extrapolated to T = 6" in stdout and "ASSUMED" in stdout


@needs_counters
def test_bench_device_emu_counts_all_steps_of_a_small_shape(capsys):
    code, out, err = run_cli(capsys, "bench", "--device", "emu", "--shape", "1,5,3,4",
                             "--dtype", "float64", "--strategies", "fused")
    assert code == 0, err
    assert "counted all T = 3 time steps" in out and "NVIDIA H200" in out


@pytest.mark.parametrize("argv", [
    ["--device", "emu", "--model", "a100"],
    ["--device", "gpu", "--model", "h200"],
    ["--device", "emu", "--shape", "1,2,3"],
    ["--shape", "1,2,3,4"],
    ["--device", "emu", "--strategies", "nope"],
])
def test_bench_model_bad_input_is_exit_2(capsys, argv):
    assert run_cli(capsys, "bench", *argv)[0] == 2


def test_spec_is_a_frozen_dataclass():
    with pytest.raises(Exception):
        G.sms = 3  # noqa: B018
    assert replace(G, sms=5).sms == 5
