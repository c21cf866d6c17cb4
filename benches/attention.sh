#!/usr/bin/env bash
# The CNN+LSTM's attention head against its `last` head on `generate --sequences` data (train
# on 12,000 flows of 12 hosts, test on another 6,000; default network, L = 32, 10 epochs,
# seeds 1-3): ROC AUC on the other file per seed and the mean. Then where each attention model
# looks (benches/attention_steps.py): on attack windows that straddle an episode's start, how
# often the heaviest step covers attack flows only, against chance. Target: the attention
# head's mean at least the last head's; the heaviest step above chance.
#
#   bash benches/attention.sh        SEEDS="1 2 3" EPOCHS=10
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${SEEDS:-1 2 3}
epochs=${EPOCHS:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/anomaly-target}"
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/anomaly
gen() { "$bin" generate --sequences --anomaly-ratio 0.2 --rows "$1" --hosts 12 --seed "$2" --out "$3" >/dev/null; }
gen 12000 1 "$work/train.csv"
gen 6000 2 "$work/other.csv"
for head in last attention; do
  total=0
  for seed in $seeds; do
    ck=$work/$head-$seed
    "$bin" train --quiet --set "data.path=$work/train.csv" --set model.kind=cnn_lstm \
      --set "model.cnn_lstm.head=$head" --set sequence.order_by=timestamp \
      --set sequence.group_by=src_host --set "training.epochs=$epochs" --set training.grad_clip=5.0 \
      --set "training.seed=$seed" --set "checkpoint.save_dir=$ck" \
      --set "logging.tensorboard_dir=$work/runs" --set "logging.log_dir=$work/logs" >/dev/null
    auc=$("$bin" test --checkpoint "$ck/best.mpk" --data "$work/other.csv" --no-write --json \
      | python3 -c 'import json, sys; print(json.load(sys.stdin)["metrics"]["roc_auc"])')
    echo "$head seed $seed ROC AUC $auc"
    total=$(awk -v t="$total" -v a="$auc" 'BEGIN { print t + a }')
    if [ "$head" = attention ]; then
      "$bin" predict --quiet --checkpoint "$ck/best.mpk" --data "$work/other.csv" \
        --keep src_host --threshold 0 --explain 1 --out "$work/steps-$seed.csv"
      python3 benches/attention_steps.py "$work/other.csv" "$work/steps-$seed.csv"
    fi
  done
  awk -v t="$total" -v n="$(echo $seeds | wc -w)" -v h="$head" 'BEGIN { printf "%s mean ROC AUC %.4f\n", h, t / n }'
done
