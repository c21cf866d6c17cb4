//! `anomaly drift`: new rows against the training profile a checkpoint keeps.

use serde_json::Value;

use crate::flows::{generated, labelled_capture, train_on_flows};
use crate::serve::Server;
use crate::util::{Sandbox, uniform};

/// Rows of `columns` standard-normal features (the first shifted by `shift` standard
/// deviations, the second's spread times `spread`) and a `proto` column: tcp 60%, udp 40%,
/// or with `icmp`, 50/30/20 with a protocol training never saw.
fn flows(
    rows: usize,
    columns: usize,
    seed: u64,
    (shift, spread, icmp): (f64, f64, bool),
) -> String {
    let mut u = uniform(seed);
    let mut normal = move || {
        let (a, b) = (u().max(1e-12), u());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    };
    let mut pick = uniform(seed ^ 0x5eed);
    let names: Vec<String> = (0..columns).map(|c| format!("f{c}")).collect();
    let mut csv = names.join(",") + ",proto\n";
    for _ in 0..rows {
        let mut cells: Vec<String> = (0..columns)
            .map(|c| {
                let v = normal();
                let v = match c {
                    0 => v + shift,
                    1 => v * spread,
                    _ => v,
                };
                format!("{v:.5}")
            })
            .collect();
        let p = pick();
        cells.push(
            match (icmp, p) {
                (false, p) if p < 0.6 => "tcp",
                (false, _) => "udp",
                (true, p) if p < 0.5 => "tcp",
                (true, p) if p < 0.8 => "udp",
                (true, _) => "icmp",
            }
            .into(),
        );
        csv += &(cells.join(",") + "\n");
    }
    csv
}

const FOREST: &[&str] = &[
    "--set",
    "model.kind=isolation_forest",
    "--set",
    "training.fit_on=all",
];

fn drift_json(s: &Sandbox, data: &str) -> Value {
    s.run(&[
        "drift",
        "--checkpoint",
        "checkpoints/best.mpk",
        "--data",
        data,
        "--json",
    ])
    .ok()
    .json()
}

fn levels(report: &Value) -> Vec<(String, String)> {
    report["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let level = c["level"].as_str().unwrap().to_string();
            (c["column"].as_str().unwrap().to_string(), level)
        })
        .collect()
}

