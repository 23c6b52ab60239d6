"""The bad-input corpus: every class of hostile input goes through the CLI and must end in
exit code 2, exactly one stderr line starting with ``lockstep: error:``, no traceback, and
an unchanged folder. Plus fuzzing of checkpoint metadata and CSV text (only lockstep's own
error type may escape), locking, debris, full disks, SIGKILL during saves, divergence."""

from __future__ import annotations

import copy
import fcntl
import json
import os
import random
import resource
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lockstep import checkpoint, cli, data, plots
from lockstep.errors import LockstepError
from lockstep.forecast import Forecaster

TINY = ["--hidden", "4", "--window", "6", "--holdout", "12", "--backend", "numpy", "--quiet",
        "--patience", "0", "--ensemble", "1"]
TINY_KW = dict(hidden_size=4, window=6, holdout=12, patience=None, quiet=True, backend="numpy",
               ensemble=1)


def snapshot(path):
    return sorted((p.relative_to(path).as_posix(), p.lstat().st_mtime_ns, p.lstat().st_size)
                  for p in Path(path).rglob("*"))


def refused(capsys, *argv, folder=None):
    """Run the CLI in-process; assert the promise for bad input; return the error line."""
    before = snapshot(folder) if folder else None
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse
        code = e.code
    out, errout = capsys.readouterr()
    lines = errout.strip().splitlines()
    assert code == 2, errout
    assert out == "", out
    assert len(lines) == 1 and lines[0].startswith("lockstep: error: "), errout
    assert "Traceback" not in errout
    if folder:
        assert snapshot(folder) == before, "a refused run changed files on disk"
    return lines[0]


def debris(folder):
    return [p.name for p in Path(folder).rglob(".*")]


def epochs(folder):
    """Each ensemble member's epochs in the checkpoint of ``folder`` (read and verified)."""
    meta = checkpoint.read(Path(folder) / "checkpoint.npz")["sections"]["model"]["meta"]
    return [m["epoch"] for m in meta["members"]]


# ---- a valid checkpoint and ways to break it ---------------------------------------------
#
# Field-level damage is written with checkpoint.write, so the header's digest and every
# array's SHA-256 are right and only the forecaster's own validation (forecast._Loaded) stands
# between the file and the model. Damage to the file itself (bytes edited, members added,
# JSON the reader cannot take) is written by hand and must be caught by checkpoint.read.

@pytest.fixture(scope="module")
def good_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("good") / "checkpoint.npz"
    Forecaster(epochs=2, **TINY_KW).fit(data.load("airpassengers"), p).save(p)
    return p


@pytest.fixture(scope="module")
def good_ck(good_path):
    return checkpoint.read(good_path)


