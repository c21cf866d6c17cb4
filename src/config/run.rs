//! The sections around a run: sequence windows, checkpoints, logging, the device,
//! cross-validation, the Hugging Face Hub, augmentation and feedback retraining.

use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::bail_input;

/// Windows of consecutive flows, what a sequence family classifies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SequenceConfig {
    /// Flows per window (L).
    pub length: usize,
    /// Flows between the ends of consecutive training windows.
    pub stride: usize,
    /// The column that orders flows: numbers, or date-times (`2017-07-03 08:55:58`, ISO 8601,
    /// or CICFlowMeter's day-first `3/7/2017 8:55:58`); null: file order.
    pub order_by: Option<String>,
    /// The column whose value keeps windows apart (e.g. `Src IP`); null: one sequence.
    pub group_by: Option<String>,
    /// A window's label from its flows' labels.
    pub label: WindowLabel,
}

impl Default for SequenceConfig {
    fn default() -> Self {
        Self {
            length: 32,
            stride: 1,
            order_by: None,
            group_by: None,
            label: WindowLabel::Last,
        }
    }
}

/// How a window's flows' labels make the window's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowLabel {
    /// The last flow's label (what the window's score is written against).
    Last,
    /// Anomalous when any flow is (multiclass: the last anomalous flow's class).
    Any,
    /// The most common label among the flows (ties: the later flow's).
    Majority,
}

/// Retraining from analyst feedback (`train --resume-from F --feedback FILE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedbackConfig {
    /// The feedback file (`--feedback` overrides it).
    pub path: Option<PathBuf>,
    /// How many training rows each judged row counts as (it is repeated that many times).
    pub weight: u32,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            path: None,
            weight: 10,
        }
    }
}

impl FeedbackConfig {
    pub fn check(&self) -> Result<()> {
        if !(1..=1000).contains(&self.weight) {
            bail_input!(
                "feedback.weight: expected a whole number from 1 to 1000 (each judged row counts as that many training rows), got {}",
                self.weight
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointConfig {
    pub save_dir: PathBuf,
    /// Also keep `checkpoint_epoch_N.mpk` every N epochs (0: never).
    pub save_frequency: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            save_dir: PathBuf::from("checkpoints"),
            save_frequency: 10,
        }
    }
}

impl CheckpointConfig {
    pub fn check(&self) -> Result<()> {
        if self.save_dir.as_os_str().is_empty() {
            bail_input!("checkpoint.save_dir: expected a folder");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// TensorBoard runs go to `<tensorboard_dir>/<run_name>`; default name: `run-<UTC time>`.
    pub run_name: Option<String>,
    pub tensorboard_dir: PathBuf,
    pub log_dir: PathBuf,
    /// Write Train/BatchLoss every N batches (0: never).
    pub batch_log_every: usize,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            run_name: None,
            tensorboard_dir: PathBuf::from("runs"),
            log_dir: PathBuf::from("logs"),
            batch_log_every: 1,
        }
    }
}

impl LoggingConfig {
    pub fn check(&self) -> Result<()> {
        if let Some(name) = &self.run_name
            && (name.is_empty() || name.contains(['/', '\\']))
        {
            bail_input!("logging.run_name: expected a plain name without slashes, got {name:?}");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrossValidationConfig {
    pub n_splits: usize,
    pub shuffle: bool,
    pub random_state: u64,
    pub stratify: bool,
    pub final_model: bool,
}

impl Default for CrossValidationConfig {
    fn default() -> Self {
        Self {
            n_splits: 5,
            shuffle: true,
            random_state: 42,
            stratify: true,
            final_model: false,
        }
    }
}

impl CrossValidationConfig {
    pub fn check(&self) -> Result<()> {
        if self.n_splits < 2 {
            bail_input!(
                "cross_validation.n_splits: expected at least 2, got {}",
                self.n_splits
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HuggingFaceConfig {
    pub repo_id: Option<String>,
    pub private: bool,
    pub push_to_hub: bool,
}

impl HuggingFaceConfig {
    pub fn check(&self) -> Result<()> {
        if self.push_to_hub && self.repo_id.is_none() {
            bail_input!("huggingface.repo_id: needed when huggingface.push_to_hub is true");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResampleStrategy {
    Oversample,
    Undersample,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentationConfig {
    pub enabled: bool,
    pub noise_scale: f64,
    pub target_positive_ratio: f64,
    pub strategy: ResampleStrategy,
    pub clip: bool,
    pub output_dir: PathBuf,
}

impl Default for AugmentationConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            noise_scale: 0.1,
            target_positive_ratio: 0.3,
            strategy: ResampleStrategy::Oversample,
            clip: true,
            output_dir: PathBuf::from("data/augmented"),
        }
    }
}

impl AugmentationConfig {
    pub fn check(&self) -> Result<()> {
        if !(self.noise_scale >= 0.0 && self.noise_scale.is_finite()) {
            bail_input!(
                "augmentation.noise_scale: expected >= 0, got {}",
                self.noise_scale
            );
        }
        if !(self.target_positive_ratio > 0.0 && self.target_positive_ratio < 1.0) {
            bail_input!(
                "augmentation.target_positive_ratio: expected a value in (0, 1), got {}",
                self.target_positive_ratio
            );
        }
        Ok(())
    }
}
