#!/usr/bin/env bash
# `predict --explain 3` against plain `predict` on the same file in the same run, for the
# default MLP and the isolation forest: 100,000 generated rows (17 feature columns), the top 5%
# of the training rows' scores flagged (`--contamination 0.05`), each timed 3 times
# interleaved, medians compared. Target: explain runs at >= 0.5x the rows/s of plain predict.
#
#   bash benches/explain.sh        ROWS=100000
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${ROWS:-100000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/anomaly-target}"
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/anomaly
"$bin" generate --rows "$rows" --seed 1 --out "$work/flows.csv" >/dev/null

seconds() {
  local start end
  start=$(date +%s.%N)
  "$@"
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f\n", b - a }'
}

for family in mlp isolation_forest; do
  "$bin" train --quiet --device cpu --set "model.kind=$family" --set training.epochs=3 \
    --set "checkpoint.save_dir=$work/$family" --set "logging.tensorboard_dir=$work/runs" \
    --set "logging.log_dir=$work/logs" >/dev/null
  ck=$work/$family/best.mpk
  run() {
    "$bin" predict --quiet --device cpu --checkpoint "$ck" --data "$work/flows.csv" \
      --contamination 0.05 --out "$work/out.csv" "$@"
  }
  : >"$work/plain.txt"
  : >"$work/explain.txt"
  for rep in 1 2 3; do
    seconds run >>"$work/plain.txt"
    seconds run --explain 3 >>"$work/explain.txt"
  done
  flagged=$(awk -F, 'NR > 1 && $3 == "true"' "$work/out.csv" | wc -l)
  plain=$(sort -n "$work/plain.txt" | sed -n 2p)
  explain=$(sort -n "$work/explain.txt" | sed -n 2p)
  awk -v f="$family" -v r="$rows" -v p="$plain" -v e="$explain" -v n="$flagged" 'BEGIN {
    printf "%-17s %d rows, %d flagged (%.1f%%): predict %.0f rows/s, predict --explain 3 %.0f rows/s, ratio %.2f\n",
      f, r, n, 100 * n / r, r / p, r / e, p / e }'
done
