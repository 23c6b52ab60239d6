"""Many series: loading long and wide tables, dates, covariates, one global model on every
backend with the same bits, conformal intervals that cover, rolling-origin backtests."""

import numpy as np
import pytest
from conftest import assert_same_bits

pd = pytest.importorskip("pandas")

from lockstep import panel  # noqa: E402
from lockstep.data import DataError  # noqa: E402
from lockstep.forecast import ForecastSettings  # noqa: E402


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


def settings(**kw):
    base = dict(hidden_size=6, window=8, epochs=4, patience=None, batch_size=16)
    base.update(kw.pop("base", {}))
    kw.setdefault("ensemble", 1)
    return panel.PanelSettings(base=ForecastSettings(**base), **kw)


# ---- loading ---------------------------------------------------------------------------------

def test_long_and_wide_tables_give_the_same_panel(tmp_path):
    df = synthetic_long(3, 30)
    p = panel.read_panel(df)
    assert p.ids == ["s0", "s1", "s2"] and p.freq == "MS" and p.season == 12
    assert [len(p.y[i]) for i in p.ids] == [30, 37, 44]
    wide = df.pivot(index="ds", columns="unique_id", values="y").reset_index()
    path = tmp_path / "wide.csv"
    wide.to_csv(path, index=False, float_format="%.17g")
    w = panel.read_panel(path)  # shorter series end in empty cells: they end there
    assert w.ids == p.ids and w.freq == "MS"
    for i in p.ids:
        assert_same_bits(w.y[i], p.y[i], i)
    wide.iloc[10, 1] = np.nan  # a hole inside series s0 is refused, with its row
    with pytest.raises(DataError, match="series 's0' has no finite number at row 12"):
        panel.read_panel(wide)
    df.rename(columns={"unique_id": "store", "ds": "month", "y": "sales"}).to_csv(
        tmp_path / "long.csv", index=False, float_format="%.17g")
    q = panel.read_panel(tmp_path / "long.csv", "store", "month", "sales")
    for i in p.ids:
        assert_same_bits(q.y[i], p.y[i], i)
        assert (q.ds[i] == p.ds[i]).all()


def test_wide_table_of_equal_lengths(tmp_path):
    ds = pd.date_range("2020-01-06", periods=20, freq="W-MON")
    wide = pd.DataFrame({"week": ds, "a": np.arange(20.0) + 1, "b": np.arange(20.0) * 2 + 3})
    p = panel.read_panel(wide, time_column="week")
    assert p.ids == ["a", "b"] and p.freq.startswith("W") and p.season == 52


@pytest.mark.parametrize("freq,season", [("QS", 4), ("D", 7), ("h", 24), ("YS", 0), ("B", 5)])
def test_frequency_and_season_inferred(freq, season):
    df = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2021-01-01", periods=30, freq=freq),
                       "y": np.arange(30.0) + 1})
    p = panel.read_panel(df)
    assert p.season == season
    assert panel.calendar_features(p.ds["a"], p.freq).shape == (30, 2 if season else 0)


def bad_tables():
    ok = synthetic_long(2, 20)
    dup = pd.concat([ok, ok.iloc[[3]]])
    gap = ok.drop(index=[5])
    text = ok.astype({"y": object})
    text.loc[4, "y"] = "n/a"
    date = ok.astype({"ds": object})
    date.loc[2, "ds"] = "not a date"
    mixed = ok.copy()
    mixed.loc[mixed.unique_id == "s1", "ds"] = pd.date_range("2001-01-01", periods=27, freq="D")
    empty = ok.astype({"ds": object})
    empty.loc[3, "ds"] = ""
    return [("duplicate", dup, r"s0.*more than once \(rows 5, 49\)"),
            ("empty date", empty, "empty at row 5"),
            ("gap", gap, r"s0.*not regular.*expected 2001-06-01"),
            ("text", text, r"column 'y' of series 's0' has no finite number at row 6"),
            ("date", date, r"'not a date' at row 4 is not a date"),
            ("mixed", mixed, "different frequencies")]


@pytest.mark.parametrize("name,df,match", bad_tables(), ids=lambda v: v if isinstance(v, str) else "")
def test_bad_tables_are_refused_with_the_rows_named(name, df, match):
    with pytest.raises(DataError, match=match):
        panel.read_panel(df)


