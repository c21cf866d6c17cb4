//! The training loop: mini-batches, early stopping, threshold choice and checkpoints.
//!
//! Resuming is exact because nothing random carries over between epochs: each epoch reseeds
//! the shuffle and the dropout RNG from (seed, epoch), and everything else (weights, optimizer
//! moments, early-stopping counters, best weights) is in `last.mpk`.

pub mod cv;
pub mod feed;
pub mod feedback;
pub mod fit;
pub mod prepare;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdamConfig, AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer, SgdConfig,
    grad_clipping::GradientClipping,
};
use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::bail_input;
use crate::checkpoint::{Checkpoint, DataShape, EpochRecord, TrainState};
use crate::config::{
    ClassWeights, Config, FitOn, OptimizerKind, PosWeight, SchedulerKind, TrainingConfig,
};
use crate::data::labels::UNSEEN;
use crate::data::{Dataset, Prepared};
use crate::error::bad_input;
use crate::eval::decision::{self, RuleInputs};
use crate::model::cnn_lstm::CnnLstm;
use crate::model::dropout::HostMasks;
use crate::model::family::Trainer;
use crate::model::mlp::Mlp;
use crate::model::{DetectorState, Network, NetworkState, load_model, model_bytes};
use crate::model::{ModelKind, ModelSpec, Net, log_softmax_rows, row_sums};
use crate::score::{anomaly, score_dataset};
pub use feed::Feed;

/// What the loop reports as it goes (progress bars, TensorBoard, the text log).
pub trait Observer {
    fn epoch_started(&mut self, _epoch: usize, _batches: usize) {}
    fn batch_done(&mut self, _global_step: u64, _loss: f64) {}
    fn epoch_done(&mut self, _record: &EpochRecord, _improved: bool, _best_val_loss: f64) {}
    /// A line about the run (what a one-pass fit did).
    fn note(&mut self, _message: &str) {}
    /// The validation rows' anomaly scores (and labels) after epoch or boosting round
    /// `step`; `false` ends the run there, keeping the best so far (a search pruning a
    /// trial).
    fn keep_going(&mut self, _step: usize, _scores: &[f32], _y: &[f32]) -> bool {
        true
    }
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
    let optim = match cfg.optimizer {
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
    };
    match cfg.grad_clip {
        Some(c) => optim.with_grad_clipping(GradientClipping::Norm(c as f32)),
        None => optim,
    }
}

/// The learning rate of batch `step` (0-based, counted over the whole run) in a (1-based)
/// epoch, as PyTorch's StepLR, CosineAnnealingLR (T_max = epochs), CyclicLR (triangular) and
/// ReduceLROnPlateau (mode min, relative threshold 1e-4) give it. Plateau replays the
/// validation losses in `history`, so a resumed run gets the same rates.
pub fn learning_rate(
    cfg: &TrainingConfig,
    epoch: usize,
    step: u64,
    history: &[EpochRecord],
) -> f64 {
    let lr = cfg.learning_rate;
    match cfg.scheduler {
        SchedulerKind::None => lr,
        SchedulerKind::Step => lr * cfg.gamma.powi(((epoch - 1) / cfg.step_size) as i32),
        SchedulerKind::Cosine => {
            let t = (epoch - 1) as f64 / cfg.epochs as f64;
            cfg.min_learning_rate
                + (lr - cfg.min_learning_rate) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
        }
        SchedulerKind::Cyclic => {
            let half = cfg.cycle_steps as f64;
            let cycle = (1.0 + step as f64 / (2.0 * half)).floor();
            let x = (step as f64 / half - 2.0 * cycle + 1.0).abs();
            cfg.min_learning_rate
                + (cfg.max_learning_rate - cfg.min_learning_rate) * (1.0 - x).max(0.0)
        }
        SchedulerKind::Plateau => {
            let (mut rate, mut best, mut bad) = (lr, f64::INFINITY, 0);
            for r in history
                .iter()
                .filter(|r| r.epoch < epoch && !r.val_loss.is_nan())
            {
                if r.val_loss < best * (1.0 - 1e-4) {
                    best = r.val_loss;
                    bad = 0;
                } else {
                    bad += 1;
                }
                if bad > cfg.plateau_patience {
                    rate *= cfg.gamma;
                    bad = 0;
                }
            }
            rate
        }
    }
}

/// A seed per epoch, so shuffling and dropout do not depend on how the run got there.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(epoch as u64)
}

/// What a run minimises, with its weights (fixed from the training split at the start).
#[derive(Debug, Clone, PartialEq)]
pub enum Objective {
    /// Binary cross-entropy on one logit, positives weighted by PyTorch's `pos_weight`.
    Binary { pos_weight: f64 },
    /// Cross-entropy over softmax outputs, each class weighted (PyTorch's `weight`: the mean is
    /// taken over the weights of the batch's targets).
    Multiclass { weights: Vec<f64> },
    /// An autoencoder's mean squared reconstruction error (PyTorch's `MSELoss`).
    Reconstruction,
}

