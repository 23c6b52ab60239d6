"""The bundled real series (issue 12 item 5): each loads by name, through the one reader, as a
Panel with its dates, units and period, and its source is written down beside it."""

from importlib import resources

import numpy as np
import pytest

from lockstep import cli, data

EXPECT = {  # name: (rows, column, first date, last date, freq, period)
    "airpassengers": (144, "Passengers", "1949-01-01", "1960-12-01", "MS", 12),
    "elec_equip": (257, "turnover_index", "1995-01-01", "2016-05-01", "MS", 12),
    "co2": (444, "co2", "1965-01-01", "2001-12-01", "MS", 12),
    "nile": (100, "volume", "1871-01-01", "1970-01-01", "YS-JAN", None),
}
MACRO = ["realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "pop"]


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_bundled_series_load_by_name(name):
    rows, col, first, last, freq, period = EXPECT[name]
    p = data.load(name)
    assert (len(p), p.ids.tolist(), p.lengths().tolist()) == (1, [col], [rows])
    assert (p.ds[0], p.ds[-1]) == (np.datetime64(first), np.datetime64(last))
    assert (p.freq, p.period, p.season) == (freq, period, period or 0)
    assert np.all(p.y > 0) and p.source == name
    same = data.read(name)  # load is the one reader on the bundled name
    assert same.fingerprint() == p.fingerprint() and (same.ds == p.ds).all()


def test_the_many_series_set_loads_as_a_panel():
    p = data.load("macro")
    assert p.ids.tolist() == MACRO and p.season == 4 and p.freq.startswith("QS")
    assert p.lengths().tolist() == [203] * 8
    for i in range(len(p)):
        ds = p.ds[p.rows(i)]
        assert (ds[0], ds[-1]) == (np.datetime64("1959-01-01"), np.datetime64("2009-07-01"))
    assert (p.y > 0).all() and p.source == "macro"
    from lockstep import panel  # the old name of the reader reads it the same

    assert panel.read_panel("macro").fingerprint() == p.fingerprint()


def test_every_bundled_file_has_its_source_and_licence():
    here = resources.files("lockstep.data")
    notes = (here / "SOURCES.md").read_text()
    for name in data.BUNDLED:
        assert (here / f"{name}.csv").is_file()
        assert f"`{name}.csv`" in notes
    assert notes.count("public domain") >= 4
    assert set(data.describe_bundled()) == set(data.BUNDLED)


def test_the_cli_names_the_bundled_series(capsys):
    text = " ".join(cli.build_parser()._subparsers._group_actions[0].choices["train"]
                    .format_help().split())
    for name in data.BUNDLED:
        assert name in text
    assert cli.main(["data", "--data", "nile"]) == 0
    assert "nile: 1 series, 100 rows" in capsys.readouterr().out
    assert cli.main(["data", "--data", "macro"]) == 0
    out = capsys.readouterr().out
    assert "macro: 8 series, 1624 rows" in out and "season 4" in out
