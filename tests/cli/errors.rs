//! Bad input of every kind: exit code 2, one line that names the culprit, no panic, and no
//! checkpoint or log left behind.

use anomaly::checkpoint::Checkpoint;

use crate::util::Sandbox;

fn train_fails_on(body: &str, culprit: &str, extra: &[&str]) {
    let s = Sandbox::new();
    s.write("bad.csv", body);
    s.train("bad.csv", extra).bad_input(culprit);
    for dir in ["checkpoints", "runs", "logs"] {
        assert!(
            !s.exists(dir),
            "{dir}/ was written for bad input {culprit:?}"
        );
    }
}

#[test]
fn bad_csv_files_name_the_file_line_or_column() {
    train_fails_on("a,b\n1,0\n2,1\n", "no label column 'label'", &[]);
    train_fails_on(
        "a,label\n1,0\n2,1\n3\n",
        "bad.csv: line 4: expected 2 fields, found 1",
        &[],
    );
    train_fails_on(
        "a,label\n1,0\nabc,1\n",
        "line 3, column 'a': expected a number, found \"abc\"",
        &[],
    );
    train_fails_on("", "bad.csv: the file is empty", &[]);
    train_fails_on("a,label\n", "bad.csv: no data rows", &[]);
    train_fails_on(
        "a,b,a,label\n1,2,3,0\n",
        "duplicate column name 'a' at positions 1 and 3",
        &[],
    );
    let one_class: String = "a,label\n".to_string() + &"1,0\n2,0\n".repeat(20);
    train_fails_on(&one_class, "the training rows hold a single class", &[]);
    train_fails_on(
        "a,label\n1,normal\n2,attack\n",
        "label 'normal' in column 'label' is text",
        &[],
    );
    train_fails_on(
        "a,label\n1,0\nInfinity,1\n",
        "column 'a' has 0 empty, 0 NaN and 1 infinite cells",
        &["--set", "data.missing=error"],
    );
}

#[test]
fn bad_config_names_the_key() {
    let s = Sandbox::new();
    s.write("c.yaml", "training:\n  epochz: 3\n");
    s.run(&["train", "--config", "c.yaml"])
        .bad_input("training.epochz: unknown field `epochz`");
    s.write("c.yaml", "training:\n  batch_size: many\n");
    s.run(&["train", "--config", "c.yaml"])
        .bad_input("training.batch_size: invalid type");
    s.run(&["train", "--config", "missing.yaml"])
        .bad_input("cannot read config missing.yaml");
    s.run(&["train", "--set", "data.val_size=0"])
        .bad_input("data.val_size");
    s.run(&["train", "--set", "training"])
        .bad_input("--set training: expected section.key=value");
    let r = s.run(&["train", "--no-such-flag"]);
    assert_eq!(r.code, 2);
    assert!(!r.stderr.contains("panicked"));
}

