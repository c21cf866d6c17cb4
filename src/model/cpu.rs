//! Batch inference on the CPU outside burn's per-op tensors: the plain MLP, and the CNN+LSTM
//! (see [`CpuCnnLstm`]).
//!
//! burn runs a layer as separate ops: the product into a fresh buffer, the bias add, the
//! activation, each a pass over memory and an allocation. Here a batch goes through every
//! layer in two reused buffers: the product by the `gemm` crate (the one burn's flex backend
//! calls, with the same shapes and arguments), then the bias add and the activation (flex's own
//! formula) in one pass over the result; burn's sigmoid/softmax finish. So the
//! probabilities are flex's, bit for bit (a test checks it), about 15% sooner. Batch norm,
//! skips and smooth activations go through burn.

use anyhow::Result;
use burn::nn::Linear;
use burn::nn::activation::Activation as Act;

use super::mlp::Mlp;
use super::network::values;

/// A network's CPU inference path: the last layer's outputs for a batch of rows.
pub trait CpuNet: Send + Sync {
    /// The outputs for the rows in `x` (row-major), before any sigmoid or softmax. `buffers`
    /// are reused from batch to batch.
    fn outputs(&self, x: &[f32], buffers: &mut [Vec<f32>; 2]) -> Vec<f32>;
}

/// The MLP's weights as plain row-major arrays.
pub struct CpuMlp {
    layers: Vec<Dense>,
    /// `None`: ReLU; `Some(s)`: leaky ReLU with slope `s`.
    leak: Option<f32>,
}

pub(crate) struct Dense {
    /// `[inputs, outputs]`, as burn stores it.
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl CpuMlp {
    /// The model in this form, or `None` for what only burn computes (see the module doc).
    pub fn of(model: &Mlp) -> Result<Option<Self>> {
        let leak = match &model.activation {
            Act::Relu(_) => None,
            Act::LeakyRelu(l) => Some(l.negative_slope as f32),
            _ => return Ok(None),
        };
        if !cfg!(feature = "flex") || !model.norms.is_empty() || !model.skips.is_empty() {
            return Ok(None);
        }
        let mut layers = Vec::new();
        for layer in model.hidden.iter().chain([&model.output]) {
            match Dense::of(layer)? {
                Some(dense) => layers.push(dense),
                None => return Ok(None),
            }
        }
        Ok(Some(Self { layers, leak }))
    }
}

impl CpuNet for CpuMlp {
    fn outputs(&self, x: &[f32], buffers: &mut [Vec<f32>; 2]) -> Vec<f32> {
        let rows = x.len() / self.layers[0].inputs;
        let [input, output] = buffers;
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let src: &[f32] = if i == 0 { x } else { input };
            match (i == last, self.leak) {
                (true, _) => layer.forward(src, rows, output, |v| v),
                // flex's ReLU: NaN passes, as in PyTorch.
                (false, None) => layer.forward(src, rows, output, |v| {
                    if v.is_nan() || v > 0.0 { v } else { 0.0 }
                }),
                (false, Some(s)) => {
                    layer.forward(src, rows, output, |v| if v >= 0.0 { v } else { s * v })
                }
            }
            std::mem::swap(input, output);
        }
        input.clone()
    }
}

impl Dense {
    /// A linear layer with a bias (`None` without one).
    pub(crate) fn of(layer: &Linear) -> Result<Option<Dense>> {
        match layer.bias {
            Some(_) => Self::zero_bias_if_none(layer).map(Some),
            None => Ok(None),
        }
    }

    /// A linear layer, with a bias of zeros where it has none.
    pub(crate) fn zero_bias_if_none(layer: &Linear) -> Result<Dense> {
        let [inputs, outputs] = layer.weight.dims();
        let bias = match &layer.bias {
            Some(b) => values(b.val())?,
            None => vec![0.0; outputs],
        };
        Ok(Dense {
            weight: values(layer.weight.val())?,
            bias,
            inputs,
            outputs,
        })
    }

    /// Folds an inference-mode batch norm that follows the layer into its weights and bias:
    /// (x·W + b − mean) · γ/√(var + ε) + β.
    pub(crate) fn fold_norm(&mut self, norm: &burn::nn::BatchNorm) -> Result<()> {
        let gamma = values(norm.gamma.val())?;
        let beta = values(norm.beta.val())?;
        let mean = values(norm.running_mean.value())?;
        let var = values(norm.running_var.value())?;
        let scale: Vec<f32> = (0..self.outputs)
            .map(|o| gamma[o] / (var[o] + norm.epsilon as f32).sqrt())
            .collect();
        for row in self.weight.chunks_exact_mut(self.outputs) {
            row.iter_mut().zip(&scale).for_each(|(w, s)| *w *= s);
        }
        for o in 0..self.outputs {
            self.bias[o] = (self.bias[o] - mean[o]) * scale[o] + beta[o];
        }
        Ok(())
    }

