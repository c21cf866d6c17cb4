#!/usr/bin/env bash
# `anomaly drift` against evidently's data-drift report (benches/drift_reference.py) on the
# same files in the same run: a reference of 100,000 rows and ROWS new rows (default
# 1,000,000) of 80 numeric columns, the first four drifted (mean shift, wider spread, a
# log-normal tail, a share of zeros). Prints both times, their ratio, and the columns each
# flags at PSI 0.1.
#
#   PYTHON=/path/to/python bash benches/drift.sh   # a Python with pandas, numpy and evidently
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${ROWS:-1000000}
py=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/anomaly-target}"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
fi
bin=${BIN:-$CARGO_TARGET_DIR/release/anomaly}

"$py" - "$work" "$rows" <<'PY'
import sys
import numpy as np
import pandas as pd
work, rows = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(7)
cols = [f"c{i}" for i in range(80)]
def frame(n, drift):
    x = rng.standard_normal((n, 80)).astype(np.float32)
    if drift:
        x[:, 0] += 1.0
        x[:, 1] *= 2.0
        x[:, 2] = np.exp(x[:, 2])
        x[rng.random(n) < 0.3, 3] = 0.0
    return pd.DataFrame(x, columns=cols)
frame(100_000, False).to_csv(f"{work}/reference.csv", index=False, float_format="%.5f")
frame(rows, True).to_csv(f"{work}/new.csv", index=False, float_format="%.5f")
PY
echo "== data: 100000 reference rows, $rows new rows, 80 columns ($(du -h "$work/new.csv" | cut -f1))"
"$bin" train --quiet --device cpu --set "data.path=$work/reference.csv" \
  --set model.kind=isolation_forest --set training.fit_on=all \
  --set "checkpoint.save_dir=$work/ck" --set "logging.tensorboard_dir=$work/runs" \
  --set "logging.log_dir=$work/logs" >/dev/null

echo "== anomaly drift (median of 3)"
times=()
for _ in 1 2 3; do
  start=$(date +%s.%N)
  "$bin" drift --checkpoint "$work/ck/best.mpk" --data "$work/new.csv" --json --quiet \
    > "$work/ours.json"
  times+=("$(echo "$(date +%s.%N) - $start" | bc)")
done
ours=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)
echo "anomaly: median ${ours} s"
"$py" -c 'import json,sys; r=json.load(open(sys.argv[1])); print("anomaly PSI >= 0.1:", sorted(c["column"] for c in r["columns"] if c["psi"] >= 0.1))' "$work/ours.json"

echo "== evidently"
"$py" benches/drift_reference.py "$work/reference.csv" "$work/new.csv" --json "$work/ref.json"
"$py" - "$work/ref.json" "$ours" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); ours = float(sys.argv[2])
for name in ("default", "psi"):
    print(f"ratio (evidently {name} / anomaly): {r[name]['seconds'] / ours:.2f}")
PY
