#!/usr/bin/env python3
"""Reference for benches/forest.rs: scikit-learn's IsolationForest and LocalOutlierFactor on
the same data protocol.

  forest_reference.py [--rows 1000000] [--features 40] [--reps 3] [--jobs 2] [--lof-rows 100000]

Standard-normal float32 features, 2% of the rows shifted by 4; IsolationForest(n_estimators=100,
max_samples=256, random_state=42, n_jobs=--jobs) fit on all rows, score_samples on all rows;
LocalOutlierFactor(n_neighbors=20, novelty=True, n_jobs=--jobs) fit on the first 20,000 rows,
score_samples on the first --lof-rows rows. Median of --reps, rows/s. Written for this
benchmark, in the style of ../shared/peers.
"""
import argparse, statistics, time

import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import LocalOutlierFactor


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=40)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--lof-rows", type=int, default=100_000)
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
    lof = LocalOutlierFactor(n_neighbors=20, novelty=True, n_jobs=a.jobs).fit(x[:20_000])
    q, rates = x[:a.lof_rows], []
    for _ in range(a.reps):
        t = time.perf_counter()
        s = -lof.score_samples(q)
        rates.append(len(q) / (time.perf_counter() - t))
    print(f"scikit-learn lof, {len(q)} x {a.features} scored against 20000: "
          f"lof {statistics.median(rates):.0f} rows/s, ROC AUC {roc_auc_score(y[:len(q)], s):.4f}")


if __name__ == "__main__":
    main()
