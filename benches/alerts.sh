#!/usr/bin/env bash
# The alert store: alerts stored per second in batches (SQLite; PostgreSQL too when
# ANOMALY_BENCH_POSTGRES or ANOMALY_TEST_POSTGRES names a server), then `anomaly serve`'s
# throughput at a 10% alarm rate with the store on (SQLite, every alarm committed before its
# answer) and off (--alerts-db none), in the same run, as a ratio.
#
#   bash benches/alerts.sh          SECONDS_EACH=20 CONNECTIONS=64
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_EACH:-20}
conns=${CONNECTIONS:-64}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/anomaly-target}"
cargo build --release --quiet
cargo bench --no-run --quiet --bench serve_load --bench alerts 2>/dev/null
cargo bench --quiet --bench alerts
load() { cargo bench --quiet --bench serve_load -- "$@"; }
bin="$CARGO_TARGET_DIR/release/anomaly"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

# The default MLP on the sample data, its threshold flagging 10% of the training rows; the
# bodies: single rows (a tenth of them alarms) and 1,000-row CSV batches.
"$bin" train --quiet --set data.path=data/sample.csv --set checkpoint.save_dir="$work/ck" \
  --set logging.log_dir="$work/logs" --set 'training.threshold={contamination: 0.1}'
head -1001 data/sample.csv > "$work/batch.csv"
scores=$("$bin" predict --checkpoint "$work/ck/best.mpk" --data "$work/batch.csv" -q | awk -F, 'NR > 1 && $3 == "true"' | wc -l)
echo "alarm rate of the 1,000-row body: $scores / 1000"
# Ten one-row CSV bodies, one of them an alarm: the client cycles through them.
"$bin" predict --checkpoint "$work/ck/best.mpk" --data "$work/batch.csv" -q \
  | awk -F, 'NR > 1 { print NR - 1, $3 }' > "$work/flags"
alarm=$(awk '$2 == "true" { print $1; exit }' "$work/flags")
normal=$(awk '$2 == "false" { print $1 }' "$work/flags" | head -9 | tr '\n' ' ')
for i in $alarm $normal; do
  { head -1 data/sample.csv; sed -n "$((i + 1))p" data/sample.csv; } > "$work/row-$i.csv"
done
bodies=$(ls "$work"/row-*.csv | paste -sd, -)

wait_up() { for _ in $(seq 300); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "$1 did not come up"; exit 1; }
side() { # name, serve flags…
  local name=$1; shift
  "$bin" serve --checkpoint "$work/ck/best.mpk" --port 18090 --feedback-file "$work/fb.csv" \
    --drift-window 0 "$@" 2>"$work/serve.log" &
  local pid=$!
  wait_up http://127.0.0.1:18090/api/v1/health
  echo "$name single rows:  $(load --url http://127.0.0.1:18090/api/v1/predict --bodies "$bodies" --content-type text/csv --connections "$conns" --seconds "$secs" --pid "$pid")"
  echo "$name 1,000-row CSV: $(load --url http://127.0.0.1:18090/api/v1/predict --body "$work/batch.csv" --content-type text/csv --rows 1000 --connections 4 --seconds "$secs" --pid "$pid")"
  kill -TERM "$pid"; wait "$pid" || true
}
off=$(side "store off" --alerts-db none); echo "$off"
on=$(side "store on " --alerts-db "$work/alerts.sqlite"); echo "$on"
rate() { echo "$1" | grep "$2" | grep -oE "[0-9]+ $3/s" | grep -oE "[0-9]+"; }
awk -v on="$(rate "$on" single requests)" -v off="$(rate "$off" single requests)" \
  'BEGIN { printf "single-row requests/s at a 10%% alarm rate: store on %d, off %d, ratio %.2f\n", on, off, on / off }'
awk -v on="$(rate "$on" CSV rows)" -v off="$(rate "$off" CSV rows)" \
  'BEGIN { printf "rows/s in 1,000-row CSV batches: store on %d, off %d, ratio %.2f\n", on, off, on / off }'
