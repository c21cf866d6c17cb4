//! Dropout masks drawn on the host for a training pass on the CPU.
//!
//! burn's `Dropout` asks the backend for a Bernoulli tensor, which draws it element by element
//! through a generic sampler: for the default MLP that was half of every training step. These
//! masks are the same draws (the CPU backend's ChaCha12 `StdRng`, seeded the same way, one
//! Bernoulli per element, layer after layer), so a seed gives the same run as before, but they
//! are drawn a batch ahead on a helper thread while the other core computes, and each layer
//! costs one multiply instead of two. On a GPU burn's own on-device RNG stays: a host mask
//! would be one upload per layer and step.

use rand_burn::rngs::StdRng;
use rand_burn::{RngExt, SeedableRng};

/// The stream of masks of one pass: each is `rows × width` values, 0 for a dropped unit and
/// `1 / (1 − p)` for a kept one (burn's scaling folded into the mask).
pub struct HostMasks {
    rng: StdRng,
    /// rand's Bernoulli test: a unit is kept when the next u64 is below `keep · 2⁶⁴`.
    keep_below: u64,
    scale: f32,
    words: Vec<u64>,
}

impl HostMasks {
    /// `prob` is the dropout probability, in (0, 1) (validated with the config).
    pub fn new(seed: u64, prob: f64) -> Self {
        let keep = 1.0 - prob;
        Self {
            rng: StdRng::seed_from_u64(seed),
            keep_below: (keep * 2f64.powi(64)) as u64,
            scale: (1.0 / keep) as f32,
            words: Vec::new(),
        }
    }

    /// The next `len` mask values, row-major. The words are drawn in bulk: the same stream as
    /// one `next_u64` per element, in half the time.
    pub fn draw(&mut self, len: usize) -> Vec<f32> {
        self.words.resize(len, 0);
        self.rng.fill(&mut self.words[..]);
        self.words
            .iter()
            .map(|&w| if w < self.keep_below { self.scale } else { 0.0 })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution as BurnDistribution, Tensor};

    /// The masks must be the draws burn's CPU backend makes after `seed`, or fixed-seed runs
    /// would change with this speed-up.
    #[test]
    fn masks_are_the_draws_burns_cpu_backend_makes() {
        let _rng = crate::device::TEST_RNG.lock();
        let device = crate::device::cpu();
        device.seed(42);
        let burn_masks: Vec<Vec<f32>> = [(5, 128), (7, 33), (3, 1001)]
            .into_iter()
            .map(|(rows, width)| {
                Tensor::<2>::zeros([rows, width], &device)
                    .random_like(BurnDistribution::Bernoulli(0.7))
                    .try_to_vec_as::<f32>()
                    .unwrap()
            })
            .collect();
        let mut ours = HostMasks::new(42, 0.3);
        let scale = (1.0 / 0.7f64) as f32;
        for (theirs, shape) in burn_masks.iter().zip([640, 231, 3003]) {
            let mine = ours.draw(shape);
            let expected: Vec<f32> = theirs.iter().map(|&b| b * scale).collect();
            assert_eq!(mine, expected);
        }
        let kept = burn_masks.concat().iter().filter(|&&b| b == 1.0).count();
        assert!(
            (2600..=3000).contains(&kept),
            "{kept} of 3874 kept at p = 0.7"
        );
    }
}
