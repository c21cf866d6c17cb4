//! The sequence classifier: 1-D convolution blocks over a window's time axis, dropout, an
//! LSTM, and a linear head on its last hidden state (the CNN+LSTM of the project it replaces,
//! every size configurable).
//!
//! The layers run time-major (`[batch, time, channels]`) as matrix products, the fastest path
//! burn's CPU backend has: a convolution is one product of each step's `kernel_size`
//! neighbouring flows (side by side) with the weights, batch norm normalises each channel over
//! every batch row and step (as `BatchNorm1d` does), and max-pooling takes the largest of each
//! `pool` steps. The LSTM is written here rather than taken from burn-nn: burn's runs eight
//! small products per step (one per gate and input), where PyTorch's runs the input projection
//! of every step as one product and one hidden product per step; this does the same.

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid, tanh};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{
    Materialize, ModelSpec, NamedTensor, Net, linear_weights, norm_weights, numbered,
    numbered_norm, values,
};
use crate::config::CnnLstmConfig;

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
    /// `[batch, steps, d_in]` → the hidden states `[batch, steps, hidden]` (in time order).
    fn forward(&self, x: Tensor<3>, reverse: bool) -> Tensor<3> {
        let [batch, steps, d_in] = x.dims();
        let h_size = self.hidden.weight.dims()[0];
        let projected = self
            .input
            .forward(x.reshape([batch * steps, d_in]))
            .reshape([batch, steps, 4 * h_size]);
        let device = projected.device();
        let mut h = Tensor::<2>::zeros([batch, h_size], &device);
        let mut c = Tensor::<2>::zeros([batch, h_size], &device);
        let mut out = vec![None; steps];
        let order: Vec<usize> = if reverse {
            (0..steps).rev().collect()
        } else {
            (0..steps).collect()
        };
        for t in order {
            let step = projected
                .clone()
                .narrow(1, t, 1)
                .reshape([batch, 4 * h_size]);
            let gates = (step + self.hidden.forward(h)).chunk(4, 1);
            let [i, f, g, o] = <[Tensor<2>; 4]>::try_from(gates).expect("four gates");
            c = sigmoid(f) * c + sigmoid(i) * tanh(g);
            h = sigmoid(o) * tanh(c.clone());
            out[t] = Some(h.clone());
        }
        let out: Vec<Tensor<2>> = out.into_iter().map(|h| h.expect("every step")).collect();
        Tensor::stack(out, 1)
    }
}

/// Conv blocks → dropout → LSTM layers → linear head on the last step's hidden state.
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
    head: Linear,
    channels: usize,
    length: usize,
    directions: usize,
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
        head: numbered(
            LinearConfig::new(width, spec.outputs).init(device),
            &mut ids,
        ),
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
        n + width * spec.outputs + spec.outputs
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
        let h = relu(norm.forward(conv.forward(stacked)));
        let width = h.dims()[1];
        let pooled = out / self.pool;
        // The pool's steps side by side, then their elementwise maximum (whose gradient is a
        // mask: cheaper than a max over an axis, whose gradient scatters).
        let h = h
            .reshape([batch, out, width])
            .narrow(1, 0, pooled * self.pool)
            .reshape([batch, pooled, self.pool * width]);
        (1..self.pool)
            .map(|p| h.clone().narrow(2, p * width, width))
            .fold(h.clone().narrow(2, 0, width), Tensor::max_pair)
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
        let batch = x.dims()[0];
        // Windows come channel by channel; the layers read them step by step.
        let mut h = x
            .reshape([batch, self.channels, self.length])
            .swap_dims(1, 2);
        for (conv, norm) in self.convs.iter().zip(&self.norms) {
            h = self.block(h, conv, norm);
        }
        let (channels, steps) = self.conv_shape();
        let mut seq = match masks.and_then(|m| m.into_iter().next()) {
            Some(mask) => h * mask.reshape([batch, steps, channels]),
            None => self.dropout.forward(h),
        };
        let mut last = None;
        for layer in self.lstm.chunks(self.directions) {
            let outs: Vec<Tensor<3>> = layer
                .iter()
                .enumerate()
                .map(|(dir, cell)| cell.forward(seq.clone(), dir == 1))
                .collect();
            // The last hidden state of each direction: the forward pass's at the last step,
            // the reverse pass's at the first.
            let finals: Vec<Tensor<2>> = outs
                .iter()
                .enumerate()
                .map(|(dir, o)| {
                    let t = if dir == 1 { 0 } else { steps - 1 };
                    let width = o.dims()[2];
                    o.clone().narrow(1, t, 1).reshape([batch, width])
                })
                .collect();
            last = Some(Tensor::cat(finals, 1));
            seq = Tensor::cat(outs, 2);
        }
        self.head.forward(last.expect("at least one LSTM layer"))
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
}
