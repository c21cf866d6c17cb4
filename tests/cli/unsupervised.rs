//! Unsupervised families: fitted on the rows `training.fit_on` names and used through the same
//! scorer, checkpoints and commands as the supervised ones.

use anomaly::checkpoint::Checkpoint;
use anomaly::model::ModelKind;

use crate::util::{Sandbox, uniform};

const FOREST: &[&str] = &["--set", "model.kind=isolation_forest"];

fn with_forest<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = FOREST.to_vec();
    args.extend_from_slice(extra);
    args
}

#[test]
fn an_isolation_forest_learns_normal_rows_and_scores_through_every_command() {
    let s = Sandbox::new();
    s.sample("d.csv", 2000, 31);
    let run = s
        .run(&[
            "train",
            "--set",
            "data.path=d.csv",
            "--set",
            "model.kind=isolation_forest",
            "--set",
            "training.threshold={contamination: 0.1}",
        ])
        .ok();
    let ck = Checkpoint::load(&s.path("checkpoints/best.mpk")).unwrap();
    let normal = ck.data.train_rows - ck.data.train_positives;
    assert!(
        run.stdout.contains(&format!(
            "fitted isolation_forest on {normal} of the {} training rows (training.fit_on: Normal): 100 trees, 256 rows each",
            ck.data.train_rows
        )),
        "{}",
        run.stdout
    );
    assert_eq!(ck.detector.family(), "isolation_forest");
    assert!(ck.train_state.is_none());
    assert!(ck.network().is_err(), "a forest is no network");
    // The file round-trips exactly.
    ck.save(&s.path("copy.mpk")).unwrap();
    assert!(Checkpoint::load(&s.path("copy.mpk")).unwrap().detector == ck.detector);

    let m = &s.test_json("checkpoints/best.mpk", &["--no-write"])["metrics"];
    assert!(m["roc_auc"].as_f64().unwrap() > 0.7, "{m}");
    let out = s.predict("checkpoints/best.mpk", "d.csv", &[]).ok().stdout;
    let scores = Sandbox::scores(&out);
    assert_eq!(scores.len(), 2000);
    assert!(scores.iter().all(|&v| v > 0.0 && v < 1.0));
    let flagged = out.lines().filter(|l| l.contains(",true,")).count() as f64 / 2000.0;
    assert!((flagged - 0.1).abs() < 0.03, "{flagged}");
    s.run(&[
        "assess",
        "--checkpoint",
        "checkpoints/best.mpk",
        "--bootstrap",
        "20",
    ])
    .ok();
    s.run(&["train", "--resume", "checkpoints/best.mpk"])
        .bad_input("nothing to resume");
}

#[test]
fn fit_on_all_learns_from_every_row_and_the_seed_fixes_the_forest() {
    let s = Sandbox::new();
    s.sample("d.csv", 600, 32);
    let forest = |dir: &str, extra: &[&str]| {
        let d = format!("checkpoint.save_dir={dir}");
        s.train(
            "d.csv",
            &with_forest(&[&["--set", d.as_str()], extra].concat()),
        )
        .ok();
        Checkpoint::load(&s.path(&format!("{dir}/best.mpk")))
            .unwrap()
            .detector
    };
    let a = forest("a", &[]);
    assert!(a == forest("b", &[]), "the same seed gave another forest");
    assert!(a != forest("c", &["--set", "training.fit_on=all"]));
    assert!(a != forest("d", &["--set", "training.seed=7"]));
}

#[test]
fn cross_validation_fits_a_forest_per_fold() {
    let s = Sandbox::new();
    s.sample("d.csv", 600, 33);
    s.cv("d.csv", &with_forest(&["--folds", "2", "--json"]))
        .ok();
    for k in [1, 2] {
        let ck = Checkpoint::load(&s.path(&format!("checkpoints/fold_{k}/best.mpk"))).unwrap();
        assert_eq!(ck.detector.family(), "isolation_forest");
    }
}

#[test]
fn bad_forest_settings_are_refused() {
    let s = Sandbox::new();
    s.sample("d.csv", 300, 34);
    s.train(
        "d.csv",
        &with_forest(&[
            "--set",
            "task=multiclass",
            "--set",
            "data.negative_labels=[0]",
        ]),
    )
    .bad_input("task: multiclass needs a classifier");
    s.train(
        "d.csv",
        &with_forest(&["--set", "model.isolation_forest.n_trees=0"]),
    )
    .bad_input("model.isolation_forest");
    s.train(
        "d.csv",
        &with_forest(&["--set", "model.isolation_forest.max_features=1.5"]),
    )
    .bad_input("model.isolation_forest.max_features");
    s.train(
        "d.csv",
        &with_forest(&["--set", "model.isolation_forest.depth=3"]),
    )
    .bad_input("depth");
    assert!(!s.exists("checkpoints"));
}

