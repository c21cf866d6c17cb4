//! The networks the gradient trainer fits (the MLPs, the autoencoder, the CNN+LSTM): their
//! stored architecture ([`ModelSpec`]) and weights ([`NetworkState`]), the layers and sums they
//! share, and [`Network`], any of them in inference mode as a [`Detector`].

use anyhow::{Result, anyhow};
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::nn::{BatchNorm, Linear};
use burn::store::ModuleRecord;
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::cnn_lstm::{self, CnnLstm};
use super::cpu::CpuNet;
use super::detector::{Detector, Output, StepWeights};
use super::mlp::Mlp;
use super::{ModelConfig, ModelKind};
use crate::error::bad_input;

/// A hidden layer's activation (`model.activation`, `model.autoencoder.activation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    Gelu,
    LeakyRelu,
    Tanh,
}

/// Everything needed to rebuild the network before loading its weights; stored in checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    #[serde(default = "mlp")]
    pub kind: ModelKind,
    pub input_dim: usize,
    pub hidden_dims: Vec<usize>,
    /// 1 for binary (a sigmoid logit), the number of classes for multiclass (softmax).
    #[serde(default = "one")]
    pub outputs: usize,
    pub dropout: f64,
    pub activation: Activation,
    /// Sequence families: the window and the layer sizes.
    #[serde(default)]
    pub sequence: Option<cnn_lstm::SequenceSpec>,
}

/// A network the gradient trainer fits: the MLP families and the CNN+LSTM.
pub trait Net: Module + Sync + 'static {
    /// A freshly initialised network; its weights come from the device's RNG (seed it first).
    fn build(spec: &ModelSpec, device: &Device) -> Self;
    /// `[batch, inputs]` → `[batch, outputs]` logits, with the dropout masks of each dropout
    /// layer given (`[batch, width]`, scaled, from [`dropout::HostMasks`]) or drawn by burn.
    fn forward_masked(&self, x: Tensor<2>, masks: Option<Vec<Tensor<2>>>) -> Tensor<2>;
    /// The dropout probability and the width of each dropout layer (its masks' shapes).
    fn dropout_layout(&self) -> (f64, Vec<usize>);
    /// Whether layers normalise over the batch (a batch is then never split or one row).
    fn has_batch_norm(&self) -> bool;
    /// Outputs per row: 1 (the anomaly logit) or one per class.
    fn output_width(&self) -> usize;
    /// The weights with PyTorch's names and layouts, for safetensors.
    fn named_weights(&self) -> anyhow::Result<Vec<NamedTensor>>;
    /// The CPU inference fast path, where the architecture has one.
    fn cpu(&self) -> anyhow::Result<Option<Box<dyn super::cpu::CpuNet>>> {
        Ok(None)
    }
    /// A sequence network's attention weights over its steps, `[batch, steps]` (none without
    /// an attention head).
    fn step_weights(&self, _x: Tensor<2>) -> Option<Tensor<2>> {
        None
    }
    /// A sequence network's steps: the flows of a window each one covers.
    fn step_flows(&self) -> Vec<std::ops::Range<usize>> {
        Vec::new()
    }
}

fn mlp() -> ModelKind {
    ModelKind::Mlp
}

fn one() -> usize {
    1
}

impl ModelSpec {
    /// The network `cfg.kind` names; an autoencoder's comes from `model.autoencoder` (the
    /// encoder, then the mirrored decoder, back to `input_dim` outputs; `outputs` is unused).
    pub fn new(input_dim: usize, outputs: usize, cfg: &ModelConfig) -> Self {
        if cfg.kind == ModelKind::Autoencoder {
            let encoder = &cfg.autoencoder.hidden_dims;
            let decoder = encoder.iter().rev().skip(1);
            return Self {
                kind: cfg.kind,
                input_dim,
                hidden_dims: encoder.iter().chain(decoder).copied().collect(),
                outputs: input_dim,
                dropout: 0.0,
                activation: cfg.autoencoder.activation,
                sequence: None,
            };
        }
        Self {
            kind: cfg.kind,
            input_dim,
            hidden_dims: cfg.hidden_dims.clone(),
            outputs,
            dropout: cfg.dropout,
            activation: cfg.activation,
            sequence: None,
        }
    }

