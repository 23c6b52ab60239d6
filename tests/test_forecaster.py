"""The one Forecaster, for one series or many: every option on both, bit-exact resume of
ensembles on any backend, checkpoints whose array count does not grow with the series,
per-series transforms for zeros and negatives, the batched calibration."""

import numpy as np
import pandas as pd
import pytest
from conftest import assert_same_bits

from lockstep import Forecaster, checkpoint, data, reference
from lockstep.data import DataError, prep
from lockstep.data.table import read

SMALL = dict(hidden_size=5, window=6, epochs=3, batch_size=16, patience=None, quiet=True,
             ensemble=1)


def long_table(n_series=5, base_len=40, seed=0, exog=False, zeros=False):
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n_series):
        n = base_len + 5 * i
        t = np.arange(n)
        y = 30 + 10 * i + 5 * np.sin(2 * np.pi * t / 12 + i) + rng.normal(0, 1, n)
        d = {"unique_id": f"s{i}", "ds": pd.date_range("2001-01-01", periods=n, freq="MS")}
        if exog:
            x = rng.normal(0, 1, n)
            d["promo"] = x
            y = y + 4 * x
        if zeros and i == 0:
            y = y - y.mean()  # negatives and positives
        d["y"] = y
        parts.append(pd.DataFrame(d))
    return pd.concat(parts, ignore_index=True)


def test_one_series_and_many_go_through_the_same_forecaster():
    one = Forecaster(backend="numpy", holdout=12, **{**SMALL, "ensemble": 2}).fit("airpassengers")
    many = Forecaster(backend="numpy", holdout=6, **SMALL).fit(long_table())
    for fc, n, h in ((one, 1, 12), (many, 5, 6)):
        assert type(fc) is Forecaster and len(fc.panel) == n
        f = fc.predict(4)
        assert list(f.columns) == ["unique_id", "ds", "yhat", "yhat-lo-80", "yhat-hi-80",
                                   "yhat-lo-95", "yhat-hi-95"]
        assert len(f) == 4 * n and np.isfinite(f["yhat"]).all()
        assert (f["yhat-lo-95"] <= f["yhat-lo-80"]).all() and (f["yhat-lo-80"] <= f["yhat"]).all()
        ev = fc.evaluate_holdout()
        assert len(ev["windows"]) == n and {"mase", "smape", "rmse"} <= set(ev["overall"]["model"])
    # the ensemble is two models on one series too, and their mean is not either alone
    assert len(one.members) == 2
    solo = Forecaster(backend="numpy", holdout=12, **SMALL).fit("airpassengers")
    assert not np.array_equal(solo.predict(3)["yhat"], one.predict(3)["yhat"])


def test_global_model_has_the_same_bits_on_every_backend():
    df = long_table(4, 36, exog=True)
    kw = dict(holdout=6, calendar=True, exog=["promo"], **{**SMALL, "ensemble": 2})
    a = Forecaster(backend="numpy", **kw).fit(df)
    b = Forecaster(backend="cpu", **kw).fit(df)
    for m in range(2):
        for n in reference.names_of(a.members[m]):
            assert_same_bits(b.members[m][n], a.members[m][n], f"member {m} {n}")
    assert_same_bits(b.scores, a.scores, "calibration scores")
    fa, fb = a.evaluate_holdout(), b.evaluate_holdout()
    assert [r["forecast"] for r in fa["windows"]] == [r["forecast"] for r in fb["windows"]]


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_resume_of_an_ensemble_of_many_series_is_bit_exact(tmp_path, backend):
    df = long_table(4, 40, exog=True)
    kw = dict(backend=backend, holdout=6, exog=["promo"], **{**SMALL, "ensemble": 2,
                                                              "epochs": 4})
    straight = Forecaster(**kw).fit(df, tmp_path / "a.npz")

    class Kill(Exception):
        pass

    seen = []

    def die(fc):  # interrupted in the second model's second epoch, after saving
        fc.save(tmp_path / "b.npz")
        seen.append(1)
        if len(seen) == 6:
            raise Kill

    with pytest.raises(Kill):
        Forecaster(**kw).fit(df, tmp_path / "b.npz", on_epoch=die)
    rest = Forecaster(**{**kw, "backend": "numpy"}).fit(df, tmp_path / "b.npz", resume=True)
    for m in range(2):
        for n in reference.names_of(straight.members[m]):
            assert_same_bits(rest.members[m][n], straight.members[m][n], f"member {m} {n}")
        assert_same_bits(np.asarray(rest.states[m].train_loss),
                         np.asarray(straight.states[m].train_loss), "losses")
    assert_same_bits(rest.predict(3, future=_future(df, 3))["yhat"].to_numpy(),
                     straight.predict(3, future=_future(df, 3))["yhat"].to_numpy(), "forecast")
    # more epochs later equal a longer run from the start
    more = Forecaster(**{**kw, "epochs": 6}).fit(df, tmp_path / "a.npz", resume=True)
    longer = Forecaster(**{**kw, "epochs": 6}).fit(df)
    assert_same_bits(more.members[1]["W_hh"], longer.members[1]["W_hh"], "W_hh")