def test_missing_columns_are_named(tmp_path):
    df = synthetic_long(2, 20)
    with pytest.raises(DataError, match="no value column 'sales'"):
        panel.read_panel(df, value_column="sales")
    with pytest.raises(DataError, match="no covariate column 'price'"):
        panel.read_panel(df, exog=["price"])
    with pytest.raises(DataError, match="no time column"):
        panel.read_panel(df, time_column="when")
    with pytest.raises(DataError, match="no data file"):
        panel.read_panel(tmp_path / "none.csv")


def test_too_short_series_are_named_or_skipped():
    df = pd.concat([synthetic_long(2, 40), pd.DataFrame(
        {"unique_id": "tiny", "ds": pd.date_range("2001-01-01", periods=9, freq="MS"),
         "y": np.arange(9.0) + 1})])
    p = panel.read_panel(df)
    g = panel.GlobalForecaster(settings(base={"season": 0}), backend="cpu")
    with pytest.raises(DataError, match="series 'tiny' has 3 rows.*--skip-short"):
        g.fit(p, holdout=6)
    kept, short = g.skip_short(p, 6)
    assert short == ["tiny"] and kept.ids == ["s0", "s1"]


# ---- the model --------------------------------------------------------------------------------

def test_global_model_has_the_same_bits_on_every_backend():
    p = panel.read_panel(synthetic_long(3, 36, exog=True), exog=["promo"])
    st = settings(calendar=True, base={"epochs": 2, "window": 6})
    a = panel.GlobalForecaster(st, backend="numpy").fit(p, holdout=6)
    b = panel.GlobalForecaster(st, backend="cpu").fit(p, holdout=6)
    assert a.model_cfg.input_size == 1 + 2 + 1  # value, calendar sin/cos, one covariate
    for n in a.params:
        assert_same_bits(b.params[n], a.params[n], n)
    fa, fb = a.predict(6), b.predict(6)
    assert_same_bits(fb["yhat"].to_numpy(), fa["yhat"].to_numpy(), "forecasts")
    assert list(fa.columns) == ["unique_id", "ds", "yhat", "yhat-lo-80", "yhat-hi-80",
                                "yhat-lo-95", "yhat-hi-95"]
    assert (fa["yhat-lo-95"] <= fa["yhat-lo-80"]).all() and (fa["yhat-hi-80"] <= fa["yhat-hi-95"]).all()
    first = fa[fa.unique_id == "s0"].ds.iloc[0]
    assert first == p.ds["s0"][-6]  # the held-out rows are the ones forecast


def test_covariates_are_needed_for_the_future_and_used(tmp_path):
    df = synthetic_long(3, 48, exog=True, noise=0.2)
    p = panel.read_panel(df, exog=["promo"])
    # the default seasonal difference: the model reads the covariate differenced alike
    st = settings(base={"epochs": 40, "window": 6, "log": False})
    g = panel.GlobalForecaster(st, backend="cpu").fit(p)
    with pytest.raises(DataError, match="covariates promo.*--future"):
        g.predict(4)
    fut = []
    for sid in p.ids:
        ds = panel.future_dates(p, sid, 4)
        fut.append(pd.DataFrame({"unique_id": sid, "ds": ds, "promo": [2.0, -2.0, 2.0, -2.0]}))
    path = tmp_path / "future.csv"
    pd.concat(fut).to_csv(path, index=False)
    f = g.predict(4, future=path)
    # the driver adds 5 * promo: a forecast with promo +2 lies above one with -2
    yh = f.yhat.to_numpy().reshape(3, 4)
    assert (yh[:, 0] - yh[:, 1] > 5).all(), yh
    with pytest.raises(DataError, match=r"no covariates for series 's0' at 2005-04-01 \(step 4 of 4\)"):
        pd.concat(fut).groupby("unique_id").head(3).to_csv(path, index=False)
        g.predict(4, future=path)


def test_conformal_intervals_cover_at_the_nominal_level():
    """Seasonal series plus Gaussian noise (sigma known): over 24 series x 12 held-out months
    the 80 % and 95 % intervals cover within a few points of their level."""
    p = panel.read_panel(synthetic_long(24, 84, noise=2.0, seed=3))
    st = settings(base={"epochs": 12, "window": 12, "hidden_size": 8, "log": False})
    g = panel.GlobalForecaster(st, backend="cpu").fit(p, holdout=12)
    f = g.predict(12)
    actual = np.concatenate([p.y[i][-12:] for i in p.ids])
    for lv, tol in ((80, 6), (95, 4)):
        inside = (actual >= f[f"yhat-lo-{lv}"]) & (actual <= f[f"yhat-hi-{lv}"])
        assert abs(inside.mean() * 100 - lv) <= tol, (lv, inside.mean())
    # and the 80 % half-width is near the noise's own 1.28 sigma (the model adds some error)
    half = (f["yhat-hi-80"] - f["yhat"]).to_numpy()
    assert 1.28 * 2.0 * 0.8 < np.median(half) < 1.28 * 2.0 * 2.0, np.median(half)


