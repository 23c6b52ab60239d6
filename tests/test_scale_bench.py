"""bench/scale.py stays runnable: a tiny size end to end in its own subprocess (a few seconds),
the JSON holding every measured field with positive values, the table printed."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).parents[1] / "bench"
FIELDS = ("rows", "windows", "read_s", "fit_s", "s_per_epoch", "train_s", "windows_per_s",
          "forecast_s", "save_s", "load_s", "ckpt_mib", "peak_rss_mib")


def test_scale_script_runs_a_tiny_size(tmp_path):
    out = tmp_path / "r" / "scale.json"
    r = subprocess.run([sys.executable, str(BENCH / "scale.py"), "--sizes", "30,60", "--epochs",
                        "2", "--hidden", "4", "--json-file", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert [row["series"] for row in rows] == [30, 60]
    for row in rows:
        assert "error" not in row, row
        for k in FIELDS:
            assert row[k] > 0, (k, row[k])
        assert row["epochs"] == 2 and len(row["epoch_s"]) == 2
        assert row["forecast_rows"] == 12 * row["series"] and row["forecast_finite"]
        assert row["loaded_same_forecast"]
        assert row["peak_rss_mib"] >= row["rss_after_read_mib"]
    assert data["config"]["epochs"] == 2 and data["config"]["hidden"] == 4
    assert "50000 series not run" in data["targets"]["note"]
    header = r.stdout.splitlines()
    assert any(ln.split("|")[0].strip() == "series" and "peak RSS MiB" in ln for ln in header)
    assert sum(ln.split("|")[0].strip() in ("30", "60") for ln in header) == 2
    assert "time per million rows" in r.stdout and "30 -> 60 series" in r.stdout


def test_synthetic_table_is_seeded_and_shaped():
    sys.path.insert(0, str(BENCH))
    import scale

    a, b = scale.make_table(200, seed=3), scale.make_table(200, seed=3)
    assert a.equals(b)
    assert not a.equals(scale.make_table(200, seed=4))
    sizes = a.groupby("unique_id").size()
    assert len(sizes) == 200 and sizes.min() >= 60 and sizes.max() <= 240
    assert (a["y"] > 0).all() and np.isfinite(a["y"]).all()
    first = a.groupby("unique_id")["ds"].min()
    assert first.nunique() > 12  # different start months
    assert (a.groupby("unique_id")["ds"].diff().dropna().dt.days.between(28, 31)).all()
