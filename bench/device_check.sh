#!/usr/bin/env bash
# bench/device_check.sh OUTDIR — everything lockstep checks on a machine with an NVIDIA GPU.
#
# For an image that already has cupy-cuda13x, numba-cuda, torch, pytest, scikit-build-core,
# pybind11, cmake and ninja, and no network. Builds and installs lockstep without downloading
# anything, runs the `gpu` tests, `lockstep check` on the GPU backends, `lockstep bench` presets
# seed and heavy (cuDNN included), the launch / grid-barrier micro-benchmarks, the strategy
# scripts, and the GPU cost model's prediction beside each measured strategy. Every step
# has its own time limit so the whole script ends within 8 minutes; logs and JSON go to OUTDIR.
# A failing step is recorded in OUTDIR/summary.md and the script goes on with the next one.
set -uo pipefail

out="${1:?usage: bench/device_check.sh OUTDIR}"
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

# step NAME LIMIT_SECONDS COMMAND...: run with a time limit, log to OUTDIR/NAME.log.
step() {
  local name="$1" limit="$2"
  shift 2
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

nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true

# 1. Build and install from this tree, offline.
step install 75 "$py" -m pip install --no-build-isolation --no-deps --no-index -v .

# 2. What the machine offers.
step info 15 "$py" -m lockstep.cli info --json
cp "$out/info.log" "$out/info.json" 2>/dev/null || true

# 3. The gpu-marked tests (agreement on the device, larger shapes).
step pytest-gpu 75 "$py" -m pytest -m gpu -q -p no:cacheprovider -o addopts="" --strict-markers \
  -W error tests

# 4. The agreement table on the GPU backends, both dtypes and both losses.
step check-f32-mse 25 "$py" -m lockstep.cli check --backends cuda-raw,numba-cuda,cpu \
  --dtype float32 --loss mse --optimizer adam --shape 3,64,2,24,32 --json
step check-f64-ce 25 "$py" -m lockstep.cli check --backends cuda-raw,numba-cuda,cpu \
  --dtype float64 --loss ce --optimizer sgd --shape 3,50,3,12,16 --json

# 5. The benchmark: the seed's workload with every anchor, and the heavy preset on the GPU.
step bench-seed 40 "$py" -m lockstep.cli bench --preset seed --json-file "$out/bench-seed.json" \
  --plot "$out/bench-seed.png"
step bench-heavy 110 "$py" -m lockstep.cli bench --preset heavy --backends cuda-raw,numba-cuda \
  --anchors torch-cudnn@gpu --json-file "$out/bench-heavy.json" --plot "$out/bench-heavy.png"

# 6. Micro-benchmarks (kernel-launch latency, grid-barrier latency, no-FMA peak, bandwidth)
#    and the strategy scripts (every strategy validated, then timed over block sizes; each
#    (strategy, shape) also counted on the SIMT emulator and priced by python/lockstep/gpu_model.py
#    for the H200, the measured time beside it; shapes too long to count are left unpredicted).
step micro 20 "$py" bench/gpu_micro.py --json "$out/micro.json"
step lstm-forward 40 "$py" bench/lstm_forward.py --json "$out/lstm-forward.json"
step lstm-backward 40 "$py" bench/lstm_backward.py --json "$out/lstm-backward.json"

# 7. The cost model against the device: predicted (published H200 figures, and with this run's
#    measured launch / barrier latencies and peaks) beside measured, for every strategy.
step predicted 10 "$py" bench/strategy_common.py --compare "$out/lstm-forward.json" \
  "$out/lstm-backward.json"

echo >> "$summary"
echo "total: $(( $(date +%s) - start )) s" >> "$summary"
{ echo; echo "## Predicted (python/lockstep/gpu_model.py) beside measured"; echo
  cat "$out/predicted.log" 2>/dev/null || echo "(step predicted wrote nothing)"; } >> "$summary"
cat "$summary" >&2
