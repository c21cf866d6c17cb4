//! The sequence classifier: 1-D convolution blocks over a window's time axis, dropout, an
//! LSTM, and a linear head on its last hidden state (the CNN+LSTM of the project it replaces,
//! every size configurable), or on the mean of its steps, or on an attention-weighted sum of
//! them (additive attention, its query learned from the window's last hidden state: the
//! weights say which steps a score rests on, and `predict --explain` names them).
//!
//! The layers run time-major (`[batch, time, channels]`) as matrix products, the fastest path
//! burn's CPU backend has: a convolution is one product of each step's `kernel_size`
//! neighbouring flows (side by side) with the weights, batch norm normalises each channel over
//! every batch row and step (as `BatchNorm1d` does), and max-pooling takes the largest of each
//! `pool` steps. The LSTM is written here rather than taken from burn-nn: burn's runs eight
//! small products per step (one per gate and input), where PyTorch's runs the input projection
//! of every step as one product and one hidden product per step; this does the same.

use burn::module::{Module, Param};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid, softmax, tanh};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::cpu::{CpuNet, Dense};
use super::family::{Facts, NetworkFamily, Section};
use super::gates::{self, cell_update};
use super::network::{
    Materialize, ModelSpec, NamedTensor, Net, linear_weights, norm_weights, numbered,
    numbered_norm, values,
};
use crate::bail_input;

/// `cnn_lstm`: a binary or multiclass classifier of windows of flows.
pub struct CnnLstmFamily;

impl NetworkFamily for CnnLstmFamily {
    type Section = CnnLstmConfig;
    const FACTS: Facts = Facts {
        classifier: true,
        sequence: true,
        unit_scores: true,
    };
}

/// The sequence classifier: 1-D convolution blocks (conv, batch norm, ReLU, max-pool) over the
/// window's time axis, dropout, an LSTM, and a linear head on its last hidden state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CnnLstmConfig {
    /// Output channels of each convolution block.
    pub conv_channels: Vec<usize>,
    pub kernel_size: usize,
    /// Max-pool width (and stride) after each block.
    pub pool: usize,
    pub dropout: f64,
    pub lstm_hidden: usize,
    pub lstm_layers: usize,
    pub bidirectional: bool,
    /// What the linear head reads of the LSTM's steps.
    pub head: Head,
}

/// What the linear head reads of the LSTM's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// The last hidden state (of each direction), as the original project does.
    #[default]
    Last,
    /// Every step's output, weighted by additive attention (Bahdanau's, its query the last
    /// hidden state `s`): `softmax_t(v·tanh(W h_t + U s + b))`; the head reads the weighted
    /// sum beside `s`.
    Attention,
    /// The mean of every step's output.
    Mean,
}

impl Default for CnnLstmConfig {
    fn default() -> Self {
        Self {
            conv_channels: vec![128, 256],
            kernel_size: 3,
            pool: 2,
            dropout: 0.3,
            lstm_hidden: 128,
            lstm_layers: 1,
            bidirectional: false,
            head: Head::Last,
        }
    }
}

impl CnnLstmConfig {
    /// The time steps left after the convolution blocks, for windows of `length` flows (none
    /// when a block would have nothing to convolve or pool).
    pub fn steps_after_conv(&self, length: usize) -> Option<usize> {
        self.conv_channels.iter().try_fold(length, |l, _| {
            let convolved = l.checked_sub(self.kernel_size - 1)?;
            Some(convolved / self.pool).filter(|&s| s > 0)
        })
    }

    /// Whether windows of `length` flows leave steps after every convolution block.
    pub fn fits(&self, length: usize) -> anyhow::Result<()> {
        if self.steps_after_conv(length).is_none() {
            bail_input!(
                "sequence.length: {length} flows are too few for {} convolution blocks of \
                 kernel {} and pool {} (each needs kernel_size - 1 + pool more)",
                self.conv_channels.len(),
                self.kernel_size,
                self.pool
            );
        }
        Ok(())
    }
}

impl Section for CnnLstmConfig {
    fn check(&self) -> anyhow::Result<()> {
        let sizes = [
            self.kernel_size,
            self.pool,
            self.lstm_hidden,
            self.lstm_layers,
        ];
        if self.conv_channels.contains(&0) || sizes.contains(&0) {
            bail_input!(
                "model.cnn_lstm: expected conv_channels, kernel_size, pool, lstm_hidden and \
                 lstm_layers >= 1"
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail_input!(
                "model.cnn_lstm.dropout: expected a value in [0, 1), got {}",
                self.dropout
            );
        }
        Ok(())
    }
}

/// The sequence part of a [`ModelSpec`]: the window and the layer sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceSpec {
    /// Flows per window (time steps).
    pub length: usize,
    pub conv_channels: Vec<usize>,
    pub kernel_size: usize,
    pub pool: usize,
    pub lstm_hidden: usize,
    pub lstm_layers: usize,
    pub bidirectional: bool,
    /// Checkpoints written before heads existed read the last hidden state.
    #[serde(default)]
    pub head: Head,
}

