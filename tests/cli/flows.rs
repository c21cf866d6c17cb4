//! `anomaly flows`, `generate --pcap` and `predict --pcap` through the binary: real captures
//! others wrote, stdin fed a byte at a time, a live capture that goes quiet, a truncated
//! capture, and the way from packets to scored flows.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::serve::Server;
use crate::util::Sandbox;

const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/captures");

fn fixture(name: &str) -> String {
    format!("{CAPTURES}/{name}")
}

/// `generate --pcap name` with `flows` sessions; the capture's bytes.
pub fn generated(s: &Sandbox, name: &str, flows: &str, seed: &str) -> Vec<u8> {
    s.run(&["generate", "--pcap", name, "--flows", flows, "--seed", seed])
        .ok();
    std::fs::read(s.path(name)).unwrap()
}

/// `flows` on a capture; (stdout, the stderr summary).
fn flows(s: &Sandbox, args: &[&str]) -> (String, String) {
    let mut all = vec!["flows"];
    all.extend_from_slice(args);
    let run = s.run(&all).ok();
    (run.stdout, run.stderr)
}

/// Captures shipped by Debian's python3-dpkt and golang-github-google-gopacket-dev and by the
/// pcap-parser crate (tests/fixtures/captures/README.md) parse to the packets Wireshark counts
/// and to the flows their conversations make.
#[test]
fn real_captures_parse_with_the_expected_packet_and_flow_counts() {
    let s = Sandbox::new();
    for (name, packets, flow_count, extra) in [
        ("http.pcap", 43, 3, ""),
        ("dns_icmp.pcap", 32, 9, ""),
        ("test_loopback.pcap", 24, 2, ""),
        ("test016-be.pcapng", 4, 3, ""),
    ] {
        let (out, err) = flows(&s, &["--pcap", &fixture(name)]);
        let summary = format!("{packets} packets, {flow_count} flows{extra}");
        assert!(err.contains(&summary), "{name}: {err}");
        assert_eq!(out.lines().count(), flow_count + 1, "{name}");
    }
    // http.pcap (Wireshark's http.cap): the page's TCP conversation is 34 packets, 16 from
    // the client and 18 from the server.
    let (out, _) = flows(&s, &["--pcap", &fixture("http.pcap"), "--format", "jsonl"]);
    let web: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|f: &serde_json::Value| f["Dst IP"] == "65.208.228.223")
        .collect();
    assert_eq!(web.len(), 1);
    assert_eq!(
        (
            web[0]["Total Fwd Packet"].as_i64(),
            web[0]["Total Bwd packets"].as_i64()
        ),
        (Some(16), Some(18))
    );
    assert_eq!(web[0]["Src IP"], "145.254.160.237");
}

/// A capture cut inside a packet: one line naming the packet and byte offset, exit 2, and the
/// flows before the cut written whole.
#[test]
fn a_truncated_capture_names_the_packet_and_keeps_the_flows_before_it() {
    let s = Sandbox::new();
    let run = s.run(&[
        "flows",
        "--pcap",
        &fixture("truncated_dns_2.pcap"),
        "--out",
        "f.csv",
    ]);
    run.bad_input("packet 2 at byte offset 240");
    let written = std::fs::read_to_string(s.path("f.csv")).unwrap();
    assert_eq!(written.lines().count(), 2);
    let garbage = s.write("g.pcap", b"not a capture at all");
    s.run(&["flows", "--pcap", garbage.to_str().unwrap()])
        .bad_input("not a pcap or pcapng capture");
}

