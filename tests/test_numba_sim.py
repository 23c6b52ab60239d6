"""The numba-cuda backend under Numba's CUDA simulator, on the CPU: canonical math device
functions, both strategies against reference.train and the golden files (both dtypes, both
losses, SGD / momentum / Adam, clipping; 1, 2 and 3 layers, dropout), the optimizer-state round
trip, and data-parallel partials with dropout masks.

The simulator must be switched on before numba is imported, so the checks run in one
subprocess (tests/numba_sim_driver.py with NUMBA_ENABLE_CUDASIM=1); each check's result is
reported here as its own test, with the subprocess's message on failure.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")

import numba_sim_driver as driver  # noqa: E402

DRIVER = Path(__file__).with_name("numba_sim_driver.py")
TIMEOUT_S = 600
# The three larger one-layer golden files under the fused strategy take ~55 s together in the
# simulator (one Python thread per CUDA thread, one launch per time step), the stacked ones
# ~55 s with fused and the 2-layer one ~20 s with per-sample: they run when asked for. The
# per-sample strategy checks every other golden file in every run (of the stacked ones the
# smaller, 3 layers with dropout), the fused one the two small one-layer files and the
# reference cases (stacked ones included), and the gpu tests check every golden file with both.
HEAVY = ("golden-fused-mse_all_sgd", "golden-fused-mse_last_adam_clip",
         "golden-fused-ce_all_momentum_clip", "golden-fused-mse_all_adam_2layers",
         "golden-fused-ce_last_sgd_3layers_dropout", "golden-per-sample-mse_all_adam_2layers")
FULL = os.environ.get("LOCKSTEP_NUMBA_SIM_FULL") == "1"


def _run_driver(args, simulate=True, timeout=TIMEOUT_S):
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    if simulate:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    try:
        proc = subprocess.run([sys.executable, str(DRIVER), *args], env=env,
                              capture_output=True, text=True, timeout=timeout, cwd=DRIVER.parent)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        pytest.fail(f"{DRIVER.name} {' '.join(args)} ran past {timeout} s; its output so far:\n"
                    f"{out[-3000:]}")
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            results[r["id"]] = r
    return proc, results


def _check_ids(heavy):
    ids = [cid for cid, _, _ in driver.all_checks()]
    return [c for c in ids if c.startswith(HEAVY) == heavy]


@pytest.fixture(scope="module")
def sim_results():
    proc, results = _run_driver(["--skip", *HEAVY])
    return proc, results


def _assert_check(proc, results, cid):
    if cid not in results:
        pytest.fail(f"the simulator driver did not report {cid!r} (exit {proc.returncode}):\n"
                    f"stdout tail:\n{proc.stdout[-2000:]}\nstderr tail:\n{proc.stderr[-3000:]}")
    r = results[cid]
    assert r["ok"], f"{cid} failed under the simulator:\n{r['msg']}"


@pytest.mark.parametrize("cid", _check_ids(heavy=False))
def test_under_simulator(sim_results, cid):
    _assert_check(*sim_results, cid)


@pytest.mark.skipif(not FULL, reason="~2 min in the simulator; set LOCKSTEP_NUMBA_SIM_FULL=1")
@pytest.mark.slow
@pytest.mark.parametrize("cid", _check_ids(heavy=True))
def test_under_simulator_heavy(cid):
    proc, results = _run_driver([cid])
    _assert_check(proc, results, cid)


def test_driver_covers_the_issue_matrix():
    """Both strategies x both dtypes x both losses x SGD/momentum/Adam x clipping, and every
    canonical function in both dtypes."""
    ids = [cid for cid, _, _ in driver.all_checks()]
    for s in driver.STRATEGIES:
        for dn in ("float32", "float64"):
            ref = [c for c in ids if c.startswith(f"reference-{s}-") and c.endswith(dn)]
            assert len(ref) == len(driver.CASES), (s, dn)
            assert f"state-{s}-{dn}" in ids
            stacked = [c for c in ids if c.startswith(f"stacked-{s}-") and c.endswith(dn)]
            assert len(stacked) == len(driver.STACKED_CASES), (s, dn)
        assert f"state-{s}-2layers" in ids and f"dataparallel-{s}-2layers-dropout" in ids
    kinds = {(c[6], c[7], c[8], bool(c[9]), bool(c[10])) for c in driver.CASES}
    assert {k[0] for k in kinds} == {"mse", "ce"} and {k[1] for k in kinds} == {"all", "last"}
    assert {k[2] for k in kinds} == {"sgd", "adam"}
    assert any(k[3] for k in kinds) and any(k[4] for k in kinds)
    extra = [c[11] for c in driver.STACKED_CASES]
    assert {e["layers"] for e in extra} == {2, 3} and any(e.get("dropout") for e in extra)
    assert any(c[5] == 1 for c in driver.STACKED_CASES)  # B = 1
    assert any(c[4] == 1 for c in driver.STACKED_CASES)  # T = 1
    assert {(c[6], c[7]) for c in driver.STACKED_CASES} | {("mse", "all")} == {
        (a, b) for a in ("mse", "ce") for b in ("all", "last")}  # mse/all: the golden file
    for dn in ("float32", "float64"):
        for f in ("exp", "log", "sigmoid", "tanh"):
            assert f"math-{f}-{dn}" in ids


def test_driver_refuses_to_run_without_the_simulator():
    proc, results = _run_driver(["availability"], simulate=False, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert results["simulator"]["ok"] is False


def test_driver_reports_a_wrong_result():
    """A failing check is reported as such (exit 1 and ok=false with the message): a driver
    that swallowed failures would make every test above pass."""
    proc, results = _run_driver(["selftest-must-fail"], timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    r = results["selftest-must-fail"]
    assert r["ok"] is False and "differ in their bits" in r["msg"]