/// k-means (distance to the nearest centroid), LOF (the local outlier factor), the one-class
/// SVM (negated decision value) and the autoencoder (reconstruction error): scores that are
/// not probabilities, through every command.
#[test]
fn scores_that_are_not_probabilities_go_through_every_command() {
    let s = Sandbox::new();
    s.sample("d.csv", 2000, 35);
    for family in ["kmeans", "lof", "one_class_svm", "autoencoder"] {
        let (kind, dir) = (
            format!("model.kind={family}"),
            format!("checkpoint.save_dir={family}"),
        );
        let train = |extra: &[&str]| {
            let mut args = vec!["--set", &kind, "--set", "model.kmeans.n_init=3"];
            args.extend_from_slice(extra);
            s.train("d.csv", &args)
        };
        train(&[
            "--set",
            &dir,
            "--set",
            "training.threshold={contamination: 0.1}",
        ])
        .ok();
        let path = format!("{family}/best.mpk");
        let ck = Checkpoint::load(&s.path(&path)).unwrap();
        assert_eq!(ck.detector.family(), family);
        ck.save(&s.path("copy.mpk")).unwrap();
        assert!(Checkpoint::load(&s.path("copy.mpk")).unwrap().detector == ck.detector);
        let m = &s.test_json(&path, &["--no-write"])["metrics"];
        assert!(m["roc_auc"].as_f64().unwrap() > 0.7, "{family}: {m}");
        let out = s.predict(&path, "d.csv", &[]).ok().stdout;
        let flagged = out.lines().filter(|l| l.contains(",true,")).count() as f64 / 2000.0;
        assert!((flagged - 0.1).abs() < 0.03, "{family}: {flagged}");
        // A distance or a density ratio is no probability: a fixed threshold may exceed 1.
        train(&[
            "--set",
            "training.threshold=2.5",
            "--set",
            "checkpoint.save_dir=fixed",
        ])
        .ok();
    }
    s.train("d.csv", &["--set", "model.kmeans.k=0"])
        .bad_input("model.kmeans: expected k, n_init and max_iter >= 1");
    s.train("d.csv", &["--set", "model.lof.n_neighbors=0"])
        .bad_input("model.lof: expected n_neighbors >= 1");
    s.train("d.csv", &["--set", "model.one_class_svm.nu=0"])
        .bad_input("model.one_class_svm: expected nu in (0, 1]");
    s.train("d.csv", &["--set", "model.one_class_svm.gamma=wide"])
        .bad_input("model.one_class_svm.gamma");
    s.train("d.csv", &["--set", "model.autoencoder.hidden_dims=[]"])
        .bad_input("model.autoencoder.hidden_dims: expected a non-empty list");
}

/// The autoencoder trains through the gradient trainer: on the normal rows only (its loss
/// never sees an attack), mirrored layers, and a run resumed from `last.mpk` ends exactly as
/// an uninterrupted one.
#[test]
fn the_autoencoder_learns_normal_rows_and_resumes_exactly() {
    let s = Sandbox::new();
    s.sample("d.csv", 800, 38);
    let ae = |dir: &str, epochs: &str| {
        let (d, e) = (
            format!("checkpoint.save_dir={dir}"),
            format!("training.epochs={epochs}"),
        );
        let args = [
            "--set",
            "model.kind=autoencoder",
            "--set",
            "model.autoencoder.hidden_dims=[8, 4]",
            "--set",
            "training.early_stopping.enabled=false",
            "--set",
            &d,
            "--set",
            &e,
        ];
        s.train("d.csv", &args).ok();
        Checkpoint::load(&s.path(&format!("{dir}/last.mpk"))).unwrap()
    };
    let whole = ae("whole", "6");
    let spec = &whole.network().unwrap().spec;
    assert_eq!(whole.detector.family(), "autoencoder");
    assert_eq!(spec.hidden_dims, [8, 4, 8]);
    assert_eq!(spec.outputs, spec.input_dim);
    ae("cut", "3");
    s.run(&[
        "train",
        "--quiet",
        "--resume",
        "cut/last.mpk",
        "--set",
        "training.epochs=6",
    ])
    .ok();
    let resumed = Checkpoint::load(&s.path("cut/last.mpk")).unwrap();
    assert!(
        resumed.detector == whole.detector,
        "other weights after resuming"
    );
    assert_eq!(resumed.history, whole.history);
    assert!(whole.history[5].train_loss < whole.history[0].train_loss);
}

