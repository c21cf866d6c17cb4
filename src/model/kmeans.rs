//! k-means (Lloyd's algorithm from k-means++ seeds, the best of `n_init` runs by inertia, as
//! scikit-learn's `KMeans`), used as a detector: a row's anomaly score is its Euclidean
//! distance to the nearest centroid.
//!
//! Written here rather than taken from linfa-clustering: that pulls in ndarray-linalg and a
//! second random-number stack, for some 150 lines. Each run has its own seed, and sums are
//! taken over fixed 4096-row blocks in block order, so the centroids are the same bits on any
//! number of threads.

use anyhow::Result;
use burn::tensor::Device;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::detector::{Clusters, Detector, Output, majority};
use super::family::{Facts, Family, Fit, FitData, Fitted, Section};
use super::neighbors::{gather, squared_distance};
use crate::bail_input;

/// `model.kmeans`: scikit-learn's `KMeans` settings, k = 8 with 10 seeded k-means++ runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KmeansConfig {
    pub k: usize,
    /// Runs from different seeds; the one with the lowest inertia is kept.
    pub n_init: usize,
    pub max_iter: usize,
    /// Stop when the centroids move less than this times the features' mean variance.
    pub tol: f64,
}

impl Default for KmeansConfig {
    fn default() -> Self {
        Self {
            k: 8,
            n_init: 10,
            max_iter: 300,
            tol: 1e-4,
        }
    }
}

impl Section for KmeansConfig {
    fn check(&self) -> Result<()> {
        let k = self;
        if k.k == 0 || k.n_init == 0 || k.max_iter == 0 || k.tol.is_nan() || k.tol < 0.0 {
            bail_input!(
                "model.kmeans: expected k, n_init and max_iter >= 1 and tol >= 0, got {}, {}, {} and {}",
                k.k,
                k.n_init,
                k.max_iter,
                k.tol
            );
        }
        Ok(())
    }
}

const BLOCK: usize = 4096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kmeans {
    pub n_features: usize,
    /// `k` centroids, row-major.
    pub centroids: Vec<f32>,
    /// The sum of squared distances of the fitted rows to their centroids.
    pub inertia: f64,
    /// Per centroid: whether most training rows nearest to it were anomalies (the classifier
    /// view; empty without labelled anomalies).
    #[serde(default)]
    pub majority: Vec<bool>,
}

/// The nearest centroid of `row` and its squared distance.
fn nearest(row: &[f32], centroids: &[f32], d: usize) -> (usize, f64) {
    centroids
        .chunks_exact(d)
        .map(|c| squared_distance(row, c))
        .enumerate()
        .fold(
            (0, f64::INFINITY),
            |best, (i, v)| if v < best.1 { (i, v) } else { best },
        )
}

impl Clusters for Kmeans {
    fn assign(&self, x: &[f32]) -> Vec<Option<u32>> {
        let d = self.n_features;
        x.par_chunks(d * BLOCK)
            .flat_map_iter(|block| {
                block
                    .chunks_exact(d)
                    .map(|row| Some(nearest(row, &self.centroids, d).0 as u32))
            })
            .collect()
    }

    fn count(&self) -> usize {
        self.centroids.len() / self.n_features
    }

    fn majority(&self) -> &[bool] {
        &self.majority
    }

    fn inertia(&self, x: &[f32]) -> Option<f64> {
        let d = self.n_features;
        Some(
            x.chunks_exact(d)
                .map(|row| nearest(row, &self.centroids, d).1)
                .sum(),
        )
    }
}

impl Family for Kmeans {
    type Section = KmeansConfig;
    type State = Kmeans;
    const FACTS: Facts = Facts {
        classifier: false,
        sequence: false,
        unit_scores: false,
    };
    const FIT: Fit<KmeansConfig, Kmeans> = Fit::OnePass(Kmeans::one_pass);

    fn load(state: &Self, _: &Device) -> Result<Box<dyn Detector>> {
        Ok(Box::new(state.clone()))
    }
}

