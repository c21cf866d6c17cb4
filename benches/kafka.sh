#!/usr/bin/env bash
# `predict --kafka-brokers` against a Python consumer (benches/kafka_reference.py:
# confluent-kafka, pandas, PyTorch, committing after its outputs are acknowledged), on the same
# broker in the same run: records/s of one replica and of two, and of the reference; then the
# end-to-end latency of one replica at a steady 10,000 records/s.
#
#   bash benches/kafka.sh     RECORDS=500000; PYTHON=/path/to/python with torch, pandas and
#                             confluent-kafka; TANSU_BIN=/path/to/tansu (the broker, as .ci/run
#                             installs it); BIN=/path/to/anomaly to time another build
#
# Records are `anomaly generate` rows (17 features, the embedded schema) as JSON messages on a
# 4-partition topic; the model is the default MLP trained briefly on data/sample.csv. Each
# consumer's rate is measured from its group's commits (first commit to last), so joining the
# group is not counted. The broker runs on the same machine, in memory.
set -euo pipefail
cd "$(dirname "$0")/.."
records=${RECORDS:-500000}
py=${PYTHON:-python3}
tansu=${TANSU_BIN:-$HOME/.cache/anomaly-tansu/tansu}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/anomaly-target}"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
fi
bin=${BIN:-$CARGO_TARGET_DIR/release/anomaly}
if ! "$py" -c 'import torch, pandas, confluent_kafka' 2>/dev/null; then
  echo "skipped: torch, pandas and confluent_kafka are not importable by $py (set PYTHON=...)"
  exit 0
fi
if [ ! -x "$tansu" ]; then
  echo "skipped: no tansu broker at $tansu (set TANSU_BIN=...; .ci/run installs it)"
  exit 0
fi

port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
brokers=127.0.0.1:$port
"$tansu" broker --listener-url "tcp://$brokers" --advertised-listener-url "tcp://$brokers" \
  --storage-engine memory://tansu/ >/dev/null 2>&1 &
pids+=($!)
sleep 1
ref=benches/kafka_reference.py
topic() { "$py" -c "from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({'bootstrap.servers': '$brokers'})
[f.result() for f in a.create_topics([NewTopic('$1', num_partitions=4, replication_factor=1)]).values()]"; }
for t in flows scores ref-scores live live-scores hop; do topic "$t"; done

"$bin" generate --rows "$records" --seed 1 --out "$work/flows.csv" >/dev/null
"$bin" train --quiet --device cpu --set training.epochs=3 --set "checkpoint.save_dir=$work/ck" \
  --set "logging.tensorboard_dir=$work/runs" --set "logging.log_dir=$work/logs" >/dev/null
"$py" $ref produce "$brokers" flows "$work/flows.csv"
quick=(--kafka-config session.timeout.ms=6000 --kafka-config heartbeat.interval.ms=500)

# One group of N replicas of `anomaly predict` over the whole topic: its records/s.
ours() {
  local group=$1 n=$2 started=()
  for _ in $(seq "$n"); do
    "$bin" predict --quiet --device cpu --checkpoint "$work/ck/best.mpk" --kafka-brokers "$brokers" \
      --topic flows --group "$group" --out-topic scores "${quick[@]}" &
    started+=($!)
    pids+=($!)
  done
  "$py" $ref wait "$brokers" flows "$group" "$records"
  for p in "${started[@]}"; do kill -TERM "$p"; wait "$p"; done
}

echo "== $records records, 4 partitions, broker on this machine ($(nproc) cores)"
one=$(ours one 1)
echo "anomaly, 1 replica: $one records/s"
two=$(ours two 2)
echo "anomaly, 2 replicas: $two records/s"
"$py" $ref consume "$brokers" flows reference ref-scores &
ref_pid=$!
pids+=($ref_pid)
python_rate=$("$py" $ref wait "$brokers" flows reference "$records")
kill -TERM "$ref_pid"; wait "$ref_pid" || true
echo "python (confluent-kafka + pandas + torch), 1 consumer: $python_rate records/s"
awk -v o="$one" -v t="$two" -v r="$python_rate" \
  'BEGIN { printf "ratio to python: 1 replica %.1fx, 2 replicas %.1fx\n", o / r, t / r }'

echo "== latency at 10,000 records/s for 10 s (producer linger.ms 5, consumers fetch.wait.max.ms 10)"
echo -n "the broker alone, one hop (produce -> consume): "
"$py" $ref latency "$brokers" hop hop 10000 10
echo -n "anomaly, 1 replica, two hops (flows -> replica, --flush-ms 10 -> scores -> consumer): "
"$bin" predict --quiet --device cpu --checkpoint "$work/ck/best.mpk" --kafka-brokers "$brokers" \
  --topic live --group live --out-topic live-scores --flush-ms 10 "${quick[@]}" \
  --kafka-config fetch.wait.max.ms=10 &
live=$!
pids+=($live)
sleep 5
"$py" $ref latency "$brokers" live live-scores 10000 10
kill -TERM "$live"; wait "$live"
