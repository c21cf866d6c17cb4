//! The tree families (random forest, gradient boosting): supervised classifiers through the
//! same data path, decision rules, checkpoints and commands as the MLP families, binary and
//! multiclass.

use anomaly::checkpoint::Checkpoint;

use crate::util::{Sandbox, uniform};

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

/// `data.select_features` keeps the columns that carry the signal: 20 columns, of which only
/// `a`, `b` and `c` decide the label. It ranks on the training rows alone: the separate test
/// file's `leak` column equals the label there (and is noise in training), and is dropped, in
/// `train` and in every cv fold; `train --dry-run` shows the ranked list.
#[test]
fn feature_selection_keeps_the_informative_columns_from_training_rows_only() {
    let s = Sandbox::new();
    let mut draw = uniform(99);
    let mut uniform = || draw() * 2.0 - 1.0;
    let names: Vec<String> = ["a", "b", "c", "leak"]
        .iter()
        .map(|n| n.to_string())
        .chain((0..16).map(|i| format!("n{i}")))
        .collect();
    let mut file = |rows: usize, leak_is_label: bool| {
        let mut out = names.join(",") + ",label\n";
        for _ in 0..rows {
            let v: Vec<f64> = (0..20).map(|_| uniform()).collect();
            let label = (v[0] + v[1] + v[2] > 0.1) as u8;
            let cells: Vec<String> = v
                .iter()
                .enumerate()
                .map(|(i, x)| match (i, leak_is_label) {
                    (3, true) => label.to_string(),
                    _ => format!("{x:.4}"),
                })
                .collect();
            out += &format!("{},{label}\n", cells.join(","));
        }
        out
    };
    let (train, test) = (file(1200, false), file(300, true));
    s.write("train.csv", train);
    s.write("test.csv", test);
    let select = [
        "--set",
        "data.test_path=test.csv",
        "--set",
        "data.select_features={by: forest_importance, keep: 3, n_trees: 30}",
    ];
    let kept = |path: &str| -> Vec<String> {
        let ck = Checkpoint::load(&s.path(path)).unwrap();
        let mut names: Vec<String> = ck
            .preprocessor
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect();
        names.sort();
        names
    };
    s.train("train.csv", &forest(&select)).ok();
    assert_eq!(kept("checkpoints/best.mpk"), ["a", "b", "c"]);
    let m = &s.test_json("checkpoints/best.mpk", &["--no-write"])["metrics"];
    assert!(m["roc_auc"].as_f64().unwrap() > 0.85, "{m}");
    s.cv(
        "train.csv",
        &forest(&[&select[..], &["--folds", "2", "--json"]].concat()),
    )
    .ok();
    for k in [1, 2] {
        assert_eq!(
            kept(&format!("checkpoints/fold_{k}/best.mpk")),
            ["a", "b", "c"]
        );
    }
    let dry = s
        .train(
            "train.csv",
            &forest(&[&select[..], &["--dry-run"]].concat()),
        )
        .ok();
    assert!(
        dry.stdout
            .contains("data.select_features: kept 3 of 20 columns by forest importance (ranked: "),
        "{}",
        dry.stdout
    );
    let inspect = s
        .run(
            &[
                &["inspect", "--json", "--set", "data.path=train.csv"],
                &select[..],
            ]
            .concat(),
        )
        .ok()
        .json();
    let chosen = &inspect["select_features"];
    assert_eq!(chosen["kept"], 3);
    let ranked = chosen["ranked"].as_array().unwrap();
    assert_eq!(ranked.len(), 20);
    let mut top: Vec<&str> = ranked[..3]
        .iter()
        .map(|r| r["column"].as_str().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, ["a", "b", "c"]);
    let sum: f64 = ranked
        .iter()
        .map(|r| r["importance"].as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-6, "{sum}");
    s.train(
        "train.csv",
        &forest(&["--set", "data.select_features={by: forest_importance}"]),
    )
    .bad_input("data.select_features: expected `keep: K`");
}