impl SequenceSpec {
    pub fn new(cfg: &CnnLstmConfig, length: usize) -> Self {
        Self {
            length,
            conv_channels: cfg.conv_channels.clone(),
            kernel_size: cfg.kernel_size,
            pool: cfg.pool,
            lstm_hidden: cfg.lstm_hidden,
            lstm_layers: cfg.lstm_layers,
            bidirectional: cfg.bidirectional,
            head: cfg.head,
        }
    }

    fn directions(&self) -> usize {
        1 + self.bidirectional as usize
    }
}

/// One direction of one LSTM layer, with PyTorch's gate order (input, forget, cell, output).
#[derive(Module, Debug)]
struct LstmCell {
    /// `W_ih` and `b_ih`: every step's input projection at once.
    input: Linear,
    /// `W_hh` and `b_hh`.
    hidden: Linear,
}

impl LstmCell {
    /// Time-major `[steps, batch, d_in]` → the last hidden state `[batch, hidden]` (the
    /// reverse pass's is at the first step), and with `keep` every step's, `[steps, batch,
    /// hidden]` in time order (for a layer above, or a head reading every step).
    fn forward(&self, x: Tensor<3>, reverse: bool, keep: bool) -> (Option<Tensor<3>>, Tensor<2>) {
        let [steps, batch, d_in] = x.dims();
        let h_size = self.hidden.weight.dims()[0];
        let projected = self.input.forward(x.reshape([steps * batch, d_in]));
        let pre = match &self.hidden.bias {
            Some(b) => projected + b.val().unsqueeze_dim(0),
            None => projected,
        };
        let states = recurrence(pre, self.hidden.weight.val(), steps, reverse);
        let last = if reverse { 0 } else { steps - 1 };
        let h = states.clone().narrow(0, last * batch, batch);
        (keep.then(|| states.reshape([steps, batch, h_size])), h)
    }
}

/// A conv block's tail over its convolution's outputs `y` (`[batch · steps, width]`): batch
/// norm, ReLU and max-pool (a last partial pool dropped, as PyTorch's floor mode does), to
/// `[batch, steps / pool, width]`. Fused on the CPU in training ([`super::norm_pool`]);
/// burn's ops elsewhere.
fn norm_relu_pool(norm: &BatchNorm, y: Tensor<2>, sizes: (usize, usize, usize)) -> Tensor<3> {
    #[cfg(feature = "flex")]
    if y.device().is_autodiff() && norm.training.is_enabled() && crate::device::is_cpu(&y.device())
    {
        let (batch, steps, pool) = sizes;
        let width = y.dims()[1];
        let detached = y.clone().detach();
        let mean = detached.clone().mean_dim(0);
        let variance = (detached - mean.clone()).powi_scalar(2).mean_dim(0);
        super::network::update_running_statistics(norm, mean, variance);
        let (gamma, beta) = (norm.gamma.val(), norm.beta.val());
        let epsilon = norm.epsilon as f32;
        let h = super::norm_pool::norm_relu_pool(y, gamma, beta, (steps, pool), epsilon);
        return h.reshape([batch, steps / pool, width]);
    }
    unfused_norm_relu_pool(norm, y, sizes)
}

/// [`norm_relu_pool`] as burn's tensor ops.
pub(crate) fn unfused_norm_relu_pool(
    norm: &BatchNorm,
    y: Tensor<2>,
    (batch, steps, pool): (usize, usize, usize),
) -> Tensor<3> {
    let h = relu(super::network::batch_norm(norm, y));
    let (width, pooled) = (h.dims()[1], steps / pool);
    // The pool's steps side by side, then their elementwise maximum (whose gradient is a
    // mask: cheaper than a max over an axis, whose gradient scatters).
    let h = h
        .reshape([batch, steps, width])
        .narrow(1, 0, pooled * pool)
        .reshape([batch, pooled, pool * width]);
    (1..pool)
        .map(|p| h.clone().narrow(2, p * width, width))
        .fold(h.clone().narrow(2, 0, width), Tensor::max_pair)
}

/// The LSTM's recurrence over `pre` (every step's input projection plus both biases,
/// time-major `[steps · batch, 4·hidden]`) with `w_hh` (`[hidden, 4·hidden]`): every step's
/// hidden state, time-major. Fused on the CPU ([`super::lstm`]); burn's ops elsewhere.
fn recurrence(pre: Tensor<2>, w_hh: Tensor<2>, steps: usize, reverse: bool) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if crate::device::is_cpu(&pre.device()) {
        return super::lstm::states(pre, w_hh, steps, reverse);
    }
    unfused(pre, w_hh, steps, reverse)
}