/// A mean shift, a wider spread and a new category are flagged, exactly those; the training
/// rows themselves flag nothing.
#[test]
fn drift_flags_exactly_the_shifted_columns() {
    let s = Sandbox::new();
    s.write("train.csv", flows(5000, 6, 1, (0.0, 1.0, false)));
    s.write("new.csv", flows(5000, 6, 2, (1.0, 2.0, true)));
    s.train("train.csv", FOREST).ok();

    let same = drift_json(&s, "train.csv");
    assert_eq!(same["level"], "none", "{same}");
    assert_eq!(same["drifted"], 0);
    assert!(levels(&same).iter().all(|(_, l)| l == "none"));

    let shifted = drift_json(&s, "new.csv");
    let flagged: Vec<String> = levels(&shifted)
        .into_iter()
        .filter(|(_, l)| l != "none")
        .map(|(c, _)| c)
        .collect();
    let mut expected = vec!["f0", "f1", "proto"];
    expected.sort();
    let mut got = flagged.clone();
    got.sort();
    assert_eq!(got, expected, "{shifted}");
    let proto = shifted["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == "proto")
        .unwrap();
    let unseen = proto["unseen"].as_u64().unwrap();
    assert!((900..1100).contains(&unseen), "{proto}");
    assert_eq!(proto["test"], "chi2");
    assert!(proto["p_adjusted"].as_f64().unwrap() < 1e-6);
    assert_eq!(shifted["rows"], 5000);
    assert!(shifted["score"]["psi"].as_f64().is_some());

    // A scheduler's trigger: exit 1 at the level asked for, 0 below it; stdin reads as a file.
    let fail = s.run(&[
        "drift",
        "--checkpoint",
        "checkpoints/best.mpk",
        "--data",
        "new.csv",
        "--fail-on",
        "significant",
        "--out",
        "report",
    ]);
    assert_eq!(fail.code, 1, "{}", fail.stderr);
    assert!(
        fail.stderr.contains("drift is significant"),
        "{}",
        fail.stderr
    );
    assert!(fail.stdout.contains("significant drift"), "{}", fail.stdout);
    for file in [
        "report/drift.json",
        "report/report.html",
        "report/drift_f0.svg",
    ] {
        assert!(s.path(file).exists(), "{file}");
    }
    assert!(!s.path("report/drift_f3.svg").exists());
    s.run(&[
        "drift",
        "--checkpoint",
        "checkpoints/best.mpk",
        "--data",
        "train.csv",
        "--fail-on",
        "moderate",
    ])
    .ok();
    let piped = s
        .command(&[
            "drift",
            "--checkpoint",
            "checkpoints/best.mpk",
            "--data",
            "-",
            "--json",
        ])
        .stdin(std::fs::File::open(s.path("new.csv")).unwrap())
        .output()
        .unwrap();
    let piped: Value = serde_json::from_slice(&piped.stdout).unwrap();
    assert_eq!(piped, shifted);
}

/// Fresh samples of the training distribution: on 20 columns of 10,000 rows, no `moderate`
/// verdict. (The PSI of a column drawn afresh is about (bins − 1)(1/n + 1/N), 0.0018 here, so
/// the 0.1 cut-off sits more than fifty times above it.)
#[test]
fn fresh_samples_of_the_training_distribution_are_not_drift() {
    let s = Sandbox::new();
    s.write("train.csv", flows(10_000, 20, 3, (0.0, 1.0, false)));
    s.write("fresh.csv", flows(10_000, 20, 4, (0.0, 1.0, false)));
    s.train("train.csv", FOREST).ok();
    let report = drift_json(&s, "fresh.csv");
    let psi: Vec<f64> = report["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["psi"].as_f64().unwrap())
        .collect();
    assert_eq!(psi.len(), 21);
    let worst = psi.iter().cloned().fold(0.0, f64::max);
    assert!(worst < 0.02, "largest PSI {worst}");
    assert_eq!(report["level"], "none", "{report}");
}

#[test]
fn drift_refuses_what_it_cannot_compare() {
    let s = Sandbox::new();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1/best.mpk");
    s.write("d.csv", "a\n1\n");
    s.run(&["drift", "--checkpoint", fixture, "--data", "d.csv"])
        .bad_input("keeps no profile of its training rows");
    s.write("train.csv", flows(500, 3, 5, (0.0, 1.0, false)));
    s.train("train.csv", FOREST).ok();
    s.write("empty.csv", "f0,f1,f2,proto\n");
    s.run(&[
        "drift",
        "--checkpoint",
        "checkpoints/best.mpk",
        "--data",
        "empty.csv",
    ])
    .bad_input("no rows to compare");
    s.run(&[
        "drift",
        "--checkpoint",
        "checkpoints/best.mpk",
        "--data",
        "d.csv",
    ])
    .bad_input("missing column 'f0'");
}

/// The server keeps each model's latest rows: after a stream of shifted rows its window gives
/// the report `anomaly drift` gives on those rows, and `/metrics` carries the gauges; the
/// oldest rows leave the window as new ones come.
#[test]
fn the_serve_window_reports_what_drift_reports_on_the_same_rows() {
    let s = Sandbox::new();
    s.write("train.csv", flows(3000, 4, 6, (0.0, 1.0, false)));
    s.train("train.csv", FOREST).ok();
    let shifted = flows(2000, 4, 7, (1.0, 2.0, true));
    s.write("shifted.csv", &shifted);
    let server = Server::start(
        &s,
        &[
            "--checkpoint",
            "checkpoints/best.mpk",
            "--drift-window",
            "2000",
        ],
    );
    assert_eq!(server.get("/api/v1/drift").0, 409);
    // Rows arrive in requests of 250; first 500 unshifted ones, which the window forgets.
    let fresh = flows(500, 4, 8, (0.0, 1.0, false));
    let mut lines = fresh.lines();
    let header = lines.next().unwrap();
    let fresh: Vec<&str> = lines.collect();
    let rows: Vec<&str> = shifted.lines().skip(1).collect();
    for chunk in fresh.chunks(250).chain(rows.chunks(250)) {
        let body = format!("{header}\n{}\n", chunk.join("\n"));
        let (status, text) = server.post("/api/v1/predict", "text/csv", body);
        assert_eq!(status, 200, "{text}");
    }
    let window = server.get_json("/api/v1/drift");
    let file = drift_json(&s, "shifted.csv");
    assert_eq!(window, file);
    assert_eq!(window["rows"], 2000);
    let metrics = server.get("/metrics").1;
    let f0 = file["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == "f0")
        .unwrap()["psi"]
        .as_f64()
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("anomaly_feature_psi{") && l.contains("column=\"f0\""))
        .unwrap_or_else(|| panic!("{metrics}"));
    let gauge: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((gauge - f0).abs() < 1e-9, "{line} against {f0}");
    assert!(metrics.contains("anomaly_score_psi{"), "{metrics}");
    assert!(metrics.contains("anomaly_alarm_rate{"), "{metrics}");
    server.stop();

    let off = Server::start(
        &s,
        &[
            "--checkpoint",
            "checkpoints/best.mpk",
            "--drift-window",
            "0",
        ],
    );
    let (status, text) = off.get("/api/v1/drift");
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("--drift-window 0"), "{text}");
}

/// A capture's flows, compared as `--pcap`, give the report their flow CSV gives.
#[test]
fn drift_reads_a_capture_as_predict_does() {
    let s = Sandbox::new();
    labelled_capture(&s, "train", "400", "1");
    let checkpoint = train_on_flows(&s, "isolation_forest");
    generated(&s, "test.pcap", "300", "2");
    s.run(&["flows", "--pcap", "test.pcap", "--out", "test.csv", "-q"])
        .ok();
    let drift = |input: &[&str]| {
        let mut args = vec!["drift", "--checkpoint", &checkpoint, "--json"];
        args.extend_from_slice(input);
        s.run(&args).ok().json()
    };
    let from_capture = drift(&["--pcap", "test.pcap"]);
    assert_eq!(from_capture, drift(&["--data", "test.csv"]));
    assert!(
        from_capture["rows"].as_u64().unwrap() > 100,
        "{from_capture}"
    );
}