impl Objective {
    /// The batch's loss to differentiate, and each row's loss `[rows, 1]` (detached) for the
    /// report. The reported numbers are summed on the host in f64 in row order
    /// ([`Objective::batch_value`]): flex's full sums run in vector lanes as wide as the CPU's,
    /// so the scalar loss here reads differently on AVX2 and AVX-512. Its gradient (a uniform
    /// fill) does not.
    fn loss(&self, logits: Tensor<2>, targets: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        match self {
            // (1 - y)·x − (1 + (w − 1)·y)·log σ(x), averaged.
            Objective::Binary { pos_weight } => {
                let weight = targets.clone().mul_scalar(pos_weight - 1.0).add_scalar(1.0);
                let log_p = log_sigmoid(logits.clone());
                let rows = targets.neg().add_scalar(1.0) * logits - weight * log_p;
                (rows.clone().mean(), rows.detach())
            }
            // The targets carry the one-hot class times its weight over the batch's weight
            // sum, so a row's loss is its share of the batch's weighted mean.
            Objective::Multiclass { .. } => {
                let rows = row_sums(targets * log_softmax_rows(logits)).neg();
                (rows.clone().sum(), rows.detach())
            }
            Objective::Reconstruction => {
                let width = logits.dims()[1] as f64;
                let squared = (logits - targets).powi_scalar(2);
                let rows = row_sums(squared.clone().detach()).div_scalar(width);
                (squared.mean(), rows)
            }
        }
    }

    /// A part of a batch's loss: `share` of the batch's rows. A mean over the part counts
    /// for its share; multiclass targets are already weighted over the whole batch.
    fn part_loss(
        &self,
        logits: Tensor<2>,
        targets: Tensor<2>,
        share: f64,
    ) -> (Tensor<1>, Tensor<2>) {
        let (loss, rows) = self.loss(logits, targets);
        match self {
            Objective::Multiclass { .. } => (loss, rows),
            _ => (loss.mul_scalar(share), rows),
        }
    }

    /// The batch's loss from its rows' losses, summed in row order in f64: their mean, or
    /// their sum for multiclass (each row holds its weighted share already).
    fn batch_value(&self, rows: &[f32]) -> f64 {
        let sum: f64 = rows.iter().map(|&v| v as f64).sum();
        match self {
            Objective::Multiclass { .. } => sum,
            _ => sum / rows.len() as f64,
        }
    }

    /// `[rows, 1]` 0/1 targets, `[rows, classes]` weighted one-hot rows, or the rows
    /// themselves.
    fn targets(&self, ds: &Dataset, rows: &[usize]) -> (Vec<f32>, [usize; 2]) {
        match self {
            Objective::Reconstruction => {
                let d = ds.n_features;
                let x = rows.iter().flat_map(|&r| &ds.x[r * d..(r + 1) * d]);
                (x.copied().collect(), [rows.len(), d])
            }
            Objective::Binary { .. } => (rows.iter().map(|&r| ds.y[r]).collect(), [rows.len(), 1]),
            Objective::Multiclass { weights } => {
                let k = weights.len();
                let total: f64 = rows.iter().map(|&r| weights[ds.class[r] as usize]).sum();
                let mut t = vec![0.0f32; rows.len() * k];
                for (i, &r) in rows.iter().enumerate() {
                    let c = ds.class[r] as usize;
                    t[i * k + c] = (weights[c] / total) as f32;
                }
                (t, [rows.len(), k])
            }
        }
    }

    /// The mean loss over `rows` of a dataset, as training weighs it, from the network's
    /// output: probabilities, or an autoencoder's per-row mean squared errors.
    fn loss_from_outputs(&self, out: &[f32], ds: &Dataset, rows: &[usize]) -> f64 {
        let ln = |p: f32| (p as f64).clamp(1e-12, 1.0).ln();
        match self {
            Objective::Binary { pos_weight } => {
                rows.iter()
                    .map(|&r| {
                        let (p, y) = (out[r], ds.y[r] as f64);
                        -(pos_weight * y * ln(p) + (1.0 - y) * ln(1.0 - p))
                    })
                    .sum::<f64>()
                    / rows.len() as f64
            }
            Objective::Multiclass { weights } => {
                let k = weights.len();
                let (mut sum, mut total) = (0.0, 0.0);
                // Rows of a class the training rows lack (a separate validation file) have no
                // output to score; the per-class report counts them apart.
                let seen = rows.iter().filter(|&&r| ds.class[r] != UNSEEN);
                for &r in seen {
                    let c = ds.class[r] as usize;
                    sum -= weights[c] * ln(out[r * k + c]);
                    total += weights[c];
                }
                sum / total
            }
            Objective::Reconstruction => {
                rows.iter().map(|&r| out[r] as f64).sum::<f64>() / rows.len() as f64
            }
        }
    }
}

/// A pass's mini-batches of `size` rows. Batch norm cannot normalise a single row (PyTorch
/// raises; burn would output β and shrink the running variance), so with batch norm a last
/// batch of one row joins the batch before it.
fn batches(order: &[usize], size: usize, batch_norm: bool) -> Vec<&[usize]> {
    let mut batches: Vec<&[usize]> = order.chunks(size).collect();
    if batch_norm && batches.len() > 1 && batches[batches.len() - 1].len() == 1 {
        batches.pop();
        let start = (batches.len() - 1) * size;
        *batches.last_mut().expect("more than one batch") = &order[start..];
    }
    batches
}

/// The parts a batch of `rows` is split into for one step: `shards` (the config's), fewer
/// when a part would hold fewer than [`MIN_SHARD_ROWS`] rows. It depends on the config and the
/// batch only, never on the machine, so the same seed gives the same bytes on any core count.
pub fn shard_count(shards: usize, rows: usize) -> usize {
    shards.min(rows / MIN_SHARD_ROWS).max(1)
}

/// Below this many rows a part's fixed costs outweigh running it beside the others.
pub const MIN_SHARD_ROWS: usize = 1024;

