#!/usr/bin/env python3
"""Reference for `anomaly predict`: the Python way of scoring a flow CSV with the default MLP.

  predict_reference.py FILE --out scores.csv [--label label] [--threads 2] [--repeat 3]

pandas.read_csv (C engine) -> the same preprocessing in NumPy (booleans to 0/1, missing and
non-finite cells to the column median, standard scaling) -> the PyTorch forward pass of
Linear(17,128)-ReLU-Linear(128,64)-ReLU-Linear(64,32)-ReLU-Linear(32,1) + sigmoid in
model.eval() / inference_mode, batches of 4096 -> a DataFrame of row, score, is_anomaly ->
DataFrame.to_csv. Weights are seeded random (speed does not depend on them); the scaling
statistics are computed from the file itself (a trained pipeline would load them: the same
work per row). Prints rows/s end to end (median of --repeat runs in one process) and the peak
RSS. Written for this benchmark, in the style of ../shared/peers.
"""
import argparse, resource, statistics, sys, time

import numpy as np
import pandas as pd
import torch
from torch import nn


def model(n_features):
    torch.manual_seed(0)
    layers, width = [], n_features
    for h in (128, 64, 32):
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers).eval()


def run(path, out, label, net_cache):
    df = pd.read_csv(path, engine="c", low_memory=False)
    df.columns = [c.strip() for c in df.columns]
    df = df.drop(columns=[label], errors="ignore")
    for c in df.columns:
        if df[c].dtype == object:  # True/False columns with gaps; read_csv makes the rest bool
            df[c] = df[c].str.strip().str.lower().map({"true": 1.0, "false": 0.0})
    x = df.to_numpy(np.float32)
    x[~np.isfinite(x)] = np.nan
    median = np.nanmedian(x, axis=0)
    x = np.where(np.isnan(x), median, x)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    x = ((x - mean) / std).astype(np.float32)
    net = net_cache.setdefault("net", model(x.shape[1]))
    scores = np.empty(len(x), np.float32)
    with torch.inference_mode():
        for i in range(0, len(x), 4096):
            scores[i:i + 4096] = torch.sigmoid(net(torch.from_numpy(x[i:i + 4096]))).numpy()[:, 0]
    pd.DataFrame({"row": np.arange(1, len(x) + 1), "score": scores,
                  "is_anomaly": scores >= 0.5}).to_csv(out, index=False)
    return len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--out", required=True)
    ap.add_argument("--label", default="label")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cache, times = {}, []
    for _ in range(a.repeat):
        t = time.perf_counter()
        rows = run(a.file, a.out, a.label, cache)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"pandas {pd.__version__} + torch {torch.__version__}: {rows} rows, median {med:.3f} s "
          f"= {rows / med:,.0f} rows/s, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
