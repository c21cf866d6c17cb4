//! The checkpoint file: one MessagePack map that holds everything `test` and `--resume` need.
//!
//! burn 0.22 dropped its `.mpk` recorders, so the envelope is ours: plain MessagePack (any
//! msgpack reader can list its keys) whose tensor fields are burnpack byte strings written by
//! burn's own `ModuleRecord` / optimizer records. Files are written to a temporary name and
//! renamed, so a killed run leaves either the previous checkpoint or the new one, never half.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use crate::bail_input;
use crate::config::Config;
use crate::data::preprocess::Preprocessor;
use crate::error::bad_input;
use crate::model::{Mlp, ModelSpec};

pub const FORMAT: &str = "anomaly-checkpoint";
pub const FORMAT_VERSION: u32 = 1;
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    #[serde(with = "serde_bytes")]
    pub optimizer: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub best_weights: Vec<u8>,
    pub best_epoch: usize,
    pub best_val_loss: f64,
    pub best_threshold: f32,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    pub format_version: u32,
    pub tool_version: String,
    pub burn_version: String,
    /// The resolved config the run used (data, split seed, model, training).
    pub config: Config,
    pub run_name: String,
    pub model: ModelSpec,
    pub preprocessor: Preprocessor,
    pub threshold: f32,
    /// Epochs completed when this file was written.
    pub epoch: usize,
    /// The epoch these weights come from (the best one, for `best.mpk`).
    pub weights_epoch: usize,
    #[serde(with = "serde_bytes")]
    pub weights: Vec<u8>,
    pub history: Vec<EpochRecord>,
    pub data: DataShape,
    pub train_state: Option<TrainState>,
}

/// Read first, so a file of another format is refused before its body is decoded.
#[derive(Deserialize)]
struct Header {
    format: String,
    format_version: u32,
    tool_version: String,
}

pub fn model_bytes(model: &Mlp) -> Result<Vec<u8>> {
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow::anyhow!("serialising model weights: {e}"))?;
    Ok(bytes.to_vec())
}

/// Rebuilds a network from its spec and burnpack weights.
pub fn load_model(spec: &ModelSpec, weights: &[u8], device: &Device) -> Result<Mlp> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights.to_vec()))
        .map_err(|e| bad_input(format!("the weights are unreadable: {e}")))?;
    spec.init(device).try_load_record(record).map_err(|e| {
        bad_input(format!(
            "the weights do not fit the stored architecture: {e}"
        ))
    })
}

impl Checkpoint {
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
            if header.format_version != FORMAT_VERSION {
                bail_input!(
                    "checkpoint format version {} (written by anomaly {}); this anomaly {} reads version {FORMAT_VERSION}",
                    header.format_version,
                    header.tool_version,
                    env!("CARGO_PKG_VERSION")
                );
            }
            rmp_serde::from_slice(&bytes)
                .map_err(|e| bad_input(format!("the checkpoint is truncated or corrupted ({e})")))
        };
        read().with_context(|| format!("checkpoint {}", path.display()))
    }

    pub fn model(&self, device: &Device) -> Result<Mlp> {
        load_model(&self.model, &self.weights, device)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn burn_version_matches_the_pinned_dependency() {
        let manifest = include_str!("../../Cargo.toml");
        assert!(manifest.contains(&format!("version = \"={}\"", super::BURN_VERSION)));
    }
}