def _future(df, h):
    rows = []
    for sid, g in df.groupby("unique_id", sort=False):
        ds = pd.date_range(g["ds"].iloc[-1], periods=h + 1, freq="MS")[1:]
        rows.append(pd.DataFrame({"unique_id": sid, "ds": ds, "promo": np.arange(h) * 0.1}))
    return pd.concat(rows, ignore_index=True)


def test_resume_refuses_other_settings_or_data(tmp_path):
    df = long_table(3, 40)
    Forecaster(backend="numpy", **SMALL).fit(df, tmp_path / "c.npz")
    with pytest.raises(checkpoint.CheckpointError, match="hidden_size=5, this run asks for 7"):
        Forecaster(backend="numpy", **{**SMALL, "hidden_size": 7}).fit(df, tmp_path / "c.npz",
                                                                       resume=True)
    other = df.assign(y=df["y"] * 2)
    with pytest.raises(checkpoint.CheckpointError, match="other data"):
        Forecaster(backend="numpy", **SMALL).fit(other, tmp_path / "c.npz", resume=True)


def test_checkpoint_arrays_do_not_grow_with_the_series(tmp_path):
    """A model of 2000 series stores as many arrays as one of 20, and loads back to the same
    forecasts (the old format refused more than 1024 arrays)."""
    counts = {}
    for n in (20, 2000):
        rng = np.random.default_rng(n)
        lengths = rng.integers(30, 50, n)
        ids = np.repeat([f"u{i}" for i in range(n)], lengths)
        pos = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        ds = pd.Timestamp("2000-01-01") + pd.to_timedelta(pos * 7, "D")
        y = 10 + np.sin(pos / 3) + rng.normal(0, 0.1, len(pos))
        df = pd.DataFrame({"unique_id": ids, "ds": ds, "y": y})
        fc = Forecaster(backend="cpu", holdout=4, **{**SMALL, "epochs": 1}).fit(df)
        path = tmp_path / f"m{n}.npz"
        fc.save(path)
        import zipfile

        counts[n] = len(zipfile.ZipFile(path).namelist())
        back = Forecaster.load(path, backend="numpy")
        assert_same_bits(back.predict(3)["yhat"].to_numpy(),
                         fc.predict(3, at_end=True)["yhat"].to_numpy(), f"{n} series")
    assert counts[20] == counts[2000], counts


def test_zeros_and_negatives_train_with_the_transform_chosen_per_series(tmp_path):
    df = long_table(3, 40, zeros=True)
    fc = Forecaster(backend="numpy", holdout=6, **SMALL).fit(df)
    assert fc.tf.names() == ["none", "log", "log"]
    assert np.isfinite(fc.predict(3)["yhat"]).all()
    with pytest.raises(DataError, match="log transform cannot take"):
        Forecaster(backend="numpy", holdout=6, transform="log", **SMALL).fit(df)
    none = Forecaster(backend="numpy", holdout=6, transform="none", **SMALL).fit(df)
    assert none.tf.names() == ["none"] * 3
    fc.save(tmp_path / "z.npz")
    assert Forecaster.load(tmp_path / "z.npz").tf.names() == ["none", "log", "log"]


def test_calibration_runs_every_origin_in_one_engine_call_per_step():
    df = long_table(6, 48)
    fc = Forecaster(backend="numpy", holdout=6, **SMALL)
    fc.fit(df)
    calls = []
    be = fc.trainer.backend
    real = be.predict

    def counting(x):
        calls.append(x.shape[1])
        return real(x)

    be.predict = counting
    before = fc.scores.copy()
    fc._calibrate()
    H = len(fc.score_ptr) - 1
    assert len(calls) == H and calls[0] == int((fc._calibration_rows()[0] >= 0).sum())
    assert_same_bits(fc.scores, before, "scores")


