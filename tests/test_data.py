"""Data loading, preprocessing and windows."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockstep import data
from lockstep.data import DataError, prep


def test_airpassengers_is_series_g():
    s = data.load("airpassengers")
    assert len(s) == 144 and s.names == ["Passengers"] and s.period == 12
    assert s.time[0] == "1949-01" and s.time[-1] == "1960-12"
    assert s.values.sum() == 40363 and s.values.min() == 104 and s.values.max() == 622
    assert s.values[0, 0] == 112 and s.values[-1, 0] == 432


def write(tmp_path, text, name="s.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_univariate_and_multivariate(tmp_path):
    p = write(tmp_path, "date,a,b,label\n2020-01,1.5,10,x\n2020-02,2.5,20,y\n2020-03,3.5,30,z\n")
    with pytest.raises(DataError, match="column 'label': 'x' is not a number; fix the cell or choose"):
        data.load_csv(p)
    s = data.load_csv(p, value_columns=["a", "b"])
    assert s.names == ["a", "b"] and s.time == ["2020-01", "2020-02", "2020-03"]
    np.testing.assert_array_equal(s.values, [[1.5, 10], [2.5, 20], [3.5, 30]])
    assert data.load_csv(p, value_columns=["b"]).names == ["b"]
    assert data.load_csv(p, value_columns=[1]).names == ["a"]
    nums = write(tmp_path, "x\n1\n2\n", "n.csv")
    s = data.load_csv(nums)
    assert s.time is None and s.values.shape == (2, 1)


@pytest.mark.parametrize("text,match", [
    ("", "is empty"),
    ("a,b\n", "no data rows"),
    ("t,v\n1,2\n2,abc\n", r"line 3, column 'v': 'abc' is not a number"),
    ("v\n1\nnan\n", "not finite"),
    ("v\n1\ninf\n", "not finite"),
    ("v\n1\n\n2,3\n", "has 2 cells but the header has 1"),
    ("v,v\n1,2\n", "duplicate column names"),
])
def test_csv_errors_are_one_line(tmp_path, text, match):
    with pytest.raises(DataError, match=match) as e:
        data.load_csv(write(tmp_path, text))
    assert "\n" not in str(e.value)


def test_csv_missing_file_and_unknown_column(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        data.load_csv(tmp_path / "nope.csv")
    p = write(tmp_path, "a,b\n1,2\n")
    with pytest.raises(DataError, match="value column 'c' not found; columns are: a, b"):
        data.load_csv(p, value_columns=["c"])


cells = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.integers(-10**6, 10**6).map(str), st.sampled_from(["", "abc", " 1 ", "1e400", "-", "NaN"]),
                  st.text(alphabet="0123456789.e-x ,\"", max_size=6))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(cells, min_size=1, max_size=4), min_size=0, max_size=6))
def test_csv_loader_fuzz(tmp_path, rows):
    """Any file either loads into finite values equal to the cells, or fails with DataError."""
    text = "\n".join(",".join(r) for r in rows)
    p = write(tmp_path, text, "fuzz.csv")
    try:
        s = data.load_csv(p)
    except DataError as e:
        assert "\n" not in str(e)
        return
    assert np.isfinite(s.values).all() and s.values.shape[1] == len(s.names)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(v=st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=2, max_size=2),
                  min_size=1, max_size=20))
def test_csv_round_trip_is_exact(tmp_path, v):
    p = write(tmp_path, "a,b\n" + "\n".join(f"{r[0]!r},{r[1]!r}" for r in v), "rt.csv")
    np.testing.assert_array_equal(data.load_csv(p).values, np.array(v))


def test_synthetic_is_seeded_and_positive():
    a, b = data.synthetic(3, 500, seed=7), data.synthetic(3, 500, seed=7)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.values.shape == (500, 3) and (a.values > 0).all()
    assert not np.array_equal(a.values, data.synthetic(3, 500, seed=8).values)


@pytest.mark.parametrize("kw", [dict(), dict(log=False), dict(diff=True), dict(season=12),
                                dict(diff=True, season=12, scale="minmax"), dict(scale="none")])
def test_pipeline_inverse_undoes_forward(kw):
    v = data.load("airpassengers").values
    p = prep.Pipeline(**kw).fit(v[:100])
    z = p.forward(v)
    m = 60 - p.lags  # continue from the first 60 values
    back = p.inverse(z[m:], v[:60])
    np.testing.assert_allclose(back, v[60:], rtol=1e-12)


def test_pipeline_fits_on_the_training_part_only():
    v = data.load("airpassengers").values.copy()
    a = prep.Pipeline(season=12).fit(v[:120]).state()
    v[120:] *= 10
    assert prep.Pipeline(season=12).fit(v[:120]).state() == a


def test_log_needs_positive_values():
    with pytest.raises(DataError, match="--no-log"):
        prep.Pipeline().fit(np.array([1.0, 0.0, 2.0, 3.0]))


def test_windows_are_time_major_next_value_targets():
    z = np.arange(10.0)[:, None]
    x, y = prep.windows(z, 4)
    assert x.shape == (4, 6, 1) and y.shape == (4, 6, 1)
    np.testing.assert_array_equal(x[:, 2, 0], [2, 3, 4, 5])
    np.testing.assert_array_equal(y[:, 2, 0], [3, 4, 5, 6])
    x, y = prep.windows(z, 4, "last")
    np.testing.assert_array_equal(y[:, 0], np.arange(4, 10))


def test_split_is_chronological_without_leakage():
    z = np.arange(30.0)[:, None]
    (xt, yt), (xv, yv) = prep.split_windows(z, 5, 6, "last")
    assert yt.max() < 24 and set(yv[:, 0]) == set(range(24, 30))


def test_seed_encoded_change_task():
    v = data.load("airpassengers").values[:, 0]
    nc = prep.normalized_change(v)
    d = v[1] - v[0]
    assert nc[0] == d / 15 and len(nc) == 143
    c = prep.kmeans_1d(nc)
    assert len(c) == 3 and (np.diff(c) > 0).all()
    tok = prep.encode(nc, c)
    assert set(tok) == {0, 1, 2}
    # Decoding gives the centroid times the bound line of that month.
    ch = prep.decode(tok[:5], 0, c)
    up, lo = prep.bound_lines(5)
    for i in range(5):
        cen = c[tok[i]]
        assert math.isclose(ch[i], cen * (up[i] if cen >= 0 else abs(lo[i])))
