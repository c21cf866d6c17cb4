#!/usr/bin/env bash
# anomaly's benchmark and the PyTorch/pandas reference (../shared/peers) back to back on this
# machine, on the same data sizes, then each figure as ours / reference.
#
#   bash benches/compare.sh            ROWS=1000000 by default; PYTHON=/path/to/python with
#                                      torch and pandas installed for the reference side
#
#                                      DATASETS=folder with embedded.csv (../shared/datasets)
#
# Without torch, the PyTorch figures come from ../shared/peers/RESULTS.md (not rerun, and said
# so); without pandas that part is skipped with a message. Where torch sees a CUDA GPU, the GPU
# part runs too: our trainer loop and inference on GPU_DEVICE (gpu: wgpu, the default build;
# cuda: needs FEATURES=cuda) beside ../shared/peers/bench_mlp_gpu.py on CUDA, and PyTorch on
# all CPU cores beside our CPU figures (which use every core). The end-to-end figure times
# `anomaly train` + `test` on embedded.csv against the reference pipeline's times in RESULTS.md.
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

echo "== end to end: anomaly train + test on embedded.csv with the reference's settings"
embedded=${DATASETS:-../shared/datasets}/embedded.csv
if [ -f "$embedded" ]; then
  cargo build --release --quiet
  bin=$CARGO_TARGET_DIR/release/anomaly
  outs=(--set "data.path=$embedded" --set "checkpoint.save_dir=$work/e2e"
        --set "logging.tensorboard_dir=$work/runs" --set "logging.log_dir=$work/logs")
  for rep in 1 2 3; do
    start=$(date +%s.%N)
    "$bin" train --config configs/embedded.yaml "${outs[@]}" >/dev/null 2>&1
    "$bin" test --config configs/embedded.yaml "${outs[@]}" --checkpoint "$work/e2e/best.mpk" >/dev/null 2>&1
    end=$(date +%s.%N)
    echo "$start $end" | awk '{ printf "%.3f\n", $2 - $1 }' | tee -a "$work/e2e.txt"
  done
else
  echo "skipped: $embedded not found (set DATASETS=... to the folder that holds it)"
fi

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

echo "== GPU, and PyTorch on every CPU core"
if "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null \
    && [ -f "$peers/bench_mlp_gpu.py" ]; then
  gpu_batches=1024,4096,16384,65536
  cargo bench --quiet --bench throughput ${FEATURES:+--features "$FEATURES"} -- \
    --device "${GPU_DEVICE:-gpu}" --rows "$rows" --skip-csv --skip-scaling \
    --batches "$gpu_batches" --json "$work/ours_gpu.json"
  "$py" "$peers/bench_mlp_gpu.py" --device cuda --rows "$rows" --batches "$gpu_batches" \
    --json "$work/torch_gpu.json"
  "$py" "$peers/bench_mlp_gpu.py" --device cpu --threads "$(nproc)" --rows "$rows" \
    --batches 64,256,1024,4096 --samples 262144 --json "$work/torch_cpu_all.json"
else
  echo "skipped: $py has no torch with a CUDA GPU"
fi

echo "== ours / reference (above 1.0: anomaly is faster; for memory, the ratio to the f32 matrix)"
PEERS=$peers python3 - "$work" <<'PY'
import json, os, re, sys
work = sys.argv[1]
ours = json.load(open(os.path.join(work, "ours.json")))
torch = json.load(open(os.path.join(work, "torch.json"))) if os.path.exists(os.path.join(work, "torch.json")) else None
pandas = open(os.path.join(work, "pandas.txt")).read() if os.path.exists(os.path.join(work, "pandas.txt")) else None
rows = []
results_md = os.path.join(os.environ["PEERS"], "RESULTS.md")
results_md = open(results_md).read() if os.path.exists(results_md) else ""
if torch:
    ref_train = {r["batch"]: r["samples_per_s"] for r in torch["train"]
                 if r.get("mode", "tensor") == "tensor" and r.get("threads", 2) == 2}
    ref_inf = next((r["samples_per_s"] for r in torch["infer"] if r.get("threads", 2) == 2), None)
    source = "PyTorch, this run"
else:
    # Without torch here, the figures RESULTS.md recorded for 2 threads on the reference machine.
    m = re.search(r"^\| 2 \| tensor: samples/s[^|]*\|(.*)$", results_md, re.M)
    cells = [re.sub(r"[*,]|\(.*", "", c).strip() for c in m.group(1).split("|")[:4]] if m else []
    ref_train = dict(zip([64, 256, 1024, 4096], map(float, cells)))
    m = re.search(r"^\| batch 4096, full pass[^|]*\| \**([\d,]+)", results_md, re.M)
    ref_inf = float(m.group(1).replace(",", "")) if m else None
    source = "PyTorch, from ../shared/peers/RESULTS.md (not rerun)" if ref_train else None