def test_conformal_intervals_cover_at_the_nominal_level():
    df = long_table(10, 80, seed=3)
    fc = Forecaster(backend="cpu", holdout=12, **{**SMALL, "epochs": 8, "hidden_size": 8})
    fc.fit(df)
    cov = fc.evaluate_holdout()["overall"]["coverage"]
    assert 0.6 <= cov[80] <= 1.0 and cov[95] >= cov[80], cov


def test_classify_change_runs_through_the_same_path(tmp_path):
    fc = Forecaster(backend="numpy", task="classify-change", holdout=12, train_start=0.4,
                    **SMALL).fit("airpassengers")
    ev = fc.evaluate_holdout()
    c = ev["classes"]
    assert len(c["predicted"]) == 12 and 0 <= c["accuracy"] <= 1
    assert np.asarray(c["confusion"]).sum() == 12
    f = fc.predict(5)
    assert len(f) == 5 and np.isfinite(f["yhat"]).all()
    fc.save(tmp_path / "k.npz")
    back = Forecaster.load(tmp_path / "k.npz", backend="numpy")
    assert_same_bits(back.predict(5)["yhat"].to_numpy(),
                     fc.predict(5, at_end=True)["yhat"].to_numpy(), "classify forecast")


def test_backtest_of_one_series_and_of_many():
    for src, n in (("airpassengers", 1), (long_table(3, 50), 3)):
        fc = Forecaster(backend="cpu", **SMALL)
        bt = fc.backtest(src, horizon=6, windows=2)
        assert len(bt) == 2 * n and {"mase", "baseline_mase", "coverage_80"} <= set(bt.columns)


def test_too_short_series_are_named_or_skipped():
    df = long_table(3, 40)
    df = pd.concat([df, pd.DataFrame({"unique_id": "tiny", "y": np.arange(1.0, 9.0),
                                      "ds": pd.date_range("2001-01-01", periods=8, freq="MS")})])
    with pytest.raises(DataError, match="series 'tiny' has 8 rows"):
        Forecaster(backend="numpy", holdout=6, **SMALL).fit(df)
    fc = Forecaster(backend="numpy", holdout=6, **SMALL)
    p, short = fc.skip_short(read(df))
    assert short == ["tiny"] and len(p) == 3
    fc.fit(p)


def test_windows_are_drawn_by_index_in_chunks_with_the_same_bits(monkeypatch):
    from lockstep import train

    df = long_table(4, 40)
    a = Forecaster(backend="numpy", holdout=6, **SMALL).fit(df)
    monkeypatch.setattr(train, "CHUNK_BYTES", 2000)  # a few batches per chunk
    b = Forecaster(backend="numpy", holdout=6, **SMALL).fit(df)
    assert b.windows.shape[1] * b.windows.window_bytes > 2000
    for n in reference.names_of(a.members[0]):
        assert_same_bits(b.members[0][n], a.members[0][n], n)


def test_bundled_data_loads_into_the_panel():
    for name, n, season in (("airpassengers", 1, 12), ("macro", 8, 4), ("nile", 1, 0)):
        p = data.load(name)
        assert len(p) == n and p.season == season


def test_calibration_origins_are_spread_over_the_span_when_capped(monkeypatch):
    from lockstep import forecast

    fc = Forecaster(backend="numpy", holdout=6, **SMALL).fit(long_table(4, 60))
    s_all, o_all, _ = fc._calibration_rows()
    monkeypatch.setattr(forecast, "CALIBRATION_ROWS", 12)  # 3 origins per series
    s, o, stop = fc._calibration_rows()
    assert np.bincount(s).tolist() == [3] * 4
    for i in range(4):
        span = o_all[s_all == i]
        mine = o[s == i]
        assert mine[0] == span[0] and mine[-1] == span[-1] and set(mine) <= set(span)
    fc._calibrate()
    assert len(fc.score_ptr) - 1 == int((stop - o).max())  # every step still calibrated


