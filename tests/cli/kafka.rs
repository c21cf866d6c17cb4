//! `predict --kafka-brokers` and `flows --kafka-brokers` against a real Kafka-protocol broker
//! (tansu, which `.ci/run` installs): replicas sharing a topic, one killed outright and
//! restarted, poison messages, SIGTERM, and a sensor publishing a capture's flows.
//!
//! Each test starts its own broker on a free loopback port from `$TANSU_BIN` (or `tansu` on
//! PATH), with in-memory storage; `ANOMALY_TEST_KAFKA=host:port` uses a running broker
//! instead. Without either the tests skip and say why.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use crate::util::Sandbox;

/// Group settings that make a replica's join and a dead member's eviction take seconds (the
/// broker waits on the session timeout), as a test needs; the README says so for production.
const QUICK_GROUP: [&str; 4] = [
    "--kafka-config",
    "session.timeout.ms=6000",
    "--kafka-config",
    "heartbeat.interval.ms=500",
];

/// A broker for one test, stopped when dropped (unless it was already running).
pub struct Broker {
    pub address: String,
    process: Option<Child>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(p) = self.process.as_mut() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

impl Broker {
    /// A broker, or `None` with the reason printed.
    pub fn start() -> Option<Broker> {
        if let Ok(address) = std::env::var("ANOMALY_TEST_KAFKA") {
            return Some(Broker {
                address,
                process: None,
            });
        }
        let bin = std::env::var("TANSU_BIN").unwrap_or_else(|_| "tansu".into());
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let started = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(process) = started else {
            println!(
                "skipped: no Kafka-protocol broker: cannot run {bin:?} (set TANSU_BIN, or \
                 ANOMALY_TEST_KAFKA=host:port for a running broker; .ci/run installs tansu)"
            );
            return None;
        };
        let address = format!("127.0.0.1:{port}");
        let broker = Broker {
            address: address.clone(),
            process: Some(process),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {address}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(broker)
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.address);
        c
    }

    pub fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = self.config().create().unwrap();
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let (topics, options) = ([topic], AdminOptions::new());
        let results = block_on(admin.create_topics(&topics, &options)).unwrap();
        for r in results {
            r.unwrap();
        }
    }

    pub fn producer(&self) -> ThreadedProducer<DefaultProducerContext> {
        let mut c = self.config();
        c.set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.max.bytes", "2000000");
        c.create().unwrap()
    }

