//! `anomaly augment` and training on what it writes.

use std::collections::{BTreeMap, BTreeSet};

use crate::util::Sandbox;

/// 500 flows keyed by `id`, with a float, an integer port, a 0/1 one-hot and a text column.
fn flows(s: &Sandbox) {
    let mut text = String::from("id,x,port,onehot,proto,label\n");
    for i in 0..500 {
        let attack = i % 10 == 0;
        let x = (i as f64 * 0.37) % 10.0 + if attack { 4.0 } else { 0.0 };
        text += &format!(
            "{i},{x:.3},{},{},{},{}\n",
            1000 + i % 50,
            i % 2,
            ["tcp", "udp"][i % 2],
            attack as u8
        );
    }
    s.write("f.csv", text);
}

/// Data lines of a CSV, keyed by their first cell (the id).
fn by_id(s: &Sandbox, rel: &str) -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(s.path(rel)).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("id,x,port,onehot,proto,label"),
        "{rel}: the header is kept"
    );
    lines
        .map(|l| {
            (
                l.split(',').next().unwrap().to_string(),
                l.split(',').map(String::from).collect(),
            )
        })
        .collect()
}

const SETTINGS: &[&str] = &[
    "--set",
    "data.path=f.csv",
    "--set",
    "data.drop_columns=[id]",
];

#[test]
fn augment_hits_the_ratio_noises_only_numeric_columns_and_keeps_test_rows_out() {
    let s = Sandbox::new();
    flows(&s);
    let mut args = vec![
        "augment",
        "--target-positive-ratio",
        "0.3",
        "--noise-scale",
        "0.2",
    ];
    args.extend_from_slice(SETTINGS);
    s.run(&args).ok();

    let input: BTreeMap<String, Vec<String>> = by_id(&s, "f.csv").into_iter().collect();
    let train = by_id(&s, "data/augmented/train_data_augmented.csv");
    let val = by_id(&s, "data/augmented/val_data.csv");
    let test = by_id(&s, "data/augmented/test_data.csv");
    assert_eq!((val.len(), test.len()), (40, 100));

    // Validation and test rows are copied untouched, and no test row reaches training.
    for (id, row) in val.iter().chain(&test) {
        assert_eq!(&input[id], row);
    }
    let test_ids: BTreeSet<&String> = test.iter().map(|(id, _)| id).collect();
    assert!(train.iter().all(|(id, _)| !test_ids.contains(id)));

    let positives = train.iter().filter(|(_, r)| r[5] == "1").count() as f64;
    assert!((positives / train.len() as f64 - 0.3).abs() < 0.01);
    let mut noised = 0;
    for (id, row) in &train {
        let source = &input[id];
        assert!(row[3] == "0" || row[3] == "1", "one-hot noised: {row:?}");
        assert_eq!(
            (&row[3], &row[4], &row[5]),
            (&source[3], &source[4], &source[5])
        );
        assert!(
            row[2].parse::<i64>().is_ok(),
            "an integer column stays integer: {row:?}"
        );
        if row != source {
            noised += 1;
            let x: f64 = row[1].parse().unwrap();
            assert!(
                (0.0..=14.0).contains(&x),
                "clipped to the observed range: {x}"
            );
        }
    }
    assert!(noised > 100, "synthetic rows carry noise");

    let manifest = s.read_json("data/augmented/manifest.json");
    assert_eq!(manifest["train_before"]["anomalous"], 36);
    assert_eq!(manifest["noised_columns"], serde_json::json!(["x", "port"]));
    assert_eq!(manifest["input_sha256"].as_str().unwrap().len(), 64);

    // The same seed writes the same bytes.
    let first = std::fs::read(s.path("data/augmented/train_data_augmented.csv")).unwrap();
    args.extend_from_slice(&["--set", "augmentation.output_dir=again"]);
    s.run(&args).ok();
    assert!(first == std::fs::read(s.path("again/train_data_augmented.csv")).unwrap());
}

#[test]
fn undersampling_drops_normal_training_rows_only() {
    let s = Sandbox::new();
    flows(&s);
    let mut args = vec![
        "augment",
        "--strategy",
        "undersample",
        "--target-positive-ratio",
        "0.25",
    ];
    args.extend_from_slice(SETTINGS);
    s.run(&args).ok();
    let train = by_id(&s, "data/augmented/train_data_augmented.csv");
    let positives = train.iter().filter(|(_, r)| r[5] == "1").count();
    assert_eq!((positives, train.len()), (36, 144));
}

#[test]
fn train_uses_the_augmented_files_and_test_the_original_held_out_rows() {
    let s = Sandbox::new();
    s.sample("d.csv", 1000, 16);
    s.train("d.csv", &["--set", "data.use_augmented_data=true"])
        .bad_input("run `anomaly augment` first");
    s.run(&["augment", "--quiet", "--set", "data.path=d.csv"])
        .ok();
    s.train("d.csv", &["--set", "data.use_augmented_data=true"])
        .ok();
    let ck = anomaly::checkpoint::Checkpoint::load(&s.path("checkpoints/best.mpk")).unwrap();
    let ratio = ck.data.train_positives as f64 / ck.data.train_rows as f64;
    assert!((ratio - 0.3).abs() < 0.01, "{ratio}");
    let r = s.test_json("checkpoints/best.mpk", &[]);
    assert_eq!(r["metrics"]["rows"], 200);
    assert_eq!(r["data"], "data/augmented/test_data.csv");
}

#[test]
fn bad_augment_parameters_are_refused() {
    let s = Sandbox::new();
    flows(&s);
    for (flag, value, culprit) in [
        (
            "--target-positive-ratio",
            "1.5",
            "--target-positive-ratio 1.5",
        ),
        ("--target-positive-ratio", "0", "--target-positive-ratio 0"),
        ("--noise-scale", "-1", "--noise-scale -1"),
    ] {
        let mut args = vec!["augment", flag, value];
        args.extend_from_slice(SETTINGS);
        s.run(&args).bad_input(culprit);
    }
    assert!(!s.exists("data/augmented"));
}
