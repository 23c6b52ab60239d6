"""Data: the bundled series as a Panel, CSV files through the one reader (``data.read``), the
seeded synthetic panel, the per-series transforms (``prep.Transforms``), training windows drawn
by index, and the seed's encoded-change task."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockstep import data
from lockstep.data import DataError, prep
from lockstep.forecast import Forecaster, Windows


def test_airpassengers_is_series_g():
    p = data.load("airpassengers")
    assert len(p) == 1 and p.ids.tolist() == ["Passengers"] and p.lengths().tolist() == [144]
    assert p.period == 12 and p.season == 12 and p.freq == "MS" and p.source == "airpassengers"
    assert p.ds[0] == np.datetime64("1949-01-01") and p.ds[-1] == np.datetime64("1960-12-01")
    assert p.y.sum() == 40363 and p.y.min() == 104 and p.y.max() == 622
    assert p.y[0] == 112 and p.y[-1] == 432 and p.exog.shape == (144, 0)


def write(tmp_path, text, name="s.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_univariate_and_multivariate(tmp_path):
    p = write(tmp_path, "date,a,b,label\n2020-01,1.5,10,x\n2020-02,2.5,20,y\n2020-03,3.5,30,z\n")
    with pytest.raises(DataError, match="series 'label': 'x' at line 2 is not a number; fix the "
                                        "cell or choose"):
        data.read(p)
    s = data.read(p, value_column=["a", "b"])
    assert s.ids.tolist() == ["a", "b"] and s.freq == "MS" and s.lengths().tolist() == [3, 3]
    np.testing.assert_array_equal(s.ds[:3], np.array(["2020-01-01", "2020-02-01", "2020-03-01"],
                                                     "datetime64[ns]"))
    np.testing.assert_array_equal(s.values(0), [1.5, 2.5, 3.5])
    np.testing.assert_array_equal(s.values(1), [10, 20, 30])
    assert data.read(p, value_column="b").ids.tolist() == ["b"]
    nums = write(tmp_path, "x\n1\n2\n", "n.csv")
    s = data.read(nums)
    assert s.ds is None and s.freq is None and s.ids.tolist() == ["x"]
    np.testing.assert_array_equal(s.y, [1.0, 2.0])


@pytest.mark.parametrize("text,match", [
    ("", "is empty"),
    ("a,b\n", "no data rows"),
    ("t,v\n1,2\n2,abc\n", r"series 'v': 'abc' at line 3 is not a number"),
    ("v\n1\nnan\n2\n", "series 'v' has an empty cell at line 3"),
    ("v\n1\ninf\n", "value inf at line 3 is not finite"),
    ("v\n1\n1e200\n", r"value 1e\+200 at line 3 is beyond"),
    ("v\n1\n\n2\n", "series 'v' has an empty cell at line 3"),
    ("v\n1\n2,3\n", "line 3 has 2 cells but the header has 1"),
    ("v,v\n1,2\n", "duplicate column names"),
])
def test_csv_errors_are_one_line(tmp_path, text, match):
    with pytest.raises(DataError, match=match) as e:
        data.read(write(tmp_path, text))
    assert "\n" not in str(e.value)


def test_csv_missing_file_and_unknown_column(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        data.read(tmp_path / "nope.csv")
    p = write(tmp_path, "a,b\n1,2\n")
    with pytest.raises(DataError, match="has no value column 'c'; columns are a, b"):
        data.read(p, value_column=["c"])


cells = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.integers(-10**6, 10**6).map(str), st.sampled_from(["", "abc", " 1 ", "1e400", "-", "NaN"]),
                  st.text(alphabet="0123456789.e-x ,\"", max_size=6))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(cells, min_size=1, max_size=4), min_size=0, max_size=6))
def test_csv_loader_fuzz(tmp_path, rows):
    """Any file either loads into a valid Panel of finite values, or fails with DataError."""
    text = "\n".join(",".join(r) for r in rows)
    p = write(tmp_path, text, "fuzz.csv")
    try:
        s = data.read(p)
    except DataError as e:
        assert "\n" not in str(e)
        return
    assert np.isfinite(s.y).all() and (np.abs(s.y) <= 1e150).all()
    assert len(s) >= 1 and s.indptr[-1] == len(s.y) and (s.lengths() >= 1).all()
    assert len(np.unique(s.ids)) == len(s)


finite = st.floats(-1e150, 1e150, allow_nan=False, allow_infinity=False)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(v=st.lists(st.lists(finite, min_size=2, max_size=2), min_size=1, max_size=20))
def test_csv_round_trip_is_exact(tmp_path, v):
    p = write(tmp_path, "a,b\n" + "\n".join(f"{r[0]!r},{r[1]!r}" for r in v), "rt.csv")
    s = data.read(p)
    assert s.ids.tolist() == ["a", "b"]
    np.testing.assert_array_equal(s.values(0), np.array(v)[:, 0])
    np.testing.assert_array_equal(s.values(1), np.array(v)[:, 1])


def test_synthetic_is_seeded_and_positive():
    a, b = data.synthetic(3, 500, seed=7), data.synthetic(3, 500, seed=7)
    np.testing.assert_array_equal(a.y, b.y)
    assert len(a) == 3 and a.lengths().tolist() == [500] * 3 and (a.y > 0).all()
    assert a.ids.tolist() == ["s0", "s1", "s2"] and a.freq == "MS" and a.season == 12
    assert not np.array_equal(a.y, data.synthetic(3, 500, seed=8).y)


# ---- the per-series transforms ---------------------------------------------------------------

def three_series():
    """AirPassengers (144 months), a 40-month series of zeros and negatives, a 20-month one
    (too short for a seasonal difference: its lag is 0): grouped arrays."""
    air = data.load("airpassengers").y
    t = np.arange(40)
    mixed = 3 * np.sin(2 * np.pi * t / 12) + 0.1 * t - 2
    mixed[5] = 0.0
    short = 50 + 5 * np.cos(np.arange(20.0))
    y = np.concatenate([air, mixed, short])
    indptr = np.array([0, 144, 184, 204])
    exog = np.stack([np.sin(np.arange(len(y)) / 5.0), np.arange(len(y)) % 7.0], axis=1)
    return y, exog, indptr


def fit(y, exog, indptr, n_train=(120, 30, 15), skip=(0, 0, 0), **kw):
    return prep.Transforms.fit(y, exog, indptr, np.array(n_train), np.array(skip), **kw)


@pytest.mark.parametrize("transform", ["log", "log1p", "none", "auto"])
@pytest.mark.parametrize("diff", [False, True, "nonseasonal"])
@pytest.mark.parametrize("season", [0, 12])
@pytest.mark.parametrize("scale", ["standard", "minmax", "rms", "none"])
def test_transforms_inverse_undoes_forward(transform, diff, season, scale):
    y, exog, ip = three_series()
    if transform in ("log", "log1p"):
        y = np.abs(y) + 1.0  # values these transforms take
    t = fit(y, exog, ip, transform=transform, diff=diff is True, season=season, scale=scale,
            diff_nonseasonal=diff == "nonseasonal")
    if season:  # per-series lags: the short series is left without a seasonal difference
        assert t.lag.tolist() == [12, 12, 0]
    else:
        assert t.lag.tolist() == [0, 0, 0]
    # the lag-1 difference: every series, none, or those without a seasonal difference
    want = [True] * 3 if diff is True else [False] * 3 if not diff else \
        (t.lag == 0).tolist()
    assert t.diff.tolist() == want
    assert t.lags.tolist() == (t.lag + t.diff).tolist()
    z = t.forward(y, ip)
    s1 = t.stage1(y, prep.group_of(ip))
    k = int(t.lags.max()) + 1
    for i, m in ((0, 60), (1, 25), (2, 10)):  # continue each series from its m-th value
        a, b = ip[i], ip[i + 1]
        assert np.isnan(z[a:a + t.lags[i]]).all() and np.isfinite(z[a + t.lags[i]:b]).all()
        back = t.inverse(z[None, a + m:b], np.array([i]), s1[None, a + m - k:a + m])
        # relative 1e-12, and 1e-12 of the series' size for values that cross zero
        np.testing.assert_allclose(back[0], y[a + m:b], rtol=1e-12,
                                   atol=1e-12 * np.abs(y[a:b]).max())


def test_transforms_are_fitted_on_the_training_rows_only():
    y, exog, ip = three_series()
    n_train = (120, 30, 15)
    a = fit(y, exog, ip, n_train, season=12)
    y2, exog2 = y.copy(), exog.copy()
    for i, n in enumerate(n_train):  # every row after each series' training part
        y2[ip[i] + n:ip[i + 1]] *= 10
        exog2[ip[i] + n:ip[i + 1]] += 100
    b = fit(y2, exog2, ip, n_train, season=12)
    for f in ("code", "lag", "center", "spread", "exog_center", "exog_spread"):
        np.testing.assert_array_equal(getattr(b, f), getattr(a, f), err_msg=f)
    y2[ip[0] + 119] += 1  # a training row does move them
    assert fit(y2, exog2, ip, n_train, season=12).center[0] != a.center[0]
    # rows skipped at the start (train_start) do not count either
    c = fit(y, exog, ip, n_train, skip=(30, 0, 0), season=12)
    y3 = y.copy()
    y3[:30] *= 3
    d = fit(y3, exog, ip, n_train, skip=(30, 0, 0), season=12)
    np.testing.assert_array_equal(d.center, c.center)
    np.testing.assert_array_equal(d.spread, c.spread)


def test_auto_takes_the_log_of_all_positive_series_only():
    y, exog, ip = three_series()
    t = fit(y, exog, ip, transform="auto")
    assert t.names() == ["log", "none", "log"]
    with pytest.raises(DataError, match="the log transform cannot take.*--transform auto or none"):
        fit(y, exog, ip, transform="log")
    with pytest.raises(DataError, match="the log1p transform cannot take"):
        fit(y, exog, ip, transform="log1p")
    assert fit(y, exog, ip, transform="none").names() == ["none"] * 3


def test_a_zero_after_the_training_part_leaves_the_log_in_place():
    y, exog, ip = three_series()
    y2 = y.copy()
    y2[ip[2] + 16] = 0.0  # after the short series' 15 training rows
    assert fit(y2, exog, ip, transform="auto").names() == ["log", "none", "log"]
    air = data.load("airpassengers").y.copy()
    air[-3] = 0.0  # inside the holdout
    fc = Forecaster(hidden_size=4, window=6, backend="numpy", epochs=2, holdout=12, ensemble=1,
                    quiet=True).fit(air)
    assert fc.tf.names() == ["log"]
    (w,) = fc.evaluate_holdout()["windows"]
    assert np.isfinite(w["forecast"]).all()


def test_helpers_on_grouped_arrays():
    ip = np.array([0, 3, 3, 7])
    assert prep.positions(ip).tolist() == [0, 1, 2, 0, 1, 2, 3]
    assert prep.group_of(ip).tolist() == [0, 0, 0, 2, 2, 2, 2]
    v = np.array([1.0, 2, 4, 10, 20, 40, 80])
    d = prep.lagged(v, ip, 1)
    np.testing.assert_array_equal(d, [np.nan, 1, 2, np.nan, 10, 20, 40])
    d = prep.lagged(v, ip, np.array([0, 0, 2]))  # per-series lags; 0: unchanged
    np.testing.assert_array_equal(d, [1, 2, 4, np.nan, np.nan, 30, 60])
    c, s = prep.group_stats(v, prep.group_of(ip), np.ones(7, bool), 3, "standard")
    np.testing.assert_allclose(c, [7 / 3, 0, 37.5])
    np.testing.assert_allclose(s, [np.std([1, 2, 4]), 1, np.std([10, 20, 40, 80])])
    ip2 = np.array([0, 3, 7])
    c, s = prep.group_stats(v, prep.group_of(ip2), np.ones(7, bool), 2, "minmax")
    np.testing.assert_array_equal(c, [2.5, 45])
    np.testing.assert_array_equal(s, [1.5, 35])
    use = np.array([True, True, False, True, True, True, True])  # only the rows used
    c, s = prep.group_stats(v, prep.group_of(ip2), use, 2, "none")
    np.testing.assert_array_equal(c, [0, 0])
    np.testing.assert_array_equal(s, [1, 1])
    c, s = prep.group_stats(v, prep.group_of(ip2), use, 2, "standard")
    np.testing.assert_allclose(c, [1.5, 37.5])
    c, s = prep.group_stats(v, prep.group_of(ip2), use, 2, "rms")  # not centred
    np.testing.assert_array_equal(c, [0, 0])
    np.testing.assert_allclose(s, [np.sqrt(2.5), np.sqrt((100 + 400 + 1600 + 6400) / 4)])


# ---- windows -----------------------------------------------------------------------------

def test_windows_are_time_major_next_value_targets():
    A, Z = np.arange(10.0)[:, None], np.arange(10.0)
    w = Windows(A, Z, np.arange(6), 4, "all", "float64", False)
    x, y = w.gather(np.arange(6))
    assert w.shape == (4, 6, 1) and x.shape == (4, 6, 1) and y.shape == (4, 6, 1)
    np.testing.assert_array_equal(x[:, 2, 0], [2, 3, 4, 5])
    np.testing.assert_array_equal(y[:, 2, 0], [3, 4, 5, 6])
    x, y = Windows(A, Z, np.arange(6), 4, "last", "float64", False).gather(np.arange(6))
    np.testing.assert_array_equal(y[:, 0], np.arange(4, 10))


def test_split_is_chronological_without_leakage():
    """Training windows of every series end before its validation span, which ends before its
    held-out rows."""
    y = np.concatenate([np.arange(1.0, 61.0), 100 + np.arange(45.0)])
    p = data.read(pd.DataFrame({"unique_id": ["a"] * 60 + ["b"] * 45, "y": y}))
    fc = Forecaster(hidden_size=4, window=5, backend="numpy", valid_size=6, holdout=4,
                    season=0, transform="none", quiet=True)
    w = fc.prepare(p)
    ip = p.indptr
    assert fc.n_train.tolist() == [56, 41] and fc.n_valid.tolist() == [6, 6]
    g = np.searchsorted(ip, w.starts, side="right") - 1
    last_target = w.starts + w.W  # loss on every step: targets rows start+1 .. start+W
    assert (last_target < ip[g] + fc.n_train[g] - fc.n_valid[g]).all()
    for i in range(2):  # and every row before the validation span is some window's target
        mine = w.starts[g == i]
        assert mine.max() + w.W == ip[i] + fc.n_train[i] - fc.n_valid[i] - 1


def test_seed_encoded_change_task():
    v = data.load("airpassengers").y
    nc = prep.normalized_change(v)
    d = v[1] - v[0]
    assert nc[0] == d / 15 and len(nc) == 143
    c = prep.kmeans_1d(nc)
    assert len(c) == 3 and (np.diff(c) > 0).all()
    tok = prep.encode(nc, c)
    assert set(tok) == {0, 1, 2}
    # Decoding gives the centroid times the bound line at each change's index.
    ch = prep.decode(tok[:5], np.arange(5), c)
    up, lo = prep.bound_lines(5)
    for i in range(5):
        cen = c[tok[i]]
        assert math.isclose(ch[i], cen * (up[i] if cen >= 0 else abs(lo[i])))
    # later changes sit further along the bound lines
    d40 = v[41] - v[40]
    bound = 0.5 * 40 + 15 if d40 >= 0 else 0.6 * 40 + 7
    assert prep.normalized_change(v[40:42], t=[40])[0] == d40 / bound
    np.testing.assert_array_equal(prep.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])


def test_seasonal_indices_deseasonalise_and_come_back():
    """seasonality "indices": per-series indices after the log (zero where the series shows
    no significant season or is shorter than three), no seasonal difference, the lag-1
    difference for all; the inverse continues a history exactly, and a model output that
    undoes to a zero difference is the seasonally adjusted naive forecast."""
    y, exog, ip = three_series()
    t = fit(y, exog, ip, season=12, seasonality="indices", diff_nonseasonal=True)
    assert t.period == 12 and t.lag.tolist() == [0, 0, 0] and t.diff.all()
    assert np.abs(t.index[0]).max() > 0.05 and abs(t.index[0].sum()) < 1e-12
    assert not t.index[2].any()  # 15 training rows: fewer than three seasons
    pos, group = prep.positions(ip), prep.group_of(ip)
    z = t.forward(y, ip)
    s1 = t.stage1(y, group, pos)
    for i, m in ((0, 60), (1, 25), (2, 10)):
        a, b = ip[i], ip[i + 1]
        back = t.inverse(z[None, a + m:b], np.array([i]), s1[None, a + m - 2:a + m],
                         np.array([m]))
        np.testing.assert_allclose(back[0], y[a + m:b], rtol=1e-12,
                                   atol=1e-12 * np.abs(y[a:b]).max())
    # the model-space value of a zero difference: the adjusted last value, reseasonalised
    zero = (0.0 - t.center[0]) / t.spread[0]
    f = t.inverse(np.full((1, 12), zero), np.array([0]), s1[None, 118:120], np.array([120]))
    adj = np.log(y[119]) - t.index[0, 119 % 12]
    want = np.exp(adj + t.index[0, (120 + np.arange(12)) % 12])
    np.testing.assert_allclose(f[0], want, rtol=1e-9)
    with pytest.raises(ValueError, match="position"):
        t.stage1(y, group)


def _theta_by_hand(x, h):
    """The Theta method of one series, written the plain way as an oracle: SES errors of the
    last THETA_MEMORY values for every smoothing constant of the grid and its refinement,
    the least-squares slope of all values by np.polyfit, the Hyndman-Billah forecast."""
    xs = x[-prep.THETA_MEMORY:]

    def sse(a):
        level, e2 = xs[0], 0.0
        for v in xs[1:]:
            e2 += (v - level) ** 2
            level = level + a * (v - level)
        return e2, level

    grid = list(prep.THETA_GRID)
    best = grid[int(np.argmin([sse(a)[0] for a in grid]))]
    fine = [round(min(max(best + k * 0.01, 0.01), 1.0), 2) for k in range(-4, 5)]
    a = fine[int(np.argmin([sse(a)[0] for a in fine]))]
    level = sse(a)[1]
    b = np.polyfit(np.arange(len(x)), x, 1)[0] if len(x) > 1 else 0.0
    k = np.arange(1, h + 1)
    return level + b / 2 * (k - 1 + (1 - (1 - a) ** len(xs)) / a)


def test_theta_is_ses_with_half_the_trend_row_by_row():
    """prep.theta: the SES-with-drift form of the Theta method (against a plain one-series
    oracle; a long history smoothed over its last THETA_MEMORY values), half the slope of a
    straight line, a constant kept, and each row's bits its own whatever rows and padding
    share its batch."""
    rng = np.random.default_rng(3)
    n = np.array([1, 2, 7, 30, 64, prep.THETA_MEMORY + 150])
    x = np.cumsum(rng.normal(0.1, 1.0, (len(n), n.max() + 5)), axis=1)
    f = prep.theta(x, n, 9)
    for b, k in enumerate(n):
        np.testing.assert_allclose(f[b], _theta_by_hand(x[b, :k], 9), rtol=1e-9, atol=1e-9)
    line = 2.0 + 0.5 * np.arange(20)
    np.testing.assert_allclose(prep.theta(line[None], [20], 4)[0],
                               line[-1] + 0.25 * np.arange(1, 5), rtol=1e-12)
    np.testing.assert_array_equal(prep.theta(np.full((1, 9), 3.5), [9], 3), np.full((1, 3), 3.5))
    for b, k in enumerate(n):  # alone, unpadded: the same bits as in the batch
        assert np.array_equal(prep.theta(x[b:b + 1, :k], [k], 9)[0], f[b]), b
