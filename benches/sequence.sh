#!/usr/bin/env bash
# The default CNN+LSTM (C=17, L=32) against the same architecture in PyTorch on this CPU, one
# run, as ratios (above 1.0: anomaly is faster).
#
#   bash benches/sequence.sh     WINDOWS=8192 REPS=3; PYTHON=/path/to/python with torch
set -euo pipefail
cd "$(dirname "$0")/.."
windows=${WINDOWS:-8192}
reps=${REPS:-3}
py=${PYTHON:-python3}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/anomaly-target}"
args=(--windows "$windows" --reps "$reps" --batches 64,512)
ours=$(cargo bench --quiet --bench sequence -- "${args[@]}")
echo "$ours"
if ! "$py" -c 'import torch' 2>/dev/null; then
  echo "skipped the reference: torch is not importable by $py (set PYTHON=...)"
  exit 0
fi
ref=$("$py" benches/sequence_reference.py "${args[@]}")
echo "$ref"
field() { echo "$1" | grep -E "^$2 " | grep -oE "[0-9]+$"; }
for what in "train batch 64" "train batch 512" "inference batch 512"; do
  awk -v o="$(field "$ours" "$what")" -v r="$(field "$ref" "$what")" -v w="$what" \
    'BEGIN { printf "%s windows/s: ours %d, PyTorch %d, ratio %.2f\n", w, o, r, o / r }'
done
