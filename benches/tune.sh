#!/usr/bin/env bash
# `anomaly tune` against Optuna's TPE (benches/tune_reference.py) on NSL-KDD's KDDTrain+ only:
# the same space and budget, 3-fold cv, one after the other on this machine; the best
# validation objective and the wall time of each, as a ratio: the search alone on both sides
# (ours reading the data included; the reference's after it has loaded and encoded); ours
# also prints its total with `--aggregate`'s training of the best configuration and its one
# evaluation on KDDTest+, which the reference does not do. Ours runs JOBS trials at once (a
# trial of these models keeps about one core busy), each seeing every trial but the JOBS - 1
# before it (--lag JOBS); the reference runs as Optuna is usually run, one trial at a time
# (PyTorch and XGBoost each with 2 threads).
#
#   NSL_KDD=../shared/datasets FAMILY=mlp|gradient_boosting TRIALS=50 SEED=42 JOBS=2 \
#     PYTHON=/path/to/python (optuna, torch, xgboost, scikit-learn, pandas) [KEEP=dir] \
#     bash benches/tune.sh
set -euo pipefail
cd "$(dirname "$0")/.."
family=${FAMILY:-mlp}
trials=${TRIALS:-50}
seed=${SEED:-42}
jobs=${JOBS:-2}
data=${NSL_KDD:-../shared/datasets}
py=${PYTHON:-python3}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/anomaly-target}"
if [ ! -e "$data/KDDTrain+.txt" ] && [ ! -e "$data/KDDTrain+.txt.gz" ]; then
  echo "skipped: no KDDTrain+.txt(.gz) in $data (set NSL_KDD=...)"
  exit 0
fi
cargo build --release --quiet
# KEEP=DIR keeps the search's folder (trials, best.yaml, the test report) and logs there.
if [ -n "${KEEP:-}" ]; then
  work=$KEEP
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
train=$(ls "$data"/KDDTrain+.txt* | head -1)
test=$(ls "$data"/KDDTest+.txt* | head -1)
space=configs/tune/$family.yaml
[ "$family" = gradient_boosting ] && space=configs/tune/gradient-boosting.yaml
start=$(date +%s.%N)
"$CARGO_TARGET_DIR/release/anomaly" tune --config configs/nsl-kdd.yaml \
  --set "data.path=$train" --set "data.test_path=$test" --set "model.kind=$family" \
  --set "training.seed=$seed" --space "$space" --cv 3 --trials "$trials" --jobs "$jobs" --lag "$jobs" \
  --out "$work/ours" > "$work/ours.log"
total=$(echo "$(date +%s.%N) - $start" | bc)
# The search's own time (reading the data and every trial), as the reference's; the total
# adds --aggregate's training of the best on all rows and its one test.
ours_wall=$(sed -n 's/^search: \([0-9.]*\) s$/\1/p' "$work/ours.log")
ours_best=$(sed -n 2p "$work/ours/trials.csv" | cut -d, -f4)
pruned=$(grep -c ',pruned,' "$work/ours/trials.csv" || true)
echo "ours: best validation roc_auc $ours_best, search $ours_wall s ($pruned pruned), total $total s"
if ! "$py" -c 'import optuna, sklearn, pandas' 2>/dev/null; then
  echo "skipped the reference: optuna/scikit-learn/pandas not importable by $py (set PYTHON=...)"
  exit 0
fi
ref=$("$py" benches/tune_reference.py --family "$family" --nsl-kdd "$data" --trials "$trials" \
  --seed "$seed" --pruner "$([ "$family" = mlp ] && echo median || echo none)" | tee "$work/optuna.log" | tail -1)
echo "optuna: $ref"
ref_best=$(echo "$ref" | awk '{print $2}')
ref_wall=$(echo "$ref" | awk '{print $4}')
awk -v o="$ours_best" -v r="$ref_best" -v ow="$ours_wall" -v rw="$ref_wall" 'BEGIN {
  printf "best validation roc_auc: ours %.5f, optuna %.5f (difference %+.5f)\n", o, r, o - r
  printf "wall s: ours %.0f, optuna %.0f, ratio %.2f (optuna / ours)\n", ow, rw, rw / ow }'
