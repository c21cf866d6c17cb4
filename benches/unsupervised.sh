#!/usr/bin/env bash
# The unsupervised detectors against scikit-learn's (and a torch autoencoder), same data
# protocol, one run, as ratios.
#
#   bash benches/unsupervised.sh   ROWS=1000000; PYTHON=/path/to/python with scikit-learn and torch
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${ROWS:-1000000}
py=${PYTHON:-python3}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/anomaly-target}"
ours=$(cargo bench --quiet --bench unsupervised -- --rows "$rows" | tee /dev/stderr)
if ! "$py" -c 'import sklearn' 2>/dev/null; then
  echo "skipped the reference: scikit-learn is not importable by $py (set PYTHON=...)"
  exit 0
fi
ref=$("$py" benches/unsupervised_reference.py --rows "$rows" | tee /dev/stderr)
field() { echo "$1" | grep -oE "(^| )$2 [0-9]+ rows/s" | head -1 | grep -oE "[0-9]+" | head -1; }
for what in fit score lof svmfit svmscore aeepoch; do
  awk -v o="$(field "$ours" "$what")" -v r="$(field "$ref" "$what")" -v w="$what" \
    'BEGIN { printf "%s rows/s: ours %d, reference %d, ratio %.2f\n", w, o, r, o / r }'
done