/// The same bytes from a file, from stdin in one go, and from stdin a few bytes at a time.
#[test]
fn a_file_and_stdin_fed_a_few_bytes_at_a_time_give_the_same_bytes() {
    let s = Sandbox::new();
    let bytes = generated(&s, "a.pcap", "300", "5");
    let (file, _) = flows(&s, &["--pcap", "a.pcap", "-q"]);
    assert!(file.lines().count() > 250);
    for chunk in [bytes.len(), 7] {
        let mut child = s
            .command(&["flows", "--pcap", "-", "-q"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = bytes.clone();
        let feeder = std::thread::spawn(move || {
            for part in data.chunks(chunk) {
                stdin.write_all(part).unwrap();
                stdin.flush().unwrap();
            }
        });
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            file,
            "chunks of {chunk}"
        );
    }
}

/// `--live`: with the pipe still open and no packet coming, the wall clock ends the flow.
#[test]
fn a_live_capture_that_goes_quiet_still_reports_its_flows() {
    let s = Sandbox::new();
    let bytes = generated(&s, "a.pcap", "5", "2");
    let mut child = s
        .command(&[
            "flows",
            "--pcap",
            "-",
            "--live",
            "--flow-timeout",
            "1",
            "-q",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes).unwrap();
    stdin.flush().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    assert!(lines.next().unwrap().unwrap().starts_with("Flow ID,"));
    // The first flow arrives while stdin stays open.
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("-6,") || first.contains("-17,") || first.contains("-1,"));
    assert!(started.elapsed() < Duration::from_secs(20));
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// `generate --pcap` captures `name.pcap` (with `flows` sessions) and their labelled flows
/// `name.csv`, through `flows --labels`.
pub fn labelled_capture(s: &Sandbox, name: &str, flows: &str, seed: &str) {
    let (pcap, labels, out) = (
        format!("{name}.pcap"),
        format!("{name}.labels.csv"),
        format!("{name}.csv"),
    );
    generated(s, &pcap, flows, seed);
    s.run(&[
        "flows", "--pcap", &pcap, "--labels", &labels, "--out", &out, "-q",
    ])
    .ok();
}

/// `train.csv`, the labelled flows of a generated capture, as a data source.
const TRAIN_FLOWS: [&str; 6] = [
    "--set",
    "data.path=train.csv",
    "--set",
    "data.label_column=Label",
    "--set",
    "data.negative_labels=[BENIGN]",
];

/// A `kind` model trained on `train.csv`'s flows (identifiers dropped), in `kind/`.
pub fn train_on_flows(s: &Sandbox, kind: &str) -> String {
    let (model, dir) = (
        format!("model.kind={kind}"),
        format!("checkpoint.save_dir={kind}"),
    );
    let mut args = vec!["train", "--quiet"];
    args.extend_from_slice(&TRAIN_FLOWS);
    args.extend_from_slice(&[
        "--set",
        "data.drop_if_present=[Flow ID, Src IP, Src Port, Dst IP, Timestamp]",
        "--set",
        &model,
        "--set",
        &dir,
    ]);
    s.run(&args).ok();
    format!("{kind}/best.mpk")
}

/// `predict --pcap test.pcap` with `checkpoint`: each flow's Flow ID and score, in order.
fn predict_capture(s: &Sandbox, checkpoint: &str) -> Vec<(String, f64)> {
    let args = [
        "predict",
        "--checkpoint",
        checkpoint,
        "--pcap",
        "test.pcap",
        "-q",
    ];
    let out = s.run(&args).ok().stdout;
    let mut header = out.lines().next().unwrap().split(',');
    let id = header.position(|h| h == "Flow ID").unwrap();
    let row = |line: &str| {
        let cells: Vec<&str> = line.split(',').collect();
        let score = cells[cells.len() - 3].parse().unwrap();
        (cells[id].to_string(), score)
    };
    out.lines().skip(1).map(row).collect()
}

/// From packets to alarms: flows of one generated capture, labelled by its ground truth,
/// train a random forest and an isolation forest (fitted on the normal flows); `predict
/// --pcap` scores another capture's flows as they end, and both rank its attacks high.
#[test]
fn models_trained_on_one_captures_flows_score_another_capture() {
    let s = Sandbox::new();
    labelled_capture(&s, "train", "3000", "1");
    labelled_capture(&s, "test", "1500", "2");
    let truth: std::collections::HashMap<String, bool> =
        std::fs::read_to_string(s.path("test.labels.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                let (id, label) = l.rsplit_once(',').unwrap();
                (id.to_string(), label != "BENIGN")
            })
            .collect();
    for kind in ["random_forest", "isolation_forest"] {
        let checkpoint = train_on_flows(&s, kind);
        let scored: Vec<(f64, bool)> = predict_capture(&s, &checkpoint)
            .into_iter()
            .map(|(id, score)| (score, truth[&id]))
            .collect();
        assert!(scored.len() > 1400, "{kind}: {} flows scored", scored.len());
        let auc = roc_auc(&scored);
        assert!(auc > 0.85, "{kind}: ROC AUC {auc}");
    }
    // A model of other columns is refused, naming what captures lack.
    s.sample("sample.csv", 500, 1);
    s.run(&[
        "train",
        "--quiet",
        "--set",
        "data.path=sample.csv",
        "--set",
        "training.epochs=1",
        "--set",
        "checkpoint.save_dir=other",
    ])
    .ok();
    s.run(&[
        "predict",
        "--checkpoint",
        "other/best.mpk",
        "--pcap",
        "test.pcap",
    ])
    .bad_input("flows from a capture do not have: ");
    // The flows CSV is data like any other.
    let mut args = vec!["inspect", "--json"];
    args.extend_from_slice(&TRAIN_FLOWS);
    let inspect = s.run(&args).ok();
    assert!(inspect.stdout.contains("Flow Duration"));
}

/// `serve` scores a capture posted as `application/vnd.tcpdump.pcap`: the same scores as
/// `predict --pcap`, each with its flow's identifiers; a broken capture is a 422 (as any
/// body the server cannot score) naming the packet.
#[test]
fn serve_scores_a_posted_capture_as_predict_does() {
    let s = Sandbox::new();
    labelled_capture(&s, "train", "600", "3");
    let capture = generated(&s, "test.pcap", "200", "4");
    let checkpoint = train_on_flows(&s, "isolation_forest");
    let expected = predict_capture(&s, &checkpoint);
    let server = Server::start(&s, &["--checkpoint", &checkpoint]);
    let (status, body) = server.post("/api/v1/predict", "application/vnd.tcpdump.pcap", &capture);
    assert_eq!(status, 200, "{body}");
    let response: serde_json::Value = serde_json::from_str(&body).unwrap();
    let got: Vec<(String, f64)> = response["flows"]
        .as_array()
        .unwrap()
        .iter()
        .zip(response["predictions"].as_array().unwrap())
        .map(|(f, p)| {
            let id = f["Flow ID"].as_str().unwrap().to_string();
            (id, p["score"].as_f64().unwrap())
        })
        .collect();
    assert_eq!(got.len(), expected.len());
    for ((gid, g), (eid, e)) in got.iter().zip(&expected) {
        assert_eq!(gid, eid);
        assert!((g - e).abs() < 1e-6, "{gid}: {g} vs {e}");
    }
    let cut = &capture[..capture.len() - 10];
    let (status, body) = server.post("/api/v1/predict", "application/vnd.tcpdump.pcap", cut);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("at byte offset"), "{body}");
}

/// The share of (attack, benign) pairs the scores order right, ties counting half.
fn roc_auc(scored: &[(f64, bool)]) -> f64 {
    let (pos, neg): (Vec<&(f64, bool)>, Vec<_>) = scored.iter().partition(|s| s.1);
    let mut right = 0.0;
    for p in &pos {
        for n in &neg {
            right += if p.0 > n.0 {
                1.0
            } else if p.0 == n.0 {
                0.5
            } else {
                0.0
            };
        }
    }
    right / (pos.len() * neg.len()) as f64
}
