"""Where an attention head looks in attack windows: `predict --explain 1` output (the heaviest
step of each window, threshold 0 so every window has one) against the input's labels. On
attack windows (the last flow's label) whose flows are part normal, part attack (an episode
starting inside the window), the share whose heaviest step covers attack flows only, and
chance: the share of those windows' steps that do.

  python3 benches/attention_steps.py INPUT.csv EXPLAINED.csv
"""
import csv
import re
import sys
from collections import defaultdict

STEP = re.compile(r"^step (\d+) of (\d+) \(flows (\d+)-(\d+) of (\d+):")


def main(input_path, explained_path):
    rows = list(csv.DictReader(open(input_path)))
    attack = {i: r["label"] == "1" for i, r in enumerate(rows, 1)}
    flows_of = defaultdict(list)
    at = {}
    for i, r in enumerate(rows, 1):
        at[i] = (r["src_host"], len(flows_of[r["src_host"]]))
        flows_of[r["src_host"]].append(i)
    windows = hits = 0
    chance = 0.0
    for rec in csv.DictReader(open(explained_path)):
        row = int(rec["row"])
        if rec["score"] == "" or not attack[row]:
            continue
        step, steps, first, last, length = (int(g) for g in STEP.match(rec["reason_1"]).groups())
        host, k = at[row]
        labels = [attack[r] for r in flows_of[host][k - length + 1:k + 1]]
        if all(labels):
            continue
        # Every step's flows: as wide as the heaviest step's, evenly spaced from the first.
        width = last - first + 1
        stride = (first - 1) // (step - 1) if step > 1 else (length - width) // max(steps - 1, 1)
        spans = [(s * stride, s * stride + width) for s in range(steps)]
        windows += 1
        hits += all(labels[first - 1:last])
        chance += sum(all(labels[a:b]) for a, b in spans) / steps
    print(f"{windows} attack windows straddling an episode's start: the heaviest step covers "
          f"attack flows only in {hits / windows:.3f}, chance {chance / windows:.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
