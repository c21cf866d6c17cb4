//! Detector families behind one face. A family is fitted by its trainer, stored in a checkpoint
//! as a tagged payload ([`DetectorState`]), and loaded back as a [`Detector`] that scores
//! encoded rows. Everything downstream (the scorer, `test`, `assess`, `cv`, `predict`) only
//! sees this face. A new family today is its module (config section, fit, state, `Detector`),
//! a `ModelKind` variant with its facts (`config::Family`), a variant here, and its fit's
//! dispatch in `train/fit.rs` (see ARCHITECTURE.md).

use anyhow::{Result, anyhow};
use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::cnn_lstm::CnnLstm;
use super::cpu::CpuNet;
use super::dbscan::Dbscan;
use super::ensemble::{self, Ensemble, Votes};
use super::gradient_boosting::GradientBoosting;
use super::isolation_forest::IsolationForest;
use super::kmeans::Kmeans;
use super::lof::Lof;
use super::one_class_svm::OneClassSvm;
use super::random_forest::RandomForest;
use super::{Mlp, ModelSpec, NamedTensor, Net, activate, probabilities};
use crate::config::ModelKind;
use crate::error::bad_input;

/// A fitted detector as checkpoints store it: the family tag and the family's own payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", content = "payload", rename_all = "snake_case")]
pub enum DetectorState {
    Mlp(NetworkState),
    Resmlp(NetworkState),
    Autoencoder(NetworkState),
    IsolationForest(IsolationForest),
    Kmeans(Kmeans),
    Lof(Lof),
    Dbscan(Dbscan),
    OneClassSvm(OneClassSvm),
    Ensemble(Ensemble),
    RandomForest(RandomForest),
    GradientBoosting(GradientBoosting),
    CnnLstm(NetworkState),
}

/// A neural family's payload: the architecture and its burnpack weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkState {
    pub spec: ModelSpec,
    #[serde(with = "serde_bytes")]
    pub weights: Vec<u8>,
}

/// What a detector makes of a batch of encoded rows.
pub enum Output {
    /// A classifier's probabilities, `width` per row (1: the anomaly probability).
    Probabilities { values: Vec<f32>, width: usize },
    /// An unsupervised detector's anomaly score per row.
    Scores(Vec<f32>),
    /// An ensemble's combined score per row, with its members' scores and votes.
    Ensemble(Votes),
}

/// A loaded detector, ready to score encoded (preprocessed, scaled) rows.
pub trait Detector: Send + Sync {
    /// Scores `x`, row-major with `n_features` values per row.
    fn score(&self, x: &[f32]) -> Result<Output>;

    /// A clustering family's clusters (k-means, DBSCAN).
    fn clusters(&self) -> Option<&dyn Clusters> {
        None
    }
}

/// A clustering family's partition of rows, for the clustering report.
pub trait Clusters {
    /// Each row's cluster, or `None` for noise.
    fn assign(&self, x: &[f32]) -> Vec<Option<u32>>;
    /// How many clusters the fit found.
    fn count(&self) -> usize;
    /// Per cluster: whether most training rows in it were anomalies (empty when the training
    /// rows held no anomalies to learn from).
    fn majority(&self) -> &[bool];
    /// k-means: the squared distances of the rows to their nearest centroid, summed.
    fn inertia(&self, _x: &[f32]) -> Option<f64> {
        None
    }
    /// DBSCAN: rows may be noise.
    fn has_noise(&self) -> bool {
        false
    }
}

/// Per cluster of `count`: whether most of the `y`-labelled rows `assigned` to it are
/// anomalies; empty when no row is one.
pub fn majority(assigned: &[Option<u32>], y: &[f32], count: usize) -> Vec<bool> {
    if !y.contains(&1.0) {
        return Vec::new();
    }
    let mut tally = vec![(0usize, 0usize); count];
    for (c, &label) in assigned.iter().zip(y) {
        if let Some(c) = c {
            let t = &mut tally[*c as usize];
            *(if label == 1.0 { &mut t.1 } else { &mut t.0 }) += 1;
        }
    }
    tally
        .iter()
        .map(|(normal, anomalous)| anomalous > normal)
        .collect()
}