def write_ck(path, ck):
    """``ck`` (a ``checkpoint.read`` result) written again with checkpoint.write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write(path, ck["sections"], ck["lockstep_version"])
    return path


_DEL = object()


def changed(ck, section, part, dotted, value):
    """A deep copy of ``ck`` with ``sections[section][part]`` changed: in "meta" the field at
    the dotted path (list items by index), in "arrays" the array named ``dotted``."""
    ck = copy.deepcopy(ck)
    t = ck["sections"][section][part]
    if part == "arrays":
        keys = [dotted]
    else:
        keys = [int(k) if k.isdigit() else k for k in dotted.split(".")]
        for k in keys[:-1]:
            t = t[k]
    if value is _DEL:
        del t[keys[-1]]
    else:
        t[keys[-1]] = value
    return ck


def _arr(ck, section, name):
    return ck["sections"][section]["arrays"][name]


MODEL, DATA = "model", "data"
META_CASES = {  # (section, "meta" or "arrays", field or array, new value, words of the one line)
    "no settings": (MODEL, "meta", "settings", _DEL, "field model.meta.settings is missing"),
    "no members": (MODEL, "meta", "members", _DEL, "field model.meta.members is missing"),
    "unknown top key": (MODEL, "meta", "surprise", 1, "model.meta.surprise is not a known field"),
    "epoch a string": (MODEL, "meta", "members.0.epoch", "2",
                       "model.meta.members.0.epoch must be an integer"),
    "epoch negative": (MODEL, "meta", "members.0.epoch", -1,
                       "model.meta.members.0.epoch must be in"),
    "settings a list": (MODEL, "meta", "settings", [], "model.meta.settings must be an object"),
    "unknown setting": (MODEL, "meta", "settings.bogus", 1,
                        "model.meta.settings.bogus is not a known field"),
    "setting missing": (MODEL, "meta", "settings.window", _DEL,
                        "model.meta.settings.window is missing"),
    "hidden a string": (MODEL, "meta", "settings.hidden_size", "4",
                        "hidden_size must be an integer"),
    "holdout negative": (MODEL, "meta", "settings.holdout", -3, "holdout must be >= 0"),
    "dtype float16": (MODEL, "meta", "settings.dtype", "float16",
                      "dtype must be float32 or float64"),
    "transform unknown": (MODEL, "meta", "settings.transform", "sqrt", "transform must be one of"),
    "diff a number": (MODEL, "meta", "settings.diff", 1, "diff must be true/false"),
    "window too long": (MODEL, "meta", "settings.window", 1000,
                        "model.meta.settings.window is 1000, longer than any series"),
    "ensemble without members": (MODEL, "meta", "settings.ensemble", 2,
                                 "model.meta.members must hold 1 to 2 members"),
    "model mismatch": (MODEL, "meta", "model.hidden_size", 5,
                       "model.meta.model does not match meta.settings"),
    "rng inc negative": (MODEL, "meta", "members.0.rng_state.state.inc", -1,
                         "model.meta.members.0.rng_state.state.inc"),
    "rng not pcg": (MODEL, "meta", "members.0.rng_state.bit_generator", "MT19937",
                    "model.meta.members.0.rng_state.bit_generator must be PCG64"),
    "param not an array": (MODEL, "meta", "members.0.params.W_hh", 3,
                           "model.meta.members.0.params.W_hh must be a finite float64 array"),
    "param missing": (MODEL, "meta", "members.0.params.b_out", _DEL,
                      "model.meta.members.0.params must hold"),
    "param dangling": (MODEL, "meta", "members.0.params.W_hh", "@nothing",
                       "refers to the array nothing, which is not in the file"),
    "opt moments missing": (MODEL, "meta", "members.0.opt_state.m", _DEL,
                            "model.meta.members.0.opt_state.m is missing"),
    "opt step float": (MODEL, "meta", "members.0.opt_state.step", 1.5,
                       "model.meta.members.0.opt_state.step must be an integer"),
    "best epoch too big": (MODEL, "meta", "members.0.best_epoch", 99,
                           "model.meta.members.0.best_epoch must be in"),
    "stopped unknown": (MODEL, "meta", "members.0.stopped", "exploded",
                        "model.meta.members.0.stopped must be"),
    "exog names not a list": (DATA, "meta", "exog_names", "Passengers",
                              "data.meta.exog_names must be a list of strings"),
    "bad fingerprint": (DATA, "meta", "fingerprint", "zz",
                        "data.meta.fingerprint does not match the data"),
    "freq unknown": (DATA, "meta", "freq", "fortnightly", "data.meta.freq is not a frequency"),
    "time wrong length": (DATA, "arrays", "ds", lambda ck: _arr(ck, DATA, "ds")[:10],
                          "data.ds must have shape"),
    "values not finite": (DATA, "arrays", "y", lambda ck: np.full_like(_arr(ck, DATA, "y"), np.nan),
                          "data.y holds non-finite"),
    "values huge": (DATA, "arrays", "y", lambda ck: np.full_like(_arr(ck, DATA, "y"), 1e200),
                    "data.y holds values beyond"),
    "ids twice": (DATA, "arrays", "ids", np.array(["a", "a"]), "data.ids must name one or more"),
    "transform spread 0": (MODEL, "arrays", "spread", np.zeros(1),
                           "model.spread must be finite and positive"),
    "transform code 5": (MODEL, "arrays", "code", np.full(1, 5, np.int8),
                         "model.code must hold transform codes"),
    "lag 1": (MODEL, "arrays", "lag", np.ones(1, np.int64), "model.lag must hold seasonal lags"),
    "scores unsorted": (MODEL, "arrays", "scores",
                        lambda ck: _arr(ck, MODEL, "scores")[::-1].copy(),
                        "model.scores must be sorted"),
    "nan param": (MODEL, "arrays", "m0.params.W_hh",
                  lambda ck: np.full_like(_arr(ck, MODEL, "m0.params.W_hh"), np.nan),
                  "model.meta.members.0.params.W_hh must be a finite float64 array"),
    "inf history": (MODEL, "arrays", "m0.train_loss", np.array([1.0, np.inf]),
                    "model.meta.members.0.history.train_loss must be a finite"),
    "wrong shape": (MODEL, "arrays", "m0.params.W_ih", np.zeros((3, 3)),
                    "model.meta.members.0.params.W_ih must be a finite float64 array of shape"),
    "string array param": (MODEL, "arrays", "m0.params.b", np.array(["a"] * 16),
                           "model.meta.members.0.params.b must be a finite float64 array"),
}


@pytest.mark.parametrize("case", sorted(META_CASES))
def test_checkpoint_fields_are_validated_one_by_one(tmp_path, capsys, good_ck, case):
    section, part, field, value, words = META_CASES[case]
    value = value(good_ck) if callable(value) else value
    ck = write_ck(tmp_path / "run" / "checkpoint.npz",
                  changed(good_ck, section, part, field, value))
    checkpoint.read(ck)  # the storage is sound: the forecaster's own checks must refuse it
    line = refused(capsys, "forecast", "--checkpoint", ck, "--horizon", "3", folder=tmp_path)
    assert words in line, line
    line = refused(capsys, "train", *TINY, "--epochs", "3", "--out", ck.parent, "--resume",
                   folder=tmp_path)
    assert words in line, line


def test_checkpoint_model_shape_not_matching_the_data_is_refused(tmp_path, capsys, good_ck):
    ck = write_ck(tmp_path / "run" / "checkpoint.npz",
                  changed(good_ck, MODEL, "meta", "model.input_size", 3))
    line = refused(capsys, "forecast", "--checkpoint", ck, "--horizon", "3", folder=tmp_path)
    assert "field model.meta.model does not match the data and settings" in line, line
    line = refused(capsys, "train", *TINY, "--epochs", "3", "--out", ck.parent, "--resume",
                   folder=tmp_path)
    assert "model.meta.members.0.params.W_ih must be a finite float64 array" in line, line


def test_an_unfinished_checkpoint_resumes_but_does_not_forecast(tmp_path, capsys, good_ck):
    ck = write_ck(tmp_path / "run" / "checkpoint.npz",
                  changed(good_ck, MODEL, "meta", "complete", False))
    line = refused(capsys, "forecast", "--checkpoint", ck, "--horizon", "3", folder=tmp_path)
    assert "stopped before its last model finished" in line and "--resume" in line, line


def test_checkpoint_sections_must_be_the_forecasters(tmp_path, capsys, good_ck):
    for name, sections in [("no data", {"model": good_ck["sections"]["model"]}),
                           ("extra", {**good_ck["sections"], "x": {"meta": {}, "arrays": {}}}),
                           ("none", {})]:
        ck = tmp_path / name / "checkpoint.npz"
        write_ck(ck, {"sections": sections, "lockstep_version": good_ck["lockstep_version"]})
        line = refused(capsys, "forecast", "--checkpoint", ck, "--horizon", "3", folder=tmp_path)
        assert "not a forecaster's (data, model)" in line, (name, line)


# -- the file itself: edited by hand, foreign, damaged --

def _members(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def write_zip(path, members):
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for n, b in members.items():
            z.writestr(n, b)
    return path


def _header(members):
    return json.loads(members["header.json"])


def _signed(header):
    """The header with a right digest (what a forger who read checkpoint.py would write)."""
    header = dict(header)
    header["digest"] = checkpoint._digest(header)
    return json.dumps(header).encode()


def _damaged(case, good_path, path):
    m = _members(good_path)
    h = _header(m)
    if case == "meta edited":  # a value changed in the header: the digest no longer matches
        h["sections"]["model"]["meta"]["settings"]["hidden_size"] = 5
        m["header.json"] = json.dumps(h).encode()
        return write_zip(path, m), "digest does not match"
    if case == "array edited":  # the bytes of an array changed: its SHA-256 no longer matches
        name = "model/m0.params.W_hh.npy"
        b = bytearray(m[name])
        b[-1] ^= 1
        m[name] = bytes(b)
        return write_zip(path, m), "array model/m0.params.W_hh does not match its SHA-256"
    if case == "array declared other shape":
        h["sections"]["model"]["arrays"]["m0.params.b"]["shape"] = [8]
        m["header.json"] = _signed(h)
        return write_zip(path, m), "where the header declares float64 (8,)"
    if case == "array missing":
        del m["model/m0.params.b.npy"]
        return write_zip(path, m), "array model/m0.params.b is declared but missing"
    if case == "undeclared member":
        m["model/extra.npy"] = m["model/m0.params.b.npy"]
        return write_zip(path, m), "that no section declares"
    if case == "meta is a list":
        h["sections"]["model"]["meta"] = [1, 2]
        m["header.json"] = _signed(h)
        return write_zip(path, m), "sections.model.meta must be an object"
    if case == "deep nesting":
        nested = "x"
        for _ in range(200):
            nested = [nested]
        h["sections"]["model"]["meta"]["backend"] = nested
        m["header.json"] = _signed(h)
        return write_zip(path, m), "nesting deeper than"
    if case == "NaN literal":
        m["header.json"] = m["header.json"].replace(b'"hidden_size": 4', b'"hidden_size": NaN')
        assert b"NaN" in m["header.json"]
        return write_zip(path, m), "not valid JSON"
    if case == "deep JSON":
        m["header.json"] = b"[" * 100_000 + b"]" * 100_000
        return write_zip(path, m), "not valid JSON"
    if case == "not json":
        m["header.json"] = b"{not json"
        return write_zip(path, m), "not valid JSON"
    if case == "header binary":
        m["header.json"] = np.zeros(3).tobytes()
        return write_zip(path, m), "not valid JSON"
    if case == "other format version":
        h["format_version"] = 3
        m["header.json"] = _signed(h)
        return write_zip(path, m), "has checkpoint format 3"
    if case == "format 1":  # np.savez with a meta array, as lockstep wrote before
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, meta=np.array("{}"), **{"params/W_hh": np.zeros((16, 4))})
        return path, "has checkpoint format 1"
    if case == "foreign zip":
        return write_zip(path, {"hello.txt": b"hi"}), "not a lockstep checkpoint"
    if case == "truncated":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(good_path.read_bytes()[:-200])
        return path, "checkpoint"
    if case == "npy not npz":
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path.with_suffix(".npy"), np.zeros(3))
        path.with_suffix(".npy").rename(path)
        return path, "not a ZIP file"
    if case == "a folder":
        path.mkdir(parents=True)
        return path, "is a directory"
    raise AssertionError(case)


DAMAGE = ["meta edited", "array edited", "array declared other shape", "array missing",
          "undeclared member", "meta is a list", "deep nesting", "NaN literal", "deep JSON",
          "not json", "header binary", "other format version", "format 1", "foreign zip",
          "truncated", "npy not npz", "a folder"]


@pytest.mark.parametrize("case", DAMAGE)
def test_damaged_foreign_or_hand_edited_checkpoint_files_are_refused(tmp_path, capsys, good_path,
                                                                    case):
    p, words = _damaged(case, good_path, tmp_path / "run" / "checkpoint.npz")
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.read(p)
    line = refused(capsys, "forecast", "--checkpoint", p, "--horizon", "3", folder=tmp_path)
    assert words in line, line
    if case != "a folder":
        line = refused(capsys, "train", *TINY, "--epochs", "3", "--out", p.parent, "--resume",
                       folder=tmp_path)
        assert words in line, line


def test_a_valid_checkpoint_still_loads_and_forecasts(tmp_path, capsys, good_ck):
    p = write_ck(tmp_path / "checkpoint.npz", good_ck)  # written again: the same checkpoint
    assert cli.main(["forecast", "--checkpoint", str(p), "--horizon", "3", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["forecast"]) == 3 and np.isfinite(res["forecast"]).all()


def test_fit_with_a_checkpoint_path_leaves_a_loadable_model(tmp_path):
    p = tmp_path / "checkpoint.npz"
    fc = Forecaster(epochs=2, **TINY_KW).fit(data.load("airpassengers"), p)
    loaded = Forecaster.load(p, backend="numpy")
    assert loaded.predict(3)["yhat"].tolist() == fc.predict(3, at_end=True)["yhat"].tolist()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6),
                                                                      children, max_size=4),
    max_leaves=12)


def _paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree[:3]):
            yield from _paths(v, prefix + (i,))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data_=st.data())
def test_fuzzed_checkpoint_metadata_raises_only_lockstep_errors(tmp_path, good_ck, data_):
    ck = copy.deepcopy(good_ck)
    metas = {s: ck["sections"][s]["meta"] for s in ("data", "model")}
    paths = [p for p in _paths(metas) if len(p) > 1]
    for _ in range(data_.draw(st.integers(1, 3), label="mutations")):
        path = data_.draw(st.sampled_from(paths), label="path")
        t = metas
        try:
            for k in path[:-1]:
                t = t[k]
            if data_.draw(st.booleans(), label="delete"):
                del t[path[-1]]
            else:
                t[path[-1]] = data_.draw(json_values, label="value")
        except (KeyError, IndexError, TypeError):
            pass
    p = tmp_path / "fz.npz"
    try:
        write_ck(p, ck)
    except ValueError:
        return  # checkpoint.write refuses it: no such file can exist
    try:
        fc = Forecaster.load(p, backend="numpy")
        assert np.isfinite(fc.predict(2)["yhat"].to_numpy()).all()
    except LockstepError as e:
        assert "\n" not in str(e)


CELLS = ["1", "2.5", "", " x", "nan", "1e999", '"', "\u00b2", "t", "1_0", "\x00", "-0", '"a\nb"',
         "1e308", "-1.5e308", "\u0661\u0662"]


@st.composite
def csv_texts(draw):
    """Well-formed tables (a header of distinct names, rows of its width) with hostile
    cells, or arbitrary text."""
    if draw(st.booleans()):
        return draw(st.text(st.characters(codec="utf-8"), max_size=300))
    width = draw(st.integers(1, 4))
    header = draw(st.lists(st.sampled_from(["t", "v", "0", "1", "\u00b2", "\u00b9", "a b", '"q"']),
                           min_size=width, max_size=width, unique=True))
    rows = draw(st.lists(st.lists(st.sampled_from(CELLS), min_size=width, max_size=width),
                         max_size=6))
    if rows and draw(st.booleans()):
        rows[-1] = rows[-1][:-1]  # a short last line
    return "\n".join(",".join(r) for r in [header] + rows)



@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(text="t,v,0", cols="0", tcol=None)  # found by this test
@given(text=csv_texts(), cols=st.none() | st.sampled_from(["0", "1", "\u00b2", "\u00b9", "x", "v"]),
       tcol=st.none() | st.sampled_from(["0", "t", "\u00b2"]))
def test_fuzzed_csv_raises_only_data_errors(tmp_path, text, cols, tcol):
    p = tmp_path / "fz.csv"
    p.write_text(text, encoding="utf-8")
    try:
        panel = data.read(p, value_column=cols, time_column=tcol)
    except data.DataError as e:
        assert "\n" not in str(e)
        return
    assert np.isfinite(panel.y).all() and np.isfinite(panel.exog).all()
    assert panel.indptr[-1] == len(panel.y) and len(panel.ids) == len(set(panel.ids))


# ---- data files -------------------------------------------------------------------------

def test_bad_csv_files(tmp_path, capsys):
    (tmp_path / "long.csv").write_text("v\n" + "1" * 200_000 + "\n")
    (tmp_path / "quote.csv").write_text('v\n"1\n' + "2\n" * 70_000)
    (tmp_path / "nul.csv").write_bytes(b"v\n1\n\x002\n")
    (tmp_path / "latin1.csv").write_bytes("v\n1\n2\xe9\n".encode("latin-1"))
    (tmp_path / "digits.csv").write_text("t,\u00b2\n" + "".join(f"{i},{i + 1}\n" for i in range(60)))
    os.mkfifo(tmp_path / "fifo.csv")
    cases = {"long.csv": "at line 2 is not finite", "quote.csv": "not valid CSV",
             "nul.csv": "at line 3 is not a number", "latin1.csv": "not UTF-8",
             "fifo.csv": "not a regular file", "digits.csv": "no value column '\u00b9'"}
    for name, words in cases.items():
        extra = ["--value-column", "\u00b9"] if name == "digits.csv" else []
        line = refused(capsys, "train", "--data", tmp_path / name, *extra, "--out",
                       tmp_path / "out", folder=tmp_path)
        assert words in line, (name, line)
    # the column named by a non-ASCII digit is a name, not an index
    for reader in ("data.read", "the CLI"):
        if reader == "data.read":
            panel = data.read(tmp_path / "digits.csv", value_column="\u00b2")
            assert panel.ids.tolist() == ["\u00b2"] and panel.values(0)[0] == 1
        else:
            assert cli.main(["data", "--data", str(tmp_path / "digits.csv"), "--value-column",
                             "\u00b2", "--json"]) == 0
            d = json.loads(capsys.readouterr().out)
            assert [r["unique_id"] for r in d["per_series"]] == ["\u00b2"]
            assert d["per_series"][0]["min"] == 1


@pytest.mark.parametrize("text", ["t,v,0", "t,v,0\n"])
def test_header_only_csv_with_a_value_column_is_refused_in_one_line(tmp_path, capsys, text):
    (tmp_path / "h.csv").write_text(text)
    line = refused(capsys, "train", "--data", tmp_path / "h.csv", "--value-column", "v",
                   "--out", tmp_path / "out", folder=tmp_path)
    assert "no data rows" in line, line
    with pytest.raises(data.DataError, match="no data rows"):
        data.read(tmp_path / "h.csv", value_column="v")


def test_fifo_as_data_does_not_hang_in_a_subprocess(tmp_path):
    os.mkfifo(tmp_path / "fifo.csv")
    r = subprocess.run([sys.executable, "-m", "lockstep.cli", "data", "--data",
                        str(tmp_path / "fifo.csv")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not a regular file" in r.stderr


@pytest.fixture(scope="module")
def big_csv_probe(tmp_path_factory):
    """data.read of a 400,000-row CSV whose last line is bad, in a fresh process: (peak memory
    growth in bytes, seconds, the error message, the file's size, rows)."""
    n = 400_000
    p = tmp_path_factory.mktemp("big") / "big.csv"
    with open(p, "w") as f:
        f.write("month,v\n")
        f.writelines(f"2000-{i % 12 + 1:02d},{i * 0.5 + 1}\n" for i in range(n))
        f.write("2999-01,oops\n")
    probe = textwrap.dedent(f"""
        import time, pandas, lockstep.data as d  # pandas: the reader's, loaded before measuring
        def hwm():
            for line in open('/proc/self/status'):
                if line.startswith(('VmHWM', 'VmRSS')): yield int(line.split()[1]) * 1024
        rss0 = list(hwm())[1]
        t = time.perf_counter()
        try:
            d.read({str(p)!r})
        except d.DataError as e:
            print(list(hwm())[0] - rss0, time.perf_counter() - t, str(e))
    """)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert r.stdout.count(" ") >= 2, r.stdout + r.stderr
    grown, secs, msg = r.stdout.split(" ", 2)
    return int(grown), float(secs), msg, p.stat().st_size, n


def test_large_csv_with_a_bad_last_line_is_refused_fast(big_csv_probe):
    grown, secs, msg, size, n = big_csv_probe
    assert f"line {n + 2}" in msg and "oops" in msg and "\n" not in msg.strip(), msg
    assert secs < 20


def _peak_of_read(path):
    """data.read of ``path`` in a fresh process: (peak memory growth in bytes, outcome)."""
    probe = textwrap.dedent(f"""
        import lockstep.data as d
        d.read("airpassengers")  # the parser's one-time set-up, not the file's share
        def hwm():
            for line in open('/proc/self/status'):
                if line.startswith(('VmHWM', 'VmRSS')): yield int(line.split()[1]) * 1024
        rss0 = list(hwm())[1]
        try:
            out = f"{{len(d.read({str(path)!r}).y)}} values"
        except d.DataError as e:
            out = str(e)
        print(list(hwm())[0] - rss0, out)
    """)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert " " in r.stdout, r.stdout + r.stderr
    grown, out = r.stdout.strip().split(" ", 1)
    return int(grown), out


@pytest.fixture(scope="module")
def wide_csv(tmp_path_factory):
    """A 32 MB one-table CSV (200 hourly series of 20,000 values), and the same with its last
    cell not a number: (good path, bad path, values)."""
    K, T = 200, 20_000
    d = tmp_path_factory.mktemp("wide")
    rng = np.random.default_rng(0)
    stamps = np.datetime_as_string(np.datetime64("2000-01-01T00") +
                                   np.arange(T).astype("timedelta64[h]"), unit="s")
    cells = np.char.mod("%.3f", rng.random((T, K)) * 1000)
    lines = [t + "," + ",".join(r) for t, r in zip(stamps, cells)]
    head = "ds," + ",".join(f"s{j}" for j in range(K)) + "\n"
    (d / "good.csv").write_text(head + "\n".join(lines) + "\n")
    lines[-1] = lines[-1].rsplit(",", 1)[0] + ",oops"
    (d / "bad.csv").write_text(head + "\n".join(lines) + "\n")
    return d / "good.csv", d / "bad.csv", K * T


def test_large_wide_csv_is_read_within_3x_its_size(wide_csv):
    # the values (8 bytes each) and their dates (8 more) are ~2x the text; the parser's chunks,
    # the checks' ranges and the interpreter's allocator keep the rest under 1x
    good, bad, n = wide_csv
    for path, want in ((good, f"{n} values"), (bad, "'oops' at line 20001 is not a number")):
        grown, out = _peak_of_read(path)
        assert want in out, out
        assert grown < 3 * path.stat().st_size, (path.name, grown / path.stat().st_size)


# ---- sizes, counts and arguments ----------------------------------------------------------

ARG_CASES = {
    "hidden 1e8": (["train", "--hidden", "100000000"], "of memory"),
    "window 1e9": (["train", "--window", "1000000000"], "too few"),
    "epochs 0": (["train", "--epochs", "0"], "--epochs must be in [1,"),
    "epochs huge": (["train", "--epochs", "1000000000000"], "--epochs must be in"),
    "patience -5": (["train", "--patience", "-5"], "--patience must be >= 0"),
    "holdout -1": (["train", "--holdout", "-1"], "--holdout must be >= 0"),
    "season -2": (["train", "--season", "-2"], "season must be 0"),
    "resume and force": (["train", "--resume", "--force"], "pass one"),
    "horizon huge": (["forecast", "--horizon", "100000000000"], "--horizon must be in"),
    "horizon 0": (["forecast", "--horizon", "0"], "--horizon must be in"),
    "int not int": (["train", "--hidden", "abc"], "invalid int value"),
    "unknown option": (["train", "--bogus"], "unrecognized arguments"),
    "no command": ([], "required"),
    "bad choice": (["train", "--dtype", "float16"], "invalid choice"),
    "check huge": (["check", "--shape", "1,100000000,1,12,8"], "of memory"),
    "check epochs huge": (["check", "--epochs", "100000000000"], "--epochs must be at most"),
}


@pytest.mark.parametrize("case", sorted(ARG_CASES))
def test_bad_arguments(tmp_path, capsys, case):
    argv, words = ARG_CASES[case]
    if argv[:1] == ["train"]:
        argv = argv + ["--out", tmp_path / "out", "--quiet"]
    line = refused(capsys, *argv, folder=tmp_path)
    assert words in line, line
    if argv[:1] == ["train"] and case in ("int not int", "unknown option"):
        assert "lockstep train --help" in line or "lockstep --help" in line


def test_argparse_errors_are_one_line_in_a_subprocess():
    r = subprocess.run([sys.executable, "-m", "lockstep.cli", "train", "--hidden", "x"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == ["lockstep: error: argument --hidden: invalid int value: "
                                     "'x'; see 'lockstep train --help'"]


# ---- output paths -----------------------------------------------------------------------

def test_bad_output_paths(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "ro").mkdir()
    (tmp_path / "withdir" / "losses.png").mkdir(parents=True)
    cases = {
        tmp_path / "afile": "not a folder",
        tmp_path / "afile" / "sub": "not a folder",
        tmp_path / "dangling": "dangling symbolic link",
        tmp_path / "dangling" / "sub": "dangling symbolic link",
        tmp_path / "withdir": "is a folder",
        Path("/proc/lockstep-no/out"): "cannot write to --out",
    }
    for out, words in cases.items():
        line = refused(capsys, "train", *TINY, "--epochs", "1", "--out", out, folder=tmp_path)
        assert words in line, (out, line)
    assert not Path("/proc/lockstep-no").exists()


@pytest.mark.parametrize("cmd", ["data", "forecast", "bench"])
def test_bad_plot_paths_are_refused_before_work(tmp_path, capsys, cmd):
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    extra = {"data": [], "forecast": ["--horizon", "3", "--checkpoint", tmp_path / "none.npz"],
             "bench": []}[cmd]
    for plot, words in [(tmp_path / "x.xyz", "unknown image format .xyz"),
                        (tmp_path / "noext", "unknown image format (no extension)"),
                        (tmp_path / "adir", "is a folder"),
                        (tmp_path / "afile" / "x.png", "is not a folder")]:
        line = refused(capsys, cmd, *extra, "--plot", plot, folder=tmp_path)
        assert words in line, (plot, line)


# ---- one writer per folder, no debris -----------------------------------------------------

def test_a_second_run_on_a_locked_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a live run holds
        for extra in ([], ["--force"]):
            line = refused(capsys, "train", *TINY, "--epochs", "1", "--out", out, *extra,
                           folder=tmp_path)
            assert "another lockstep run is writing to" in line
    finally:
        os.close(fd)


def test_two_concurrent_cli_runs_one_folder(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lockstep.cli", "train", *TINY, "--epochs", "100000",
           "--out", str(out)]
    first = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if (out / "checkpoint.npz").exists():
                break
            time.sleep(0.05)
        second = subprocess.run(cmd[:-2] + ["--out", str(out), "--force"], capture_output=True,
                                text=True, timeout=60)
        assert second.returncode == 2, second.stderr
        assert second.stderr.splitlines() == [second.stderr.strip()]
        assert "another lockstep run is writing to" in second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert epochs(out) and min(epochs(out)) >= 1
    assert debris(out) == []


def test_debris_of_a_killed_run_is_swept_and_old_plots_do_not_mix(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    names = [".checkpoint.npz.abcd1234.tmp", ".losses.png.x_y_z_12.tmp", ".forecast.a1b2c3d4.png"]
    for n in names:
        (out / n).write_bytes(b"half")
    (out / ".mine.abcdefgh.tmp").write_text("a user's file is not ours")
    (out / "forecast.png").write_bytes(b"from the old run")
    capsys.readouterr()
    assert cli.main(["train", *TINY, "--epochs", "2", "--out", str(out), "--force"]) == 0
    assert sorted(debris(out)) == [".mine.abcdefgh.tmp"]
    assert (out / "forecast.png").read_bytes() != b"from the old run"
    assert epochs(out) == [2]


def _limit_file_size(nbytes):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return pre


def test_a_full_disk_while_saving_leaves_nothing_half_written(tmp_path):
    base = [sys.executable, "-m", "lockstep.cli", "train", "--window", "6", "--holdout", "12",
            "--backend", "numpy", "--quiet", "--epochs", "2"]
    # a fresh folder: nothing left, not even the folder
    r = subprocess.run(base + ["--hidden", "40", "--out", str(tmp_path / "new" / "out")],
                       capture_output=True, text=True, timeout=120,
                       preexec_fn=_limit_file_size(20_000))
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [r.stderr.strip()] and "Traceback" not in r.stderr
    assert "File too large" in r.stderr and "nothing was written" in r.stderr
    assert not (tmp_path / "new").exists()
    # an existing checkpoint survives a --force run that cannot write its own
    out = tmp_path / "old"
    assert subprocess.run(base + ["--hidden", "3", "--out", str(out)], capture_output=True,
                          timeout=120).returncode == 0
    before = snapshot(out)
    r = subprocess.run(base + ["--hidden", "40", "--out", str(out), "--force"], capture_output=True,
                       text=True, timeout=120, preexec_fn=_limit_file_size(20_000))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert snapshot(out) == before and debris(out) == []


def test_sigkill_while_saving_always_leaves_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "out"
    child = textwrap.dedent(f"""
        import sys
        from lockstep import data
        from lockstep.forecast import Forecaster
        fc = Forecaster(epochs=1, hidden_size=48, window=6, holdout=12, quiet=True,
                        backend="numpy", ensemble=1).fit(data.load("airpassengers"),
                                                         {str(out)!r} + "/checkpoint.npz")
        fc.save({str(out)!r} + "/checkpoint.npz")  # with the calibration: a whole model
        print(fc.predict(3, at_end=True)["yhat"].tolist(), flush=True)
        while True:
            fc.save({str(out)!r} + "/checkpoint.npz")
    """)
    out.mkdir()
    rnd = random.Random(0)
    for _ in range(6):
        p = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
        want = json.loads(p.stdout.readline())
        time.sleep(rnd.uniform(0.01, 0.3))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        p.stdout.close()
        assert epochs(out) == [1]
        fc = Forecaster.load(out / "checkpoint.npz", backend="numpy")
        assert fc.predict(3)["yhat"].tolist() == want
    from lockstep.outdir import RunFolder

    with RunFolder(out):  # the next start
        assert debris(out) == []
    assert snapshot(out)[0][0] == "checkpoint.npz"


# ---- divergence and extreme values ------------------------------------------------------

def test_divergence_message_always_appears(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["train", "--hidden", "6", "--window", "6", "--holdout", "12", "--backend",
                     "numpy", "--quiet", "--optimizer", "sgd", "--lr", "40", "--clip", "0",
                     "--momentum", "0.9", "--epochs", "60", "--patience", "0", "--out", str(out)])
    errout = capsys.readouterr().err
    assert code == 1 and "training diverged" in errout and "Traceback" not in errout


def test_plots_never_raise_on_huge_or_non_finite_values(tmp_path):
    import pandas as pd

    from lockstep.data.table import Panel

    for h in ([1.0, 1e271], [1.0, 1.7e308, np.inf, np.nan], [0.0, -1.0], []):
        plots.losses({"train_loss": h, "valid_loss": h}, tmp_path / "l.png")
    # beyond what the reader accepts (+-1e150), as a plot may still be asked to draw
    y = np.array([1.0, 1.4e308, -1.4e308, 2.0, 5.0, -3e307])
    undated = Panel(["x", "z"], [0, 4, 6], y, None, np.zeros((6, 0)), (), None, "huge")
    dated = Panel(["x", "z"], [0, 4, 6], y,
                  np.concatenate([pd.date_range("2000-01-01", periods=4, freq="MS"),
                                  pd.date_range("2001-01-01", periods=2, freq="MS")]),
                  np.zeros((6, 0)), (), "MS", "huge")
    bad = np.array([1e308, np.inf, -np.inf, np.nan])
    for k, panel in enumerate((undated, dated)):
        ds = ([4, 5, 2, 3] if panel.ds is None else
              list(pd.to_datetime(["2000-05-01", "2000-06-01", "2001-03-01", "2001-04-01"])))
        frame = pd.DataFrame({"unique_id": ["x", "x", "z", "z"], "ds": ds, "yhat": bad,
                              "yhat-lo-80": -bad, "yhat-hi-80": bad, "yhat-lo-95": bad[::-1],
                              "yhat-hi-95": 1.7e308})
        baseline = frame[["unique_id", "ds"]].assign(y=bad[::-1])
        plots.series(panel, tmp_path / f"s{k}.png")
        plots.forecast(panel, tmp_path / f"f{k}.png", frame, actual_from=[2, 1],
                       baseline=baseline)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f0.png", "f1.png", "l.png", "s0.png",
                                                          "s1.png"]


def test_huge_values_are_refused_for_training(tmp_path, capsys):
    p = tmp_path / "huge.csv"
    p.write_text("v\n" + "".join(f"{1.4e308 if i == 30 else i + 1}\n" for i in range(80)))
    line = refused(capsys, "train", "--data", p, "--no-log", "--out", tmp_path / "o", "--quiet",
                   folder=tmp_path)
    assert "at line 32 is beyond" in line and "1e+150" in line and "rescale" in line, line
    with pytest.raises(data.DataError, match="beyond"):
        data.read(p)
