"""Many series through the one reader (``data.read``) and the one ``Forecaster``: long and wide
tables, dates, covariates that the model needs and uses, conformal intervals that cover,
rolling-origin backtests, checkpoints, the command line and the README's many-series commands.

Superseded here (kept in tests/test_forecaster.py): too-short series named or skipped
(test_too_short_series_are_named_or_skipped) and the global model's bits on every backend
(test_global_model_has_the_same_bits_on_every_backend)."""

import numpy as np
import pytest
from conftest import assert_same_bits

pd = pytest.importorskip("pandas")

from lockstep import Forecaster, checkpoint, data  # noqa: E402
from lockstep.data import DataError, calendar  # noqa: E402
from lockstep.metrics import metrics, naive_scale, seasonal_naive  # noqa: E402


def synthetic_long(n_series=6, base_len=60, freq="MS", noise=1.0, seed=0, exog=False):
    """Seasonal series of different lengths and levels with Gaussian noise of known sigma;
    with ``exog`` a known-in-advance driver that adds 5 * x to y."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n_series):
        n = base_len + 7 * i
        t = np.arange(n)
        y = 40 + 15 * i + 6 * np.sin(2 * np.pi * t / 12 + i) + rng.normal(0, noise, n)
        d = {"unique_id": f"s{i}", "ds": pd.date_range("2001-01-01", periods=n, freq=freq)}
        if exog:
            x = rng.normal(0, 1, n)
            d["promo"] = x
            y = y + 5 * x
        d["y"] = y
        parts.append(pd.DataFrame(d))
    return pd.concat(parts, ignore_index=True)


def fc(backend="cpu", **kw):
    """A small, quick Forecaster (one model unless ``ensemble`` says otherwise)."""
    base = dict(hidden_size=6, window=8, epochs=4, patience=None, batch_size=16, ensemble=1,
                quiet=True)
    base.update(kw)
    return Forecaster(backend=backend, **base)


def future_dates(p, i, h):
    """The next ``h`` stamps of series ``i`` of panel ``p``."""
    return calendar.step_dates(p.last_dates()[i:i + 1], h, p.freq)[0]


# ---- loading ---------------------------------------------------------------------------------

def test_long_and_wide_tables_give_the_same_panel(tmp_path):
    df = synthetic_long(3, 30)
    p = data.read(df)
    assert p.ids.tolist() == ["s0", "s1", "s2"] and p.freq == "MS" and p.season == 12
    assert p.lengths().tolist() == [30, 37, 44]
    wide = df.pivot(index="ds", columns="unique_id", values="y").reset_index()
    path = tmp_path / "wide.csv"
    wide.to_csv(path, index=False, float_format="%.17g")
    w = data.read(path)  # shorter series end in empty cells: they end there
    assert w.ids.tolist() == p.ids.tolist() and w.freq == "MS"
    assert_same_bits(w.indptr, p.indptr, "indptr")
    assert_same_bits(w.y, p.y, "values")
    assert (w.ds == p.ds).all()
    wide.iloc[10, 1] = np.nan  # a hole inside series s0 is refused, with its row
    with pytest.raises(DataError, match="series 's0' has an empty cell at row 10"):
        data.read(wide)
    df.rename(columns={"unique_id": "store", "ds": "month", "y": "sales"}).to_csv(
        tmp_path / "long.csv", index=False, float_format="%.17g")
    q = data.read(tmp_path / "long.csv", id_column="store", time_column="month",
                  value_column="sales")
    assert q.ids.tolist() == p.ids.tolist()
    assert_same_bits(q.indptr, p.indptr, "indptr")
    assert_same_bits(q.y, p.y, "values")
    assert (q.ds == p.ds).all()


def test_wide_table_of_equal_lengths():
    ds = pd.date_range("2020-01-06", periods=20, freq="W-MON")
    wide = pd.DataFrame({"week": ds, "a": np.arange(20.0) + 1, "b": np.arange(20.0) * 2 + 3})
    p = data.read(wide, time_column="week")
    assert p.ids.tolist() == ["a", "b"] and p.freq.startswith("W") and p.season == 52
    np.testing.assert_array_equal(p.values(1), np.arange(20.0) * 2 + 3)


@pytest.mark.parametrize("freq,season", [("QS", 4), ("D", 7), ("h", 24), ("YS", 0), ("B", 5)])
def test_frequency_and_season_inferred(freq, season):
    df = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2021-01-01", periods=30, freq=freq),
                       "y": np.arange(30.0) + 1})
    p = data.read(df)
    assert p.season == season
    assert calendar.calendar_features(p.ds, p.freq).shape == (30, 2 if season else 0)


def bad_tables():
    ok = synthetic_long(2, 20)
    dup = pd.concat([ok.iloc[:4], ok.iloc[[3]], ok.iloc[4:]], ignore_index=True)
    late = pd.concat([ok, ok.iloc[[3]]], ignore_index=True)  # a duplicate out of order
    gap = ok.drop(index=[5])
    missing = ok.astype({"y": object})
    missing.loc[4, "y"] = "n/a"
    text = ok.astype({"y": object})
    text.loc[4, "y"] = "abc"
    date = ok.astype({"ds": object})
    date.loc[2, "ds"] = "not a date"
    mixed = ok.copy()
    mixed.loc[mixed.unique_id == "s1", "ds"] = pd.date_range("2001-01-01", periods=27, freq="D")
    empty = ok.astype({"ds": object})
    empty.loc[3, "ds"] = ""
    return [("duplicate", dup, r"'s0' has the timestamp 2001-04-01 more than once \(rows 3, 4\)"),
            ("out of order", late, r"'s0': 2001-04-01 at row 47 comes after 2002-08-01"),
            ("empty date", empty, "'s0' has no date at row 3"),
            ("gap", gap, r"s0.*not regular.*expected 2001-06-01"),
            ("missing", missing, r"series 's0' has no value at row 4 in column 'y'"),
            ("text", text, r"series 's0': 'abc' at row 4 in column 'y' is not a number"),
            ("date", date, r"'not a date' at row 2 is not a date"),
            ("mixed", mixed, "different frequencies")]


@pytest.mark.parametrize("name,df,match", bad_tables(), ids=lambda v: v if isinstance(v, str) else "")
def test_bad_tables_are_refused_with_the_rows_named(name, df, match):
    with pytest.raises(DataError, match=match) as e:
        data.read(df)
    assert "\n" not in str(e.value)


def test_missing_columns_are_named(tmp_path):
    df = synthetic_long(2, 20)
    with pytest.raises(DataError, match="no value column 'sales'"):
        data.read(df, value_column="sales")
    with pytest.raises(DataError, match="no covariate column 'price'"):
        data.read(df, exog=["price"])
    with pytest.raises(DataError, match="no time column 'when'"):
        data.read(df, time_column="when")
    with pytest.raises(DataError, match="no such file"):
        data.read(tmp_path / "none.csv")


# ---- the model --------------------------------------------------------------------------------

def test_forecasts_of_the_held_out_rows_carry_their_dates_and_intervals():
    df = synthetic_long(3, 36, exog=True)
    g = fc(calendar=True, exog=["promo"], epochs=2, window=6, holdout=6).fit(df)
    assert g.model_cfg.input_size == 1 + 2 + 1 + 1  # value, calendar, a covariate, running mean
    f = g.predict(6)
    assert list(f.columns) == ["unique_id", "ds", "yhat", "yhat-lo-80", "yhat-hi-80",
                               "yhat-lo-95", "yhat-hi-95"]
    assert (f["yhat-lo-95"] <= f["yhat-lo-80"]).all() and (f["yhat-hi-80"] <= f["yhat-hi-95"]).all()
    p = g.panel
    for i, sid in enumerate(p.ids):  # the held-out rows are the ones forecast
        np.testing.assert_array_equal(f[f.unique_id == sid].ds.to_numpy(), p.ds[p.rows(i)][-6:])


def test_covariates_are_needed_for_the_future_and_used(tmp_path):
    df = synthetic_long(3, 48, exog=True, noise=0.2)
    # the default seasonal difference: the model reads the covariate differenced alike
    kw = dict(epochs=40, window=6, transform="none")
    g = fc(exog=["promo"], **kw).fit(df)
    p = g.panel
    with pytest.raises(DataError, match="covariates promo.*--future"):
        g.predict(4)
    fut = pd.concat([pd.DataFrame({"unique_id": sid, "ds": future_dates(p, i, 4),
                                   "promo": [2.0, -2.0, 2.0, -2.0]})
                     for i, sid in enumerate(p.ids)])
    path = tmp_path / "future.csv"
    fut.to_csv(path, index=False)
    f = g.predict(4, future=path)
    # the driver adds 5 * promo: a forecast with promo +2 lies above one with -2
    yh = f.yhat.to_numpy().reshape(3, 4)
    assert (yh[:, 0] - yh[:, 1] > 5).all(), yh
    # the covariate drives y: the model that reads it forecasts the held-out rows better
    with_x = fc(exog=["promo"], holdout=6, **kw).fit(df).evaluate_holdout()["overall"]["model"]
    without = fc(holdout=6, **kw).fit(df).evaluate_holdout()["overall"]["model"]
    assert with_x["mae"] < without["mae"] and with_x["mase"] < without["mase"], (with_x, without)


def test_a_missing_future_step_or_series_is_named(tmp_path):
    df = synthetic_long(2, 30, exog=True)
    g = fc(exog=["promo"], epochs=1, window=6).fit(df)
    p = g.panel
    fut = pd.concat([pd.DataFrame({"unique_id": sid, "ds": future_dates(p, i, 4), "promo": 1.0})
                     for i, sid in enumerate(p.ids)])
    with pytest.raises(DataError, match=r"no covariates for series 's0' at 2003-10-01 "
                                        r"\(step 4 of 4\)"):
        g.predict(4, future=fut.groupby("unique_id").head(3))
    with pytest.raises(DataError, match=r"the future covariates have no series 's1'"):
        g.predict(4, future=fut[fut.unique_id == "s0"])


def test_conformal_intervals_cover_at_the_nominal_level():
    """Seasonal series plus Gaussian noise (sigma known): over 24 series x 12 held-out months
    the 80 % and 95 % intervals cover within a few points of their level."""
    df = synthetic_long(24, 84, noise=2.0, seed=3)
    g = fc(epochs=12, window=12, hidden_size=8, transform="none", holdout=12).fit(df)
    f = g.predict(12)
    p = g.panel
    actual = np.concatenate([p.values(i)[-12:] for i in range(len(p))])
    for lv, tol in ((80, 6), (95, 4)):
        inside = (actual >= f[f"yhat-lo-{lv}"]) & (actual <= f[f"yhat-hi-{lv}"])
        assert abs(inside.mean() * 100 - lv) <= tol, (lv, inside.mean())
    # and the 80 % half-width is near the noise's own 1.28 sigma (the model adds some error)
    half = (f["yhat-hi-80"] - f["yhat"]).to_numpy()
    assert 1.28 * 2.0 * 0.8 < np.median(half) < 1.28 * 2.0 * 2.0, np.median(half)


def test_backtest_windows_and_metrics():
    p = data.read(synthetic_long(3, 50))
    res = fc().backtest_result(p, horizon=6, windows=3, step=4, refit=False)
    assert len(res["windows"]) == 9 and res["baseline"] == "seasonal naive (period 12)"
    assert (res["horizon"], res["step"], res["refit"], res["season"]) == (6, 4, False, 12)
    s0 = p.ds[p.rows(0)]
    cut = [r["cutoff"] for r in res["windows"] if r["unique_id"] == "s0"]
    assert cut == [calendar.stamp(s0[50 - 6 - 8 - 1]), calendar.stamp(s0[50 - 6 - 4 - 1]),
                   calendar.stamp(s0[50 - 6 - 1])]
    for r in res["windows"]:
        assert set(r["model"]) == {"rmse", "mae", "mape", "smape", "mase"}
        assert set(r["baseline"]) == set(r["model"]) and len(r["forecast"]) == 6
        assert 0 <= r["coverage"][80] <= r["coverage"][95] <= 1
    o = res["overall"]
    for k in ("mase", "smape", "rmse"):
        assert o["model"][k] == pytest.approx(np.mean([r["model"][k] for r in res["windows"]]))
        assert o["baseline"][k] == pytest.approx(np.mean([r["baseline"][k] for r in res["windows"]]))


def test_metrics_by_hand():
    m = metrics([1.0, 2.0, 4.0], [2.0, 2.0, 2.0], scale=0.5)
    assert m["mae"] == 1.0 and m["rmse"] == pytest.approx(np.sqrt(5 / 3))
    assert m["mape"] == pytest.approx((100 + 0 + 50) / 3)
    assert m["smape"] == pytest.approx((2 / 3 + 0 + 2 * 2 / 6) / 3 * 100)
    assert m["mase"] == 2.0
    assert naive_scale([1.0, 3.0, 2.0, 6.0], 2) == pytest.approx((1 + 3) / 2)


def test_checkpoint_round_trip_forecasts_the_same_bits(tmp_path):
    df = synthetic_long(3, 30, exog=True)
    g = fc("numpy", calendar=True, exog=["promo"], epochs=1, window=5, holdout=4).fit(df)
    path = g.save(tmp_path / "model.npz")
    h = Forecaster.load(path, backend="numpy")
    a, b = g.predict(4, at_end=False), h.predict(4, at_end=False)
    assert list(a.columns) == list(b.columns)
    for c in a.columns[2:]:
        assert_same_bits(b[c].to_numpy(), a[c].to_numpy(), c)
    assert (a.ds == b.ds).all() and (a.unique_id == b.unique_id).all()
    # a damaged file names its field: values changed, the stored fingerprint kept
    secs = checkpoint.read(path)["sections"]
    secs["data"]["arrays"]["y"] = secs["data"]["arrays"]["y"] + 1
    checkpoint.write(tmp_path / "bad.npz", secs)
    with pytest.raises(checkpoint.CheckpointError, match="meta.fingerprint"):
        Forecaster.load(tmp_path / "bad.npz")


# ---- the command line ------------------------------------------------------------------------

def run(capsys, *argv):
    from lockstep import cli

    code = cli.main([str(a) for a in argv])
    out, errout = capsys.readouterr()
    return code, out, errout


FAST = ["--epochs", 2, "--hidden", 5, "--window", 6, "--quiet", "--backend", "cpu",
        "--ensemble", 1]


def test_cli_train_forecast_and_backtest_many_series(tmp_path, capsys):
    import json

    df = synthetic_long(3, 40, exog=True)
    df.to_csv(tmp_path / "long.csv", index=False, float_format="%.17g")
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "--data", tmp_path / "long.csv", "--exog", "promo",
                            "--calendar", "--holdout", 6, *FAST, "--out", out, "--json")
    assert code == 0, err
    res = json.loads(stdout)
    assert res["series"] == 3 and res["freq"] == "MS" and len(res["holdout"]["windows"]) == 3
    assert {"mase", "smape"} <= set(res["holdout"]["overall"]["model"])
    assert (out / "checkpoint.npz").is_file() and (out / "losses.png").is_file()
    p = data.read(tmp_path / "long.csv", exog=["promo"])
    fut = pd.concat([pd.DataFrame({"unique_id": sid, "ds": future_dates(p, i, 4), "promo": 0.5})
                     for i, sid in enumerate(p.ids)])
    fut.to_csv(tmp_path / "future.csv", index=False)
    code, stdout, err = run(capsys, "forecast", "--checkpoint", out / "checkpoint.npz",
                            "--horizon", 4, "--future", tmp_path / "future.csv",
                            "--out", tmp_path / "f.csv", "--json")
    assert code == 0, err
    rows = json.loads(stdout)["rows"]
    f = pd.read_csv(tmp_path / "f.csv")
    assert list(f.columns) == ["unique_id", "ds", "yhat", "yhat-lo-80", "yhat-hi-80",
                               "yhat-lo-95", "yhat-hi-95"]
    assert len(f) == len(rows) == 12
    assert f.ds.iloc[0] == calendar.stamp(future_dates(p, 0, 1)[0])
    assert rows[0]["yhat"] == f.yhat.iloc[0]  # the file keeps every bit (17 digits)
    # without the future covariates: refused, nothing written
    before = (tmp_path / "f.csv").read_bytes()
    code, _, err = run(capsys, "forecast", "--checkpoint", out / "checkpoint.npz", "--horizon", 4,
                       "--out", tmp_path / "f.csv")
    assert code == 2 and "--future" in err and err.count("\n") == 1
    assert (tmp_path / "f.csv").read_bytes() == before
    code, stdout, err = run(capsys, "backtest", "--data", tmp_path / "long.csv", "--horizon", 4,
                            "--windows", 2, "--step", 3, *FAST, "--plot", tmp_path / "bt.png",
                            "--json")
    assert code == 0, err
    bt = json.loads(stdout)
    assert len(bt["windows"]) == 6 and bt["step"] == 3 and bt["refit"] is True
    assert "mean over 6 forecasts: MASE" in err  # the table goes to stderr under --json
    assert (tmp_path / "bt.png").stat().st_size > 0


def test_cli_backtest_of_a_bundled_series(capsys):
    import json

    code, stdout, err = run(capsys, "backtest", "--data", "airpassengers", "--horizon", 12,
                            "--windows", 2, "--no-refit", *FAST, "--json")
    assert code == 0, err
    res = json.loads(stdout)
    assert res["baseline"] == "seasonal naive (period 12)" and res["refit"] is False
    assert [r["cutoff"] for r in res["windows"]] == ["1958-12-01", "1959-12-01"]


def test_cli_bad_many_series_input_exits_2_and_writes_nothing(tmp_path, capsys):
    df = synthetic_long(2, 30)
    bad = pd.concat([df.iloc[:1], df])  # s0's first month twice
    bad.to_csv(tmp_path / "dup.csv", index=False)
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "--data", tmp_path / "dup.csv", *FAST, "--out", out)
    assert code == 2 and "more than once" in err and err.count("\n") == 1
    assert not out.exists()
    short = pd.concat([df, pd.DataFrame({"unique_id": "tiny", "y": [1.0, 2, 3, 4],
                                         "ds": pd.date_range("2001-01-01", periods=4, freq="MS")})])
    short.to_csv(tmp_path / "short.csv", index=False)
    code, _, err = run(capsys, "train", "--data", tmp_path / "short.csv", *FAST, "--out", out,
                       "--holdout", 3)
    assert code == 2 and "'tiny'" in err and "--skip-short" in err and not out.exists()
    code, stdout, err = run(capsys, "train", "--data", tmp_path / "short.csv", *FAST, "--out", out,
                            "--holdout", 3, "--skip-short")
    assert code == 0 and "skipping 1 series" in err and "tiny" in err
    code, _, err = run(capsys, "train", "--data", tmp_path / "short.csv", *FAST, "--level", "120",
                       "--out", tmp_path / "r2")
    assert code == 2 and "--level" in err and not (tmp_path / "r2").exists()


def test_loader_fuzz():
    """Random long tables (duplicates, gaps, text, odd dates): a Panel or one DataError."""
    from hypothesis import given, settings as hsettings, strategies as hs

    cell = hs.one_of(hs.floats(allow_nan=True, allow_infinity=True), hs.integers(-5, 5),
                     hs.sampled_from(["", "x", "1e400", " 3 "]))
    stamp = hs.one_of(hs.dates().map(str), hs.sampled_from(["2020-01", "2020-02", "2020-13",
                                                             "2020-01-01 25:00", "", "nan"]))

    @hsettings(max_examples=150, deadline=None)
    @given(hs.lists(hs.tuples(hs.sampled_from(["a", "b", "c"]), stamp, cell), max_size=30))
    def check(rows):
        df = pd.DataFrame(rows, columns=["unique_id", "ds", "y"])
        try:
            p = data.read(df)
        except DataError as e:
            assert "\n" not in str(e)
            return
        assert np.isfinite(p.y).all() and len(np.unique(p.ids)) == len(p)
        for i in range(len(p)):
            ds = p.ds[p.rows(i)]
            assert (np.diff(ds.view(np.int64)) > 0).all()  # no duplicate, in order

    check()


def test_forecaster_api_takes_a_long_dataframe():
    df = synthetic_long(3, 40)
    g = Forecaster(hidden_size=5, window=6, backend="cpu", epochs=2, patience=None, holdout=6,
                   levels=(80, 95), ensemble=1, quiet=True).fit(df)
    f = g.predict(6, level=[50, 90])
    assert list(f.columns) == ["unique_id", "ds", "yhat", "yhat-lo-50", "yhat-hi-50",
                               "yhat-lo-90", "yhat-hi-90"]
    assert len(f) == 18 and (f["yhat-hi-90"] >= f["yhat-hi-50"]).all()
    assert len(g.evaluate_holdout()["windows"]) == 3
    bt = g.backtest(df, horizon=4, windows=2)
    assert len(bt) == 6 and {"mase", "baseline_mase", "coverage_80", "cutoff"} <= set(bt.columns)
    assert bt.attrs["backtest"]["overall"]["model"]["mase"] == pytest.approx(bt.mase.mean())


def _readme_block(marker, lang="bash"):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (block,) = [b for b in re.findall(rf"```{lang}\n(.*?)```", text, re.S) if marker in b]
    return block


@pytest.mark.slow
def test_readme_many_series_commands_run_as_written(tmp_path, monkeypatch, capsys):
    import shlex
    import shutil
    from pathlib import Path

    shutil.copytree(Path(__file__).resolve().parents[1] / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    block = _readme_block("lockstep backtest --data examples/stores.csv")
    cmds = [shlex.split(ln, comments=True) for ln in block.splitlines()]
    cmds = [c for c in cmds if c]
    assert len(cmds) == 4
    for argv in cmds:
        assert argv[0] == "lockstep"
        code, out, err = run(capsys, *argv[1:])
        assert code == 0, f"{' '.join(argv)}: {err[-2000:]}"
        assert out.strip()
    f = pd.read_csv(tmp_path / "stores" / "forecast.csv")
    assert set(f.unique_id) == {"north", "south", "east", "west"} and len(f) == 24
    assert f.ds.iloc[0] == "2024-01-01" and (tmp_path / "backtest.png").is_file()
    code = _readme_block("fc.backtest(df", "python")
    exec(compile(code, "README.md", "exec"), {})


def test_ensemble_averages_its_members_and_fallback_is_seasonal_naive(tmp_path):
    df = synthetic_long(3, 40)
    kw = dict(fallback=False, holdout=6)  # fallback off is the default; the test relies on it
    g = fc(ensemble=2, **kw).fit(df)
    a = fc(**kw).fit(df)
    b = fc(seed=1, **kw).fit(df)
    for n in a.params:  # member k is the model of seed + k
        assert_same_bits(g.members[0][n], a.params[n], n)
        assert_same_bits(g.members[1][n], b.params[n], n)
    p = g.panel
    series = np.arange(len(p))
    ends = p.lengths() - 6
    za = a._forecast_model(a.trainer.backend, series, ends, 6)
    zb = b._forecast_model(b.trainer.backend, series, ends, 6)
    # the forecast is the mean of the members' model-space forecasts, transformed back
    want = g._values((za + zb) / 2, series, ends)
    f = g.predict(6)
    assert_same_bits(f.yhat.to_numpy(), want.reshape(-1), "ensemble mean")
    assert not np.array_equal(f.yhat.to_numpy(), a.predict(6).yhat.to_numpy())
    g.fallback[1] = True
    f = g.predict(6)
    naive = seasonal_naive(p.values(1)[:-6], 6, 12)
    assert_same_bits(f[f.unique_id == "s1"].yhat.to_numpy(), naive, "fallback")
    assert_same_bits(f[f.unique_id != "s1"].yhat.to_numpy(),
                     np.delete(want, 1, axis=0).reshape(-1), "the others keep the model")
    h = Forecaster.load(g.save(tmp_path / "m.npz"), backend="cpu")
    assert h.fallback.tolist() == [False, True, False] and len(h.members) == 2
    assert_same_bits(h.predict(6, at_end=False).yhat.to_numpy(), f.yhat.to_numpy(), "reloaded")
    auto = fc(fallback=True, holdout=6).fit(df)
    assert auto.fallback.dtype == bool and auto.fallback.shape == (3,)


def test_parquet_input_or_a_clear_line_without_an_engine(tmp_path):
    df = synthetic_long(2, 20)
    path = tmp_path / "long.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        path.write_bytes(b"PAR1")
        with pytest.raises(DataError, match=r"needs .*pip install pyarrow"):
            data.read(path)
        return
    df.to_parquet(path)
    p = data.read(path)
    assert p.ids.tolist() == ["s0", "s1"] and p.freq == "MS"
    assert_same_bits(p.y, data.read(df).y, "values")


def test_future_table_fuzz():
    """Random future tables for a panel: covariates for every step, or one DataError."""
    from hypothesis import given, settings as hsettings, strategies as hs

    g = fc(exog=["promo"])
    g.panel = p = data.read(synthetic_long(2, 20, exog=True), exog=["promo"])
    steps = {sid: calendar.stamps(future_dates(p, i, 3)) for i, sid in enumerate(p.ids)}
    cell = hs.one_of(hs.floats(allow_nan=True), hs.sampled_from(["", "x"]), hs.integers(-3, 3))

    @hsettings(max_examples=100, deadline=None)
    @given(hs.lists(hs.tuples(hs.sampled_from(["s0", "s1", "zz"]),
                              hs.sampled_from(steps["s0"] + steps["s1"] + ["2030-01", "bad"]),
                              cell), max_size=12))
    def check(rows):
        df = pd.DataFrame(rows, columns=["unique_id", "ds", "promo"])
        try:
            out = g.future_covariates(df, 3)
        except DataError as e:
            assert "\n" not in str(e)
            return
        assert out.shape == (2, 3, 1) and np.isfinite(out).all()

    check()
