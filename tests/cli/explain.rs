//! `explain` and `predict --explain`: permutation importance and per-row reasons, for every
//! family through the one scorer.

use crate::util::{Sandbox, uniform};

/// 1,200 rows where the label depends on `a` and `b` only: `c`, `d`, `e` and the categorical
/// `proto` are noise.
fn two_signal_columns(s: &Sandbox) {
    let mut u = uniform(11);
    let mut body = String::from("a,c,b,d,proto,e,label\n");
    for _ in 0..1200 {
        let (a, b, c, d, e) = (u(), u(), u(), u(), u());
        let proto = ["tcp", "udp", "icmp"][(u() * 3.0) as usize];
        let label = (a + b > 1.1) as u8;
        body += &format!("{a:.4},{c:.4},{b:.4},{d:.4},{proto},{e:.4},{label}\n");
    }
    s.write("two.csv", body);
}

fn ranked(report: &serde_json::Value) -> Vec<String> {
    report["importance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["feature"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn permutation_importance_ranks_the_two_signal_columns_first_for_every_family() {
    let s = Sandbox::new();
    two_signal_columns(&s);
    for (family, extra) in [
        ("mlp", &["--set", "training.epochs=40"][..]),
        ("random_forest", &["--set", "model.kind=random_forest"][..]),
    ] {
        let dir = format!("checkpoint.save_dir=ck_{family}");
        let mut args = vec!["--set", "data.categorical_columns=[proto]", "--set", &dir];
        args.extend_from_slice(extra);
        s.train("two.csv", &args).ok();
        let ck = format!("ck_{family}/best.mpk");
        let report = s
            .run(&["explain", "--checkpoint", &ck, "--json", "--out", "why"])
            .ok()
            .json();
        let names = ranked(&report);
        assert_eq!(report["measure"], "roc_auc_drop");
        let mut top: Vec<&str> = names[..2].iter().map(String::as_str).collect();
        top.sort();
        assert_eq!(top, ["a", "b"], "{family}: {names:?}");
        // The one-hot column is one entry, under its own name.
        assert_eq!(names.len(), 6, "{names:?}");
        assert_eq!(names.iter().filter(|n| n.starts_with("proto")).count(), 1);
        assert!(names.contains(&"proto".to_string()));
        let first = &report["importance"][0];
        let (m, lo, hi) = (
            first["importance"].as_f64().unwrap(),
            first["low"].as_f64().unwrap(),
            first["high"].as_f64().unwrap(),
        );
        assert!(lo <= m && m <= hi && m > 0.05, "{first}");
        // The files: JSON as printed, the ranking as CSV, the chart, and one line per reason.
        assert_eq!(s.read_json("why/importance.json"), report);
        let csv = std::fs::read_to_string(s.path("why/importance.csv")).unwrap();
        assert!(
            csv.starts_with("feature,importance,ci_low,ci_high\n"),
            "{csv}"
        );
        assert!(
            std::fs::read_to_string(s.path("why/importance.svg"))
                .unwrap()
                .contains("<svg")
        );
        assert!(s.exists("why/importance.png"));
        // Per row, too: a and b are the columns most often named as flagged rows' first reason.
        let mut first: std::collections::BTreeMap<&str, usize> = Default::default();
        for f in report["flagged"].as_array().unwrap() {
            *first
                .entry(f["reasons"][0]["feature"].as_str().unwrap())
                .or_default() += 1;
        }
        let mut by_count: Vec<(&str, usize)> = first.into_iter().collect();
        by_count.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
        let mut top: Vec<&str> = by_count.iter().take(2).map(|x| x.0).collect();
        top.sort();
        assert_eq!(top, ["a", "b"], "{family}: {by_count:?}");
        let reasons = std::fs::read_to_string(s.path("why/reasons.csv")).unwrap();
        let flagged = report["flagged"].as_array().unwrap().len();
        assert!(flagged > 0);
        assert!(reasons.lines().count() > flagged, "{reasons}");
    }
}

#[test]
fn explanations_are_reproducible_with_a_seed() {
    let s = Sandbox::new();
    two_signal_columns(&s);
    s.train("two.csv", &["--set", "data.categorical_columns=[proto]"])
        .ok();
    let explain = |seed: &str| {
        s.run(&[
            "explain",
            "--checkpoint",
            "checkpoints/best.mpk",
            "--json",
            "--seed",
            seed,
        ])
        .ok()
        .stdout
    };
    assert_eq!(explain("3"), explain("3"));
    assert_ne!(explain("3"), explain("4"));
}

#[test]
fn a_checkpoint_from_before_explanations_is_refused_with_a_reason() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1/best.mpk");
    Sandbox::new()
        .run(&["explain", "--checkpoint", fixture])
        .bad_input("holds no profile of its training rows");
}

/// Normal rows around 0.5 in every column, and a file of typical rows where row 2 is extreme
/// in `d` alone.
fn one_extreme_column(s: &Sandbox) {
    let mut u = uniform(5);
    let mut body = String::from("a,b,c,d,e,label\n");
    for _ in 0..800 {
        let v: Vec<String> = (0..5).map(|_| format!("{:.4}", 0.4 + 0.2 * u())).collect();
        body += &format!("{},0\n", v.join(","));
    }
    s.write("normal.csv", body);
    s.write(
        "probe.csv",
        "a,b,c,d,e\n0.5,0.5,0.5,0.5,0.5\n0.5,0.5,0.5,9.0,0.5\n0.52,0.48,0.5,0.49,0.51\n",
    );
}

#[test]
fn a_row_extreme_in_one_column_names_that_column_first() {
    let s = Sandbox::new();
    one_extreme_column(&s);
    for family in ["isolation_forest", "autoencoder"] {
        let dir = format!("checkpoint.save_dir=ck_{family}");
        let kind = format!("model.kind={family}");
        let args = ["--set", &kind, "--set", &dir, "--set", "training.epochs=30"];
        s.train("normal.csv", &args).ok();
        let ck = format!("ck_{family}/best.mpk");
        let out = s
            .predict(&ck, "probe.csv", &["--explain", "2", "--format", "jsonl"])
            .ok();
        let rows: Vec<serde_json::Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows[1]["is_anomaly"], true, "{family}: {}", out.stdout);
        let first = &rows[1]["reasons"][0];
        assert_eq!(first["feature"], "d", "{family}: {}", rows[1]);
        assert_eq!(first["value"], "9");
        assert_eq!(first["percentile"], 100.0);
        assert!(first["effect"].as_f64().unwrap() > 0.0);
        // Unflagged rows carry no reasons.
        assert_eq!(rows[0]["is_anomaly"], false, "{family}: {}", out.stdout);
        assert!(rows[0].get("reasons").is_none());
        // CSV: reason_1 … reason_K, empty on unflagged rows.
        let csv = s.predict(&ck, "probe.csv", &["--explain", "2"]).ok().stdout;
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "row,score,is_anomaly,reason_1,reason_2,error");
        assert!(
            lines[2].contains(",\"d = 9 (100.0th percentile of training rows, median 0."),
            "{csv}"
        );
        assert!(lines[1].ends_with("false,,,"), "{csv}");
    }
}