    /// The network of a run: `new`'s, or for a sequence family the CNN+LSTM over windows of
    /// `window` flows (`sequence.length`) of `input_dim` features.
    pub fn of_run(m: &ModelConfig, window: usize, input_dim: usize, outputs: usize) -> Self {
        if !m.kind.is_sequence() {
            return Self::new(input_dim, outputs, m);
        }
        Self {
            kind: m.kind,
            input_dim,
            hidden_dims: Vec::new(),
            outputs,
            dropout: m.cnn_lstm.dropout,
            activation: Activation::Relu,
            sequence: Some(cnn_lstm::SequenceSpec::new(&m.cnn_lstm, window)),
        }
    }

    /// Values per input row: the features, or a window's channels × time steps.
    pub fn row_width(&self) -> usize {
        self.input_dim * self.sequence.as_ref().map_or(1, |s| s.length)
    }

    /// Trainable parameters (batch norm's running statistics are not counted).
    pub fn n_params(&self) -> usize {
        if self.sequence.is_some() {
            return cnn_lstm::CnnLstm::n_params(self);
        }
        let mut width = self.input_dim;
        let mut n = 0;
        for &h in &self.hidden_dims {
            n += width * h + h;
            if self.kind == ModelKind::Resmlp {
                n += 2 * h + if width != h { width * h } else { 0 };
            }
            width = h;
        }
        n + width * self.outputs + self.outputs
    }
}

/// Logits `[rows, outputs]` to probabilities, row-major: sigmoid for one output, else softmax.
pub fn probabilities(logits: Tensor<2>) -> anyhow::Result<Vec<f32>> {
    crate::device::read_floats(activate(logits))
}

/// A classifier's logits as probabilities, on the device: sigmoid for one output, else softmax.
pub fn activate(logits: Tensor<2>) -> Tensor<2> {
    if logits.dims()[1] == 1 {
        sigmoid(logits)
    } else {
        softmax(logits, 1)
    }
}

/// Each row's sum, `[rows, 1]`, as a product with a column of ones. flex sums a row in
/// vector lanes as wide as the CPU's (8 floats with AVX2, 16 with AVX-512), so its `sum_dim`
/// gives other bits on another CPU; gemm runs one AVX2+FMA kernel on every x86-64-v3 CPU
/// (its AVX-512 kernels are not compiled in) and sums a row in one order, on any thread count.
pub fn row_sums(x: Tensor<2>) -> Tensor<2> {
    let ones = Tensor::ones([x.dims()[1], 1], &x.device());
    x.matmul(ones)
}

/// burn's `log_softmax` over each row, its sum taken by [`row_sums`]: the same on any CPU.
pub fn log_softmax_rows(logits: Tensor<2>) -> Tensor<2> {
    let shifted = logits.clone() - logits.detach().max_dim(1);
    shifted.clone() - row_sums(shifted.exp()).log()
}

/// Batch norm over a `[rows, features]` batch. Training takes the batch's statistics with
/// flex's first-dimension sums, which add the rows in order whatever the CPU's vector width:
/// burn's fused `batch_norm_train` sums each feature as a contiguous row in vector lanes, so
/// AVX2 and AVX-512 machines trained other weights. Running statistics follow burn's (biased
/// variance, `momentum`); inference is burn's own.
pub fn batch_norm(norm: &BatchNorm, x: Tensor<2>) -> Tensor<2> {
    if !(x.device().is_autodiff() && norm.training.is_enabled()) {
        return norm.forward(x);
    }
    let mean = x.clone().mean_dim(0);
    let centered = x - mean.clone();
    let variance = centered.clone().powi_scalar(2).mean_dim(0);
    let scale = variance.clone().add_scalar(norm.epsilon).sqrt();
    let out = centered / scale * norm.gamma.val().unsqueeze::<2>() + norm.beta.val().unsqueeze();
    update_running_statistics(norm, mean, variance);
    out
}

/// Blends a training batch's mean and (biased) variance, `[1, features]`, into a batch norm's
/// running statistics, as burn's does (`momentum`).
pub fn update_running_statistics(norm: &BatchNorm, mean: Tensor<2>, variance: Tensor<2>) {
    let m = norm.momentum;
    let blend = |running: Tensor<1>, batch: Tensor<2>| {
        let device = batch.device();
        let batch: Tensor<1> = batch.detach().squeeze_dim(0);
        running.to_device(&device).mul_scalar(1.0 - m) + batch.mul_scalar(m)
    };
    let running_mean = blend(norm.running_mean.value_sync(), mean);
    let running_var = blend(norm.running_var.value_sync(), variance);
    norm.running_mean.update(running_mean.detach());
    norm.running_var.update(running_var.detach());
}

