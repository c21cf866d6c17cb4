"""The CNN+LSTM of benches/sequence.rs in PyTorch: the same architecture, data protocol and
timing, on the CPU with every core torch sees (set OMP/torch threads from the caller).

  python benches/sequence_reference.py [--windows 8192] [--reps 3] [--batches 64,512]
"""
import argparse
import time

import torch
from torch import nn

C, L = 17, 32


class CnnLstm(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(C, 128, 3), nn.BatchNorm1d(128), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(128, 256, 3), nn.BatchNorm1d(256), nn.ReLU(), nn.MaxPool1d(2),
            nn.Dropout(0.3),
        )
        self.lstm = nn.LSTM(256, 128, num_layers=1, batch_first=True)
        self.head = nn.Linear(128, 1)

    def forward(self, x):
        h = self.conv(x).transpose(1, 2)
        out, _ = self.lstm(h)
        return self.head(out[:, -1])


def windows(n, gen):
    flows = torch.randn(n + L, C, generator=gen)
    # Window i holds flows i .. i+L-1, as channels x time: built per batch from the flows.
    y = ((flows[L - 1:L - 1 + n, 0] + flows[L - 2:L - 2 + n, 0]
          - flows[L - 3:L - 3 + n, 0] - flows[L - 4:L - 4 + n, 0]) > 0.5).float()
    return flows, y


def batch(flows, idx):
    steps = idx[:, None] + torch.arange(L)[None, :]
    return flows[steps].transpose(1, 2).contiguous()


def median(v):
    return sorted(v)[len(v) // 2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--windows", type=int, default=8192)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--batches", default="64,512")
    a = p.parse_args()
    gen = torch.Generator().manual_seed(42)
    flows, y = windows(a.windows, gen)
    model = CnnLstm()
    params = sum(t.numel() for t in model.parameters())
    print(f"torch {torch.__version__}: {params} parameters, {a.windows} windows of {C} x {L}, "
          f"{torch.get_num_threads()} threads")
    loss_fn = nn.BCEWithLogitsLoss()
    for b in [int(v) for v in a.batches.split(",")]:
        rates = []
        for rep in range(a.reps):
            torch.manual_seed(rep)
            model = CnnLstm().train()
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            order = torch.randperm(a.windows, generator=gen)
            start = time.perf_counter()
            for i in range(0, a.windows, b):
                idx = order[i:i + b]
                x = batch(flows, idx)
                opt.zero_grad()
                loss = loss_fn(model(x)[:, 0], y[idx])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
            rates.append(a.windows / (time.perf_counter() - start))
        print(f"train batch {b} windows/s {median(rates):.0f}")
    model.eval()
    rates = []
    with torch.no_grad():
        for _ in range(a.reps):
            start = time.perf_counter()
            for i in range(0, a.windows, 512):
                idx = torch.arange(i, min(i + 512, a.windows))
                torch.sigmoid(model(batch(flows, idx)))
            rates.append(a.windows / (time.perf_counter() - start))
    print(f"inference batch 512 windows/s {median(rates):.0f}")


if __name__ == "__main__":
    main()