if source:
    print(f"training and inference reference: {source}")
for r in ours["train"]:
    rows.append((f"train samples/s, batch {r['batch']}", r["samples_per_s"], ref_train.get(r["batch"])))
rows.append((f"inference samples/s, batch 4096 (ours: {ours['infer'][0]['batch']})", ours["infer"][0]["samples_per_s"], ref_inf))
rows.append(("test path rows/s (read+encode+predict+metrics)", ours["test_path_rows_per_s"], None))
pandas_rows = None
if pandas:
    m = re.search(r"= ([\d,]+) rows/s", pandas)
    pandas_rows = float(m.group(1).replace(",", "")) if m else None
def reference_wall(command):
    """The median quiet wall time of a command in RESULTS.md's reference-pipeline table."""
    for line in results_md.splitlines():
        if line.startswith(f"| `{command}` (×3)"):
            return sorted(float(v) for v in line.split("|")[3].split("/"))[1]
e2e = os.path.join(work, "e2e.txt")
if os.path.exists(e2e):
    ours_s = sorted(float(v) for v in open(e2e).read().split())[1]
    train_s = reference_wall("python train.py --config config.yaml")
    test_s = reference_wall("python test.py --config config.yaml --checkpoint checkpoints/best_model.pt")
    ref_s = train_s + test_s if train_s and test_s else None
    # A time: the ratio is reference / ours, so above 1.0 still means anomaly is faster.
    rows.append(("train+test wall s, embedded.csv (ratio = ref/ours)", ours_s, ref_s, True))
for r in ours.get("scaling", []):
    print(f"epoch at {r['rows']:>9,} rows: {r['epoch_s']:7.2f} s ({r['off_linear']*100:+.1f}% per row from linear)")
if "csv_plain" in ours:
    rows.append(("CSV rows/s, plain", ours["csv_plain"]["rows_per_s"], pandas_rows))
    rows.append(("CSV rows/s, gzip", ours["csv_gzip"]["rows_per_s"], None))
    rows.append(("CSV MB/s, plain", ours["csv_plain"]["mb_per_s"], None))
w = max(len(r[0]) for r in rows)
print(f"{'figure':<{w}} {'ours':>14} {'reference':>14} {'ratio':>7}")
for name, o, ref, *seconds in rows:
    ratio = f"{(ref / o if seconds else o / ref):7.2f}" if ref else "      -"
    fmt = "14,.2f" if seconds else "14,.0f"
    refs = f"{ref:{fmt}}" if ref else f"{'-':>14}"
    print(f"{name:<{w}} {o:{fmt}} {refs} {ratio}")
def load(name):
    path = os.path.join(work, name)
    return json.load(open(path)) if os.path.exists(path) else None
ours_gpu, torch_gpu, torch_cpu_all = load("ours_gpu.json"), load("torch_gpu.json"), load("torch_cpu_all.json")
if ours_gpu and torch_gpu:
    print(f"GPU: ours on {ours_gpu.get('device', '?')}, PyTorch on {torch_gpu.get('gpu', 'cuda')}")
    for r in ours_gpu["train"]:
        ref = torch_gpu["train"].get(str(r["batch"]))
        print(f"  train samples/s, batch {r['batch']:>6}: {r['samples_per_s']:14,.0f} {ref or 0:14,.0f} {r['samples_per_s'] / ref if ref else 0:7.2f}")
    inf = ours_gpu["infer"][0]
    ref = torch_gpu["infer"].get(str(inf["batch"]))
    print(f"  inference samples/s, batch {inf['batch']}: {inf['samples_per_s']:14,.0f} {ref or 0:14,.0f} {inf['samples_per_s'] / ref if ref else 0:7.2f}")
    if "first_pass" in ours_gpu:
        print(f"  first-pass overhead (compilation, tuning, upload): {ours_gpu['first_pass'].get('overhead_s', float('nan')):.2f} s")
if torch_cpu_all:
    print(f"CPU, all {torch_cpu_all['threads']} threads: ours (every core) / PyTorch")
    for r in ours["train"]:
        ref = torch_cpu_all["train"].get(str(r["batch"]))
        if ref:
            print(f"  train samples/s, batch {r['batch']:>6}: {r['samples_per_s']:14,.0f} {ref:14,.0f} {r['samples_per_s'] / ref:7.2f}")
if "load_peak_rss_mib" in ours:
    print(f"peak RSS loading the CSV: {ours['load_peak_rss_mib']:.0f} MiB = "
          f"{ours['load_peak_rss_mib'] / ours['load_matrix_mib']:.2f} x the f32 matrix + labels "
          f"({ours['load_matrix_mib']:.0f} MiB)")
PY
