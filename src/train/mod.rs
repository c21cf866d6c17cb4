//! The training loop: mini-batches, early stopping, threshold choice and checkpoints.
//!
//! Resuming is exact because nothing random carries over between epochs: each epoch reseeds
//! the shuffle and the dropout RNG from (seed, epoch), and everything else (weights, optimizer
//! moments, early-stopping counters, best weights) is in `last.mpk`.

pub mod checkpoint;
pub mod cv;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::activation::{log_sigmoid, sigmoid};
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::bail_input;
use crate::config::{
    Config, OptimizerKind, PosWeight, SchedulerKind, ThresholdChoice, TrainingConfig,
};
use crate::data::{Dataset, Prepared};
use crate::error::bad_input;
use crate::eval::choose_threshold;
use crate::model::{Mlp, ModelSpec};
use checkpoint::{
    BURN_VERSION, Checkpoint, DataShape, EpochRecord, FORMAT, FORMAT_VERSION, TrainState,
    model_bytes,
};

/// What the loop reports as it goes (progress bars, TensorBoard, the text log).
pub trait Observer {
    fn epoch_started(&mut self, _epoch: usize, _batches: usize) {}
    fn batch_done(&mut self, _global_step: u64, _loss: f64) {}
    fn epoch_done(&mut self, _record: &EpochRecord, _improved: bool, _best_val_loss: f64) {}
}

/// Where `best.mpk`, `last.mpk` and `checkpoint_epoch_N.mpk` go.
pub fn checkpoint_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("best.mpk"), dir.join("last.mpk"))
}

/// How a run ended.
pub struct Outcome {
    /// The final `best.mpk` contents (best weights, threshold, full history).
    pub best: Checkpoint,
    pub epochs_run: usize,
    pub stopped_early: bool,
}

/// The optimizer `training.optimizer` names, with its settings.
pub fn optimizer(cfg: &TrainingConfig) -> ModuleOptimizer {
    let decay = (cfg.weight_decay > 0.0).then(|| WeightDecayConfig::new(cfg.weight_decay as f32));
    match cfg.optimizer {
        // PyTorch's epsilon, so settings carried over from the reference behave the same.
        OptimizerKind::Adam => AdamConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(decay)
            .init(),
        OptimizerKind::Adamw => AdamWConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(cfg.weight_decay as f32)
            .init(),
        OptimizerKind::Sgd => SgdConfig::new()
            .with_weight_decay(decay)
            .with_momentum((cfg.momentum > 0.0).then_some(MomentumConfig {
                momentum: cfg.momentum,
                dampening: 0.0,
                nesterov: false,
            }))
            .init(),
    }
}

/// The learning rate of a (1-based) epoch: StepLR multiplies by `gamma` every `step_size` epochs.
pub fn learning_rate(cfg: &TrainingConfig, epoch: usize) -> f64 {
    match cfg.scheduler {
        SchedulerKind::None => cfg.learning_rate,
        SchedulerKind::Step => {
            cfg.learning_rate * cfg.gamma.powi(((epoch - 1) / cfg.step_size) as i32)
        }
    }
}

/// A seed per epoch, so shuffling and dropout do not depend on how the run got there.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(epoch as u64)
}

/// Binary cross-entropy on logits with PyTorch's `pos_weight`:
/// `(1 - y)·x − (1 + (w − 1)·y)·log σ(x)`, averaged.
fn bce_with_logits(logits: Tensor<2>, y: Tensor<2>, pos_weight: f64) -> Tensor<1> {
    let weight = y.clone().mul_scalar(pos_weight - 1.0).add_scalar(1.0);
    let log_p = log_sigmoid(logits.clone());
    (y.neg().add_scalar(1.0) * logits - weight * log_p).mean()
}

fn batch_tensors(
    ds: &Dataset,
    rows: &[usize],
    x_buf: &mut Vec<f32>,
    device: &Device,
) -> (Tensor<2>, Tensor<2>) {
    let d = ds.n_features;
    x_buf.clear();
    for &r in rows {
        x_buf.extend_from_slice(&ds.x[r * d..(r + 1) * d]);
    }
    let y: Vec<f32> = rows.iter().map(|&r| ds.y[r]).collect();
    let x = Tensor::from_data(TensorData::new(x_buf.clone(), [rows.len(), d]), device);
    let y = Tensor::from_data(TensorData::new(y, [rows.len(), 1]), device);
    (x, y)
}

