"""Issue 24, "Trust, round three": one test per class of failure, through the CLI (in a
subprocess where the behaviour is the process's: signals, FIFOs, environment variables)."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lockstep import cli, data, outdir
from lockstep.forecast import Forecaster

ROOT = Path(__file__).resolve().parents[1]
LOCKSTEP = [sys.executable, "-m", "lockstep.cli"]


def one_line_refusal(r, *words):
    """The promise for bad input: exit 2, one stderr line, no traceback, nothing on stdout."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lockstep: error: "), r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def run(*argv, env=None, timeout=120, **kw):
    return subprocess.run([*LOCKSTEP, *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, **kw)


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    p = tmp_path_factory.mktemp("ck") / "checkpoint.npz"
    Forecaster(epochs=1, hidden_size=4, window=6, holdout=12, quiet=True, backend="numpy",
               ensemble=1, patience=None).fit(data.load("airpassengers"), p).save(p)
    return p


# ---- 1. files that are not ours are written in place or refused, never replaced ------------

def test_forecast_out_never_replaces_a_file_that_is_not_regular(tmp_path, ck, capsys):
    fifo = tmp_path / "f.csv"
    os.mkfifo(fifo)
    # a FIFO nobody reads: refused at once, in one line, not a hang; still a FIFO
    r = run("forecast", "--checkpoint", ck, "--horizon", "2", "--out", fifo, timeout=60)
    one_line_refusal(r, "FIFO", "nobody reads")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    # a FIFO with a reader: written through it, and still a FIFO
    got = []

    def read():
        with open(fifo) as f:
            got.append(f.read())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        r = run("forecast", "--checkpoint", ck, "--horizon", "2", "--out", fifo, timeout=60)
    finally:
        if reader.is_alive() and r.returncode != 0:
            with open(fifo, "w"):
                pass  # release the reader
        reader.join(30)
    assert r.returncode == 0, r.stderr
    assert got and got[0].startswith("unique_id,ds,yhat") and len(got[0].splitlines()) == 3
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    # a link to this process's stdout, and /dev/stdout itself: the CSV goes to stdout
    link = tmp_path / "stdout.csv"
    link.symlink_to("/proc/self/fd/1")
    for out in (link, "/dev/stdout"):
        r = run("forecast", "--checkpoint", ck, "--horizon", "2", "--out", out)
        assert r.returncode == 0 and r.stdout.startswith("unique_id,ds,yhat"), r.stderr
        assert "yhat-lo-80" in r.stdout.splitlines()[-1] or "   " in r.stdout  # the table follows
    assert os.readlink(link) == "/proc/self/fd/1"
    # the rest in-process: a character device is written in place (/dev/null stays a device),
    # /dev/full is one line; a link to a regular file stays a link; no file made in /dev
    fc = ["forecast", "--checkpoint", str(ck), "--horizon", "2", "--out"]
    assert cli.main(fc + ["/dev/null"]) == 0 and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert cli.main(fc + ["/dev/full"]) == 2
    (tmp_path / "real.csv").write_text("old\n")
    (tmp_path / "link.csv").symlink_to("real.csv")
    assert cli.main(fc + [str(tmp_path / "link.csv")]) == 0
    assert os.path.islink(tmp_path / "link.csv")
    assert (tmp_path / "real.csv").read_text().startswith("unique_id,ds,yhat")
    assert cli.main(fc + ["/dev/lockstep-no-such-device"]) == 2
    assert not os.path.lexists("/dev/lockstep-no-such-device")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "No space left" in err[0] and "does not exist" in err[1], err


def test_the_one_writer_never_renames_over_a_non_regular_file(tmp_path):
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    with pytest.raises(outdir.OutputError, match="nobody reads"):
        outdir.write_text(fifo, "x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.listdir(tmp_path) == ["p"]
    outdir.write_text("/dev/null", "x")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_bench_json_file_fifo_and_full_disk(tmp_path, monkeypatch, capsys):
    fifo = tmp_path / "b.json"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    r = run("bench", "--preset", "seed", "--backends", "numpy", "--anchors", "", "--json-file",
            fifo, timeout=60)
    one_line_refusal(r, "FIFO", "nobody reads")
    assert time.monotonic() - t0 < 30  # refused before the work, not after it
    # a full disk while writing the JSON: one line, and no partial file (nor a temporary one)
    from lockstep import bench

    monkeypatch.setattr(bench, "bench", lambda *a, **k: {
        "preset": "seed", "description": "d", "shape": {}, "machine": {"cpu": "c", "cpus": 1},
        "results": [], "unavailable": [], "config": {}})
    monkeypatch.setattr(bench, "table", lambda res: "")
    real_fdopen = outdir._fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, text):
            self.f.write(text[: len(text) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(outdir, "_fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    target = tmp_path / "out" / "b.json"
    target.parent.mkdir()
    code = cli.main(["bench", "--preset", "seed", "--backends", "numpy", "--anchors", "",
                     "--json-file", str(target), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and str(target) in err, err
    assert os.listdir(target.parent) == []


# ---- 2. no tracebacks ------------------------------------------------------------------------

def test_bad_cpu_isa_is_one_line_and_info_says_why(tmp_path):
    env = {"LOCKSTEP_CPU_ISA": "bogus"}
    r = run("info", env=env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    row = next(line for line in r.stdout.splitlines() if "cpu:blocked@cpu" in line)
    assert " no " in row and "auto, base, avx2, avx512" in row
    for backend in ("cpu", "auto"):
        r = run("train", "--backend", backend, "--epochs", "1", "--quiet", "--out",
                tmp_path / backend, env=env)
        one_line_refusal(r, "LOCKSTEP_CPU_ISA", "auto, base, avx2, avx512")
        assert not (tmp_path / backend).exists()


def test_sigint_at_any_point_of_start_up_exits_130_in_one_line():
    # the interrupt lands while the command line is parsed and the command starts: main's
    # handling covers it (an interrupt during the imports before main is the entry point's)
    code = ("import os, signal, sys\n"
            "from lockstep import cli\n"
            "real = cli.build_parser\n"
            "def parser():\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n"
            "    return real()\n"
            "cli.build_parser = parser\n"
            "sys.exit(cli.main(['info']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 130, (r.returncode, r.stderr)
    assert r.stderr.splitlines() == ["lockstep: interrupted"], r.stderr
    # a real SIGINT to a running command
    p = subprocess.Popen([*LOCKSTEP, "check", "--backends", "numpy", "--epochs", "10000000",
                          "--shape", "1,8,1,12,64"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "lockstep: interrupted"


@pytest.mark.parametrize("argv,words", [
    (["data", "--freq", "XYZ"], "not a pandas frequency"),
    (["data", "--freq", "0D"], "not a positive step"),
    (["forecast", "--horizon", "10000"], "2262"),
])
def test_calendar_inputs_are_one_line(argv, words, ck):
    if argv[0] == "forecast":
        argv = argv + ["--checkpoint", ck]
    one_line_refusal(run(*argv), words)


def test_hourly_times_with_dst_offsets_read_as_utc(tmp_path):
    p = tmp_path / "dst.csv"
    p.write_text("ds,y\n2021-03-28T00:00:00+01:00,2\n2021-03-28T01:00:00+01:00,3\n"
                 "2021-03-28T03:00:00+02:00,4\n2021-03-28T04:00:00+02:00,5\n")
    r = run("data", "--data", p)
    assert r.returncode == 0 and "hourly" in r.stdout and "Traceback" not in r.stderr, r.stderr


# ---- 3. exit codes and lines -----------------------------------------------------------------

@pytest.mark.parametrize("argv,words", [
    (["check", "--seed", "-1"], "seed must be a non-negative integer"),
    (["check", "--clip", "nan"], "clip must be a finite number"),
    (["check", "--clip", "-1"], "clip must be >= 0"),
    (["bench", "--device", "emu", "--count-steps", "0"], "--count-steps must be at least 1"),
    (["train", "--bogus"], "see 'lockstep train --help'"),
    (["backtest", "--horizn", "12"], "unrecognized arguments: --horizn 12"),
    (["train", "--backend", "cuda-raw", "--epochs", "1"], None),
])
def test_bad_input_is_exit_2_in_one_line_before_any_progress(argv, words, tmp_path):
    if argv[0] == "train":
        argv = argv + ["--out", tmp_path / "out", "--quiet"]
    if argv[:3] == ["train", "--backend", "cuda-raw"]:
        from lockstep import backends

        if backends.availability("cuda-raw", "gpu")[0] or \
                not backends.availability("cuda-raw", "emu")[0]:
            pytest.skip("needs a machine without CuPy and with the SIMT emulator")
        words = "use --device emu (the SIMT emulator) or install CuPy"
    line = one_line_refusal(run(*argv), words)
    if argv[0] == "backtest":
        assert "required" not in line and "'lockstep backtest --help'" in line
    assert not (tmp_path / "out").exists()


def test_check_prints_the_shape_it_runs(capsys):
    code = cli.main(["check", "--loss", "ce", "--backends", "numpy", "--epochs", "1"])
    out = capsys.readouterr().out
    assert code == 0 and "I,H,O,T,B = 1,13,3,12,8" in out and "O = 1" not in out, out


# ---- 4. long steps show progress; --quiet silences it ---------------------------------------

def test_progress_lines_and_quiet():
    from lockstep.harness import Progress

    class Sink:
        def __init__(self):
            self.text = ""

        def write(self, s):
            self.text += s

        def flush(self):
            pass

        def isatty(self):
            return False

    s = Sink()
    p = Progress(2, every=0.5, file=s, prefix="timing ")
    p("a")
    time.sleep(2.2)  # a stage over the interval says it is still running
    p.epoch(1, 2)
    p("b")
    p.close()
    assert "timing a ..." in s.text and "timing a: still running" in s.text
    assert "timing a: epoch 1 of 2 done" in s.text and "timing b ..." in s.text
    q = Sink()
    p = Progress(2, quiet=True, file=q)
    p("a")
    p.epoch(1, 2)
    p.close()
    assert q.text == ""
    # through the CLI: a line per stage on stderr, none with --quiet; results on stdout
    r = run("bench", "--preset", "seed", "--backends", "numpy", "--anchors", "")
    assert r.returncode == 0 and "timing numpy:reference@cpu ..." in r.stderr, r.stderr
    assert "| implementation" in r.stdout
    r = run("bench", "--preset", "seed", "--backends", "numpy", "--anchors", "", "--quiet")
    assert r.returncode == 0 and r.stderr == "" and "| implementation" in r.stdout
    r = run("check", "--backends", "numpy", "--epochs", "1", "--quiet")
    assert r.returncode == 0 and r.stderr == "" and "agree" in r.stdout


# ---- 6. the sdist holds tracked files only ----------------------------------------------------

def test_build_dist_packs_tracked_files_only(tmp_path):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "tracked.py").write_text("x = 1\n")
    (repo / "gone.py").write_text("")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "pkg/tracked.py", "gone.py"], check=True)
    (repo / "gone.py").unlink()  # tracked but deleted: not packed
    (repo / "lockstep-out").mkdir()
    (repo / "lockstep-out" / "forecast.png").write_bytes(b"run folder")
    (repo / "notes.txt").write_text("untracked")
    r = subprocess.run(["bash", str(ROOT / "tools" / "build_dist.sh"), "--list"],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "LOCKSTEP_DIST_SRC": str(repo)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["pkg/tracked.py"]
    # the real checkout: every listed file is tracked and exists
    r = subprocess.run(["bash", str(ROOT / "tools" / "build_dist.sh"), "--list"],
                       capture_output=True, text=True, timeout=60)
    listed = r.stdout.split("\n")
    assert r.returncode == 0 and "pyproject.toml" in listed and "tools/build_dist.sh" in listed
    assert all((ROOT / f).is_file() for f in listed if f)


def test_scikit_build_reuses_its_build_folder():
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["scikit-build"]
    assert cfg["build-dir"].startswith("build/") and "{wheel_tag}" in cfg["build-dir"]
    assert "build/" in (ROOT / ".gitignore").read_text().split()


def test_bench_json_file_writes_the_document(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert cli.main(["bench", "--preset", "seed", "--backends", "numpy", "--anchors", "",
                     "--json-file", str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["preset"] == "seed"


def test_an_interrupt_while_starting_up_is_one_line_and_exit_130():
    """^C during the imports (numpy, pandas, the backends) or the work: exit 130 and one
    line, never a KeyboardInterrupt traceback. (The interpreter's own first milliseconds,
    before any of lockstep's code runs, are outside its reach.)"""
    seen = set()
    for delay in (0.15, 0.3, 0.45):
        p = subprocess.Popen([sys.executable, "-m", "lockstep.cli", "info"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        out, errout = p.communicate(timeout=60)
        assert "Traceback" not in errout, (delay, errout)
        if p.returncode == 130:
            assert errout.strip() == "lockstep: interrupted", errout
        seen.add(p.returncode)
    assert 130 in seen, seen


def test_a_forecast_that_overflows_is_a_divergence_and_an_empty_out_is_refused(tmp_path):
    """Adam at --lr 1e6 keeps every loss finite while the recursion overflows: exit 1 and the
    divergence said first, not exit 0 with an inf forecast; --out '' names no folder."""
    run = [sys.executable, "-m", "lockstep.cli", "train", "--lr", "1e6", "--epochs", "5",
           "--hidden", "5", "--backend", "numpy", "--quiet", "--json"]
    p = subprocess.run([*run, "--out", str(tmp_path / "r")], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 1, p.stderr
    assert p.stderr.startswith("lockstep: training diverged: the forecasts are not finite")
    res = json.loads(p.stdout)
    assert None in res["forecast"]
    p = subprocess.run([*run[:4], "--out", ""], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and p.stderr.strip() == (
        "lockstep: error: --out is empty; name the output folder (default: lockstep-out)")


# ---- 7. an interrupt before main, a standard output that fails -------------------------------

def test_an_interrupt_after_the_work_while_the_interpreter_exits_is_ignored():
    """A ^C that lands after the command finished (in the interpreter's shutdown, its atexit
    callbacks) neither prints a traceback nor changes the exit code; in-process callers of
    cli.main keep their own ^C."""
    code = ("import os, signal, sys\n"
            "sys.argv = ['lockstep', 'info']\n"
            "from lockstep import cli\n"
            "rc = cli.main()\n"
            "os.kill(os.getpid(), signal.SIGINT)\n"
            "print('exit', rc)\n"
            "sys.exit(rc)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert p.stdout.rstrip().endswith("exit 0")
    with pytest.raises(SystemExit):  # argparse's --version exits
        cli.main(["--version"])
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # a caller keeps its ^C


def test_the_console_script_installs_the_interrupt_handler_before_any_import():
    """What runs before the handler: the interpreter's start-up, then lockstep/__init__ (no
    imports of its own) and cli's `import os, signal`; numpy, argparse and importlib.metadata
    come after it. (A ^C in the interpreter's own start-up is outside lockstep's reach.)"""
    code = ("import signal, sys\n"
            "before, seen, real = set(sys.modules), [], signal.signal\n"
            "def spy(sig, handler):\n"
            "    if sig == signal.SIGINT and not seen:\n"
            "        seen.append(sorted(set(sys.modules) - before))\n"
            "    return real(sig, handler)\n"
            "signal.signal = spy\n"
            "from lockstep.cli import main  # what the console script runs first\n"
            "print(seen[0])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    mods = set(eval(r.stdout))  # an editable install's finder adds importlib.util
    assert mods - {"importlib.util"} <= {"lockstep", "lockstep.cli", "__future__"}, r.stdout


def test_stdout_on_a_full_device_leaves_no_run_folder(tmp_path, ck):
    # a new folder: refused before any work, nothing made
    with open("/dev/full", "w") as full:
        r = subprocess.run([*LOCKSTEP, "train", "--data", "airpassengers", "--epochs", "2",
                            "--out", str(tmp_path / "X")], stdout=full, stderr=subprocess.PIPE,
                           text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "standard output" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "X").exists()
    # a folder with a checkpoint: it is left as it was, with nothing beside it
    old = tmp_path / "old"
    old.mkdir()
    (old / "checkpoint.npz").write_bytes(ck.read_bytes())
    for extra in (["--force"], ["--resume", "--epochs", "3"]):
        with open("/dev/full", "w") as full:
            r = subprocess.run([*LOCKSTEP, "train", "--data", "airpassengers", "--epochs", "2",
                                "--out", str(old), *extra], stdout=full,
                               stderr=subprocess.PIPE, text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, (extra, r.stderr)
        assert os.listdir(old) == ["checkpoint.npz"]
        assert (old / "checkpoint.npz").read_bytes() == ck.read_bytes()


# ---- the hostile-input corpus, counted (docs/results.md) -------------------------------------

def corpus_counts(files=("tests/test_hardening.py", "tests/test_trust3.py")) -> dict:
    """{(file, class, outcome): inputs}: each test pytest collects from ``files`` is one input
    (a parametrized case, or a test of one input); its class is the section ("# ---- ...") it
    sits in; its outcome is "one line + exit 2" when it asserts the refusal (``refused``,
    ``one_line_refusal``, ``returncode == 2``), else "succeeded correctly" when it asserts an
    exit 0, else "other" (exit 1 or 130, bounds on time or memory, files left as they were)."""
    import ast
    import collections
    import re

    ids = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", *files],
                         capture_output=True, text=True, cwd=ROOT).stdout.split()
    counts = collections.Counter()
    for f in files:
        text = (ROOT / f).read_text()
        sections = [(m.start(), re.sub(r"^\d+\.\s*", "", m.group(1)).strip())
                    for m in re.finditer(r"^# ---- (.*?) -+$", text, re.M)]
        for node in ast.parse(text).body:
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
                continue
            at = len("\n".join(text.splitlines()[:node.lineno - 1]))
            cls = ([s for p, s in sections if p <= at] or ["(before the first section)"])[-1]
            src = ast.get_source_segment(text, node)
            outcome = ("one line + exit 2" if re.search(
                r"\brefused\(|one_line_refusal\(|returncode == 2|code == 2|== 2\b", src) else
                "succeeded correctly" if re.search(r"returncode == 0|\) == 0\b|== 0\b", src)
                else "other")
            n = sum(1 for i in ids if i.startswith(f"{f}::{node.name}") and
                    i[len(f"{f}::{node.name}"):][:1] in ("", "["))
            counts[(f, cls, outcome)] += n
    return dict(counts)


if __name__ == "__main__":  # python tests/test_trust3.py: the corpus table of docs/results.md
    rows = corpus_counts()
    for (f, cls, outcome), n in rows.items():
        print(f"| {Path(f).name} | {cls} | {outcome} | {n} |")
    print(f"| all | | | {sum(rows.values())} |")
