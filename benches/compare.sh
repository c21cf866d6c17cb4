#!/usr/bin/env bash
# anomaly's benchmark and the PyTorch/pandas reference (../shared/peers) back to back on this
# machine, on the same data sizes, then each figure as ours / reference.
#
#   bash benches/compare.sh            ROWS=1000000 by default; PYTHON=/path/to/python with
#                                      torch and pandas installed for the reference side
#
# Without torch or pandas the reference part is skipped with a message and only ours is shown.
# Run it on a quiet machine: other jobs on a 2-core box distort both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${ROWS:-1000000}
peers=${PEERS:-../shared/peers}
py=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/anomaly-target}"

echo "== anomaly"
cargo bench --quiet --bench throughput -- --rows "$rows" --csv-rows "$rows" \
  --json "$work/ours.json" --csv-out "$work/flows.csv"

echo "== reference"
if "$py" -c 'import torch' 2>/dev/null && [ -f "$peers/bench_mlp_throughput.py" ]; then
  "$py" "$peers/bench_mlp_throughput.py" --rows "$rows" --threads 2 --no-dataloader --json "$work/torch.json"
else
  echo "skipped PyTorch: not importable by $py (set PYTHON=... to an interpreter with torch)"
fi
if "$py" -c 'import pandas, numpy' 2>/dev/null && [ -f "$peers/bench_csv_load.py" ]; then
  "$py" "$peers/bench_csv_load.py" "$work/flows.csv" --label Label | tee "$work/pandas.txt"
else
  echo "skipped pandas: not importable by $py"
fi

echo "== ours / reference (above 1.0: anomaly is faster; for memory, the ratio to the f32 matrix)"
python3 - "$work" <<'PY'
import json, os, re, sys
work = sys.argv[1]
ours = json.load(open(os.path.join(work, "ours.json")))
torch = json.load(open(os.path.join(work, "torch.json"))) if os.path.exists(os.path.join(work, "torch.json")) else None
pandas = open(os.path.join(work, "pandas.txt")).read() if os.path.exists(os.path.join(work, "pandas.txt")) else None
rows = []
def ref_train(b):
    if not torch: return None
    for r in torch["train"]:
        if r.get("batch") == b and r.get("mode", "tensor") == "tensor" and r.get("threads", 2) == 2:
            return r["samples_per_s"]
for r in ours["train"]:
    rows.append((f"train samples/s, batch {r['batch']}", r["samples_per_s"], ref_train(r["batch"])))
ref_inf = next((r["samples_per_s"] for r in torch["infer"] if r.get("threads", 2) == 2), None) if torch else None
rows.append(("inference samples/s, batch 4096", ours["infer"][0]["samples_per_s"], ref_inf))
rows.append(("test path rows/s (read+encode+predict+metrics)", ours["test_path_rows_per_s"], None))
pandas_rows = None
if pandas:
    m = re.search(r"= ([\d,]+) rows/s", pandas)
    pandas_rows = float(m.group(1).replace(",", "")) if m else None
if "csv_plain" in ours:
    rows.append(("CSV rows/s, plain", ours["csv_plain"]["rows_per_s"], pandas_rows))
    rows.append(("CSV rows/s, gzip", ours["csv_gzip"]["rows_per_s"], None))
    rows.append(("CSV MB/s, plain", ours["csv_plain"]["mb_per_s"], None))
w = max(len(r[0]) for r in rows)
print(f"{'figure':<{w}} {'ours':>14} {'reference':>14} {'ratio':>7}")
for name, o, ref in rows:
    ratio = f"{o / ref:7.2f}" if ref else "      -"
    refs = f"{ref:14,.0f}" if ref else f"{'-':>14}"
    print(f"{name:<{w}} {o:14,.0f} {refs} {ratio}")
if "load_peak_rss_mib" in ours:
    print(f"peak RSS loading the CSV: {ours['load_peak_rss_mib']:.0f} MiB = "
          f"{ours['load_peak_rss_mib'] / ours['load_matrix_mib']:.2f} x the f32 matrix + labels "
          f"({ours['load_matrix_mib']:.0f} MiB)")
PY