impl DetectorState {
    /// A neural family's state (`spec.kind` names the family).
    pub fn from_network(state: NetworkState) -> Result<DetectorState> {
        match state.spec.kind {
            ModelKind::Mlp => Ok(DetectorState::Mlp(state)),
            ModelKind::Resmlp => Ok(DetectorState::Resmlp(state)),
            ModelKind::Autoencoder => Ok(DetectorState::Autoencoder(state)),
            ModelKind::CnnLstm => Ok(DetectorState::CnnLstm(state)),
            other => Err(bad_input(format!(
                "a network stored as model kind {other:?}, which is not a neural family"
            ))),
        }
    }

    /// The family, as `model.kind` names it.
    pub fn kind(&self) -> ModelKind {
        match self {
            DetectorState::Mlp(_) => ModelKind::Mlp,
            DetectorState::Resmlp(_) => ModelKind::Resmlp,
            DetectorState::Autoencoder(_) => ModelKind::Autoencoder,
            DetectorState::IsolationForest(_) => ModelKind::IsolationForest,
            DetectorState::Kmeans(_) => ModelKind::Kmeans,
            DetectorState::Lof(_) => ModelKind::Lof,
            DetectorState::Dbscan(_) => ModelKind::Dbscan,
            DetectorState::OneClassSvm(_) => ModelKind::OneClassSvm,
            DetectorState::Ensemble(_) => ModelKind::Ensemble,
            DetectorState::RandomForest(_) => ModelKind::RandomForest,
            DetectorState::GradientBoosting(_) => ModelKind::GradientBoosting,
            DetectorState::CnnLstm(_) => ModelKind::CnnLstm,
        }
    }

    /// The family name, as `model.kind` spells it.
    pub fn family(&self) -> &'static str {
        self.kind().name()
    }

    /// An ensemble's member families, in order (empty for any other detector).
    pub fn members(&self) -> Vec<&'static str> {
        match self {
            DetectorState::Ensemble(e) => e.members.iter().map(|m| m.detector.family()).collect(),
            _ => Vec::new(),
        }
    }

    /// The neural payload, for families trained by gradient descent.
    pub fn as_network(&self) -> Option<&NetworkState> {
        match self {
            DetectorState::Mlp(n)
            | DetectorState::Resmlp(n)
            | DetectorState::Autoencoder(n)
            | DetectorState::CnnLstm(n) => Some(n),
            DetectorState::IsolationForest(_)
            | DetectorState::Kmeans(_)
            | DetectorState::Lof(_)
            | DetectorState::Dbscan(_)
            | DetectorState::OneClassSvm(_)
            | DetectorState::Ensemble(_)
            | DetectorState::RandomForest(_)
            | DetectorState::GradientBoosting(_) => None,
        }
    }

    /// Builds the detector on `device`.
    pub fn load(&self, device: &Device) -> Result<Box<dyn Detector>> {
        match self {
            DetectorState::Mlp(n)
            | DetectorState::Resmlp(n)
            | DetectorState::Autoencoder(n)
            | DetectorState::CnnLstm(n) => Ok(Box::new(n.network(device)?)),
            DetectorState::IsolationForest(f) => Ok(Box::new(f.clone())),
            DetectorState::Kmeans(m) => Ok(Box::new(m.clone())),
            DetectorState::Lof(l) => Ok(Box::new(l.clone())),
            DetectorState::Dbscan(m) => Ok(Box::new(m.loaded())),
            DetectorState::OneClassSvm(m) => Ok(Box::new(m.clone())),
            DetectorState::Ensemble(e) => Ok(Box::new(ensemble::Loaded::new(e, device)?)),
            DetectorState::RandomForest(f) => Ok(Box::new(f.clone())),
            DetectorState::GradientBoosting(m) => Ok(Box::new(m.clone())),
        }
    }
}