    /// Values per output row.
    pub(crate) fn outputs(&self) -> usize {
        self.outputs
    }

    /// The layer without its bias (an LSTM's hidden product, whose bias went to the input's).
    pub(crate) fn without_bias(mut self) -> Dense {
        self.bias.iter_mut().for_each(|b| *b = 0.0);
        self
    }

    /// Adds another bias to this layer's (an LSTM's two biases act as one).
    pub(crate) fn add_bias(&mut self, other: &Linear) -> Result<()> {
        if let Some(b) = &other.bias {
            let b = values(b.val())?;
            self.bias.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        }
        Ok(())
    }

    /// `out` = activation(`input` · weight + bias) for `rows` rows: the product as flex
    /// computes it, then the bias add and the activation in one pass.
    pub(crate) fn forward(
        &self,
        input: &[f32],
        rows: usize,
        out: &mut Vec<f32>,
        act: impl Fn(f32) -> f32,
    ) {
        assert_eq!(input.len(), rows * self.inputs, "a batch of whole rows");
        out.resize(rows * self.outputs, 0.0);
        // SAFETY: `out` holds rows × outputs values, `input` rows × inputs and `weight`
        // inputs × outputs, each row-major, which is what the dimensions and strides say.
        unsafe {
            gemm::gemm(
                rows,
                self.outputs,
                self.inputs,
                out.as_mut_ptr(),
                1,
                self.outputs as isize,
                false,
                input.as_ptr(),
                1,
                self.inputs as isize,
                self.weight.as_ptr(),
                1,
                self.outputs as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for row in out.chunks_exact_mut(self.outputs) {
            for (v, b) in row.iter_mut().zip(&self.bias) {
                *v = act(*v + b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Activation, ModelConfig, ModelKind};
    use crate::model::{ModelSpec, probabilities};
    use burn::module::Module;
    use burn::tensor::{Tensor, TensorData};

    /// [`crate::model::Network`] takes this path for the plain MLP; its probabilities must be the ones
    /// burn's forward pass gives, bit for bit, across batch boundaries and NaN inputs.
    #[test]
    fn probabilities_are_burns_bit_for_bit() {
        let _rng = crate::device::TEST_RNG.lock();
        let device = crate::device::cpu();
        let (rows, d) = (4096 + 700, 17);
        let mut x: Vec<f32> = (0..rows * d)
            .map(|i| ((i * 7919) % 1013) as f32 / 97.0 - 5.0)
            .collect();
        x[3] = f32::NAN;
        for (activation, outputs) in [
            (Activation::Relu, 1),
            (Activation::Relu, 4),
            (Activation::LeakyRelu, 1),
        ] {
            // The default widths: burn splits these products across threads, this path does not.
            let cfg = ModelConfig {
                activation,
                ..Default::default()
            };
            device.seed(3);
            let model = ModelSpec::new(d, outputs, &cfg).init(&device);
            assert!(CpuMlp::of(&model).unwrap().is_some());
            let ours = crate::model::Network::new(&model, &device)
                .unwrap()
                .probabilities(&x)
                .unwrap();
            let burns: Vec<f32> = x
                .chunks(4096 * d)
                .flat_map(|chunk| {
                    let t = Tensor::from_data(
                        TensorData::new(chunk.to_vec(), [chunk.len() / d, d]),
                        &device,
                    );
                    probabilities(model.valid().forward(t)).unwrap()
                })
                .collect();
            assert_eq!(ours.len(), rows * outputs);
            let same = ours
                .iter()
                .zip(&burns)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{activation:?}, {outputs} outputs");
            assert!(ours[0].is_nan() && !ours[outputs].is_nan());
        }
    }

    #[test]
    fn batch_norm_skips_and_smooth_activations_stay_with_burn() {
        let _rng = crate::device::TEST_RNG.lock();
        let device = crate::device::cpu();
        for cfg in [
            ModelConfig {
                kind: ModelKind::Resmlp,
                ..Default::default()
            },
            ModelConfig {
                activation: Activation::Tanh,
                ..Default::default()
            },
        ] {
            let model = ModelSpec::new(5, 1, &cfg).init(&device);
            assert!(CpuMlp::of(&model).unwrap().is_none());
        }
    }
}