/// The batch's gradients and its rows' losses `[rows, 1]`, left on the device. Split into
/// [`shard_count`] contiguous parts, each part's loss (its share of the batch's) is
/// differentiated on a thread of its own and the gradients are summed in part order, so the
/// result does not depend on the thread count.
/// Each part works on a fork of the model (the same parameters and ids, an autodiff graph of
/// its own): parts sharing one graph's leaves across threads deadlocked in burn's autodiff.
fn gradients<M: Net>(
    model: &M,
    device: &Device,
    objective: &Objective,
    (x, t, masks): (Tensor<2>, Tensor<2>, Option<Vec<Tensor<2>>>),
    shards: usize,
) -> (GradientsParams, Tensor<2>) {
    let n = x.dims()[0];
    let k = shard_count(shards, n);
    if k == 1 {
        // The whole batch, with no slicing or scaling on the hot path of small batches.
        let (loss, rows) = objective.loss(model.forward_masked(x, masks), t);
        let grads = GradientsParams::from_grads(loss.backward(), model);
        return (grads, rows);
    }
    let bounds = |s: usize| (s * n / k, (s + 1) * n / k);
    let part = |(model, s): (M, usize)| {
        let (a, b) = bounds(s);
        let masks = masks
            .as_ref()
            .map(|m| m.iter().map(|m| m.clone().slice(a..b)).collect());
        let out = model.forward_masked(x.clone().slice(a..b), masks);
        let share = (b - a) as f64 / n as f64;
        let (loss, rows) = objective.part_loss(out, t.clone().slice(a..b), share);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        (grads, rows)
    };
    let parts: Vec<(GradientsParams, Tensor<2>)> = std::thread::scope(|scope| {
        let part = &part;
        let running: Vec<_> = (0..k)
            .map(|s| {
                let model = model.clone().fork(device);
                scope.spawn(move || part((model, s)))
            })
            .collect();
        running
            .into_iter()
            .map(|t| t.join().expect("a gradient thread panicked"))
            .collect()
    });
    let mut sum = GradientsAccumulator::<M>::new();
    let mut rows = Vec::with_capacity(k);
    for (grads, part_rows) in parts {
        sum.accumulate(model, grads);
        rows.push(part_rows);
    }
    (sum.grads(), Tensor::cat(rows, 0))
}

/// Every step's loss waits on the device, and they are read this many steps at a time (and at
/// the end of the pass): a read makes the host wait for the device to finish everything queued,
/// and reading every step kept a GPU idle between steps.
pub const LOSS_READ_EVERY: usize = 64;

/// The steps' row losses not read yet, and the pass's running sum of per-row losses.
#[derive(Default)]
struct Losses {
    /// Each step's row losses `[rows, 1]`.
    pending: Vec<Tensor<2>>,
    sum: f64,
}

impl Losses {
    fn push(
        &mut self,
        rows: Tensor<2>,
        objective: &Objective,
        on_batch: &mut dyn FnMut(f64),
    ) -> Result<()> {
        self.pending.push(rows);
        if self.pending.len() == LOSS_READ_EVERY {
            self.read(objective, on_batch)?;
        }
        Ok(())
    }

    /// Reads the pending steps' row losses in one go; each step's loss is
    /// [`Objective::batch_value`] of its rows.
    fn read(&mut self, objective: &Objective, on_batch: &mut dyn FnMut(f64)) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let steps = std::mem::take(&mut self.pending);
        let sizes: Vec<usize> = steps.iter().map(|r| r.dims()[0]).collect();
        let values = crate::device::read_floats(Tensor::cat(steps, 0))?;
        let mut start = 0;
        for rows in sizes {
            let value = objective.batch_value(&values[start..start + rows]);
            start += rows;
            self.sum += value * rows as f64;
            on_batch(value);
        }
        Ok(())
    }
}

/// One pass over `order` in mini-batches: forward, loss, backward, optimizer step. `lr` gives
/// the rate of each batch (by its index in this pass); `seed` seeds the pass's dropout. Returns
/// the model and the sum of per-row losses; `on_batch` sees each batch's mean loss, in order,
/// [`LOSS_READ_EVERY`] batches at a time. (The benchmarks time exactly this.)
#[allow(clippy::too_many_arguments)]
pub fn run_epoch<M: Net>(
    mut model: M,
    optim: &mut ModuleOptimizer,
    feed: &Feed,
    order: &[usize],
    batch_size: usize,
    objective: &Objective,
    lr: &dyn Fn(usize) -> f64,
    seed: u64,
    device: &Device,
    shards: usize,
    on_batch: &mut dyn FnMut(f64),
) -> Result<(M, f64)> {
    let batches = batches(order, batch_size, model.has_batch_norm());
    let (prob, widths) = model.dropout_layout();
    let host_masks = prob > 0.0 && crate::device::is_cpu(device);
    if !host_masks {
        device.seed(seed);
    }
    // Parts run on the CPU's cores; a GPU runs a batch in parallel already. Batch norm keeps
    // one batch: its statistics would be each part's, and its running state shared.
    let shards = if crate::device::is_cpu(device) && !model.has_batch_norm() {
        shards
    } else {
        1
    };
    let mut x_buf = Vec::new();
    let mut pass = feed.pass(order, device);
    let mut losses = Losses::default();
    let model = std::thread::scope(|scope| -> Result<M> {
        // The next batches' masks are drawn while this one computes.
        let masks = host_masks.then(|| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Vec<f32>>>(2);
            let (widths, batches) = (&widths, &batches);
            scope.spawn(move || {
                let mut draws = HostMasks::new(seed, prob);
                for rows in batches {
                    let masks = widths.iter().map(|w| draws.draw(rows.len() * w));
                    if tx.send(masks.collect()).is_err() {
                        return;
                    }
                }
            });
            rx
        });
        for (i, &rows) in batches.iter().enumerate() {
            let masks = masks.as_ref().map(|rx| {
                let drawn = rx.recv().expect("the mask thread draws one set per batch");
                drawn
                    .into_iter()
                    .zip(&widths)
                    .map(|(m, &w)| Tensor::from_data(TensorData::new(m, [rows.len(), w]), device))
                    .collect()
            });
            let (x, t) = pass.next(objective, rows, &mut x_buf, device);
            let (grads, row_losses) = gradients(&model, device, objective, (x, t, masks), shards);
            model = optim.step(lr(i), model, grads);
            losses.push(row_losses, objective, on_batch)?;
        }
        losses.read(objective, on_batch)?;
        Ok(model)
    })?;
    Ok((model, losses.sum))
}

