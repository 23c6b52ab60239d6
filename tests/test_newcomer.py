"""The command line a newcomer expects (issue 12): results on stdout, logs on stderr, --json
alone on stdout for every command, help with defaults, the period from the dates, settings
remembered on --resume."""

import json

import pytest

from lockstep import cli

FAST = ["--epochs", "3", "--hidden", "5", "--backend", "numpy", "--quiet"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, errout = capsys.readouterr()
    return code, out, errout


# ---- streams -------------------------------------------------------------------------------

def test_train_table_and_forecast_values_are_on_stdout(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, stderr = run(capsys, "train", *FAST, "--out", out)
    assert code == 0, stderr
    assert "forecast of the last 24 points:" in stdout and "RMSE" in stdout
    assert "checkpoint:" in stdout
    assert "RMSE" not in stderr
    code, stdout, stderr = run(capsys, "forecast", "--checkpoint", out / "checkpoint.npz",
                               "--horizon", "3")
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == ["1961-01", "1961-02", "1961-03"]
    assert stderr == ""


def test_data_info_check_summaries_are_on_stdout(capsys):
    code, stdout, _ = run(capsys, "data")
    assert code == 0 and "airpassengers: 144 rows" in stdout
    code, stdout, _ = run(capsys, "info")
    assert code == 0 and stdout.startswith("lockstep ") and "numpy:reference@cpu" in stdout
    code, stdout, stderr = run(capsys, "check", "--backends", "numpy", "--shape", "1,3,1,3,2",
                               "--epochs", "1")
    assert code == 0 and "all runs agree bit for bit" in stdout
    assert "training numpy" in stderr  # progress stays on stderr


@pytest.mark.parametrize("argv", [
    ["info"],
    ["data"],
    ["check", "--backends", "numpy", "--shape", "1,3,1,3,2", "--epochs", "1"],
    ["bench", "--preset", "seed", "--backends", "numpy", "--anchors", ""],
])
def test_json_is_alone_on_stdout_for_every_command(capsys, argv):
    code, stdout, stderr = run(capsys, *argv, "--json")
    assert code == 0, stderr
    json.loads(stdout)  # nothing else on stdout


def test_train_and_forecast_json_alone_on_stdout(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, stderr = run(capsys, "train", *FAST, "--out", out, "--json")
    assert code == 0 and json.loads(stdout)["epochs"] == 3
    assert "RMSE" in stderr  # the table moves to stderr
    code, stdout, _ = run(capsys, "forecast", "--checkpoint", out / "checkpoint.npz",
                          "--horizon", "2", "--json")
    assert code == 0 and len(json.loads(stdout)["forecast"]) == 2


def test_bench_json_file_and_old_spelling(tmp_path, capsys):
    args = ["bench", "--preset", "seed", "--backends", "numpy", "--anchors", ""]
    code, stdout, stderr = run(capsys, *args, "--json", "--json-file", tmp_path / "a.json")
    assert code == 0, stderr
    assert json.loads(stdout) == json.loads((tmp_path / "a.json").read_text())
    code, stdout, stderr = run(capsys, *args, "--json", tmp_path / "b.json")  # the old spelling
    assert code == 0 and (tmp_path / "b.json").is_file() and "| implementation" in stdout
    code, stdout, stderr = run(capsys, *args, "--json", "-")  # '-' is stdout, not a file
    assert code == 0 and json.loads(stdout)["results"]
