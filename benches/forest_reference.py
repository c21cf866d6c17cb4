#!/usr/bin/env python3
"""Reference for benches/forest.rs: scikit-learn's IsolationForest on the same data protocol.

  forest_reference.py [--rows 1000000] [--features 40] [--reps 3] [--jobs 2]

Standard-normal float32 features, 2% of the rows shifted by 4; IsolationForest(n_estimators=100,
max_samples=256, random_state=42, n_jobs=--jobs) fit on all rows, score_samples on all rows.
Median of --reps, rows/s. Written for this benchmark, in the style of ../shared/peers.
"""
import argparse, statistics, time

import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=40)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    rng = np.random.default_rng(42)
    y = (np.arange(a.rows) % 50 == 0).astype(np.int8)
    x = rng.standard_normal((a.rows, a.features), dtype=np.float32) + 4.0 * y[:, None]
    fit, score = [], []
    for _ in range(a.reps):
        f = IsolationForest(n_estimators=100, max_samples=256, random_state=42, n_jobs=a.jobs)
        t = time.perf_counter()
        f.fit(x)
        fit.append(a.rows / (time.perf_counter() - t))
        t = time.perf_counter()
        s = -f.score_samples(x)
        score.append(a.rows / (time.perf_counter() - t))
    print(f"scikit-learn {sklearn.__version__} isolation forest, {a.rows} x {a.features}: "
          f"fit {statistics.median(fit):.0f} rows/s, score {statistics.median(score):.0f} rows/s, "
          f"ROC AUC {roc_auc_score(y, s):.4f}")


if __name__ == "__main__":
    main()