/// The objective of a run: the reconstruction error for an autoencoder, else `pos_weight` or
/// `class_weights` resolved on the training rows.
fn objective(config: &Config, data: &Prepared) -> Result<Objective> {
    if config.model.kind == ModelKind::Autoencoder {
        return Ok(Objective::Reconstruction);
    }
    let cfg = &config.training;
    let train = &data.train;
    let k = data.pre.classes.len();
    if k == 0 {
        let pos_weight = match cfg.pos_weight {
            None => 1.0,
            Some(PosWeight::Value(w)) => w,
            Some(PosWeight::Auto(_)) => {
                let p = train.positives() as f64;
                (train.len() as f64 - p) / p
            }
        };
        return Ok(Objective::Binary { pos_weight });
    }
    let weights = match &cfg.class_weights {
        None => vec![1.0; k],
        Some(ClassWeights::Values(w)) if w.len() == k => w.clone(),
        Some(ClassWeights::Values(w)) => bail_input!(
            "training.class_weights: {} weights for {k} classes ({})",
            w.len(),
            data.pre.classes.join(", ")
        ),
        // scikit-learn's "balanced"; a class without training rows never meets the loss.
        Some(ClassWeights::Auto(_)) => {
            let mut counts = vec![0usize; k];
            train.class.iter().for_each(|&c| counts[c as usize] += 1);
            counts
                .iter()
                .map(|&n| {
                    if n == 0 {
                        0.0
                    } else {
                        train.len() as f64 / (k * n) as f64
                    }
                })
                .collect()
        }
    };
    Ok(Objective::Multiclass { weights })
}

/// Whether early stopping has fired.
fn early_stop(cfg: &TrainingConfig, state: &TrainState) -> bool {
    cfg.early_stopping.enabled && state.epochs_without_improvement >= cfg.early_stopping.patience
}

/// The rows a run learns from, in the training and validation splits: all of them for a
/// classifier; for an autoencoder, those `training.fit_on` names.
fn learning_rows(config: &Config, data: &Prepared) -> Result<(Vec<usize>, Vec<usize>)> {
    let fit_on = match config.model.kind {
        ModelKind::Autoencoder => config.training.fit_on,
        _ => FitOn::All,
    };
    let val = fit::rows_named(fit_on, &data.val);
    Ok((fit::fit_rows(fit_on, &data.train)?, val))
}

/// The validation pass: the loss over the validation rows the run learns from, and every
/// validation row's anomaly score (NaN and none without validation rows).
fn validate(
    objective: &Objective,
    network: &Network,
    data: &Prepared,
    rows: &[usize],
) -> Result<(f64, Vec<f32>)> {
    if data.val.is_empty() {
        return Ok((f64::NAN, Vec::new()));
    }
    let scored = anomaly(&data.pre, score_dataset(network, &data.val)?);
    let out = match objective {
        Objective::Multiclass { .. } => &scored.class_probs,
        _ => &scored.anomaly,
    };
    let loss = objective.loss_from_outputs(out, &data.val, rows);
    Ok((loss, scored.anomaly))
}

/// The best weights' decision: the threshold the config's rule picks, and the training scores'
/// quantiles that every checkpoint keeps.
fn decide(
    cfg: &TrainingConfig,
    network: &Network,
    data: &Prepared,
    val_scores: &[f32],
) -> Result<(f32, Vec<f32>)> {
    let train_scores = anomaly(&data.pre, score_dataset(network, &data.train)?).anomaly;
    let train_quantiles = decision::score_quantiles(&train_scores);
    let inputs = RuleInputs {
        val_scores,
        val_y: &data.val.y,
        train_quantiles: &train_quantiles,
    };
    Ok((
        decision::threshold(cfg.threshold, &inputs)?,
        train_quantiles,
    ))
}

/// What a run fits: under which config and name, on which data, where.
pub struct Run<'a> {
    pub config: &'a Config,
    pub run_name: &'a str,
    pub data: &'a Prepared,
    pub device: &'a Device,
    /// Fine-tuning: the network whose weights training starts from (else a fresh one).
    pub warm_start: Option<&'a NetworkState>,
}

/// Fits (or resumes) the detector `model.kind` names on the run's data, writing its
/// checkpoints.
pub fn train(
    run: &Run,
    resume: Option<Checkpoint>,
    observer: &mut dyn Observer,
) -> Result<Outcome> {
    let kind = run.config.model.kind;
    match kind.trainer() {
        Trainer::Gradient if kind.is_sequence() => train_network::<CnnLstm>(run, resume, observer),
        Trainer::Gradient => train_network::<Mlp>(run, resume, observer),
        Trainer::OnePass | Trainer::Members => fit::one_pass(run, resume, observer),
    }
}

