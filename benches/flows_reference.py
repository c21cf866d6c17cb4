"""The reference side of benches/flows.sh: nfstream (6.6, statistical features, no DPI,
payload accounting) on the same capture, timed; and, given our flows CSV, how often the two
agree on the features both define alike.

    python benches/flows_reference.py CAPTURE [--ours flows.csv] [--flow-timeout 120]
"""

import argparse
import csv
import datetime
import time

from nfstream import NFStreamer

# Ours -> (nfstream's column, scale to ours' units, tolerance in ours' units).
# nfstream keeps times in milliseconds: durations and inter-arrival times agree to 1 ms.
PAIRS = {
    "Total Fwd Packet": ("src2dst_packets", 1, 0),
    "Total Bwd packets": ("dst2src_packets", 1, 0),
    "Total Length of Fwd Packet": ("src2dst_bytes", 1, 0),
    "Total Length of Bwd Packet": ("dst2src_bytes", 1, 0),
    "Flow Duration": ("bidirectional_duration_ms", 1000, 1000),
    "Fwd Packet Length Max": ("src2dst_max_ps", 1, 0),
    "Fwd Packet Length Min": ("src2dst_min_ps", 1, 0),
    "Fwd Packet Length Mean": ("src2dst_mean_ps", 1, 1e-6),
    "Fwd Packet Length Std": ("src2dst_stddev_ps", 1, 1e-6),
    "Bwd Packet Length Max": ("dst2src_max_ps", 1, 0),
    "Bwd Packet Length Min": ("dst2src_min_ps", 1, 0),
    "Bwd Packet Length Mean": ("dst2src_mean_ps", 1, 1e-6),
    "Bwd Packet Length Std": ("dst2src_stddev_ps", 1, 1e-6),
    "Packet Length Min": ("bidirectional_min_ps", 1, 0),
    "Packet Length Max": ("bidirectional_max_ps", 1, 0),
    "Packet Length Mean": ("bidirectional_mean_ps", 1, 1e-6),
    "Packet Length Std": ("bidirectional_stddev_ps", 1, 1e-6),
    "Flow IAT Mean": ("bidirectional_mean_piat_ms", 1000, 1000),
    "Flow IAT Max": ("bidirectional_max_piat_ms", 1000, 1000),
    "Flow IAT Min": ("bidirectional_min_piat_ms", 1000, 1000),
    "Fwd IAT Max": ("src2dst_max_piat_ms", 1000, 1000),
    "Bwd IAT Max": ("dst2src_max_piat_ms", 1000, 1000),
    "SYN Flag Count": ("bidirectional_syn_packets", 1, 0),
    "ACK Flag Count": ("bidirectional_ack_packets", 1, 0),
    "PSH Flag Count": ("bidirectional_psh_packets", 1, 0),
    "RST Flag Count": ("bidirectional_rst_packets", 1, 0),
    "FIN Flag Count": ("bidirectional_fin_packets", 1, 0),
    "URG Flag Count": ("bidirectional_urg_packets", 1, 0),
}


def millis(timestamp):
    when = datetime.datetime.strptime(timestamp, "%Y-%m-%d %H:%M:%S.%f")
    return int(when.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("capture")
    p.add_argument("--ours")
    p.add_argument("--flow-timeout", type=int, default=120)
    args = p.parse_args()
    started = time.perf_counter()
    streamer = NFStreamer(
        source=args.capture,
        statistical_analysis=True,
        n_dissections=0,
        accounting_mode=3,
        idle_timeout=args.flow_timeout,
        active_timeout=args.flow_timeout,
    )
    theirs = {}
    packets = 0
    for f in streamer:
        packets += f.bidirectional_packets
        key = (f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.protocol, f.bidirectional_first_seen_ms)
        theirs[key] = f
    took = time.perf_counter() - started
    print(f"nfstream {packets / took:.0f} packets/s {len(theirs) / took:.0f} flows/s "
          f"({packets} packets, {len(theirs)} flows, {took:.2f}s)")
    if not args.ours:
        return
    matched, agree = 0, {name: 0 for name in PAIRS}
    ours_count = 0
    with open(args.ours, newline="") as fh:
        for row in csv.DictReader(fh):
            ours_count += 1
            key = (row["Src IP"], int(row["Src Port"]), row["Dst IP"], int(row["Dst Port"]),
                   int(row["Protocol"]), millis(row["Timestamp"]))
            f = theirs.get(key)
            if f is None:
                continue
            matched += 1
            for name, (col, scale, tol) in PAIRS.items():
                if abs(float(row[name]) - getattr(f, col) * scale) <= tol:
                    agree[name] += 1
    print(f"matched {matched} of our {ours_count} flows and nfstream's {len(theirs)} "
          f"(same 5-tuple and first packet's millisecond)")
    print("| column | nfstream | agree |")
    print("|---|---|---|")
    for name, (col, _, _) in PAIRS.items():
        print(f"| {name} | {col} | {100 * agree[name] / max(matched, 1):.1f}% |")


if __name__ == "__main__":
    main()
