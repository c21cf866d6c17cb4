//! The hybrid family: a classifier on every labelled row and an unsupervised detector on the
//! normal rows only, joined; each part's probability and vote in every output.

use anomaly::checkpoint::Checkpoint;
use anomaly::model::DetectorState;
use anomaly::model::hybrid::Joined;

use crate::serve::Server;
use crate::util::{Run, Sandbox};

/// A hybrid of a random forest and a z-score detector on `d.csv`, into `dir`.
fn hybrid(s: &Sandbox, dir: &str, extra: &[&str]) -> Run {
    let dir = format!("checkpoint.save_dir={dir}");
    let mut args = vec![
        "--set",
        "model.kind=hybrid",
        "--set",
        "model.hybrid.classifier=random_forest",
        "--set",
        "model.hybrid.detector=zscore",
        "--set",
        "model.random_forest.n_trees=20",
        "--set",
        &dir,
    ];
    args.extend_from_slice(extra);
    s.train("d.csv", &args)
}

fn load(s: &Sandbox, rel: &str) -> Checkpoint {
    Checkpoint::load(&s.path(rel)).unwrap()
}

/// The detector part is the detector `training.fit_on: normal` fits, whatever the config's
/// `fit_on` says (a detector that saw an attack row would differ), and every part's
/// checkpoint loads on its own.
#[test]
fn a_hybrids_detector_learns_from_normal_rows_only() {
    let s = Sandbox::new();
    s.sample("d.csv", 1500, 41);
    hybrid(&s, "h", &["--set", "training.fit_on=all"]).ok();
    for fit_on in ["normal", "all"] {
        let set = [
            "--set",
            "model.kind=zscore",
            "--set",
            &format!("training.fit_on={fit_on}"),
            "--set",
            &format!("checkpoint.save_dir={fit_on}"),
        ];
        s.train("d.csv", &set).ok();
    }
    let ck = load(&s, "h/best.mpk");
    let DetectorState::Hybrid(h) = &ck.detector else {
        panic!("{:?}", ck.detector.family())
    };
    assert_eq!(*h.detector, load(&s, "normal/best.mpk").detector);
    assert_ne!(*h.detector, load(&s, "all/best.mpk").detector);
    assert_eq!(
        *h.classifier,
        load(&s, "h/members/random_forest/best.mpk").detector
    );
    assert_eq!(*h.detector, load(&s, "h/members/zscore/best.mpk").detector);
    // The detector is one half at the 0.95 quantile of the normal validation rows' scores.
    assert_eq!(h.joint.normal_quantile, 0.95);
    assert!(
        h.joint.calibration.rows > 100,
        "{}",
        h.joint.calibration.rows
    );
    ck.save(&s.path("copy.mpk")).unwrap();
    assert!(load(&s, "copy.mpk").detector == ck.detector);
}