    /// Every message of `topic` from its start, until `count` arrived or `wait` passed.
    pub fn read_all(&self, topic: &str, count: usize, wait: Duration) -> Vec<Received> {
        let mut c = self.config();
        c.set("group.id", "reader")
            .set("enable.auto.commit", "false");
        let consumer: BaseConsumer = c.create().unwrap();
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let mut list = TopicPartitionList::new();
        for p in metadata.topics()[0].partitions() {
            list.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&list).unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + wait;
        while got.len() < count && Instant::now() < deadline {
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                let m = m.unwrap();
                let headers = m.headers().map_or(Vec::new(), |h| {
                    h.iter()
                        .map(|h| {
                            let v = h
                                .value
                                .map_or(String::new(), |v| String::from_utf8_lossy(v).into_owned());
                            (h.key.to_string(), v)
                        })
                        .collect()
                });
                got.push(Received {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    value: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
        }
        got
    }

    /// The group's committed offset per partition of `topic` (-1: none).
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
        let mut c = self.config();
        c.set("group.id", group);
        let consumer: BaseConsumer = c.create().unwrap();
        let mut list = TopicPartitionList::new();
        for p in 0..partitions {
            list.add_partition(topic, p);
        }
        let done = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .unwrap();
        (0..partitions)
            .map(|p| match done.find_partition(topic, p).unwrap().offset() {
                Offset::Offset(o) => o,
                _ => -1,
            })
            .collect()
    }

    /// Waits until `group` has committed `ends` on every partition of `topic`.
    pub fn wait_for_commits(&self, group: &str, topic: &str, ends: &[i64], wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let done = self.committed(group, topic, ends.len() as i32);
            if done == ends {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the group's commits stopped at {done:?}, expected {ends:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

pub struct Received {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.value).unwrap()
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// rdkafka's admin calls are futures; a test has no runtime, so one is made for the call.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A trained sandbox (`d.csv`, `checkpoints/best.mpk`) and its rows as JSON objects without
/// the label, `rows` of them.
fn trained(rows: usize) -> (Sandbox, Vec<serde_json::Map<String, Value>>) {
    let s = Sandbox::new();
    s.sample("d.csv", 600, 3);
    s.train("d.csv", &[]).ok();
    s.sample("live.csv", rows, 9);
    let mut reader = csv::Reader::from_path(s.path("live.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let objects = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let mut o = serde_json::Map::new();
            for (name, cell) in header.iter().zip(r.iter()) {
                if name != "label" {
                    let v = cell.parse::<f64>().map_or(Value::from(cell), Value::from);
                    o.insert(name.clone(), v);
                }
            }
            o
        })
        .collect();
    (s, objects)
}

/// `predict --format jsonl` on `live.csv`: each row's output.
fn file_outputs(s: &Sandbox) -> Vec<Value> {
    let run = s
        .predict("checkpoints/best.mpk", "live.csv", &["--format", "jsonl"])
        .ok();
    run.stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect()
}

/// `predict` on `checkpoints/best.mpk` reading the topic `flows` of `broker`.
fn predict_flows(broker: &Broker) -> Vec<&str> {
    vec![
        "predict",
        "--checkpoint",
        "checkpoints/best.mpk",
        "--kafka-brokers",
        &broker.address,
        "--topic",
        "flows",
    ]
}

/// A `predict --kafka-brokers` replica reading `flows` in `group`, writing to `out`.
fn replica(s: &Sandbox, broker: &Broker, (group, out): (&str, &str), extra: &[&str]) -> Child {
    let mut args = predict_flows(broker);
    args.extend_from_slice(&["--group", group, "--out-topic", out, "--quiet"]);
    args.extend_from_slice(&QUICK_GROUP);
    args.extend_from_slice(extra);
    s.command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn terminate(child: &mut Child) -> (i32, Duration) {
    let started = Instant::now();
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), started.elapsed())
}

/// Produces `rows[i]` to partition i % 4, keyed by i, so row i is at offset i / 4.
fn produce(
    broker: &Broker,
    rows: &[serde_json::Map<String, Value>],
    range: std::ops::Range<usize>,
) {
    produce_at(broker, rows, range, None);
}

/// [`produce`], at `per_second` records a second when given (a steady stream).
fn produce_at(
    broker: &Broker,
    rows: &[serde_json::Map<String, Value>],
    range: std::ops::Range<usize>,
    per_second: Option<f64>,
) {
    let producer = broker.producer();
    let started = Instant::now();
    for (n, i) in range.enumerate() {
        if let Some(rate) = per_second {
            let due = started + Duration::from_secs_f64(n as f64 / rate);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let key = i.to_string();
        let value = serde_json::to_vec(&rows[i]).unwrap();
        let mut record = BaseRecord::to("flows")
            .key(&key)
            .payload(&value)
            .partition((i % 4) as i32);
        while let Err((_, back)) = producer.send(record) {
            record = back;
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// 100,000 records on 4 partitions, two replicas, one killed with SIGKILL in the middle and
/// started again: every offset gets an output whose score is `predict`'s on the same row.
#[test]
fn two_replicas_score_every_record_at_least_once_though_one_is_killed() {
    let Some(broker) = Broker::start() else {
        return;
    };
    const N: usize = 100_000;
    let (s, rows) = trained(N);
    broker.create_topic("flows", 4);
    broker.create_topic("scores", 4);
    let expected: Vec<String> = file_outputs(&s)
        .iter()
        .map(|o| o["score"].to_string())
        .collect();
    let mut a = replica(&s, &broker, ("g", "scores"), &[]);
    let mut b = replica(&s, &broker, ("g", "scores"), &[]);
    // The records stream in steadily (25,000 a second, for 4 s) while both run; A is killed
    // outright in the middle of its share, once a sixth are committed, and started again.
    let (mut a, at_kill) = std::thread::scope(|scope| {
        scope.spawn(|| produce_at(&broker, &rows, 0..N, Some(25_000.0)));
        let deadline = Instant::now() + Duration::from_secs(60);
        // Every partition committed: both replicas hold and score theirs.
        let busy =
            |c: Vec<i64>| c.iter().all(|&o| o > 0) && c.iter().sum::<i64>() >= (N / 6) as i64;
        while !busy(broker.committed("g", "flows", 4)) {
            assert!(Instant::now() < deadline, "no commits from the replicas");
            std::thread::sleep(Duration::from_millis(20));
        }
        a.kill().unwrap();
        a.wait().unwrap();
        // A's last commits, and B's so far.
        let at_kill = broker.committed("g", "flows", 4);
        (replica(&s, &broker, ("g", "scores"), &[]), at_kill)
    });
    broker.wait_for_commits("g", "flows", &[(N / 4) as i64; 4], Duration::from_secs(120));
    for r in [&mut a, &mut b] {
        let (code, took) = terminate(r);
        assert_eq!(code, 0);
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
    let outputs = broker.read_all("scores", 2 * N, Duration::from_secs(5));
    let mut seen: HashMap<(i64, i64), usize> = HashMap::new();
    for out in &outputs {
        let o = out.json();
        let (p, off) = (
            o["partition"].as_i64().unwrap(),
            o["offset"].as_i64().unwrap(),
        );
        let row = off as usize * 4 + p as usize;
        assert!(
            row < N,
            "an output for offset {off} of partition {p}, never produced"
        );
        assert_eq!(
            out.key.as_deref(),
            Some(row.to_string().as_str()),
            "keyed as the input"
        );
        assert_eq!(o["score"].to_string(), expected[row], "row {row}");
        *seen.entry((p, off)).or_default() += 1;
    }
    assert_eq!(seen.len(), N, "every (partition, offset) has an output");
    let duplicates = outputs.len() - N;
    println!("{duplicates} duplicates after the kill (commits then: {at_kill:?})");
    // Only what was scored after its partition's last commit was scored again.
    for (&(p, off), &n) in &seen {
        assert!(
            n == 1 || off >= at_kill[p as usize],
            "offset {off} of partition {p} scored {n} times, though committed ({at_kill:?})"
        );
    }
}

/// A poison message in each partition: an error output each (or a dead letter each, with
/// `--dead-letter-topic`), and the rest of every partition scored.
#[test]
fn poison_messages_become_error_outputs_or_dead_letters_and_the_rest_is_scored() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let (s, rows) = trained(400);
    for t in ["flows", "scores", "bad"] {
        broker.create_topic(t, 4);
    }
    produce(&broker, &rows, 0..200);
    let mut missing = rows[0].clone();
    missing.remove("packet_size");
    let poison: Vec<Vec<u8>> = vec![
        br#"{"packet_size": 12, "inter_ar"#.to_vec(),
        serde_json::to_vec(&missing).unwrap(),
        serde_json::to_string(&rows[1])
            .unwrap()
            .replacen(':', ":1e999999,\"x\":", 1)
            .into_bytes(),
        vec![0x9c; 1_000_000],
    ];
    let producer = broker.producer();
    for (p, value) in poison.iter().enumerate() {
        let key = format!("poison-{p}");
        let record = BaseRecord::to("flows")
            .key(&key)
            .payload(value)
            .partition(p as i32);
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    drop(producer);
    produce(&broker, &rows, 200..400);
    // Without a dead-letter topic: error outputs.
    let mut r = replica(&s, &broker, ("g", "scores"), &[]);
    broker.wait_for_commits("g", "flows", &[101; 4], Duration::from_secs(60));
    assert_eq!(terminate(&mut r).0, 0);
    let outputs = broker.read_all("scores", 404, Duration::from_secs(10));
    assert_eq!(outputs.len(), 404);
    let errors: Vec<Value> = outputs
        .iter()
        .map(Received::json)
        .filter(|o| o.get("error").is_some())
        .collect();
    assert_eq!(errors.len(), 4, "{errors:?}");
    let said: Vec<&str> = errors
        .iter()
        .map(|e| e["error"].as_str().unwrap())
        .collect();
    assert!(
        said.iter()
            .any(|e| e.contains("missing column 'packet_size'")),
        "{said:?}"
    );
    assert_eq!(
        said.iter()
            .filter(|e| e.contains("expected a JSON object"))
            .count(),
        3
    );
    // With one: the same messages as they were, with why and where from.
    broker.create_topic("scores2", 4);
    let port = free_port().to_string();
    let extra = ["--dead-letter-topic", "bad", "--metrics-port", &port];
    let mut r = replica(&s, &broker, ("g2", "scores2"), &extra);
    broker.wait_for_commits("g2", "flows", &[101; 4], Duration::from_secs(60));
    // Statistics (each partition's lag) come every second.
    std::thread::sleep(Duration::from_millis(1500));
    let metrics = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    for line in [
        "anomaly_kafka_messages_in_total 404",
        "anomaly_kafka_bad_messages_total 4",
        "anomaly_kafka_messages_out_total{to=\"dead_letter\"} 4",
        "anomaly_kafka_messages_out_total{to=\"scores\"} 400",
        "anomaly_kafka_consumer_lag{topic=\"flows\",partition=\"3\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
    assert_eq!(terminate(&mut r).0, 0);
    let letters = broker.read_all("bad", 4, Duration::from_secs(10));
    assert_eq!(letters.len(), 4);
    for l in &letters {
        let p: usize = l.key.as_deref().unwrap()["poison-".len()..]
            .parse()
            .unwrap();
        let header = |k: &str| {
            l.headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        assert!(header("anomaly.error").is_some());
        assert_eq!(header("anomaly.partition"), Some(p.to_string()));
        if p == 3 {
            assert_eq!(
                header("anomaly.truncated_from_bytes").as_deref(),
                Some("1000000")
            );
            assert_eq!(l.value.len(), 900_000);
        } else {
            assert_eq!(l.value, poison[p]);
        }
    }
    let scored = broker.read_all("scores2", 401, Duration::from_secs(3));
    assert_eq!(scored.len(), 400, "only the good messages have a score");
}

/// SIGTERM while records stream in: exit 0 within 10 s, and a replica started after it scores
/// only what came later (nothing twice).
#[test]
fn sigterm_stops_cleanly_and_a_restart_scores_nothing_twice() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let (s, rows) = trained(20_000);
    broker.create_topic("flows", 4);
    broker.create_topic("scores", 4);
    // Each flagged row is also an alert, stored before its output is sent.
    let alerts = ["--alerts-only", "--alerts-db", "alerts.sqlite"];
    let mut r = replica(&s, &broker, ("g", "scores"), &alerts);
    let streaming = std::thread::scope(|scope| {
        let feed = scope.spawn(|| {
            for chunk in 0..10 {
                produce(&broker, &rows, chunk * 1000..(chunk + 1) * 1000);
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        // Stopped once it has committed some of the stream, mid-way.
        let deadline = Instant::now() + Duration::from_secs(30);
        while broker.committed("g", "flows", 4).iter().all(|&o| o <= 0) {
            assert!(Instant::now() < deadline, "the replica committed nothing");
            std::thread::sleep(Duration::from_millis(50));
        }
        let stopped = terminate(&mut r);
        feed.join().unwrap();
        stopped
    });
    assert_eq!(streaming.0, 0);
    assert!(streaming.1 < Duration::from_secs(10), "{:?}", streaming.1);
    let before = broker.committed("g", "flows", 4);
    assert!(before.iter().all(|&o| o > 0), "{before:?}");
    produce(&broker, &rows, 10_000..20_000);
    let mut r = replica(&s, &broker, ("g", "scores"), &alerts);
    broker.wait_for_commits("g", "flows", &[5000; 4], Duration::from_secs(60));
    assert_eq!(terminate(&mut r).0, 0);
    let outputs = broker.read_all("scores", 20_000, Duration::from_secs(5));
    let mut offsets = HashSet::new();
    for o in outputs.iter().map(Received::json) {
        assert_eq!(o["is_anomaly"], true, "--alerts-only: {o}");
        let at = (
            o["partition"].as_i64().unwrap(),
            o["offset"].as_i64().unwrap(),
        );
        assert!(offsets.insert(at), "scored twice: {at:?}");
    }
    let flagged = file_outputs(&s)
        .iter()
        .filter(|o| o["is_anomaly"] == true)
        .count();
    assert_eq!(offsets.len(), flagged, "every flagged row once");
    let db = rusqlite::Connection::open(s.path("alerts.sqlite")).unwrap();
    let stored: i64 = db
        .query_row("SELECT SUM(count) FROM alerts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored as usize, flagged, "every flagged row stored once");
}

/// A sensor: `flows --pcap - --kafka-brokers` publishes a capture's flows, one message each
/// keyed by Flow ID; `predict --kafka-brokers` scores them as `predict --pcap` does.
#[test]
fn a_capture_published_by_flows_is_scored_as_predict_pcap_scores_it() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let s = Sandbox::new();
    crate::flows::labelled_capture(&s, "train", "300", "1");
    crate::flows::generated(&s, "test.pcap", "120", "2");
    let checkpoint = crate::flows::train_on_flows(&s, "mlp");
    broker.create_topic("flows", 2);
    broker.create_topic("scores", 2);
    let pcap = std::fs::read(s.path("test.pcap")).unwrap();
    let mut sensor = s
        .command(&[
            "flows",
            "--pcap",
            "-",
            "--kafka-brokers",
            &broker.address,
            "--topic",
            "flows",
            "--format",
            "jsonl",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut sensor.stdin.take().unwrap(), &pcap).unwrap();
    let done = sensor.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let direct = s
        .run(&[
            "predict",
            "--checkpoint",
            &checkpoint,
            "--pcap",
            "test.pcap",
            "--format",
            "jsonl",
        ])
        .ok();
    let want: HashMap<String, String> = direct
        .stdout
        .lines()
        .map(|l| {
            let o: Value = serde_json::from_str(l).unwrap();
            (
                o["Flow ID"].as_str().unwrap().to_string(),
                o["score"].to_string(),
            )
        })
        .collect();
    let published = broker.read_all("flows", want.len() + 1, Duration::from_secs(5));
    assert_eq!(published.len(), want.len(), "one message per flow");
    let mut args = vec![
        "predict",
        "--checkpoint",
        &checkpoint,
        "--kafka-brokers",
        &broker.address,
        "--topic",
        "flows",
        "--group",
        "g",
        "--out-topic",
        "scores",
        "--keep",
        "Flow ID",
        "-q",
    ];
    args.extend_from_slice(&QUICK_GROUP);
    let mut r = s.command(&args).stderr(Stdio::piped()).spawn().unwrap();
    // Each partition's end, from what was read: tansu 0.6 answers ListOffsets (latest) with 1
    // whatever the partition holds (the README shows it with confluent-kafka).
    let mut ends = vec![0i64; 2];
    for m in &published {
        ends[m.partition as usize] = ends[m.partition as usize].max(m.offset + 1);
    }
    broker.wait_for_commits("g", "flows", &ends, Duration::from_secs(60));
    assert_eq!(terminate(&mut r).0, 0);
    for out in broker.read_all("scores", want.len(), Duration::from_secs(5)) {
        let o = out.json();
        let id = o["Flow ID"].as_str().unwrap();
        assert_eq!(out.key.as_deref(), Some(id), "keyed by Flow ID");
        assert_eq!(o["score"].to_string(), want[id], "{id}");
    }
}

/// A setting librdkafka does not know, a topic that does not exist, a malformed setting: exit
/// 2 naming it, before anything is consumed.
#[test]
fn bad_settings_and_missing_topics_are_named() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let (s, _) = trained(10);
    broker.create_topic("flows", 1);
    let run = |extra: &[&str]| {
        let mut args = predict_flows(&broker);
        args.extend_from_slice(extra);
        s.run(&args)
    };
    run(&["--kafka-config", "no.such.setting=1"]).bad_input("no.such.setting");
    run(&["--kafka-config", "oops"]).bad_input("--kafka-config \"oops\": expected key=value");
    run(&["--out-topic", "nowhere"]).bad_input("Kafka topic 'nowhere' does not exist");
    s.run(&[
        "flows",
        "--pcap",
        "x.pcap",
        "--kafka-brokers",
        &broker.address,
    ])
    .bad_input("--topic");
    // A producer asking for a topic does not create it.
    s.run(&["generate", "--pcap", "t.pcap", "--flows", "10"])
        .ok();
    let mut args = vec![
        "flows",
        "--pcap",
        "t.pcap",
        "--kafka-brokers",
        &broker.address,
    ];
    args.extend_from_slice(&["--topic", "nowhere"]);
    s.run(&args)
        .bad_input("Kafka topic 'nowhere' does not exist");
}

/// CSV lines (their header given once by `--columns`) scored by a replica writing CSV to
/// standard output, with reasons: the same cells as `predict` on the file, after `partition`
/// and `offset`.
#[test]
fn csv_messages_scored_to_standard_output_match_predict_on_the_file() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let (s, _) = trained(300);
    broker.create_topic("flows", 1);
    let text = std::fs::read_to_string(s.path("live.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let producer = broker.producer();
    for line in lines {
        producer
            .send(BaseRecord::<(), _>::to("flows").payload(line))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let mut args = predict_flows(&broker);
    args.extend_from_slice(&["--group", "g", "--input-format", "csv", "--columns", header]);
    args.extend_from_slice(&["--format", "csv", "--explain", "2", "--quiet"]);
    args.extend_from_slice(&QUICK_GROUP);
    let mut r = s.command(&args).stdout(Stdio::piped()).spawn().unwrap();
    broker.wait_for_commits("g", "flows", &[300], Duration::from_secs(60));
    assert_eq!(terminate(&mut r).0, 0);
    let mut out = String::new();
    std::io::Read::read_to_string(&mut r.stdout.take().unwrap(), &mut out).unwrap();
    let file = s
        .predict("checkpoints/best.mpk", "live.csv", &["--explain", "2"])
        .ok();
    let want: Vec<&str> = file.stdout.lines().skip(1).collect();
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), 300, "no header, one line per message");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let (g, w) = (csv_cells(g), csv_cells(w));
        assert_eq!(
            &g[1..3],
            [String::from("0"), i.to_string()],
            "partition, offset"
        );
        assert_eq!(g[3..], w[1..], "row {}", i + 1);
    }
    let explained = got
        .iter()
        .map(|l| csv_cells(l))
        .filter(|c| c[4] == "true" && !c[5].is_empty());
    assert!(
        explained.count() > 0,
        "some flagged rows, with their reasons"
    );
}

fn csv_cells(line: &str) -> Vec<String> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line.as_bytes());
    r.records()
        .next()
        .unwrap()
        .unwrap()
        .iter()
        .map(String::from)
        .collect()
}