/// [`recurrence`] as burn's tensor ops, a step at a time (time-major, a step's rows are
/// contiguous).
pub(crate) fn unfused(pre: Tensor<2>, w_hh: Tensor<2>, steps: usize, reverse: bool) -> Tensor<2> {
    let [rows, gates] = pre.dims();
    let (batch, h_size) = (rows / steps, gates / 4);
    let device = pre.device();
    let mut h = Tensor::<2>::zeros([batch, h_size], &device);
    let mut c = Tensor::<2>::zeros([batch, h_size], &device);
    let mut out = vec![None; steps];
    let order: Vec<usize> = if reverse {
        (0..steps).rev().collect()
    } else {
        (0..steps).collect()
    };
    for t in order {
        let step = pre.clone().narrow(0, t * batch, batch);
        let gates = (step + h.matmul(w_hh.clone())).chunk(4, 1);
        let [i, f, g, o] = <[Tensor<2>; 4]>::try_from(gates).expect("four gates");
        c = sigmoid(f) * c + sigmoid(i) * tanh(g);
        h = sigmoid(o) * tanh(c.clone());
        out[t] = Some(h.clone());
    }
    Tensor::cat(out.into_iter().map(|h| h.expect("every step")).collect(), 0)
}

/// Additive attention over the LSTM's steps, as Bahdanau's, its query the window's last hidden
/// state `s`: a step's weight is `softmax_t(v·tanh(W h_t + U s + b))`.
#[derive(Module, Debug)]
struct Attention {
    /// `W` and `b`.
    project: Linear,
    /// `U` (no bias: `b` is there already).
    recent: Linear,
    /// `v` (no bias: the softmax would cancel it).
    query: Linear,
}

impl Attention {
    /// Batch-major `[batch, steps, width]` outputs and the last hidden states `[batch,
    /// width]` → the steps' weights `[batch, steps]`, each row summing to 1.
    fn weights(&self, outs: Tensor<3>, last: Tensor<2>) -> Tensor<2> {
        let [batch, steps, width] = outs.dims();
        let projected = self.project.forward(outs.reshape([batch * steps, width]));
        let recent = self.recent.forward(last).unsqueeze_dim(1);
        let energy = tanh(projected.reshape([batch, steps, width]) + recent);
        let scores = self.query.forward(energy.reshape([batch * steps, width]));
        softmax(scores.reshape([batch, steps]), 1)
    }
}

/// Conv blocks → dropout → LSTM layers → linear head on the last step's hidden state, the
/// steps' mean, or their attention-weighted sum.
#[derive(Module, Debug)]
pub struct CnnLstm {
    /// Per block, the convolution: `kernel_size` steps' channels side by side → channels out.
    convs: Vec<Linear>,
    norms: Vec<BatchNorm>,
    kernel_size: usize,
    pool: usize,
    dropout: Dropout,
    /// Per layer, per direction (forward, then reverse when bidirectional).
    lstm: Vec<LstmCell>,
    /// `head: attention`'s weights (none for the other heads).
    attention: Option<Attention>,
    /// `head: mean`.
    mean: bool,
    head: Linear,
    channels: usize,
    length: usize,
    directions: usize,
}

/// What the linear head reads per window, for an LSTM `width` wide: the attention head reads
/// the weighted sum of the steps beside the last hidden state (Luong's attentional state,
/// `[c; s]`), so it never knows less than the `last` head.
fn head_inputs(head: Head, width: usize) -> usize {
    match head {
        Head::Attention => 2 * width,
        Head::Last | Head::Mean => width,
    }
}

/// The linear head, PyTorch-initialised; the attention head's weights on the weighted sum
/// start at zero, so it starts as a `last` head and learns what the steps add (from random
/// weights there, it trailed the `last` head on `generate --sequences` data).
fn head(head: Head, width: usize, outputs: usize, device: &Device) -> Linear {
    let mut linear = LinearConfig::new(head_inputs(head, width), outputs).init(device);
    if head == Head::Attention {
        let last = linear.weight.val().detach().narrow(0, width, width);
        let zeros = Tensor::zeros([width, outputs], device);
        linear.weight = Param::from_tensor(Tensor::cat(vec![zeros, last], 0).detach());
    }
    linear
}

