//! The detector families (one module each; `detector.rs` is the face they share) and, here,
//! the networks the gradient trainer fits: the MLP, the residual MLP with batch norm and the
//! autoencoder, mapping a feature row to one anomaly logit (binary), one logit per class
//! (multiclass) or its reconstruction.

pub mod bins;
pub mod cnn_lstm;
pub mod cpu;
pub mod dbscan;
pub mod detector;
pub mod dropout;
pub mod ensemble;
pub mod gradient_boosting;
pub mod isolation_forest;
pub mod kmeans;
pub mod lof;
pub mod neighbors;
pub mod one_class_svm;
pub mod random_forest;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::nn::activation::{Activation as Act, ActivationConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, LeakyReluConfig, Linear, LinearConfig,
};
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::{Activation, ModelConfig, ModelKind};

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
    fn cpu(&self) -> anyhow::Result<Option<Box<dyn cpu::CpuNet>>> {
        Ok(None)
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
    /// `sequence.length` flows of `input_dim` features.
    pub fn of_run(config: &crate::config::Config, input_dim: usize, outputs: usize) -> Self {
        let m = &config.model;
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
            sequence: Some(cnn_lstm::SequenceSpec::new(
                &m.cnn_lstm,
                config.sequence.length,
            )),
        }
    }

    /// Values per input row: the features, or a window's channels × time steps.
    pub fn row_width(&self) -> usize {
        self.input_dim * self.sequence.as_ref().map_or(1, |s| s.length)
    }

    /// A freshly initialised network; its weights come from the device's RNG (seed it first).
    pub fn init(&self, device: &Device) -> Mlp {
        let mut ids = 0..;
        let mut hidden = Vec::new();
        let mut norms = Vec::new();
        let mut skips = Vec::new();
        let mut width = self.input_dim;
        for &h in &self.hidden_dims {
            hidden.push(numbered(LinearConfig::new(width, h).init(device), &mut ids));
            if self.kind == ModelKind::Resmlp {
                norms.push(numbered_norm(
                    BatchNormConfig::new(h).init(device),
                    &mut ids,
                ));
                skips.push((width != h).then(|| {
                    let proj = LinearConfig::new(width, h).with_bias(false).init(device);
                    numbered(proj, &mut ids)
                }));
            }
            width = h;
        }
        let activation = match self.activation {
            Activation::Relu => ActivationConfig::Relu,
            Activation::Gelu => ActivationConfig::Gelu,
            Activation::LeakyRelu => ActivationConfig::LeakyRelu(LeakyReluConfig::new()),
            Activation::Tanh => ActivationConfig::Tanh,
        };
        let model = Mlp {
            hidden,
            norms,
            skips,
            output: numbered(
                LinearConfig::new(width, self.outputs).init(device),
                &mut ids,
            ),
            activation: activation.init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        };
        model.visit(&mut Materialize);
        model
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
    out
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

/// Per hidden layer: linear → activation → dropout; `resmlp` puts batch norm before the
/// activation and adds the layer's input back (through a projection when the width changes).
/// Then a linear layer to the logits.
#[derive(Module, Debug)]
pub struct Mlp {
    hidden: Vec<Linear>,
    /// resmlp only (empty for mlp).
    norms: Vec<BatchNorm>,
    skips: Vec<Option<Linear>>,
    output: Linear,
    activation: Act,
    dropout: Dropout,
}

/// A named float tensor, row-major.
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl Mlp {
    /// Features per input row.
    pub fn input_width(&self) -> usize {
        self.hidden[0].weight.dims()[0]
    }

    /// `[batch, features]` → `[batch, outputs]` logits; a training-mode model on an autodiff
    /// device applies dropout with burn's on-device RNG.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward_masked(x, None)
    }
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

impl Net for Mlp {
    fn build(spec: &ModelSpec, device: &Device) -> Self {
        spec.init(device)
    }

    fn output_width(&self) -> usize {
        self.output.weight.dims()[1]
    }

    /// resmlp's hidden layers.
    fn has_batch_norm(&self) -> bool {
        !self.norms.is_empty()
    }

    /// One mask per hidden layer.
    fn dropout_layout(&self) -> (f64, Vec<usize>) {
        let widths = self.hidden.iter().map(|l| l.weight.dims()[1]).collect();
        (self.dropout.prob, widths)
    }

    fn cpu(&self) -> anyhow::Result<Option<Box<dyn cpu::CpuNet>>> {
        Ok(cpu::CpuMlp::of(self)?.map(|m| Box::new(m) as Box<dyn cpu::CpuNet>))
    }

    /// `layers.K` (torch.nn.Sequential's linear layers); resmlp adds `norms.K` and `skips.K`
    /// for projected skip connections.
    fn named_weights(&self) -> anyhow::Result<Vec<NamedTensor>> {
        let names = |name: String| [format!("{name}.weight"), format!("{name}.bias")];
        let mut out = Vec::new();
        for (k, layer) in self
            .hidden
            .iter()
            .chain(std::iter::once(&self.output))
            .enumerate()
        {
            out.extend(linear_weights(layer, names(format!("layers.{k}")))?);
        }
        for (k, skip) in self.skips.iter().enumerate() {
            if let Some(p) = skip {
                out.extend(linear_weights(p, names(format!("skips.{k}")))?);
            }
        }
        for (k, n) in self.norms.iter().enumerate() {
            out.extend(norm_weights(&format!("norms.{k}"), n)?);
        }
        Ok(out)
    }

    /// Per hidden layer: linear, batch norm (resmlp), activation, dropout, skip (resmlp).
    fn forward_masked(&self, x: Tensor<2>, masks: Option<Vec<Tensor<2>>>) -> Tensor<2> {
        let mut masks = masks.map(Vec::into_iter);
        let mut x = x;
        for (k, layer) in self.hidden.iter().enumerate() {
            let mut h = layer.forward(x.clone());
            if let Some(norm) = self.norms.get(k) {
                h = batch_norm(norm, h);
            }
            h = self.activation.forward(h);
            h = match masks.as_mut() {
                Some(m) => h * m.next().expect("one mask per hidden layer"),
                None => self.dropout.forward(h),
            };
            x = match self.skips.get(k) {
                None => h,
                Some(None) => h + x,
                Some(Some(proj)) => h + proj.forward(x),
            };
        }
        self.output.forward(x)
    }
}

/// Runs `f` on a rayon pool of `threads` threads (tests of thread-count independence).
#[cfg(test)]
pub(crate) fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
        .install(f)
}