def test_backtest_windows_and_metrics():
    p = panel.read_panel(synthetic_long(3, 50))
    g = panel.GlobalForecaster(settings(), backend="cpu")
    res = g.backtest(p, horizon=6, windows=3, step=4, refit=False)
    assert len(res["windows"]) == 9 and res["baseline"] == "seasonal naive (period 12)"
    cut = [r["cutoff"] for r in res["windows"] if r["unique_id"] == "s0"]
    assert cut == [panel.stamp(p.ds["s0"][50 - 6 - 8 - 1]),
                   panel.stamp(p.ds["s0"][50 - 6 - 4 - 1]), panel.stamp(p.ds["s0"][50 - 6 - 1])]
    for r in res["windows"]:
        assert set(r["model"]) == {"rmse", "mae", "mape", "smape", "mase"}
        assert 0 <= r["coverage"][80] <= 1
    o = res["overall"]
    assert o["model"]["mase"] == pytest.approx(np.mean([r["model"]["mase"] for r in res["windows"]]))
    assert "overall: MASE" in panel.backtest_table(res)


def test_metrics_by_hand():
    m = panel.metrics([1.0, 2.0, 4.0], [2.0, 2.0, 2.0], scale=0.5)
    assert m["mae"] == 1.0 and m["rmse"] == pytest.approx(np.sqrt(5 / 3))
    assert m["mape"] == pytest.approx((100 + 0 + 50) / 3)
    assert m["smape"] == pytest.approx((2 / 3 + 0 + 2 * 2 / 6) / 3 * 100)
    assert m["mase"] == 2.0
    assert panel.naive_scale([1.0, 3.0, 2.0, 6.0], 2) == pytest.approx((1 + 3) / 2)


def test_checkpoint_round_trip_forecasts_the_same_bits(tmp_path):
    from lockstep import checkpoint

    p = panel.read_panel(synthetic_long(3, 30, exog=True), exog=["promo"])
    g = panel.GlobalForecaster(settings(calendar=True, base={"epochs": 1, "window": 5}),
                               backend="numpy").fit(p, holdout=4)
    path = panel.save(g, tmp_path / "model.npz")
    h = panel.load(path, backend="numpy")
    a, b = g.predict(4), h.predict(4)
    for c in a.columns[2:]:
        assert_same_bits(b[c].to_numpy(), a[c].to_numpy(), c)
    assert (a.ds == b.ds).all() and (a.unique_id == b.unique_id).all()
    # a damaged file names its field
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["s1/y"] = arrays["s1/y"] + 1
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(checkpoint.CheckpointError, match="data.fingerprint"):
        panel.load(tmp_path / "bad.npz")


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
    p = panel.read_panel(tmp_path / "long.csv", exog=["promo"])
    fut = pd.concat([pd.DataFrame({"unique_id": i, "ds": panel.future_dates(p, i, 4),
                                   "promo": 0.5}) for i in p.ids])
    fut.to_csv(tmp_path / "future.csv", index=False)
    code, stdout, err = run(capsys, "forecast", "--checkpoint", out / "checkpoint.npz",
                            "--horizon", 4, "--future", tmp_path / "future.csv",
                            "--out", tmp_path / "f.csv", "--json")
    assert code == 0, err
    rows = json.loads(stdout)["rows"]
    f = panel.read_csv(tmp_path / "f.csv")
    assert list(f.columns) == ["unique_id", "ds", "yhat", "yhat-lo-80", "yhat-hi-80",
                               "yhat-lo-95", "yhat-hi-95"]
    assert len(f) == len(rows) == 12 and f.ds.iloc[0] == panel.stamp(panel.future_dates(p, "s0", 1)[0])
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
    bad = pd.concat([df, df.iloc[[0]]])
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
            p = panel.read_panel(df)
        except DataError as e:
            assert "\n" not in str(e)
            return
        for i in p.ids:
            assert np.isfinite(p.y[i]).all() and not p.ds[i].duplicated().any()

    check()


