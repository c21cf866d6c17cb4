//! `training`: the optimizer, schedule, class weighting, early stopping and the decision
//! threshold's rule.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::Task;
use crate::bail_input;
use crate::model::ModelKind;

/// Which training rows an unsupervised detector learns from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitOn {
    /// The normal rows only: the detector learns what normal traffic looks like.
    Normal,
    /// Every row, labels ignored.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    Adam,
    Adamw,
    Sgd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerKind {
    None,
    /// Multiply by `gamma` every `step_size` epochs.
    Step,
    /// Cosine annealing from `learning_rate` to `min_learning_rate` over `epochs`.
    Cosine,
    /// Triangular cycles between `min_learning_rate` and `max_learning_rate`, `cycle_steps`
    /// batches up and as many down (PyTorch's CyclicLR).
    Cyclic,
    /// Multiply by `gamma` after `plateau_patience` epochs without a better validation loss.
    Plateau,
}

/// `auto` weighs each class by n_rows / (n_classes · n_class_rows), as scikit-learn's
/// `class_weight="balanced"`; a list gives one weight per class in class order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClassWeights {
    Auto(AutoWord),
    Values(Vec<f64>),
}

/// `auto` weighs positives by negatives/positives of the training split, like the reference
/// pipeline's class weights; a number is used as is (PyTorch's `pos_weight`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PosWeight {
    Auto(AutoWord),
    Value(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoWord {
    Auto,
}

/// How the decision threshold is chosen: a fixed score, a rule applied to the validation
/// split's scores, or a rate written as a one-key map (`{contamination: r}`,
/// `{normal_quantile: q}`, `{target_fpr: f}`). `src/eval/decision.rs` says what each computes.
/// The rates are struct variants so that they read and write the same one-key map in YAML
/// (resolved configs) and MessagePack (checkpoints).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum ThresholdChoice {
    Fixed(f64),
    Rule(ThresholdRule),
    /// Flag this share of the training rows (the top scores), as PyOD's `contamination`.
    Contamination {
        contamination: f64,
    },
    /// The q-quantile of the normal validation rows' scores.
    NormalQuantile {
        normal_quantile: f64,
    },
    /// The lowest threshold whose false positive rate on the validation split is at most f.
    TargetFpr {
        target_fpr: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdRule {
    MaxF1,
    Youden,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EarlyStoppingConfig {
    pub enabled: bool,
    pub patience: usize,
    pub min_delta: f64,
}

impl Default for EarlyStoppingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            patience: 10,
            min_delta: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub optimizer: OptimizerKind,
    pub weight_decay: f64,
    /// SGD momentum (ignored by Adam/AdamW).
    pub momentum: f64,
    pub scheduler: SchedulerKind,
    pub step_size: usize,
    pub gamma: f64,
    pub min_learning_rate: f64,
    pub max_learning_rate: f64,
    pub cycle_steps: usize,
    pub plateau_patience: usize,
    /// Clip each parameter's gradient to this L2 norm (none when null).
    pub grad_clip: Option<f64>,
    pub early_stopping: EarlyStoppingConfig,
    pub pos_weight: Option<PosWeight>,
    pub class_weights: Option<ClassWeights>,
    pub threshold: ThresholdChoice,
    /// Unsupervised families: learn from the normal training rows, or from all of them.
    pub fit_on: FitOn,
    /// Seeds weight init, shuffling and dropout (and each tree of a forest).
    pub seed: u64,
    /// CPU: each batch is split into this many parts (of at least 1024 rows) whose gradients
    /// are computed on parallel threads and summed in order. Fixed here, not by the core
    /// count, so the same seed gives the same bytes on any machine.
    pub shards: usize,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 64,
            learning_rate: 1e-3,
            optimizer: OptimizerKind::Adam,
            weight_decay: 1e-4,
            momentum: 0.9,
            scheduler: SchedulerKind::Step,
            step_size: 30,
            gamma: 0.1,
            min_learning_rate: 1e-5,
            max_learning_rate: 1e-2,
            cycle_steps: 2000,
            plateau_patience: 5,
            grad_clip: None,
            early_stopping: EarlyStoppingConfig::default(),
            pos_weight: None,
            class_weights: None,
            threshold: ThresholdChoice::Fixed(0.5),
            fit_on: FitOn::Normal,
            seed: 42,
            shards: 4,
        }
    }
}

