//! Unsupervised detectors' throughput, with the protocol of `benches/unsupervised_reference.py`
//! (scikit-learn's IsolationForest, LocalOutlierFactor and OneClassSVM, and a torch
//! autoencoder), so `benches/unsupervised.sh` can put them side by side:
//!
//!   cargo bench --bench unsupervised -- [--rows 1000000] [--features 40] [--reps 3]
//!       [--lof-rows 100000] [--svm-rows 100000] [--ae-rows 200000]
//!
//! Rows are standard-normal features, 2% of them shifted by 4 (the anomalies), generated once
//! from a fixed seed. Isolation forest: 100 trees of 256 rows fit on all rows, every row
//! scored. LOF: 20 neighbours, fit on the first 20,000 rows (its fit subsample), the first
//! `--lof-rows` rows scored. One-class SVM: ν 0.1, gamma `scale`, fit on the first 10,000 rows
//! (its fit subsample), the first `--svm-rows` rows scored. Autoencoder: d-64-32-16-8-16-32-64-d,
//! one epoch of Adam (1e-3) at batch 256 over the first `--ae-rows` rows. Median of `--reps`,
//! in rows/s (forest and SVM fit: rows offered to the fit per second).

use std::time::Instant;

use anomaly::config::TrainingConfig;
use anomaly::data::Dataset;
use anomaly::eval::roc_auc;
use anomaly::model::isolation_forest::{IsolationForest, IsolationForestConfig};
use anomaly::model::lof::{Lof, LofConfig};
use anomaly::model::one_class_svm::{OneClassSvm, OneClassSvmConfig};
use anomaly::model::{ModelConfig, ModelKind, ModelSpec};
use anomaly::train::{Feed, Objective, optimizer, run_epoch};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

mod common;

use common::{arg, median};

fn main() {
    let (rows, features, reps) = (
        arg("--rows", 1_000_000),
        arg("--features", 40),
        arg("--reps", 3),
    );
    let mut rng = StdRng::seed_from_u64(42);
    let y: Vec<f32> = (0..rows).map(|r| (r % 50 == 0) as u8 as f32).collect();
    let x: Vec<f32> = (0..rows * features)
        .map(|i| {
            let v: f32 = StandardNormal.sample(&mut rng);
            v + 4.0 * y[i / features]
        })
        .collect();
    let all: Vec<usize> = (0..rows).collect();
    let cfg = IsolationForestConfig::default();
    let (mut fit, mut score) = (Vec::new(), Vec::new());
    let mut auc = 0.0;
    for _ in 0..reps {
        let t = Instant::now();
        let forest = IsolationForest::fit(&x, features, &all, &cfg, 42);
        fit.push(rows as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let s = forest.scores(&x);
        score.push(rows as f64 / t.elapsed().as_secs_f64());
        auc = roc_auc(&s, &y).unwrap_or(f64::NAN);
    }
    println!(
        "anomaly isolation forest, {rows} x {features}: fit {:.0} rows/s, score {:.0} rows/s, ROC AUC {auc:.4}",
        median(fit),
        median(score)
    );

    let lof_rows = arg("--lof-rows", 100_000).min(rows);
    let fitted: Vec<usize> = (0..20_000.min(rows)).collect();
    let lof = Lof::fit(&x, features, &fitted, &LofConfig::default(), 42);
    let queries = &x[..lof_rows * features];
    let mut rates = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let s = lof.scores(queries);
        rates.push(lof_rows as f64 / t.elapsed().as_secs_f64());
        auc = roc_auc(&s, &y[..lof_rows]).unwrap_or(f64::NAN);
    }
    println!(
        "anomaly lof, {lof_rows} x {features} scored against 20000: lof {:.0} rows/s, ROC AUC {auc:.4}",
        median(rates)
    );

    let svm_rows = arg("--svm-rows", 100_000).min(rows);
    let fitted: Vec<usize> = (0..10_000.min(rows)).collect();
    let queries = &x[..svm_rows * features];
    let (mut fit, mut score) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let t = Instant::now();
        let svm = OneClassSvm::fit(&x, features, &fitted, &OneClassSvmConfig::default(), 42);
        fit.push(fitted.len() as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let s = svm.scores(queries);
        score.push(svm_rows as f64 / t.elapsed().as_secs_f64());
        auc = roc_auc(&s, &y[..svm_rows]).unwrap_or(f64::NAN);
    }
    println!(
        "anomaly one-class svm, fit on 10000, {svm_rows} x {features} scored: svmfit {:.0} rows/s, svmscore {:.0} rows/s, ROC AUC {auc:.4}",
        median(fit),
        median(score)
    );

    let ae_rows = arg("--ae-rows", 200_000).min(rows);
    let data = Dataset {
        x: x[..ae_rows * features].to_vec(),
        y: y[..ae_rows].to_vec(),
        n_features: features,
        ..Default::default()
    };
    let cfg = ModelConfig {
        kind: ModelKind::Autoencoder,
        ..Default::default()
    };
    let spec = ModelSpec::new(features, features, &cfg);
    let device = anomaly::device::cpu().autodiff();
    device.seed(42);
    let training = TrainingConfig {
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut model = spec.init(&device);
    let mut optim = optimizer(&training);
    let order: Vec<usize> = (0..ae_rows).collect();
    let mut rates = Vec::new();
    for rep in 0..reps {
        let t = Instant::now();
        let (m, _) = run_epoch(
            model,
            &mut optim,
            &Feed::Host(&data),
            &order,
            256,
            &Objective::Reconstruction,
            &|_| 1e-3,
            rep as u64,
            &device,
            1,
            &mut |_| {},
        )
        .expect("a CPU pass reads its losses");
        model = m;
        rates.push(ae_rows as f64 / t.elapsed().as_secs_f64());
    }
    println!(
        "anomaly autoencoder, {ae_rows} x {features}, batch 256: aeepoch {:.0} rows/s",
        median(rates)
    );
}