/// Live traffic has no labels: an unsupervised detector learns from every row of such a file
/// (`fit_on: all`); what needs labels says so.
#[test]
fn unlabelled_files_train_with_fit_on_all_and_refuse_what_needs_labels() {
    let s = Sandbox::new();
    s.sample("d.csv", 600, 36);
    let text = std::fs::read_to_string(s.path("d.csv")).unwrap();
    let label = text
        .lines()
        .next()
        .unwrap()
        .split(',')
        .position(|c| c == "label")
        .unwrap();
    let unlabelled: String = text
        .lines()
        .map(|l| {
            let mut cells: Vec<&str> = l.split(',').collect();
            cells.remove(label);
            cells.join(",") + "\n"
        })
        .collect();
    s.write("live.csv", unlabelled);
    let dry = s
        .train(
            "live.csv",
            &with_forest(&["--set", "training.fit_on=all", "--dry-run"]),
        )
        .ok();
    assert!(
        dry.stdout
            .contains("labels: none (no label column); all 600 rows count as normal"),
        "{}",
        dry.stdout
    );
    s.train("live.csv", &with_forest(&[]))
        .bad_input("live.csv: no label column 'label' (data.label_column): training.fit_on: normal picks the normal rows by their labels");
    s.train("live.csv", &["--set", "model.kind=mlp"])
        .bad_input("no label column 'label'");
    s.train(
        "live.csv",
        &with_forest(&[
            "--set",
            "training.fit_on=all",
            "--set",
            "training.threshold={contamination: 0.05}",
        ]),
    )
    .ok();
    let ck = Checkpoint::load(&s.path("checkpoints/best.mpk")).unwrap();
    assert_eq!((ck.data.train_rows, ck.data.train_positives), (432, 0));
    let out = s
        .predict("checkpoints/best.mpk", "live.csv", &[])
        .ok()
        .stdout;
    let flagged = out.lines().filter(|l| l.contains(",true,")).count() as f64 / 600.0;
    assert!((flagged - 0.05).abs() < 0.03, "{flagged}");
    s.run(&["test", "--checkpoint", "checkpoints/best.mpk"])
        .bad_input("no label column 'label'");

    // Labelled data of the normal class alone is enough for an unsupervised detector.
    let normal_only: String = text
        .lines()
        .enumerate()
        .filter(|(i, l)| *i == 0 || l.split(',').nth(label) == Some("0.0"))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    s.write("normal.csv", normal_only);
    s.train(
        "normal.csv",
        &with_forest(&["--set", "checkpoint.save_dir=normal"]),
    )
    .ok();
    s.train("normal.csv", &["--set", "checkpoint.save_dir=mlp"])
        .bad_input("the training rows hold a single class");
}

#[test]
fn dbscan_scores_the_distance_to_the_nearest_core_point() {
    let s = Sandbox::new();
    s.sample("d.csv", 2000, 37);
    let dbscan = |extra: &[&str]| {
        let mut args = vec![
            "--set",
            "model.kind=dbscan",
            "--set",
            "model.dbscan.eps=1.5",
        ];
        args.extend_from_slice(extra);
        s.train("d.csv", &args)
    };
    dbscan(&["--set", "training.threshold={contamination: 0.1}"]).ok();
    let ck = Checkpoint::load(&s.path("checkpoints/best.mpk")).unwrap();
    assert_eq!(ck.detector.family(), "dbscan");
    ck.save(&s.path("copy.mpk")).unwrap();
    assert!(Checkpoint::load(&s.path("copy.mpk")).unwrap().detector == ck.detector);
    let m = &s.test_json("checkpoints/best.mpk", &["--no-write"])["metrics"];
    assert!(m["roc_auc"].as_f64().unwrap() > 0.65, "{m}");
    let out = s.predict("checkpoints/best.mpk", "d.csv", &[]).ok().stdout;
    let flagged = out.lines().filter(|l| l.contains(",true,")).count() as f64 / 2000.0;
    assert!((flagged - 0.1).abs() < 0.03, "{flagged}");
    // A radius that holds no neighbourhood is a clear error, not an empty model.
    dbscan(&[
        "--set",
        "model.dbscan.eps=0.01",
        "--set",
        "checkpoint.save_dir=tiny",
    ])
    .bad_input("model.dbscan: no core points");
    dbscan(&["--set", "model.dbscan.eps=0"]).bad_input("model.dbscan: expected eps > 0");
}

