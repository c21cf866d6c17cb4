#!/usr/bin/env python3
"""Reference for benches/unsupervised.rs: scikit-learn's IsolationForest, LocalOutlierFactor
and OneClassSVM, and a torch autoencoder, on the same data protocol.

  unsupervised_reference.py [--rows 1000000] [--features 40] [--reps 3] [--jobs 2]
      [--lof-rows 100000] [--svm-rows 100000] [--ae-rows 200000]

Standard-normal float32 features, 2% of the rows shifted by 4; IsolationForest(n_estimators=100,
max_samples=256, random_state=42, n_jobs=--jobs) fit on all rows, score_samples on all rows;
LocalOutlierFactor(n_neighbors=20, novelty=True, n_jobs=--jobs) fit on the first 20,000 rows,
score_samples on the first --lof-rows rows; OneClassSVM(nu=0.1, gamma='scale') fit on the first
10,000 rows, score_samples on the first --svm-rows rows; the autoencoder of
../shared/peers/baselines_unsupervised.py (d-64-32-16-8-16-32-64-d, ReLU, MSE, Adam 1e-3),
one epoch at batch 256 over the first --ae-rows rows, torch on --jobs threads. Median of
--reps, rows/s. Written for this benchmark, in the style of ../shared/peers.
"""
import argparse, statistics, time

import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import LocalOutlierFactor
from sklearn.svm import OneClassSVM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=40)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--lof-rows", type=int, default=100_000)
    ap.add_argument("--svm-rows", type=int, default=100_000)
    ap.add_argument("--ae-rows", type=int, default=200_000)
    a = ap.parse_args()
    rng = np.random.default_rng(42)
    y = (np.arange(a.rows) % 50 == 0).astype(np.int8)
    x = rng.standard_normal((a.rows, a.features), dtype=np.float32) + np.float32(4.0) * y[:, None]
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
    q, fit, score = x[:a.svm_rows], [], []
    for _ in range(a.reps):
        t = time.perf_counter()
        svm = OneClassSVM(nu=0.1, gamma="scale").fit(x[:10_000])
        fit.append(10_000 / (time.perf_counter() - t))
        t = time.perf_counter()
        s = -svm.score_samples(q)
        score.append(len(q) / (time.perf_counter() - t))
    print(f"scikit-learn one-class svm, fit on 10000, {len(q)} x {a.features} scored: "
          f"svmfit {statistics.median(fit):.0f} rows/s, svmscore {statistics.median(score):.0f} rows/s, "
          f"ROC AUC {roc_auc_score(y[:len(q)], s):.4f}")
    autoencoder_epoch(x[:a.ae_rows], a.reps, a.jobs)


def autoencoder_epoch(x, reps, jobs):
    try:
        import torch
    except ImportError:
        print("torch autoencoder: skipped (torch is not importable)")
        return
    torch.set_num_threads(jobs)
    torch.manual_seed(42)
    dims = [x.shape[1], 64, 32, 16, 8, 16, 32, 64, x.shape[1]]
    layers = []
    for a, b in zip(dims, dims[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    m = torch.nn.Sequential(*layers[:-1])
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    xt = torch.from_numpy(x)
    rates = []
    for _ in range(reps):
        t = time.perf_counter()
        for i in range(0, len(xt), 256):
            xb = xt[i:i + 256]
            opt.zero_grad()
            ((m(xb) - xb) ** 2).mean().backward()
            opt.step()
        rates.append(len(xt) / (time.perf_counter() - t))
    print(f"torch {torch.__version__} autoencoder, {len(xt)} x {x.shape[1]}, batch 256: "
          f"aeepoch {statistics.median(rates):.0f} rows/s")


if __name__ == "__main__":
    main()