impl NetworkState {
    /// The network in inference mode.
    pub fn network(&self, device: &Device) -> Result<Network> {
        if self.spec.sequence.is_some() {
            let model: CnnLstm = load_model(&self.spec, &self.weights, device)?;
            Network::of(&self.spec, &model, device)
        } else {
            let model: Mlp = load_model(&self.spec, &self.weights, device)?;
            Network::of(&self.spec, &model, device)
        }
    }

    /// The weights with PyTorch's names and layouts.
    pub fn named_weights(&self, device: &Device) -> Result<Vec<NamedTensor>> {
        if self.spec.sequence.is_some() {
            load_model::<CnnLstm>(&self.spec, &self.weights, device)?.named_weights()
        } else {
            load_model::<Mlp>(&self.spec, &self.weights, device)?.named_weights()
        }
    }
}

/// A network's weights as burnpack bytes (burn's own record format).
pub fn model_bytes<M: Module>(model: &M) -> Result<Vec<u8>> {
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow!("serialising model weights: {e}"))?;
    Ok(bytes.to_vec())
}

/// Rebuilds a network from its spec and burnpack weights.
pub fn load_model<M: Net>(spec: &ModelSpec, weights: &[u8], device: &Device) -> Result<M> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights.to_vec()))
        .map_err(|e| bad_input(format!("the weights are unreadable: {e}")))?;
    M::build(spec, device).try_load_record(record).map_err(|e| {
        bad_input(format!(
            "the weights do not fit the stored architecture: {e}"
        ))
    })
}

/// A network in inference mode (no autodiff, no dropout), with the CPU fast path when the
/// architecture allows it ([`CpuMlp`], the same results): a classifier's probabilities, or an
/// autoencoder's reconstruction errors.
pub struct Network {
    forward: Box<dyn Fn(Tensor<2>) -> Tensor<2> + Send + Sync>,
    cpu: Option<Box<dyn CpuNet>>,
    device: Device,
    /// Values per input row (a window's channels × time steps for a sequence family).
    n_features: usize,
    output_width: usize,
    /// An autoencoder: the last layer's outputs are the reconstructed rows.
    reconstructs: bool,
}

impl Network {
    /// A classifier MLP.
    pub fn new(model: &Mlp, device: &Device) -> Result<Network> {
        Self::build(model, device, model.input_width(), false)
    }

    /// The network `spec` describes: a classifier or an autoencoder.
    pub fn of<M: Net>(spec: &ModelSpec, model: &M, device: &Device) -> Result<Network> {
        let reconstructs = spec.kind == ModelKind::Autoencoder;
        Self::build(model, device, spec.row_width(), reconstructs)
    }

    fn build<M: Net>(
        model: &M,
        device: &Device,
        n_features: usize,
        reconstructs: bool,
    ) -> Result<Network> {
        let model = model.valid();
        let cpu = if crate::device::is_cpu(device) {
            model.cpu()?
        } else {
            None
        };
        let output_width = model.output_width();
        Ok(Network {
            forward: Box::new(move |x| model.forward_masked(x, None)),
            cpu,
            device: device.clone(),
            n_features,
            output_width,
            reconstructs,
        })
    }

