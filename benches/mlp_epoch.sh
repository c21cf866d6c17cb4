#!/usr/bin/env bash
# One training epoch of the MLPs `anomaly tune --space configs/tune/mlp.yaml` searches, at a cv
# fold's size of NSL-KDD's KDDTrain+ (about 84,000 training rows, then the validation pass over
# 42,000), ours against PyTorch (benches/mlp_epoch_reference.py), each pinned to one core, one
# after the other, as ratios. Both searches of benches/tune.sh train these networks epoch after
# epoch, so this ratio bounds theirs. Ours: `anomaly train` for 6 epochs less the same for 1
# (reading and encoding the data cancel), over 5; dropout 0.2 as the reference.
#
#   NSL_KDD=../shared/datasets PYTHON=/path/to/python (torch, scikit-learn, pandas) \
#     bash benches/mlp_epoch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
data=${NSL_KDD:-../shared/datasets}
py=${PYTHON:-python3}
configs=(256,128:128 256,128:512 64,32:128 64,32:512)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/anomaly-target}"
if [ ! -e "$data/KDDTrain+.txt" ] && [ ! -e "$data/KDDTrain+.txt.gz" ]; then
  echo "skipped: no KDDTrain+.txt(.gz) in $data (set NSL_KDD=...)"
  exit 0
fi
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
train=$(ls "$data"/KDDTrain+.txt* | head -1)
seconds() {
  local start
  start=$(date +%s.%N)
  RAYON_NUM_THREADS=1 "${pin[@]}" "$CARGO_TARGET_DIR/release/anomaly" train --config configs/nsl-kdd.yaml \
    --set "data.path=$train" --set data.test_path=null --set data.val_size=0.3333 \
    --set model.dropout=0.2 --set training.early_stopping.patience=100 \
    --set "model.hidden_dims=[$1]" --set "training.batch_size=$2" --set "training.epochs=$3" \
    --set "checkpoint.save_dir=$work/ck" --quiet > /dev/null
  echo "$(date +%s.%N) - $start" | bc
}
for c in "${configs[@]}"; do
  hidden=${c%:*} batch=${c#*:}
  one=$(seconds "$hidden" "$batch" 1)
  six=$(seconds "$hidden" "$batch" 6)
  echo "$hidden $batch $(echo "($six - $one) / 5" | bc -l)" >> "$work/ours"
done
if ! "$py" -c 'import torch, sklearn, pandas, optuna' 2>/dev/null; then
  echo "skipped the reference: torch/scikit-learn/pandas/optuna not importable by $py (set PYTHON=...)"
  cat "$work/ours"
  exit 0
fi
(cd benches && "${pin[@]}" "$py" mlp_epoch_reference.py --nsl-kdd "$(cd .. && realpath "$data")" \
  --configs "${configs[@]}") > "$work/torch"
echo "hidden batch | ours s | PyTorch s | PyTorch / ours"
paste -d' ' "$work/ours" "$work/torch" | awk '{ printf "[%s] %s | %.3f | %.3f | %.2f\n", $1, $2, $3, $6, $6 / $3 }'
