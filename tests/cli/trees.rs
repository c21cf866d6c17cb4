//! The tree families (random forest, gradient boosting): supervised classifiers through the
//! same data path, decision rules, checkpoints and commands as the MLP families, binary and
//! multiclass.

use anomaly::train::checkpoint::Checkpoint;

use crate::util::Sandbox;

const FOREST: &[&str] = &[
    "--set",
    "model.kind=random_forest",
    "--set",
    "model.random_forest.n_trees=40",
];

const BOOSTING: &[&str] = &[
    "--set",
    "model.kind=gradient_boosting",
    "--set",
    "model.gradient_boosting.n_rounds=60",
];

fn forest<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    [FOREST, extra].concat()
}

#[test]
fn a_random_forest_trains_tests_predicts_and_cross_validates() {
    let s = Sandbox::new();
    s.sample("d.csv", 2000, 51);
    let run = s.train("d.csv", &forest(&["--set", "training.pos_weight=auto"]));
    run.ok();
    let ck = Checkpoint::load(&s.path("checkpoints/best.mpk")).unwrap();
    assert_eq!(ck.detector.family(), "random_forest");
    ck.save(&s.path("copy.mpk")).unwrap();
    assert!(Checkpoint::load(&s.path("copy.mpk")).unwrap().detector == ck.detector);
    let m = &s.test_json("checkpoints/best.mpk", &["--no-write"])["metrics"];
    assert!(m["roc_auc"].as_f64().unwrap() > 0.8, "{m}");
    let scores = Sandbox::scores(&s.predict("checkpoints/best.mpk", "d.csv", &[]).ok().stdout);
    assert_eq!(scores.len(), 2000);
    assert!(scores.iter().all(|&p| (0.0..=1.0).contains(&p)));
    // The same seed, the same forest; another seed, another.
    s.train(
        "d.csv",
        &forest(&[
            "--set",
            "checkpoint.save_dir=again",
            "--set",
            "training.pos_weight=auto",
        ]),
    )
    .ok();
    let again = Checkpoint::load(&s.path("again/best.mpk")).unwrap();
    assert!(again.detector == ck.detector);
    s.cv("d.csv", &forest(&["--folds", "2", "--json"])).ok();
    assert!(s.exists("checkpoints/fold_2/best.mpk"));
    s.run(&["train", "--resume", "checkpoints/best.mpk"])
        .bad_input("nothing to resume");
    s.train(
        "d.csv",
        &forest(&["--set", "model.random_forest.max_features=2.0"]),
    )
    .bad_input("model.random_forest");
    s.train(
        "d.csv",
        &forest(&["--set", "model.random_forest.max_bins=300"]),
    )
    .bad_input("model.random_forest.max_bins: expected 2 to 256");
}

#[test]
fn a_multiclass_forest_gives_each_class_its_probability() {
    let s = Sandbox::new();
    let body = s.three_classes("m.csv");
    s.train(
        "m.csv",
        &forest(&[
            "--set",
            "task=multiclass",
            "--set",
            "data.negative_labels=[normal]",
            "--set",
            "training.class_weights=auto",
        ]),
    )
    .ok();
    let r = s.test_json("checkpoints/best.mpk", &["--no-write"]);
    assert!(
        r["classes"]["accuracy"].as_f64().unwrap() > 0.95,
        "{}",
        r["classes"]
    );
    let run = s
        .predict("checkpoints/best.mpk", "m.csv", &["--format", "jsonl"])
        .ok();
    let right = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .zip(body.lines().skip(1))
        .filter(|(v, line)| line.ends_with(&format!(",{}", v["class"].as_str().unwrap())))
        .count();
    assert!(right > 570, "{right} of 600 classes right");
}

#[test]
fn gradient_boosting_trains_tests_predicts_and_cross_validates() {
    let s = Sandbox::new();
    s.sample("d.csv", 2000, 52);
    let boosting = |extra: &[&'static str]| [BOOSTING, extra].concat();
    s.train("d.csv", &boosting(&["--set", "training.pos_weight=auto"]))
        .ok();
    let ck = Checkpoint::load(&s.path("checkpoints/best.mpk")).unwrap();
    assert_eq!(ck.detector.family(), "gradient_boosting");
    ck.save(&s.path("copy.mpk")).unwrap();
    assert!(Checkpoint::load(&s.path("copy.mpk")).unwrap().detector == ck.detector);
    let m = &s.test_json("checkpoints/best.mpk", &["--no-write"])["metrics"];
    assert!(m["roc_auc"].as_f64().unwrap() > 0.8, "{m}");
    let scores = Sandbox::scores(&s.predict("checkpoints/best.mpk", "d.csv", &[]).ok().stdout);
    assert!(scores.iter().all(|&p| (0.0..=1.0).contains(&p)));
    s.cv("d.csv", &boosting(&["--folds", "2", "--json"])).ok();
    s.train(
        "d.csv",
        &boosting(&["--set", "model.gradient_boosting.subsample=0"]),
    )
    .bad_input("model.gradient_boosting: expected");

    s.three_classes("m.csv");
    s.train(
        "m.csv",
        &boosting(&[
            "--set",
            "task=multiclass",
            "--set",
            "data.negative_labels=[normal]",
            "--set",
            "checkpoint.save_dir=multi",
        ]),
    )
    .ok();
    let r = s.test_json("multi/best.mpk", &["--no-write"]);
    assert!(
        r["classes"]["accuracy"].as_f64().unwrap() > 0.95,
        "{}",
        r["classes"]
    );
}
