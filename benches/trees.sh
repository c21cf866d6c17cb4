#!/usr/bin/env bash
# The random forest against scikit-learn's, same data protocol, one run, as ratios.
#
#   bash benches/trees.sh        ROWS=1000000 TREES=100; PYTHON=/path/to/python with scikit-learn
#   NSL_KDD=../shared/datasets bash benches/trees.sh    KDDTrain+ -> KDDTest+ instead
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${ROWS:-1000000}
trees=${TREES:-100}
py=${PYTHON:-python3}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/anomaly-target}"
data=(--rows "$rows")
if [ -n "${NSL_KDD:-}" ]; then data=(--nsl-kdd "$NSL_KDD"); fi
ours=$(cargo bench --quiet --bench trees -- "${data[@]}" --trees "$trees")
echo "$ours"
if ! "$py" -c 'import sklearn' 2>/dev/null; then
  echo "skipped the reference: scikit-learn is not importable by $py (set PYTHON=...)"
  exit 0
fi
ref=$("$py" benches/trees_reference.py "${data[@]}" --trees "$trees")
echo "$ref"
field() { echo "$1" | grep -oE "(^| )$2 [0-9]+ $3" | head -1 | grep -oE "[0-9]+" | head -1; }
for what in fit predict; do
  awk -v o="$(field "$ours" "$what" rows/s)" -v r="$(field "$ref" "$what" rows/s)" -v w="$what" \
    'BEGIN { printf "%s rows/s: ours %d, scikit-learn %d, ratio %.2f\n", w, o, r, o / r }'
done
awk -v o="$(field "$ours" RSS MiB)" -v r="$(field "$ref" RSS MiB)" \
  'BEGIN { printf "peak RSS MiB: ours %d, scikit-learn %d, ratio %.2f\n", o, r, o / r }'
