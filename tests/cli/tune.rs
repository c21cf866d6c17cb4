//! `anomaly tune`: the same trials anywhere (`--trial K`, `--jobs`, `--resume`), conditional
//! keys, spaces checked before any trial, and a search that never looks at the test rows.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::{Run, Sandbox};

const SPACE: &str = "training.learning_rate: {log_uniform: [0.0005, 0.02]}\n\
                     model.hidden_dims: {choice: [[8], [16, 8]]}\n\
                     model.dropout: {uniform: [0.0, 0.4]}\n";

/// `tune`'s arguments on `data` (small, fast trials) into `out`, plus `extra`.
fn tune_args(data: &str, out: &str, extra: &[&str]) -> Vec<String> {
    let set = format!("data.path={data}");
    let mut args = vec![
        "tune",
        "--quiet",
        "--space",
        "space.yaml",
        "--out",
        out,
        "--set",
        &set,
        "--set",
        "training.epochs=3",
        "--set",
        "training.batch_size=64",
    ];
    args.extend_from_slice(extra);
    args.into_iter().map(String::from).collect()
}

fn tune(s: &Sandbox, data: &str, out: &str, extra: &[&str]) -> Run {
    let args = tune_args(data, out, extra);
    s.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn read(s: &Sandbox, rel: &str) -> Vec<u8> {
    std::fs::read(s.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn trials_are_the_same_bytes_with_any_jobs_and_when_run_alone() {
    let s = Sandbox::new();
    s.sample("d.csv", 1500, 3);
    s.write("space.yaml", SPACE);
    // 14 trials, each seeing those at least 2 before it: TPE takes over from trial 12, the
    // median pruner once 5 have finished.
    let search = ["--trials", "14", "--lag", "2"];
    tune(&s, "d.csv", "a", &search).ok();
    tune(&s, "d.csv", "b", &[&search[..], &["--jobs", "2"]].concat()).ok();
    let table = read(&s, "a/trials.csv");
    assert_eq!(
        table,
        read(&s, "b/trials.csv"),
        "--jobs 2 changed the table"
    );
    let text = String::from_utf8(table).unwrap();
    assert_eq!(text.lines().count(), 15, "{text}");
    // A TPE trial run again alone, as a job-array task, writes the same bytes.
    let result = read(&s, "a/trials/13/result.json");
    std::fs::remove_dir_all(s.path("a/trials/13")).unwrap();
    s.run(&["tune", "--out", "a", "--trial", "13", "--quiet"])
        .ok();
    assert_eq!(result, read(&s, "a/trials/13/result.json"));
    // A finished trial is not run again.
    let before = std::fs::metadata(s.path("a/trials/13/result.json"))
        .unwrap()
        .modified()
        .unwrap();
    s.run(&["tune", "--out", "a", "--trial", "13", "--quiet"])
        .ok();
    let after = std::fs::metadata(s.path("a/trials/13/result.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
    // The report and a config train runs as is.
    let html = String::from_utf8(read(&s, "a/report.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("importance"),
        "{html:.300}"
    );
    s.run(&["train", "--quiet", "--config", "a/best.yaml"]).ok();
    assert!(s.exists("a/best/best.mpk"));
}

#[test]
fn a_trial_waits_for_the_trials_it_depends_on_and_says_which() {
    let s = Sandbox::new();
    s.sample("d.csv", 600, 4);
    s.write("space.yaml", SPACE);
    tune(
        &s,
        "d.csv",
        "o",
        &["--trials", "8", "--lag", "4", "--trial", "7"],
    )
    .bad_input("trials 1–3 (those at least --lag 4 before it); trials 1, 2, 3 have none");
    // With the random sampler and no pruner, trials depend on nothing.
    let alone = [
        "--trials",
        "8",
        "--sampler",
        "random",
        "--pruner",
        "none",
        "--trial",
        "6",
    ];
    tune(&s, "d.csv", "r", &alone).ok();
    assert!(s.exists("r/trials/6/result.json"));
    assert!(!s.exists("r/trials/1"));
}

#[test]
fn a_killed_search_resumes_without_repeating_finished_trials() {
    let s = Sandbox::new();
    s.sample("d.csv", 1500, 5);
    s.write("space.yaml", SPACE);
    let search = ["--trials", "10", "--lag", "2", "--set", "training.epochs=6"];
    tune(&s, "d.csv", "whole", &search).ok();

    let args = tune_args("d.csv", "cut", &search);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = s.command(&args).stdout(Stdio::null()).spawn().unwrap();
    let done = |k: usize| s.exists(&format!("cut/trials/{k}/result.json"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done(3) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(done(3), "trial 3 never finished");
    assert!(!s.exists("cut/trials.csv"), "the search was not cut short");
    let finished: Vec<usize> = (1..=10).filter(|&k| done(k)).collect();
    let stamp = |k: usize| {
        let p = s.path(&format!("cut/trials/{k}/result.json"));
        std::fs::metadata(p).unwrap().modified().unwrap()
    };
    let before: Vec<_> = finished.iter().map(|&k| stamp(k)).collect();
    // Starting it again without --resume is refused; with it, it goes on.
    tune(&s, "d.csv", "cut", &[]).bad_input("--resume");
    s.run(&["tune", "--out", "cut", "--resume", "--quiet"]).ok();
    let after: Vec<_> = finished.iter().map(|&k| stamp(k)).collect();
    assert_eq!(before, after, "finished trials ran again");
    assert_eq!(read(&s, "cut/trials.csv"), read(&s, "whole/trials.csv"));
}

#[test]
fn conditional_keys_only_appear_with_their_family() {
    let s = Sandbox::new();
    s.sample("d.csv", 800, 6);
    s.write(
        "space.yaml",
        "model.kind: {choice: [mlp, random_forest]}\n\
         model.hidden_dims: {choice: [[8], [16]], when: {model.kind: mlp}}\n\
         model.random_forest.n_trees: {int: [5, 20], when: {model.kind: random_forest}}\n",
    );
    tune(&s, "d.csv", "o", &["--trials", "8", "--sampler", "random"]).ok();
    let table = String::from_utf8(read(&s, "o/trials.csv")).unwrap();
    let mut rows = csv::Reader::from_reader(table.as_bytes());
    let header = rows.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (kind, dims, trees) = (
        col("model.kind"),
        col("model.hidden_dims"),
        col("model.random_forest.n_trees"),
    );
    let mut kinds = std::collections::BTreeSet::new();
    for row in rows.records() {
        let row = row.unwrap();
        kinds.insert(row[kind].to_string());
        match &row[kind] {
            "mlp" => assert!(!row[dims].is_empty() && row[trees].is_empty(), "{row:?}"),
            "random_forest" => assert!(row[dims].is_empty() && !row[trees].is_empty(), "{row:?}"),
            other => panic!("{other}"),
        }
        let config =
            String::from_utf8(read(&s, &format!("o/trials/{}/config.yaml", &row[1]))).unwrap();
        assert!(
            config.contains(&format!("kind: {}", &row[kind])),
            "{config:.200}"
        );
    }
    assert_eq!(kinds.len(), 2, "both families searched: {kinds:?}");
}

#[test]
fn a_bad_space_is_refused_before_any_trial_naming_the_key() {
    let s = Sandbox::new();
    s.sample("d.csv", 300, 7);
    for (space, culprit) in [
        (
            "training.learning_rat: {log_uniform: [0.001, 0.1]}",
            "training.learning_rat",
        ),
        (
            "training.learning_rate: {log_uniform: [0, 0.1]}",
            "training.learning_rate",
        ),
        ("data.test_size: {uniform: [0.1, 0.3]}", "data.test_size"),
        ("model.dropout: {uniform: [0.0, 2.0]}", "model.dropout"),
        (
            "model.dropout: {uniform: [0.0, 0.5], when: {model.nope: mlp}}",
            "model.nope",
        ),
        ("model.dropout: [0.1, 0.2]", "model.dropout"),
    ] {
        s.write("space.yaml", space);
        tune(&s, "d.csv", "o", &[]).bad_input(culprit);
        assert!(!s.exists("o/trials"), "{space}: a trial ran");
    }
    s.write("space.yaml", "model.dropout: {uniform: [0.0, 0.5]}");
    tune(&s, "d.csv", "o", &["--sampler", "grid"]).bad_input("model.dropout");
    s.run(&["tune", "--out", "nowhere", "--aggregate"])
        .bad_input("--space");
}

/// A column that equals the label on the test rows only (noise elsewhere): a search that
/// read the test rows would prefer the configurations that keep it.
#[test]
fn a_column_that_leaks_the_label_on_test_rows_never_moves_the_search() {
    let s = Sandbox::new();
    s.sample("plain.csv", 1200, 8);
    let text = std::fs::read_to_string(s.path("plain.csv")).unwrap();
    let mut noise = crate::util::uniform(9);
    let rows: Vec<(String, bool, f64)> = text
        .lines()
        .skip(1)
        .map(|l| (l.to_string(), l.split(',').nth(8) == Some("1.0"), noise()))
        .collect();
    let header = text.lines().next().unwrap();
    let write = |rel: &str, leak_on: &dyn Fn(usize) -> bool| {
        let mut out = format!("{header},leak\n");
        for (i, (line, label, u)) in rows.iter().enumerate() {
            let v = if leak_on(i) {
                *label as u8 as f64
            } else {
                (*u > 0.5) as u8 as f64
            };
            out += &format!("{line},{v}\n");
        }
        s.write(rel, out);
    };
    write("noise.csv", &|_| false);
    s.write(
        "space.yaml",
        "data.drop_columns: {choice: [[], [leak]]}\nmodel.dropout: {uniform: [0.0, 0.3]}\n",
    );
    let search = ["--trials", "8", "--sampler", "random", "--cv", "2"];
    tune(&s, "noise.csv", "noise", &search).ok();
    let plan: serde_json::Value = serde_json::from_slice(&read(&s, "noise/folds.json")).unwrap();
    let test: std::collections::BTreeSet<usize> = plan["test_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert!(test.len() > 100);
    write("leak.csv", &|i| test.contains(&i));
    // Same folds, same trials, same table: the label in the test rows' column changed nothing.
    std::fs::copy(s.path("noise.csv"), s.path("keep.csv")).unwrap();
    std::fs::copy(s.path("leak.csv"), s.path("noise.csv")).unwrap();
    tune(&s, "noise.csv", "leak", &search).ok();
    assert_eq!(read(&s, "noise/folds.json"), read(&s, "leak/folds.json"));
    assert_eq!(read(&s, "noise/trials.csv"), read(&s, "leak/trials.csv"));
    // Only the best configuration's evaluation, after the search, sees the test rows.
    let test_json = |out: &str| -> serde_json::Value {
        serde_json::from_slice(&read(&s, &format!("{out}/best/test.json"))).unwrap()
    };
    assert_eq!(test_json("noise")["trial"], test_json("leak")["trial"]);
}