/// Every unsupervised family (the ensemble's possible members), on a tight cloud of 400 rows with one row far outside: the far
/// row scores highest, learnt without labels (`fit_on: all`). (k-means with k = 1: with more
/// centroids, one sits on the far row, as it should.)
#[test]
fn every_family_ranks_the_far_row_first() {
    let s = Sandbox::new();
    let mut uniform = uniform(12345);
    let mut noise = || uniform() - 0.5;
    let mut csv = String::from("a,b,c,d\n");
    for row in 0..400 {
        let cells: Vec<String> = if row == 137 {
            vec!["6".into(), "-6".into(), "6".into(), "-6".into()]
        } else {
            (0..4).map(|_| format!("{:.4}", noise())).collect()
        };
        csv += &(cells.join(",") + "\n");
    }
    s.write("cloud.csv", csv);
    // Every family that can stand alone without labels, so that a new one is held to it too.
    let families = ModelKind::ALL.iter().filter(|k| k.can_be_member());
    for family in families.map(|k| k.name()) {
        let (kind, dir) = (
            format!("model.kind={family}"),
            format!("checkpoint.save_dir={family}"),
        );
        let args = [
            "--set",
            &kind,
            "--set",
            &dir,
            "--set",
            "training.fit_on=all",
            "--set",
            "training.threshold={contamination: 0.01}",
            "--set",
            "model.kmeans.k=1",
            "--set",
            "model.dbscan.eps=0.5",
            "--set",
            "model.autoencoder.hidden_dims=[3, 2]",
            "--set",
            "training.epochs=30",
        ];
        s.train("cloud.csv", &args).ok();
        let out = s
            .predict(&format!("{family}/best.mpk"), "cloud.csv", &[])
            .ok()
            .stdout;
        let scores = Sandbox::scores(&out);
        let top = (0..scores.len())
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap();
        assert_eq!(top, 137, "{family}: {:?}", &scores[130..140]);
    }
}

