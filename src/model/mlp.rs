//! The MLP families: `mlp` (linear → activation → dropout per hidden layer) and `resmlp`
//! (batch norm and a skip connection per layer), both reading `model.hidden_dims`, `dropout`
//! and `activation`; the autoencoder is an MLP too (`autoencoder.rs`).

use burn::module::Module;
use burn::nn::activation::{Activation as Act, ActivationConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, LeakyReluConfig, Linear, LinearConfig,
};
use burn::tensor::{Device, Tensor};

use super::ModelKind;
use super::family::{Facts, NetworkFamily};
use super::network::{
    Activation, Materialize, ModelSpec, NamedTensor, Net, batch_norm, linear_weights, norm_weights,
    numbered, numbered_norm,
};

/// `mlp`: a binary or multiclass classifier.
pub struct MlpFamily;

impl NetworkFamily for MlpFamily {
    type Section = ();
    const FACTS: Facts = Facts {
        classifier: true,
        sequence: false,
        unit_scores: true,
    };
}

/// `resmlp`: the MLP with batch norm and skip connections.
pub struct ResmlpFamily;

impl NetworkFamily for ResmlpFamily {
    type Section = ();
    const FACTS: Facts = Facts {
        classifier: true,
        sequence: false,
        unit_scores: true,
    };
}

impl ModelSpec {
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
}

/// Per hidden layer: linear → activation → dropout; `resmlp` puts batch norm before the
/// activation and adds the layer's input back (through a projection when the width changes).
/// Then a linear layer to the logits.
#[derive(Module, Debug)]
pub struct Mlp {
    pub(super) hidden: Vec<Linear>,
    /// resmlp only (empty for mlp).
    pub(super) norms: Vec<BatchNorm>,
    pub(super) skips: Vec<Option<Linear>>,
    pub(super) output: Linear,
    pub(super) activation: Act,
    pub(super) dropout: Dropout,
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

    fn cpu(&self) -> anyhow::Result<Option<Box<dyn super::cpu::CpuNet>>> {
        Ok(super::cpu::CpuMlp::of(self)?.map(|m| Box::new(m) as Box<dyn super::cpu::CpuNet>))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;

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
