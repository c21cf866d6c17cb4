//! Training and testing end to end: file formats, checkpoints, determinism and exact resume.

use std::io::Write;
use std::time::{Duration, Instant};

use anomaly::checkpoint::Checkpoint;

use crate::util::Sandbox;

/// Rows of a flow-like file whose label depends on `bytes` and `proto`, with text labels.
fn flows(rows: usize, sep_label: impl Fn(bool) -> &'static str) -> String {
    let mut s = String::new();
    for i in 0..rows {
        let proto = ["tcp", "udp", "icmp"][i % 3];
        let bytes = (i * 37 % 1000) as f64;
        let attack = bytes > 700.0 || (proto == "icmp" && bytes > 400.0);
        let rate = if i % 50 == 7 {
            "Infinity".to_string()
        } else if i % 50 == 9 {
            "NaN".into()
        } else {
            format!("{}", i % 13)
        };
        s.push_str(&format!("{bytes},{proto},{rate},{}\n", sep_label(attack)));
    }
    s
}

#[test]
fn trains_and_tests_on_every_supported_file_shape() {
    let s = Sandbox::new();
    let body = flows(600, |a| if a { "attack" } else { "normal" });
    s.write("flows.csv", format!(" Bytes , Proto, Rate ,Label\n{body}"));
    let neg = [
        "--set",
        "data.label_column=Label",
        "--set",
        "data.negative_labels=[normal]",
    ];
    let out = s.train("flows.csv", &neg).ok();
    assert!(out.stdout.is_empty(), "--quiet printed: {}", out.stdout);
    let m = &s.test_json("checkpoints/best.mpk", &[])["metrics"];
    assert_eq!(m["rows"], 120);
    // Four short epochs rank well but are not yet calibrated at 0.5: check the ranking.
    assert!(m["roc_auc"].as_f64().unwrap() > 0.9, "{m}");

    // Headerless and gzip-compressed, with a trailing column to drop (as NSL-KDD ships).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for line in body.lines() {
        writeln!(gz, "{line},17").unwrap();
    }
    s.write("flows.txt.gz", gz.finish().unwrap());
    s.train(
        "flows.txt.gz",
        &[
            "--set",
            "data.header=false",
            "--set",
            "data.columns=[bytes, proto, rate, label, difficulty]",
            "--set",
            "data.drop_columns=[difficulty]",
            "--set",
            "data.negative_labels=[normal]",
            "--set",
            "checkpoint.save_dir=ck_gz",
        ],
    )
    .ok();
    let ck = Checkpoint::load(&s.path("ck_gz/best.mpk")).unwrap();
    assert_eq!(
        ck.preprocessor.feature_names,
        ["bytes", "proto=tcp", "proto=udp", "proto=icmp", "rate"]
    );

    // The same file evaluated with `--data`, with an unseen category counted, not fatal.
    s.write(
        "new.csv",
        " Bytes , Proto, Rate ,Label\n900,gre,1,attack\n10,tcp,2,normal\n",
    );
    let r = s.test_json("checkpoints/best.mpk", &["--data", "new.csv", "--no-write"]);
    assert_eq!(r["metrics"]["rows"], 2);
    let notices = r["notices"].to_string();
    assert!(
        notices.contains("'Proto': 1 cells hold categories unseen in training"),
        "{notices}"
    );
}

