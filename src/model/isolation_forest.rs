//! Isolation forest (Liu, Ting, Zhou 2008), as scikit-learn's `IsolationForest` computes it:
//! each tree isolates a random subsample by splitting a random feature at a uniform random
//! value between its minimum and maximum, and a row's score is 2^(−E[h(x)] / c(ψ)), where h is
//! the depth at which a tree isolates it (plus c of the rows left in its leaf) and c(n) the
//! average path length of an unsuccessful search in a binary search tree of n rows. Scores lie
//! in (0, 1); above 0.5 is anomalous in the original paper's reading.
//!
//! Written here because the Rust isolation-forest crates could not be seeded or needed the
//! feature count at compile time. Every tree has its own seed (from the run's seed and its
//! index), so the forest is the same whatever the number of threads that build it.

use anyhow::Result;
use burn::tensor::Device;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::detector::{Detector, Output};
use super::family::{Facts, Family, Fit, FitData, Fitted, Section};
use crate::bail_input;

/// `model.isolation_forest`: scikit-learn's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IsolationForestConfig {
    pub n_trees: usize,
    /// Rows drawn (without replacement) for each tree; depth is limited to log2 of it.
    pub sample_size: usize,
    /// The share of the features each tree may split on.
    pub max_features: f64,
}

impl Default for IsolationForestConfig {
    fn default() -> Self {
        Self {
            n_trees: 100,
            sample_size: 256,
            max_features: 1.0,
        }
    }
}

impl Section for IsolationForestConfig {
    fn check(&self) -> Result<()> {
        if self.n_trees == 0 || self.sample_size < 2 {
            bail_input!(
                "model.isolation_forest: expected n_trees >= 1 and sample_size >= 2, got {} and {}",
                self.n_trees,
                self.sample_size
            );
        }
        if !(self.max_features > 0.0 && self.max_features <= 1.0) {
            bail_input!(
                "model.isolation_forest.max_features: expected a share in (0, 1], got {}",
                self.max_features
            );
        }
        Ok(())
    }
}

impl Family for IsolationForest {
    type Section = IsolationForestConfig;
    type State = IsolationForest;
    const FACTS: Facts = Facts {
        classifier: false,
        sequence: false,
        unit_scores: true,
    };
    const FIT: Fit<IsolationForestConfig, IsolationForest> =
        Fit::OnePass(IsolationForest::one_pass);

    fn load(state: &Self, _: &Device) -> Result<Box<dyn Detector>> {
        Ok(Box::new(state.clone()))
    }
}

impl IsolationForest {
    fn one_pass(cfg: &IsolationForestConfig, data: &FitData) -> Result<Fitted<Self>> {
        let f = IsolationForest::fit(data.x, data.d, data.rows, cfg, data.seed);
        let said = format!("{} trees, {} rows each", f.trees.len(), f.sample_size);
        Ok(Fitted::new(f, said))
    }
}

/// A fitted forest: the trees, and the subsample size their depths are normalised by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsolationForest {
    pub n_features: usize,
    pub sample_size: usize,
    pub trees: Vec<Tree>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Nodes in depth-first order; the root is node 0.
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Node {
    /// Rows with `feature < value` go to `left`, the others to the node after `left`'s subtree
    /// (`right`).
    Split {
        feature: u32,
        value: f32,
        left: u32,
        right: u32,
    },
    /// Where isolation stopped, with the number of training rows that reached it.
    Leaf { size: u32 },
}

/// c(n): the average path length of an unsuccessful search in a binary search tree of n
/// keys, 2·H(n − 1) − 2(n − 1)/n with H(i) ≈ ln(i) + γ; c(1) = 0, c(2) = 1.
pub fn average_path_length(n: usize) -> f64 {
    const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
        }
    }
}

