"""The reference side of benches/drift.sh: evidently's data-drift report on the same files.

    python benches/drift_reference.py REFERENCE.csv CURRENT.csv [--json OUT]

Reads both files with pandas and runs evidently's DataDriftPreset twice: with its default
tests (Wasserstein distance for numeric columns of more than 1,000 rows, Jensen-Shannon or
chi-squared for categorical ones) and with PSI at 0.1 (what `anomaly drift` reports). Prints
the seconds each took (reading included, as `anomaly drift` reads its file) and the columns
each calls drifted.
"""

import argparse
import json
import time

import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset


def drifted(snapshot):
    """Column -> (value, drifted) from a snapshot's ValueDrift metrics."""
    out = {}
    for m in snapshot.dict()["metrics"]:
        cfg = m["config"]
        if cfg.get("type", "").endswith("ValueDrift"):
            out[cfg["column"]] = m["value"]
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("reference")
    p.add_argument("current")
    p.add_argument("--json")
    a = p.parse_args()
    results = {}
    for name, preset in [("default", DataDriftPreset()), ("psi", DataDriftPreset(method="psi", threshold=0.1))]:
        started = time.perf_counter()
        ref = pd.read_csv(a.reference)
        cur = pd.read_csv(a.current)
        snapshot = Report([preset]).run(cur, ref)
        values = drifted(snapshot)
        seconds = time.perf_counter() - started
        results[name] = {"seconds": seconds, "values": values}
        print(f"evidently ({name} tests): {seconds:.2f} s for {len(cur)} rows x {cur.shape[1]} columns")
    psi = results["psi"]["values"]
    print("evidently PSI >= 0.1:", sorted(c for c, v in psi.items() if v >= 0.1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()
