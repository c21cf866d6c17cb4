//! The checkpoint file: one MessagePack map that holds everything `test`, `predict` and
//! `--resume` need.
//!
//! burn 0.22 dropped its `.mpk` recorders, so the envelope is ours: plain MessagePack (any
//! msgpack reader can list its keys). Format 2 stores the detector as a family tag and the
//! family's payload (for the neural families, burnpack bytes written by burn's own
//! `ModuleRecord`), the training scores' distribution, and optimizer state where there is one.
//! Format 1 files (the MLP-only layout) still load. Files are written to a temporary name and
//! renamed, so a killed run leaves either the previous checkpoint or the new one, never half.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::bail_input;
use crate::config::Config;
use crate::data::Prepared;
use crate::data::preprocess::Preprocessor;
use crate::error::bad_input;
use crate::model::ModelSpec;
use crate::model::{DetectorState, NetworkState};

pub const FORMAT: &str = "anomaly-checkpoint";
pub const FORMAT_VERSION: u32 = 2;
/// The burn release the weights were written with (Cargo.toml pins it; a test checks).
pub const BURN_VERSION: &str = "0.22.1";

/// One epoch of training, as the history in every checkpoint records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub learning_rate: f64,
}

/// What an interrupted run needs to continue exactly where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    #[serde(with = "serde_bytes")]
    pub optimizer: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub best_weights: Vec<u8>,
    pub best_epoch: usize,
    pub best_val_loss: f64,
    pub best_threshold: f32,
    /// The best weights' training-score quantiles (empty in format 1).
    #[serde(default)]
    pub best_train_quantiles: Vec<f32>,
    pub epochs_without_improvement: usize,
    /// Early stopping fired or the epoch budget is spent.
    pub finished: bool,
}

/// Sizes of the data the model was trained on, to refuse resuming on different data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataShape {
    pub train_rows: usize,
    pub val_rows: usize,
    pub train_positives: usize,
}

impl DataShape {
    pub fn of(data: &Prepared) -> DataShape {
        DataShape {
            train_rows: data.train.len(),
            val_rows: data.val.len(),
            train_positives: data.train.positives(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    pub format_version: u32,
    pub tool_version: String,
    pub burn_version: String,
    /// The resolved config the run used (data, split seed, model, training).
    pub config: Config,
    pub run_name: String,
    pub detector: DetectorState,
    pub preprocessor: Preprocessor,
    /// The decision threshold the config's rule chose (rows scoring at least this are flagged).
    pub threshold: f32,
    /// The training rows' anomaly scores ([`crate::eval::decision::score_quantiles`]), so the
    /// decision rule can be changed without refitting.
    pub train_score_quantiles: Vec<f32>,
    /// Epochs completed when this file was written.
    pub epoch: usize,
    /// The epoch these weights come from (the best one, for `best.mpk`).
    pub weights_epoch: usize,
    pub history: Vec<EpochRecord>,
    pub data: DataShape,
    /// Optimizer and early-stopping state, for families trained by gradient descent.
    pub train_state: Option<TrainState>,
    /// A model retrained from analyst feedback: the file, its rows, and the model it started
    /// from.
    #[serde(default)]
    pub feedback: Option<crate::data::feedback::FeedbackRecord>,
}

/// Read first, so a file of another format is refused before its body is decoded.
#[derive(Deserialize)]
struct Header {
    format: String,
    format_version: u32,
    tool_version: String,
}

/// The format-1 layout: an MLP's spec and weights at the top level.
#[derive(Deserialize)]
struct CheckpointV1 {
    tool_version: String,
    burn_version: String,
    config: Config,
    run_name: String,
    model: ModelSpec,
    preprocessor: Preprocessor,
    threshold: f32,
    epoch: usize,
    weights_epoch: usize,
    #[serde(with = "serde_bytes")]
    weights: Vec<u8>,
    history: Vec<EpochRecord>,
    data: DataShape,
    train_state: Option<TrainState>,
}

impl TryFrom<CheckpointV1> for Checkpoint {
    type Error = anyhow::Error;

    fn try_from(v1: CheckpointV1) -> Result<Checkpoint> {
        Ok(Checkpoint {
            format: FORMAT.into(),
            format_version: 1,
            tool_version: v1.tool_version,
            burn_version: v1.burn_version,
            config: v1.config,
            run_name: v1.run_name,
            detector: DetectorState::from_network(NetworkState {
                spec: v1.model,
                weights: v1.weights,
            })?,
            preprocessor: v1.preprocessor,
            threshold: v1.threshold,
            train_score_quantiles: Vec::new(),
            epoch: v1.epoch,
            weights_epoch: v1.weights_epoch,
            history: v1.history,
            data: v1.data,
            train_state: v1.train_state,
            feedback: None,
        })
    }
}

impl Checkpoint {
    /// A checkpoint of `detector` fitted on `data` under `config`, before any decision or
    /// history is filled in (the trainers set those).
    pub fn new(
        config: &Config,
        run_name: &str,
        detector: DetectorState,
        data: &Prepared,
    ) -> Checkpoint {
        Checkpoint {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").into(),
            burn_version: BURN_VERSION.into(),
            config: config.clone(),
            run_name: run_name.to_string(),
            detector,
            preprocessor: data.pre.clone(),
            threshold: 0.5,
            train_score_quantiles: Vec::new(),
            epoch: 0,
            weights_epoch: 0,
            history: Vec::new(),
            data: DataShape::of(data),
            train_state: None,
            feedback: data.feedback.clone(),
        }
    }

    /// Writes atomically: a temporary file in the same folder, synced, then renamed.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = rmp_serde::to_vec_named(self).context("encoding checkpoint")?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("checkpoint"),
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            anyhow::anyhow!("writing checkpoint {}: {e}", path.display())
        })
    }