    /// The probabilities of every row: one per row (sigmoid) for a binary model, one per class
    /// (softmax) for multiclass; an autoencoder's reconstructed rows.
    ///
    /// On the CPU, batches of 512 rows run on rayon's threads (burn's CPU backends compute one
    /// batch on one core; a row's result does not depend on which thread scored its batch).
    /// The matrix kernels pick their blocking by the number of rows, which changed a row's last
    /// bits with the size of its batch; so a shorter batch is padded to 512 zero rows, and a
    /// row scores the same bits alone from a stream, or from a server, as inside a file. (512
    /// rows give the bits 4096 did, at an eighth of the cost of padding one row.)
    pub fn probabilities(&self, x: &[f32]) -> Result<Vec<f32>> {
        use rayon::prelude::*;
        const BATCH: usize = 512;
        let d = self.n_features;
        let finish = |logits: Tensor<2>| {
            if self.reconstructs {
                crate::device::read_floats(logits)
            } else {
                probabilities(logits)
            }
        };
        let burn_batch = |chunk: &[f32]| finish(self.forward_rows(chunk));
        let cpu_batch = |buffers: &mut [Vec<f32>; 2], chunk: &[f32]| -> Result<Vec<f32>> {
            let rows = chunk.len() / d;
            let padded;
            let full = if rows == BATCH {
                chunk
            } else {
                padded = [chunk, &vec![0.0; (BATCH - rows) * d]].concat();
                &padded[..]
            };
            let mut p = match &self.cpu {
                Some(m) => {
                    let logits = m.outputs(full, buffers);
                    let width = logits.len() / BATCH;
                    finish(Tensor::from_data(
                        TensorData::new(logits, [BATCH, width]),
                        &self.device,
                    ))?
                }
                None => burn_batch(full)?,
            };
            p.truncate(rows * p.len() / BATCH);
            Ok(p)
        };
        if !crate::device::is_cpu(&self.device) {
            return self.on_device(x);
        }
        // One batch runs on the caller's thread: a hand-over to rayon would only add latency.
        if x.len() <= BATCH * d {
            return cpu_batch(&mut [Vec::new(), Vec::new()], x);
        }
        let parts: Vec<Vec<f32>> = x
            .par_chunks(BATCH * d)
            .map_init(|| [Vec::new(), Vec::new()], cpu_batch)
            .collect::<Result<_>>()?;
        Ok(parts.concat())
    }

    /// The network's raw outputs for `rows` (row-major), on its device.
    fn forward_rows(&self, rows: &[f32]) -> Tensor<2> {
        let d = self.n_features;
        let x = Tensor::from_data(
            TensorData::new(rows.to_vec(), [rows.len() / d, d]),
            &self.device,
        );
        (self.forward)(x)
    }

    /// Rows scored on a GPU, which runs a batch in parallel already: large batches, whose
    /// outputs stay on the device until one read at the end (each read waits for the device).
    fn on_device(&self, x: &[f32]) -> Result<Vec<f32>> {
        const DEVICE_BATCH: usize = 65_536;
        let outputs: Vec<Tensor<2>> = x
            .chunks(DEVICE_BATCH * self.n_features)
            .map(|chunk| {
                let out = self.forward_rows(chunk);
                if self.reconstructs {
                    out
                } else {
                    activate(out)
                }
            })
            .collect();
        if outputs.is_empty() {
            return Ok(Vec::new());
        }
        crate::device::read_floats(Tensor::cat(outputs, 0))
    }

    /// An autoencoder's squared reconstruction error of every feature of every row (the
    /// row's score is their mean; explanations read the features').
    pub fn feature_errors(&self, x: &[f32]) -> Result<Vec<f32>> {
        let reconstructed = self.probabilities(x)?;
        Ok(reconstructed
            .iter()
            .zip(x)
            .map(|(r, v)| (r - v) * (r - v))
            .collect())
    }
}

impl Detector for Network {
    fn score(&self, x: &[f32]) -> Result<Output> {
        if self.reconstructs {
            let errors = self.feature_errors(x)?;
            let d = self.n_features;
            let mean = |row: &[f32]| (row.iter().map(|&e| e as f64).sum::<f64>() / d as f64) as f32;
            return Ok(Output::Scores(errors.chunks_exact(d).map(mean).collect()));
        }
        Ok(Output::Probabilities {
            values: self.probabilities(x)?,
            width: self.output_width,
        })
    }
}
