"""The bundled real series (issue 12 item 5): each loads by name with its dates, units and
period, and its source is written down beside it."""

from importlib import resources

import numpy as np
import pytest

from lockstep import cli, data

EXPECT = {  # name: (rows, column, first label, last label, period)
    "airpassengers": (144, "Passengers", "1949-01", "1960-12", 12),
    "elec_equip": (257, "turnover_index", "1995-01", "2016-05", 12),
    "co2": (444, "co2", "1965-01", "2001-12", 12),
    "nile": (100, "volume", "1871", "1970", None),
}
MACRO = ["realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "pop"]


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_bundled_series_load_by_name(name):
    rows, col, first, last, period = EXPECT[name]
    s = data.resolve(name)
    assert (len(s), s.names, s.time[0], s.time[-1], s.period) == (rows, [col], first, last, period)
    assert np.all(s.values > 0) and s.source == name


def test_the_many_series_set_loads_as_a_panel():
    from lockstep import panel

    s = data.resolve("macro")
    assert (len(s), s.names, s.time[0], s.time[-1], s.period) == (203, MACRO, "1959-Q1",
                                                                   "2009-Q3", 4)
    p = panel.from_series(s)
    assert p.ids == MACRO and p.season == 4 and all(len(p.y[i]) == 203 for i in p.ids)
    assert all((p.y[i] > 0).all() for i in p.ids)


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
    assert "nile: 100 rows" in capsys.readouterr().out
