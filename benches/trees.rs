//! Random-forest fit and predict throughput, with the protocol of
//! `benches/trees_reference.py` (scikit-learn's RandomForestClassifier), so `benches/trees.sh`
//! can put them side by side:
//!
//!   cargo bench --bench trees -- [--rows 1000000] [--features 40] [--trees 100] [--reps 1]
//!
//! Rows are standard-normal features; the label is whether x0 + x1·x2 + 0.5·noise > 0.5, so
//! trees have something to learn and some noise to grow deep on. The forest (bootstrap,
//! `max_features` sqrt, grown until pure) is fit on the first 80% of the rows and predicts
//! the rest. Median of `--reps`, in rows/s, and the process's peak RSS.

use std::time::Instant;

use anomaly::config::RandomForestConfig;
use anomaly::eval::roc_auc;
use anomaly::model::random_forest::{Labelled, RandomForest};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

mod common;

use common::{arg, median, peak_rss_kib};

fn main() {
    let (rows, d, trees, reps) = (
        arg("--rows", 1_000_000),
        arg("--features", 40),
        arg("--trees", 100),
        arg("--reps", 1),
    );
    let mut rng = StdRng::seed_from_u64(42);
    let mut normal = || -> f32 { StandardNormal.sample(&mut rng) };
    let x: Vec<f32> = (0..rows * d).map(|_| normal()).collect();
    let class: Vec<u32> = (0..rows)
        .map(|r| {
            let v = &x[r * d..];
            (v[0] + v[1] * v[2] + 0.5 * normal() > 0.5) as u32
        })
        .collect();
    let fit_rows: Vec<usize> = (0..rows * 4 / 5).collect();
    let held: Vec<f32> = class[fit_rows.len()..].iter().map(|&c| c as f32).collect();
    let cfg = RandomForestConfig {
        n_trees: trees,
        ..RandomForestConfig::default()
    };
    let data = Labelled {
        x: &x,
        d,
        rows: &fit_rows,
        class: &class,
        class_weights: &[1.0, 1.0],
        multiclass: false,
    };
    let (mut fit, mut predict) = (Vec::new(), Vec::new());
    let mut auc = 0.0;
    for _ in 0..reps {
        let t = Instant::now();
        let forest = RandomForest::fit(&data, &cfg, 42);
        fit.push(fit_rows.len() as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let p = forest.probabilities(&x[fit_rows.len() * d..]);
        predict.push(held.len() as f64 / t.elapsed().as_secs_f64());
        let anomaly: Vec<f32> = p.chunks_exact(2).map(|p| p[1]).collect();
        auc = roc_auc(&anomaly, &held).unwrap_or(f64::NAN);
    }
    println!(
        "anomaly random forest, {} trees, fit on {} x {d}: fit {:.0} rows/s, predict {:.0} rows/s, ROC AUC {auc:.4}, peak RSS {} MiB",
        trees,
        fit_rows.len(),
        median(fit),
        median(predict),
        peak_rss_kib() / 1024
    );
}