impl TrainingConfig {
    /// The loop's settings; `task` decides which class weighting applies, `kind` whether a
    /// fixed threshold must be a probability.
    pub fn check(&self, task: Task, kind: ModelKind) -> Result<()> {
        let t = self;
        if t.epochs == 0 {
            bail_input!("training.epochs: expected at least 1");
        }
        if t.batch_size == 0 {
            bail_input!("training.batch_size: expected at least 1");
        }
        if !(t.learning_rate > 0.0 && t.learning_rate.is_finite()) {
            bail_input!(
                "training.learning_rate: expected a positive number, got {}",
                t.learning_rate
            );
        }
        if t.weight_decay.is_nan() || t.weight_decay < 0.0 {
            bail_input!(
                "training.weight_decay: expected >= 0, got {}",
                t.weight_decay
            );
        }
        if !(0.0..1.0).contains(&t.momentum) {
            bail_input!(
                "training.momentum: expected a value in [0, 1), got {}",
                t.momentum
            );
        }
        t.check_scheduler()?;
        if let Some(c) = t.grad_clip
            && !(c > 0.0 && c.is_finite())
        {
            bail_input!("training.grad_clip: expected a positive number, got {c}");
        }
        t.check_weights(task)?;
        if t.early_stopping.min_delta.is_nan() || t.early_stopping.min_delta < 0.0 {
            bail_input!("training.early_stopping.min_delta: expected >= 0");
        }
        t.check_threshold(kind)?;
        if !(1..=64).contains(&t.shards) {
            bail_input!(
                "training.shards: expected 1 to 64 parts per batch, got {}",
                t.shards
            );
        }
        Ok(())
    }

    fn check_scheduler(&self) -> Result<()> {
        let t = self;
        if t.scheduler == SchedulerKind::Step
            && (t.step_size == 0 || t.gamma.is_nan() || t.gamma <= 0.0)
        {
            bail_input!(
                "training.step_size/gamma: the step scheduler needs step_size >= 1 and gamma > 0"
            );
        }
        let rates_ok = t.min_learning_rate >= 0.0 && t.max_learning_rate > t.min_learning_rate;
        match t.scheduler {
            SchedulerKind::Cosine if t.min_learning_rate.is_nan() || t.min_learning_rate < 0.0 => {
                bail_input!("training.min_learning_rate: expected >= 0")
            }
            SchedulerKind::Cyclic if !rates_ok || t.cycle_steps == 0 => bail_input!(
                "training.min_learning_rate/max_learning_rate/cycle_steps: the cyclic scheduler \
                 needs 0 <= min_learning_rate < max_learning_rate and cycle_steps >= 1"
            ),
            SchedulerKind::Plateau if !(t.gamma > 0.0 && t.gamma < 1.0) => bail_input!(
                "training.gamma: the plateau scheduler needs a factor in (0, 1), got {}",
                t.gamma
            ),
            _ => Ok(()),
        }
    }

    fn check_weights(&self, task: Task) -> Result<()> {
        let t = self;
        if let Some(ClassWeights::Values(w)) = &t.class_weights
            && w.iter().any(|v| !(*v > 0.0 && v.is_finite()))
        {
            bail_input!("training.class_weights: expected `auto` or a list of positive numbers");
        }
        if task == Task::Multiclass && t.pos_weight.is_some() {
            bail_input!(
                "training.pos_weight: binary only; multiclass weighs classes with training.class_weights"
            );
        }
        if task == Task::Binary && t.class_weights.is_some() {
            bail_input!(
                "training.class_weights: multiclass only; binary weighs positives with training.pos_weight"
            );
        }
        if let Some(PosWeight::Value(w)) = t.pos_weight
            && !(w > 0.0 && w.is_finite())
        {
            bail_input!("training.pos_weight: expected `auto` or a positive number, got {w}");
        }
        Ok(())
    }

    fn check_threshold(&self, kind: ModelKind) -> Result<()> {
        match self.threshold {
            ThresholdChoice::Fixed(p) if !p.is_finite() => {
                bail_input!("training.threshold: expected a number, got {p}")
            }
            ThresholdChoice::Fixed(p)
                if kind.scores_in_unit_interval() && !(p > 0.0 && p < 1.0) =>
            {
                bail_input!(
                    "training.threshold: expected a probability in (0, 1), `max_f1`, `youden`, \
                 {{contamination: r}}, {{normal_quantile: q}} or {{target_fpr: f}}, got {p}"
                )
            }
            ThresholdChoice::Contamination { contamination: r } if !(r > 0.0 && r <= 0.5) => {
                bail_input!(
                    "training.threshold.contamination: expected a share in (0, 0.5], got {r}"
                )
            }
            ThresholdChoice::NormalQuantile { normal_quantile: q } if !(q > 0.0 && q < 1.0) => {
                bail_input!(
                    "training.threshold.normal_quantile: expected a value in (0, 1), got {q}"
                )
            }
            ThresholdChoice::TargetFpr { target_fpr: f } if !(f > 0.0 && f < 1.0) => {
                bail_input!("training.threshold.target_fpr: expected a rate in (0, 1), got {f}")
            }
            _ => Ok(()),
        }
    }
}
