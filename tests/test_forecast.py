"""Trainer, checkpoints and Forecaster: quality, bit-exact resume, divergence, metrics."""

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_same_bits

from lockstep import checkpoint, data, reference
from lockstep.forecast import Forecaster, metrics, seasonal_naive

SMALL = dict(hidden_size=6, window=6, epochs=6, batch_size=8, holdout=12, patience=None,
             quiet=True)


def test_metrics_and_seasonal_naive():
    m = metrics([100, 200], [110, 180])
    assert m["rmse"] == pytest.approx(np.sqrt((100 + 400) / 2))
    assert m["mae"] == 15 and m["mape"] == pytest.approx(10.0)
    h = np.arange(1, 25, dtype=float)
    np.testing.assert_array_equal(seasonal_naive(h, 14, 12)[:, 0],
                                  list(range(13, 25)) + [13, 14])


def readme_table():
    """The default run's metrics as the README states them."""
    text = (Path(__file__).parents[1] / "README.md").read_text()
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\s+(lockstep \(.*\)|seasonal naive \(period 12\))\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", line)
        if m:
            rows["lockstep" if m.group(1).startswith("lockstep") else "naive"] = \
                [float(v) for v in m.group(2, 3, 4)]
    return rows


def test_default_run_beats_seasonal_naive_as_the_readme_says():
    """Default settings, AirPassengers, last 24 months held out (the CLI's defaults)."""
    from lockstep.cli import build_parser

    args = build_parser().parse_args(["train"])
    assert (args.holdout, args.epochs, args.hidden, args.window) == (24, 150, 32, 12)
    fc = Forecaster(holdout=24, quiet=True).fit(data.load("airpassengers"))
    ev = fc.evaluate_holdout()
    m, b = ev["metrics"], ev["baseline"]["seasonal_naive"]
    assert m["rmse"] < b["rmse"] and m["mape"] < b["mape"], (m, b)
    assert ev["forecast"].shape == (24, 1) and np.isfinite(ev["forecast"]).all()
    readme = readme_table()
    assert readme["lockstep"] == [round(m[k], 3) for k in ("rmse", "mae", "mape")], readme
    assert readme["naive"] == [round(b[k], 3) for k in ("rmse", "mae", "mape")], readme


@pytest.mark.parametrize("kw", [dict(), dict(patience=2, optimizer="sgd", lr=0.05, momentum=0.9),
                                dict(task="classify-change", dtype="float32")],
                         ids=["adam", "sgd-early-stop", "classify-f32"])
def test_resume_is_bit_exact(tmp_path, kw):
    series = data.load("airpassengers")
    settings = {**SMALL, **kw}
    whole = Forecaster(backend="numpy", **settings).fit(series, tmp_path / "a.npz")
    part = Forecaster(backend="numpy", **{**settings, "epochs": 2}).fit(series, tmp_path / "b.npz")
    assert part.state.epoch == 2 or part.state.stopped == "early-stop"
    rest = Forecaster(backend="numpy", **settings).fit(series, tmp_path / "b.npz", resume=True)
    a, b = checkpoint.load(tmp_path / "a.npz"), checkpoint.load(tmp_path / "b.npz")
    assert a["epoch"] == b["epoch"] == whole.state.epoch == rest.state.epoch
    assert_same_bits(np.asarray(rest.state.train_loss), np.asarray(whole.state.train_loss), "losses")
    assert_same_bits(np.asarray(b["history"]["valid_loss"]), np.asarray(a["history"]["valid_loss"]), "valid")
    for n in reference.PARAM_NAMES:
        assert_same_bits(b["params"][n], a["params"][n], n)
    assert a["rng_state"] == b["rng_state"]
    np.testing.assert_array_equal(rest.predict(5), whole.predict(5))


def test_resume_refuses_other_settings_or_data(tmp_path):
    series = data.load("airpassengers")
    Forecaster(backend="numpy", **{**SMALL, "epochs": 1}).fit(series, tmp_path / "c.npz")
    with pytest.raises(checkpoint.CheckpointError, match="hidden_size=6, this run asks for 7"):
        Forecaster(backend="numpy", **{**SMALL, "hidden_size": 7}).fit(series, tmp_path / "c.npz", resume=True)
    other = data.Series(series.values * 2, series.names, series.time, "x", 12)
    with pytest.raises(checkpoint.CheckpointError, match="other data"):
        Forecaster(backend="numpy", **SMALL).fit(other, tmp_path / "c.npz", resume=True)


def test_divergence_keeps_the_last_good_checkpoint(tmp_path):
    series = data.load("airpassengers")
    fc = Forecaster(backend="numpy", **{**SMALL, "epochs": 40, "optimizer": "sgd", "lr": 40.0,
                                        "clip": 0.0, "momentum": 0.9}).fit(series, tmp_path / "d.npz")
    assert fc.state.stopped == "diverged"
    assert all(np.isfinite(v) for v in fc.state.train_loss)
    if fc.state.epoch:
        ck = checkpoint.load(tmp_path / "d.npz")
        assert ck["epoch"] == fc.state.epoch
        assert all(np.isfinite(ck["params"][n]).all() for n in reference.PARAM_NAMES)


def test_checkpoint_writes_are_atomic_and_validated(tmp_path, monkeypatch):
    series = data.load("airpassengers")
    Forecaster(backend="numpy", **{**SMALL, "epochs": 1}).fit(series, tmp_path / "e.npz")
    before = (tmp_path / "e.npz").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        Forecaster(backend="numpy", **{**SMALL, "epochs": 1}).fit(series, tmp_path / "e.npz")
    monkeypatch.undo()
    assert (tmp_path / "e.npz").read_bytes() == before, "a failed write clobbered the checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npz"], "temporary files left behind"
    (tmp_path / "bad.npz").write_bytes(before[: len(before) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="not a readable lockstep checkpoint"):
        checkpoint.load(tmp_path / "bad.npz")


def test_trainer_logs_one_exact_line_per_epoch():
    lines = []
    fc = Forecaster(backend="numpy", **{**SMALL, "quiet": False}, logger=lines.append)
    fc.fit(data.load("airpassengers"))
    assert len(lines) == SMALL["epochs"]
    for line, v in zip(lines, fc.state.train_loss):
        assert f"train {float(v)!r}" in line


def test_multivariate_forecast_shapes():
    s = data.synthetic(3, 120, seed=1)
    fc = Forecaster(backend="numpy", **{**SMALL, "epochs": 2}).fit(s)
    assert fc.predict(7).shape == (7, 3)


def test_public_api_is_importable_from_the_package():
    import lockstep

    assert lockstep.Forecaster is Forecaster and callable(lockstep.data.load_csv)
    assert {"Forecaster", "ModelConfig", "TrainConfig", "data", "reference"} <= set(lockstep.__all__)