/// `predict` writes each part's probability and vote, a vote always flags the row, and the
/// severity counts the votes; `--explain` names the part each reason raises; `test` reports
/// the parts beside the hybrid; `serve` answers the same columns; `stacking` fits its weights.
#[test]
fn a_hybrid_scores_explains_and_serves_with_both_parts() {
    let s = Sandbox::new();
    s.sample("d.csv", 1500, 42);
    hybrid(&s, "h", &[]).ok();
    let out = s.predict("h/best.mpk", "d.csv", &[]).ok().stdout;
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap(),
        "row,score,is_anomaly,random_forest_score,random_forest_vote,zscore_score,zscore_vote,\
         confidence,severity,error"
    );
    let mut detector_alone = 0;
    for line in lines {
        let c: Vec<&str> = line.split(',').collect();
        let (forest, detector) = (c[4] == "true", c[6] == "true");
        assert_eq!(
            forest,
            c[3].parse::<f64>().unwrap() >= 0.5,
            "{line}: the forest votes at one half"
        );
        if forest || detector {
            assert_eq!(c[2], "true", "{line}: a part's vote flags the row");
        }
        let votes = forest as usize + detector as usize;
        assert_eq!(c[8], ["none", "medium", "high"][votes], "{line}");
        detector_alone += (detector && !forest) as usize;
    }
    assert!(
        detector_alone > 0,
        "the detector flags rows the forest passes"
    );

    let explained = s
        .predict(
            "h/best.mpk",
            "d.csv",
            &["--explain", "3", "--format", "jsonl"],
        )
        .ok()
        .stdout;
    let mut parts = std::collections::BTreeSet::new();
    for line in explained.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        for reason in row["reasons"].as_array().into_iter().flatten() {
            parts.insert(reason["part"].as_str().unwrap().to_string());
            assert!(reason["effect"].as_f64().unwrap() > 0.0, "{reason}");
        }
    }
    assert_eq!(
        parts.into_iter().collect::<Vec<_>>(),
        ["random_forest", "zscore"]
    );

    let r = s.test_json("h/best.mpk", &["--no-write"]);
    let names: Vec<&str> = r["ensemble"]["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["random_forest", "zscore", "hybrid"]);

    let server = Server::start(&s, &["--checkpoint", "h/best.mpk", "--alerts-db", "none"]);
    let body = std::fs::read_to_string(s.path("d.csv")).unwrap();
    let head: Vec<&str> = body.lines().take(6).collect();
    let (status, text) = server.post("/api/v1/predict", "text/csv", head.join("\n"));
    assert_eq!(status, 200, "{text}");
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    let first = &answer["predictions"][0];
    for key in ["random_forest_score", "zscore_vote", "severity"] {
        assert!(first.get(key).is_some(), "{key} missing from {first}");
    }
    server.stop();

    hybrid(&s, "st", &["--set", "model.hybrid.combine=stacking"]).ok();
    let DetectorState::Hybrid(st) = load(&s, "st/best.mpk").detector else {
        panic!("not a hybrid")
    };
    let Joined::Stacking { weights } = st.joint.join else {
        panic!("{:?}", st.joint.join)
    };
    assert!(
        weights[0] > 0.0 && weights.iter().all(|w| w.is_finite()),
        "{weights:?}"
    );
}

/// A multiclass hybrid (balanced class weights) keeps the classifier's classes beside the
/// joined score.
#[test]
fn a_multiclass_hybrid_names_the_class() {
    let s = Sandbox::new();
    s.three_classes("d.csv");
    hybrid(
        &s,
        "h",
        &[
            "--set",
            "task=multiclass",
            "--set",
            "data.negative_labels=[normal]",
        ],
    )
    .ok();
    let out = s.predict("h/best.mpk", "d.csv", &[]).ok().stdout;
    let header = out.lines().next().unwrap();
    assert!(
        header.starts_with("row,score,is_anomaly,class,class_probability,random_forest_score"),
        "{header}"
    );
    let r = s.test_json("h/best.mpk", &["--no-write"]);
    assert!(r["classes"].is_object(), "{r}");
    assert!(r["metrics"]["accuracy"].as_f64().unwrap() > 0.9, "{r}");
}

#[test]
fn a_hybrid_refuses_parts_of_the_wrong_kind() {
    let s = Sandbox::new();
    s.sample("d.csv", 300, 43);
    hybrid(
        &s,
        "x",
        &["--set", "model.hybrid.classifier=isolation_forest"],
    )
    .bad_input("model.hybrid.classifier: isolation_forest is not a per-row classifier");
    hybrid(&s, "x", &["--set", "model.hybrid.detector=mlp"])
        .bad_input("model.hybrid.detector: mlp is not an unsupervised family");
    hybrid(&s, "x", &["--set", "model.hybrid.classifier=cnn_lstm"])
        .bad_input("model.hybrid.classifier: cnn_lstm");
    hybrid(&s, "x", &["--set", "model.hybrid.normal_quantile=1"])
        .bad_input("model.hybrid.normal_quantile");
}
