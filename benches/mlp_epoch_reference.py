"""One training epoch of the MLPs configs/tune/mlp.yaml searches, in PyTorch, at a cv fold's
size of KDDTrain+ (the first of tune_reference.py's 3 stratified folds, encoded as there): per
architecture and batch size, the fastest of 3 epochs, each a pass of Adam steps over the
shuffled training rows (Linear → ReLU → Dropout(0.2) per hidden layer, balanced class weights)
then the validation rows' forward pass, loss and softmax, as tune_reference.py's epochs.

Prints `<hidden> <batch> <seconds>` per line. Written for benches/mlp_epoch.sh.
"""
import argparse
import time

import torch
from sklearn.model_selection import StratifiedKFold
from torch import nn

import tune_reference as ref


def epoch_seconds(hidden, batch, xt, yt, xv, yv, weights):
    torch.manual_seed(0)
    layers, width = [], xt.shape[1]
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(0.2)]
        width = h
    model = nn.Sequential(*layers, nn.Linear(width, len(ref.CLASSES)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(yt))
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            logits = model(xv)
            loss_fn(logits, yv).item()
            torch.softmax(logits, 1)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nsl-kdd", required=True)
    ap.add_argument("--configs", nargs="+", required=True, help="HIDDEN:BATCH, e.g. 256,128:128")
    a = ap.parse_args()
    torch.set_num_threads(1)
    x, y = ref.load(a.nsl_kdd)
    tr, va = next(iter(StratifiedKFold(3, shuffle=True, random_state=42).split(x, y)))
    xt, xv = ref.encode(x.iloc[tr], x.iloc[va])
    weights = torch.tensor(ref.balanced(y[tr]), dtype=torch.float32)
    tensors = (torch.from_numpy(xt), torch.from_numpy(y[tr]).long(),
               torch.from_numpy(xv), torch.from_numpy(y[va]).long())
    for config in a.configs:
        hidden, batch = config.split(":")
        dims = [int(h) for h in hidden.split(",")]
        seconds = epoch_seconds(dims, int(batch), *tensors, weights)
        print(f"{hidden} {batch} {seconds:.3f}", flush=True)


if __name__ == "__main__":
    main()