def test_model_selection_scores_a_spread_subset_of_a_large_table(monkeypatch):
    from lockstep import forecast

    seen = []
    real = forecast._Validation

    class Recording(real):
        def __init__(self, backend, fc, series, ends, n_valid):
            seen.append(series.tolist())
            super().__init__(backend, fc, series, ends, n_valid)

    monkeypatch.setattr(forecast, "_Validation", Recording)
    monkeypatch.setattr(forecast, "VALIDATION_SERIES", 3)
    fc = Forecaster(backend="numpy", holdout=6, **SMALL).fit(long_table(7, 40))
    assert seen == [[0, 3, 6]]
    assert len(fc.states[0].valid_loss) == SMALL["epochs"]


def test_future_covariates_for_a_model_without_any_are_refused(tmp_path, capsys):
    from lockstep import cli

    df = long_table(3, 40)
    fc = Forecaster(backend="numpy", **SMALL).fit(df, tmp_path / "m.npz")
    with pytest.raises(Exception, match="trained with covariates"):
        fc.predict(3, future=_future(df.assign(promo=0.0), 3))
    _future(df.assign(promo=0.0), 3).to_csv(tmp_path / "f.csv", index=False)
    code = cli.main(["forecast", "--checkpoint", str(tmp_path / "m.npz"), "--horizon", "3",
                     "--future", str(tmp_path / "f.csv")])
    assert code == 2 and "drop --future" in capsys.readouterr().err


def test_the_direct_head_predicts_blocks_with_the_same_bits_everywhere(tmp_path):
    """--head direct: each window predicts the next head_steps values (O = head_steps, loss on
    the last step); longer horizons run in blocks; every backend gives the same bits, and the
    checkpoint gives them back."""
    df = long_table(4, 48)
    kw = dict(holdout=6, head="direct", head_steps=4, **SMALL)
    a = Forecaster(backend="numpy", **kw).fit(df, tmp_path / "d.npz")
    b = Forecaster(backend="cpu", **kw).fit(df)
    assert a.model_cfg.output_size == 4 and a.settings.train_config().loss_on == "last"
    x, y = a.windows.gather(np.arange(3))
    assert y.shape == (3, 4)
    for n in reference.names_of(a.members[0]):
        assert_same_bits(b.members[0][n], a.members[0][n], n)
    f = a.predict(10, at_end=True)  # 4 + 4 + 2: three engine calls
    assert len(f) == 40 and np.isfinite(f["yhat"]).all()
    assert_same_bits(Forecaster.load(tmp_path / "d.npz").predict(10)["yhat"].to_numpy(),
                     f["yhat"].to_numpy(), "loaded")
    assert_same_bits(b.predict(10, at_end=True)["yhat"].to_numpy(), f["yhat"].to_numpy(), "cpu")
    with pytest.raises(Exception, match="head_steps"):
        Forecaster(head="direct", **SMALL)
    with pytest.raises(Exception, match="classify-change predicts one class"):
        Forecaster(head="direct", head_steps=3, task="classify-change", **SMALL)


def test_seasonal_indices_train_save_and_forecast_the_same_bits(tmp_path):
    df = long_table(4, 48)
    kw = dict(holdout=6, seasonality="indices", **SMALL)
    a = Forecaster(backend="numpy", **kw).fit(df, tmp_path / "i.npz")
    b = Forecaster(backend="cpu", **kw).fit(df)
    assert a.tf.period == 12 and (a.tf.lag == 0).all() and a.tf.diff.all()
    for n in reference.names_of(a.members[0]):
        assert_same_bits(b.members[0][n], a.members[0][n], n)
    f = a.predict(8, at_end=True)
    assert_same_bits(Forecaster.load(tmp_path / "i.npz").predict(8)["yhat"].to_numpy(),
                     f["yhat"].to_numpy(), "loaded")


@pytest.mark.parametrize("kw", [{}, {"seasonality": "difference"},
                                 {"seasonality": "difference", "diff_nonseasonal": False},
                                 {"head": "direct", "head_steps": 3}, {"train_start": 0.3},
                                 {"pad": True}])
