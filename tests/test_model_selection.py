"""Model selection that generalises (issue 12 item 5): each epoch is scored by a recursive
forecast of every series' validation span; the default run against a short fixed run on real
series (numbers in docs/results.md and the README)."""

import json

import numpy as np
import pytest

from lockstep import cli
from lockstep.forecast import Forecaster, _Validation, default_valid_size


def test_the_validation_score_is_the_recursive_forecast_error():
    fc = Forecaster(hidden_size=4, backend="numpy", holdout=24, epochs=2, quiet=True, ensemble=1)
    fc.fit("airpassengers")
    assert fc.n_valid.tolist() == [36]
    # the score of the last epoch, by hand: feed each prediction back in (beside the running
    # mean through the origin, held), add that mean back, MSE against the span's values
    fv = _Validation(fc.trainer.backend, fc, np.array([0]), fc.n_train - 36, fc.n_valid)
    fv.load(fc.state.params, None)
    A = fc._A
    end = fc.n_train[0] - 36
    m = fc._M[end - 1]
    buf = [A[r].copy() for r in range(end - 12, end)]
    buf[-1][1] = m
    out = []
    for _ in range(36):
        y = fv.predict(np.array(buf[-12:])[:, None, :])[-1, 0, 0]
        out.append(y)
        buf.append(np.array([y, m]))
    diff = np.array(out) + m - fc._Zv[end:end + 36]
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


# series: (holdout, default RMSE, MAE, MAPE, --epochs 3 RMSE, beats the baseline's RMSE);
# docs/results.md. Since the M3 validation studies (seasonal indices, the lag-1 difference of
# non-seasonal series, then rms scaling with the running mean and lr 0.002) these tails moved:
# AirPassengers 28.571 -> 20.030, the Nile 156.763 -> 152.699, elec_equip 2.749 -> 5.413 (now
# above seasonal naive's 4.227); with a quarter of the Theta method mixed in (theta_weight):
# AirPassengers 25.265, the Nile 146.931, elec_equip 4.919: reported, not tuned to.
MEASURED = {
    "airpassengers": (24, 25.265, 19.064, 3.921, 39.670, True),
    "elec_equip": (24, 4.919, 4.230, 4.213, 4.919, False),
    "nile": (10, 146.931, 122.421, 13.339, 146.931, True),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MEASURED))
def test_default_run_is_no_worse_than_a_short_fixed_run(tmp_path, capsys, name):
    holdout, rmse, mae, mape, short, beats = MEASURED[name]
    d = _train(capsys, tmp_path, name, holdout)
    s = _train(capsys, tmp_path, name, holdout, "--epochs", "3")
    dm, sm = d["holdout"]["overall"]["model"], s["holdout"]["overall"]["model"]
    assert dm["rmse"] <= sm["rmse"]
    assert [round(dm[k], 3) for k in ("rmse", "mae", "mape")] == [rmse, mae, mape]
    assert round(sm["rmse"], 3) == short
    assert (dm["rmse"] < d["holdout"]["overall"]["baseline"]["rmse"]) == beats
    assert d["stopped"] == "early-stop" and d["epochs"] < 60  # well under a minute


def test_readme_table_is_what_lockstep_train_prints(tmp_path, capsys):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert cli.main(["train", "--quiet", "--out", str(tmp_path / "q")]) == 0
    table = capsys.readouterr().out.split("interval coverage")[0].strip().splitlines()
    for line in table:
        assert line.rstrip() in readme, line


def test_valid_windows_stay_out_of_training():
    fc = Forecaster(hidden_size=4, backend="numpy", holdout=24, epochs=1, quiet=True)
    w = fc.prepare(fc.read("airpassengers"))
    first, n_train = int(fc.first[0]), int(fc.n_train[0])
    # every training window's last target lies before the validation span
    last_target = w.starts + w.W
    assert last_target.max() == n_train - 36 - 1 and w.starts.min() == first
    assert w.shape[1] == n_train - first - 36 - 12
