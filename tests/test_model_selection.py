"""Model selection that generalises (issue 12 item 5): each epoch is scored by a recursive
forecast of the validation span; the default run against a short fixed run on real series
(numbers in docs/results.md and the README)."""

import json

import numpy as np
import pytest

from lockstep import cli, data, reference
from lockstep.forecast import ForecastValidation, Forecaster, default_valid_size


def test_the_validation_score_is_the_recursive_forecast_error():
    fc = Forecaster(hidden_size=4, backend="numpy", holdout=24, epochs=2, quiet=True)
    fc.fit(data.load("airpassengers"))
    fv = fc.trainer.backend
    assert isinstance(fv, ForecastValidation)
    assert fc.n_valid == 36 and fv.horizon == 36 and fv.origins == [len(fc._z) - 36]
    # by hand: feed each prediction back in, MSE against the span
    fv.load(fc.state.params, None)
    buf = list(fc._z[-36 - 12:-36])
    out = []
    for _ in range(36):
        y = fv.predict(np.array(buf[-12:])[:, None, :])[-1, 0]
        out.append(y)
        buf.append(y)
    diff = np.array(out) - fc._z[-36:]
    assert np.isclose(fv.evaluate(), np.mean(diff ** 2), rtol=1e-12)
    assert fc.state.valid_loss[-1] == fv.evaluate()  # what the Trainer recorded


def test_default_validation_span():
    assert default_valid_size(12, 96) == 32  # at most a third of the values
    assert default_valid_size(12, 300) == 36  # three seasons
    assert default_valid_size(None, 80) == 16  # a fifth without a season
    assert default_valid_size(12, 96, "classify-change") == 12  # one season, as before


def _train(capsys, tmp_path, name, holdout, *extra):
    code = cli.main(["train", "--data", name, "--holdout", str(holdout), "--quiet", "--json",
                     "--out", str(tmp_path / f"{name}{len(extra)}"), *extra])
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out)


# series: (holdout, new default RMSE, MAE, MAPE, --epochs 3 RMSE); docs/results.md
MEASURED = {
    "airpassengers": (24, 22.483, 17.492, 3.827, 22.483),
    "elec_equip": (24, 1.286, 0.950, 0.978, 1.286),
    "nile": (10, 140.018, 113.487, 13.268, 140.018),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MEASURED))
def test_default_run_is_no_worse_than_a_short_fixed_run(tmp_path, capsys, name):
    holdout, rmse, mae, mape, short = MEASURED[name]
    d = _train(capsys, tmp_path, name, holdout)
    s = _train(capsys, tmp_path, name, holdout, "--epochs", "3")
    assert d["metrics"]["rmse"] <= s["metrics"]["rmse"]
    assert [round(d["metrics"][k], 3) for k in ("rmse", "mae", "mape")] == [rmse, mae, mape]
    assert round(s["metrics"]["rmse"], 3) == short
    assert d["metrics"]["rmse"] < d["baseline"]["seasonal_naive"]["rmse"]
    assert d["stopped"] == "early-stop" and d["epochs"] < 30  # well under a minute


def test_readme_table_is_what_lockstep_train_prints(tmp_path, capsys):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert cli.main(["train", "--quiet", "--out", str(tmp_path / "q")]) == 0
    table = capsys.readouterr().out.split("checkpoint:")[0].strip().splitlines()
    for line in table:
        assert line.rstrip() in readme, line


def test_valid_windows_stay_out_of_training():
    fc = Forecaster(hidden_size=4, backend="numpy", holdout=24, epochs=1, quiet=True)
    (xt, yt), (xv, yv) = fc.prepare(data.load("airpassengers"))
    assert xt.shape[1] + 12 == len(fc._z) - 36  # training windows end before the span
    assert reference.PARAM_NAMES  # the module the score's loss comes from
