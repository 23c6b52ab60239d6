#!/usr/bin/env bash
# bench/device_check.sh [--dry-run] OUTDIR — everything lockstep checks on a machine with an
# NVIDIA GPU.
#
# For an image that already has cupy-cuda13x, numba-cuda, torch, pytest, scikit-build-core,
# pybind11, cmake and ninja, and no network. Builds and installs lockstep without downloading
# anything, runs the `gpu` tests, `lockstep check` on the GPU backends, `lockstep bench` presets
# seed and heavy (cuDNN included), the launch / grid-barrier micro-benchmarks, the kernels' real
# registers and shared memory against lockstep/gpu_resources.json, the SASS check where
# nvdisasm is installed, the strategy scripts, and the GPU cost model's prediction beside each
# measured strategy. Every step has its own time limit; the limits add up to 10.5 minutes, so
# the whole script, build included, ends within 12. Logs and JSON go to OUTDIR. A failing step
# is recorded in OUTDIR/summary.md and the script goes on with the next one. A step whose
# prerequisite is missing (no CuPy, no GPU answering, no nvdisasm) is recorded as
# "skipped: <reason>" instead of failing with a traceback.
#
# --dry-run (or LOCKSTEP_DEVICE_CHECK_DRY_RUN=1): run nothing; record for every step either the
# reason it would be skipped or "skipped: dry run" with the command it would run
# (tests/test_gpu_resources.py runs this on the CPU-only machine).
set -uo pipefail

dry="${LOCKSTEP_DEVICE_CHECK_DRY_RUN:-0}"
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
out="${1:?usage: bench/device_check.sh [--dry-run] OUTDIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
cd "$(dirname "$0")/.."
start=$(date +%s)
summary="$out/summary.md"
py="${PYTHON:-python3}"

{
  echo "# lockstep device check"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
  echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') ($(nproc) cores)"
  echo
  echo "| step | status | seconds |"
  echo "| --- | --- | --- |"
} > "$summary"

# Prerequisites, probed once without importing lockstep (it may not be installed yet).
gpu_reason="$("$py" - <<'PY' 2>&1 | tail -1
try:
    import cupy
except ImportError:
    print("CuPy is not installed (pip install cupy-cuda13x)")
    raise SystemExit
try:
    n = cupy.cuda.runtime.getDeviceCount()
    print("" if n > 0 else "no CUDA device answers")
except Exception as e:  # no driver, no device
    print(f"no CUDA device answers: {type(e).__name__}: {e}".replace("\n", " "))
PY
)"
sass_reason="$("$py" - <<'PY' 2>&1 | tail -1
import importlib.util, os, shutil
roots = [os.path.join(p, "cu13", "bin") for p in
         (importlib.util.find_spec("nvidia").submodule_search_locations
          if importlib.util.find_spec("nvidia") else [])]
ok = all(any(os.path.isfile(os.path.join(r, t)) for r in roots) or shutil.which(t)
         for t in ("nvdisasm", "cuobjdump"))
print("" if ok else "nvdisasm/cuobjdump not installed (pip install nvidia-cuda-nvdisasm "
      "nvidia-cuda-cuobjdump); tests/test_sass.py runs the check on the CPU machines")
PY
)"
[ -n "$gpu_reason" ] || gpu_reason=""

# step NAME LIMIT_SECONDS NEEDS COMMAND...: run with a time limit, log to OUTDIR/NAME.log.
# NEEDS: "-" (nothing), "gpu" (CuPy and a device) or "sass" (nvdisasm and cuobjdump).
step() {
  local name="$1" limit="$2" needs="$3"
  shift 3
  local reason=""
  [ "$needs" = gpu ] && reason="$gpu_reason"
  [ "$needs" = sass ] && reason="$sass_reason"
  if [ -z "$reason" ] && [ "$dry" = 1 ]; then reason="dry run (would run: $* ; limit ${limit}s)"; fi
  if [ -n "$reason" ]; then
    echo "| $name | skipped: ${reason//|//} | 0 |" >> "$summary"
    echo "== $name: skipped: $reason" >&2
    return 0
  fi
  local t0=$(date +%s)
  echo "== $name (limit ${limit}s)" >&2
  timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  local status="ok"
  [ $rc -eq 124 ] && status="TIMEOUT"
  [ $rc -ne 0 ] && [ $rc -ne 124 ] && status="exit $rc"
  echo "| $name | $status | $(( $(date +%s) - t0 )) |" >> "$summary"
  echo "   $status" >&2
  return 0
}