/// The ensemble: members fitted side by side (each a checkpoint of its own), each row's
/// member scores, votes, confidence and severity in `predict`, and `test` and `assess`
/// reporting the members and the ensemble side by side.
#[test]
fn the_ensemble_votes_grades_and_reports_its_members() {
    let s = Sandbox::new();
    s.sample("d.csv", 2000, 39);
    let ensemble = |dir: &str, extra: &[&str]| {
        let d = format!("checkpoint.save_dir={dir}");
        let mut args = vec![
            "--set",
            "model.kind=ensemble",
            "--set",
            "model.ensemble.members=[isolation_forest, kmeans, lof]",
            "--set",
            "model.kmeans.n_init=2",
            "--set",
            "training.threshold={contamination: 0.1}",
            "--set",
            &d,
        ];
        args.extend_from_slice(extra);
        s.train("d.csv", &args)
    };
    ensemble("vote", &["--set", "model.ensemble.combine=vote"]).ok();
    let ck = Checkpoint::load(&s.path("vote/best.mpk")).unwrap();
    assert_eq!(ck.detector.family(), "ensemble");
    assert_eq!(ck.detector.members(), ["isolation_forest", "kmeans", "lof"]);
    assert_eq!(ck.threshold, 2.0 / 3.0);
    let member = Checkpoint::load(&s.path("vote/members/lof/best.mpk")).unwrap();
    assert_eq!(member.detector.family(), "lof");
    ck.save(&s.path("copy.mpk")).unwrap();
    assert!(Checkpoint::load(&s.path("copy.mpk")).unwrap().detector == ck.detector);

    let out = s.predict("vote/best.mpk", "d.csv", &[]).ok().stdout;
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap(),
        "row,score,is_anomaly,isolation_forest_score,isolation_forest_vote,kmeans_score,\
         kmeans_vote,lof_score,lof_vote,confidence,severity,error"
    );
    let mut graded = std::collections::BTreeMap::new();
    for line in lines {
        let c: Vec<&str> = line.split(',').collect();
        let votes = [4, 6, 8].iter().filter(|&&i| c[i] == "true").count();
        // Three members, two votes to flag; severity cut-offs 2, 3, 3 (low, medium, high).
        assert_eq!(c[2] == "true", votes >= 2, "{line}");
        assert_eq!(c[9].parse::<f64>().unwrap(), votes as f64 / 3.0, "{line}");
        let want = ["none", "none", "low", "high"][votes];
        assert_eq!(c[10], want, "{line}");
        *graded.entry(want).or_insert(0) += 1;
    }
    assert!(graded.len() == 3, "{graded:?}");

    let r = s.test_json("vote/best.mpk", &["--no-write"]);
    let e = &r["ensemble"];
    let names: Vec<&str> = e["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["isolation_forest", "kmeans", "lof", "ensemble"]);
    assert_eq!(e["agreement"][1][1], 1.0);
    let rows: u64 = e["severity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(Some(rows), r["metrics"]["rows"].as_u64());
    s.run(&[
        "assess",
        "--checkpoint",
        "vote/best.mpk",
        "--out",
        "rep",
        "--bootstrap",
        "20",
    ])
    .ok();
    let html = std::fs::read_to_string(s.path("rep/report.html")).unwrap();
    assert!(html.contains("votes alike") && html.contains("attack share"));

    // The median of the z-scores ranks; the decision rule sets its threshold.
    ensemble("median", &[]).ok();
    let m = &s.test_json("median/best.mpk", &["--no-write"])["metrics"];
    assert!(m["roc_auc"].as_f64().unwrap() > 0.7, "{m}");

    ensemble(
        "bad",
        &["--set", "model.ensemble.members=[isolation_forest, mlp]"],
    )
    .bad_input("model.ensemble.members: mlp cannot be a member");
    ensemble("bad", &["--set", "model.ensemble.min_votes=4"])
        .bad_input("model.ensemble.min_votes: expected 1 to 3");
    ensemble("bad", &["--set", "model.ensemble.severity=[3, 2, 3]"])
        .bad_input("model.ensemble.severity");
}

/// k-means and DBSCAN report their clusters: separation scores, each cluster's rows by class,
/// and the classifier made of each cluster voting its training majority; `assess` maps them.
#[test]
fn clustering_families_report_their_clusters() {
    let s = Sandbox::new();
    s.sample("d.csv", 1500, 40);
    for (family, setting) in [
        ("kmeans", "model.kmeans.k=4"),
        ("dbscan", "model.dbscan.eps=3"),
    ] {
        let (kind, dir) = (
            format!("model.kind={family}"),
            format!("checkpoint.save_dir={family}"),
        );
        let args = [
            "--set",
            &kind,
            "--set",
            &dir,
            "--set",
            setting,
            "--set",
            "training.fit_on=all",
            "--set",
            "training.threshold={contamination: 0.1}",
        ];
        s.train("d.csv", &args).ok();
        let r = s.test_json(&format!("{family}/best.mpk"), &["--no-write"]);
        let c = &r["clusters"];
        let silhouette = c["silhouette"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&silhouette), "{family}: {c}");
        assert!(c["calinski_harabasz"].as_f64().unwrap() > 0.0, "{c}");
        assert!(c["davies_bouldin"].as_f64().unwrap() > 0.0, "{c}");
        let rows: u64 = c["contingency"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["normal"].as_u64().unwrap() + k["anomalous"].as_u64().unwrap())
            .sum();
        assert_eq!(Some(rows), r["metrics"]["rows"].as_u64());
        let view = c["majority_view"]["accuracy"].as_f64().unwrap();
        assert!(view > 0.5, "{family}: {c}");
        if family == "kmeans" {
            assert_eq!(c["clusters"], 4);
            assert!(c["inertia"].as_f64().unwrap() > 0.0 && c["noise_share"].is_null());
        } else {
            let noise = c["noise_share"].as_f64().unwrap();
            assert!((0.0..1.0).contains(&noise) && c["inertia"].is_null(), "{c}");
        }
    }
    s.run(&[
        "assess",
        "--checkpoint",
        "kmeans/best.mpk",
        "--out",
        "rep",
        "--bootstrap",
        "20",
    ])
    .ok();
    let html = std::fs::read_to_string(s.path("rep/report.html")).unwrap();
    assert!(html.contains("test clusters") && html.contains("Davies-Bouldin"));
    assert!(s.exists("rep/clusters_map.svg") && s.exists("rep/clusters_by_class.png"));
}