/// XOR on two uniform features (the class: whether their signs differ), with a third, noise:
/// what no single split, and no linear model, separates.
#[cfg(test)]
pub(crate) fn xor(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut x = Vec::new();
    let mut class = Vec::new();
    for _ in 0..n {
        let (a, b): (f32, f32) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
        x.extend([a, b, rng.random_range(-1.0..1.0)]);
        class.push(((a > 0.0) != (b > 0.0)) as u32);
    }
    (x, class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_count_matches_the_reference_architecture() {
        // 17 → 128 → 64 → 32 → 1, as the reference pipeline's model: 12,673 parameters.
        let spec = ModelSpec::new(17, 1, &ModelConfig::default());
        assert_eq!(spec.n_params(), 12_673);
        let _rng = crate::device::TEST_RNG.lock();
        let device = crate::device::cpu();
        assert_eq!(spec.init(&device).num_params(), 12_673);
    }

    #[test]
    fn resmlp_adds_norms_and_skips_and_a_multiclass_head() {
        let cfg = ModelConfig {
            kind: ModelKind::Resmlp,
            hidden_dims: vec![8, 8],
            ..Default::default()
        };
        let spec = ModelSpec::new(5, 3, &cfg);
        let _rng = crate::device::TEST_RNG.lock();
        let device = crate::device::cpu();
        let model = spec.init(&device);
        // 5·8+8 + 8·8+8 linear, 2·(8+8) norm, 5·8 projection (8 → 8 is an identity skip), 8·3+3 head.
        assert_eq!(spec.n_params(), 48 + 72 + 32 + 40 + 27);
        let names: Vec<String> = model
            .named_weights()
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert!(
            names.contains(&"skips.0.weight".to_string())
                && !names.contains(&"skips.1.weight".to_string())
        );
        assert!(names.contains(&"norms.1.running_var".to_string()));
        let x = Tensor::<2>::zeros([4, 5], &device);
        assert_eq!(model.valid().forward(x).dims(), [4, 3]);
    }
}
