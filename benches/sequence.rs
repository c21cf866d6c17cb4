//! Training and inference windows/s of the default CNN+LSTM (C = 17 features, L = 32 flows;
//! conv 128 and 256, LSTM 128, dropout 0.3, Adam, BCE with logits), with the protocol of
//! `benches/sequence_reference.py` (the same architecture in PyTorch), so
//! `benches/sequence.sh` can put them side by side:
//!
//!   cargo bench --bench sequence -- [--windows 8192] [--reps 3] [--batches 64,512]
//!
//! Windows slide one flow at a time over standard-normal flows (the trainer builds each
//! batch's windows from the flows, as `train` does); the label is whether a window's last
//! flows trend up in feature 0. Each repetition trains one pass over `--windows` windows at
//! each batch size and scores them in batches of 512; medians in windows/s.

use std::sync::Arc;
use std::time::Instant;

use anomaly::config::TrainingConfig;
use anomaly::data::Dataset;
use anomaly::data::sequence::Windows;
use anomaly::model::cnn_lstm::CnnLstm;
use anomaly::model::{ModelConfig, ModelKind, ModelSpec, Net, Network};
use anomaly::score::score_dataset;
use anomaly::train::{Feed, Objective, optimizer, run_epoch};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

mod common;

use common::{arg, median};

const CHANNELS: usize = 17;
const LENGTH: usize = 32;

fn windows(n: usize) -> Dataset {
    let mut rng = StdRng::seed_from_u64(42);
    let flows: Vec<f32> = (0..(n + LENGTH) * CHANNELS)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let ends: Vec<usize> = (LENGTH - 1..LENGTH - 1 + n).collect();
    let y = ends
        .iter()
        .map(|&e| {
            let f0 = |t: usize| flows[(e - t) * CHANNELS];
            (f0(0) + f0(1) - f0(2) - f0(3) > 0.5) as u8 as f32
        })
        .collect();
    Dataset {
        y,
        n_features: CHANNELS * LENGTH,
        windows: Some(Windows {
            flows: Arc::new(flows),
            channels: CHANNELS,
            length: LENGTH,
            ends,
        }),
        ..Default::default()
    }
}

fn main() {
    anomaly::keep_freed_memory();
    let n = arg("--windows", 8192);
    let reps = arg("--reps", 3);
    let batches: Vec<usize> = std::env::args()
        .skip_while(|a| a != "--batches")
        .nth(1)
        .map_or(vec![64, 512], |v| {
            v.split(',')
                .map(|b| b.parse().expect("a batch size"))
                .collect()
        });
    let data = windows(n);
    let config = ModelConfig {
        kind: ModelKind::CnnLstm,
        ..Default::default()
    };
    let spec = ModelSpec::of_run(&config, LENGTH, CHANNELS, 1);
    let device = anomaly::device::cpu();
    let ad = device.clone().autodiff();
    let order: Vec<usize> = (0..n).collect();
    let objective = Objective::Binary { pos_weight: 1.0 };
    // The original project clips gradients at 5; the reference does too.
    let training = TrainingConfig {
        grad_clip: Some(5.0),
        ..Default::default()
    };
    println!(
        "cnn_lstm: {} parameters, {n} windows of {CHANNELS} x {LENGTH}, {} threads",
        spec.n_params(),
        rayon::current_num_threads()
    );
    for &batch in &batches {
        let rates: Vec<f64> = (0..reps)
            .map(|rep| {
                ad.seed(rep as u64);
                let model = CnnLstm::build(&spec, &ad);
                let mut optim = optimizer(&training);
                let started = Instant::now();
                let _ = run_epoch(
                    model,
                    &mut optim,
                    &Feed::Host(&data),
                    &order,
                    batch,
                    &objective,
                    &|_| 1e-3,
                    rep as u64,
                    &ad,
                    1,
                    &mut |_| {},
                )
                .expect("a CPU pass reads its losses");
                n as f64 / started.elapsed().as_secs_f64()
            })
            .collect();
        println!("train batch {batch} windows/s {:.0}", median(rates));
    }
    ad.seed(0);
    let model = CnnLstm::build(&spec, &ad);
    let network = Network::of(&spec, &model, &device).expect("a network");
    let rates: Vec<f64> = (0..reps)
        .map(|_| {
            let started = Instant::now();
            score_dataset(&network, &data).expect("scores");
            n as f64 / started.elapsed().as_secs_f64()
        })
        .collect();
    println!("inference batch 512 windows/s {:.0}", median(rates));
}