/// The optimizer's state as burnpack bytes, its tensors in name order. burn writes them in the
/// order of a hash map, which differs from one process to the next; read back, sorted and
/// written again, the same state is the same bytes every time (so `last.mpk` is as
/// reproducible as `best.mpk`; `training::sharded_batches_give_the_same_bytes_on_any_thread_count`
/// compares it across processes).
fn optimizer_bytes(optim: &ModuleOptimizer) -> Result<Vec<u8>> {
    use burn_pack::{Reader, Writer};
    let failed = |e: &dyn std::fmt::Display| anyhow::anyhow!("serialising optimizer state: {e}");
    let bytes = optim.into_bytes().map_err(|e| failed(&e))?;
    let reader = Reader::from_bytes(bytes).map_err(|e| failed(&e))?;
    let (scalars, metadata) = (reader.scalars().clone(), reader.metadata().clone());
    let mut tensors = reader.into_tensors().map_err(|e| failed(&e))?;
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let mut writer = Writer::new(tensors);
    for (key, value) in &scalars {
        writer = writer.with_scalar(key, *value);
    }
    for (key, value) in &metadata {
        writer = writer.with_metadata(key, value);
    }
    Ok(writer.into_bytes().map_err(|e| failed(&e))?.to_vec())
}

/// Where a gradient run starts: its model, optimizer, early-stopping state, history and first
/// epoch; fresh (new weights, or `--resume-from`'s), or an interrupted run's `last.mpk`.
struct Start<M> {
    model: M,
    optim: ModuleOptimizer,
    state: TrainState,
    history: Vec<EpochRecord>,
    first_epoch: usize,
}

fn start<M: Net>(
    run: &Run,
    spec: &ModelSpec,
    resume: Option<Checkpoint>,
    ad: &Device,
) -> Result<Start<M>> {
    let (cfg, data) = (&run.config.training, run.data);
    let model = match run.warm_start {
        Some(start) if start.spec != *spec => bail_input!(
            "--resume-from: the checkpoint's network does not match model.* of this run"
        ),
        Some(start) => load_model(spec, &start.weights, ad)?,
        None => M::build(spec, ad),
    };
    let optim = optimizer(cfg);
    let Some(ck) = resume else {
        let state = TrainState {
            optimizer: Vec::new(),
            best_weights: model_bytes(&model)?,
            best_epoch: 0,
            best_val_loss: f64::INFINITY,
            best_threshold: 0.5,
            best_train_quantiles: Vec::new(),
            epochs_without_improvement: 0,
            finished: false,
        };
        let history = Vec::new();
        return Ok(Start {
            model,
            optim,
            state,
            history,
            first_epoch: 1,
        });
    };
    let network = ck.network()?;
    let shape = DataShape::of(data);
    if ck.preprocessor != data.pre || ck.data != shape || network.spec != *spec {
        bail_input!(
            "--resume: the checkpoint was trained on other data or another model \
             ({} training rows, {} features; now {}, {})",
            ck.data.train_rows,
            ck.preprocessor.n_features(),
            shape.train_rows,
            data.pre.n_features()
        );
    }
    let model = load_model(spec, &network.weights, ad)?;
    let Some(mut state) = ck.train_state else {
        bail_input!("--resume: this checkpoint holds no training state; resume from last.mpk");
    };
    let optim = optim
        .from_bytes(Bytes::from_bytes_vec(state.optimizer.clone()))
        .map_err(|e| bad_input(format!("--resume: the optimizer state is unreadable: {e}")))?;
    // `training.epochs` may have been raised to extend the run.
    state.finished = early_stop(cfg, &state) || ck.epoch >= cfg.epochs;
    let first_epoch = ck.epoch + 1;
    Ok(Start {
        model,
        optim,
        state,
        history: ck.history,
        first_epoch,
    })
}

/// Writes a gradient run's checkpoints: `best.mpk`, `last.mpk` (resumable) and every
/// `save_frequency` epochs `checkpoint_epoch_N.mpk`.
struct Writer<'a> {
    run: &'a Run<'a>,
    spec: &'a ModelSpec,
    best_path: PathBuf,
    last_path: PathBuf,
}

impl Writer<'_> {
    /// A checkpoint of `weights` (from `weights_epoch`) after `epoch`, with the state's
    /// threshold and, when `resumable`, the state itself.
    fn envelope(
        &self,
        weights: Vec<u8>,
        (weights_epoch, epoch): (usize, usize),
        st: &TrainState,
        history: &[EpochRecord],
        resumable: bool,
    ) -> Result<Checkpoint> {
        let network = NetworkState {
            spec: self.spec.clone(),
            weights,
        };
        Ok(Checkpoint {
            threshold: st.best_threshold,
            train_score_quantiles: st.best_train_quantiles.clone(),
            epoch,
            weights_epoch,
            history: history.to_vec(),
            train_state: resumable.then(|| st.clone()),
            ..Checkpoint::new(
                self.run.config,
                self.run.run_name,
                DetectorState::from_network(network)?,
                self.run.data,
            )
        })
    }

    /// The final `best.mpk`, which carries the whole history (for reports of the training
    /// curves).
    fn finish(&self, state: &TrainState, history: &[EpochRecord]) -> Result<Outcome> {
        let last_epoch = history.last().map_or(0, |r| r.epoch);
        let weights = state.best_weights.clone();
        let best = self.envelope(
            weights,
            (state.best_epoch, last_epoch),
            state,
            history,
            false,
        )?;
        best.save(&self.best_path)
            .context("writing the final best checkpoint")?;
        Ok(Outcome {
            best,
            epochs_run: last_epoch,
            stopped_early: last_epoch < self.run.config.training.epochs,
        })
    }

    /// After an epoch: `last.mpk` (and the periodic copy), and `best.mpk` when it improved.
    fn epoch_done<M: Net>(
        &self,
        model: &M,
        (epoch, improved): (usize, bool),
        state: &TrainState,
        history: &[EpochRecord],
    ) -> Result<()> {
        let resumable = self.envelope(model_bytes(model)?, (epoch, epoch), state, history, true)?;
        let every = self.run.config.checkpoint.save_frequency;
        if every > 0 && epoch.is_multiple_of(every) {
            let dir = &self.run.config.checkpoint.save_dir;
            resumable.save(&dir.join(format!("checkpoint_epoch_{epoch}.mpk")))?;
        }
        resumable.save(&self.last_path)?;
        if improved {
            let weights = state.best_weights.clone();
            self.envelope(weights, (epoch, epoch), state, history, false)?
                .save(&self.best_path)?;
        }
        Ok(())
    }
}