#[test]
fn checkpoints_are_self_contained_and_metrics_are_written() {
    let s = Sandbox::new();
    s.sample("d.csv", 800, 3);
    s.train(
        "d.csv",
        &[
            "--set",
            "checkpoint.save_frequency=2",
            "--set",
            "training.threshold=max_f1",
        ],
    )
    .ok();
    for f in [
        "best.mpk",
        "last.mpk",
        "checkpoint_epoch_2.mpk",
        "checkpoint_epoch_4.mpk",
        "config.yaml",
    ] {
        assert!(s.exists(&format!("checkpoints/{f}")), "{f} missing");
    }
    assert!(!s.exists("checkpoints/checkpoint_epoch_3.mpk"));
    let leftovers: Vec<_> = std::fs::read_dir(s.path("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let best = Checkpoint::load(&s.path("checkpoints/best.mpk")).unwrap();
    assert_eq!(best.history.len(), 4);
    assert!(best.train_state.is_none());
    assert!(best.threshold > 0.0 && best.threshold < 1.0);
    assert_eq!(best.config.training.epochs, 4);
    assert!(
        Checkpoint::load(&s.path("checkpoints/last.mpk"))
            .unwrap()
            .train_state
            .is_some()
    );

    // `test` needs only the checkpoint: run it from another folder with the data moved away.
    let other = Sandbox::new();
    std::fs::copy(s.path("checkpoints/best.mpk"), other.path("m.mpk")).unwrap();
    std::fs::rename(s.path("d.csv"), other.path("d.csv")).unwrap();
    let r = other.test_json("m.mpk", &[]);
    assert_eq!(r["metrics"]["rows"], 160);
    assert_eq!(
        r["metrics"]["threshold"].as_f64().unwrap() as f32,
        best.threshold
    );
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(other.path("metrics.json")).unwrap())
            .unwrap();
    assert_eq!(written["metrics"], r["metrics"]);

    let table = other
        .run(&["test", "--checkpoint", "m.mpk", "--no-write"])
        .ok()
        .stdout;
    for word in [
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "pr_auc",
        "confusion matrix",
    ] {
        assert!(table.contains(word), "{word} missing from:\n{table}");
    }
}

#[test]
fn the_same_seed_gives_the_same_weights_and_metrics_and_another_seed_does_not() {
    let s = Sandbox::new();
    s.sample("d.csv", 1000, 4);
    let run = |dir: &str, seed: &str| {
        let (d, sd) = (
            format!("checkpoint.save_dir={dir}"),
            format!("training.seed={seed}"),
        );
        s.train("d.csv", &["--set", &d, "--set", &sd]).ok();
        let metrics = s.test_json(&format!("{dir}/best.mpk"), &["--no-write"])["metrics"].clone();
        let weights = Checkpoint::load(&s.path(&format!("{dir}/best.mpk")))
            .unwrap()
            .detector;
        (metrics, weights)
    };
    let a = run("a", "7");
    let b = run("b", "7");
    assert_eq!(a.0, b.0);
    assert!(a.1 == b.1, "the same seed gave different weights");
    let c = run("c", "8");
    assert_ne!(a.0, c.0);
}

/// A run killed with SIGKILL mid-training and resumed from last.mpk ends bit-for-bit where an
/// uninterrupted run ends.
#[test]
fn a_killed_run_resumed_from_last_equals_an_uninterrupted_run() {
    let s = Sandbox::new();
    s.sample("d.csv", 12_000, 5);
    let settings = [
        "train",
        "--quiet",
        "--set",
        "data.path=d.csv",
        "--set",
        "model.hidden_dims=[32, 16]",
        "--set",
        "training.epochs=8",
        "--set",
        "training.batch_size=32",
        "--set",
        "training.step_size=3",
        "--set",
        "training.early_stopping.patience=100",
        "--set",
        "logging.run_name=r",
    ];
    let with_dir = |dir: &str| {
        let mut a: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
        a.extend(["--set".into(), format!("checkpoint.save_dir={dir}")]);
        a
    };
    let args = with_dir("full");
    s.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .ok();

    let args = with_dir("killed");
    let mut child = s
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !s.exists("killed/last.mpk") {
        assert!(Instant::now() < deadline, "no last.mpk after 120 s");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = Checkpoint::load(&s.path("killed/last.mpk")).unwrap();
    assert!(
        at_kill.epoch < 8,
        "the run finished before the kill; nothing was resumed"
    );

    s.run(&["train", "--quiet", "--resume", "killed/last.mpk"])
        .ok();
    for f in ["best.mpk", "last.mpk"] {
        let full = Checkpoint::load(&s.path(&format!("full/{f}"))).unwrap();
        let resumed = Checkpoint::load(&s.path(&format!("killed/{f}"))).unwrap();
        assert!(full.detector == resumed.detector, "{f}: weights differ");
        assert_eq!(full.train_score_quantiles, resumed.train_score_quantiles);
        assert_eq!(full.history, resumed.history, "{f}: history differs");
        assert_eq!(
            (full.epoch, full.weights_epoch, full.threshold),
            (resumed.epoch, resumed.weights_epoch, resumed.threshold)
        );
    }
    let full = s.test_json("full/best.mpk", &["--no-write"]);
    let resumed = s.test_json("killed/best.mpk", &["--no-write"]);
    assert_eq!(full["metrics"], resumed["metrics"]);
}

/// With batches split into parts trained on parallel threads (`training.shards`), the same
/// seed still gives the same weights, history and resumable state (`last.mpk`'s optimizer
/// bytes included) on 1 or 2 threads; and the parts are real:
/// one part per batch trains other weights.
#[test]
fn sharded_batches_give_the_same_bytes_on_any_thread_count() {
    let s = Sandbox::new();
    s.sample("flows.csv", 4000, 5);
    let fit = |threads: &str, shards: &str| {
        let save = format!("t{threads}s{shards}");
        let dir = format!("checkpoint.save_dir={save}");
        let shards = format!("training.shards={shards}");
        let args = [
            "train",
            "--quiet",
            "--set",
            "data.path=flows.csv",
            "--set",
            "training.epochs=3",
            "--set",
            "training.batch_size=2048",
            "--set",
            &shards,
            "--set",
            &dir,
        ];
        s.run_on_threads(&args, threads).ok();
        let ck = Checkpoint::load(&s.path(&format!("{save}/last.mpk"))).unwrap();
        // The resumable state too: the optimizer's moments are written in a fixed order.
        (ck.detector, ck.history, ck.train_state)
    };
    let one = fit("1", "4");
    assert!(
        one == fit("2", "4"),
        "other weights or state on two threads"
    );
    assert!(
        one.0 != fit("2", "1").0,
        "one part per batch trained the same weights"
    );
}
