"""The one reader (lockstep.data.read) and its data model (Panel), and data.calendar."""

import os
import sys
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockstep import data
from lockstep.data import DataError, Panel, calendar as cal, read


def write(tmp_path, text, name="t.csv", encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def same(a: Panel, b: Panel, dates=True):
    assert a.ids.tolist() == b.ids.tolist()
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.exog_names == b.exog_names
    np.testing.assert_array_equal(a.exog, b.exog)
    assert a.freq == b.freq
    if dates:
        assert (a.ds is None) == (b.ds is None)
        if a.ds is not None:
            np.testing.assert_array_equal(a.ds, b.ds)
    assert a.fingerprint() == b.fingerprint()


def long_frame():
    """Two monthly series of different spans, in long form."""
    a = pd.date_range("2015-01-01", periods=6, freq="MS")
    b = pd.date_range("2015-03-01", periods=5, freq="MS")
    return pd.DataFrame({"unique_id": ["s0"] * 6 + ["s1"] * 5, "ds": list(a) + list(b),
                         "y": np.arange(11, dtype=float) * 1.5 + 0.25})


# ---- every source gives the same Panel -------------------------------------------------------

def test_every_source_kind_gives_the_same_panel(tmp_path):
    df = long_frame()
    ref = read(df)
    assert ref.ids.tolist() == ["s0", "s1"] and ref.lengths().tolist() == [6, 5]
    assert ref.freq == "MS" and ref.season == 12 and ref.ds.dtype == np.dtype("datetime64[ns]")
    # CSV long, dates as text
    p = tmp_path / "long.csv"
    df.assign(ds=df.ds.dt.strftime("%Y-%m-%d")).to_csv(p, index=False)
    same(read(p), ref)
    same(read(str(p)), ref)
    # CSV wide: shorter series start and end with empty cells
    wide = df.pivot(index="ds", columns="unique_id", values="y").reset_index()
    wide.columns.name = None
    pw = tmp_path / "wide.csv"
    wide.to_csv(pw, index=False)
    assert ",," in pw.read_text() or pw.read_text().count(",\n") or True
    same(read(pw), ref)
    same(read(wide), ref)  # DataFrame wide
    # wide without a ds name: the first column holds the dates
    same(read(wide.rename(columns={"ds": "month"})), ref)
    # Parquet
    pq = tmp_path / "long.parquet"
    df.to_parquet(pq)
    same(read(pq), ref)
    # a Panel is returned unchanged
    assert read(ref) is ref


def test_undated_sources_agree(tmp_path):
    v = [1.0, 2.5, 3.0, 4.25, 5.0]
    ref = read(np.array(v))
    assert ref.ids.tolist() == ["y"] and ref.ds is None and ref.freq is None and ref.season == 0
    same(read(v), ref)
    same(read(tuple(v)), ref)
    same(read(pd.DataFrame({"y": v})), ref)
    same(read(write(tmp_path, "y\n" + "\n".join(map(str, v)) + "\n")), ref)
    m = np.arange(12.0).reshape(6, 2)
    two = read(m)
    assert two.ids.tolist() == ["0", "1"] and two.lengths().tolist() == [6, 6]
    np.testing.assert_array_equal(two.values(1), m[:, 1])
    same(read(write(tmp_path, "0,1\n" + "\n".join(f"{a},{b}" for a, b in m) + "\n")), two)
    # long form without a time column: rows are steps
    lf = pd.DataFrame({"unique_id": ["a", "a", "b"], "y": [1.0, 2.0, 3.0]})
    p = read(lf, season=4)
    assert p.ds is None and p.lengths().tolist() == [2, 1] and p.season == 4
    with pytest.raises(DataError, match="--freq MS needs dates"):
        read(lf, freq="MS")


def test_bundled():
    ap = read("airpassengers")
    assert len(ap) == 1 and len(ap.y) == 144 and ap.freq == "MS" and ap.season == 12
    assert ap.source == "airpassengers"
    assert str(ap.ds[0])[:10] == "1949-01-01" and str(ap.ds[-1])[:10] == "1960-12-01"
    same(data.load("airpassengers"), ap)
    macro = read("macro")
    assert len(macro) == 8 and macro.freq.startswith("QS") and macro.season == 4
    assert set(macro.lengths().tolist()) == {203}
    nile = read("nile")
    assert len(nile.y) == 100 and nile.freq.startswith("YS") and nile.season == 0
    assert str(nile.ds[0])[:4] == "1871"
    for name in data.BUNDLED:
        assert len(read(name)) >= 1
    assert read("macro", value_column="cpi").ids.tolist() == ["cpi"]


def test_synthetic_is_a_panel():
    s = data.synthetic(3, 30, seed=2)
    assert isinstance(s, Panel) and s.ids.tolist() == ["s0", "s1", "s2"]
    assert s.freq == "MS" and s.season == 12 and str(s.ds[0])[:10] == "2000-01-01"
    assert s.lengths().tolist() == [30, 30, 30]
    same(read(s.to_frame()), s)


# ---- ids, values, dates ----------------------------------------------------------------------

def test_ids_are_strings_always(tmp_path):
    rows = ["unique_id,ds,y"]
    for sid in ("NA", "null", "None", "nan", "007"):
        rows += [f"{sid},2015-0{m},{m}" for m in range(1, 4)]
    p = read(write(tmp_path, "\n".join(rows) + "\n"))
    assert p.ids.tolist() == ["NA", "null", "None", "nan", "007"]
    p = read(write(tmp_path, "unique_id,ds,y\n1,2015-01,1\n1,2015-02,2\n1,2015-03,3\n"))
    assert p.ids.tolist() == ["1"]


def test_empty_id_refused(tmp_path):
    text = "unique_id,ds,y\na,2015-01,1\n,2015-02,2\n"
    with pytest.raises(DataError, match=r"line 3: the id column 'unique_id' is empty"):
        read(write(tmp_path, text))
    with pytest.raises(DataError, match="id column 'unique_id' is empty"):
        read(pd.DataFrame({"unique_id": ["a", None], "ds": ["2015-01", "2015-02"], "y": [1, 2]}))


LONG_BAD = {
    "descending": ("s0,2015-03-01,1\ns0,2015-02-01,2\ns0,2015-01-01,3\n",
                   r"series 's0': 2015-02-01 at line 3 comes after 2015-03-01; sort the table by time"),
    "shuffled": ("s0,2015-01-01,1\ns0,2015-02-01,2\ns0,2015-04-01,3\ns0,2015-03-01,4\n",
                 r"series 's0': 2015-03-01 at line 5 comes after 2015-04-01; sort the table"),
    "duplicate": ("s0,2015-01-01,1\ns0,2015-02-01,2\ns0,2015-02-01,3\ns0,2015-03-01,4\n",
                  r"series 's0' has the timestamp 2015-02-01 more than once \(lines 3, 4\)"),
    "gap": ("s0,2015-01-01,1\ns0,2015-02-01,2\ns0,2015-03-01,3\ns0,2015-05-01,4\n",
            r"series 's0' is not regular at frequency MS: 2015-03-01 is followed by 2015-05-01 "
            r"\(line 5\), expected 2015-04-01; fill the gap or resample"),
    "month13": ("s0,2015-11,1\ns0,2015-12,2\ns0,2015-13,3\n",
                r"series 's0': time value '2015-13' at line 4 is not a date"),
    "feb30": ("s0,2015-02-28,1\ns0,2015-02-30,2\n",
              r"series 's0': time value '2015-02-30' at line 3 is not a date"),
    "empty date": ("s0,2015-01-01,1\ns0,,2\n", r"series 's0' has no date at line 3"),
    "big": ("s0,2015-01,1\ns0,2015-02,1e300\ns0,2015-03,1\n",
            r"series 's0': value 1e\+300 at line 3 in column 'y' is beyond \u00b11e\+150.*rescale "
            "the column"),
    "inf": ("s0,2015-01,1\ns0,2015-02,inf\ns0,2015-03,1\n", r"value inf at line 3 .*not finite"),
    "text": ("s0,2015-01,1\ns0,2015-02,abc\ns0,2015-03,1\n",
             r"series 's0': 'abc' at line 3 in column 'y' is not a number"),
    "missing": ("s0,2015-01,1\ns0,2015-02,NA\ns0,2015-03,1\n",
                r"series 's0' has no value at line 3 in column 'y' \(empty or NA\)"),
}


@pytest.mark.parametrize("case", sorted(LONG_BAD))
def test_long_refusals(tmp_path, case):
    body, msg = LONG_BAD[case]
    with pytest.raises(DataError, match=msg) as e:
        read(write(tmp_path, "unique_id,ds,y\n" + body))
    assert "\n" not in str(e.value)


WIDE_BAD = {
    "descending": ("2015-03-01,1,1\n2015-02-01,2,2\n", r"series 'a': 2015-02-01 at line 3 comes after"),
    "shuffled": ("2015-01-01,1,1\n2015-03-01,2,2\n2015-02-01,3,3\n",
                 r"series 'a': 2015-02-01 at line 4 comes after 2015-03-01"),
    "duplicate": ("2015-01-01,1,1\n2015-01-01,2,2\n",
                  r"series 'a' has the timestamp 2015-01-01 more than once \(lines 2, 3\)"),
    "gap": ("2015-01-01,1,1\n2015-02-01,2,2\n2015-03-01,3,3\n2015-06-01,4,4\n",
            r"series 'a' is not regular at frequency MS: 2015-03-01 is followed by 2015-06-01 "
            r"\(line 5\), expected 2015-04-01"),
    "month13": ("2015-12,1,1\n2015-13,2,2\n", r"time value '2015-13' at line 3 is not a date"),
    "feb30": ("2015-02-28,1,1\n2015-02-30,2,2\n", r"time value '2015-02-30' at line 3 is not a date"),
    "hole": ("2015-01-01,1,1\n2015-02-01,,2\n2015-03-01,3,3\n",
             r"series 'a' has an empty cell at line 3 between its first and last values"),
    "big": ("2015-01-01,1,1\n2015-02-01,2,-1e300\n2015-03-01,3,3\n",
            r"series 'b': value -1e\+300 at line 3 is beyond"),
    "text": ("2015-01-01,1,1\n2015-02-01,2,x\n2015-03-01,3,3\n",
             r"series 'b': 'x' at line 3 is not a number"),
}


@pytest.mark.parametrize("case", sorted(WIDE_BAD))
def test_wide_refusals(tmp_path, case):
    body, msg = WIDE_BAD[case]
    with pytest.raises(DataError, match=msg) as e:
        read(write(tmp_path, "ds,a,b\n" + body))
    assert "\n" not in str(e.value)


def test_wide_ragged_columns(tmp_path):
    p = read(write(tmp_path, "month,a,b\n2015-01,1,\n2015-02,2,5\n2015-03,3,6\n2015-04,,7\n"))
    assert p.ids.tolist() == ["a", "b"] and p.lengths().tolist() == [3, 3]
    assert str(p.ds[p.rows(1)][0])[:10] == "2015-02-01" and p.freq == "MS"
    with pytest.raises(DataError, match="series 'b' has no values"):
        read(write(tmp_path, "ds,a,b\n2015-01,1,\n2015-02,2,\n2015-03,3,\n"))
    # value_column picks some columns; a column of text is refused unless left out
    t = "ds,a,b,note\n2015-01,1,4,x\n2015-02,2,5,y\n2015-03,3,6,z\n"
    assert read(write(tmp_path, t), value_column=["b", "a"]).ids.tolist() == ["b", "a"]
    with pytest.raises(DataError, match="series 'note': 'x' at line 2 is not a number"):
        read(write(tmp_path, t))


def test_columns_and_options(tmp_path):
    p = write(tmp_path, "unique_id,ds,y,x\na,2015-01,1,5\na,2015-02,2,6\na,2015-03,3,7\n")
    assert read(p, exog=["x"]).exog_names == ("x",)
    np.testing.assert_array_equal(read(p, exog="x").exog[:, 0], [5, 6, 7])
    with pytest.raises(DataError, match="--exog y is the value column; covariates are other columns"):
        read(p, exog="y")
    with pytest.raises(DataError, match="--exog ds is the time column"):
        read(p, exog=["ds"])
    with pytest.raises(DataError, match="no covariate column 'z'"):
        read(p, exog=["z"])
    with pytest.raises(DataError, match="--value-column ds is the time column"):
        read(p, value_column="ds")
    with pytest.raises(DataError, match="--value-column unique_id is the id column"):
        read(p, value_column="unique_id")
    with pytest.raises(DataError, match=r"has no id column 'sid'; columns are unique_id, ds, y, x"):
        read(p, id_column="sid")
    with pytest.raises(DataError, match="has no time column 'when'"):
        read(p, time_column="when")
    with pytest.raises(DataError, match="has no value column 'v'"):
        read(p, value_column="v")
    with pytest.raises(DataError, match="covariates .*need the long form"):
        read(write(tmp_path, "ds,a\n2015-01,1\n2015-02,2\n2015-03,3\n"), exog=["a"])
    q = write(tmp_path, "sid,when,v\na,2015-01,1\na,2015-02,2\na,2015-03,3\n")
    assert read(q, id_column="sid", time_column="when", value_column="v").freq == "MS"


def test_frequencies(tmp_path):
    text = "unique_id,ds,y\n" + "".join(f"m,2015-0{i},1\n" for i in range(1, 5)) + \
        "w,2015-01-04,1\nw,2015-01-11,2\nw,2015-01-18,3\nw,2015-01-25,4\nw,2015-02-01,5\n"
    with pytest.raises(DataError, match="different frequencies"):
        read(write(tmp_path, text))
    with pytest.raises(DataError, match=r"--freq XYZ is not a pandas frequency \(e.g. MS, QS, W, D, h\)"):
        read(long_frame(), freq="XYZ")
    with pytest.raises(DataError, match="--freq 0D"):
        read(long_frame(), freq="0D")
    with pytest.raises(DataError, match="--freq -1D"):
        cal.check_freq("-1D")
    assert read(long_frame(), freq="MS").freq == "MS"
    with pytest.raises(DataError, match=r"series 's0' is at frequency MS, not QS-JAN \(the given --freq\)"):
        read(long_frame(), freq="QS")
    with pytest.raises(DataError, match="not regular at frequency QS-JAN"):
        read(long_frame().iloc[[0, 3, 4, 6]], freq="QS")
    # too short to infer, fine with --freq
    short = pd.DataFrame({"unique_id": ["a", "a"], "ds": ["2015-01", "2015-02"], "y": [1, 2]})
    with pytest.raises(DataError, match="cannot infer the frequency.*pass --freq"):
        read(short)
    assert read(short, freq="MS").lengths().tolist() == [2]


def test_bom_mixed_month_formats_and_dst(tmp_path):
    p = write(tmp_path, "\ufeffunique_id,ds,y\na,2016-01,1\na,2016-02-01,2\na,2016-03,3\n")
    got = read(p)
    assert got.ids.tolist() == ["a"] and got.freq == "MS"
    assert str(got.ds[1])[:10] == "2016-02-01"
    dst = "ds,load\n2015-03-29T00:00:00+01:00,1\n2015-03-29T01:00:00+01:00,2\n" \
          "2015-03-29T03:00:00+02:00,3\n2015-03-29T04:00:00+02:00,4\n"
    h = read(write(tmp_path, dst))
    assert h.freq == "h" and h.season == 24
    assert str(h.ds[0]) == "2015-03-28T23:00:00.000000000"
    q = read(write(tmp_path, "quarter,a\n2015-Q1,1\n2015-Q2,2\n2015Q3,3\n2015-Q4,4\n"))
    assert q.freq.startswith("QS") and str(q.ds[2])[:10] == "2015-07-01"


def test_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is empty"):
        read(write(tmp_path, ""))
    with pytest.raises(DataError, match="no data rows"):
        read(write(tmp_path, "unique_id,ds,y\n"))
    with pytest.raises(DataError, match="line 3 has 4 cells but the header has 3"):
        read(write(tmp_path, "unique_id,ds,y\na,2015-01,1\na,2015-02,1,9\n"))
    with pytest.raises(DataError, match="line 2 has 4 cells but the header has 3"):
        read(write(tmp_path, "unique_id,ds,y\na,2015-01,1,9\na,2015-02,1\n"))
    with pytest.raises(DataError, match="not UTF-8"):
        read(write(tmp_path, "unique_id,ds,y\n\xe9,2015-01,1\n", encoding="latin-1"))
    with pytest.raises(DataError, match="duplicate column names"):
        read(write(tmp_path, "ds,a,a\n2015-01,1,2\n"))
    if hasattr(os, "mkfifo"):
        f = tmp_path / "fifo.csv"
        os.mkfifo(f)
        with pytest.raises(DataError, match="not a regular file"):
            read(f)


def test_parquet_without_pyarrow(tmp_path, monkeypatch):
    p = tmp_path / "t.parquet"
    long_frame().to_parquet(p)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(DataError, match="pip install pyarrow"):
        read(p)


# ---- the Panel -------------------------------------------------------------------------------

def test_truncated_subset_fingerprint():
    p = read(long_frame())
    t = p.truncated(2)
    assert t.lengths().tolist() == [4, 3]
    np.testing.assert_array_equal(t.values(1), p.values(1)[:-2])
    np.testing.assert_array_equal(t.last_dates(), p.ds[[3, 6 + 2]])
    t2 = p.truncated(np.array([1, 5]))
    assert t2.lengths().tolist() == [5, 0] and t2.describe()[1]["rows"] == 0
    s = p.subset([1, 0])
    assert s.ids.tolist() == ["s1", "s0"] and s.lengths().tolist() == [5, 6]
    np.testing.assert_array_equal(s.values(0), p.values(1))
    np.testing.assert_array_equal(s.ds[s.rows(1)], p.ds[p.rows(0)])
    assert p.subset([0, 1]).fingerprint() == p.fingerprint()
    assert s.fingerprint() != p.fingerprint() and t.fingerprint() != p.fingerprint()
    assert p.truncated(0).fingerprint() == p.fingerprint()
    d = p.describe()
    assert d[0] == {"unique_id": "s0", "rows": 6, "start": "2015-01-01", "end": "2015-06-01",
                    "freq": "MS", "season": 12, "min": 0.25, "max": 7.75, "mean": 4.0}
    f = p.to_frame()
    assert list(f.columns) == ["unique_id", "ds", "y"]
    same(read(f), p)
    u = read(np.arange(6.0).reshape(3, 2))
    assert u.describe()[1]["start"] == 0 and u.describe()[1]["end"] == 2
    assert list(u.to_frame().columns) == ["unique_id", "step", "y"]
    same(read(u.to_frame()), u)


def test_exog_follows_rows():
    df = long_frame().assign(x=np.arange(11.0) * 10)
    p = read(df, exog=["x"])
    np.testing.assert_array_equal(p.exog[:, 0], df.x.to_numpy())
    assert p.subset([1]).exog[:, 0].tolist() == [60, 70, 80, 90, 100]
    assert p.truncated(1).exog.shape == (9, 1)
    assert p.fingerprint() != read(df.assign(x=df.x + 1), exog=["x"]).fingerprint()


def test_many_series_read_fast():
    rng = np.random.default_rng(0)
    n = 50_000
    L = rng.integers(60, 241, n)
    end = np.datetime64("2020-12", "M") - rng.integers(0, 24, n)
    rows = int(L.sum())
    pos = np.arange(rows) - np.repeat(np.cumsum(L) - L, L)
    months = np.repeat(end - L + 1, L) + pos
    names = np.array([f"s{i}" for i in range(n)], dtype=object)
    df = pd.DataFrame({"unique_id": names[np.repeat(np.arange(n), L)],
                       "ds": months.astype("datetime64[ns]"), "y": rng.standard_normal(rows)})
    t = time.perf_counter()
    p = read(df)
    took = time.perf_counter() - t
    assert len(p) == n and p.freq == "MS" and took < 20, took
    np.testing.assert_array_equal(p.lengths(), L)
    t = time.perf_counter()
    fut = cal.step_dates(p.last_dates(), 12, p.freq)
    assert time.perf_counter() - t < 1
    assert fut.shape == (n, 12)
    np.testing.assert_array_equal(fut[:, 0], (end + 1).astype("datetime64[ns]"))


# ---- calendar --------------------------------------------------------------------------------

@pytest.mark.parametrize("freq,start", [("MS", "2015-01-01"), ("QS", "2015-01-01"),
                                        ("W-SUN", "2015-01-04"), ("D", "2015-01-01"),
                                        ("h", "2015-01-01"), ("B", "2015-01-01"),
                                        ("ME", "2015-01-31"), ("YS", "2001-01-01")])
def test_step_dates_matches_date_range(freq, start):
    grid = pd.date_range(start, periods=40, freq=freq)
    last = grid[[5, 39, 0, 17, 17, 22]].to_numpy("datetime64[ns]")
    got = cal.step_dates(last, 7, freq)
    for i, t in enumerate(last):
        want = pd.date_range(t, periods=8, freq=freq)[1:].to_numpy("datetime64[ns]")
        np.testing.assert_array_equal(got[i], want)


def test_step_dates_off_grid_and_limits():
    # weekly stamps on different weekdays: one date_range per distinct stamp
    last = pd.to_datetime(["2015-01-05", "2015-01-04", "2015-01-07", "2015-01-05"]).to_numpy("M8[ns]")
    got = cal.step_dates(last, 3, "W-SUN")
    for i, t in enumerate(last):
        np.testing.assert_array_equal(
            got[i], pd.date_range(t, periods=4, freq="W-SUN")[1:].to_numpy("datetime64[ns]"))
    assert cal.step_dates(last, 0, "D").shape == (4, 0)
    with pytest.raises(DataError, match="--horizon 500 runs past 2262-04-11.*forecast fewer steps"):
        cal.step_dates(np.array(["2250-01-01"], "M8[ns]"), 500, "MS")
    with pytest.raises(DataError, match="--horizon 5000 runs past 2262-04-11"):
        cal.step_dates(np.array(["2262-01-01"], "M8[ns]"), 5000, "D")


def test_calendar_helpers():
    assert [cal.season_of(f) for f in ("MS", "ME", "QS-JAN", "QE-DEC", "W-SUN", "B", "D", "h",
                                       "YS-JAN", None, "15min", "2MS")] == \
        [12, 12, 4, 4, 52, 5, 7, 24, 0, 0, 0, 0]
    assert cal.freq_name("MS") == "monthly" and cal.freq_name("W-MON") == "weekly"
    assert cal.freq_name("B") == "business-daily" and cal.freq_name("15min") == "15min"
    assert cal.check_freq("W") == "W-SUN" and cal.check_freq("QS") == "QS-JAN"
    assert cal.check_freq("M") == "ME" and cal.check_freq("H") == "h"
    ds = pd.date_range("2015-01-01", periods=30, freq="D").to_numpy("M8[ns]")
    f = cal.calendar_features(ds, "D")
    assert f.shape == (30, 2)
    dow = pd.DatetimeIndex(ds).day_of_week.to_numpy()
    np.testing.assert_array_equal(f[:, 0], np.sin(2 * np.pi * dow.astype(float) / 7))
    assert cal.calendar_features(ds, "YS").shape == (30, 0)
    m = pd.date_range("2015-01-01", periods=14, freq="MS").to_numpy("M8[ns]")
    np.testing.assert_array_equal(cal.calendar_features(m, "MS")[:, 1],
                                  np.cos(2 * np.pi * (np.arange(14) % 12) / 12))
    assert cal.stamp(np.datetime64("2015-01-01")) == "2015-01-01"
    assert cal.stamp(pd.Timestamp("2015-01-01 13:00")) == "2015-01-01 13:00:00"
    assert cal.stamps(np.array(["2015-01-01", "2015-01-01T13:00"], "M8[ns]")) == \
        ["2015-01-01", "2015-01-01 13:00:00"]
    got = cal.to_datetime(["2016-01", "2016-01-01", "2015-Q2", "2015Q3", "2015-03-29T03:00+02:00"])
    assert got.dtype == np.dtype("datetime64[ns]")
    assert [str(x)[:16] for x in got] == ["2016-01-01T00:00", "2016-01-01T00:00", "2015-04-01T00:00",
                                          "2015-07-01T00:00", "2015-03-29T01:00"]
    with pytest.raises(DataError, match="'2015-13' .*is not a date"):
        cal.to_datetime(["2015-12", "2015-13"])
    assert np.isnat(cal.to_datetime(["2015-13"], errors="coerce")[0])
    assert cal.infer_freq(m) == "MS" and cal.infer_freq(m[:2]) is None
    assert cal.infer_freq(m[[0, 1, 3]]) is None


# ---- fuzz ------------------------------------------------------------------------------------

_cells = st.sampled_from(["", "a", "b", "NA", "2015-01", "2015-02", "2015-03", "2015-13",
                          "2015-02-30", "1", "-2.5", "1e300", "inf", "x", "2015-01-01T00:00+01:00",
                          "\"", "2015-Q1", "0", " ", "nan"])
_lines = st.lists(st.lists(_cells, min_size=1, max_size=4), min_size=0, max_size=8)
_headers = st.sampled_from(["unique_id,ds,y", "ds,a,b", "a,b", "unique_id,y", "y", "ds,y,x",
                            "\ufeffunique_id,ds,y", "unique_id,ds,y,x", ""])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=_headers, lines=_lines, exog=st.sampled_from([(), ("x",), ("y",)]),
       freq=st.sampled_from([None, "MS", "D"]))
