#!/usr/bin/env bash
# `anomaly flows` against nfstream (statistical features, no DPI) and, when installed, the
# Python cicflowmeter package, on one generated capture, in one run, as ratios; peak memory at
# 1M and 5M packets; and `predict --pcap` against `flows` alone.
#
#   bash benches/flows.sh    FLOWS=330000 (about 5.3M packets); PYTHON=/path/to/python with
#                            nfstream; CICFLOWMETER=/path/to/cicflowmeter (its own venv: it pins
#                            an older numpy, and 0.2.0 needs scapy==2.5.0: scapy 2.6 and later
#                            no longer call its session hook, and it writes no flows)
set -euo pipefail
cd "$(dirname "$0")/.."
flows=${FLOWS:-330000}
py=${PYTHON:-python3}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/anomaly-target}"
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/anomaly"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$bin" generate --pcap "$dir/big.pcap" --flows "$flows" --seed 1
"$bin" generate --pcap "$dir/small.pcap" --flows $((flows / 5)) --seed 1 >/dev/null

# Packets/s and peak RSS (GNU time's maximum resident set, KiB) of one run.
measure() {
  /usr/bin/time -f "%e %M" -o "$dir/time" "$@" >/dev/null 2>"$dir/err"
  read -r secs rss <"$dir/time"
  echo "$secs $rss"
}
read -r secs rss < <(measure "$bin" flows --pcap "$dir/big.pcap" --out "$dir/ours.csv")
packets=$(grep -oE "[0-9]+ packets" "$dir/err" | head -1 | grep -oE "[0-9]+")
nflows=$(($(wc -l <"$dir/ours.csv") - 1))
ours_pps=$(awk -v p="$packets" -v s="$secs" 'BEGIN { printf "%d", p / s }')
echo "anomaly flows: $packets packets, $nflows flows in ${secs}s: $ours_pps packets/s, $(awk -v f="$nflows" -v s="$secs" 'BEGIN { printf "%d", f / s }') flows/s, peak RSS $((rss / 1024)) MiB"
read -r small_secs small_rss < <(measure "$bin" flows --pcap "$dir/small.pcap" --out /dev/null)
small_packets=$(grep -oE "[0-9]+ packets" "$dir/err" | head -1 | grep -oE "[0-9]+")
echo "peak RSS: $((small_rss / 1024)) MiB at $small_packets packets, $((rss / 1024)) MiB at $packets packets (ratio $(awk -v a="$rss" -v b="$small_rss" 'BEGIN { printf "%.2f", a / b }'))"

# predict --pcap with an isolation forest trained on the smaller capture's labelled flows.
"$bin" flows --pcap "$dir/small.pcap" --labels "$dir/small.labels.csv" --out "$dir/train.csv" -q
"$bin" train --quiet --set data.path="$dir/train.csv" --set data.label_column=Label \
  --set 'data.negative_labels=[BENIGN]' --set model.kind=isolation_forest \
  --set 'data.drop_if_present=[Flow ID, Src IP, Src Port, Dst IP, Timestamp]' \
  --set checkpoint.save_dir="$dir/model"
read -r psecs _ < <(measure "$bin" predict --checkpoint "$dir/model/best.mpk" --pcap "$dir/big.pcap" --out "$dir/scores.csv")
echo "predict --pcap: ${psecs}s against ${secs}s for flows alone: $(awk -v s="$secs" -v p="$psecs" 'BEGIN { printf "%.2f", s / p }') x its speed"

if ! "$py" -c 'import nfstream' 2>/dev/null; then
  echo "skipped the references: nfstream is not importable by $py (set PYTHON=...)"
  exit 0
fi
ref=$("$py" benches/flows_reference.py "$dir/big.pcap")
echo "$ref"
theirs=$(echo "$ref" | grep -oE "^nfstream [0-9]+" | grep -oE "[0-9]+")
echo "packets/s: ours $ours_pps, nfstream $theirs, ratio $(awk -v o="$ours_pps" -v t="$theirs" 'BEGIN { printf "%.2f", o / t }')"
"$py" benches/flows_reference.py "$dir/small.pcap" --ours <("$bin" flows --pcap "$dir/small.pcap" -q)
cic=${CICFLOWMETER:-$(command -v cicflowmeter || true)}
if [ -n "$cic" ] && [ -x "$cic" ]; then
  # The Python cicflowmeter runs at a few thousand packets a second: a capture of its own size.
  "$bin" generate --pcap "$dir/cic.pcap" --flows $((flows / 30)) --seed 3 >/dev/null
  read -r csecs _ < <(measure "$bin" flows --pcap "$dir/cic.pcap" --out /dev/null)
  cpackets=$(grep -oE "[0-9]+ packets" "$dir/err" | head -1 | grep -oE "[0-9]+")
  start=$(date +%s.%N)
  timeout 3600 "$cic" -f "$dir/cic.pcap" -c "$dir/cic.csv" >/dev/null 2>&1 || echo "cicflowmeter failed or ran past an hour"
  end=$(date +%s.%N)
  if [ ! -s "$dir/cic.csv" ]; then
    echo "cicflowmeter wrote no flows (it needs libpcap, tcpdump and scapy 2.5.0)"
    exit 0
  fi
  awk -v p="$cpackets" -v a="$start" -v b="$end" -v s="$csecs" 'BEGIN {
    printf "on %d packets: cicflowmeter (Python) %d packets/s, ours %d packets/s, ratio %.1f\n",
      p, p / (b - a), p / s, (b - a) / s }'
fi