/// The gradient trainer of the neural families: trains (or resumes), writing `best.mpk`,
/// `last.mpk` and the periodic checkpoints as it goes.
fn train_network<M: Net>(
    run: &Run,
    resume: Option<Checkpoint>,
    observer: &mut dyn Observer,
) -> Result<Outcome> {
    let Run {
        config,
        data,
        device,
        ..
    } = *run;
    let cfg = &config.training;
    let ad = device.clone().autodiff();
    let spec = ModelSpec::of_run(
        &config.model,
        config.sequence.length,
        data.pre.n_features(),
        data.pre.n_outputs(),
    );
    // The family's variant, checked once (the dispatcher only sends neural kinds here).
    DetectorState::from_network(NetworkState {
        spec: spec.clone(),
        weights: Vec::new(),
    })?;
    let objective = objective(config, data)?;
    let (train_rows, val_rows) = learning_rows(config, data)?;
    ad.seed(cfg.seed);
    let Start {
        mut model,
        mut optim,
        mut state,
        mut history,
        first_epoch,
    } = start::<M>(run, &spec, resume, &ad)?;
    let (best_path, last_path) = checkpoint_paths(&config.checkpoint.save_dir);
    let writer = Writer {
        run,
        spec: &spec,
        best_path,
        last_path,
    };

    let mut order = train_rows;
    let n = order.len();
    let feed = Feed::new(&data.train, &objective, &ad);
    let batches = batches(&order, cfg.batch_size, model.has_batch_norm()).len() as u64;
    let mut step = (first_epoch as u64 - 1) * batches;
    let mut epoch = first_epoch;
    while !state.finished && epoch <= cfg.epochs {
        let seed = epoch_seed(cfg.seed, epoch);
        order.sort_unstable();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let first_step = step;
        let lr = |i: usize| learning_rate(cfg, epoch, first_step + i as u64, &history);
        let epoch_lr = lr(0);
        observer.epoch_started(epoch, batches as usize);
        let (trained, loss_sum) = run_epoch(
            model,
            &mut optim,
            &feed,
            &order,
            cfg.batch_size,
            &objective,
            &lr,
            seed,
            &ad,
            cfg.shards,
            &mut |loss| {
                step += 1;
                observer.batch_done(step, loss);
            },
        )?;
        model = trained;
        let network = Network::of(&spec, &model, device)?;
        let judged = (&objective, &val_rows[..], epoch);
        let (val_loss, improved, val_scores) =
            judge(run, &network, judged, &mut state, || model_bytes(&model))?;
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / n as f64,
            val_loss,
            learning_rate: epoch_lr,
        };
        history.push(record.clone());
        let pruned =
            !val_scores.is_empty() && !observer.keep_going(epoch, &val_scores, &data.val.y);
        state.finished = early_stop(cfg, &state) || epoch == cfg.epochs || pruned;
        state.optimizer = optimizer_bytes(&optim)?;
        writer.epoch_done(&model, (epoch, improved), &state, &history)?;
        observer.epoch_done(&record, improved, state.best_val_loss);
        epoch += 1;
    }
    writer.finish(&state, &history)
}

