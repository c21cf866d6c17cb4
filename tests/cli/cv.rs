//! `anomaly cv`: leak-free folds, separate fold jobs, resuming, and bad parameters.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anomaly::checkpoint::Checkpoint;

use crate::util::Sandbox;

fn rows(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_u64().unwrap() as usize)
        .collect()
}

/// The 0/1 labels of data/sample-schema files, by data-record number.
fn labels(s: &Sandbox, rel: &str) -> Vec<bool> {
    let text = std::fs::read_to_string(s.path(rel)).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').nth(8) == Some("1.0"))
        .collect()
}

fn as_str(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn folds_cover_every_non_test_row_once_and_keep_the_class_ratio() {
    let s = Sandbox::new();
    s.sample("d.csv", 1000, 11);
    let summary = s.cv("d.csv", &["--folds", "3", "--json"]).ok().json();
    assert_eq!(summary["n_splits"], 3);
    assert_eq!(summary["folds"].as_array().unwrap().len(), 3);

    let plan = s.read_json("checkpoints/folds.json");
    let test: BTreeSet<usize> = rows(&plan["test_rows"]).into_iter().collect();
    assert_eq!(test.len(), 200);
    let y = labels(&s, "d.csv");
    let mut seen = BTreeSet::new();
    let pool_pos = (0..1000).filter(|r| !test.contains(r) && y[*r]).count() as f64;
    for fold in plan["folds"].as_array().unwrap() {
        let fold = rows(fold);
        for &r in &fold {
            assert!(!test.contains(&r), "test row {r} is in a fold");
            assert!(seen.insert(r), "row {r} is in two folds");
        }
        let pos = fold.iter().filter(|&&r| y[r]).count() as f64;
        assert!((pos - pool_pos * fold.len() as f64 / 800.0).abs() <= 1.0);
    }
    assert_eq!(seen.len(), 800);

    for k in 1..=3 {
        let ck = Checkpoint::load(&s.path(&format!("checkpoints/fold_{k}/best.mpk"))).unwrap();
        // Each fold trains on the other two folds and validates on its own.
        assert_eq!(ck.data.train_rows + ck.data.val_rows, 800);
        assert!(s.exists(&format!("runs/t/fold_{k}")));
    }
    let csv = std::fs::read_to_string(s.path("checkpoints/cv_summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 + 4, "{csv}");
    assert!(csv.starts_with("fold,accuracy,precision,recall,f1,roc_auc,pr_auc,best_epoch"));
}

#[test]
fn separate_fold_jobs_aggregate_to_the_same_summary_as_one_run() {
    let s = Sandbox::new();
    s.sample("d.csv", 600, 12);
    let full = s
        .cv(
            "d.csv",
            &[
                "--folds",
                "3",
                "--json",
                "--set",
                "checkpoint.save_dir=full",
            ],
        )
        .ok()
        .json();
    let jobs = ["--folds", "3", "--set", "checkpoint.save_dir=jobs"];
    s.cv("d.csv", &[&jobs[..], &["--fold", "2"]].concat()).ok();
    s.cv("d.csv", &[&jobs[..], &["--aggregate"]].concat())
        .bad_input("fold 1 has no results");
    s.cv("d.csv", &[&jobs[..], &["--fold", "1"]].concat()).ok();
    s.cv("d.csv", &[&jobs[..], &["--fold", "3"]].concat()).ok();
    let merged = s
        .cv("d.csv", &[&jobs[..], &["--aggregate", "--json"]].concat())
        .ok()
        .json();
    assert_eq!(full, merged);
}

#[test]
fn an_interrupted_cv_run_skips_finished_folds_and_resumes_the_cut_one() {
    let s = Sandbox::new();
    s.sample("d.csv", 6000, 13);
    let args = |dir: &str| -> Vec<String> {
        [
            "cv",
            "--quiet",
            "--folds",
            "3",
            "--json",
            "--set",
            "data.path=d.csv",
            "--set",
            "model.hidden_dims=[16, 8]",
            "--set",
            "training.epochs=6",
            "--set",
            "training.batch_size=32",
            "--set",
            "training.early_stopping.patience=100",
            "--set",
            "logging.run_name=r",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain(["--set".to_string(), format!("checkpoint.save_dir={dir}")])
        .collect()
    };
    let full = s.run(&as_str(&args("full"))).ok().json();

    let mut child = s.command(&as_str(&args("cut"))).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !s.exists("cut/fold_1/metrics.json") {
        assert!(Instant::now() < deadline, "fold 1 did not finish in 120 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !s.exists("cut/cv_summary.json"),
        "the run finished before it could be cut"
    );

    let cut_args = args("cut");
    let mut again = as_str(&cut_args);
    again.retain(|a| *a != "--quiet" && *a != "--json");
    let resumed = s.run(&again).ok();
    assert!(
        resumed.stdout.contains("fold 1/3: already done"),
        "{}",
        resumed.stdout
    );
    assert_eq!(full, s.read_json("cut/cv_summary.json"));
}

#[test]
fn augmentation_inside_folds_touches_only_the_training_part() {
    let s = Sandbox::new();
    s.sample("d.csv", 1000, 14);
    s.cv(
        "d.csv",
        &[
            "--folds",
            "2",
            "--set",
            "augmentation.enabled=true",
            "--set",
            "augmentation.target_positive_ratio=0.4",
        ],
    )
    .ok();
    for k in 1..=2 {
        let ck = Checkpoint::load(&s.path(&format!("checkpoints/fold_{k}/best.mpk"))).unwrap();
        let ratio = ck.data.train_positives as f64 / ck.data.train_rows as f64;
        assert!((ratio - 0.4).abs() < 0.01, "fold {k}: {ratio}");
        assert_eq!(ck.data.val_rows, 400, "validation rows are never augmented");
    }
}

#[test]
fn bad_cv_parameters_are_refused() {
    let s = Sandbox::new();
    s.sample("d.csv", 300, 15);
    s.cv("d.csv", &["--folds", "1"])
        .bad_input("--folds 1: expected at least 2");
    s.cv("d.csv", &["--folds", "200"]).bad_input("use at most");
    s.cv("d.csv", &["--folds", "3", "--fold", "4"])
        .bad_input("--fold 4: expected a fold between 1 and 3");
    assert!(!s.exists("checkpoints/fold_1"));
}

#[test]
fn the_final_model_trains_on_all_non_test_rows_for_the_mean_best_epoch() {
    let s = Sandbox::new();
    s.sample("d.csv", 800, 17);
    let summary = s
        .cv(
            "d.csv",
            &[
                "--folds",
                "2",
                "--json",
                "--set",
                "cross_validation.final_model=true",
            ],
        )
        .ok()
        .json();
    let ck = Checkpoint::load(&s.path("checkpoints/final.mpk")).unwrap();
    let epochs = summary["mean_best_epoch"].as_f64().unwrap().round() as usize;
    assert_eq!(ck.history.len(), epochs);
    assert_eq!((ck.data.train_rows, ck.data.val_rows), (640, 0));
    let thresholds: f64 = summary["folds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["metrics"]["threshold"].as_f64().unwrap())
        .sum();
    assert!((ck.threshold as f64 - thresholds / 2.0).abs() < 1e-6);
    // It evaluates on the same held-out test rows as any other checkpoint of this config.
    assert_eq!(
        s.test_json("checkpoints/final.mpk", &[])["metrics"]["rows"],
        160
    );
}