/// A freshly initialised network for `spec` (its `sequence` part is set).
pub fn init(spec: &ModelSpec, device: &Device) -> CnnLstm {
    let s = spec.sequence.as_ref().expect("a sequence spec");
    let mut ids = 0..;
    let mut convs = Vec::new();
    let mut norms = Vec::new();
    let mut width = spec.input_dim;
    for &c in &s.conv_channels {
        // PyTorch's Conv1d initialisation: uniform in ±1/√fan_in, fan_in = channels · kernel.
        let conv = LinearConfig::new(width * s.kernel_size, c).init(device);
        convs.push(numbered(conv, &mut ids));
        norms.push(numbered_norm(
            BatchNormConfig::new(c).init(device),
            &mut ids,
        ));
        width = c;
    }
    let h = s.lstm_hidden;
    let mut lstm = Vec::new();
    for _ in 0..s.lstm_layers {
        for _ in 0..s.directions() {
            lstm.push(LstmCell {
                input: numbered(LinearConfig::new(width, 4 * h).init(device), &mut ids),
                hidden: numbered(LinearConfig::new(h, 4 * h).init(device), &mut ids),
            });
        }
        width = h * s.directions();
    }
    let model = CnnLstm {
        convs,
        norms,
        kernel_size: s.kernel_size,
        pool: s.pool,
        dropout: DropoutConfig::new(spec.dropout).init(),
        lstm,
        head: numbered(head(s.head, width, spec.outputs, device), &mut ids),
        // After the head, so the other layers draw the same weights whatever the head.
        attention: (s.head == Head::Attention).then(|| Attention {
            project: numbered(LinearConfig::new(width, width).init(device), &mut ids),
            recent: numbered(
                LinearConfig::new(width, width)
                    .with_bias(false)
                    .init(device),
                &mut ids,
            ),
            query: numbered(
                LinearConfig::new(width, 1).with_bias(false).init(device),
                &mut ids,
            ),
        }),
        mean: s.head == Head::Mean,
        channels: spec.input_dim,
        length: s.length,
        directions: s.directions(),
    };
    model.visit(&mut Materialize);
    model
}

impl CnnLstm {
    /// Trainable parameters (batch norm's running statistics are not counted).
    pub fn n_params(spec: &ModelSpec) -> usize {
        let s = spec.sequence.as_ref().expect("a sequence spec");
        let mut width = spec.input_dim;
        let mut n = 0;
        for &c in &s.conv_channels {
            n += width * c * s.kernel_size + c + 2 * c;
            width = c;
        }
        let h = s.lstm_hidden;
        for _ in 0..s.lstm_layers {
            n += s.directions() * (4 * h * (width + h) + 8 * h);
            width = h * s.directions();
        }
        let attention = match s.head {
            Head::Attention => 2 * width * width + 2 * width,
            Head::Last | Head::Mean => 0,
        };
        n + attention + head_inputs(s.head, width) * spec.outputs + spec.outputs
    }

    /// The conv stack's output shape per window: channels and time steps.
    fn conv_shape(&self) -> (usize, usize) {
        let channels = self
            .norms
            .last()
            .map_or(self.channels, |n| n.gamma.dims()[0]);
        let steps = self
            .convs
            .iter()
            .fold(self.length, |l, _| (l + 1 - self.kernel_size) / self.pool);
        (channels, steps)
    }

    /// One block on `[batch, steps, channels]`: convolution (no padding), batch norm, ReLU,
    /// max-pool (a last partial pool window is dropped, as PyTorch's floor mode does).
    fn block(&self, x: Tensor<3>, conv: &Linear, norm: &BatchNorm) -> Tensor<3> {
        let [batch, steps, channels] = x.dims();
        let out = steps + 1 - self.kernel_size;
        let taps: Vec<Tensor<3>> = (0..self.kernel_size)
            .map(|k| x.clone().narrow(1, k, out))
            .collect();
        let stacked = Tensor::cat(taps, 2).reshape([batch * out, channels * self.kernel_size]);
        norm_relu_pool(norm, conv.forward(stacked), (batch, out, self.pool))
    }

    /// Conv blocks, dropout and the LSTM layers: the last layer's outputs at every step,
    /// batch-major `[batch, steps, width]` (kept only for the attention and mean heads), and
    /// its last hidden state of each direction side by side.
    fn lstm_outputs(
        &self,
        x: Tensor<2>,
        masks: Option<Vec<Tensor<2>>>,
    ) -> (Option<Tensor<3>>, Tensor<2>) {
        let batch = x.dims()[0];
        // Windows come channel by channel; the layers read them step by step.
        let mut h = x
            .reshape([batch, self.channels, self.length])
            .swap_dims(1, 2);
        for (conv, norm) in self.convs.iter().zip(&self.norms) {
            h = self.block(h, conv, norm);
        }
        let (channels, steps) = self.conv_shape();
        let dropped = match masks.and_then(|m| m.into_iter().next()) {
            Some(mask) => h * mask.reshape([batch, steps, channels]),
            None => self.dropout.forward(h),
        };
        // [batch, steps, channels] → [steps, batch, channels]: the LSTM reads a step at a time.
        let mut seq = dropped.swap_dims(0, 1);
        let layers = self.lstm.len() / self.directions;
        let every_step = self.attention.is_some() || self.mean;
        let mut last = None;
        for (k, layer) in self.lstm.chunks(self.directions).enumerate() {
            let keep = k + 1 < layers || every_step;
            let (outs, finals): (Vec<_>, Vec<_>) = layer
                .iter()
                .enumerate()
                .map(|(dir, cell)| cell.forward(seq.clone(), dir == 1, keep))
                .unzip();
            last = Some(Tensor::cat(finals, 1));
            if keep {
                seq = Tensor::cat(outs.into_iter().flatten().collect(), 2);
            }
        }
        let outs = every_step.then(|| seq.swap_dims(0, 1));
        (outs, last.expect("at least one LSTM layer"))
    }