def test_fuzz_csv_gives_a_panel_or_a_data_error(tmp_path, header, lines, exog, freq):
    text = header + "\n" + "\n".join(",".join(r) for r in lines) + "\n"
    p = write(tmp_path, text, "fuzz.csv")
    try:
        got = read(p, exog=exog, freq=freq)
    except DataError as e:
        assert "\n" not in str(e)
        return
    assert isinstance(got, Panel)
    assert np.isfinite(got.y).all() and len(got.ids) == len(set(got.ids.tolist()))


# ---- a large one-table file: read in chunks into one block, checked in ranges ---------------

def _staggered(T=30_000, K=5, seed=3):
    """Hourly series of different spans in one table (empty cells before and after), enough
    rows for several parser chunks and check ranges: (frame with a ds column, long frame)."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2001-01-01", periods=T, freq="h")
    wide = pd.DataFrame({"ds": ds.strftime("%Y-%m-%d %H:%M:%S")})
    rows = []
    for j in range(K):
        a, b = sorted(rng.integers(0, T, 2))
        v = np.full(T, np.nan)
        v[a:b + 1] = np.round(rng.normal(size=b + 1 - a) * 100, 3)
        wide[f"s{j}"] = v
        rows.append(pd.DataFrame({"unique_id": f"s{j}", "ds": ds[a:b + 1], "y": v[a:b + 1]}))
    return wide, pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize("form", ["lf", "crlf", "quoted newline"])
def test_large_wide_file_equals_its_long_form(tmp_path, form):
    wide, long = _staggered()
    if form == "quoted newline":  # a line end inside a cell: fewer rows than line ends
        wide["note"] = "a\nb"
    text = wide.to_csv(index=False, lineterminator="\r\n" if form == "crlf" else "\n")
    p = write(tmp_path, text)
    vals = [c for c in wide.columns if c.startswith("s")]
    same(read(p, value_column=vals), read(long))


def test_large_wide_file_errors_name_the_first_row_and_series(tmp_path):
    wide, _ = _staggered()
    s = wide.drop(columns="ds").notna().to_numpy()
    r = int(np.flatnonzero(s.sum(axis=1) >= 2)[-1])  # a late row that two series share
    j = int(np.flatnonzero(s[r])[0])
    for edit, msg in ((lambda w: w.iloc[r, 0].replace(":00:00", ":30:00"),
                       f"series 's{j}' is not regular at frequency h"),
                      (lambda w: w.iloc[r - 1, 0], f"series 's{j}' has the timestamp"),
                      (lambda w: "soon", f"series 's{j}': time value 'soon' at line {r + 2}")):
        w = wide.copy()
        w.iloc[r, 0] = edit(w)
        with pytest.raises(DataError, match=msg) as e:
            read(write(tmp_path, w.to_csv(index=False)))
        assert str(r + 2) in str(e.value) and "\n" not in str(e.value), str(e.value)
    # a cell that is not a number, late in the file: found in the chunks, named with its line
    w = wide.astype({f"s{j}": object})
    w.iloc[r, j + 1] = "n/a?"
    with pytest.raises(DataError, match=f"series 's{j}': 'n/a\\?' at line {r + 2} is not a "):
        read(write(tmp_path, w.to_csv(index=False)))
