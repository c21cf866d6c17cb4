//! `anomaly predict`: one output row per input row, in order, bad rows carrying their error;
//! labels optional; results streamed back from stdin before the input ends; the decision rule
//! changed at predict time.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use crate::util::{MULTICLASS, Sandbox};

/// A trained sandbox: `d.csv` (600 generated rows) and `checkpoints/best.mpk`.
fn trained() -> Sandbox {
    let s = Sandbox::new();
    s.sample("d.csv", 600, 3);
    s.train("d.csv", &[]).ok();
    s
}

fn read_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

/// `d.csv` without its label column: what live traffic looks like.
fn unlabelled(s: &Sandbox) -> (Vec<String>, Vec<Vec<String>>) {
    let (header, rows) = read_csv(&std::fs::read_to_string(s.path("d.csv")).unwrap());
    let label = header.iter().position(|h| h == "label").unwrap();
    let drop = |mut v: Vec<String>| {
        v.remove(label);
        v
    };
    (drop(header), rows.into_iter().map(drop).collect())
}

#[test]
fn predict_writes_one_row_per_input_row_in_order_and_bad_rows_carry_their_error() {
    let s = trained();
    let (header, mut rows) = unlabelled(&s);
    rows.truncate(50);
    let port = header.iter().position(|h| h == "src_port").unwrap();
    rows[4].pop(); // row 5: a cell short
    rows[9][0] = "abc".into(); // row 10: not a number
    rows[14][0] = String::new(); // row 15: empty, imputed with the training median
    let mut text = header.join(",") + "\n";
    for r in &rows {
        text += &(r.join(",") + "\n");
    }
    s.write("live.csv", text);
    let run = s.predict(
        "checkpoints/best.mpk",
        "live.csv",
        &["--out", "scores.csv", "--keep", "src_port"],
    );
    // The summary line, then the one error line; exit code 2.
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let last = run.stderr.lines().last().unwrap();
    assert!(
        last.starts_with("error: 2 of 50 rows could not be scored; their output rows carry the error (first: row 5: expected 17 fields, found 16)"),
        "{}",
        run.stderr
    );
    let (out_header, out) = read_csv(&std::fs::read_to_string(s.path("scores.csv")).unwrap());
    assert_eq!(
        out_header,
        ["row", "src_port", "score", "is_anomaly", "error"]
    );
    assert_eq!(out.len(), 50);
    for (i, r) in out.iter().enumerate() {
        assert_eq!(r[0], (i + 1).to_string());
        assert_eq!(r[1], rows[i][port]);
        match i + 1 {
            5 => assert_eq!(r[4], "expected 17 fields, found 16"),
            10 => assert_eq!(
                r[4],
                "column 'packet_size': expected a number, found \"abc\""
            ),
            _ => {
                assert_eq!(r[4], "", "row {}", i + 1);
                let score: f32 = r[2].parse().unwrap();
                assert!((0.0..=1.0).contains(&score));
                assert_eq!(r[3], (score >= 0.5).to_string());
            }
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".scores.csv"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // Under `data.missing: error` an empty cell is an error row too, never silently scored.
    s.train(
        "d.csv",
        &[
            "--set",
            "data.missing=error",
            "--set",
            "checkpoint.save_dir=strict",
        ],
    )
    .ok();
    let r = s.predict("strict/best.mpk", "live.csv", &["--format", "jsonl"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let lines: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 50);
    assert_eq!(
        lines[14]["error"],
        "column 'packet_size': an empty cell (data.missing: error)"
    );
    assert!(lines[14]["score"].is_null());
    assert!(
        r.stderr.contains("3 of 50 rows could not be scored"),
        "{}",
        r.stderr
    );
}

#[test]
fn predict_agrees_with_test_and_reports_metrics_when_labels_are_present() {
    let s = trained();
    let report = s.test_json("checkpoints/best.mpk", &["--data", "d.csv", "--no-write"]);
    let c = &report["metrics"]["confusion"];
    let flagged_by_test = c["tp"].as_u64().unwrap() + c["fp"].as_u64().unwrap();
    let run = s.predict("checkpoints/best.mpk", "d.csv", &[]).ok();
    let (_, out) = read_csv(&run.stdout);
    assert_eq!(out.len(), 600);
    let flagged = out.iter().filter(|r| r[2] == "true").count() as u64;
    assert_eq!(flagged, flagged_by_test);
    assert!(
        run.stderr.contains(&format!(
            "against the label column (600 rows): accuracy {:.4}",
            report["metrics"]["accuracy"].as_f64().unwrap()
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn the_decision_rule_can_change_at_predict_time() {
    let s = trained();
    let flagged_share = |extra: &[&str]| {
        let run = s.predict("checkpoints/best.mpk", "d.csv", extra).ok();
        let (_, out) = read_csv(&run.stdout);
        let share = out.iter().filter(|r| r[2] == "true").count() as f64 / out.len() as f64;
        (share, run.stderr)
    };
    for rate in [0.1, 0.25] {
        let (share, stderr) = flagged_share(&["--contamination", &rate.to_string()]);
        // That share of the training rows (70% of the file) to within one row, about it on
        // the rest.
        let said: f64 = stderr
            .split("(it flags ")
            .nth(1)
            .and_then(|t| t.split('%').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{stderr}"));
        assert!(
            (said / 100.0 - rate).abs() <= 1.0 / 400.0,
            "{rate}: {stderr}"
        );
        assert!((share - rate).abs() < 0.04, "{rate}: {share}");
    }
    let (share, _) = flagged_share(&["--threshold", "0"]);
    assert_eq!(share, 1.0);
    s.predict("checkpoints/best.mpk", "d.csv", &["--contamination", "1.5"])
        .bad_input("--contamination: expected a share in (0, 1)");
}

#[test]
fn streaming_from_stdin_returns_results_before_the_input_ends() {
    let s = trained();
    let (header, rows) = unlabelled(&s);
    let mut child = s
        .command(&[
            "predict",
            "--checkpoint",
            "checkpoints/best.mpk",
            "--data",
            "-",
            "--format",
            "jsonl",
            "--flush-ms",
            "50",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let mut send = |lines: &[Vec<String>]| {
        for l in lines {
            writeln!(stdin, "{}", l.join(",")).unwrap();
        }
        stdin.flush().unwrap();
    };
    send(&[header]);
    let mut seen = Vec::new();
    for (from, to) in [(0, 3), (3, 5)] {
        send(&rows[from..to]);
        for _ in from..to {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("a result arrives while the input is still open");
            seen.push(serde_json::from_str::<serde_json::Value>(&line).unwrap());
        }
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let numbers: Vec<u64> = seen.iter().map(|v| v["row"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5]);
    assert!(
        seen.iter()
            .all(|v| v["score"].is_number() && v["is_anomaly"].is_boolean())
    );
}

#[test]
fn multiclass_predictions_carry_the_class_and_its_probability() {
    let s = Sandbox::new();
    let body = s.three_classes("m.csv");
    s.train("m.csv", MULTICLASS).ok();
    let run = s
        .predict("checkpoints/best.mpk", "m.csv", &["--format", "jsonl"])
        .ok();
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 600);
    let right = lines
        .iter()
        .zip(body.lines().skip(1))
        .filter(|(v, line)| line.ends_with(&format!(",{}", v["class"].as_str().unwrap())))
        .count();
    assert!(right > 500, "{right} of 600 classes right");
    for v in &lines {
        let p = v["class_probability"].as_f64().unwrap();
        assert!(p > 1.0 / 3.0 - 1e-6 && p <= 1.0, "{v}");
    }
}

#[test]
fn predict_refuses_files_without_the_models_columns_before_writing() {
    let s = trained();
    s.write("bad.csv", "a,b\n1,2\n");
    s.predict("checkpoints/best.mpk", "bad.csv", &["--out", "out.csv"])
        .bad_input("missing column 'packet_size', which the model was trained on");
    assert!(!s.exists("out.csv"));
    s.predict("checkpoints/best.mpk", "d.csv", &["--keep", "nope"])
        .bad_input("--keep: no column 'nope'");
}