    /// The weights with PyTorch's names and layouts (`conv.K`, `norm.K`, `lstm.weight_ih_lK`
    /// and `_reverse`, `head`), as `torch.nn.Conv1d`, `BatchNorm1d` and `LSTM` hold them.
    pub fn named_weights(&self) -> anyhow::Result<Vec<NamedTensor>> {
        let mut out = Vec::new();
        for (k, (conv, norm)) in self.convs.iter().zip(&self.norms).enumerate() {
            // Stored [kernel · in, out], the kernel tap outermost; PyTorch's is [out, in, kernel].
            let w = conv.weight.val();
            let [rows, c_out] = w.dims();
            let c_in = rows / self.kernel_size;
            let w = w
                .reshape([self.kernel_size, c_in, c_out])
                .permute([2, 1, 0]);
            out.push(NamedTensor {
                name: format!("conv.{k}.weight"),
                shape: vec![c_out, c_in, self.kernel_size],
                values: values(w)?,
            });
            if let Some(b) = &conv.bias {
                out.push(NamedTensor {
                    name: format!("conv.{k}.bias"),
                    shape: b.dims().to_vec(),
                    values: values(b.val())?,
                });
            }
            out.extend(norm_weights(&format!("norm.{k}"), norm)?);
        }
        for (i, cell) in self.lstm.iter().enumerate() {
            let (layer, dir) = (i / self.directions, i % self.directions);
            let suffix = if dir == 1 { "_reverse" } else { "" };
            for (part, linear) in [("ih", &cell.input), ("hh", &cell.hidden)] {
                let names = [
                    format!("lstm.weight_{part}_l{layer}{suffix}"),
                    format!("lstm.bias_{part}_l{layer}{suffix}"),
                ];
                out.extend(linear_weights(linear, names)?);
            }
        }
        if let Some(a) = &self.attention {
            let parts = [
                ("project", &a.project),
                ("recent", &a.recent),
                ("query", &a.query),
            ];
            for (part, linear) in parts {
                let names = [
                    format!("attention.{part}.weight"),
                    format!("attention.{part}.bias"),
                ];
                out.extend(linear_weights(linear, names)?);
            }
        }
        out.extend(linear_weights(
            &self.head,
            ["head.weight".into(), "head.bias".into()],
        )?);
        Ok(out)
    }
}

impl Net for CnnLstm {
    fn build(spec: &ModelSpec, device: &Device) -> Self {
        init(spec, device)
    }

    /// `[batch, channels · length]` windows (channels × time) → `[batch, outputs]` logits.
    fn forward_masked(&self, x: Tensor<2>, masks: Option<Vec<Tensor<2>>>) -> Tensor<2> {
        let (outs, last) = self.lstm_outputs(x, masks);
        let read = match (outs, &self.attention) {
            (Some(outs), Some(attention)) => {
                let [batch, steps, width] = outs.dims();
                let weights = attention.weights(outs.clone(), last.clone());
                let weights = weights.reshape([batch, steps, 1]);
                let context = (outs * weights).sum_dim(1).reshape([batch, width]);
                Tensor::cat(vec![context, last], 1)
            }
            (Some(outs), None) => {
                let [batch, _, width] = outs.dims();
                outs.mean_dim(1).reshape([batch, width])
            }
            (None, _) => last,
        };
        self.head.forward(read)
    }

    fn step_flows(&self) -> Vec<std::ops::Range<usize>> {
        let (_, steps) = self.conv_shape();
        let (k, p) = (self.kernel_size, self.pool);
        // Back through the blocks: pooled steps a..=b come from convolved steps a·p ..=
        // b·p + p − 1, which read input steps from the first to the last + k − 1.
        let field = |u: usize| {
            let back = |(a, b): (usize, usize), _| (a * p, b * p + p - 1 + k - 1);
            let (a, b) = self.convs.iter().fold((u, u), back);
            a..b + 1
        };
        (0..steps).map(field).collect()
    }

    fn step_weights(&self, x: Tensor<2>) -> Option<Tensor<2>> {
        let attention = self.attention.as_ref()?;
        let (outs, last) = self.lstm_outputs(x, None);
        let outs = outs.expect("the attention head keeps every step");
        Some(attention.weights(outs, last))
    }

    fn dropout_layout(&self) -> (f64, Vec<usize>) {
        let (channels, steps) = self.conv_shape();
        (self.dropout.prob, vec![channels * steps])
    }

    fn has_batch_norm(&self) -> bool {
        true
    }

    fn output_width(&self) -> usize {
        self.head.weight.dims()[1]
    }

    fn named_weights(&self) -> anyhow::Result<Vec<NamedTensor>> {
        CnnLstm::named_weights(self)
    }

