"""lockstep check (the agreement table) and lockstep bench (the timing table)."""

import json

import numpy as np
import pytest

from lockstep import backends, bench, cli, harness
from lockstep.backends.numpy_ref import NumpyBackend


class OffByOneUlp(NumpyBackend):
    """A backend that is wrong by one ulp in one parameter: check must notice."""

    name = "off-by-one"

    def state(self):
        params, opt = super().state()
        params = dict(params)
        w = params["W_hh"].copy()
        w.flat[0] = np.nextafter(w.flat[0], np.inf)
        params["W_hh"] = w
        return params, opt


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_all_available_backends_agree(capsys):
    code, out, err = run(capsys, "check", "--shape", "2,5,3,4,3", "--epochs", "2", "--json")
    res = json.loads(out)
    assert code == 0 and res["agree"] and res["reference"] == "numpy"
    names = [r["run"] for r in res["runs"]]
    assert names[0] == "numpy:reference@cpu" and len(names) >= 2
    shas = {r["params_sha256"] for r in res["runs"]}
    assert len(shas) == 1
    for r in res["runs"]:
        assert len(r["losses"]) == 2 and all(h.startswith("0x") and len(h) == 10 for h in r["losses_hex"])
    assert all(u["reason"] for u in res["unavailable"])
    assert "same bits" in err


def test_check_fails_on_a_one_ulp_difference(capsys, monkeypatch):
    monkeypatch.setitem(backends.REGISTRY, "off-by-one", "test_check_bench:OffByOneUlp")
    code, out, err = run(capsys, "check", "--backends", "off-by-one", "--shape", "1,3,1,3,2",
                         "--dtype", "float64", "--json")
    res = json.loads(out)
    assert code == 1 and not res["agree"]
    bad = [r for r in res["runs"] if not r["agree"]]
    assert [r["run"] for r in bad] == ["off-by-one:reference@cpu"]
    assert bad[0]["losses_hex"] == res["runs"][0]["losses_hex"]  # losses equal, params not
    assert "DIFFERENT" in err


def test_check_runs_simulator_devices_in_a_child_process(capsys):
    """numba-cuda@sim needs NUMBA_ENABLE_CUDASIM before numba is imported: check starts a
    child process for it when the backend is named, and compares the bits it sends back."""
    code, out, err = run(capsys, "check", "--backends", "numba-cuda", "--shape", "1,2,1,2,2",
                         "--epochs", "1", "--json")
    res = json.loads(out)
    sims = [r for r in res["runs"] if r["run"].endswith("@sim")]
    assert code == 0 and res["agree"], err
    assert {r["run"] for r in sims} == {"numba-cuda:per-sample@sim", "numba-cuda:fused@sim"}


def test_check_bad_shape_is_exit_2(capsys):
    assert run(capsys, "check", "--shape", "1,2,3")[0] == 2
    assert run(capsys, "check", "--backends", "nope")[0] == 2


def test_harness_problem_has_a_short_last_batch():
    mc, tc, params, x, y = harness.make_problem(2, 3, 1, 4, 5, np.float32)
    assert x.shape == (4, 11, 2) and 11 % tc.batch_size != 0


def test_bench_measures_and_validates(tmp_path, capsys):
    code, out, err = run(capsys, "bench", "--preset", "seed", "--backends", "numpy",
                         "--anchors", "numpy-blas@cpu",
                         "--json-file", str(tmp_path / "b.json"), "--plot", str(tmp_path / "b.png"))
    assert code == 0, err
    res = json.loads((tmp_path / "b.json").read_text())
    rows = {r["run"]: r for r in res["results"]}
    assert set(rows) == {"numpy:reference@cpu", "numpy-blas@cpu"}
    ref = rows["numpy:reference@cpu"]
    assert ref["validated"] and ref["validation"] == "same bits" and ref["efficiency_pct"] == 100
    assert rows["numpy-blas@cpu"]["validated"], rows["numpy-blas@cpu"]["validation"]
    for r in rows.values():
        assert r["wall_s"] > 0 and r["gflops"] > 0 and r["peak_rss_mb"] > 0
    assert (tmp_path / "b.png").stat().st_size > 0
    assert "| implementation" in out and "efficiency" in out  # the table is a result: stdout


def test_flop_count():
    from lockstep.config import ModelConfig

    assert bench.flops_per_epoch(ModelConfig(1, 2, 1), 3, 4) == 6 * (4 * 2 * 3 + 2) * 12
