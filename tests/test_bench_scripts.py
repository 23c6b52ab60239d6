"""The benchmark scripts stay runnable: on the SIMT emulator they validate every strategy
bit for bit (their timings mean nothing there) and print the GPU cost model's prediction;
device_check.sh is valid bash that fits 8 min."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "bench"


@pytest.mark.parametrize("script,extra", [("gpu_micro.py", []), ("lstm_forward.py", []),
                                          ("lstm_backward.py", ["--dtype", "float64"])])
def test_script_runs_on_the_emulator(script, extra, tmp_path):
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, str(BENCH / script), "--emu", "--json", str(out), *extra],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data
    if script != "gpu_micro.py":
        assert {d["strategy"] for d in data} == {"naive", "fused", "persistent"}
        assert all(d["ms"] > 0 and d["gflops"] > 0 for d in data)
        # every line carries the H200 prediction of its (strategy, shape)
        assert all(d["predicted_ms"] > 0 and d["predicted_block"] == 256 for d in data)
        assert any("extrapolated" in d["prediction"]["how"] for d in data)
        assert r.stdout.count("model      h200") == 3 * 3  # strategies x emulator shapes
        assert "launches" in r.stdout and "of the roofline" in r.stdout


def test_compare_prints_predicted_beside_measured(tmp_path, capsys):
    sys.path.insert(0, str(BENCH))
    import strategy_common as sc

    lines = [{"strategy": "fused", "block": 256, "I,H,T,B": [1, 50, 12, 32], "ms": 0.5,
              "predicted_block": 256, "predicted_ms": 0.25, "predicted_calibrated_ms": 0.4},
             {"strategy": "fused", "block": 128, "I,H,T,B": [1, 50, 12, 32], "ms": 0.6,
              "predicted_block": 256, "predicted_ms": 0.25, "predicted_calibrated_ms": 0.4}]
    path = tmp_path / "lstm-forward.json"
    path.write_text(json.dumps(lines))
    rows = sc.compare([str(path), str(tmp_path / "missing.json")])
    out = capsys.readouterr().out
    assert len(rows) == 1 and rows[0]["measured_over_predicted"] == 2.0
    assert "| lstm-forward | fused | (1, 50, 12, 32) | 0.5 | 0.25 | 0.4 | 2 |" in out
    assert "missing.json" in out


def test_device_check_is_valid_and_fits_in_twelve_minutes():
    """The device machine's whole check, the build included, within 12 minutes (issue 25):
    the steps' limits add up to at most 11, leaving a minute for start-up and the summary."""
    script = BENCH / "device_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    limits = [int(m) for m in re.findall(r"^step [\w-]+ (\d+) ", script.read_text(), re.M)]
    assert len(limits) >= 9 and sum(limits) <= 660, limits


def test_model_line_puts_measured_beside_predicted(capsys):
    sys.path.insert(0, str(BENCH))
    import strategy_common as sc

    from lockstep import gpu_model

    rec = {"kernel": "k_f32", "grid": (264, 1, 1), "block": (256, 1, 1), "grid_syncs": 0,
           "global": {s: {"requests": 10, "sectors": 40, "min_sectors": 40, "bytes": 1280,
                          "unique_sectors": 40} for s in ("load", "store")},
           "shared": {s: {"requests": 0, "wavefronts": 0, "min_wavefronts": 0}
                      for s in ("load", "store")},
           "flops": {d: {"add": 100, "mul": 100, "div": 0, "sqrt": 0, "cmp": 0}
                     for d in ("f32", "f64")}, "max_thread_flops": 2}
    p = gpu_model.predict([rec], "h200")  # one launch: 3 us of launch + a tiny max term
    sc.model_line("fused", (1, 50, 12, 32), p, "counted all T = 12 steps", measured=0.006,
                  calibrated=p)
    out = capsys.readouterr().out
    assert "1 launches" in out and "predicted 0.003" in out
    assert "measured 0.006 ms at block 256: 2.00x the prediction" in out
    sc.model_line("fused", (32, 1024, 64, 256), None, "not counted: too long")
    assert "not counted: too long" in capsys.readouterr().out


