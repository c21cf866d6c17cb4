//! Local outlier factor (Breunig et al. 2000) in novelty mode, as scikit-learn's
//! `LocalOutlierFactor(novelty=True)`: fitted on training rows, it scores new rows by how much
//! sparser their neighbourhood is than their neighbours' own. Exact k nearest neighbours over
//! at most `max_fit_rows` training rows (a seeded subsample above that).
//!
//! Distances come from one matrix product per block of 256 query rows (‖q‖² + ‖f‖² − 2 q·f,
//! by the `gemm` crate burn's CPU backend uses, one thread per block), so the neighbours of a
//! row do not depend on the number of threads. Written here: the Rust k-NN crates build trees
//! that do not help at 100+ dimensions, and LOF itself is a few lines over the neighbours.

use anyhow::Result;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::detector::{Detector, Output};
use crate::config::LofConfig;

const BLOCK: usize = 256;

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

/// A row's k nearest fitted rows: (index, distance), nearest first.
type Neighbours = Vec<(u32, f32)>;

/// The `k` nearest rows of `fit` to each row of `queries`; with `exclude_self`, `queries` is
/// `fit` and a row is not its own neighbour.
fn nearest(
    fit: &[f32],
    queries: &[f32],
    d: usize,
    k: usize,
    exclude_self: bool,
) -> Vec<Neighbours> {
    let n = fit.len() / d;
    let norm = |r: &[f32]| r.iter().map(|v| v * v).sum::<f32>();
    let fit_norms: Vec<f32> = fit.chunks_exact(d).map(norm).collect();
    let blocks: Vec<Vec<Neighbours>> = queries
        .par_chunks(d * BLOCK)
        .enumerate()
        .map_init(Vec::new, |dots: &mut Vec<f32>, (b, block)| {
            let q = block.len() / d;
            dots.clear();
            dots.resize(q * n, 0.0);
            // SAFETY: `dots` holds q × n values (row-major), `block` q × d (row-major) and
            // `fit` n × d (row-major), read as the d × n transpose through its strides.
            unsafe {
                gemm::gemm(
                    q,
                    n,
                    d,
                    dots.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    block.as_ptr(),
                    1,
                    d as isize,
                    fit.as_ptr(),
                    d as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            (0..q)
                .map(|i| {
                    let row = &block[i * d..(i + 1) * d];
                    let skip = exclude_self.then_some(b * BLOCK + i);
                    let mut nb =
                        k_smallest(&dots[i * n..(i + 1) * n], norm(row), &fit_norms, k, skip);
                    // The product form loses precision to cancellation (as scikit-learn's
                    // distances upcast to f64 for): the kept neighbours' distances are
                    // recomputed exactly.
                    for (j, dist) in nb.iter_mut() {
                        let other = &fit[*j as usize * d..(*j as usize + 1) * d];
                        *dist = exact_distance(row, other);
                    }
                    nb.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                    nb
                })
                .collect()
        })
        .collect();
    blocks.concat()
}

fn exact_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (*x - *y) as f64;
            d * d
        })
        .sum::<f64>()
        .sqrt() as f32
}

/// The `k` fitted rows nearest to a query, from its dot products with them (`dots`) and the
/// squared norms: kept sorted by (squared distance, index) as the candidates stream past, so
/// no row needs more than k slots.
fn k_smallest(
    dots: &[f32],
    query_norm: f32,
    fit_norms: &[f32],
    k: usize,
    skip: Option<usize>,
) -> Neighbours {
    let mut best: Neighbours = Vec::with_capacity(k + 1);
    for (j, (&dot, &fit_norm)) in dots.iter().zip(fit_norms).enumerate() {
        if Some(j) == skip {
            continue;
        }
        let squared = (query_norm + fit_norm - 2.0 * dot).max(0.0);
        if best.len() == k && squared >= best[k - 1].1 {
            continue;
        }
        // After equal distances: the earlier row stays ahead.
        let at = best.partition_point(|e| e.1 <= squared);
        best.insert(at, (j as u32, squared));
        best.truncate(k);
    }
    best
}

impl Lof {
    /// Fits on `rows` of `x` (row-major, `d` features per row), subsampled to at most
    /// `max_fit_rows` with `seed`.
    pub fn fit(x: &[f32], d: usize, rows: &[usize], cfg: &LofConfig, seed: u64) -> Lof {
        let mut kept: Vec<usize> = if rows.len() > cfg.max_fit_rows {
            let mut rng = StdRng::seed_from_u64(seed);
            sample(&mut rng, rows.len(), cfg.max_fit_rows)
                .into_iter()
                .map(|i| rows[i])
                .collect()
        } else {
            rows.to_vec()
        };
        kept.sort_unstable();
        let fit: Vec<f32> = kept
            .iter()
            .flat_map(|&r| x[r * d..(r + 1) * d].iter().copied())
            .collect();
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
    use rand::Rng;

    fn cfg(n_neighbors: usize) -> LofConfig {
        LofConfig {
            n_neighbors,
            max_fit_rows: 10_000,
        }
    }

    #[test]
    fn neighbours_are_exact_and_skip_the_row_itself() {
        // Points on a line at 0, 1, 3, 6: the 2 nearest of 1 (itself skipped) are 0 and 3.
        let fit = [0.0f32, 1.0, 3.0, 6.0];
        let nb = nearest(&fit, &fit, 1, 2, true);
        assert_eq!(nb[1], [(0, 1.0), (2, 2.0)]);
        assert_eq!(nb[3], [(2, 3.0), (1, 5.0)]);
        // A new point at 2.5: 3 (0.5) then 1 (1.5).
        assert_eq!(nearest(&fit, &[2.5], 1, 2, false)[0], [(2, 0.5), (1, 1.5)]);
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
