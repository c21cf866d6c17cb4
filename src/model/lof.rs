//! Local outlier factor (Breunig et al. 2000) in novelty mode, as scikit-learn's
//! `LocalOutlierFactor(novelty=True)`: fitted on training rows, it scores new rows by how much
//! sparser their neighbourhood is than their neighbours' own. Exact k nearest neighbours over
//! at most `max_fit_rows` training rows (a seeded subsample above that).
//!
//! Neighbours come from `neighbors.rs` (exact, by blocked matrix products). Written here: LOF
//! itself is a few lines over the neighbours.

use anyhow::Result;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::detector::{Detector, Output};
use super::family::{Facts, Family, Fit, FitData, Fitted, Section};
use super::neighbors::{gather, nearest, subsample};
use crate::bail_input;

/// `model.lof`: scikit-learn's `LocalOutlierFactor(novelty=True)` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LofConfig {
    pub n_neighbors: usize,
    /// Exact neighbours are searched among at most this many training rows (a seeded
    /// subsample above it): scoring costs this many distances per row.
    pub max_fit_rows: usize,
}

impl Default for LofConfig {
    fn default() -> Self {
        Self {
            n_neighbors: 20,
            max_fit_rows: 20_000,
        }
    }
}

impl Section for LofConfig {
    fn check(&self) -> Result<()> {
        if self.n_neighbors == 0 || self.max_fit_rows < 2 {
            bail_input!(
                "model.lof: expected n_neighbors >= 1 and max_fit_rows >= 2, got {} and {}",
                self.n_neighbors,
                self.max_fit_rows
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lof {
    pub n_features: usize,
    pub n_neighbors: usize,
    /// The fitted rows, row-major.
    pub rows: Vec<f32>,
    /// Each fitted row's distance to its k-th neighbour.
    pub k_distance: Vec<f32>,
    /// Each fitted row's local reachability density.
    pub lrd: Vec<f32>,
}

impl Family for Lof {
    type Section = LofConfig;
    type State = Lof;
    const FACTS: Facts = Facts {
        classifier: false,
        sequence: false,
        unit_scores: false,
    };
    const FIT: Fit<LofConfig, Lof> = Fit::OnePass(Lof::one_pass);

    fn load(state: &Self, _: &Device) -> Result<Box<dyn Detector>> {
        Ok(Box::new(state.clone()))
    }
}

impl Lof {
    fn one_pass(cfg: &LofConfig, data: &FitData) -> Result<Fitted<Self>> {
        let l = Lof::fit(data.x, data.d, data.rows, cfg, data.seed);
        let said = format!(
            "{} neighbours among {} rows",
            l.n_neighbors,
            l.k_distance.len()
        );
        Ok(Fitted::new(l, said))
    }

    /// Fits on `rows` of `x` (row-major, `d` features per row), subsampled to at most
    /// `max_fit_rows` with `seed`.
    pub fn fit(x: &[f32], d: usize, rows: &[usize], cfg: &LofConfig, seed: u64) -> Lof {
        let kept = subsample(rows, cfg.max_fit_rows, seed);
        let fit = gather(x, d, &kept);
        let k = cfg.n_neighbors.min(kept.len().saturating_sub(1)).max(1);
        let neighbours = nearest(&fit, &fit, d, k, true);
        let k_distance: Vec<f32> = neighbours
            .iter()
            .map(|nb| nb.last().map_or(0.0, |&(_, dist)| dist))
            .collect();
        let lrd = neighbours
            .iter()
            .map(|nb| density(nb, &k_distance))
            .collect();
        Lof {
            n_features: d,
            n_neighbors: k,
            rows: fit,
            k_distance,
            lrd,
        }
    }

    /// Each row's local outlier factor against the fitted rows (about 1 inside a cluster,
    /// larger the more isolated).
    pub fn scores(&self, x: &[f32]) -> Vec<f32> {
        nearest(&self.rows, x, self.n_features, self.n_neighbors, false)
            .iter()
            .map(|nb| {
                let own = density(nb, &self.k_distance);
                let around: f64 = nb.iter().map(|&(j, _)| self.lrd[j as usize] as f64).sum();
                (around / nb.len().max(1) as f64 / own as f64) as f32
            })
            .collect()
    }
}

/// The local reachability density of a row with neighbours `nb`: the inverse of the mean
/// reachability distance max(k-distance(o), d(p, o)) (scikit-learn adds 1e-10).
fn density(nb: &[(u32, f32)], k_distance: &[f32]) -> f32 {
    let reach: f64 = nb
        .iter()
        .map(|&(j, dist)| dist.max(k_distance[j as usize]) as f64)
        .sum();
    (1.0 / (reach / nb.len().max(1) as f64 + 1e-10)) as f32
}

impl Detector for Lof {
    fn score(&self, x: &[f32]) -> Result<Output> {
        Ok(Output::Scores(self.scores(x)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::on_threads;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn cfg(n_neighbors: usize) -> LofConfig {
        LofConfig {
            n_neighbors,
            max_fit_rows: 10_000,
        }
    }

    #[test]
    fn lof_matches_the_definition_on_a_line() {
        // k = 2 on 0, 1, 3, 6. k-distances: 0 → {1 (1), 3 (3)}: 3; 1 → {0 (1), 3 (2)}: 2;
        // 3 → {1 (2), 6 (3)}: 3; 6 → {3 (3), 1 (5)}: 5.
        let fit: Vec<f32> = vec![0.0, 1.0, 3.0, 6.0];
        let lof = Lof::fit(&fit, 1, &[0, 1, 2, 3], &cfg(2), 1);
        assert_eq!(lof.k_distance, [3.0, 2.0, 3.0, 5.0]);
        // lrd(0) = 1 / mean(max(2, 1), max(3, 3)) = 1 / 2.5.
        assert!((lof.lrd[0] - 0.4).abs() < 1e-6);
        // A new point at 10: neighbours 6 (4) and 3 (7); reaches max(5, 4) = 5 and
        // max(3, 7) = 7, mean 6, so lrd = 1/6 and LOF = mean(lrd(6), lrd(3)) · 6.
        let want = (lof.lrd[3] + lof.lrd[2]) as f64 / 2.0 * 6.0;
        let got = lof.scores(&[10.0])[0] as f64;
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }

    #[test]
    fn the_far_point_scores_highest_on_any_number_of_threads() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut x: Vec<f32> = (0..600 * 4).map(|_| rng.random_range(-1.0..1.0)).collect();
        x[300 * 4..301 * 4].copy_from_slice(&[6.0, 6.0, -6.0, 6.0]);
        let rows: Vec<usize> = (0..600).filter(|&r| r != 300).collect();
        let run = || {
            let lof = Lof::fit(&x, 4, &rows, &cfg(20), 3);
            lof.scores(&x)
        };
        let (one, two) = (on_threads(1, run), on_threads(2, run));
        assert_eq!(one, two);
        let top = (0..600).max_by(|&a, &b| one[a].total_cmp(&one[b])).unwrap();
        assert_eq!(top, 300);
        assert!(one[300] > 3.0, "{}", one[300]);
    }
}
