#!/usr/bin/env bash
# `anomaly predict` against the Python way of doing the same (benches/predict_reference.py:
# pandas read_csv -> NumPy preprocessing -> PyTorch forward -> to_csv), on the same file in the
# same run, and the peak RSS of predict streaming 1M and 4M rows from stdin.
#
#   bash benches/predict.sh        ROWS=1000000; PYTHON=/path/to/python with torch and pandas;
#                                  BIN=/path/to/anomaly to time another build
#
# The file is `anomaly generate` output (17 feature columns and a label, the embedded schema);
# the model is the default MLP (17-128-64-32-1) trained briefly on data/sample.csv. Run it on
# a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${ROWS:-1000000}
py=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/anomaly-target}"
# BIN=path runs another build (e.g. the binary before a change, for a before/after pair).
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
fi
bin=${BIN:-$CARGO_TARGET_DIR/release/anomaly}

"$bin" generate --rows "$rows" --seed 1 --out "$work/flows.csv" >/dev/null
"$bin" train --quiet --device cpu --set training.epochs=3 --set "checkpoint.save_dir=$work/ck" \
  --set "logging.tensorboard_dir=$work/runs" --set "logging.log_dir=$work/logs" >/dev/null
ck=$work/ck/best.mpk

# Peak RSS in MiB of a shell pipeline (the largest process in it).
peak_rss() {
  "$py" -c 'import resource, subprocess, sys
subprocess.run(["bash", "-c", sys.argv[1]], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)' "$1"
}

echo "== anomaly predict, $rows rows, file to CSV (median of 3)"
for rep in 1 2 3; do
  start=$(date +%s.%N)
  "$bin" predict --quiet --device cpu --checkpoint "$ck" --data "$work/flows.csv" --out "$work/ours.csv"
  end=$(date +%s.%N)
  echo "$start $end" | awk '{ printf "%.3f\n", $2 - $1 }' >> "$work/ours.txt"
done
ours_s=$(sort -n "$work/ours.txt" | sed -n 2p)
ours=$(awk -v r="$rows" -v s="$ours_s" 'BEGIN { printf "%.0f", r / s }')
echo "anomaly: median $ours_s s = $ours rows/s"

echo "== peak RSS streaming from stdin"
body="tail -n +2 $work/flows.csv"
one=$(peak_rss "cat $work/flows.csv | $bin predict --quiet --device cpu --checkpoint $ck --data - --out /dev/null")
four=$(peak_rss "(cat $work/flows.csv; $body; $body; $body) | $bin predict --quiet --device cpu --checkpoint $ck --data - --out /dev/null")
echo "1x ($rows rows): $one MiB; 4x: $four MiB; ratio $(awk -v a="$one" -v b="$four" 'BEGIN { printf "%.3f", b / a }')"

echo "== reference"
if "$py" -c 'import torch, pandas, numpy' 2>/dev/null; then
  ref=$("$py" benches/predict_reference.py "$work/flows.csv" --out "$work/ref.csv" | tee /dev/stderr | sed -E 's/.*= ([0-9,]+) rows\/s.*/\1/' | tr -d ,)
  awk -v o="$ours" -v r="$ref" 'BEGIN { printf "predict rows/s: ours %d, reference %d, ratio %.2f\n", o, r, o / r }'
else
  echo "skipped: torch and pandas are not importable by $py (set PYTHON=...)"
fi
