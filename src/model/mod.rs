//! The detector: an MLP that maps a feature row to one anomaly logit.

use burn::module::{Module, ParamId};
use burn::nn::activation::{Activation as Act, ActivationConfig};
use burn::nn::{Dropout, DropoutConfig, LeakyReluConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::{Activation, ModelConfig};

/// Everything needed to rebuild the network before loading its weights; stored in checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub input_dim: usize,
    pub hidden_dims: Vec<usize>,
    pub dropout: f64,
    pub activation: Activation,
}

impl ModelSpec {
    pub fn new(input_dim: usize, cfg: &ModelConfig) -> Self {
        Self {
            input_dim,
            hidden_dims: cfg.hidden_dims.clone(),
            dropout: cfg.dropout,
            activation: cfg.activation,
        }
    }

    /// A freshly initialised network; its weights come from the device's RNG (seed it first).
    pub fn init(&self, device: &Device) -> Mlp {
        let mut ids = 0..;
        let mut hidden = Vec::new();
        let mut width = self.input_dim;
        for &h in &self.hidden_dims {
            hidden.push(numbered(LinearConfig::new(width, h).init(device), &mut ids));
            width = h;
        }
        let activation = match self.activation {
            Activation::Relu => ActivationConfig::Relu,
            Activation::Gelu => ActivationConfig::Gelu,
            Activation::LeakyRelu => ActivationConfig::LeakyRelu(LeakyReluConfig::new()),
            Activation::Tanh => ActivationConfig::Tanh,
        };
        Mlp {
            hidden,
            output: numbered(LinearConfig::new(width, 1).init(device), &mut ids),
            activation: activation.init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }

    pub fn n_params(&self) -> usize {
        let mut width = self.input_dim;
        let mut n = 0;
        for &h in self.hidden_dims.iter().chain(std::iter::once(&1)) {
            n += width * h + h;
            width = h;
        }
        n
    }
}

/// burn draws parameter ids at random, and they are saved with the weights and key the
/// optimizer state; numbering them makes the same seed give byte-identical checkpoints.
fn numbered(mut layer: Linear, ids: &mut std::ops::RangeFrom<u64>) -> Linear {
    layer.weight.id = ParamId::from(ids.next().expect("unbounded"));
    if let Some(bias) = layer.bias.as_mut() {
        bias.id = ParamId::from(ids.next().expect("unbounded"));
    }
    layer
}

/// Linear → activation → dropout for each hidden layer, then a linear layer to one logit.
#[derive(Module, Debug)]
pub struct Mlp {
    hidden: Vec<Linear>,
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
    /// The weights with PyTorch's names and layout (`layers.K.weight` as [out, in]; burn keeps
    /// [in, out]), so `torch.nn.Sequential` state dicts and other tools can load them.
    pub fn named_weights(&self) -> anyhow::Result<Vec<NamedTensor>> {
        let mut out = Vec::new();
        for (k, layer) in self
            .hidden
            .iter()
            .chain(std::iter::once(&self.output))
            .enumerate()
        {
            let w = layer.weight.val();
            let [d_in, d_out] = w.dims();
            let values = w
                .transpose()
                .try_to_vec_as::<f32>()
                .map_err(|e| anyhow::anyhow!("reading weights: {e:?}"))?;
            out.push(NamedTensor {
                name: format!("layers.{k}.weight"),
                shape: vec![d_out, d_in],
                values,
            });
            if let Some(b) = &layer.bias {
                let values = b
                    .val()
                    .try_to_vec_as::<f32>()
                    .map_err(|e| anyhow::anyhow!("reading weights: {e:?}"))?;
                out.push(NamedTensor {
                    name: format!("layers.{k}.bias"),
                    shape: vec![d_out],
                    values,
                });
            }
        }
        Ok(out)
    }

    /// `[batch, features]` → `[batch, 1]` logits.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let mut x = x;
        for layer in &self.hidden {
            x = self
                .dropout
                .forward(self.activation.forward(layer.forward(x)));
        }
        self.output.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_count_matches_the_reference_architecture() {
        // 17 → 128 → 64 → 32 → 1, as the reference pipeline's model: 12,673 parameters.
        let spec = ModelSpec::new(17, &ModelConfig::default());
        assert_eq!(spec.n_params(), 12_673);
        let device = crate::device::cpu();
        assert_eq!(spec.init(&device).num_params(), 12_673);
    }
}
