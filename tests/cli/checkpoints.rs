//! Checkpoint format 2 (a family tag and the family's payload), the format-1 files earlier
//! releases wrote, and checkpoints as untrusted input.

use anomaly::checkpoint::{Checkpoint, EpochRecord};

use crate::util::{FAST, Sandbox};

/// A format-1 checkpoint written by anomaly 0.1.0 before detector families existed, with
/// these settings on data/sample.csv, and its `test --json` output (tests/fixtures/v1/).
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1/best.mpk");
const FIXTURE_REPORT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1/test.json");
/// The training history those settings give since losses are summed in row order.
const HISTORY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/history.json");
const FIXTURE_SETTINGS: &[&str] = &[
    "--set",
    "model.hidden_dims=[16, 8]",
    "--set",
    "training.epochs=12",
    "--set",
    "training.threshold=max_f1",
    "--set",
    "logging.run_name=fixture",
    "--set",
    "checkpoint.save_frequency=0",
];

/// A sandbox holding `data/sample.csv`, where the fixture's stored config looks for it.
fn with_sample() -> Sandbox {
    let s = Sandbox::new();
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/data/sample.csv");
    s.write("data/sample.csv", std::fs::read(sample).unwrap());
    s
}

fn recorded() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(FIXTURE_REPORT).unwrap()).unwrap()
}

fn same_report(got: &serde_json::Value, want: &serde_json::Value) {
    for key in [
        "metrics",
        "intervals",
        "baseline",
        "beats_baseline",
        "verdict",
        "classes",
    ] {
        assert_eq!(got[key], want[key], "{key}");
    }
}

#[test]
fn a_format_1_checkpoint_loads_and_reproduces_its_recorded_metrics() {
    let s = with_sample();
    let ck = Checkpoint::load(std::path::Path::new(FIXTURE)).unwrap();
    assert_eq!((ck.format_version, ck.detector.family()), (1, "mlp"));
    let got = s.test_json(FIXTURE, &["--no-write", "--device", "cpu"]);
    same_report(&got, &recorded());
    // It scores new rows too; changing the rule needs the training scores it does not keep.
    s.predict(FIXTURE, "data/sample.csv", &[]).ok();
    s.predict(FIXTURE, "data/sample.csv", &["--contamination", "0.1"])
        .bad_input("keeps no training scores");
}

/// The redesign changed no number: the fixture's settings train, today, to the same weights
/// (bytes), threshold, validation losses and test metrics as the format-1 build recorded. The
/// training losses are now summed on the host in row order, the same on AVX2 and AVX-512
/// (the format-1 build summed them in vector lanes): tests/fixtures/history.json holds that
/// history, bit for bit.
#[test]
fn training_with_the_fixtures_settings_gives_its_weights_byte_for_byte() {
    let s = with_sample();
    let mut args = vec!["train", "--quiet", "--device", "cpu"];
    args.extend_from_slice(FIXTURE_SETTINGS);
    s.run(&args).ok();
    let new = Checkpoint::load(&s.path("checkpoints/best.mpk")).unwrap();
    let old = Checkpoint::load(std::path::Path::new(FIXTURE)).unwrap();
    assert_eq!(new.format_version, 2);
    assert!(new.detector == old.detector, "the weights differ");
    assert_eq!(
        (new.threshold, new.weights_epoch),
        (old.threshold, old.weights_epoch)
    );
    let history: Vec<EpochRecord> =
        serde_json::from_str(&std::fs::read_to_string(HISTORY).unwrap()).unwrap();
    assert_eq!(new.history, history);
    let val = |h: &[EpochRecord]| h.iter().map(|r| (r.epoch, r.val_loss)).collect::<Vec<_>>();
    assert_eq!(val(&new.history), val(&old.history));
    let got = s.test_json("checkpoints/best.mpk", &["--no-write", "--device", "cpu"]);
    same_report(&got, &recorded());
}

#[test]
fn every_family_round_trips_through_format_2() {
    let s = Sandbox::new();
    s.sample("d.csv", 500, 8);
    for family in ["mlp", "resmlp"] {
        let kind = format!("model.kind={family}");
        let dir = format!("checkpoint.save_dir={family}");
        s.train("d.csv", &["--set", &kind, "--set", &dir]).ok();
        let path = s.path(&format!("{family}/best.mpk"));
        let ck = Checkpoint::load(&path).unwrap();
        assert_eq!(ck.detector.family(), family);
        assert!(ck.train_state.is_none() && !ck.train_score_quantiles.is_empty());
        let copy = s.path(&format!("{family}/copy.mpk"));
        ck.save(&copy).unwrap();
        let back = Checkpoint::load(&copy).unwrap();
        assert!(back.detector == ck.detector);
        assert_eq!(back.train_score_quantiles, ck.train_score_quantiles);
        let scores = |p: &std::path::Path| s.predict(p.to_str().unwrap(), "d.csv", &[]).ok().stdout;
        assert_eq!(scores(&path), scores(&copy));
        // last.mpk keeps the optimizer state a resume needs.
        let last = Checkpoint::load(&s.path(&format!("{family}/last.mpk"))).unwrap();
        assert!(!last.train_state.unwrap().optimizer.is_empty());
    }
}

#[test]
fn a_checkpoint_whose_stored_config_is_invalid_is_refused() {
    let s = Sandbox::new();
    s.sample("d.csv", 300, 9);
    s.train("d.csv", &[]).ok();
    let mut ck = Checkpoint::load(&s.path("checkpoints/last.mpk")).unwrap();
    ck.config.training.batch_size = 0;
    ck.save(&s.path("crafted.mpk")).unwrap();
    s.run(&["train", "--resume", "crafted.mpk"])
        .bad_input("training.batch_size: expected at least 1");
    s.run(&["test", "--checkpoint", "crafted.mpk"])
        .bad_input("crafted.mpk: its stored config is invalid");
}

#[test]
fn resume_extends_a_run_with_more_epochs_and_refuses_other_changes() {
    let s = Sandbox::new();
    s.sample("d.csv", 300, 10);
    s.train("d.csv", &["--set", "training.early_stopping.enabled=false"])
        .ok();
    let resume = |extra: &[&str]| {
        let mut args = vec!["train", "--quiet", "--resume", "checkpoints/last.mpk"];
        args.extend_from_slice(extra);
        s.run(&args)
    };
    resume(&["--set", "model.dropout=0.1"])
        .bad_input("--set model.dropout: a resumed run keeps its stored config");
    s.write("other.yaml", "training:\n  epochs: 9\n");
    resume(&["--config", "other.yaml"]).bad_input("--config other.yaml would not be applied");
    resume(&["--set", "training.epochs=6"]).ok();
    let ck = Checkpoint::load(&s.path("checkpoints/last.mpk")).unwrap();
    assert_eq!(ck.epoch, 6);
    assert_eq!(ck.history.len(), 6);
    assert_eq!(ck.config.training.epochs, 6);
    // FAST trains 4 epochs; the two added ones continue, not restart, the run.
    assert_eq!(ck.history[4].epoch, 5);
    assert!(FAST.contains(&"training.epochs=4"));
}
