#!/usr/bin/env bash
# The default CNN+LSTM (C=17, L=32) against the same architecture in PyTorch on this CPU, as
# ratios (above 1.0: anomaly is faster). The two sides take turns, ROUNDS times (on a shared
# machine the speed of both drifts by a fifth or more within minutes, so one side after the
# other measures the drift as much as the code); each figure is the median over the rounds of
# each side's median of REPS repetitions, and the ratio is of those medians.
#
#   bash benches/sequence.sh     WINDOWS=8192 REPS=3 ROUNDS=3; PYTHON=/path/to/python with torch
set -euo pipefail
cd "$(dirname "$0")/.."
windows=${WINDOWS:-8192}
reps=${REPS:-3}
rounds=${ROUNDS:-3}
py=${PYTHON:-python3}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/anomaly-target}"
args=(--windows "$windows" --reps "$reps" --batches 64,512)
cargo bench --quiet --no-run --bench sequence 2>/dev/null
reference=yes
if ! "$py" -c 'import torch' 2>/dev/null; then
  echo "skipped the reference: torch is not importable by $py (set PYTHON=...)"
  reference=
fi
ours="" ref=""
for round in $(seq "$rounds"); do
  out=$(cargo bench --quiet --bench sequence -- "${args[@]}")
  echo "round $round, anomaly:"$'\n'"$out"
  ours+="$out"$'\n'
  if [ -n "$reference" ]; then
    out=$("$py" benches/sequence_reference.py "${args[@]}")
    echo "round $round, PyTorch:"$'\n'"$out"
    ref+="$out"$'\n'
  fi
done
# The median over the rounds of one figure's lines.
median() { echo "$1" | grep -E "^$2 " | grep -oE "[0-9]+$" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for what in "train batch 64" "train batch 512" "inference batch 512"; do
  o=$(median "$ours" "$what")
  if [ -z "$reference" ]; then
    echo "$what windows/s: ours $o (median of $rounds rounds)"
    continue
  fi
  awk -v o="$o" -v r="$(median "$ref" "$what")" -v w="$what" -v n="$rounds" \
    'BEGIN { printf "%s windows/s, median of %d rounds: ours %d, PyTorch %d, ratio %.2f\n", w, n, o, r, o / r }'
done