    fn cpu(&self) -> anyhow::Result<Option<Box<dyn CpuNet>>> {
        Ok(CpuCnnLstm::of(self)?.map(|m| Box::new(m) as Box<dyn CpuNet>))
    }
}

/// The CNN+LSTM's CPU inference path: the same layers over plain arrays, a batch through
/// reused buffers, each product by the `gemm` crate. Batch norm is folded into the
/// convolution before it, and the LSTM's two biases into its input projection, so each
/// convolution is one product, one bias add, then ReLU and max-pool in one pass. Its
/// probabilities match burn's to float rounding (a test checks it), not bit for bit.
pub struct CpuCnnLstm {
    channels: usize,
    length: usize,
    kernel_size: usize,
    pool: usize,
    convs: Vec<Dense>,
    /// Per layer and direction: the input projection (with both biases) and the hidden one.
    lstm: Vec<(Dense, Dense)>,
    hidden: usize,
    directions: usize,
    /// `head: attention`: `W` and `b`, `U`, and `v`.
    attention: Option<(Dense, Dense, Vec<f32>)>,
    mean: bool,
    head: Dense,
}

impl CpuCnnLstm {
    /// The model in this form (`None` where a layer has no bias).
    pub fn of(model: &CnnLstm) -> anyhow::Result<Option<Self>> {
        let mut convs = Vec::new();
        for (conv, norm) in model.convs.iter().zip(&model.norms) {
            let Some(mut dense) = Dense::of(conv)? else {
                return Ok(None);
            };
            dense.fold_norm(norm)?;
            convs.push(dense);
        }
        let mut lstm = Vec::new();
        for cell in &model.lstm {
            let (Some(mut input), Some(hidden)) =
                (Dense::of(&cell.input)?, Dense::of(&cell.hidden)?)
            else {
                return Ok(None);
            };
            input.add_bias(&cell.hidden)?;
            lstm.push((input, hidden.without_bias()));
        }
        let Some(head) = Dense::of(&model.head)? else {
            return Ok(None);
        };
        let attention = match &model.attention {
            Some(a) => match Dense::of(&a.project)? {
                Some(project) => {
                    let recent = Dense::zero_bias_if_none(&a.recent)?;
                    Some((project, recent, values(a.query.weight.val())?))
                }
                None => return Ok(None),
            },
            None => None,
        };
        Ok(Some(Self {
            channels: model.channels,
            length: model.length,
            kernel_size: model.kernel_size,
            pool: model.pool,
            convs,
            hidden: model.lstm[0].hidden.weight.dims()[0],
            lstm,
            directions: model.directions,
            attention,
            mean: model.mean,
            head,
        }))
    }

    /// One conv block over `rows` windows of `steps` steps (time-major in `x`): the
    /// neighbouring steps side by side, the product, then ReLU and max-pool. Returns the steps
    /// left.
    fn block(
        &self,
        conv: &Dense,
        x: &[f32],
        (rows, steps): (usize, usize),
        out: &mut Vec<f32>,
    ) -> usize {
        let c = x.len() / (rows * steps);
        let k = self.kernel_size;
        let convolved = steps + 1 - k;
        let mut stacked = Vec::with_capacity(rows * convolved * k * c);
        for r in 0..rows {
            for t in 0..convolved {
                stacked.extend_from_slice(&x[(r * steps + t) * c..(r * steps + t + k) * c]);
            }
        }
        let mut y = Vec::new();
        conv.forward(&stacked, rows * convolved, &mut y, |v| v);
        let (width, pooled) = (conv.outputs(), convolved / self.pool);
        out.clear();
        out.resize(rows * pooled * width, 0.0);
        for r in 0..rows {
            for u in 0..pooled {
                let dst = &mut out[(r * pooled + u) * width..][..width];
                for j in 0..self.pool {
                    let src = &y[(r * convolved + u * self.pool + j) * width..][..width];
                    for (d, &v) in dst.iter_mut().zip(src) {
                        // ReLU then max: the max of the pool's values and zero.
                        *d = d.max(v);
                    }
                }
            }
        }
        pooled
    }