/// One pass over `order` in mini-batches: forward, loss, backward, optimizer step. Returns
/// the model and the sum of per-row losses; `on_batch` sees each batch's mean loss.
/// (The benchmarks time exactly this.)
#[allow(clippy::too_many_arguments)]
pub fn run_epoch(
    mut model: Mlp,
    optim: &mut ModuleOptimizer,
    data: &Dataset,
    order: &[usize],
    batch_size: usize,
    lr: f64,
    pos_weight: f64,
    device: &Device,
    on_batch: &mut dyn FnMut(f64),
) -> (Mlp, f64) {
    let mut x_buf = Vec::with_capacity(batch_size * data.n_features);
    let mut loss_sum = 0.0f64;
    for rows in order.chunks(batch_size) {
        let (x, y) = batch_tensors(data, rows, &mut x_buf, device);
        let loss = bce_with_logits(model.forward(x), y, pos_weight);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let value = loss.into_scalar::<f32>() as f64;
        model = optim.step(lr, model, grads);
        loss_sum += value * rows.len() as f64;
        on_batch(value);
    }
    (model, loss_sum)
}

/// Anomaly probabilities for every row, in inference mode (no autodiff, no dropout).
pub fn predict(model: &Mlp, ds: &Dataset, device: &Device) -> Result<Vec<f32>> {
    const BATCH: usize = 4096;
    let model = model.valid();
    let mut probs = Vec::with_capacity(ds.len());
    let mut buf = Vec::new();
    let rows: Vec<usize> = (0..ds.len()).collect();
    for chunk in rows.chunks(BATCH) {
        let (x, _) = batch_tensors(ds, chunk, &mut buf, device);
        let p = sigmoid(model.forward(x));
        probs.extend(
            p.try_to_vec_as::<f32>()
                .map_err(|e| anyhow::anyhow!("reading predictions: {e:?}"))?,
        );
    }
    Ok(probs)
}

/// Validation loss (with the training loss's weighting) and probabilities.
fn validate(
    model: &Mlp,
    ds: &Dataset,
    pos_weight: f64,
    device: &Device,
) -> Result<(f64, Vec<f32>)> {
    let probs = predict(model, ds, device)?;
    let w = pos_weight;
    let loss: f64 = probs
        .iter()
        .zip(&ds.y)
        .map(|(&p, &y)| {
            let p = (p as f64).clamp(1e-12, 1.0 - 1e-12);
            -(w * y as f64 * p.ln() + (1.0 - y as f64) * (1.0 - p).ln())
        })
        .sum::<f64>()
        / ds.len() as f64;
    Ok((loss, probs))
}

fn resolve_pos_weight(cfg: &TrainingConfig, train: &Dataset) -> f64 {
    match cfg.pos_weight {
        None => 1.0,
        Some(PosWeight::Value(w)) => w,
        Some(PosWeight::Auto(_)) => {
            let p = train.positives() as f64;
            (train.len() as f64 - p) / p
        }
    }
}

fn threshold_for(cfg: &TrainingConfig, probs: &[f32], y: &[f32]) -> f32 {
    match cfg.threshold {
        ThresholdChoice::Fixed(p) => p as f32,
        ThresholdChoice::Rule(rule) => choose_threshold(probs, y, rule),
    }
}

