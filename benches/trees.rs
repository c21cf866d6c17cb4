//! Random-forest fit and predict throughput, with the protocol of
//! `benches/trees_reference.py` (scikit-learn's RandomForestClassifier), so `benches/trees.sh`
//! can put them side by side:
//!
//!   cargo bench --bench trees -- [--rows 1000000] [--features 40] [--trees 100] [--reps 1]
//!   cargo bench --bench trees -- --nsl-kdd ../shared/datasets [--trees 100]
//!
//! Synthetic rows are standard-normal features; the label is whether x0 + x1·x2 + 0.5·noise >
//! 0.5, so trees have something to learn and some noise to grow deep on; the forest is fit on
//! the first 80% of the rows and predicts the rest. With `--nsl-kdd DIR` it is fit on
//! KDDTrain+ (normal vs attack, 122 encoded columns, balanced class weights; 1% held out as
//! the run's validation split) and predicts KDDTest+. The forest bootstraps, tries `sqrt` of
//! the features per split and grows until pure. Median of `--reps`, in rows/s, and the
//! process's peak RSS.

use std::time::Instant;

use anomaly::config::Config;
use anomaly::eval::roc_auc;
use anomaly::model::random_forest::{Labelled, RandomForest, RandomForestConfig};
use anomaly::train::prepare::prepare_training;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

mod common;

use common::{arg, median, peak_rss_kib};

/// Rows to fit on and rows to predict, with their classes.
struct Workload {
    name: String,
    d: usize,
    fit_x: Vec<f32>,
    fit_class: Vec<u32>,
    class_weights: Vec<f64>,
    held_x: Vec<f32>,
    held_y: Vec<f32>,
}

fn synthetic(rows: usize, d: usize) -> Workload {
    let mut rng = StdRng::seed_from_u64(42);
    let mut normal = || -> f32 { StandardNormal.sample(&mut rng) };
    let mut fit_x: Vec<f32> = (0..rows * d).map(|_| normal()).collect();
    let mut fit_class: Vec<u32> = (0..rows)
        .map(|r| {
            let v = &fit_x[r * d..];
            (v[0] + v[1] * v[2] + 0.5 * normal() > 0.5) as u32
        })
        .collect();
    let cut = rows * 4 / 5;
    let held_x = fit_x.split_off(cut * d);
    let held_y = fit_class.split_off(cut).iter().map(|&c| c as f32).collect();
    Workload {
        name: format!("fit on {cut} x {d}"),
        d,
        fit_x,
        fit_class,
        class_weights: vec![1.0, 1.0],
        held_x,
        held_y,
    }
}

/// KDDTrain+ and KDDTest+ read and encoded as `configs/nsl-kdd.yaml` does, normal vs attack.
fn nsl_kdd(dir: &str) -> Workload {
    let overrides = [
        "task=binary".to_string(),
        "training.class_weights=null".to_string(),
        format!("data.path={dir}/KDDTrain+.txt.gz"),
        format!("data.test_path={dir}/KDDTest+.txt.gz"),
        "data.val_size=0.01".to_string(),
    ];
    let preset = std::path::Path::new("configs/nsl-kdd.yaml");
    let config = Config::load(Some(preset), &overrides).expect("the NSL-KDD preset");
    let p = prepare_training(&config).expect("KDDTrain+ and KDDTest+ under --nsl-kdd");
    let fit_class: Vec<u32> = p.train.y.iter().map(|&y| y as u32).collect();
    let attacks = fit_class.iter().filter(|&&c| c == 1).count() as f64;
    let n = fit_class.len() as f64;
    Workload {
        name: format!(
            "NSL-KDD, fit on {} x {}",
            fit_class.len(),
            p.train.n_features
        ),
        d: p.train.n_features,
        fit_x: p.train.x,
        fit_class,
        class_weights: vec![n / (2.0 * (n - attacks)), n / (2.0 * attacks)],
        held_x: p.test.x,
        held_y: p.test.y,
    }
}

fn main() {
    let trees = arg("--trees", 100);
    let reps = arg("--reps", 1);
    let args: Vec<String> = std::env::args().collect();
    let kdd = args
        .iter()
        .position(|a| a == "--nsl-kdd")
        .map(|i| &args[i + 1]);
    let w = match kdd {
        Some(dir) => nsl_kdd(dir),
        None => synthetic(arg("--rows", 1_000_000), arg("--features", 40)),
    };
    let fit_rows: Vec<usize> = (0..w.fit_class.len()).collect();
    let cfg = RandomForestConfig {
        n_trees: trees,
        ..RandomForestConfig::default()
    };
    let data = Labelled {
        x: &w.fit_x,
        d: w.d,
        rows: &fit_rows,
        class: &w.fit_class,
        class_weights: &w.class_weights,
        multiclass: false,
    };
    let (mut fit, mut predict) = (Vec::new(), Vec::new());
    let mut auc = 0.0;
    for _ in 0..reps {
        let t = Instant::now();
        let forest = RandomForest::fit(&data, &cfg, 42);
        fit.push(fit_rows.len() as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let p = forest.probabilities(&w.held_x);
        predict.push(w.held_y.len() as f64 / t.elapsed().as_secs_f64());
        let anomaly: Vec<f32> = p.chunks_exact(2).map(|p| p[1]).collect();
        auc = roc_auc(&anomaly, &w.held_y).unwrap_or(f64::NAN);
    }
    println!(
        "anomaly random forest, {trees} trees, {}: fit {:.0} rows/s, predict {:.0} rows/s, ROC AUC {auc:.4}, peak RSS {} MiB",
        w.name,
        median(fit),
        median(predict),
        peak_rss_kib() / 1024
    );
}
