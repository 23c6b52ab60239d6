"""The Forecaster on one series: the README's default run, bit-exact resume from the format-2
checkpoint, divergence, atomic checkpoint writes, the training log, the public API.

Superseded here (kept in tests/test_forecaster.py): resume refusing other settings or data
(test_resume_refuses_other_settings_or_data)."""

import errno
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_same_bits

from lockstep import checkpoint, data, reference
from lockstep.forecast import Forecaster, _Loaded
from lockstep.metrics import metrics, seasonal_naive

SMALL = dict(hidden_size=6, window=6, epochs=6, batch_size=8, holdout=12, patience=None,
             ensemble=1, quiet=True)


def test_metrics_and_seasonal_naive():
    m = metrics([100, 200], [110, 180])
    assert m["rmse"] == pytest.approx(np.sqrt((100 + 400) / 2))
    assert m["mae"] == 15 and m["mape"] == pytest.approx(10.0) and "mase" not in m
    h = np.arange(1, 25, dtype=float)
    np.testing.assert_array_equal(seasonal_naive(h, 14, 12), list(range(13, 25)) + [13, 14])
    np.testing.assert_array_equal(seasonal_naive(h[:5], 3, 12), [5, 5, 5])  # shorter: naive


ROW = re.compile(r"\s+(lockstep \(.*\)|seasonal naive \(period 12\))" + r"\s+([\d.]+)" * 5 + "$")
KEYS = ("rmse", "mae", "mape", "smape", "mase")


def readme_table():
    """The default run's metrics as the README states them: RMSE, MAE, MAPE %, sMAPE %, MASE."""
    text = (Path(__file__).parents[1] / "README.md").read_text()
    rows = {}
    for line in text.splitlines():
        m = ROW.match(line)
        if m:
            rows["lockstep" if m.group(1).startswith("lockstep") else "naive"] = \
                [float(v) for v in m.group(2, 3, 4, 5, 6)]
    return rows


def test_default_run_beats_seasonal_naive_as_the_readme_says(capsys):
    """Default settings, AirPassengers, last 24 months held out (the CLI's defaults); the
    README's table is the one ``lockstep train`` prints."""
    from lockstep.cli import build_parser

    args = build_parser().parse_args(["train"])
    assert (args.holdout, args.epochs, args.hidden, args.window) == (24, 150, 32, 12)
    fc = Forecaster(holdout=24, quiet=True).fit(data.load("airpassengers"))
    ev = fc.evaluate_holdout()
    (w,) = ev["windows"]
    m, b = w["model"], w["baseline"]
    assert ev["baseline"] == "seasonal naive (period 12)"
    assert m["rmse"] < b["rmse"] and m["mape"] < b["mape"] and m["mase"] < b["mase"], (m, b)
    assert len(w["forecast"]) == 24 and np.isfinite(w["forecast"]).all()
    readme = readme_table()
    assert set(readme) == {"lockstep", "naive"}, "the README's table rows are not found"
    # the rows as the train command prints them (the table parsed the same way)
    from lockstep import cli

    cli._score_table(args, ev, "forecast of the last 24 points:", fc)
    printed = {}
    for line in capsys.readouterr().out.splitlines():
        r = ROW.match(line)
        if r:
            printed["lockstep" if r.group(1).startswith("lockstep") else "naive"] = \
                [float(v) for v in r.group(2, 3, 4, 5, 6)]
    assert printed["lockstep"] == [round(m[k], 3) for k in KEYS]
    assert printed["naive"] == [round(b[k], 3) for k in KEYS]
    assert readme["lockstep"] == printed["lockstep"], readme
    assert readme["naive"] == printed["naive"], readme


def model_section(path):
    return checkpoint.read(path)["sections"]["model"]


@pytest.mark.parametrize("kw", [dict(), dict(patience=2, optimizer="sgd", lr=0.05, momentum=0.9),
                                dict(task="classify-change", dtype="float32", train_start=0.4)],
                         ids=["adam", "sgd-early-stop", "classify-f32"])