    pub fn load(path: &Path) -> Result<Checkpoint> {
        let read = || -> Result<Checkpoint> {
            let bytes =
                std::fs::read(path).map_err(|e| bad_input(format!("cannot read it: {e}")))?;
            let header: Header = rmp_serde::from_slice(&bytes).map_err(|_| {
                // The format name is the first value written, so it tells a damaged
                // checkpoint from some other file.
                let ours = bytes
                    .windows(FORMAT.len())
                    .take(64)
                    .any(|w| w == FORMAT.as_bytes());
                bad_input(if ours {
                    "the checkpoint is truncated or corrupted"
                } else {
                    "not an anomaly checkpoint (expected a MessagePack file written by anomaly)"
                })
            })?;
            if header.format != FORMAT {
                bail_input!("not an anomaly checkpoint (format {:?})", header.format);
            }
            let corrupted = |e: rmp_serde::decode::Error| {
                bad_input(format!("the checkpoint is truncated or corrupted ({e})"))
            };
            let ck: Checkpoint = match header.format_version {
                1 => rmp_serde::from_slice::<CheckpointV1>(&bytes)
                    .map_err(corrupted)?
                    .try_into()?,
                FORMAT_VERSION => rmp_serde::from_slice(&bytes).map_err(corrupted)?,
                v => bail_input!(
                    "checkpoint format version {v} (written by anomaly {}); this anomaly {} reads versions 1 and {FORMAT_VERSION}",
                    header.tool_version,
                    env!("CARGO_PKG_VERSION")
                ),
            };
            // A checkpoint is user input too: its config passes the same checks as a file's.
            ck.config
                .validate()
                .context("its stored config is invalid")?;
            Ok(ck)
        };
        read().with_context(|| format!("checkpoint {}", path.display()))
    }

    /// The network of a neural family (what `upload` and `--resume` need).
    pub fn network(&self) -> Result<&NetworkState> {
        let parts = self.detector.members();
        match self.detector.as_network() {
            Some(n) => Ok(n),
            None if !parts.is_empty() => {
                let paths: Vec<String> = parts
                    .iter()
                    .map(|p| format!("members/{p}/best.mpk"))
                    .collect();
                bail_input!(
                    "a {} has no network of its own: its parts are checkpoints beside it ({}); \
                     upload a part whose family has network weights (mlp, resmlp, autoencoder)",
                    self.detector.family(),
                    paths.join(", ")
                )
            }
            None => bail_input!(
                "the {} detector has no network weights (exporting them, as upload does, \
                 covers the mlp, resmlp and autoencoder families)",
                self.detector.family()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn burn_version_matches_the_pinned_dependency() {
        let manifest = include_str!("../Cargo.toml");
        assert!(manifest.contains(&format!("version = \"={}\"", super::BURN_VERSION)));
    }
}