def test_forecaster_api_takes_a_long_dataframe():
    from lockstep import Forecaster

    df = synthetic_long(3, 40)
    fc = Forecaster(hidden_size=5, window=6, backend="cpu", epochs=2, patience=None, holdout=6,
                    levels=(80, 95), quiet=True).fit(df)
    f = fc.predict(6, level=[50, 90])
    assert list(f.columns) == ["unique_id", "ds", "yhat", "yhat-lo-50", "yhat-hi-50",
                               "yhat-lo-90", "yhat-hi-90"]
    assert len(f) == 18 and (f["yhat-hi-90"] >= f["yhat-hi-50"]).all()
    assert len(fc.evaluate_holdout()["windows"]) == 3
    bt = fc.backtest(df, horizon=4, windows=2)
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
    p = panel.read_panel(synthetic_long(3, 40))
    kw = dict(fallback=False)  # the default, said here because the test relies on it
    g = panel.GlobalForecaster(settings(ensemble=2, **kw), backend="cpu").fit(p, holdout=6)
    a = panel.GlobalForecaster(settings(**kw), backend="cpu").fit(p, holdout=6)
    b = panel.GlobalForecaster(settings(base={"seed": 1}, **kw), backend="cpu").fit(p, holdout=6)
    for n in a.params:  # member k is the model of seed + k
        assert_same_bits(g.members[0][n], a.params[n], n)
        assert_same_bits(g.members[1][n], b.params[n], n)
    ends = [len(p.y[i]) - 6 for i in p.ids]
    want = (a._forecast_z(p, ends, 6) + b._forecast_z(p, ends, 6)) / 2
    got = np.stack([g.pipelines[i].forward(np.concatenate([p.y[i][:n], f])[:, None])[-6:, 0]
                    for i, n, f in zip(p.ids, ends, g._forecast_values(p, ends, 6))])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)  # through exp/log and back
    g.fallback["s1"] = True
    f = g.predict(6)
    naive = panel.seasonal_naive(p.y["s1"][:-6], 6, 12)
    assert_same_bits(f[f.unique_id == "s1"].yhat.to_numpy(), naive, "fallback")
    h = panel.load(panel.save(g, tmp_path / "m.npz"), backend="cpu")
    assert {i for i, v in h.fallback.items() if v} == {"s1"} and len(h.members) == 2
    assert_same_bits(h.predict(6).yhat.to_numpy(), f.yhat.to_numpy(), "reloaded")
    auto = panel.GlobalForecaster(settings(fallback=True), backend="cpu").fit(p, holdout=6)
    assert set(auto.fallback) == set(p.ids) and all(isinstance(v, bool) for v in auto.fallback.values())


def test_parquet_input_or_a_clear_line_without_an_engine(tmp_path):
    df = synthetic_long(2, 20)
    path = tmp_path / "long.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        path.write_bytes(b"PAR1")
        with pytest.raises(DataError, match=r"needs .*pip install pyarrow"):
            panel.read_panel(path)
        return
    df.to_parquet(path)
    p = panel.read_panel(path)
    assert p.ids == ["s0", "s1"] and p.freq == "MS"


def test_future_table_fuzz():
    """Random future tables for a fitted panel: covariates for every step, or one DataError."""
    from hypothesis import given, settings as hsettings, strategies as hs

    p = panel.read_panel(synthetic_long(2, 20, exog=True), exog=["promo"])
    steps = {i: [panel.stamp(t) for t in panel.future_dates(p, i, 3)] for i in p.ids}
    cell = hs.one_of(hs.floats(allow_nan=True), hs.sampled_from(["", "x"]), hs.integers(-3, 3))

    @hsettings(max_examples=100, deadline=None)
    @given(hs.lists(hs.tuples(hs.sampled_from(["s0", "s1", "zz"]),
                              hs.sampled_from(steps["s0"] + steps["s1"] + ["2030-01", "bad"]),
                              cell), max_size=12))
    def check(rows):
        df = pd.DataFrame(rows, columns=["unique_id", "ds", "promo"])
        try:
            out = panel.future_frame(df, p, 3)
        except DataError as e:
            assert "\n" not in str(e)
            return
        assert set(out) == set(p.ids)
        assert all(v.shape == (3, 1) and np.isfinite(v).all() for v in out.values())

    check()
