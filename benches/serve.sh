#!/usr/bin/env bash
# `anomaly serve` under load on loopback, and the way the Python project serves the same MLP
# (FastAPI + uvicorn + PyTorch, benches/serve_reference.py) in the same run, as ratios.
#
#   bash benches/serve.sh          SECONDS_EACH=30 CONNECTIONS=64; PYTHON=/path/to/python with
#                                  torch, pandas, fastapi and uvicorn for the reference;
#                                  SERVE_ARGS="--drift-window 0" to time the server without
#                                  its drift window (the default keeps 10,000 rows)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_EACH:-30}
conns=${CONNECTIONS:-64}
py=${PYTHON:-python3}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/anomaly-target}"
cargo build --release --quiet
cargo bench --no-run --quiet --bench serve_load 2>/dev/null
load() { cargo bench --quiet --bench serve_load -- "$@"; }
bin="$CARGO_TARGET_DIR/release/anomaly"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

# The default MLP on the sample data, and the request bodies: one row by name, 1,000 rows of CSV.
"$bin" train --quiet --set data.path=data/sample.csv --set checkpoint.save_dir="$work/ck" \
  --set logging.log_dir="$work/logs"
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) h[i] = $i } NR == 2 {
  printf "{\"records\": [{"; for (i = 1; i <= NF; i++) { v = $i; if (v == "True") v = "true"; if (v == "False") v = "false";
  printf "%s\"%s\": %s", (i > 1 ? ", " : ""), h[i], v } print "}]}" }' data/sample.csv > "$work/one.json"
head -1001 data/sample.csv > "$work/batch.csv"

run_side() { # name url pid
  local name=$1 url=$2 pid=$3
  echo "$name single rows:  $(load --url "$url" --body "$work/one.json" --connections "$conns" --seconds "$secs" --pid "$pid")"
  echo "$name 1,000-row CSV: $(load --url "$url" --body "$work/batch.csv" --content-type text/csv --rows 1000 --connections 4 --seconds "$secs" --pid "$pid")"
}
wait_up() { for _ in $(seq 300); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "$1 did not come up"; exit 1; }

# shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
"$bin" serve --checkpoint "$work/ck/best.mpk" --port 18080 --feedback-file "$work/fb.csv" \
  ${SERVE_ARGS:-} 2>"$work/serve.log" &
ours_pid=$!
wait_up http://127.0.0.1:18080/api/v1/health
ours=$(run_side anomaly http://127.0.0.1:18080/api/v1/predict "$ours_pid")
echo "$ours"
load --url http://127.0.0.1:18080/api/v1/predict --abuse 1000
kill -TERM "$ours_pid"; wait "$ours_pid" || true

if ! "$py" -c 'import fastapi, uvicorn, torch, pandas' 2>/dev/null; then
  echo "skipped the reference: $py lacks fastapi, uvicorn, torch or pandas (set PYTHON=...)"
  exit 0
fi
"$py" benches/serve_reference.py --data data/sample.csv --port 18081 &
ref_pid=$!
wait_up http://127.0.0.1:18081/api/v1/health
ref=$(run_side reference http://127.0.0.1:18081/api/v1/predict "$ref_pid")
echo "$ref"
rate() { echo "$1" | grep "$2" | grep -oE "[0-9]+ $3/s" | grep -oE "[0-9]+"; }
awk -v o="$(rate "$ours" single requests)" -v r="$(rate "$ref" single requests)" \
  'BEGIN { printf "single-row requests/s: anomaly %d, FastAPI+PyTorch %d, ratio %.1f\n", o, r, o / r }'
awk -v o="$(rate "$ours" CSV rows)" -v r="$(rate "$ref" CSV rows)" \
  'BEGIN { printf "rows/s in 1,000-row CSV batches: anomaly %d, FastAPI+PyTorch %d, ratio %.1f\n", o, r, o / r }'