    /// One direction of an LSTM layer over `seq` (`rows` × `steps`, time-major): its hidden
    /// states into `states` (same layout, `hidden` wide) and its last one (for the head).
    fn direction(
        &self,
        (input, recurrent): &(Dense, Dense),
        seq: &[f32],
        (rows, steps): (usize, usize),
        reverse: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let h_n = self.hidden;
        let mut pre = Vec::new();
        input.forward(seq, rows * steps, &mut pre, |v| v);
        let (mut h, mut c) = (vec![0.0f32; rows * h_n], vec![0.0f32; rows * h_n]);
        let mut states = vec![0.0f32; rows * steps * h_n];
        let (mut gates, mut acts) = (Vec::new(), vec![0.0f32; 4 * h_n]);
        for i in 0..steps {
            let t = if reverse { steps - 1 - i } else { i };
            if i == 0 {
                // The hidden state starts at zero: its product is zero.
                gates.clear();
                gates.resize(rows * 4 * h_n, 0.0);
            } else {
                recurrent.forward(&h, rows, &mut gates, |v| v);
            }
            for r in 0..rows {
                let g = &mut gates[r * 4 * h_n..(r + 1) * 4 * h_n];
                let p = &pre[(r * steps + t) * 4 * h_n..][..4 * h_n];
                g.iter_mut().zip(p).for_each(|(a, b)| *a += b);
                let row = r * h_n..(r + 1) * h_n;
                cell_update(g, &mut acts, &mut c[row.clone()], &mut h[row.clone()]);
                states[(r * steps + t) * h_n..][..h_n].copy_from_slice(&h[row]);
            }
        }
        (states, h)
    }
}

impl CpuNet for CpuCnnLstm {
    fn outputs(&self, x: &[f32], buffers: &mut [Vec<f32>; 2]) -> Vec<f32> {
        let (c, l) = (self.channels, self.length);
        let rows = x.len() / (c * l);
        let [seq, next] = buffers;
        // Channel by channel in, step by step for the layers.
        seq.clear();
        seq.resize(rows * l * c, 0.0);
        for r in 0..rows {
            for ch in 0..c {
                for t in 0..l {
                    seq[(r * l + t) * c + ch] = x[r * c * l + ch * l + t];
                }
            }
        }
        let mut steps = l;
        for conv in &self.convs {
            steps = self.block(conv, seq, (rows, steps), next);
            std::mem::swap(seq, next);
        }
        let mut last = Vec::new();
        for layer in self.lstm.chunks(self.directions) {
            let runs: Vec<(Vec<f32>, Vec<f32>)> = layer
                .iter()
                .enumerate()
                .map(|(dir, cell)| self.direction(cell, seq, (rows, steps), dir == 1))
                .collect();
            let width = self.hidden * runs.len();
            next.clear();
            last.clear();
            for r in 0..rows {
                for t in 0..steps {
                    for (states, _) in &runs {
                        next.extend_from_slice(
                            &states[(r * steps + t) * self.hidden..][..self.hidden],
                        );
                    }
                }
                for (_, h) in &runs {
                    last.extend_from_slice(&h[r * self.hidden..][..self.hidden]);
                }
            }
            debug_assert_eq!(next.len(), rows * steps * width);
            std::mem::swap(seq, next);
        }
        let read = self.read(seq, last, (rows, steps));
        let mut out = Vec::new();
        self.head.forward(&read, rows, &mut out, |v| v);
        out
    }
}

impl CpuCnnLstm {
    /// What the head reads of the last layer's outputs `seq` (`[rows, steps, width]`): its
    /// last hidden states `last`, the steps' mean, or their attention-weighted sum.
    fn read(&self, seq: &[f32], last: Vec<f32>, (rows, steps): (usize, usize)) -> Vec<f32> {
        let width = self.hidden * self.directions;
        let mean = self.mean.then(|| vec![1.0 / steps as f32; rows * steps]);
        let attention = || self.attention_weights(seq, &last, (rows, steps));
        let Some(weights) = mean.or_else(attention) else {
            return last;
        };
        let mut read = vec![0.0f32; rows * width];
        for (r, out) in read.chunks_exact_mut(width).enumerate() {
            for t in 0..steps {
                let w = weights[r * steps + t];
                let state = &seq[(r * steps + t) * width..][..width];
                out.iter_mut().zip(state).for_each(|(o, s)| *o += w * s);
            }
        }
        if self.attention.is_none() {
            return read;
        }
        // Beside each window's last hidden state, as the burn model reads it.
        read.chunks_exact(width)
            .zip(last.chunks_exact(width))
            .flat_map(|(c, s)| c.iter().chain(s))
            .copied()
            .collect()
    }

