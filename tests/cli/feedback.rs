//! Analyst feedback: `feedback add` and `list`, and `train --resume-from --feedback`, which
//! must fix the judged false alarms without costing detection on the held-out rows.

use crate::util::{Run, Sandbox, uniform};

/// The rows (1-based) `predict` flags whose label says normal.
fn false_alarms(s: &Sandbox, checkpoint: &str, data: &str) -> Vec<usize> {
    let out = s
        .predict(checkpoint, data, &["--keep", "label"])
        .ok()
        .stdout;
    out.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let normal = f[1].parse::<f64>().unwrap() == 0.0;
            (normal && f[3] == "true").then(|| f[0].parse().unwrap())
        })
        .collect()
}

/// How many of `rows` `predict` flags.
fn flagged(s: &Sandbox, checkpoint: &str, data: &str, rows: &[usize]) -> usize {
    let out = s.predict(checkpoint, data, &[]).ok().stdout;
    out.lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split(',').collect();
            f[2] == "true" && rows.contains(&f[0].parse().unwrap())
        })
        .count()
}

/// `train --resume-from <checkpoint> --feedback <file>` plus `extra`.
fn retrain(s: &Sandbox, checkpoint: &str, file: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "train",
        "--quiet",
        "--resume-from",
        checkpoint,
        "--feedback",
        file,
    ];
    args.extend_from_slice(extra);
    s.run(&args)
}

fn judge(s: &Sandbox, checkpoint: &str, data: &str, rows: &[usize], verdict: &str) {
    for row in rows {
        let row = row.to_string();
        s.run(&[
            "feedback",
            "add",
            "--checkpoint",
            checkpoint,
            "--data",
            data,
            "--row",
            &row,
            "--verdict",
            verdict,
            "--quiet",
        ])
        .ok();
    }
}