#[test]
fn bad_checkpoints_are_refused_with_the_reason() {
    let s = Sandbox::new();
    s.sample("data.csv", 400, 1);
    s.train("data.csv", &[]).ok();
    let good = std::fs::read(s.path("checkpoints/best.mpk")).unwrap();

    s.write("truncated.mpk", &good[..good.len() / 2]);
    s.run(&["test", "--checkpoint", "truncated.mpk"])
        .bad_input("truncated.mpk: the checkpoint is truncated or corrupted");
    s.write("other.mpk", b"PK\x03\x04 not a checkpoint");
    s.run(&["test", "--checkpoint", "other.mpk"])
        .bad_input("other.mpk: not an anomaly checkpoint");
    let mut flipped = good.clone();
    let at = good.len() - 200;
    flipped[at..at + 64].iter_mut().for_each(|b| *b = 0xc1); // 0xc1 is never valid MessagePack
    s.write("corrupted.mpk", &flipped);
    s.run(&["test", "--checkpoint", "corrupted.mpk"])
        .bad_input("corrupted.mpk");
    s.run(&["test", "--checkpoint", "absent.mpk"])
        .bad_input("absent.mpk");
    let mut future = Checkpoint::load(&s.path("checkpoints/best.mpk")).unwrap();
    future.format_version = 99;
    future.save(&s.path("future.mpk")).unwrap();
    s.run(&["test", "--checkpoint", "future.mpk"])
        .bad_input("checkpoint format version 99");

    // A file of another schema: same label, other feature columns.
    s.write("other_schema.csv", "x,y,label\n1,2,0\n3,4,1\n");
    s.run(&[
        "test",
        "--checkpoint",
        "checkpoints/best.mpk",
        "--data",
        "other_schema.csv",
    ])
    .bad_input("other_schema.csv: missing column 'packet_size', which the model was trained on");
    // Resuming on different data is refused rather than silently mixing runs.
    s.sample("data.csv", 500, 2);
    s.run(&["train", "--resume", "checkpoints/last.mpk"])
        .bad_input("--resume: the checkpoint was trained on other data");
    // best.mpk holds no optimizer state.
    s.sample("data.csv", 400, 1);
    s.run(&["train", "--resume", "checkpoints/best.mpk"])
        .bad_input("resume from last.mpk");
}

#[test]
fn test_refuses_zero_bootstrap_resamples_as_assess_does() {
    let s = Sandbox::new();
    s.sample("d.csv", 300, 11);
    s.train("d.csv", &[]).ok();
    for cmd in ["test", "assess"] {
        s.run(&[
            cmd,
            "--checkpoint",
            "checkpoints/best.mpk",
            "--bootstrap",
            "0",
        ])
        .bad_input("--bootstrap 0: expected at least 1 resample");
    }
}

#[test]
fn a_hand_edited_folds_json_with_a_wrong_fold_count_is_an_error() {
    let s = Sandbox::new();
    s.sample("d.csv", 300, 12);
    s.cv("d.csv", &["--folds", "2"]).ok();
    let path = s.path("checkpoints/folds.json");
    let mut plan: serde_json::Value = s.read_json("checkpoints/folds.json");
    plan["n_splits"] = 3.into();
    std::fs::write(&path, plan.to_string()).unwrap();
    s.run(&["assess", "--use-folds", "--set", "data.path=d.csv"])
        .bad_input("folds.json: n_splits is 3 but the file lists 2 folds");
}

/// A separate validation file (`use_augmented_data`) may hold a class the augmented training
/// file lacks: it is counted apart, not indexed out of bounds.
#[test]
fn a_validation_class_missing_from_the_augmented_training_file_is_no_crash() {
    let s = Sandbox::new();
    let rows = |classes: &[&str], n: usize| {
        let mut body = String::from("bytes,label\n");
        for i in 0..n {
            let c = classes[i % classes.len()];
            let base = match c {
                "normal" => 0.0,
                "dos" => 50.0,
                _ => 100.0,
            };
            body += &format!("{},{c}\n", base + (i % 11) as f64);
        }
        body
    };
    s.write(
        "data/augmented/train_data_augmented.csv",
        rows(&["normal", "dos"], 200),
    );
    s.write(
        "data/augmented/val_data.csv",
        rows(&["normal", "dos", "probe"], 60),
    );
    s.write(
        "data/augmented/test_data.csv",
        rows(&["normal", "dos", "probe"], 60),
    );
    let multiclass = [
        "--set",
        "task=multiclass",
        "--set",
        "data.negative_labels=[normal]",
        "--set",
        "data.use_augmented_data=true",
    ];
    s.train("data/augmented/train_data_augmented.csv", &multiclass)
        .ok();
    let mut args = vec!["--no-write"];
    args.extend_from_slice(&multiclass);
    let report = s.test_json("checkpoints/best.mpk", &args);
    assert_eq!(report["metrics"]["rows"], 60);
    assert!(
        report["notices"].to_string().contains("probe (20)"),
        "{report}"
    );
}
