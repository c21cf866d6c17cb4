//! The autoencoder: an MLP trained to reconstruct the `training.fit_on` rows (the encoder's
//! widths, then the mirrored decoder's); a row's score is its mean squared reconstruction
//! error, and its features' errors explain it.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::family::{Facts, NetworkFamily, Section};
use super::network::Activation;
use crate::bail_input;

/// `autoencoder`: unsupervised, trained by the gradient trainer.
pub struct AutoencoderFamily;

impl NetworkFamily for AutoencoderFamily {
    type Section = AutoencoderConfig;
    const FACTS: Facts = Facts {
        classifier: false,
        sequence: false,
        unit_scores: false,
    };
}

/// `model.autoencoder`: the encoder's widths (the decoder mirrors them), as the reference's
/// d-64-32-16-8-16-32-64-d network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoencoderConfig {
    pub hidden_dims: Vec<usize>,
    pub activation: Activation,
}

impl Default for AutoencoderConfig {
    fn default() -> Self {
        Self {
            hidden_dims: vec![64, 32, 16, 8],
            activation: Activation::Relu,
        }
    }
}

impl Section for AutoencoderConfig {
    fn check(&self) -> Result<()> {
        if self.hidden_dims.is_empty() || self.hidden_dims.contains(&0) {
            bail_input!(
                "model.autoencoder.hidden_dims: expected a non-empty list of positive sizes"
            );
        }
        Ok(())
    }
}