/// A seed per tree, independent of which thread builds it.
fn tree_seed(seed: u64, tree: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (tree as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

impl IsolationForest {
    /// Fits on `rows` of `x` (row-major, `n_features` per row).
    pub fn fit(
        x: &[f32],
        n_features: usize,
        rows: &[usize],
        cfg: &IsolationForestConfig,
        seed: u64,
    ) -> IsolationForest {
        let sample_size = cfg.sample_size.min(rows.len());
        let max_depth = (sample_size.max(2) as f64).log2().ceil() as usize;
        let features_per_tree =
            ((cfg.max_features * n_features as f64).round() as usize).clamp(1, n_features);
        let trees = (0..cfg.n_trees)
            .into_par_iter()
            .map(|t| {
                let mut rng = StdRng::seed_from_u64(tree_seed(seed, t));
                let mut sub: Vec<usize> = sample(&mut rng, rows.len(), sample_size)
                    .into_iter()
                    .map(|i| rows[i])
                    .collect();
                let mut features: Vec<u32> = sample(&mut rng, n_features, features_per_tree)
                    .into_iter()
                    .map(|f| f as u32)
                    .collect();
                features.sort_unstable();
                let mut builder = Builder {
                    x,
                    n_features,
                    features: &features,
                    max_depth,
                    rng,
                    nodes: Vec::new(),
                };
                builder.grow(&mut sub, 0);
                Tree {
                    nodes: builder.nodes,
                }
            })
            .collect();
        IsolationForest {
            n_features,
            sample_size,
            trees,
        }
    }

    /// The anomaly score of every row of `x`, in (0, 1).
    ///
    /// Rows go in blocks of 256, each tree over the whole block before the next tree, so a
    /// tree stays in cache while it is walked (see [`Walk`] for how).
    pub fn scores(&self, x: &[f32]) -> Vec<f32> {
        const BLOCK: usize = 256;
        let c: Vec<f64> = (0..=self.sample_size).map(average_path_length).collect();
        let norm = c[self.sample_size].max(f64::MIN_POSITIVE);
        let walks: Vec<Walk> = self.trees.iter().map(|t| Walk::of(t, &c)).collect();
        let d = self.n_features;
        x.par_chunks(d * BLOCK)
            .flat_map_iter(|block| {
                let mut total = vec![0.0f64; block.len() / d];
                for walk in &walks {
                    walk.add_path_lengths(block, d, &mut total);
                }
                let n = self.trees.len() as f64;
                total
                    .into_iter()
                    .map(move |t| 2f64.powf(-t / n / norm) as f32)
            })
            .collect()
    }
}

/// A tree laid out for scoring without branches: every node as (feature, value, left, right),
/// a leaf pointing back at itself, so each row takes exactly `depth` steps of
/// `at = row[feature[at]] < value[at] ? left[at] : right[at]` (a select, not a jump), and
/// 8 rows step side by side to overlap their memory reads. A leaf's path length, its depth
/// plus c(its training rows), is kept ready.
struct Walk {
    steps: Vec<(u32, f32, u32, u32)>,
    path_length: Vec<f64>,
    depth: usize,
}

impl Walk {
    fn of(tree: &Tree, c: &[f64]) -> Walk {
        let n = tree.nodes.len();
        let mut walk = Walk {
            steps: vec![(0, 0.0, 0, 0); n],
            path_length: vec![0.0; n],
            depth: 0,
        };
        // Nodes are in depth-first order: a child always comes after its parent.
        let mut depth = vec![0usize; n];
        for (at, node) in tree.nodes.iter().enumerate() {
            match *node {
                Node::Leaf { size } => {
                    walk.steps[at] = (0, f32::NAN, at as u32, at as u32);
                    walk.path_length[at] = depth[at] as f64 + c[size as usize];
                    walk.depth = walk.depth.max(depth[at]);
                }
                Node::Split {
                    feature,
                    value,
                    left,
                    right,
                } => {
                    walk.steps[at] = (feature, value, left, right);
                    depth[left as usize] = depth[at] + 1;
                    depth[right as usize] = depth[at] + 1;
                }
            }
        }
        walk
    }

    /// Adds each row's path length in this tree to `total` (one per row of `block`).
    fn add_path_lengths(&self, block: &[f32], d: usize, total: &mut [f64]) {
        const LANES: usize = 8;
        for (rows, sums) in block.chunks(d * LANES).zip(total.chunks_mut(LANES)) {
            let mut at = [0u32; LANES];
            let lanes = sums.len();
            for _ in 0..self.depth {
                for (k, a) in at.iter_mut().enumerate().take(lanes) {
                    let (feature, value, left, right) = self.steps[*a as usize];
                    // A leaf's NaN value sends every row right, which is the leaf again.
                    *a = if rows[k * d + feature as usize] < value {
                        left
                    } else {
                        right
                    };
                }
            }
            for (s, &a) in sums.iter_mut().zip(&at) {
                *s += self.path_length[a as usize];
            }
        }
    }
}

struct Builder<'a, R: Rng> {
    x: &'a [f32],
    n_features: usize,
    features: &'a [u32],
    max_depth: usize,
    rng: R,
    nodes: Vec<Node>,
}

impl<R: Rng> Builder<'_, R> {
    fn value(&self, row: usize, feature: u32) -> f32 {
        self.x[row * self.n_features + feature as usize]
    }

    /// Grows the subtree of `rows` and returns its root's index.
    fn grow(&mut self, rows: &mut [usize], depth: usize) -> u32 {
        let at = self.nodes.len() as u32;
        self.nodes.push(Node::Leaf {
            size: rows.len() as u32,
        });
        if rows.len() <= 1 || depth >= self.max_depth {
            return at;
        }
        // A random feature that still varies among these rows (scikit-learn's extra-tree
        // splitter likewise draws until one is not constant); none left: a leaf.
        let mut candidates = self.features.to_vec();
        while !candidates.is_empty() {
            let feature = candidates.swap_remove(self.rng.random_range(0..candidates.len()));
            let (lo, hi) = rows
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &r| {
                    let v = self.value(r, feature);
                    (lo.min(v), hi.max(v))
                });
            if hi <= lo {
                continue;
            }
            let mut value = self.rng.random_range(lo..hi);
            if value <= lo {
                // Keep both sides non-empty: `lo` itself always goes left.
                value = lo.next_up();
            }
            let mut split = 0;
            for i in 0..rows.len() {
                if self.value(rows[i], feature) < value {
                    rows.swap(i, split);
                    split += 1;
                }
            }
            let (left_rows, right_rows) = rows.split_at_mut(split);
            let left = self.grow(left_rows, depth + 1);
            let right = self.grow(right_rows, depth + 1);
            self.nodes[at as usize] = Node::Split {
                feature,
                value,
                left,
                right,
            };
            return at;
        }
        at
    }
}