def test_skip_short_keeps_exactly_what_prepare_accepts(kw):
    lengths = np.arange(4 if kw.get("pad") else 8, 40, 2)
    rows = [pd.DataFrame({"unique_id": f"u{n}", "y": 10 + np.sin(np.arange(n)) + np.arange(n),
                          "ds": pd.date_range("2001-01-01", periods=n, freq="MS")})
            for n in lengths]
    p = read(pd.concat(rows, ignore_index=True))
    fc = Forecaster(backend="numpy", holdout=4, **{**SMALL, "window": 8, **kw})
    kept, short = fc.skip_short(p)
    assert short and len(kept) + len(short) == len(p)
    fc.prepare(kept)  # every kept series trains
    for sid in short:  # and every skipped one alone would be refused
        i = int(np.flatnonzero(p.ids == sid)[0])
        with pytest.raises(DataError, match="too few"):
            Forecaster(backend="numpy", holdout=4, **{**SMALL, "window": 8, **kw}).prepare(
                p.subset(np.array([i])))


def test_the_running_mean_centres_each_row_on_its_past_only():
    df = long_table(3, 40)
    fc = Forecaster(backend="numpy", holdout=6, **SMALL)
    fc.prepare(fc.read(df))
    assert fc.tf.center.tolist() == [0, 0, 0]  # rms: the values are not centred on a mean
    ip, first = fc.panel.indptr, fc.first
    for i in range(3):
        zv = fc._Zv[ip[i]:ip[i + 1]]
        for r in range(first[i], ip[i + 1] - ip[i]):
            past = zv[first[i]:r]  # the rows before r: all a forecast from r would know
            m = np.mean(past) if len(past) else 0.0
            assert np.isclose(fc._Z[ip[i] + r], zv[r] - m, rtol=0, atol=1e-12)
            assert np.isclose(fc._A[ip[i] + r - 1, -1] if r else 0.0, m, rtol=0, atol=1e-12)
    # a later value changes no earlier row's centring (the scale aside, fitted once)
    g = df.copy()
    g.loc[g.index[30], "y"] += 50.0
    fc2 = Forecaster(backend="numpy", holdout=6, **SMALL)
    fc2.prepare(fc2.read(g))
    ratio = fc.tf.spread[0] / fc2.tf.spread[0]
    np.testing.assert_allclose(fc2._Z[:30] / ratio, fc._Z[:30], rtol=1e-12, atol=1e-12)
    # a forecast adds the origin's mean back: the same values as before the centring
    z = np.zeros((3, 4))
    ends = fc.n_train
    back = fc._uncentred(z, np.arange(3), ends)
    np.testing.assert_array_equal(back[:, 0], fc._M[ip[:-1] + ends - 1])


def test_checkpoints_from_before_the_running_mean_load_without_it(tmp_path):
    df = long_table(3, 40)
    kw = dict(holdout=6, scale="standard", running_mean=False, **SMALL)
    a = Forecaster(backend="numpy", **kw).fit(df, tmp_path / "old.npz")
    b = Forecaster.load(tmp_path / "old.npz")
    assert b.settings.running_mean is False and b.model_cfg.input_size == 1
    assert_same_bits(b.predict(5)["yhat"].to_numpy(), a.predict(5, at_end=True)["yhat"]
                     .to_numpy(), "loaded")
    from lockstep.forecast import _settings_in
    old = {k: v for k, v in Forecaster(**SMALL).settings.to_dict().items()
           if k != "running_mean"}
    assert _settings_in(old)["running_mean"] is False  # what such a run trained with


def test_padding_trains_series_shorter_than_the_window_with_the_same_bits(tmp_path):
    lengths = (6, 9, 30, 40)
    p = read(pd.concat([pd.DataFrame({
        "unique_id": f"u{n}", "y": 10 + np.sin(np.arange(n)) + 0.3 * np.arange(n),
        "ds": pd.date_range("2001-01-01", periods=n, freq="MS")}) for n in lengths],
        ignore_index=True))
    kw = dict(SMALL, window=12)
    with pytest.raises(DataError, match="or --pad"):
        Forecaster(backend="numpy", **kw).prepare(p)
    a = Forecaster(backend="numpy", pad=True, **kw)
    w = a.prepare(p)
    # the short series' windows start before their first row; those rows are zeros
    first_row = p.indptr[:-1] + a.first
    padded = w.starts < np.repeat(first_row, np.bincount(
        np.searchsorted(p.indptr, w.lo, side="right") - 1, minlength=4))
    assert padded.sum() == 2  # one window for each of the two short series
    x, t = w.gather(np.flatnonzero(padded))
    for k, s in enumerate(w.starts[padded]):
        lo = w.lo[padded][k]
        n_pad = lo - s
        assert (x[:n_pad, k] == 0).all() and (x[n_pad:, k] == a._A[lo:s + 12]).all()
        assert (t[:n_pad - 1, k] == 0).all() and (t[n_pad - 1:, k, 0] == a._Z[lo:s + 13]).all()
    a.fit(p, tmp_path / "p.npz")
    b = Forecaster(backend="cpu", pad=True, **kw).fit(p)
    for n in reference.names_of(a.members[0]):
        assert_same_bits(b.members[0][n], a.members[0][n], n)
    f = a.predict(5)
    assert np.isfinite(f["yhat"]).all() and len(f) == 20
    assert_same_bits(Forecaster.load(tmp_path / "p.npz").predict(5)["yhat"].to_numpy(),
                     f["yhat"].to_numpy(), "loaded")
    with pytest.raises(Exception, match="pad is for task regress"):
        Forecaster(pad=True, task="classify-change", **SMALL)


