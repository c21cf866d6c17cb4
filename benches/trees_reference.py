#!/usr/bin/env python3
"""Reference for benches/trees.rs: scikit-learn's RandomForestClassifier on the same data
protocol.

  trees_reference.py [--rows 1000000] [--features 40] [--trees 100] [--reps 1] [--jobs 2]
  trees_reference.py --nsl-kdd ../shared/datasets [--trees 100]

Standard-normal float32 features; the label is whether x0 + x1*x2 + 0.5*noise > 0.5.
RandomForestClassifier(n_estimators=--trees, n_jobs=--jobs, random_state=42) fit on the first
80% of the rows, predict_proba on the rest. With --nsl-kdd DIR: fit on KDDTrain+ and predict
KDDTest+ as ../shared/peers/baselines.py encodes them (122 columns, normal vs attack), with
class_weight="balanced". Median of --reps, rows/s, and the process's peak RSS. Written for
this benchmark, in the style of ../shared/peers.
"""
import argparse, os, resource, statistics, sys, time

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
    ap.add_argument("--nsl-kdd", help="the folder holding KDDTrain+.txt.gz and KDDTest+.txt.gz")
    a = ap.parse_args()
    if a.nsl_kdd:
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.join(here, "..", "..", "shared", "peers"))
        import common
        s = common.load_nslkdd(os.path.join(a.nsl_kdd, "KDDTrain+.txt.gz"),
                               os.path.join(a.nsl_kdd, "KDDTest+.txt.gz"))
        xf, yf = s.X_train.astype(np.float32), s.y_train
        xh, yh = s.X_test.astype(np.float32), s.y_test
        name, balance = f"NSL-KDD, fit on {len(yf)} x {xf.shape[1]}", "balanced"
    else:
        rng = np.random.default_rng(42)
        x = rng.standard_normal((a.rows, a.features), dtype=np.float32)
        noise = rng.standard_normal(a.rows, dtype=np.float32)
        y = (x[:, 0] + x[:, 1] * x[:, 2] + np.float32(0.5) * noise > 0.5).astype(np.int8)
        cut = a.rows * 4 // 5
        xf, yf, xh, yh = x[:cut], y[:cut], x[cut:], y[cut:]
        name, balance = f"fit on {cut} x {a.features}", None
    fit, predict = [], []
    for _ in range(a.reps):
        m = RandomForestClassifier(n_estimators=a.trees, n_jobs=a.jobs, random_state=42,
                                   class_weight=balance)
        t = time.perf_counter()
        m.fit(xf, yf)
        fit.append(len(yf) / (time.perf_counter() - t))
        t = time.perf_counter()
        p = m.predict_proba(xh)[:, 1]
        predict.append(len(yh) / (time.perf_counter() - t))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"scikit-learn {sklearn.__version__} random forest, {a.trees} trees, {name}: "
          f"fit {statistics.median(fit):.0f} rows/s, predict {statistics.median(predict):.0f} rows/s, "
          f"ROC AUC {roc_auc_score(yh, p):.4f}, peak RSS {rss} MiB")


if __name__ == "__main__":
    main()