impl Detector for IsolationForest {
    fn score(&self, x: &[f32]) -> Result<Output> {
        Ok(Output::Scores(self.scores(x)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::on_threads;

    fn cfg(n_trees: usize) -> IsolationForestConfig {
        IsolationForestConfig {
            n_trees,
            sample_size: 256,
            max_features: 1.0,
        }
    }

    /// 300 points in a tight 3-D cluster and one far away, in the middle of the file.
    fn cluster_and_outlier() -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(1);
        let mut x: Vec<f32> = (0..300 * 3).map(|_| rng.random_range(-1.0..1.0)).collect();
        x[150 * 3..151 * 3].copy_from_slice(&[8.0, -7.0, 9.0]);
        x
    }

    #[test]
    fn average_path_length_matches_the_papers_values() {
        assert_eq!(average_path_length(1), 0.0);
        assert_eq!(average_path_length(2), 1.0);
        // 2·(ln 255 + γ) − 2·255/256 = 10.2447709…
        assert!((average_path_length(256) - 10.244_770_9).abs() < 1e-6);
    }

    #[test]
    fn the_far_point_scores_highest() {
        let x = cluster_and_outlier();
        let rows: Vec<usize> = (0..300).collect();
        let forest = IsolationForest::fit(&x, 3, &rows, &cfg(100), 42);
        let scores = forest.scores(&x);
        let top = (0..300)
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap();
        assert_eq!(top, 150);
        assert!(scores[150] > 0.6, "{}", scores[150]);
        let mean: f32 = scores.iter().sum::<f32>() / 300.0;
        assert!(mean < 0.5, "{mean}");
    }

    #[test]
    fn the_same_seed_gives_the_same_forest_on_any_number_of_threads() {
        let x = cluster_and_outlier();
        let rows: Vec<usize> = (0..300).collect();
        let fit = || {
            let f = IsolationForest::fit(&x, 3, &rows, &cfg(50), 7);
            let s = f.scores(&x);
            (f, s)
        };
        let (one, s1) = on_threads(1, fit);
        let (two, s2) = on_threads(2, fit);
        assert_eq!(one, two);
        assert_eq!(
            s1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            s2.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_ne!(one, IsolationForest::fit(&x, 3, &rows, &cfg(50), 8));
    }

    #[test]
    fn trees_stop_at_the_depth_limit_and_on_constant_rows() {
        // Identical rows cannot be split: the root is a leaf holding all of them.
        let x = vec![1.0f32; 10 * 2];
        let rows: Vec<usize> = (0..10).collect();
        let f = IsolationForest::fit(&x, 2, &rows, &cfg(3), 1);
        assert!(f.trees.iter().all(|t| t.nodes == [Node::Leaf { size: 10 }]));
        // Every row's path is then c(10), the same for all: scores equal.
        let s = f.scores(&x);
        assert!(s.iter().all(|&v| v == s[0]));
        // A subsample of 8 rows limits depth to log2(8) = 3.
        let x: Vec<f32> = (0..64).map(|v| v as f32).collect();
        let rows: Vec<usize> = (0..64).collect();
        let small = IsolationForestConfig {
            sample_size: 8,
            ..cfg(5)
        };
        let f = IsolationForest::fit(&x, 1, &rows, &small, 3);
        let splits = |t: &Tree, v: f32| {
            let (mut at, mut n) = (0, 0);
            while let Node::Split {
                value, left, right, ..
            } = t.nodes[at]
            {
                at = if v < value { left } else { right } as usize;
                n += 1;
            }
            n
        };
        let deepest = f
            .trees
            .iter()
            .flat_map(|t| x.iter().map(move |&v| splits(t, v)))
            .max();
        assert_eq!(deepest, Some(3));
    }
}
