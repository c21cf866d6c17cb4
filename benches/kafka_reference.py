#!/usr/bin/env python3
"""The Kafka side of benches/kafka.sh: loads a topic, measures consumers, and is the Python
reference consumer.

  kafka_reference.py produce  BROKERS TOPIC FILE            one JSON message per CSV row
  kafka_reference.py wait     BROKERS TOPIC GROUP N         records/s from the group's commits
  kafka_reference.py consume  BROKERS TOPIC GROUP OUT       the reference consumer (until SIGTERM)
  kafka_reference.py latency  BROKERS TOPIC OUT RATE SECS   end-to-end latency at RATE records/s

The reference consumer does what `anomaly predict --kafka-brokers` does, the Python way:
confluent-kafka (librdkafka) consuming batches of up to 4096 messages (or what 200 ms
brings), json.loads per message, a pandas DataFrame, the same preprocessing in NumPy (booleans
to 0/1, standard scaling) and the PyTorch forward pass of the default MLP
(17-128-64-32-1 + sigmoid, seeded random weights: speed does not depend on them), one output
message per input (idempotent producer, acks=all), and the offsets committed once the outputs
are flushed; librdkafka's fetch back-off at 10 ms, as `anomaly` sets it. Written for this benchmark, in the style of ../shared/peers.
"""
import json, signal, sys, time

import numpy as np


def brokers_config(brokers):
    return {"bootstrap.servers": brokers}


def produce(brokers, topic, path):
    import csv
    from confluent_kafka import Producer
    p = Producer({**brokers_config(brokers), "enable.idempotence": True, "linger.ms": 20,
                  "queue.buffering.max.messages": 1000000})
    n = 0
    with open(path) as f:
        rows = csv.reader(f)
        header = [h.strip() for h in next(rows)]
        label = header.index("label")
        for row in rows:
            o = {}
            for i, (k, v) in enumerate(zip(header, row)):
                if i == label:
                    continue
                try:
                    o[k] = float(v)
                except ValueError:
                    o[k] = v
            while True:
                try:
                    p.produce(topic, key=str(n), value=json.dumps(o))
                    break
                except BufferError:
                    p.poll(0.01)
            n += 1
            if n % 10000 == 0:
                p.poll(0)
    p.flush()
    print(f"produced {n} records to {topic}", file=sys.stderr)


def wait(brokers, topic, group, total):
    """Polls the group's commits until they cover all TOTAL records (offsets are dense):
    records/s between the first commit and the last. (Not from the partitions' ends: tansu
    0.6 answers ListOffsets with 1 whatever a partition holds.)"""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({**brokers_config(brokers), "group.id": group})
    md = c.list_topics(topic, timeout=10)
    parts = [TopicPartition(topic, p) for p in sorted(md.topics[topic].partitions)]
    total = int(total)
    first = None
    while True:
        done = sum(max(tp.offset, 0) for tp in c.committed(parts, timeout=10))
        now = time.perf_counter()
        if done > 0 and first is None:
            first = (now, done)
        if done >= total:
            break
        time.sleep(0.05)
    rate = (total - first[1]) / max(now - first[0], 1e-9)
    print(f"{rate:.0f}")


def consume(brokers, topic, group, out):
    import pandas as pd
    import torch
    from confluent_kafka import Consumer, Producer
    from predict_reference import model  # the same MLP, beside this script
    torch.set_num_threads(1)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    c = Consumer({**brokers_config(brokers), "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                  "heartbeat.interval.ms": 500, "fetch.queue.backoff.ms": 10})
    p = Producer({**brokers_config(brokers), "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, "queue.buffering.max.messages": 1000000})
    c.subscribe([topic])
    net = None
    while not stop:
        msgs = [m for m in c.consume(4096, 0.2) if m.error() is None]
        if not msgs:
            continue
        df = pd.DataFrame([json.loads(m.value()) for m in msgs])
        for col in df.columns:
            if not pd.api.types.is_numeric_dtype(df[col]):
                df[col] = df[col].str.strip().str.lower().map({"true": 1.0, "false": 0.0})
        x = df.to_numpy(np.float32)
        mean, std = x.mean(axis=0), x.std(axis=0)
        std[std == 0] = 1.0
        x = ((x - mean) / std).astype(np.float32)
        net = net or model(x.shape[1])
        with torch.inference_mode():
            scores = torch.sigmoid(net(torch.from_numpy(x))).numpy()[:, 0]
        for m, s in zip(msgs, scores):
            value = json.dumps({"partition": m.partition(), "offset": m.offset(),
                                "score": float(s), "is_anomaly": bool(s >= 0.5)})
            while True:
                try:
                    p.produce(out, key=m.key(), value=value)
                    break
                except BufferError:
                    p.poll(0.01)
        p.flush()
        c.commit(asynchronous=False)
    c.close()


def latency(brokers, topic, out, rate, secs):
    """Sends RATE records/s for SECS seconds, each keyed by its send time; reads the outputs
    (keyed as their input) and prints the latency percentiles in ms. With OUT the same as
    TOPIC it reads the records themselves: the broker's own hop, the floor of a consumer's."""
    import threading
    from confluent_kafka import Consumer, Producer
    rate, secs = int(rate), float(secs)
    row = {"packet_size": 0.5, "inter_arrival_time": 0.5, "src_port": 40000.0, "dst_port": 80.0,
           "packet_count_5s": 0.3, "mean_packet_size": 0.4, "spectral_entropy": 0.7,
           "frequency_band_energy": 0.1, "protocol_type_TCP": "True", "protocol_type_UDP": "False",
           "src_ip_192.168.1.2": "False", "src_ip_192.168.1.3": "True", "dst_ip_192.168.1.5": "True",
           "dst_ip_192.168.1.6": "False", "tcp_flags_FIN": "False", "tcp_flags_SYN": "False",
           "tcp_flags_SYN-ACK": "True"}
    value = json.dumps(row)
    c = Consumer({**brokers_config(brokers), "group.id": f"latency-{time.time_ns()}",
                  "auto.offset.reset": "latest", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 10})
    c.subscribe([out])
    # Joined once the first poll returns after an assignment.
    while not c.assignment():
        c.poll(0.1)
    got = []
    sent = [0]

    def send():
        p = Producer({**brokers_config(brokers), "linger.ms": 5})
        start = time.perf_counter()
        n = int(rate * secs)
        for i in range(n):
            target = start + i / rate
            while time.perf_counter() < target:
                time.sleep(max(0.0, min(target - time.perf_counter(), 0.001)))
            p.produce(topic, key=str(time.time_ns()), value=value)
            p.poll(0)
        p.flush()
        sent[0] = n

    t = threading.Thread(target=send)
    t.start()
    deadline = time.time() + secs + 10
    while time.time() < deadline and (sent[0] == 0 or len(got) < sent[0]):
        for m in c.consume(1000, 0.05):
            if m.error() is None:
                got.append((time.time_ns() - int(m.key())) / 1e6)
    t.join()
    got.sort()
    q = lambda f: got[min(len(got) - 1, int(f * len(got)))]
    print(f"{len(got)} of {sent[0]} answered: p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, max {got[-1]:.1f} ms")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"produce": produce, "wait": wait, "consume": consume, "latency": latency}[cmd](*args)