/// The same seed gives the same detectors on one thread or two: an ensemble of every
/// unsupervised family, each member, threshold and standardisation bit for bit.
#[test]
fn every_family_fits_the_same_on_one_thread_or_two() {
    let s = Sandbox::new();
    s.sample("d.csv", 1500, 41);
    let fit = |threads: &str| {
        let dir = format!("checkpoint.save_dir=t{threads}");
        let args = [
            "train",
            "--quiet",
            "--set",
            "data.path=d.csv",
            "--set",
            "model.kind=ensemble",
            "--set",
            "model.ensemble.members=[isolation_forest, one_class_svm, lof, autoencoder, kmeans, dbscan]",
            "--set",
            "model.dbscan.eps=3",
            "--set",
            "model.autoencoder.hidden_dims=[8, 4]",
            "--set",
            "training.epochs=3",
            "--set",
            &dir,
        ];
        s.run_on_threads(&args, threads).ok();
        Checkpoint::load(&s.path(&format!("t{threads}/best.mpk"))).unwrap()
    };
    let (one, two) = (fit("1"), fit("2"));
    assert_eq!(one.detector.members().len(), 6);
    assert!(
        one.detector == two.detector,
        "another ensemble on two threads"
    );
    assert_eq!(one.threshold.to_bits(), two.threshold.to_bits());
    assert_eq!(one.train_score_quantiles, two.train_score_quantiles);
}

/// The README's unsupervised quick start: `configs/ensemble.yaml` as shipped, on `data/`'s
/// sample, trains, tests and predicts in seconds.
#[test]
fn the_shipped_ensemble_config_runs_on_the_sample_data() {
    let s = Sandbox::new();
    let root = env!("CARGO_MANIFEST_DIR");
    let (config, data) = (
        format!("{root}/configs/ensemble.yaml"),
        format!("data.path={root}/data/sample.csv"),
    );
    s.run(&["train", "--quiet", "--config", &config, "--set", &data])
        .ok();
    let r = s.test_json(
        "checkpoints/ensemble/best.mpk",
        &["--no-write", "--bootstrap", "10"],
    );
    let auc = r["metrics"]["roc_auc"].as_f64().unwrap();
    assert!(auc > 0.85, "ROC AUC {auc}");
    assert_eq!(r["ensemble"]["detectors"].as_array().unwrap().len(), 5);
    let sample = format!("{root}/data/sample.csv");
    let out = s
        .predict("checkpoints/ensemble/best.mpk", &sample, &[])
        .ok()
        .stdout;
    let header = out.lines().next().unwrap();
    assert!(header.ends_with("autoencoder_score,autoencoder_vote,confidence,severity,error"));
    assert_eq!(out.lines().count(), 5001);
}

/// `combine: weighted`: each member weighted by its validation ROC AUC − 0.5 (shown by
/// `train`, stored in the checkpoint); a member that ranks the validation rows no better than
/// chance gets weight 0 and is named as dropped; without labelled rows of both classes the
/// combination is refused.
#[test]
fn a_weighted_ensemble_weighs_members_by_their_validation_ranking() {
    let s = Sandbox::new();
    s.sample("d.csv", 2000, 37);
    let members = "model.ensemble.members=[isolation_forest, zscore, kmeans]";
    let args = [
        "--set",
        "model.kind=ensemble",
        "--set",
        "model.ensemble.combine=weighted",
        "--set",
        members,
        "--set",
        "model.ensemble.min_votes=1",
    ];
    let run = s
        .run(&[&["train", "--set", "data.path=d.csv"][..], &args].concat())
        .ok();
    assert!(
        run.stdout.contains("combined by Weighted"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("isolation_forest weight 0."),
        "{}",
        run.stdout
    );
    let ck = Checkpoint::load(&s.path("checkpoints/best.mpk")).unwrap();
    let anomaly::model::DetectorState::Ensemble(e) = &ck.detector else {
        panic!("not an ensemble")
    };
    assert!(e.members.iter().all(|m| (0.0..=0.5).contains(&m.weight)));
    assert!(
        e.members.iter().any(|m| m.weight > 0.1),
        "{:?}",
        e.members.iter().map(|m| m.weight).collect::<Vec<_>>()
    );
    let m = &s.test_json("checkpoints/best.mpk", &["--no-write"])["metrics"];
    assert!(m["roc_auc"].as_f64().unwrap() > 0.7, "{m}");
    // Normal rows only: no ranking to weigh by.
    let text = std::fs::read_to_string(s.path("d.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let label = header.split(',').position(|c| c == "label").unwrap();
    let normal: String = std::iter::once(header)
        .chain(lines.filter(|l| l.split(',').nth(label) == Some("0.0")))
        .map(|l| l.to_string() + "\n")
        .collect();
    s.write("normal.csv", normal);
    s.train("normal.csv", &args)
        .bad_input("the validation rows hold one class only");
}