def test_accuracy_benchmark_scores_every_model_on_the_same_windows(tmp_path):
    """bench/accuracy.py on one small series: lockstep's backtest, and statsforecast's models
    when installed, scored the same way (MASE per series, targets stated)."""
    out = tmp_path / "acc.json"
    r = subprocess.run([sys.executable, str(BENCH / "accuracy.py"), "--datasets", "nile",
                        "--windows", "2", "--json", str(out)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (d,) = json.loads(out.read_text())["datasets"]
    assert d["name"] == "nile" and d["horizon"] == 10 and d["series"] == ["volume"]
    ls = d["models"]["lockstep"]
    assert ls["mase"] > 0 and set(ls["per_series_mase"]) == {"volume"} and "coverage" in ls
    try:
        import statsforecast  # noqa: F401
    except ImportError:
        assert "statsforecast" in d["not_run"]
    else:
        assert {"AutoARIMA", "AutoETS", "SeasonalNaive"} <= set(d["models"])
        assert isinstance(d["target_arima_ets"], bool)


@pytest.mark.parametrize("vbytes", [32, 64])
def test_cpu_peak_kernel_runs_every_operation_it_counts(vbytes, tmp_path):
    """bench/cpu_vs_torch.py's no-FMA peak counts 24 vector operations per iteration: the
    compiled loop must contain all 24 (12 multiplies, 12 adds/subtracts), none folded away
    and none fused (a kernel whose start values were constants once lost its add chains)."""
    import platform
    import shutil
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("needs a C compiler on x86-64")
    sys.path.insert(0, str(BENCH))
    import cpu_vs_torch as cvt
    src = tmp_path / "peak.c"
    src.write_text(cvt.PEAK_SRC)
    asm = subprocess.run([cc, "-O3", cvt.PEAK_WIDTHS[vbytes], "-ffp-contract=off", "-fopenmp",
                          "-fno-fast-math", f"-DVBYTES={vbytes}", "-S", "-o", "-", str(src)],
                         check=True, capture_output=True, text=True).stdout
    reg = "zmm" if vbytes == 64 else "ymm"
    loops = re.split(r"\n\.L\d+:\n", asm)  # basic blocks; the hot loop is one of them
    counts = [(sum("vmulps" in ln and reg in ln for ln in b.splitlines()),
               sum(("vaddps" in ln or "vsubps" in ln) and reg in ln for ln in b.splitlines()))
              for b in loops]
    assert (12, 12) in counts, counts
    assert "vfmadd" not in asm and "vfmsub" not in asm


M3 = Path(__file__).resolve().parents[2] / "shared" / "data" / "m3"


@pytest.mark.skipif(not M3.is_dir(), reason=f"no M3 data at {M3} (shared/data/m3)")
@pytest.mark.parametrize("split", ["validation", "test"])
def test_m3_benchmark_scores_lockstep_beside_the_competition(tmp_path, split):
    """bench/m3.py on the first series of two frequencies: every series kept (the window
    shortened for the shortest), sMAPE as the competition computed it beside the original
    methods (test) or NAIVE2 recomputed (validation), MASE, coverage, times."""
    out = tmp_path / "m3.json"
    r = subprocess.run([sys.executable, str(BENCH / "m3.py"), "--series", "6", "--frequencies",
                        "yearly,other", "--split", split, "--json-file", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())["frequencies"]
    for freq, h in (("yearly", 6), ("other", 8)):
        e = res[freq]
        assert e["series"] == 6 and e["horizon"] == h and e["window"] >= 2
        assert 0 < e["smape"]["lockstep"] < 200 and "NAIVE2" in e["smape"]
        if split == "test":
            assert {"THETA", "ForecastPro", "NAIVE2"} <= set(e["smape"]) and e["of"] >= 20
            assert e["theta_beats_naive2_share"] is not None
        assert 0 <= e["coverage_80"] <= e["coverage_95"] <= 1 and e["fit_s"] > 0
    assert "lockstep rank" in r.stdout