#[test]
fn feedback_add_records_rows_and_list_summarises_them() {
    let s = Sandbox::new();
    s.sample("flows.csv", 600, 3);
    s.train("flows.csv", &[]).ok();
    let ck = "checkpoints/best.mpk";
    judge(&s, ck, "flows.csv", &[2, 5], "false_positive");
    judge(&s, ck, "flows.csv", &[9], "true_positive");
    let text = std::fs::read_to_string(s.path("feedback/feedback.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].ends_with(",score,verdict,model,time"),
        "{}",
        lines[0]
    );
    assert!(lines[3].contains(",true_positive,t,"), "{}", lines[3]);
    // The row's cells, as the file holds them (packet_size is the first input column).
    let flows = std::fs::read_to_string(s.path("flows.csv")).unwrap();
    let row9 = flows.lines().nth(9).unwrap();
    assert!(lines[3].starts_with(row9.split(',').next().unwrap()));

    let list = s.run(&["feedback", "list", "--json"]).ok().json();
    assert_eq!(list["rows"], 3);
    assert_eq!(list["verdicts"]["false_positive"], 2);
    assert_eq!(list["verdicts"]["true_positive"], 1);
    assert_eq!(list["models"]["t"], 3);

    let add = |row: &str, verdict: &str| {
        s.run(&[
            "feedback",
            "add",
            "--checkpoint",
            ck,
            "--data",
            "flows.csv",
            "--row",
            row,
            "--verdict",
            verdict,
        ])
    };
    add("601", "normal").bad_input("--row 601: flows.csv has 600 rows");
    assert_eq!(add("1", "benign").code, 2);
    assert_eq!(
        std::fs::read_to_string(s.path("feedback/feedback.csv")).unwrap(),
        text
    );
}

#[test]
fn retraining_on_false_positives_stops_those_alarms_and_keeps_held_out_auc() {
    let s = Sandbox::new();
    s.sample("flows.csv", 3000, 42);
    s.sample("live.csv", 2000, 7);
    // Flag the top 5% of the training rows: the small model makes a few dozen false alarms.
    let train = [
        "--set",
        "training.epochs=10",
        "--set",
        "training.threshold={contamination: 0.05}",
    ];
    s.train("flows.csv", &train).ok();
    let ck = "checkpoints/best.mpk";
    let alarms = false_alarms(&s, ck, "live.csv");
    assert!(alarms.len() >= 10, "{alarms:?}");
    judge(&s, ck, "live.csv", &alarms, "false_positive");
    let before = std::fs::read(s.path(ck)).unwrap();

    retrain(&s, ck, "feedback/feedback.csv", &[]).ok();
    assert_eq!(
        std::fs::read(s.path(ck)).unwrap(),
        before,
        "the old model changed"
    );
    let new = "checkpoints/retrained/best.mpk";
    let still = flagged(&s, new, "live.csv", &alarms);
    println!(
        "{still} of {} judged false alarms still flagged",
        alarms.len()
    );
    assert!(
        still * 5 <= alarms.len(),
        "{still} of {} judged false alarms still flagged",
        alarms.len()
    );
    // `test` shows both models; the held-out AUC stays within the default bound.
    let report = s.test_json(new, &["--no-write"]);
    let c = &report["feedback"];
    assert_eq!(c["judged_rows"], alarms.len());
    assert_eq!(c["old"]["normal_flagged"], alarms.len());
    assert_eq!(c["new"]["normal_flagged"], still);
    assert!(c["auc_drop"].as_f64().unwrap() <= 0.01, "{c}");
    let shown = s
        .run(&["test", "--checkpoint", new, "--no-write"])
        .ok()
        .stdout;
    assert!(shown.contains("old model    retrained"), "{shown}");

    // A bound nothing can meet: exit 1, and best.mpk is the old model again.
    let run = retrain(&s, ck, "feedback/feedback.csv", &["--max-regression=-1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("is the old model again"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(s.path(new)).unwrap(), before);
    assert!(s.exists("checkpoints/retrained/rejected.mpk"));
}

#[test]
fn an_unsupervised_model_takes_judged_false_positives_into_its_normal_set() {
    // Normal rows near 0.5, anomalies near 0; a recurring normal pattern (a backup job: `d`
    // at 3) that the autoencoder flags until analysts say it is normal.
    let s = Sandbox::new();
    let mut u = uniform(9);
    let mut row = |anomaly: bool, d: Option<f64>| {
        let v: Vec<String> = (0..5)
            .map(|i| {
                let x = if anomaly { 0.1 * u() } else { 0.4 + 0.2 * u() };
                let x = if i == 3 { d.unwrap_or(x) } else { x };
                format!("{x:.4}")
            })
            .collect();
        format!("{},{}\n", v.join(","), anomaly as u8)
    };
    let header = "a,b,c,d,e,label\n";
    let mut flows = header.to_string();
    for i in 0..1500 {
        flows += &row(i % 10 == 0, None);
    }
    s.write("flows.csv", flows);
    let mut backups = header.to_string();
    for i in 0..40 {
        backups += &row(false, Some(3.0 + 0.01 * i as f64));
    }
    s.write("backups.csv", backups);
    let autoencoder = [
        "--set",
        "model.kind=autoencoder",
        "--set",
        "training.epochs=20",
    ];
    s.train("flows.csv", &autoencoder).ok();
    let ck = "checkpoints/best.mpk";
    let all: Vec<usize> = (1..=40).collect();
    assert_eq!(flagged(&s, ck, "backups.csv", &all), 40);
    judge(
        &s,
        ck,
        "backups.csv",
        &(1..=10).collect::<Vec<_>>(),
        "false_positive",
    );
    retrain(&s, ck, "feedback/feedback.csv", &[]).ok();
    let new = "checkpoints/retrained/best.mpk";
    // The 30 backup rows nobody judged are no longer alarms either.
    let unjudged: Vec<usize> = (11..=40).collect();
    assert_eq!(flagged(&s, new, "backups.csv", &unjudged), 0);
    let c = &s.test_json(new, &["--no-write"])["feedback"];
    assert!(c["auc_drop"].as_f64().unwrap() <= 0.01, "{c}");
}

#[test]
fn a_feedback_file_that_does_not_match_the_model_is_refused_naming_the_column() {
    let s = Sandbox::new();
    s.sample("flows.csv", 600, 3);
    s.train("flows.csv", &[]).ok();
    s.write(
        "other.csv",
        "packet_size,score,verdict,model,time\n1,0.9,normal,t,x\n",
    );
    retrain(&s, "checkpoints/best.mpk", "other.csv", &[]).bad_input(
        "feedback file other.csv: no column 'inter_arrival_time', which the model was trained on",
    );
    assert!(!s.exists("checkpoints/retrained/best.mpk"));
    judge(&s, "checkpoints/best.mpk", "flows.csv", &[1], "normal");
    let text = std::fs::read_to_string(s.path("feedback/feedback.csv")).unwrap();
    s.write(
        "feedback/feedback.csv",
        text.replace(",normal,", ",benign,"),
    );
    retrain(&s, "checkpoints/best.mpk", "feedback/feedback.csv", &[])
    .bad_input("row 1: verdict \"benign\": expected true_positive, false_positive, false_negative or normal");
}
