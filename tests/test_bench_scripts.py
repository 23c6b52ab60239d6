"""The benchmark scripts stay runnable: on the SIMT emulator they validate every strategy
bit for bit (their timings mean nothing there); device_check.sh is valid bash that fits 8 min."""

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


def test_device_check_is_valid_and_fits_in_eight_minutes():
    script = BENCH / "device_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    limits = [int(m) for m in re.findall(r"^step [\w-]+ (\d+) ", script.read_text(), re.M)]
    assert len(limits) >= 9 and sum(limits) <= 480, limits