[ "$dry" = 1 ] || nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true

# 1. Build and install from this tree, offline.
step install 75 - "$py" -m pip install --no-build-isolation --no-deps --no-index -v .

# 2. What the machine offers.
step info 15 - "$py" -m lockstep.cli info --json
[ "$dry" = 1 ] || cp "$out/info.log" "$out/info.json" 2>/dev/null || true

# 3. The gpu-marked tests (agreement on the device, larger shapes).
step pytest-gpu 75 gpu "$py" -m pytest -m gpu -q -p no:cacheprovider -o addopts="" --strict-markers \
  -W error tests

# 4. The agreement table on the GPU backends, both dtypes and both losses.
step check-f32-mse 25 gpu "$py" -m lockstep.cli check --backends cuda-raw,numba-cuda,cpu \
  --dtype float32 --loss mse --optimizer adam --shape 3,64,2,24,32 --json
step check-f64-ce 25 gpu "$py" -m lockstep.cli check --backends cuda-raw,numba-cuda,cpu \
  --dtype float64 --loss ce --optimizer sgd --shape 3,50,3,12,16 --json

# 5. The benchmark: the seed's workload with every anchor, and the heavy preset on the GPU.
step bench-seed 40 gpu "$py" -m lockstep.cli bench --preset seed --json-file "$out/bench-seed.json" \
  --plot "$out/bench-seed.png"
step bench-heavy 110 gpu "$py" -m lockstep.cli bench --preset heavy --backends cuda-raw,numba-cuda \
  --anchors torch-cudnn@gpu --json-file "$out/bench-heavy.json" --plot "$out/bench-heavy.png"

# 6. Micro-benchmarks (kernel-launch latency, grid-barrier latency, no-FMA peak, bandwidth)
#    and the strategy scripts (every strategy validated, then timed over block sizes; each
#    (strategy, shape) also counted on the SIMT emulator and priced by python/lockstep/gpu_model.py
#    for the H200, the measured time beside it; shapes too long to count are left unpredicted).
step micro 20 gpu "$py" bench/gpu_micro.py --json "$out/micro.json"
# The loaded kernels' registers, local and static shared memory (cuFuncGetAttribute) against the
# table the SASS step of CI produced (lockstep/gpu_resources.json), and the SASS check itself.
step resources 30 gpu "$py" bench/gpu_micro.py --resources --json "$out/resources.json"
step sass 90 sass "$py" -m lockstep.sass
step lstm-forward 40 gpu "$py" bench/lstm_forward.py --json "$out/lstm-forward.json"
step lstm-backward 40 gpu "$py" bench/lstm_backward.py --json "$out/lstm-backward.json"

# 7. The cost model against the device: predicted (published H200 figures, and with this run's
#    measured launch / barrier latencies and peaks) beside measured, for every strategy.
step predicted 10 gpu "$py" bench/strategy_common.py --compare "$out/lstm-forward.json" \
  "$out/lstm-backward.json"

echo >> "$summary"
echo "total: $(( $(date +%s) - start )) s" >> "$summary"
{ echo; echo "## Predicted (python/lockstep/gpu_model.py) beside measured"; echo
  cat "$out/predicted.log" 2>/dev/null || echo "(step predicted wrote nothing)"; } >> "$summary"
cat "$summary" >&2