/// burn initialises parameters lazily, at first use, which would tie the weights to whatever
/// the RNG holds then (say, after a pass's dropout seed) rather than to the seed set before
/// `init`; this draws them all at once.
pub(crate) struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// burn draws parameter ids at random, and they are saved with the weights and key the
/// optimizer state; numbering them makes the same seed give byte-identical checkpoints.
pub(crate) fn numbered(mut layer: Linear, ids: &mut std::ops::RangeFrom<u64>) -> Linear {
    layer.weight.id = ParamId::from(ids.next().expect("unbounded"));
    if let Some(bias) = layer.bias.as_mut() {
        bias.id = ParamId::from(ids.next().expect("unbounded"));
    }
    layer
}

pub(crate) fn numbered_norm(mut norm: BatchNorm, ids: &mut std::ops::RangeFrom<u64>) -> BatchNorm {
    let mut next = || ParamId::from(ids.next().expect("unbounded"));
    norm.gamma.id = next();
    norm.beta.id = next();
    norm.training.id = next();
    norm.running_mean = burn::module::RunningState::with_id(next(), norm.running_mean.value());
    norm.running_var = burn::module::RunningState::with_id(next(), norm.running_var.value());
    norm
}

/// A named float tensor, row-major.
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// A tensor's values, row-major.
pub(crate) fn values<const D: usize>(t: Tensor<D>) -> anyhow::Result<Vec<f32>> {
    t.try_to_vec_as::<f32>()
        .map_err(|e| anyhow::anyhow!("reading weights: {e:?}"))
}

/// A linear layer's weight as PyTorch's [out, in] (burn keeps [in, out]) and its bias, under
/// the given names.
pub(crate) fn linear_weights(
    layer: &Linear,
    [weight, bias]: [String; 2],
) -> anyhow::Result<Vec<NamedTensor>> {
    let w = layer.weight.val();
    let [d_in, d_out] = w.dims();
    let mut out = vec![NamedTensor {
        name: weight,
        shape: vec![d_out, d_in],
        values: values(w.transpose())?,
    }];
    if let Some(b) = &layer.bias {
        out.push(NamedTensor {
            name: bias,
            shape: vec![d_out],
            values: values(b.val())?,
        });
    }
    Ok(out)
}

/// A batch norm's `{prefix}.{weight,bias,running_mean,running_var}` (torch.nn.BatchNorm1d).
pub(crate) fn norm_weights(prefix: &str, n: &BatchNorm) -> anyhow::Result<Vec<NamedTensor>> {
    [
        ("weight", n.gamma.val()),
        ("bias", n.beta.val()),
        ("running_mean", n.running_mean.value()),
        ("running_var", n.running_var.value()),
    ]
    .into_iter()
    .map(|(part, t)| {
        Ok(NamedTensor {
            name: format!("{prefix}.{part}"),
            shape: t.dims().to_vec(),
            values: values(t)?,
        })
    })
    .collect()
}

/// A neural family's payload: the architecture and its burnpack weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkState {
    pub spec: ModelSpec,
    #[serde(with = "serde_bytes")]
    pub weights: Vec<u8>,
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
/// A network's pass from input rows to tensors.
type Pass<T> = Box<dyn Fn(Tensor<2>) -> T + Send + Sync>;

pub struct Network {
    forward: Pass<Tensor<2>>,
    step_weights: Pass<Option<Tensor<2>>>,
    step_flows: Vec<std::ops::Range<usize>>,
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
        let (weighing, step_flows) = (model.clone(), model.step_flows());
        Ok(Network {
            forward: Box::new(move |x| model.forward_masked(x, None)),
            step_weights: Box::new(move |x| weighing.step_weights(x)),
            step_flows,
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
        (self.forward)(self.tensor(rows))
    }

    /// `rows` (row-major) as a tensor on the network's device.
    fn tensor(&self, rows: &[f32]) -> Tensor<2> {
        let d = self.n_features;
        Tensor::from_data(
            TensorData::new(rows.to_vec(), [rows.len() / d, d]),
            &self.device,
        )
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

    fn step_weights(&self, x: &[f32]) -> Result<Option<StepWeights>> {
        let Some(weights) = (self.step_weights)(self.tensor(x)) else {
            return Ok(None);
        };
        Ok(Some(StepWeights {
            weights: crate::device::read_floats(weights)?,
            flows: self.step_flows.clone(),
        }))
    }
}
