"""Occupancy from the real registers and shared memory (lockstep/gpu_resources.json, made by
`python -m lockstep.sass --write-docs`), the launch block sizes it assumes, the persistent
strategy's limit derived from it, the cost model's use of it, and the device script's dry run."""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lockstep import gpu_model, sass
from lockstep.backends import cuda_raw
from lockstep.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_occupancy_follows_the_calculator():
    o = sass.occupancy(32, 0, 256)            # 8 warps of 32 registers: the warp limit
    assert (o["blocks_per_sm"], o["occupancy"], o["limited_by"]) == (8, 1.0, "warps")
    o = sass.occupancy(128, 0, 256)           # 4096 registers per warp: 16 warps
    assert (o["blocks_per_sm"], o["warps_per_sm"], o["limited_by"]) == (2, 16, "registers")
    o = sass.occupancy(33, 0, 256)            # 33 * 32 = 1056 -> 1280 per warp: 51 warps
    assert (o["blocks_per_sm"], o["limited_by"]) == (6, "registers")
    o = sass.occupancy(16, 100 * 1024, 256)   # 100 KiB + 1 KiB reserved: 2 per 228 KiB
    assert (o["blocks_per_sm"], o["limited_by"]) == (2, "shared")
    assert sass.occupancy(16, 0, 1)["blocks_per_sm"] == 32  # the block limit
    assert sass.occupancy(16, 228 * 1024, 32)["blocks_per_sm"] == 0  # over the opt-in limit


def test_the_table_covers_every_arch_and_nothing_spills():
    res = sass.load_resources()
    assert res["archs"] == list(sass.ARCHS)
    for arch, ks in res["kernels"].items():
        assert ks["fused_fwd_step_f32"]["regs"] > 0 and ks["persistent_bwd_f64"]["regs"] > 0
        assert not {k for k, v in ks.items() if v["local"]}, arch


def test_launch_threads_are_those_cuda_raw_launches_on_an_h200():
    """A dry run of every strategy (two layers with dropout, clipped, Adam) with the H200's
    launch geometry: every kernel's block size is the one the occupancy table assumes."""
    pytest.importorskip("lockstep._simt", reason="the SIMT emulator is not built")
    from lockstep import backends, harness
    from lockstep.train import new_rng, run_epochs

    seen = {}
    for strategy in ("naive", "fused", "persistent"):
        # n = 300 samples of 300 outputs: element-wise kernels get whole 256-thread blocks
        mc, tc, params, x, y = harness.make_problem(2, 40, 300, 2, 150, np.float32, n=300,
                                                    optimizer="adam", clip=0.5, epochs=1,
                                                    layers=2, dropout=0.2)
        be = backends.get("cuda-raw")(mc, tc, np.float32, strategy=strategy, device="emu",
                                      emulate="h200")
        be.load(params, None)
        sigs = gpu_model.dry_run(be.dev, lambda: list(run_epochs(be, x, y, tc, new_rng(0), 1,
                                                                 data_key="k")))
        for name, _grid, block, *_ in sigs:
            seen.setdefault(name, set()).add(math.prod(block))
    assert len(seen) > 20, sorted(seen)
    wrong = {k: (t, sass.launch_threads(k)) for k, t in seen.items()
             if max(t) != sass.launch_threads(k)}  # smaller only where n < 256
    assert not wrong, wrong


def test_persistent_limit_is_derived_from_the_compiled_kernels():
    res = sass.load_resources()
    for sfx, itemsize in (("f32", 4), ("f64", 8)):
        static = max(res["kernels"]["sm_90"][f"persistent_{d}_{sfx}"]["shared"]
                     for d in ("fwd", "bwd"))
        hmax = sass.persistent_limit("sm_90", 132, 227 * 1024, sfx)
        assert hmax == cuda_raw.persistent_max_hidden(itemsize, 132, 227 * 1024 - static)
        assert cuda_raw.persistent_static_smem("_" + sfx, "sm_90") == static
        blocks, hs, dyn = cuda_raw.persistent_plan(hmax, itemsize, 132, 227 * 1024, static)
        assert blocks <= 132 and dyn + static <= 227 * 1024
        # one block of 256 threads per SM must fit with those registers and that memory
        regs = res["kernels"]["sm_90"][f"persistent_fwd_{sfx}"]["regs"]
        assert sass.occupancy(regs, static, 256, dyn)["blocks_per_sm"] >= 1
        with pytest.raises(ConfigError, match=r"^[^\n]*Use strategy fused instead$"):
            cuda_raw.persistent_plan(hmax + 1, itemsize, 132, 227 * 1024, static)


def test_the_h200_driver_refuses_beyond_the_derived_limit():
    pytest.importorskip("lockstep._simt", reason="the SIMT emulator is not built")
    from lockstep import backends
    from lockstep.config import ModelConfig, TrainConfig

    hmax = sass.persistent_limit("sm_90", 132, 227 * 1024, "f32")
    mk = lambda H: backends.get("cuda-raw")(  # noqa: E731
        ModelConfig(input_size=1, hidden_size=H, output_size=1), TrainConfig(), np.float32,
        strategy="persistent", device="emu", emulate="h200")
    assert mk(hmax).plan[0] <= 132
    with pytest.raises(ConfigError, match=rf"H={hmax + 1}.*largest H is {hmax}.*Use strategy "
                                          r"fused instead"):
        mk(hmax + 1)


def test_cost_model_charges_waves_from_the_real_occupancy():
    k = "fused_fwd_step_f32"
    r = sass.kernel_resources(k)
    bps = sass.occupancy(r["regs"], r["shared"], 256)["blocks_per_sm"]
    G = gpu_model.get("h200")
    rec = {"kernel": k, "grid": (132 * bps * 3, 1, 1), "block": (32, 8, 1), "shared_mem": 0,
           "global": {s: {"sectors": 0, "unique_sectors": 0, "min_sectors": 0}
                      for s in ("load", "store")},
           "flops": {"f32": {}, "f64": {}}, "max_thread_flops": 1000, "grid_syncs": 0,
           "shared": {s: {"wavefronts": 0, "min_wavefronts": 0} for s in ("load", "store")}}
    three = gpu_model.launch_cost(rec, G)
    one = gpu_model.launch_cost(dict(rec, grid=(132 * bps, 1, 1)), G)
    assert three["waves"] == 3 and one["waves"] == 1
    assert math.isclose(three["t_serial"], 3 * one["t_serial"])
    unknown = gpu_model.launch_cost(dict(rec, kernel="not_in_the_table"), G)
    assert unknown["waves"] == 1


def test_device_check_dry_run_skips_every_step_with_a_reason(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LOCKSTEP_DEVICE_CHECK_DRY_RUN"}
    env["PYTHON"] = sys.executable
    r = subprocess.run(["bash", str(ROOT / "bench" / "device_check.sh"), "--dry-run",
                        str(tmp_path / "out")], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    summary = (tmp_path / "out" / "summary.md").read_text()
    rows = [ln for ln in summary.splitlines() if ln.startswith("| ") and "---" not in ln
            and not ln.startswith("| step")]
    assert len(rows) >= 10, summary
    try:
        import cupy  # noqa: F401
        has_cupy = True
    except ImportError:
        has_cupy = False
    for row in rows:
        name, status = [c.strip() for c in row.strip("|").split("|")][:2]
        assert status.startswith(("skipped:", "dry run:")), row
        if not has_cupy and name not in ("sass",):
            assert "skipped:" in status and len(status) > len("skipped: "), row
    assert "Traceback" not in r.stderr + summary