/// Trains (or resumes) a model on `data` as `config` says, writing checkpoints as it goes.
pub fn train(
    config: &Config,
    run_name: &str,
    data: &Prepared,
    device: &Device,
    resume: Option<Checkpoint>,
    observer: &mut dyn Observer,
) -> Result<Outcome> {
    let cfg = &config.training;
    let ad = device.clone().autodiff();
    let spec = ModelSpec::new(data.pre.n_features(), &config.model);
    let shape = DataShape {
        train_rows: data.train.len(),
        val_rows: data.val.len(),
        train_positives: data.train.positives(),
    };
    ad.seed(cfg.seed);
    let mut model = spec.init(&ad);
    let mut optim = optimizer(cfg);
    let (mut state, mut history, first_epoch) = match resume {
        None => {
            let state = TrainState {
                optimizer: Vec::new(),
                best_weights: model_bytes(&model)?,
                best_epoch: 0,
                best_val_loss: f64::INFINITY,
                best_threshold: 0.5,
                epochs_without_improvement: 0,
                pos_weight: resolve_pos_weight(cfg, &data.train),
                finished: false,
            };
            (state, Vec::new(), 1)
        }
        Some(ck) => {
            if ck.preprocessor != data.pre || ck.data != shape || ck.model != spec {
                bail_input!(
                    "--resume: the checkpoint was trained on other data or another model \
                     ({} training rows, {} features; now {}, {})",
                    ck.data.train_rows,
                    ck.preprocessor.n_features(),
                    shape.train_rows,
                    data.pre.n_features()
                );
            }
            let Some(state) = ck.train_state else {
                bail_input!(
                    "--resume: this checkpoint holds no training state; resume from last.mpk"
                );
            };
            model = checkpoint::load_model(&spec, &ck.weights, &ad)?;
            optim = optim
                .from_bytes(Bytes::from_bytes_vec(state.optimizer.clone()))
                .map_err(|e| {
                    bad_input(format!("--resume: the optimizer state is unreadable: {e}"))
                })?;
            (state, ck.history, ck.epoch + 1)
        }
    };

    let save_dir = &config.checkpoint.save_dir;
    let (best_path, last_path) = checkpoint_paths(save_dir);
    let envelope = |weights: Vec<u8>,
                    weights_epoch: usize,
                    epoch: usize,
                    threshold: f32,
                    history: &[EpochRecord],
                    st: Option<TrainState>| Checkpoint {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        burn_version: BURN_VERSION.into(),
        config: config.clone(),
        run_name: run_name.to_string(),
        model: spec.clone(),
        preprocessor: data.pre.clone(),
        threshold,
        epoch,
        weights_epoch,
        weights,
        history: history.to_vec(),
        data: shape.clone(),
        train_state: st,
    };

    let n = data.train.len();
    let mut order: Vec<usize> = (0..n).collect();
    let mut step = (first_epoch as u64 - 1) * n.div_ceil(cfg.batch_size) as u64;
    let mut epoch = first_epoch;
    while !state.finished && epoch <= cfg.epochs {
        let seed = epoch_seed(cfg.seed, epoch);
        ad.seed(seed);
        order.sort_unstable();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let lr = learning_rate(cfg, epoch);
        observer.epoch_started(epoch, n.div_ceil(cfg.batch_size));
        let (trained, loss_sum) = run_epoch(
            model,
            &mut optim,
            &data.train,
            &order,
            cfg.batch_size,
            lr,
            state.pos_weight,
            &ad,
            &mut |loss| {
                step += 1;
                observer.batch_done(step, loss);
            },
        );
        model = trained;
        // Without validation rows (the final model of `cv`), the latest epoch is the best one.
        let (val_loss, val_probs) = if data.val.is_empty() {
            (f64::NAN, Vec::new())
        } else {
            validate(&model, &data.val, state.pos_weight, device)?
        };
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / n as f64,
            val_loss,
            learning_rate: lr,
        };
        let improved =
            data.val.is_empty() || val_loss < state.best_val_loss - cfg.early_stopping.min_delta;
        if improved {
            state.best_val_loss = val_loss;
            state.best_epoch = epoch;
            state.best_weights = model_bytes(&model)?;
            state.best_threshold = threshold_for(cfg, &val_probs, &data.val.y);
            state.epochs_without_improvement = 0;
        } else {
            state.epochs_without_improvement += 1;
        }
        history.push(record.clone());
        let stop = cfg.early_stopping.enabled
            && state.epochs_without_improvement >= cfg.early_stopping.patience;
        state.finished = stop || epoch == cfg.epochs;
        state.optimizer = optim
            .into_bytes()
            .map_err(|e| anyhow::anyhow!("serialising optimizer state: {e}"))?
            .to_vec();

        let current = model_bytes(&model)?;
        let resumable = envelope(
            current,
            epoch,
            epoch,
            state.best_threshold,
            &history,
            Some(state.clone()),
        );
        let every = config.checkpoint.save_frequency;
        if every > 0 && epoch.is_multiple_of(every) {
            resumable.save(&save_dir.join(format!("checkpoint_epoch_{epoch}.mpk")))?;
        }
        resumable.save(&last_path)?;
        if improved {
            envelope(
                state.best_weights.clone(),
                epoch,
                epoch,
                state.best_threshold,
                &history,
                None,
            )
            .save(&best_path)?;
        }
        observer.epoch_done(&record, improved, state.best_val_loss);
        epoch += 1;
    }

    // The final best.mpk carries the whole history, for reports of the training curves.
    let last_epoch = history.last().map_or(0, |r| r.epoch);
    let best = envelope(
        state.best_weights.clone(),
        state.best_epoch,
        last_epoch,
        state.best_threshold,
        &history,
        None,
    );
    best.save(&best_path)
        .context("writing the final best checkpoint")?;
    Ok(Outcome {
        best,
        epochs_run: last_epoch,
        stopped_early: last_epoch < cfg.epochs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_schedule_decays_every_step_size_epochs() {
        let cfg = TrainingConfig {
            learning_rate: 1.0,
            step_size: 2,
            gamma: 0.5,
            ..Default::default()
        };
        let lrs: Vec<f64> = (1..=5).map(|e| learning_rate(&cfg, e)).collect();
        assert_eq!(lrs, [1.0, 1.0, 0.5, 0.5, 0.25]);
    }

    #[test]
    fn weighted_bce_matches_the_closed_form() {
        let device = crate::device::cpu();
        let logits = Tensor::<2>::from_data(TensorData::new(vec![2.0f32, -1.0], [2, 1]), &device);
        let y = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0], [2, 1]), &device);
        let got = bce_with_logits(logits, y, 3.0).into_scalar::<f32>() as f64;
        let s = |x: f64| 1.0 / (1.0 + (-x).exp());
        let want = (-3.0 * s(2.0).ln() - (1.0 - s(-1.0)).ln()) / 2.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}
