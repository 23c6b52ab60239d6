"""The command line: JSON on stdout only, exit codes, and nothing written on bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lockstep import checkpoint, cli, reference

FAST = ["--epochs", "3", "--hidden", "5", "--ensemble", "1", "--backend", "numpy", "--quiet"]


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, errout = capsys.readouterr()
    return code, out, errout


def snapshot(path):
    return sorted((p.relative_to(path).as_posix(), p.stat().st_mtime_ns, p.stat().st_size)
                  for p in path.rglob("*"))


def model_arrays(path):
    """The model section's arrays of a checkpoint (checkpoint.read verifies every digest)."""
    return checkpoint.read(path)["sections"]["model"]["arrays"]


def test_train_writes_checkpoint_plots_and_json(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, stderr = run(capsys, "train", *FAST, "--out", str(out), "--json")
    assert code == 0, stderr
    res = json.loads(stdout)  # stdout is nothing but the JSON document
    (w,) = res["holdout"]["windows"]  # one series, one holdout window
    for key in ("rmse", "mae", "mape", "smape", "mase"):
        assert key in w["model"] and key in w["baseline"]
        assert res["holdout"]["overall"]["model"][key] == w["model"][key]
    assert res["holdout"]["baseline"] == "seasonal naive (period 12)"
    assert len(res["forecast"]) == 24 == res["holdout"]["horizon"]
    assert len(res["history"]["train_loss"]) == 3 == len(res["history"]["valid_loss"])
    assert res["checkpoint"] == str(out / "checkpoint.npz")
    for f in ("checkpoint.npz", "losses.png", "forecast.png"):
        assert (out / f).stat().st_size > 0
    assert res["plots"] == [str(out / "losses.png"), str(out / "forecast.png")]
    assert "seasonal naive" in stderr and "train 0." not in stdout


def test_forecast_from_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", *FAST, "--out", str(out))[0] == 0
    code, stdout, _ = run(capsys, "forecast", "--checkpoint", str(out / "checkpoint.npz"),
                          "--horizon", "5", "--json", "--plot", str(tmp_path / "f.png"))
    res = json.loads(stdout)
    assert code == 0 and [r["ds"] for r in res["rows"]] == [
        "1961-01-01", "1961-02-01", "1961-03-01", "1961-04-01", "1961-05-01"]
    assert res["columns"] == ["unique_id", "ds", "yhat", "yhat-lo-80", "yhat-hi-80",
                              "yhat-lo-95", "yhat-hi-95"]
    assert res["forecast"] == [r["yhat"] for r in res["rows"]]
    assert np.isfinite(res["forecast"]).all() and (tmp_path / "f.png").is_file()


def test_cli_resume_equals_one_run(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["--hidden", "5", "--backend", "numpy", "--quiet", "--patience", "0",
            "--ensemble", "1"]
    assert run(capsys, "train", *args, "--epochs", "4", "--out", str(a))[0] == 0
    assert run(capsys, "train", *args, "--epochs", "2", "--out", str(b))[0] == 0
    assert run(capsys, "train", *args, "--epochs", "4", "--out", str(b), "--resume")[0] == 0
    ca, cb = model_arrays(a / "checkpoint.npz"), model_arrays(b / "checkpoint.npz")
    for n in reference.PARAM_NAMES:
        k = f"m0.params.{n}"
        assert ca[k].tobytes() == cb[k].tobytes(), n


def test_many_series_take_the_same_path(tmp_path, capsys):
    """data, train (holdout table, JSON), --resume and forecast (--level, --plot) work for a
    table of many series as for one."""
    code, stdout, _ = run(capsys, "data", "--data", "macro", "--json")
    d = json.loads(stdout)
    assert code == 0 and d["series"] == len(d["per_series"]) == 8 and d["season"] == 4
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["--data", "macro", "--epochs", "2", "--hidden", "5", "--ensemble", "1",
            "--backend", "numpy", "--quiet", "--patience", "0"]
    code, stdout, stderr = run(capsys, "train", *args, "--out", str(a), "--json")
    assert code == 0, stderr
    res = json.loads(stdout)
    ids = [r["unique_id"] for r in d["per_series"]]
    assert res["series"] == 8 and [w["unique_id"] for w in res["holdout"]["windows"]] == ids
    assert len(res["forecast"]) == 8 * res["holdout"]["horizon"]
    assert "forecast of the last 24 points of 8 series (numpy:reference@cpu):" in stderr
    assert run(capsys, "train", *args[:2], *args[4:], "--epochs", "1", "--out", str(b))[0] == 0
    assert run(capsys, "train", "--out", str(b), "--resume", "--epochs", "2", "--quiet",
               "--backend", "numpy")[0] == 0
    ca, cb = model_arrays(a / "checkpoint.npz"), model_arrays(b / "checkpoint.npz")
    assert sorted(ca) == sorted(cb)
    for k in ca:
        assert ca[k].tobytes() == cb[k].tobytes(), k
    code, stdout, stderr = run(capsys, "forecast", "--checkpoint", str(b / "checkpoint.npz"),
                               "--horizon", "2", "--level", "90", "--plot",
                               str(tmp_path / "f.png"), "--json")
    assert code == 0, stderr
    f = json.loads(stdout)
    assert f["series"] == 8 and f["columns"] == ["unique_id", "ds", "yhat", "yhat-lo-90",
                                                 "yhat-hi-90"]
    assert [r["unique_id"] for r in f["rows"]] == [i for i in ids for _ in range(2)]
    assert all(r["yhat-lo-90"] <= r["yhat"] <= r["yhat-hi-90"] for r in f["rows"])
    assert (tmp_path / "f.png").stat().st_size > 0


def bad_inputs(tmp_path):
    tmp_path.joinpath("empty.csv").write_text("")
    tmp_path.joinpath("text.csv").write_text("v\n1\nabc\n")
    tmp_path.joinpath("nan.csv").write_text("v\n1\n2\nnan\n")
    tmp_path.joinpath("short.csv").write_text("v\n" + "\n".join(str(i + 1) for i in range(20)))
    tmp_path.joinpath("afile").write_text("x")
    tmp_path.joinpath("corrupt").mkdir()
    tmp_path.joinpath("corrupt", "checkpoint.npz").write_bytes(b"PK\x03\x04 not really")
    return {
        "missing file": ["--data", str(tmp_path / "nope.csv")],
        "empty file": ["--data", str(tmp_path / "empty.csv")],
        "non-numeric": ["--data", str(tmp_path / "text.csv")],
        "nan": ["--data", str(tmp_path / "nan.csv")],
        "too few rows": ["--data", str(tmp_path / "short.csv")],
        "window 0": ["--window", "0"],
        "hidden 0": ["--hidden", "0"],
        "negative lr": ["--lr", "-0.1"],
        "unknown backend": ["--backend", "tpu"],
        "unwritable out": ["--out", str(tmp_path / "afile" / "sub")],
        "corrupt checkpoint": ["--out", str(tmp_path / "corrupt"), "--resume"],
        "resume nothing": ["--out", str(tmp_path / "nothing"), "--resume"],
    }


@pytest.mark.parametrize("case", [
    "missing file", "empty file", "non-numeric", "nan", "too few rows", "window 0", "hidden 0",
    "negative lr", "unknown backend", "unwritable out", "corrupt checkpoint", "resume nothing"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, case):
    argv = bad_inputs(tmp_path)[case]
    if "--out" not in argv:
        argv = argv + ["--out", str(tmp_path / "out")]
    before = snapshot(tmp_path)
    code, stdout, stderr = run(capsys, "train", "--epochs", "1", "--quiet", *argv)
    assert code == 2, stderr
    assert stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lockstep: error: "), stderr
    assert snapshot(tmp_path) == before, "a failed run changed files on disk"


def test_mismatched_checkpoint_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", *FAST, "--out", str(out))[0] == 0
    before = snapshot(tmp_path)
    code, _, stderr = run(capsys, "train", "--epochs", "4", "--hidden", "6", "--backend", "numpy",
                          "--quiet", "--out", str(out), "--resume")
    assert code == 2 and "--hidden 6 differs" in stderr and "trained with --hidden 5" in stderr
    code, _, stderr = run(capsys, "train", *FAST, "--out", str(out))
    assert code == 2 and "--force" in stderr
    assert snapshot(tmp_path) == before


def test_console_script_entry_point():
    r = subprocess.run([sys.executable, "-m", "lockstep.cli", "--version"], capture_output=True,
                       text=True, env={**os.environ})
    assert r.returncode == 0 and r.stdout.startswith("lockstep ")


def test_scale_and_running_mean_flags_reach_the_model_and_resume_checks_them(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", *FAST, "--scale", "standard", "--no-running-mean",
               "--out", str(out))[0] == 0
    from lockstep import Forecaster

    fc = Forecaster.load(out / "checkpoint.npz")
    assert fc.settings.scale == "standard" and fc.settings.running_mean is False
    assert fc.model_cfg.input_size == 1 and fc.tf.center[0] != 0  # centred on the mean
    before = snapshot(tmp_path)
    code, _, stderr = run(capsys, "train", *FAST, "--epochs", "4", "--scale", "rms",
                          "--out", str(out), "--resume")
    assert code == 2 and "--scale rms differs" in stderr, stderr
    assert snapshot(tmp_path) == before
    # flags not given again come from the checkpoint
    assert run(capsys, "train", *FAST, "--epochs", "4", "--out", str(out), "--resume")[0] == 0
    fc = Forecaster.load(out / "checkpoint.npz")
    assert fc.settings.running_mean is False and fc.state.epoch == 4


def test_theta_weight_flag_reaches_the_forecast_and_resume_checks_it(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run(capsys, "train", *FAST, "--theta-weight", "0.5", "--out", str(out))
    assert code == 0 and "mix: 0.5 model + 0.5 Theta method" in stdout, stdout
    code, stdout, _ = run(capsys, "train", *FAST, "--theta-weight", "0", "--out",
                          str(tmp_path / "alone"))
    assert code == 0 and "mix:" not in stdout
    from lockstep import Forecaster

    assert Forecaster.load(out / "checkpoint.npz").settings.theta_weight == 0.5
    before = snapshot(tmp_path)
    code, _, stderr = run(capsys, "train", *FAST, "--epochs", "4", "--theta-weight", "0",
                          "--out", str(out), "--resume")
    assert code == 2 and "--theta-weight 0" in stderr and "differs" in stderr, stderr
    assert snapshot(tmp_path) == before
    code, _, stderr = run(capsys, "train", *FAST, "--task", "classify-change",
                          "--theta-weight", "0.5", "--out", str(tmp_path / "c"))
    assert code == 2 and "classify-change predicts classes" in stderr, stderr
    assert not (tmp_path / "c").exists()