def test_resume_is_bit_exact(tmp_path, kw):
    series = data.load("airpassengers")
    settings = {**SMALL, **kw}
    whole = Forecaster(backend="numpy", **settings).fit(series, tmp_path / "a.npz")
    part = Forecaster(backend="numpy", **{**settings, "epochs": 2}).fit(series, tmp_path / "b.npz")
    assert part.state.epoch == 2 or part.state.stopped == "early-stop"
    rest = Forecaster(backend="numpy", **settings).fit(series, tmp_path / "b.npz", resume=True)
    assert whole.state.epoch == rest.state.epoch
    a, b = model_section(tmp_path / "a.npz"), model_section(tmp_path / "b.npz")
    (ma,), (mb,) = a["meta"]["members"], b["meta"]["members"]
    assert ma["epoch"] == mb["epoch"] == whole.state.epoch
    assert ma["rng_state"] == mb["rng_state"] and ma["stopped"] == mb["stopped"]
    assert a["meta"] == b["meta"]
    assert sorted(a["arrays"]) == sorted(b["arrays"])
    for n, x in a["arrays"].items():  # parameters, optimizer state, losses, calibration
        y = b["arrays"][n]
        assert (y.dtype, y.shape, y.tobytes()) == (x.dtype, x.shape, x.tobytes()), n
    assert_same_bits(np.asarray(rest.state.train_loss), np.asarray(whole.state.train_loss),
                     "losses")
    for n in reference.names_of(whole.params):
        assert_same_bits(rest.params[n], whole.params[n], n)
    assert_same_bits(rest.predict(5)["yhat"].to_numpy(), whole.predict(5)["yhat"].to_numpy(),
                     "forecast")


def test_divergence_keeps_the_last_good_checkpoint(tmp_path):
    series = data.load("airpassengers")
    fc = Forecaster(backend="numpy", **{**SMALL, "epochs": 40, "optimizer": "sgd", "lr": 40.0,
                                        "clip": 0.0, "momentum": 0.9}).fit(series, tmp_path / "d.npz")
    assert fc.state.stopped == "diverged"
    assert all(np.isfinite(v) for v in fc.state.train_loss)
    assert all(np.isfinite(v).all() for v in fc.params.values())
    if fc.state.epoch:
        ck = _Loaded(tmp_path / "d.npz")
        (st,) = ck.states(fc.model_cfg)
        assert st.epoch == fc.state.epoch
        for n in reference.names_of(st.params):
            assert np.isfinite(st.params[n]).all()
            assert_same_bits(st.params[n], fc.state.params[n], n)


def test_checkpoint_writes_are_atomic_and_validated(tmp_path, monkeypatch):
    series = data.load("airpassengers")
    Forecaster(backend="numpy", **{**SMALL, "epochs": 1}).fit(series, tmp_path / "e.npz")
    before = (tmp_path / "e.npz").read_bytes()

    def boom(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np.lib.format, "write_array", boom)
    with pytest.raises(OSError, match="No space left on device.*e.npz"):
        Forecaster(backend="numpy", **{**SMALL, "epochs": 1, "seed": 5}).fit(series,
                                                                          tmp_path / "e.npz")
    monkeypatch.undo()
    assert (tmp_path / "e.npz").read_bytes() == before, "a failed write clobbered the checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npz"], "temporary files left behind"
    (tmp_path / "bad.npz").write_bytes(before[: len(before) // 2])
    with pytest.raises(checkpoint.CheckpointError, match=r"bad.npz is not a lockstep checkpoint"):
        checkpoint.read(tmp_path / "bad.npz")
    with pytest.raises(checkpoint.CheckpointError, match=r"bad.npz is not a lockstep checkpoint"):
        Forecaster.load(tmp_path / "bad.npz")


def test_trainer_logs_one_exact_line_per_epoch():
    lines = []
    fc = Forecaster(backend="numpy", **{**SMALL, "quiet": False}, logger=lines.append)
    fc.fit(data.load("airpassengers"))
    assert len(lines) == SMALL["epochs"]
    for k, (line, v) in enumerate(zip(lines, fc.state.train_loss)):
        assert f"epoch {k + 1:4d}/{SMALL['epochs']}" in line
        assert f"train {float(v)!r}" in line


def test_many_series_forecast_shapes():
    s = data.synthetic(3, 120, seed=1)
    fc = Forecaster(backend="numpy", **{**SMALL, "epochs": 2}).fit(s)
    f = fc.predict(7)
    assert len(f) == 21 and f.unique_id.tolist() == [sid for sid in s.ids for _ in range(7)]
    assert np.isfinite(f["yhat"]).all()


def test_public_api_is_importable_from_the_package():
    import lockstep

    assert lockstep.Forecaster is Forecaster and lockstep.data.read is data.read
    assert callable(lockstep.data.load) and callable(lockstep.data.synthetic)
    assert {"Forecaster", "ModelConfig", "TrainConfig", "data", "reference"} <= set(lockstep.__all__)
    from lockstep import panel

    assert panel.GlobalForecaster is Forecaster and panel.read_panel is data.read