impl Kmeans {
    /// Fits, then marks the clusters that hold mostly anomalies among the labelled rows.
    fn one_pass(cfg: &KmeansConfig, data: &FitData) -> Result<Fitted<Self>> {
        let d = data.d;
        let mut k = Kmeans::fit(data.x, d, data.rows, cfg, data.seed);
        k.majority = majority(&k.assign(data.x), data.y, k.count());
        let said = format!(
            "{} centroids, inertia {:.4} (best of {} runs)",
            k.centroids.len() / d,
            k.inertia,
            cfg.n_init
        );
        Ok(Fitted::new(k, said))
    }

    /// Fits on `rows` of `x` (row-major, `d` features per row).
    pub fn fit(x: &[f32], d: usize, rows: &[usize], cfg: &KmeansConfig, seed: u64) -> Kmeans {
        let data = gather(x, d, rows);
        let k = cfg.k.min(rows.len());
        // scikit-learn's tolerance: relative to the mean variance of the features.
        let tol = cfg.tol * mean_variance(&data, d);
        (0..cfg.n_init)
            .into_par_iter()
            .map(|run| {
                let mut rng =
                    StdRng::seed_from_u64(seed ^ (run as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let centroids = plus_plus(&data, d, k, &mut rng);
                lloyd(&data, d, centroids, cfg.max_iter, tol)
            })
            .collect::<Vec<_>>()
            .into_iter()
            // The first of equal inertias, so the winner does not depend on scheduling.
            .reduce(|best, m| if m.inertia < best.inertia { m } else { best })
            .expect("n_init >= 1")
    }

    /// Each row's distance to its nearest centroid.
    pub fn scores(&self, x: &[f32]) -> Vec<f32> {
        let d = self.n_features;
        x.par_chunks(d * BLOCK)
            .flat_map_iter(|block| {
                block
                    .chunks_exact(d)
                    .map(|row| nearest(row, &self.centroids, d).1.sqrt() as f32)
            })
            .collect()
    }
}

fn mean_variance(data: &[f32], d: usize) -> f64 {
    let n = (data.len() / d).max(1) as f64;
    (0..d)
        .map(|j| {
            let col = data.iter().skip(j).step_by(d).map(|&v| v as f64);
            let mean = col.clone().sum::<f64>() / n;
            col.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n
        })
        .sum::<f64>()
        / d as f64
}

/// k-means++ seeding: the first centroid uniformly, each next one with probability
/// proportional to the squared distance to the nearest centroid so far.
fn plus_plus(data: &[f32], d: usize, k: usize, rng: &mut StdRng) -> Vec<f32> {
    let n = data.len() / d;
    let first = rng.random_range(0..n);
    let mut centroids = data[first * d..(first + 1) * d].to_vec();
    let mut dist: Vec<f64> = data
        .chunks_exact(d)
        .map(|r| squared_distance(r, &centroids))
        .collect();
    while centroids.len() < k * d {
        let total: f64 = dist.iter().sum();
        let pick = if total > 0.0 {
            let mut target = rng.random_range(0.0..total);
            dist.iter()
                .position(|&v| {
                    target -= v;
                    target < 0.0
                })
                .unwrap_or(n - 1)
        } else {
            rng.random_range(0..n)
        };
        let c = &data[pick * d..(pick + 1) * d];
        for (v, r) in dist.iter_mut().zip(data.chunks_exact(d)) {
            *v = v.min(squared_distance(r, c));
        }
        centroids.extend_from_slice(c);
    }
    centroids
}

/// One assignment pass over some rows: each centroid's coordinate sums and row count, the
/// inertia, and the farthest row (its squared distance and index).
struct Pass {
    sums: Vec<f64>,
    counts: Vec<usize>,
    inertia: f64,
    far: (f64, usize),
}

impl Pass {
    fn new(k: usize, d: usize) -> Pass {
        Pass {
            sums: vec![0.0; k * d],
            counts: vec![0; k],
            inertia: 0.0,
            far: (f64::NEG_INFINITY, 0),
        }
    }

    /// Adds `other` (the rows after these), keeping the first of equally far rows.
    fn merge(mut self, other: Pass) -> Pass {
        self.sums
            .iter_mut()
            .zip(other.sums)
            .for_each(|(a, b)| *a += b);
        self.counts
            .iter_mut()
            .zip(other.counts)
            .for_each(|(a, b)| *a += b);
        self.inertia += other.inertia;
        if other.far.0 > self.far.0 {
            self.far = other.far;
        }
        self
    }
}

/// Lloyd's iterations until the centroids move less than `tol` (squared, in total).
fn lloyd(data: &[f32], d: usize, mut centroids: Vec<f32>, max_iter: usize, tol: f64) -> Kmeans {
    let k = centroids.len() / d;
    let mut inertia = f64::INFINITY;
    for _ in 0..max_iter.max(1) {
        // A pass per block, added up in block order (the same sums on any number of threads).
        let parts: Vec<Pass> = data
            .par_chunks(d * BLOCK)
            .enumerate()
            .map(|(b, block)| {
                let mut p = Pass::new(k, d);
                for (i, row) in block.chunks_exact(d).enumerate() {
                    let (c, dist) = nearest(row, &centroids, d);
                    p.counts[c] += 1;
                    for (s, &v) in p.sums[c * d..(c + 1) * d].iter_mut().zip(row) {
                        *s += v as f64;
                    }
                    p.inertia += dist;
                    if dist > p.far.0 {
                        p.far = (dist, b * BLOCK + i);
                    }
                }
                p
            })
            .collect();
        let Pass {
            sums,
            counts,
            inertia: total,
            far,
        } = parts.into_iter().fold(Pass::new(k, d), Pass::merge);
        inertia = total;
        let mut moved = 0.0;
        for c in 0..k {
            let new: Vec<f32> = if counts[c] == 0 {
                // An empty cluster takes the row farthest from its centroid, as scikit-learn.
                data[far.1 * d..(far.1 + 1) * d].to_vec()
            } else {
                sums[c * d..(c + 1) * d]
                    .iter()
                    .map(|s| (s / counts[c] as f64) as f32)
                    .collect()
            };
            moved += squared_distance(&new, &centroids[c * d..(c + 1) * d]);
            centroids[c * d..(c + 1) * d].copy_from_slice(&new);
        }
        if moved <= tol {
            break;
        }
    }
    Kmeans {
        n_features: d,
        centroids,
        inertia,
        majority: Vec::new(),
    }
}

impl Detector for Kmeans {
    fn score(&self, x: &[f32]) -> Result<Output> {
        Ok(Output::Scores(self.scores(x)))
    }

    fn clusters(&self) -> Option<&dyn Clusters> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::on_threads;

    fn cfg(k: usize) -> KmeansConfig {
        KmeansConfig {
            k,
            ..Default::default()
        }
    }

    /// Three tight 2-D blobs around (0, 0), (10, 0) and (0, 10), 100 rows each, and one row
    /// far from all of them at index 150.
    fn blobs() -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(5);
        let mut x = Vec::new();
        for i in 0..300 {
            let (cx, cy) = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)][i % 3];
            x.push(cx + rng.random_range(-0.5..0.5));
            x.push(cy + rng.random_range(-0.5..0.5));
        }
        x[300..302].copy_from_slice(&[30.0, 30.0]);
        x
    }

    #[test]
    fn finds_the_blobs_and_ranks_the_far_row_first() {
        let x = blobs();
        let rows: Vec<usize> = (0..300).filter(|&r| r != 150).collect();
        let m = Kmeans::fit(&x, 2, &rows, &cfg(3), 42);
        let mut centers: Vec<(i32, i32)> = m
            .centroids
            .chunks_exact(2)
            .map(|c| (c[0].round() as i32, c[1].round() as i32))
            .collect();
        centers.sort_unstable();
        assert_eq!(centers, [(0, 0), (0, 10), (10, 0)]);
        let s = m.scores(&x);
        let top = (0..300).max_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap();
        assert_eq!(top, 150);
        // The far row (30, 30) is √(20² + 30²) = 36.06 from both (10, 0) and (0, 10).
        assert!((s[150] - 36.06).abs() < 0.3, "{}", s[150]);
    }

    #[test]
    fn the_same_seed_gives_the_same_centroids_on_any_number_of_threads() {
        let x = blobs();
        let rows: Vec<usize> = (0..300).collect();
        let fit = || Kmeans::fit(&x, 2, &rows, &cfg(5), 9);
        assert_eq!(on_threads(1, fit), on_threads(2, fit));
    }
}