/// After an epoch's training: the validation loss, whether it improved on the best so far (in
/// which case `state` keeps the weights (`weights()`), threshold and score quantiles), and
/// the validation rows' scores.
fn judge(
    run: &Run,
    network: &Network,
    (objective, val_rows, epoch): (&Objective, &[usize], usize),
    state: &mut TrainState,
    weights: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<(f64, bool, Vec<f32>)> {
    let cfg = &run.config.training;
    let (val_loss, val_scores) = validate(objective, network, run.data, val_rows)?;
    // Without validation rows to learn from (the final model of `cv`), the latest epoch is
    // the best one.
    let improved =
        val_rows.is_empty() || val_loss < state.best_val_loss - cfg.early_stopping.min_delta;
    if improved {
        state.best_val_loss = val_loss;
        state.best_epoch = epoch;
        state.best_weights = weights()?;
        (state.best_threshold, state.best_train_quantiles) =
            decide(cfg, network, run.data, &val_scores)?;
        state.epochs_without_improvement = 0;
    } else {
        state.epochs_without_improvement += 1;
    }
    Ok((val_loss, improved, val_scores))
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
        let lrs: Vec<f64> = (1..=5).map(|e| learning_rate(&cfg, e, 0, &[])).collect();
        assert_eq!(lrs, [1.0, 1.0, 0.5, 0.5, 0.25]);
    }

    #[test]
    fn cosine_cyclic_and_plateau_schedules_match_pytorch() {
        let base = TrainingConfig {
            learning_rate: 1.0,
            epochs: 4,
            min_learning_rate: 0.0,
            max_learning_rate: 2.0,
            cycle_steps: 2,
            gamma: 0.5,
            plateau_patience: 1,
            ..Default::default()
        };
        let cosine = TrainingConfig {
            scheduler: SchedulerKind::Cosine,
            ..base.clone()
        };
        let lrs: Vec<f64> = (1..=4).map(|e| learning_rate(&cosine, e, 0, &[])).collect();
        let want = [1.0, 0.853_553, 0.5, 0.146_447];
        assert!(
            lrs.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{lrs:?}"
        );
        // CyclicLR(base_lr=0, max_lr=2, step_size_up=2): 0, 1, 2, 1, 0, 1, …
        let cyclic = TrainingConfig {
            scheduler: SchedulerKind::Cyclic,
            ..base.clone()
        };
        let lrs: Vec<f64> = (0..6).map(|s| learning_rate(&cyclic, 1, s, &[])).collect();
        assert_eq!(lrs, [0.0, 1.0, 2.0, 1.0, 0.0, 1.0]);
        // ReduceLROnPlateau(patience=1, factor=0.5): the second epoch without improvement cuts.
        let plateau = TrainingConfig {
            scheduler: SchedulerKind::Plateau,
            ..base
        };
        let history: Vec<EpochRecord> = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95]
            .iter()
            .enumerate()
            .map(|(i, &v)| EpochRecord {
                epoch: i + 1,
                train_loss: v,
                val_loss: v,
                learning_rate: 0.0,
            })
            .collect();
        let lrs: Vec<f64> = (1..=7)
            .map(|e| learning_rate(&plateau, e, 0, &history))
            .collect();
        assert_eq!(lrs, [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25]);
    }

    #[test]
    fn parts_per_batch_depend_on_the_config_and_batch_only() {
        let parts: Vec<usize> = [64, 2047, 2048, 3071, 4096, 65536]
            .iter()
            .map(|&rows| shard_count(4, rows))
            .collect();
        assert_eq!(parts, [1, 1, 2, 2, 4, 4]);
        assert_eq!(shard_count(1, 65536), 1);
        assert_eq!(shard_count(64, 65536), 64);
    }

    #[test]
    fn batch_norm_never_gets_a_one_row_batch() {
        let order: Vec<usize> = (0..9).collect();
        let lens = |size, bn| -> Vec<usize> {
            batches(&order, size, bn).iter().map(|b| b.len()).collect()
        };
        assert_eq!(lens(4, false), [4, 4, 1]);
        assert_eq!(lens(4, true), [4, 5]);
        assert_eq!(lens(3, true), [3, 3, 3]);
        assert_eq!(batches(&order[..1], 4, true), [&[0usize][..]]);
        assert_eq!(batches(&order, 4, true).concat(), order);
    }

    /// The host masks are a speed-up only: a pass with them trains exactly as burn's Dropout
    /// did (same losses, bit for bit), for the MLP and for resmlp's batch norm and skips.
    #[test]
    fn host_dropout_masks_train_exactly_as_burns_dropout() {
        let _rng = crate::device::TEST_RNG.lock();
        let ad = crate::device::cpu().autodiff();
        let rows = 50;
        let data = Dataset {
            x: (0..rows * 5)
                .map(|i| ((i * 37) % 11) as f32 / 5.0 - 1.0)
                .collect(),
            y: (0..rows).map(|i| (i % 3 == 0) as u8 as f32).collect(),
            n_features: 5,
            ..Default::default()
        };
        let order: Vec<usize> = (0..rows).rev().collect();
        let objective = Objective::Binary { pos_weight: 1.0 };
        let training = TrainingConfig::default();
        for kind in [
            crate::model::ModelKind::Mlp,
            crate::model::ModelKind::Resmlp,
        ] {
            let cfg = crate::model::ModelConfig {
                kind,
                hidden_dims: vec![8, 6],
                ..Default::default()
            };
            let spec = ModelSpec::new(5, 1, &cfg);
            let mut ours = Vec::new();
            ad.seed(1);
            let model = spec.init(&ad);
            let mut optim = optimizer(&training);
            run_epoch(
                model,
                &mut optim,
                &Feed::Host(&data),
                &order,
                16,
                &objective,
                &|_| 1e-2,
                7,
                &ad,
                1,
                &mut |loss| ours.push(loss),
            )
            .unwrap();

            let mut burns = Vec::new();
            ad.seed(1);
            let mut model = spec.init(&ad);
            let mut optim = optimizer(&training);
            ad.seed(7);
            let mut x_buf = Vec::new();
            for batch in order.chunks(16) {
                let (x, t) = feed::host_batch(&data, batch, &objective, &mut x_buf, &ad);
                let (loss, rows) = objective.loss(model.forward(x), t);
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                burns.push(objective.batch_value(&crate::device::read_floats(rows).unwrap()));
                model = optim.step(1e-2, model, grads);
            }
            assert_eq!(ours, burns, "{kind:?}");
            assert_eq!(ours.len(), 4);
        }
    }

    /// Rows for the pass tests: 3 classes, the binary label "class 0 or not".
    fn three_class_rows(rows: usize, d: usize) -> Dataset {
        let class: Vec<u32> = (0..rows).map(|i| ((i * 7) % 3) as u32).collect();
        Dataset {
            x: (0..rows * d)
                .map(|i| ((i * 37) % 11) as f32 / 5.0 - 1.0 + (class[i / d] as f32) / 2.0)
                .collect(),
            y: class.iter().map(|&c| (c != 0) as u8 as f32).collect(),
            class,
            n_features: d,
            ..Default::default()
        }
    }

    /// One pass of `objective` from the weights `start` on `device`: the batch losses, and the
    /// host reads the pass made.
    fn one_pass(
        device: &Device,
        objective: &Objective,
        (spec, start): (&ModelSpec, &[u8]),
        data: &Dataset,
        rows: usize,
    ) -> (Vec<f64>, u64) {
        let ad = device.clone().autodiff();
        let model: Mlp = load_model(spec, start, &ad).unwrap();
        let mut optim = optimizer(&TrainingConfig::default());
        let order: Vec<usize> = (0..rows).rev().collect();
        let feed = Feed::new(data, objective, &ad);
        let before = crate::device::host_reads();
        let mut losses = Vec::new();
        run_epoch(
            model,
            &mut optim,
            &feed,
            &order,
            8,
            objective,
            &|_| 1e-2,
            1,
            &ad,
            1,
            &mut |loss| losses.push(loss),
        )
        .unwrap();
        (losses, crate::device::host_reads() - before)
    }

    /// A pass leaves each step's loss on the device and reads them [`LOSS_READ_EVERY`] at a
    /// time: 20 steps wait for the device once, 130 steps three times (it was once per step).
    /// On a GPU adapter (lavapipe in CI) the rows live on the device and each batch is selected
    /// there; the losses still follow the CPU's, for all three objectives.
    #[test]
    fn a_pass_waits_for_the_device_once_per_64_steps_and_a_gpu_pass_learns_as_the_cpu_does() {
        let _rng = crate::device::TEST_RNG.lock();
        let d = 5;
        let data = three_class_rows(130 * 8, d);
        let mut devices = vec![crate::device::cpu()];
        #[cfg(feature = "wgpu")]
        match crate::device::gpu::pick(true, true) {
            Ok(gpu) => devices.push(gpu.device),
            Err(e) => println!("GPU half skipped: {}", crate::error::one_line(&e)),
        }
        let objectives = [
            (Objective::Binary { pos_weight: 2.0 }, 1),
            (
                Objective::Multiclass {
                    weights: vec![1.0, 2.0, 0.5],
                },
                3,
            ),
            (Objective::Reconstruction, d),
        ];
        for (objective, outputs) in objectives {
            let cfg = crate::model::ModelConfig {
                kind: match objective {
                    Objective::Reconstruction => ModelKind::Autoencoder,
                    _ => ModelKind::Mlp,
                },
                hidden_dims: vec![8, 6],
                dropout: 0.0,
                ..Default::default()
            };
            let spec = ModelSpec::new(d, outputs, &cfg);
            let cpu = crate::device::cpu();
            cpu.seed(1);
            let start = model_bytes(&spec.init(&cpu)).unwrap();
            let mut per_device = Vec::new();
            for device in &devices {
                for (rows, reads) in [(20 * 8, 1), (130 * 8, 3)] {
                    let (losses, made) = one_pass(device, &objective, (&spec, &start), &data, rows);
                    assert_eq!((losses.len(), made), (rows / 8, reads), "{objective:?}");
                    if rows > 160 {
                        per_device.push(losses);
                    }
                }
            }
            // The same batches and targets give the same losses to float rounding; Adam then
            // amplifies rounding (an autoencoder's drifts by 1e-3 within 130 steps).
            for other in &per_device[1..] {
                let worst = other[..64]
                    .iter()
                    .zip(&per_device[0])
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(worst < 1e-5, "{objective:?}: GPU losses off by {worst}");
            }
        }
    }

    fn tensor(values: Vec<f32>, shape: [usize; 2]) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values, shape), &crate::device::cpu())
    }

    /// The batch's loss as reported (its rows' losses summed on the host), checked to equal
    /// the loss that is differentiated.
    fn both_values(objective: &Objective, logits: Tensor<2>, targets: Tensor<2>) -> f64 {
        let (loss, rows) = objective.loss(logits, targets);
        let reported = objective.batch_value(&crate::device::read_floats(rows).unwrap());
        let differentiated = loss.into_scalar::<f32>() as f64;
        assert!(
            (reported - differentiated).abs() < 1e-6,
            "{reported} vs {differentiated}"
        );
        reported
    }

    #[test]
    fn weighted_bce_matches_the_closed_form() {
        let logits = tensor(vec![2.0, -1.0], [2, 1]);
        let y = tensor(vec![1.0, 0.0], [2, 1]);
        let got = both_values(&Objective::Binary { pos_weight: 3.0 }, logits, y);
        let s = |x: f64| 1.0 / (1.0 + (-x).exp());
        let want = (-3.0 * s(2.0).ln() - (1.0 - s(-1.0)).ln()) / 2.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn weighted_cross_entropy_matches_pytorch() {
        // F.cross_entropy(logits, [2, 0], weight=[1, 2, 3]) = (3·nll₀ + 1·nll₁) / (3 + 1).
        let objective = Objective::Multiclass {
            weights: vec![1.0, 2.0, 3.0],
        };
        let ds = Dataset {
            class: vec![2, 0],
            y: vec![1.0, 0.0],
            ..Default::default()
        };
        let (t, shape) = objective.targets(&ds, &[0, 1]);
        let logits = [1.0f32, 0.5, 2.0, 0.0, 1.0, -1.0];
        let got = both_values(
            &objective,
            tensor(logits.to_vec(), [2, 3]),
            tensor(t, shape),
        );
        let nll = |row: &[f32], c: usize| {
            let z: f64 = row.iter().map(|&v| (v as f64).exp()).sum();
            z.ln() - row[c] as f64
        };
        let want = (3.0 * nll(&logits[..3], 2) + nll(&logits[3..], 0)) / 4.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}