    /// `head: attention`'s weights over each window's steps (`seq` as [`CpuCnnLstm::read`]
    /// takes it): a softmax per window.
    fn attention_weights(
        &self,
        seq: &[f32],
        last: &[f32],
        (rows, steps): (usize, usize),
    ) -> Option<Vec<f32>> {
        let (project, recent, query) = self.attention.as_ref()?;
        let (mut projected, mut queries) = (Vec::new(), Vec::new());
        project.forward(seq, rows * steps, &mut projected, |v| v);
        recent.forward(last, rows, &mut queries, |v| v);
        let width = query.len();
        for (r, window) in projected.chunks_exact_mut(steps * width).enumerate() {
            let q = &queries[r * width..][..width];
            for step in window.chunks_exact_mut(width) {
                step.iter_mut()
                    .zip(q)
                    .for_each(|(p, q)| *p = gates::tanh(*p + q));
            }
        }
        let mut scores: Vec<f32> = projected
            .chunks_exact(query.len())
            .map(|p| p.iter().zip(query).map(|(a, b)| a * b).sum())
            .collect();
        for window in scores.chunks_exact_mut(steps) {
            let max = window.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            window.iter_mut().for_each(|e| *e = (*e - max).exp());
            let total: f32 = window.iter().sum();
            window.iter_mut().for_each(|e| *e /= total);
        }
        Some(scores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelConfig, ModelKind};
    use burn::tensor::{Distribution, TensorData};

    /// The CPU path gives burn's logits (to float rounding) for a bidirectional two-layer
    /// model whose batch norms hold trained running statistics, with each head.
    #[test]
    fn the_cpu_path_matches_burns_forward_pass() {
        let _rng = crate::device::TEST_RNG.lock();
        for (head, extra) in [(Head::Last, 0), (Head::Attention, 240), (Head::Mean, 0)] {
            let mut config = ModelConfig {
                kind: ModelKind::CnnLstm,
                ..Default::default()
            };
            config.cnn_lstm.conv_channels = vec![8, 6];
            config.cnn_lstm.lstm_hidden = 5;
            config.cnn_lstm.lstm_layers = 2;
            config.cnn_lstm.bidirectional = true;
            config.cnn_lstm.head = head;
            let spec = ModelSpec::of_run(&config, 13, 3, 2);
            // torch.nn: conv 96 + 162, LSTM 520 + 680 (two directions, two layers), head 22;
            // attention 10 × 10 + 10, 10 × 10 and a query of 10; the head reads 10 more.
            assert_eq!(spec.n_params(), 1480 + extra);
            let ad = crate::device::cpu().autodiff();
            ad.seed(3);
            let mut model = init(&spec, &ad);
            // Every input of the head counts (the attention head's start at zero on the
            // weighted sum).
            let [inputs, outputs] = model.head.weight.dims();
            let weight = Tensor::random([inputs, outputs], Distribution::Default, &ad);
            model.head.weight = Param::from_tensor(weight);
            let rows = 9;
            let x: Vec<f32> = (0..rows * 3 * 13)
                .map(|i| ((i * 37 % 29) as f32 / 7.0 - 2.0) * (1.0 + (i % 3) as f32))
                .collect();
            let tensor =
                |device| Tensor::<2>::from_data(TensorData::new(x.clone(), [rows, 39]), device);
            // A training pass moves the running statistics away from 0 and 1.
            let _ = model.forward_masked(tensor(&ad), None);
            let valid = model.valid();
            let device = crate::device::cpu();
            let burn = values(valid.forward_masked(tensor(&device), None)).unwrap();
            let cpu = CpuCnnLstm::of(&valid).unwrap().unwrap();
            let ours = cpu.outputs(&x, &mut [Vec::new(), Vec::new()]);
            assert_eq!(ours.len(), rows * 2);
            for (a, b) in ours.iter().zip(&burn) {
                assert!((a - b).abs() < 1e-4, "{head:?}: {ours:?}\nvs\n{burn:?}");
            }
        }
    }

    /// The attention head's weights: one per step, positive, summing to 1 in every window;
    /// each step named by the flows its convolution blocks read (kernel 3, pool 2, two
    /// blocks: 10 flows, 4 apart). The other heads have none.
    #[test]
    fn attention_weights_sum_to_one_over_the_steps_and_name_their_flows() {
        let _rng = crate::device::TEST_RNG.lock();
        let mut config = ModelConfig {
            kind: ModelKind::CnnLstm,
            ..Default::default()
        };
        config.cnn_lstm.conv_channels = vec![8, 8];
        config.cnn_lstm.lstm_hidden = 6;
        config.cnn_lstm.head = Head::Attention;
        let spec = ModelSpec::of_run(&config, 32, 4, 1);
        let device = crate::device::cpu();
        device.seed(5);
        let model = init(&spec, &device);
        let rows = 7;
        let x: Vec<f32> = (0..rows * 4 * 32)
            .map(|i| (i * 53 % 31) as f32 / 5.0 - 3.0)
            .collect();
        let tensor = Tensor::<2>::from_data(TensorData::new(x, [rows, 128]), &device);
        let weights = values(model.step_weights(tensor).unwrap()).unwrap();
        assert_eq!(weights.len(), rows * 6);
        for w in weights.chunks_exact(6) {
            let total: f32 = w.iter().sum();
            assert!((total - 1.0).abs() < 1e-6, "{w:?}");
            assert!(w.iter().all(|&v| v > 0.0));
        }
        let flows: Vec<_> = (0..6).map(|u| 4 * u..4 * u + 10).collect();
        assert_eq!(model.step_flows(), flows);
        config.cnn_lstm.head = Head::Mean;
        let mean = init(&ModelSpec::of_run(&config, 32, 4, 1), &device);
        assert!(
            mean.step_weights(Tensor::zeros([1, 128], &device))
                .is_none()
        );
    }
}