def test_the_theta_mix_is_a_weighted_geometric_mean_of_the_model_and_theta():
    """theta_weight w: forecasts exp((1 - w) log model + w log Theta) with the seasonal
    indices back in; w = 1 is the Theta method of each series' log, deseasonalised history,
    whatever the model learned; training is the same bits whatever w."""
    df = long_table(3, 48)
    kw = dict(holdout=6, season=12, **SMALL)
    f = {w: Forecaster(backend="numpy", theta_weight=w, **kw).fit(df) for w in (0.0, 1.0)}
    mixed = Forecaster(backend="numpy", **kw).fit(df)
    assert mixed.settings.theta_weight == 0.25  # the default for task regress
    for n in reference.names_of(mixed.members[0]):  # training is blind to the mix
        assert_same_bits(mixed.members[0][n], f[0.0].members[0][n], n)
    y = {w: fc.predict(6, level=[])["yhat"].to_numpy().reshape(3, 6) for w, fc in f.items()}
    want = np.exp(0.75 * np.log(y[0.0]) + 0.25 * np.log(y[1.0]))
    np.testing.assert_allclose(mixed.predict(6, level=[])["yhat"].to_numpy().reshape(3, 6),
                               want, rtol=1e-12)
    other_seed = Forecaster(backend="numpy", theta_weight=1.0, **{**kw, "seed": 7}).fit(df)
    assert_same_bits(other_seed.predict(6)["yhat"].to_numpy(), y[1.0].reshape(-1), "theta")
    fc, p = f[1.0], f[1.0].panel
    for i in range(3):  # by hand: the log, less the indices; prep.theta; back
        n = fc.n_train[i]
        pos = np.arange(n + 6)
        s1 = np.log(p.y[p.indptr[i]:p.indptr[i] + n]) - fc.tf.index[i, pos[:n] % 12]
        back = np.exp(prep.theta(s1[None], [n], 6)[0] + fc.tf.index[i, pos[n:] % 12])
        np.testing.assert_allclose(y[1.0][i], back, rtol=1e-12)


def test_theta_weight_is_for_value_forecasts_only():
    from lockstep.config import ConfigError
    from lockstep.forecast import ForecastSettings

    assert ForecastSettings(task="classify-change").theta_weight == 0.0
    assert ForecastSettings(theta_weight=0).theta_weight == 0
    # the default is set by the data: none with covariates (Theta cannot see them)
    df = long_table(3, 40, exog=True)
    fc = Forecaster(backend="numpy", holdout=6, exog=["promo"], **SMALL)
    assert fc.settings.theta_weight is None
    fc.prepare(fc.read(df))
    assert fc.settings.theta_weight == 0.0
    fc = Forecaster(backend="numpy", holdout=6, exog=["promo"], theta_weight=0.5, **SMALL)
    fc.prepare(fc.read(df))
    assert fc.settings.theta_weight == 0.5
    fc = Forecaster(backend="numpy", holdout=6, **SMALL)
    fc.prepare(fc.read(df.drop(columns="promo")))
    assert fc.settings.theta_weight == 0.25
    with pytest.raises(ConfigError, match="theta_weight must be in"):
        ForecastSettings(theta_weight=1.5)
    with pytest.raises(ConfigError, match="classify-change predicts classes"):
        ForecastSettings(task="classify-change", theta_weight=0.5)
    from lockstep.forecast import _settings_in
    old = {k: v for k, v in ForecastSettings().to_dict().items() if k != "theta_weight"}
    assert ForecastSettings(**_settings_in(old)).theta_weight == 0.0  # saved before the mix
