"""The command line a newcomer expects (issue 12): results on stdout, logs on stderr, --json
alone on stdout for every command, help with defaults, the period from the dates, settings
remembered on --resume."""

import json

import pytest

from lockstep import cli

FAST = ["--epochs", "3", "--hidden", "5", "--ensemble", "1", "--backend", "numpy", "--quiet"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, errout = capsys.readouterr()
    return code, out, errout


# ---- streams -------------------------------------------------------------------------------

def test_train_table_and_forecast_values_are_on_stdout(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, stderr = run(capsys, "train", *FAST, "--out", out)
    assert code == 0, stderr
    assert "forecast of the last 24 points (numpy:reference@cpu):" in stdout
    lines = stdout.splitlines()
    assert any(ln.split()[:2] == ["lockstep", "(numpy:reference@cpu)"] for ln in lines)
    assert any(ln.split()[:4] == ["seasonal", "naive", "(period", "12)"] for ln in lines)
    assert "RMSE" in stdout and "MASE" in stdout and "interval coverage:" in stdout
    assert f"checkpoint: {out / 'checkpoint.npz'}  (3 epochs, completed)" in stdout
    assert "RMSE" not in stderr
    code, stdout, stderr = run(capsys, "forecast", "--checkpoint", out / "checkpoint.npz",
                               "--horizon", "3")
    assert code == 0, stderr
    head, *rows = stdout.splitlines()
    assert head.split() == ["unique_id", "ds", "yhat", "yhat-lo-80", "yhat-hi-80",
                            "yhat-lo-95", "yhat-hi-95"]
    assert [ln.split()[:2] for ln in rows] == [["Passengers", "1961-01-01"],
                                               ["Passengers", "1961-02-01"],
                                               ["Passengers", "1961-03-01"]]
    assert stderr == ""


def test_data_info_check_summaries_are_on_stdout(capsys):
    code, stdout, _ = run(capsys, "data")
    assert code == 0 and "airpassengers: 1 series, 144 rows, monthly (MS), season 12" in stdout
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


# ---- help ----------------------------------------------------------------------------------

COMMANDS = ("info", "data", "train", "forecast", "check", "bench")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_and_shows_its_default(command):
    import argparse

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    p = sub.choices[command]
    text = p.format_help()
    for a in p._actions:
        if not a.option_strings or a.dest == "help":
            continue
        assert a.help, f"{command} {a.option_strings[0]} has no help"
        if a.default not in (None, False):
            assert f"(default: {a.default})" in " ".join(text.split()), \
                f"{command} {a.option_strings[0]}: default {a.default!r} not shown"


def test_backend_and_strategy_help_list_the_registry():
    from lockstep import backends

    text = " ".join(cli.build_parser()._subparsers._group_actions[0].choices["train"]
                    .format_help().split())
    for name in backends.REGISTRY:
        cls = backends.get(name)
        assert name in text
        assert tuple(cls.strategies) == cli.STRATEGIES[name], name
        for s in cls.strategies:
            assert s in text, (name, s)
    assert "auto (the fastest available)" in text
    top = " ".join(cli.build_parser().format_help().split())
    assert "numba-cuda: per-sample, fused" in top and "cuda-raw: naive, fused, persistent" in top


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("lockstep ")


def test_check_with_ce_picks_classes_for_the_default_shape(capsys):
    code, stdout, stderr = run(capsys, "check", "--dtype", "float64", "--loss", "ce",
                               "--backends", "numpy", "--epochs", "1", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["problem"]["O"] == 3 and "O = 3 classes" in stderr
    code, _, stderr = run(capsys, "check", "--loss", "ce", "--shape", "1,3,1,3,2")
    assert code == 2 and "--shape 1,3,3,3,2" in stderr


# ---- seasonality from the dates ------------------------------------------------------------

def _csv(path, labels, rng_seed=0):
    import numpy as np

    rng = np.random.default_rng(rng_seed)
    n = len(labels)
    v = 100 + 10 * np.sin(2 * np.pi * np.arange(n) / 12) + rng.normal(0, 1, n) + np.arange(n)
    path.write_text("date,sales\n" + "".join(f"{t},{x:.3f}\n" for t, x in zip(labels, v)))
    return path


def _months(n, y=2001):
    return [f"{y + i // 12:04d}-{i % 12 + 1:02d}-01" for i in range(n)]


@pytest.mark.parametrize("labels, period", [
    (_months(40), 12),
    ([f"{2000 + i // 12}-{i % 12 + 1:02d}" for i in range(30)], 12),
    ([f"{2000 + i // 4}-Q{i % 4 + 1}" for i in range(12)], 4),
    ([f"{2000 + i // 4}-{3 * (i % 4) + 1:02d}-01" for i in range(12)], 4),
    ([f"2020-01-{d:02d}" for d in range(1, 29)], 7),
    ([str(__import__("datetime").date(2019, 12, 30) + __import__("datetime").timedelta(7 * k))
      for k in range(10)], 52),
    ([f"2020-01-01T{h:02d}:00" for h in range(24)], 24),
    ([str(2000 + i) for i in range(10)], None),
    (["2020-01-01", "2020-01-02", "2020-01-05", "2020-01-06"], None),
])
def test_period_from_the_dates(tmp_path, capsys, labels, period):
    f = _csv(tmp_path / "p.csv", labels)
    # plain years are numbers: a numeric first column is a series unless named as the time
    extra = ["--time-column", "date"] if all(t.isdigit() for t in labels) else []
    code, stdout, stderr = run(capsys, "data", "--data", f, *extra, "--json")
    if period is None and not extra:  # irregular dates: no frequency, so no period
        assert code == 2 and stdout == "" and "pass --freq" in stderr, stderr
        return
    assert code == 0, stderr
    d = json.loads(stdout)
    assert d["series"] == 1 and d["rows"] == len(labels)
    assert d["season"] == (period or 0)


def test_monthly_csv_gets_period_12_and_a_named_baseline(tmp_path, capsys):
    f = _csv(tmp_path / "m.csv", _months(72))
    code, stdout, _ = run(capsys, "data", "--data", f)
    assert code == 0 and "monthly (MS), season 12" in stdout
    code, stdout, stderr = run(capsys, "train", *FAST, "--data", f, "--holdout", "12",
                               "--out", tmp_path / "a", "--json")
    assert code == 0, stderr
    res = json.loads(stdout)
    assert res["season"] == 12 == res["holdout"]["season"]
    assert res["holdout"]["baseline"] == "seasonal naive (period 12)"
    assert "seasonal naive (period 12)" in stderr
    # --season overrides the dates; 0 = none, and the baseline says it is plain naive
    code, stdout, stderr = run(capsys, "train", *FAST, "--data", f, "--holdout", "12",
                               "--season", "0", "--out", tmp_path / "b")
    assert code == 0, stderr
    assert "naive (last value)" in stdout and "seasonal naive" not in stdout


def test_undated_csv_says_how_to_give_a_period(tmp_path, capsys):
    f = tmp_path / "u.csv"
    f.write_text("x\n" + "".join(f"{i % 5}\n" for i in range(30)))
    code, stdout, _ = run(capsys, "data", "--data", f)
    assert code == 0 and "--season" in stdout


# ---- settings remembered on --resume -------------------------------------------------------

def _ck(out):
    """The model section of the checkpoint in ``out`` (checkpoint.read verifies it)."""
    from lockstep import checkpoint

    return checkpoint.read(out / "checkpoint.npz")["sections"]["model"]


def _epoch(out):
    (member,) = _ck(out)["meta"]["members"]  # FAST and these tests train one model
    return member["epoch"]


def test_resume_takes_every_setting_and_the_data_from_the_checkpoint(tmp_path, capsys):
    f = _csv(tmp_path / "m.csv", _months(60))
    a, b = tmp_path / "a", tmp_path / "b"
    common = ["--data", f, "--value-column", "sales", "--holdout", "12", "--hidden", "6",
              "--window", "6", "--lr", "0.01", "--ensemble", "1", "--backend", "numpy",
              "--quiet"]
    assert run(capsys, "train", *common, "--epochs", "5", "--out", a)[0] == 0
    assert run(capsys, "train", *common, "--epochs", "2", "--out", b)[0] == 0
    # only --out, --resume and the new total: the settings and the data come from the checkpoint
    code, stdout, stderr = run(capsys, "train", "--out", b, "--resume", "--epochs", "5",
                               "--quiet", "--backend", "numpy")
    assert code == 0, stderr
    assert _epoch(b) == 5 and _ck(b)["meta"]["settings"]["hidden_size"] == 6
    assert _ck(b)["meta"]["settings"]["window"] == 6 and _ck(b)["meta"]["settings"]["lr"] == 0.01
    import numpy as np

    for k in ("W_ih", "W_hh", "b", "W_out", "b_out"):
        assert np.array_equal(_ck(a)["arrays"][f"m0.params.{k}"],
                              _ck(b)["arrays"][f"m0.params.{k}"]), k


@pytest.mark.parametrize("flag, words", [
    (["--hidden", "7"], "--hidden 7 differs from the checkpoint"),
    (["--lr", "0.5"], "--lr 0.5 differs"),
    (["--no-log"], "--transform none differs"),  # --no-log is --transform none
    (["--transform", "log1p"], "--transform log1p differs"),
    (["--patience", "0"], "--patience 0 (off) differs"),
])
def test_resume_with_a_differing_flag_is_refused_naming_it(tmp_path, capsys, flag, words):
    out = tmp_path / "run"
    assert run(capsys, "train", *FAST, "--out", out)[0] == 0
    code, stdout, stderr = run(capsys, "train", *FAST, "--epochs", "5", "--out", out,
                               "--resume", *flag)
    assert code == 2 and stdout == ""
    (line,) = stderr.strip().splitlines()
    assert line.startswith("lockstep: error: ") and words in line and "None" not in line, line
    assert _epoch(out) == 3


def test_resume_a_completed_run_needs_more_epochs(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", *FAST, "--out", out)[0] == 0
    code, _, stderr = run(capsys, "train", "--out", out, "--resume")
    assert code == 2 and "completed its 3 epochs" in stderr
    code, _, stderr = run(capsys, "train", "--out", out, "--resume", "--epochs", "3")
    assert code == 2 and "has 3 epochs already" in stderr and "pass more" in stderr
    assert _epoch(out) == 3


def test_resume_of_an_early_stopped_run_says_so_and_needs_the_flag(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--hidden", "5", "--backend", "numpy", "--quiet", "--lr", "0.2", "--patience", "1",
            "--ensemble", "1"]
    assert run(capsys, "train", *args, "--epochs", "60", "--out", out)[0] == 0
    (member,) = _ck(out)["meta"]["members"]
    assert member["stopped"] == "early-stop", "the setup should stop early"
    done = member["epoch"]
    code, stdout, stderr = run(capsys, "train", "--out", out, "--resume", "--epochs", done + 3)
    assert code == 2 and "stopped early at epoch" in stderr and "--continue-early-stopped" in stderr
    assert _epoch(out) == done
    code, stdout, stderr = run(capsys, "train", "--out", out, "--resume", "--epochs", done + 3,
                               "--continue-early-stopped", "--quiet")
    assert code == 0, stderr
    assert _epoch(out) == done + 3


# ---- the README's commands, as written -----------------------------------------------------

def _readme_commands():
    """The quick start's `lockstep train`, then every line of the README's command block."""
    import re
    import shlex
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    (block,) = [b for b in blocks if "lockstep train --data examples/sales.csv" in b]
    cmds = [["lockstep", "train"]]
    for line in block.splitlines():
        argv = shlex.split(line, comments=True)
        if argv:
            cmds.append(argv)
    return cmds


@pytest.mark.slow
def test_every_readme_command_runs_as_written(tmp_path, monkeypatch, capsys):
    import shutil
    from pathlib import Path

    shutil.copytree(Path(__file__).resolve().parents[1] / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    cmds = _readme_commands()
    assert len(cmds) >= 9
    for argv in cmds:
        assert argv[0] == "lockstep", argv
        code, stdout, stderr = run(capsys, *argv[1:], *(["--quiet"] if argv[1] == "train" else []))
        assert code == 0, f"{' '.join(argv)}: exit {code}: {stderr[-2000:]}"
        assert stdout.strip(), f"{' '.join(argv)}: nothing on stdout"
    for f in ("f.png", "series.png", "speedup.png", "run1/checkpoint.npz",
              "classify/checkpoint.npz", "lockstep-out/checkpoint.npz"):
        assert (tmp_path / f).is_file(), f
    # --resume trained every ensemble member on to the new total (--patience 0: no early stop)
    members = _ck(tmp_path / "run1")["meta"]["members"]
    assert members and [m["epoch"] for m in members] == [200] * len(members)


# ---- classify-change ------------------------------------------------------------------------

def test_classify_change_reports_accuracy_and_confusion(tmp_path, capsys):
    code, stdout, stderr = run(capsys, "train", "--task", "classify-change", *FAST,
                               "--out", tmp_path / "c", "--json")
    assert code == 0, stderr
    c = json.loads(stdout)["holdout"]["classes"]
    conf = c["confusion"]
    assert len(conf) == 3 and all(len(r) == 3 for r in conf) and sum(map(sum, conf)) == 24
    hits = sum(conf[j][j] for j in range(3))
    assert c["accuracy"] == hits / 24 \
        == sum(p == a for p, a in zip(c["predicted"], c["actual"])) / 24
    assert 0 <= c["majority_accuracy"] <= 1
    (centroids,) = c["centroids"]  # one series: its three class centres, increasing
    assert len(centroids) == 3 and centroids == sorted(centroids)
    assert "accuracy" in stderr and "confusion" in stderr
