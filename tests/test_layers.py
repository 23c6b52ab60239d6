"""Stacked layers through the user-facing paths: CLI, checkpoints, resume, forecasts, check.
(The arithmetic of stacks is tested by test_reference and the agreement tests.)"""

import json

import numpy as np
import pytest

from lockstep import checkpoint, cli, reference

FAST = ["--epochs", "3", "--hidden", "5", "--backend", "numpy", "--quiet", "--patience", "0"]


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, errout = capsys.readouterr()
    return code, out, errout


def _model(folder):
    return checkpoint.read(folder / "checkpoint.npz")["sections"]["model"]


def test_train_resume_and_forecast_a_stack(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    stack = ["--layers", "3", "--dropout", "0.25"]
    assert run(capsys, "train", *FAST, *stack, "--out", str(a))[0] == 0
    ck = _model(a)
    params = {k.split(".")[-1]: v for k, v in ck["arrays"].items() if k.startswith("m0.params.")}
    assert sorted(params) == sorted(reference.param_names(3))
    assert params["W_ih_l2"].shape == (20, 5)
    assert ck["meta"]["settings"]["num_layers"] == 3 and ck["meta"]["model"]["num_layers"] == 3
    # 2 epochs, then resume to 3 (the settings, dropout included, come from the checkpoint):
    # the same bits as one run, so the masks continue in the same order.
    short = [v if v != "3" or i != 1 else "2" for i, v in enumerate(FAST)]
    assert run(capsys, "train", *short, *stack, "--out", str(b))[0] == 0
    code, _, err = run(capsys, "train", "--out", str(b), "--epochs", "3", "--resume", "--quiet")
    assert code == 0, err
    cb = _model(b)
    for n in reference.param_names(3):
        k = f"m0.params.{n}"
        assert ck["arrays"][k].tobytes() == cb["arrays"][k].tobytes(), n
    # another --layers on resume is refused, naming the difference; nothing changes
    before = (b / "checkpoint.npz").read_bytes()
    code, _, err = run(capsys, "train", "--out", str(b), "--epochs", "4", "--resume",
                       "--layers", "2")
    assert code == 2 and "layers" in err and "3" in err
    assert (b / "checkpoint.npz").read_bytes() == before
    code, out, _ = run(capsys, "forecast", "--checkpoint", str(a / "checkpoint.npz"),
                       "--horizon", "4", "--json")
    assert code == 0 and len(json.loads(out)["forecast"]) == 4


def test_dropout_without_a_stack_is_refused(tmp_path, capsys):
    code, out, err = run(capsys, "train", *FAST, "--dropout", "0.2", "--out", str(tmp_path / "r"))
    assert code == 2 and err.count("\n") == 1 and "stacked" in err
    assert not (tmp_path / "r").exists()
    code, _, err = run(capsys, "train", *FAST, "--layers", "0", "--out", str(tmp_path / "r"))
    assert code == 2 and "num_layers" in err


@pytest.mark.parametrize("extra", [[], ["--dropout", "0.3"]])
def test_check_layers_agrees(capsys, extra):
    code, out, err = run(capsys, "check", "--layers", "2", "--shape", "2,5,1,3,2", "--epochs",
                         "1", "--backends", "numpy,cpu", "--json", *extra)
    res = json.loads(out)
    assert res["problem"]["layers"] == 2
    assert code == 0 and res["agree"], err
    assert {r["run"].split(":")[0] for r in res["runs"]} >= {"numpy", "cpu"}


@pytest.fixture
def tiny_stack(monkeypatch):
    from lockstep import bench

    monkeypatch.setitem(bench.PRESETS, "tiny-stack", bench.Preset(
        "test", "float64", 5, 4, 1, 4, "mse", "adam", 0.01, 1.0, 2, 40, 9, layers=2))
    return bench


@pytest.mark.parametrize("spec", ["cpu:blocked@cpu", "torch@cpu"])
def test_bench_runs_and_validates_a_stack(tiny_stack, spec):
    """`lockstep bench --preset stacked` in small: ours bit-exact, torch's 2-layer LSTM (the
    anchor) within tolerance of the reference: the anchor times the same model."""
    if spec.startswith("torch"):
        pytest.importorskip("torch")
    r = tiny_stack.measure(spec, "tiny-stack")
    assert r["validated"], r["validation"]
    assert tiny_stack.problem("tiny-stack")[0].num_layers == 2
    assert tiny_stack.anchor_available("numpy-blas@cpu", "tiny-stack")[0] is False
    assert tiny_stack.PRESETS["stacked"].layers == 2


def test_flop_count_of_a_stack():
    from lockstep import bench
    from lockstep.config import ModelConfig

    one = bench.flops_per_epoch(ModelConfig(3, 4, 2), 5, 6)
    two = bench.flops_per_epoch(ModelConfig(3, 4, 2, num_layers=2), 5, 6)
    assert two - one == 6 * 4 * 4 * (4 + 4) * 5 * 6
