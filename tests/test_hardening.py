"""The bad-input corpus: every class of hostile input goes through the CLI and must end in
exit code 2, exactly one stderr line starting with ``lockstep: error:``, no traceback, and
an unchanged folder. Plus fuzzing of checkpoint metadata and CSV text (only lockstep's own
error type may escape), locking, debris, full disks, SIGKILL during saves, divergence."""

from __future__ import annotations

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
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockstep import checkpoint, cli, data, plots
from lockstep.errors import LockstepError
from lockstep.forecast import Forecaster

TINY = ["--hidden", "4", "--window", "6", "--holdout", "12", "--backend", "numpy", "--quiet",
        "--patience", "0"]
TINY_KW = dict(hidden_size=4, window=6, holdout=12, patience=None, quiet=True, backend="numpy")


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


# ---- a valid checkpoint and ways to break it ---------------------------------------------

@pytest.fixture(scope="module")
def good_ck(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    Forecaster(epochs=2, **TINY_KW).fit(data.load("airpassengers"), d / "checkpoint.npz")
    with np.load(d / "checkpoint.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return arrays


def write_ck(path, arrays, meta=None, meta_text=None):
    arrays = dict(arrays)
    if meta is not None or meta_text is not None:
        arrays["meta"] = np.array(meta_text if meta_text is not None else json.dumps(meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def meta_of(arrays):
    return json.loads(str(arrays["meta"]))


def _set(meta, dotted, value):
    *head, last = dotted.split(".")
    t = meta
    for k in head:
        t = t[k]
    if value is _DEL:
        del t[last]
    else:
        t[last] = value


_DEL = object()
nested = "x"
for _ in range(200):
    nested = [nested]

META_CASES = {  # (dotted field, new value, words the one line must contain)
    "meta is a list": (None, [1, 2], "not a lockstep checkpoint"),
    "no config": ("config", _DEL, "config is missing"),
    "no epoch": ("epoch", _DEL, "epoch is missing"),
    "no history": ("history", _DEL, "history is missing"),
    "no rng_state": ("rng_state", _DEL, "rng_state is missing"),
    "unknown top key": ("surprise", 1, "surprise is not a field"),
    "epoch a string": ("epoch", "2", "epoch must be an integer"),
    "epoch negative": ("epoch", -1, "epoch must be in"),
    "format 2": ("format_version", 2, "format 2"),
    "settings a list": ("config.settings", [], "config.settings must be an object"),
    "unknown setting": ("config.settings.bogus", 1, "config.settings.bogus is not a field"),
    "setting missing": ("config.settings.window", _DEL, "config.settings.window is missing"),
    "hidden a string": ("config.settings.hidden_size", "4", "hidden_size must be an integer"),
    "holdout negative": ("config.settings.holdout", -3, "holdout must be >= 0"),
    "dtype float16": ("config.settings.dtype", "float16", "dtype must be float32 or float64"),
    "log a number": ("config.settings.log", 1, "log must be true/false"),
    "model mismatch": ("config.model.hidden_size", 5, "config.model does not match"),
    "train mismatch": ("config.train.lr", 0.5, "config.train.lr"),
    "rng inc negative": ("rng_state.state.inc", -1, "rng_state.state.inc"),
    "rng not pcg": ("rng_state.bit_generator", "MT19937", "rng_state.bit_generator"),
    "param not an array": ("params.W_hh", 3, "params.W_hh must name an array"),
    "param missing": ("params.b_out", _DEL, "params.b_out is missing"),
    "opt moments missing": ("opt_state.m", _DEL, "opt_state.m is missing"),
    "opt step float": ("opt_state.step", 1.5, "opt_state.step must be an integer"),
    "names not a list": ("extra.series.names", "Passengers", "extra.series.names"),
    "time wrong length": ("extra.series.time", ["1949-01"], "extra.series.time"),
    "bad fingerprint": ("extra.series.fingerprint", "zz", "extra.series.fingerprint"),
    "pipeline spread": ("extra.pipeline.spread", [0.0], "extra.pipeline.spread"),
    "best epoch too big": ("extra.best.epoch", 99, "extra.best.epoch"),
    "stopped unknown": ("extra.stopped", "exploded", "extra.stopped"),
    "deep nesting": ("extra.backend", nested, "nests deeper"),
}


@pytest.mark.parametrize("case", sorted(META_CASES))
def test_checkpoint_metadata_is_validated_field_by_field(tmp_path, capsys, good_ck, case):
    field, value, words = META_CASES[case]
    meta = meta_of(good_ck)
    meta = value if field is None else meta
    if field is not None:
        _set(meta, field, value)
    ck = write_ck(tmp_path / "run" / "checkpoint.npz", good_ck, meta)
    line = refused(capsys, "forecast", "--checkpoint", ck, "--horizon", "3", folder=tmp_path)
    assert words in line, line
    line = refused(capsys, "train", *TINY, "--epochs", "3", "--out", ck.parent, "--resume",
                   folder=tmp_path)
    assert words in line, line


@pytest.mark.parametrize("case", ["nan param", "inf history", "wrong shape", "no meta",
                                  "meta not text", "NaN literal", "deep JSON", "not json",
                                  "string array param", "npy not npz"])
def test_checkpoint_arrays_and_json_are_validated(tmp_path, capsys, good_ck, case):
    arrays, meta, text = dict(good_ck), meta_of(good_ck), None
    if case == "nan param":
        arrays["params/W_hh"] = arrays["params/W_hh"].copy()
        arrays["params/W_hh"][0, 0] = np.nan
        words = "params.W_hh holds non-finite"
    elif case == "inf history":
        arrays["history/train_loss"] = np.array([1.0, np.inf])
        words = "history.train_loss holds non-finite"
    elif case == "wrong shape":
        arrays["params/W_ih"] = np.zeros((3, 3))
        words = "params.W_ih must have shape"
    elif case == "no meta":
        del arrays["meta"]
        meta = None
        words = "no lockstep metadata"
    elif case == "meta not text":
        arrays["meta"] = np.zeros(3)
        meta = None
        words = "no lockstep metadata"
    elif case == "NaN literal":
        text = json.dumps(meta).replace('"epoch": 2', '"epoch": NaN')
        words = "not valid JSON"
    elif case == "deep JSON":
        text = "[" * 100_000 + "]" * 100_000
        words = "not valid JSON"
    elif case == "not json":
        text = "{not json"
        words = "not valid JSON"
    elif case == "string array param":
        arrays["params/b"] = np.array(["a"] * 16)
        words = "params.b must be a float64 array"
    else:
        p = tmp_path / "run" / "checkpoint.npz"
        p.parent.mkdir()
        np.save(p.with_suffix(".npy"), np.zeros(3))
        p.with_suffix(".npy").rename(p)
        words = "not a readable lockstep checkpoint"
    if case != "npy not npz":
        p = write_ck(tmp_path / "run" / "checkpoint.npz", arrays, meta, text)
    line = refused(capsys, "forecast", "--checkpoint", p, "--horizon", "3", folder=tmp_path)
    assert words in line, line


def test_a_valid_checkpoint_still_loads_and_forecasts(tmp_path, capsys, good_ck):
    p = write_ck(tmp_path / "checkpoint.npz", good_ck)
    assert cli.main(["forecast", "--checkpoint", str(p), "--horizon", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["forecast"]) == 3


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
    meta = meta_of(good_ck)
    paths = [p for p in _paths(meta) if p]
    for _ in range(data_.draw(st.integers(1, 3), label="mutations")):
        path = data_.draw(st.sampled_from(paths), label="path")
        t = meta
        try:
            for k in path[:-1]:
                t = t[k]
            if data_.draw(st.booleans(), label="delete"):
                del t[path[-1]]
            else:
                t[path[-1]] = data_.draw(json_values, label="value")
        except (KeyError, IndexError, TypeError):
            pass
    p = write_ck(tmp_path / "fz.npz", good_ck, meta)
    try:
        fc = Forecaster.from_checkpoint(p, backend="numpy")
        assert np.isfinite(fc.predict(2)).all()
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
@given(text=csv_texts(), cols=st.none() | st.sampled_from(["0", "1", "\u00b2", "\u00b9", "x", "v"]),
       tcol=st.none() | st.sampled_from(["0", "t", "\u00b2"]))
def test_fuzzed_csv_raises_only_data_errors(tmp_path, text, cols, tcol):
    p = tmp_path / "fz.csv"
    p.write_text(text, encoding="utf-8")
    try:
        s = data.load_csv(p, value_columns=cols, time_column=tcol)
    except data.DataError as e:
        assert "\n" not in str(e)
        return
    assert np.isfinite(s.values).all()


# ---- data files -------------------------------------------------------------------------

def test_bad_csv_files(tmp_path, capsys):
    (tmp_path / "long.csv").write_text("v\n" + "1" * 200_000 + "\n")
    (tmp_path / "quote.csv").write_text('v\n"1\n' + "2\n" * 70_000)
    (tmp_path / "nul.csv").write_bytes(b"v\n1\n\x002\n")
    (tmp_path / "latin1.csv").write_bytes("v\n1\n2\xe9\n".encode("latin-1"))
    (tmp_path / "digits.csv").write_text("t,\u00b2\n" + "".join(f"{i},{i + 1}\n" for i in range(60)))
    os.mkfifo(tmp_path / "fifo.csv")
    cases = {"long.csv": "longer than 131072", "quote.csv": "longer than 131072",
             "nul.csv": "is not a number", "latin1.csv": "not UTF-8", "fifo.csv": "not a regular file",
             "digits.csv": "not found"}
    for name, words in cases.items():
        extra = ["--value-column", "\u00b9"] if name == "digits.csv" else []
        line = refused(capsys, "train", "--data", tmp_path / name, *extra, "--out",
                       tmp_path / "out", folder=tmp_path)
        assert words in line, (name, line)
    # the column named by a non-ASCII digit is a name, not an index
    s = data.load_csv(tmp_path / "digits.csv", value_columns="\u00b2")
    assert s.names == ["\u00b2"] and s.values[0, 0] == 1


def test_fifo_as_data_does_not_hang_in_a_subprocess(tmp_path):
    os.mkfifo(tmp_path / "fifo.csv")
    r = subprocess.run([sys.executable, "-m", "lockstep.cli", "data", "--data",
                        str(tmp_path / "fifo.csv")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not a regular file" in r.stderr


def test_large_csv_with_a_bad_last_line_is_refused_fast_in_bounded_memory(tmp_path):
    n = 400_000
    p = tmp_path / "big.csv"
    with open(p, "w") as f:
        f.write("month,v\n")
        f.writelines(f"2000-{i % 12 + 1:02d},{i * 0.5 + 1}\n" for i in range(n))
        f.write("2999-01,oops\n")
    size = p.stat().st_size
    probe = textwrap.dedent(f"""
        import time, lockstep.data as d
        def hwm():
            for line in open('/proc/self/status'):
                if line.startswith(('VmHWM', 'VmRSS')): yield int(line.split()[1]) * 1024
        rss0 = list(hwm())[1]
        t = time.perf_counter()
        try:
            d.load_csv({str(p)!r})
        except d.DataError as e:
            print(list(hwm())[0] - rss0, time.perf_counter() - t, str(e))
    """)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    grown, secs, msg = r.stdout.split(" ", 2)
    assert f"line {n + 2}" in msg and "oops" in msg, r.stdout + r.stderr
    # values 8 bytes a row, labels ~60: memory a small multiple of the file, not 25x it
    assert int(grown) < 6 * size, (int(grown), size)
    assert float(secs) < 20


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
    assert checkpoint.load(out / "checkpoint.npz")["epoch"] >= 1
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
    assert checkpoint.load(out / "checkpoint.npz")["epoch"] == 2


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
                        backend="numpy").fit(data.load("airpassengers"), {str(out)!r} + "/checkpoint.npz")
        print("ready", flush=True)
        while True:
            fc.save({str(out)!r} + "/checkpoint.npz")
    """)
    out.mkdir()
    rnd = random.Random(0)
    for _ in range(6):
        p = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline() == "ready\n"
        time.sleep(rnd.uniform(0.01, 0.3))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        p.stdout.close()
        assert checkpoint.load(out / "checkpoint.npz")["epoch"] == 1
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
    for h in ([1.0, 1e271], [1.0, 1.7e308, np.inf, np.nan], [0.0, -1.0], []):
        plots.losses({"train_loss": h, "valid_loss": h}, tmp_path / "l.png")
    s = data.Series(np.array([1.0, 1.4e308, -1.4e308, 2.0]), ["x"])
    plots.series(s, tmp_path / "s.png")
    plots.forecast(s, tmp_path / "f.png", np.array([1e308, np.inf]), 2, np.array([1.0, 2.0]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "l.png", "s.png"]


def test_huge_values_are_refused_for_training(tmp_path, capsys):
    p = tmp_path / "huge.csv"
    p.write_text("v\n" + "".join(f"{1.4e308 if i == 30 else i + 1}\n" for i in range(80)))
    line = refused(capsys, "train", "--data", p, "--no-log", "--out", tmp_path / "o", "--quiet",
                   folder=tmp_path)
    assert "beyond +-1e+150" in line
