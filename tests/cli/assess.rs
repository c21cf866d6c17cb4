//! `anomaly assess` reports, and the baseline verdict shared with `test`.

use crate::tensorboard::tags_in;
use crate::util::Sandbox;

const FIGURES: &[&str] = &[
    "class_balance",
    "confusion_matrix",
    "confusion_matrix_normalized",
    "roc_curve",
    "pr_curve",
    "score_distribution",
    "threshold_sweep",
];

/// The page may name the SVG namespace, and nothing else that would be fetched.
fn assert_self_contained(html: &str) {
    let stripped = html
        .replace("xmlns=\"http://www.w3.org/2000/svg\"", "")
        .replace("xmlns:xlink=\"http://www.w3.org/1999/xlink\"", "");
    for bad in ["http:", "https:", "<script", "<link", "src="] {
        assert!(!stripped.contains(bad), "the report contains {bad:?}");
    }
}

#[test]
fn assess_writes_a_self_contained_report_whose_test_metrics_equal_test() {
    let s = Sandbox::new();
    s.sample("d.csv", 800, 31);
    s.train("d.csv", &[]).ok();
    let out = s
        .run(&[
            "assess",
            "--checkpoint",
            "checkpoints/best.mpk",
            "--out",
            "rep",
            "--bootstrap",
            "200",
        ])
        .ok();
    assert!(out.stdout.contains("test: The model"), "{}", out.stdout);

    let html = std::fs::read_to_string(s.path("rep/report.html")).unwrap();
    assert_self_contained(&html);
    for f in FIGURES.iter().chain(&["training_curves"]) {
        assert!(
            s.exists(&format!("rep/{f}.svg")) && s.exists(&format!("rep/{f}.png")),
            "{f} files"
        );
        assert!(
            html.contains(&format!("<figure id=\"{f}\"><svg")),
            "{f} is not inlined in the report"
        );
    }
    for header in [
        "checkpoints/best.mpk",
        "d.csv (sha256 ",
        "anomaly 0.1.0",
        " UTC",
        "the resolved config",
    ] {
        assert!(html.contains(header), "header lacks {header:?}");
    }
    // PNGs are real PNGs of the figure size.
    let png = std::fs::read(s.path("rep/roc_curve.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 800);

    let report = s.read_json("rep/metrics.json");
    let sets: Vec<&str> = report["sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[0].as_str().unwrap())
        .collect();
    assert_eq!(sets, ["train", "validation", "test"]);
    let test = s.test_json(
        "checkpoints/best.mpk",
        &["--no-write", "--bootstrap", "200"],
    );
    assert_eq!(report["sets"][2][1]["metrics"], test["metrics"]);
    assert_eq!(report["sets"][2][1]["intervals"], test["intervals"]);
    assert_eq!(report["sets"][2][1]["baseline"], test["baseline"]);

    let csv = std::fs::read_to_string(s.path("rep/metrics.csv")).unwrap();
    assert!(csv.starts_with("set,metric,value,ci_low,ci_high,baseline\n"));
    assert_eq!(csv.lines().count(), 1 + 3 * 6);

    let tags = tags_in(&s.path("runs/t"));
    assert!(
        tags.iter().any(|r| r.contains("Assess/roc_curve")),
        "no figure image in TensorBoard"
    );
    assert!(
        tags.iter().any(|r| r.contains("Assess/test/AUC")),
        "no assess scalar in TensorBoard"
    );
}

#[test]
fn a_model_without_signal_is_reported_as_not_beating_the_baseline() {
    let s = Sandbox::new();
    // Labels unrelated to the features, 10% anomalies.
    let mut text = String::from("a,b,c,label\n");
    for i in 0..2000u64 {
        let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        text += &format!(
            "{},{},{},{}\n",
            h % 997,
            (h >> 20) % 101,
            (h >> 40) % 53,
            ((h >> 7) % 10 == 0) as u8
        );
    }
    s.write("noise.csv", text);
    s.train("noise.csv", &["--set", "training.epochs=10"]).ok();
    let r = s.test_json("checkpoints/best.mpk", &["--no-write"]);
    assert_eq!(r["beats_baseline"], false, "{}", r["verdict"]);
    assert_eq!(r["baseline"]["majority_class"], "normal");
    let ci = &r["intervals"]["roc_auc"];
    assert!(
        ci["low"].as_f64().unwrap() <= 0.5 && 0.5 <= ci["high"].as_f64().unwrap(),
        "{ci}"
    );
    let table = s
        .run(&["test", "--checkpoint", "checkpoints/best.mpk", "--no-write"])
        .ok()
        .stdout;
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("The model does not beat the majority-class baseline"),
        "{table}"
    );

    s.run(&[
        "assess",
        "--checkpoint",
        "checkpoints/best.mpk",
        "--out",
        "rep",
        "--bootstrap",
        "200",
    ])
    .ok();
    let html = std::fs::read_to_string(s.path("rep/report.html")).unwrap();
    let banner = html
        .find("does not beat the majority-class baseline")
        .expect("no verdict in the report");
    assert!(
        banner < html.find("<table").unwrap(),
        "the verdict comes before the numbers"
    );
}

#[test]
fn assess_use_folds_reports_every_fold_and_the_spread() {
    let s = Sandbox::new();
    s.sample("d.csv", 600, 32);
    s.cv("d.csv", &["--folds", "3"]).ok();
    s.run(&[
        "assess",
        "--use-folds",
        "--set",
        "data.path=d.csv",
        "--set",
        "logging.run_name=t",
        "--bootstrap",
        "100",
    ])
    .ok();
    let html = std::fs::read_to_string(s.path("reports/cv/report.html")).unwrap();
    assert_self_contained(&html);
    for f in FIGURES.iter().chain(&[
        "fold_comparison",
        "training_curves_fold_1",
        "training_curves_fold_3",
    ]) {
        assert!(
            html.contains(&format!("<figure id=\"{f}\"><svg")),
            "{f} missing"
        );
    }
    let report = s.read_json("reports/cv/metrics.json");
    let sets: Vec<&str> = report["sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[0].as_str().unwrap())
        .collect();
    assert_eq!(sets, ["fold_1", "fold_2", "fold_3", "all folds"]);
    // Each fold is scored as cv scored it.
    let cv = s.read_json("checkpoints/cv_summary.json");
    for k in 0..3 {
        assert_eq!(report["sets"][k][1]["metrics"], cv["folds"][k]["metrics"]);
    }
    assert_eq!(report["folds"]["spread"], cv["spread"]);
}
