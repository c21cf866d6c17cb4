#!/usr/bin/env python3
"""Reference for benches/trees.rs: scikit-learn's RandomForestClassifier on the same data
protocol.

  trees_reference.py [--rows 1000000] [--features 40] [--trees 100] [--reps 1] [--jobs 2]

Standard-normal float32 features; the label is whether x0 + x1*x2 + 0.5*noise > 0.5.
RandomForestClassifier(n_estimators=--trees, n_jobs=--jobs, random_state=42) fit on the first
80% of the rows, predict_proba on the rest. Median of --reps, rows/s, and the process's peak
RSS. Written for this benchmark, in the style of ../shared/peers.
"""
import argparse, resource, statistics, time

import numpy as np
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=40)
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    rng = np.random.default_rng(42)
    x = rng.standard_normal((a.rows, a.features), dtype=np.float32)
    noise = rng.standard_normal(a.rows, dtype=np.float32)
    y = (x[:, 0] + x[:, 1] * x[:, 2] + np.float32(0.5) * noise > 0.5).astype(np.int8)
    cut = a.rows * 4 // 5
    fit, predict = [], []
    for _ in range(a.reps):
        m = RandomForestClassifier(n_estimators=a.trees, n_jobs=a.jobs, random_state=42)
        t = time.perf_counter()
        m.fit(x[:cut], y[:cut])
        fit.append(cut / (time.perf_counter() - t))
        t = time.perf_counter()
        p = m.predict_proba(x[cut:])[:, 1]
        predict.append((a.rows - cut) / (time.perf_counter() - t))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"scikit-learn {sklearn.__version__} random forest, {a.trees} trees, fit on {cut} x {a.features}: "
          f"fit {statistics.median(fit):.0f} rows/s, predict {statistics.median(predict):.0f} rows/s, "
          f"ROC AUC {roc_auc_score(y[cut:], p):.4f}, peak RSS {rss} MiB")


if __name__ == "__main__":
    main()
