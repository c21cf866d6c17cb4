//! Random forest (Breiman 2001), as scikit-learn's `RandomForestClassifier` grows it: each tree
//! on a bootstrap sample, each split the best Gini decrease among `max_features` randomly drawn
//! features (more when none of those can split), class weights through the sample weights,
//! leaves holding their weighted class distribution; a row's probabilities are the trees' mean.
//! Splits are found by histogram over pre-binned features ([`Bins`]), so a node costs a pass
//! over its rows per feature tried, not a sort.
//!
//! Written here: smartcore's and linfa's forests sort at every node, take no class weights and
//! cannot be made independent of the thread count; this is a few hundred lines. Every tree has
//! its own seed, so the forest is the same whatever the number of threads that build it.

use anyhow::Result;
use burn::tensor::Device;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::bins::{Bins, partition};
use super::detector::{Detector, Output};
use super::family::{Facts, Family, Fit, FitData, Fitted, Section};
use crate::bail_input;

/// `model.random_forest`: scikit-learn's `RandomForestClassifier` settings, with 200 trees;
/// splits are searched over at most `max_bins` bins per feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomForestConfig {
    pub n_trees: usize,
    /// None: grow until leaves are pure or hold `min_samples_leaf` rows.
    pub max_depth: Option<usize>,
    pub min_samples_leaf: usize,
    pub max_features: MaxFeatures,
    /// Each tree on a bootstrap sample (and an out-of-bag accuracy), or on every row.
    pub bootstrap: bool,
    pub max_bins: usize,
}

impl Default for RandomForestConfig {
    fn default() -> Self {
        Self {
            n_trees: 200,
            max_depth: None,
            min_samples_leaf: 1,
            max_features: MaxFeatures::Named(FeatureShare::Sqrt),
            bootstrap: true,
            max_bins: 256,
        }
    }
}

impl Section for RandomForestConfig {
    fn check(&self) -> Result<()> {
        let rf = self;
        let share_ok = match rf.max_features {
            MaxFeatures::Fraction(f) => f > 0.0 && f <= 1.0,
            MaxFeatures::Named(_) => true,
        };
        if rf.n_trees == 0 || rf.min_samples_leaf == 0 || rf.max_depth == Some(0) || !share_ok {
            bail_input!(
                "model.random_forest: expected n_trees, min_samples_leaf and max_depth >= 1 and max_features sqrt, log2, all or a fraction in (0, 1], got {}, {}, {:?} and {:?}",
                rf.n_trees,
                rf.min_samples_leaf,
                rf.max_depth,
                rf.max_features
            );
        }
        if !(2..=256).contains(&rf.max_bins) {
            bail_input!(
                "model.random_forest.max_bins: expected 2 to 256, got {}",
                rf.max_bins
            );
        }
        Ok(())
    }
}

/// How many features a tree's split tries: `sqrt`, `log2` or `all` of them, or a fraction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MaxFeatures {
    Fraction(f64),
    Named(FeatureShare),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureShare {
    Sqrt,
    Log2,
    All,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomForest {
    pub n_features: usize,
    /// Classes (2 for binary: normal, anomaly).
    pub classes: usize,
    /// One output per row for binary (the anomaly probability), else one per class.
    pub multiclass: bool,
    pub bins: Bins,
    pub trees: Vec<Tree>,
    /// Mean decrease in Gini impurity per feature (summing to 1).
    pub importance: Vec<f32>,
    /// Accuracy of each training row's out-of-bag vote (bootstrap only).
    pub oob_accuracy: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
    /// Each leaf's class distribution, `classes` values per leaf.
    pub leaves: Vec<f32>,
}

/// A node: rows with `row[feature] >= threshold` go right, the others (NaN included) left.
/// A leaf points left at itself with a NaN threshold, so a walk stays put on it, and `right`
/// holds its number in `leaves`: every step of a walk is the same select, with no branch on
/// the node's kind.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Node {
    pub feature: u32,
    pub threshold: f32,
    pub left: u32,
    pub right: u32,
}

/// The same node bit for bit (a leaf's NaN threshold equals itself).
impl PartialEq for Node {
    fn eq(&self, other: &Node) -> bool {
        (
            self.feature,
            self.threshold.to_bits(),
            self.left,
            self.right,
        ) == (
            other.feature,
            other.threshold.to_bits(),
            other.left,
            other.right,
        )
    }
}

impl Node {
    pub(crate) fn leaf(at: u32, leaf: u32) -> Node {
        Node {
            feature: 0,
            threshold: f32::NAN,
            left: at,
            right: leaf,
        }
    }
}

/// What a forest learns from: rows, their classes and the classes' weights.
pub struct Labelled<'a> {
    pub x: &'a [f32],
    pub d: usize,
    pub rows: &'a [usize],
    /// The class of each row of `x`.
    pub class: &'a [u32],
    pub class_weights: &'a [f64],
    pub multiclass: bool,
}

/// A seed per tree, independent of which thread builds it.
fn tree_seed(seed: u64, tree: usize) -> u64 {
    seed.wrapping_mul(0xA076_1D64_78BD_642F) ^ (tree as u64).wrapping_mul(0xE703_7ED1_A0B4_28DB)
}

impl Family for RandomForest {
    type Section = RandomForestConfig;
    type State = RandomForest;
    const FACTS: Facts = Facts {
        classifier: true,
        sequence: false,
        unit_scores: true,
    };
    const FIT: Fit<RandomForestConfig, RandomForest> = Fit::OnePass(RandomForest::one_pass);

    fn load(state: &Self, _: &Device) -> Result<Box<dyn Detector>> {
        Ok(Box::new(state.clone()))
    }
}

impl RandomForest {
    fn one_pass(cfg: &RandomForestConfig, data: &FitData) -> Result<Fitted<Self>> {
        let forest = RandomForest::fit(data.labelled("random_forest")?, cfg, data.seed);
        let nodes: usize = forest.trees.iter().map(|t| t.nodes.len()).sum();
        let oob = forest
            .oob_accuracy
            .map_or(String::new(), |a| format!(", out-of-bag accuracy {a:.4}"));
        Ok(Fitted {
            said: format!("{} trees, {nodes} nodes{oob}", forest.trees.len()),
            importance: Some(forest.importance.clone()),
            state: forest,
        })
    }

    pub fn fit(data: &Labelled, cfg: &RandomForestConfig, seed: u64) -> RandomForest {
        let (d, n) = (data.d, data.rows.len());
        let k = data.class_weights.len();
        let bins = Bins::fit(data.x, d, data.rows, cfg.max_bins);
        let binned = bins.binned(data.x, d, data.rows);
        let class: Vec<u32> = data.rows.iter().map(|&r| data.class[r]).collect();
        let grower = Grower {
            binned: &binned,
            n,
            d,
            k,
            class: &class,
            thresholds: &bins.thresholds,
            max_depth: cfg.max_depth.unwrap_or(usize::MAX),
            min_leaf: cfg.min_samples_leaf,
            tries: features_per_split(cfg.max_features, d),
        };
        let grown: Vec<(Tree, Vec<f64>, Vec<u32>)> = (0..cfg.n_trees)
            .into_par_iter()
            .map(|t| {
                let mut rng = StdRng::seed_from_u64(tree_seed(seed, t));
                let mut counts = vec![0u32; n];
                if cfg.bootstrap {
                    (0..n).for_each(|_| counts[rng.random_range(0..n)] += 1);
                } else {
                    counts.iter_mut().for_each(|c| *c = 1);
                }
                let weight: Vec<f64> = (0..n)
                    .map(|i| counts[i] as f64 * data.class_weights[class[i] as usize])
                    .collect();
                let (tree, importance) = grower.grow(&weight, &mut rng);
                (tree, importance, counts)
            })
            .collect();
        let mut importance = vec![0.0f64; d];
        for (_, tree_importance, _) in &grown {
            let total: f64 = tree_importance.iter().sum();
            if total > 0.0 {
                for (a, b) in importance.iter_mut().zip(tree_importance) {
                    *a += b / total;
                }
            }
        }
        let total: f64 = importance.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let mut forest = RandomForest {
            n_features: d,
            classes: k,
            multiclass: data.multiclass,
            bins,
            trees: Vec::with_capacity(grown.len()),
            importance: importance.iter().map(|v| (v / total) as f32).collect(),
            oob_accuracy: None,
        };
        let in_bag: Vec<Vec<u32>> = grown.iter().map(|g| g.2.clone()).collect();
        forest.trees = grown.into_iter().map(|g| g.0).collect();
        if cfg.bootstrap {
            forest.oob_accuracy = forest.out_of_bag(data, &class, &in_bag);
        }
        forest
    }

    /// The accuracy of the trees' vote on each training row from the trees that did not
    /// see it (rows every tree saw are left out).
    fn out_of_bag(&self, data: &Labelled, class: &[u32], in_bag: &[Vec<u32>]) -> Option<f64> {
        let (d, k) = (self.n_features, self.classes);
        let (right, voted) = data
            .rows
            .par_iter()
            .enumerate()
            .map(|(i, &r)| {
                let row = &data.x[r * d..(r + 1) * d];
                let mut sum = vec![0.0f64; k];
                let mut trees = 0;
                for (tree, bag) in self.trees.iter().zip(in_bag) {
                    if bag[i] == 0 {
                        tree.add_leaves(row, d, k, &mut sum);
                        trees += 1;
                    }
                }
                let best = argmax(&sum);
                match trees {
                    0 => (0, 0),
                    _ => ((best == class[i] as usize) as usize, 1usize),
                }
            })
            .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        (voted > 0).then(|| right as f64 / voted as f64)
    }

    /// Each row's class probabilities (row-major, `classes` per row).
    ///
    /// A tree of a few hundred thousand rows outgrows the cache, so each tree goes over a
    /// large block of rows before the next (16,384: twice the rows per second of 256-row
    /// blocks). The trees are split into fixed groups of 8 that run in parallel, and their
    /// sums are added in group order: the same bits on any number of threads.
    pub fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        const BLOCK: usize = 16384;
        const GROUP: usize = 8;
        let (d, k) = (self.n_features, self.classes);
        let n = self.trees.len().max(1) as f64;
        x.par_chunks(d * BLOCK)
            .flat_map_iter(|block| {
                let width = block.len() / d * k;
                let groups: Vec<Vec<f64>> = self
                    .trees
                    .par_chunks(GROUP)
                    .map(|trees| {
                        let mut sums = vec![0.0f64; width];
                        for tree in trees {
                            tree.add_leaves(block, d, k, &mut sums);
                        }
                        sums
                    })
                    .collect();
                let mut sums = vec![0.0f64; width];
                for group in &groups {
                    sums.iter_mut().zip(group).for_each(|(s, g)| *s += g);
                }
                sums.into_iter().map(move |s| (s / n) as f32)
            })
            .collect()
    }
}

fn argmax(values: &[f64]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}

/// How many features a split tries first.
fn features_per_split(max: MaxFeatures, d: usize) -> usize {
    let n = match max {
        MaxFeatures::Named(FeatureShare::Sqrt) => (d as f64).sqrt().floor(),
        MaxFeatures::Named(FeatureShare::Log2) => (d as f64).log2().floor(),
        MaxFeatures::Named(FeatureShare::All) => d as f64,
        MaxFeatures::Fraction(f) => (f * d as f64).floor(),
    };
    (n as usize).clamp(1, d)
}

impl Tree {
    /// Adds the class distribution of the leaf each row of `rows` (row-major, `d` wide) lands
    /// in to its `k` values in `sums`. Rows walk 8 at a time, step by step side by side, so
    /// their reads of nodes deep in the tree (out of cache) overlap.
    pub(crate) fn add_leaves(&self, rows: &[f32], d: usize, k: usize, sums: &mut [f64]) {
        const LANES: usize = 8;
        for (rows, sums) in rows.chunks(d * LANES).zip(sums.chunks_mut(k * LANES)) {
            let lanes = rows.len() / d;
            let mut at = [0u32; LANES];
            loop {
                let mut moved = false;
                for (lane, a) in at.iter_mut().enumerate().take(lanes) {
                    let node = self.nodes[*a as usize];
                    let next = if rows[lane * d + node.feature as usize] >= node.threshold {
                        node.right
                    } else {
                        node.left
                    };
                    moved |= next != *a;
                    *a = next;
                }
                if !moved {
                    break;
                }
            }
            for (sum, &a) in sums.chunks_exact_mut(k).zip(&at) {
                let leaf = self.nodes[a as usize].right as usize;
                for (s, &p) in sum.iter_mut().zip(&self.leaves[leaf * k..(leaf + 1) * k]) {
                    *s += p as f64;
                }
            }
        }
    }
}

/// Grows trees over the binned training rows (feature-major, `n` rows).
struct Grower<'a> {
    binned: &'a [u8],
    n: usize,
    d: usize,
    k: usize,
    class: &'a [u32],
    thresholds: &'a [Vec<f32>],
    max_depth: usize,
    min_leaf: usize,
    tries: usize,
}

/// The best split of a node found so far.
struct Best {
    feature: usize,
    bin: u8,
    score: f64,
}

impl Grower<'_> {
    /// A tree on the rows with positive `weight`, and its impurity decrease per feature.
    fn grow(&self, weight: &[f64], rng: &mut StdRng) -> (Tree, Vec<f64>) {
        let mut rows: Vec<u32> = (0..self.n as u32)
            .filter(|&i| weight[i as usize] > 0.0)
            .collect();
        let mut tree = Tree {
            nodes: Vec::new(),
            leaves: Vec::new(),
        };
        let mut importance = vec![0.0f64; self.d];
        let mut features: Vec<usize> = (0..self.d).collect();
        self.node(
            &mut rows,
            0,
            weight,
            rng,
            &mut features,
            &mut tree,
            &mut importance,
        );
        (tree, importance)
    }

    /// The weighted class totals of `rows`.
    fn totals(&self, rows: &[u32], weight: &[f64]) -> Vec<f64> {
        let mut t = vec![0.0f64; self.k];
        for &r in rows {
            t[self.class[r as usize] as usize] += weight[r as usize];
        }
        t
    }

    #[allow(clippy::too_many_arguments)]
    fn node(
        &self,
        rows: &mut [u32],
        depth: usize,
        weight: &[f64],
        rng: &mut StdRng,
        features: &mut [usize],
        tree: &mut Tree,
        importance: &mut [f64],
    ) -> u32 {
        let at = tree.nodes.len() as u32;
        let totals = self.totals(rows, weight);
        let w: f64 = totals.iter().sum();
        let pure = totals.iter().filter(|&&t| t > 0.0).count() <= 1;
        let best = if pure || depth >= self.max_depth || rows.len() < 2 * self.min_leaf {
            None
        } else {
            self.split(rows, weight, &totals, rng, features)
        };
        let Some(best) = best else {
            let leaf = (tree.leaves.len() / self.k) as u32;
            tree.leaves.extend(
                totals
                    .iter()
                    .map(|&t| (t / w.max(f64::MIN_POSITIVE)) as f32),
            );
            tree.nodes.push(Node::leaf(at, leaf));
            return at;
        };
        let column = &self.binned[best.feature * self.n..(best.feature + 1) * self.n];
        let split = partition(rows, |r| column[r as usize], best.bin);
        importance[best.feature] += w * gini_sum_gain(&totals, w, best.score);
        tree.nodes.push(Node::leaf(at, 0));
        let (left_rows, right_rows) = rows.split_at_mut(split);
        let left = self.node(
            left_rows,
            depth + 1,
            weight,
            rng,
            features,
            tree,
            importance,
        );
        let right = self.node(
            right_rows,
            depth + 1,
            weight,
            rng,
            features,
            tree,
            importance,
        );
        tree.nodes[at as usize] = Node {
            feature: best.feature as u32,
            threshold: self.thresholds[best.feature][best.bin as usize],
            left,
            right,
        };
        at
    }

    /// The best split of `rows`: features in a random order, at least `tries` of them and
    /// on until one can split (scikit-learn's rule). The score is Σ L_c²/L + Σ R_c²/R, which
    /// the Gini decrease grows with.
    fn split(
        &self,
        rows: &[u32],
        weight: &[f64],
        totals: &[f64],
        rng: &mut StdRng,
        features: &mut [usize],
    ) -> Option<Best> {
        features.shuffle(rng);
        let k = self.k;
        let mut best: Option<Best> = None;
        let mut hist = vec![0.0f64; 256 * k];
        let mut counts = vec![0usize; 256];
        for (tried, &f) in features.iter().enumerate() {
            if tried >= self.tries && best.is_some() {
                break;
            }
            let column = &self.binned[f * self.n..(f + 1) * self.n];
            // The histogram is all zeros here: each feature clears the bins it filled.
            let (mut lo, mut hi) = (255usize, 0usize);
            for &r in rows {
                let b = column[r as usize] as usize;
                hist[b * k + self.class[r as usize] as usize] += weight[r as usize];
                counts[b] += 1;
                (lo, hi) = (lo.min(b), hi.max(b));
            }
            let mut left = vec![0.0f64; k];
            let mut left_rows = 0usize;
            for b in lo..hi {
                if counts[b] == 0 {
                    continue;
                }
                for c in 0..k {
                    left[c] += hist[b * k + c];
                }
                left_rows += counts[b];
                let right_rows = rows.len() - left_rows;
                if left_rows < self.min_leaf || right_rows < self.min_leaf {
                    continue;
                }
                let lw: f64 = left.iter().sum();
                let rw: f64 = totals.iter().sum::<f64>() - lw;
                if lw <= 0.0 || rw <= 0.0 {
                    continue;
                }
                let score = left.iter().map(|v| v * v).sum::<f64>() / lw
                    + totals
                        .iter()
                        .zip(&left)
                        .map(|(t, l)| (t - l) * (t - l))
                        .sum::<f64>()
                        / rw;
                if best.as_ref().is_none_or(|b| score > b.score) {
                    best = Some(Best {
                        feature: f,
                        bin: b as u8,
                        score,
                    });
                }
            }
            hist[lo * k..(hi + 1) * k].iter_mut().for_each(|h| *h = 0.0);
            counts[lo..=hi].iter_mut().for_each(|c| *c = 0);
        }
        best
    }
}

/// The Gini decrease of a split per unit weight, from its score (see [`Grower::split`]):
/// gini(node) − (L·gini(L) + R·gini(R)) / W = (score − Σ T_c²/W) / W.
fn gini_sum_gain(totals: &[f64], w: f64, score: f64) -> f64 {
    (score - totals.iter().map(|t| t * t).sum::<f64>() / w) / w
}

impl Detector for RandomForest {
    fn score(&self, x: &[f32]) -> Result<Output> {
        let probs = self.probabilities(x);
        if self.multiclass {
            return Ok(Output::Probabilities {
                values: probs,
                width: self.classes,
            });
        }
        let anomaly = probs.chunks_exact(self.classes).map(|p| p[1]).collect();
        Ok(Output::Probabilities {
            values: anomaly,
            width: 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{on_threads, xor};

    fn cfg(n_trees: usize) -> RandomForestConfig {
        RandomForestConfig {
            n_trees,
            ..RandomForestConfig::default()
        }
    }

    fn labelled<'a>(
        x: &'a [f32],
        d: usize,
        rows: &'a [usize],
        class: &'a [u32],
        class_weights: &'a [f64],
    ) -> Labelled<'a> {
        Labelled {
            x,
            d,
            rows,
            class,
            class_weights,
            multiclass: false,
        }
    }

    #[test]
    fn a_forest_learns_xor_and_its_probabilities_sum_to_one() {
        let (x, class) = xor(800, 5);
        let rows: Vec<usize> = (0..600).collect();
        let data = labelled(&x, 3, &rows, &class, &[1.0, 1.0]);
        let forest = RandomForest::fit(&data, &cfg(50), 1);
        let probs = forest.probabilities(&x[600 * 3..]);
        let right = probs
            .chunks_exact(2)
            .zip(&class[600..])
            .filter(|(p, c)| (p[1] > 0.5) == (**c == 1))
            .count();
        assert!(right >= 185, "{right} of 200 right");
        assert!(
            probs
                .chunks_exact(2)
                .all(|p| (p[0] + p[1] - 1.0).abs() < 1e-5)
        );
        // The noise feature matters least; out-of-bag accuracy is high.
        assert!(forest.importance[2] < forest.importance[0].min(forest.importance[1]));
        assert!(
            forest.oob_accuracy.unwrap() > 0.9,
            "{:?}",
            forest.oob_accuracy
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_forest_on_any_number_of_threads() {
        let (x, class) = xor(400, 5);
        let rows: Vec<usize> = (0..400).collect();
        let data = labelled(&x, 3, &rows, &class, &[1.0, 3.0]);
        let one = on_threads(1, || RandomForest::fit(&data, &cfg(20), 9));
        let two = on_threads(2, || RandomForest::fit(&data, &cfg(20), 9));
        assert_eq!(one, two);
        assert_ne!(one, RandomForest::fit(&data, &cfg(20), 10));
        let p1 = on_threads(1, || one.probabilities(&x));
        let p2 = on_threads(2, || one.probabilities(&x));
        assert!(p1.iter().zip(&p2).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn a_stump_splits_where_the_classes_part() {
        // One feature: class 0 below 5, class 1 from 5; depth 1 must split between 4 and 5.
        let x: Vec<f32> = (0..10).map(|i| i as f32).collect();
        let class: Vec<u32> = (0..10).map(|i| (i >= 5) as u32).collect();
        let rows: Vec<usize> = (0..10).collect();
        let data = labelled(&x, 1, &rows, &class, &[1.0, 1.0]);
        let stump = RandomForestConfig {
            n_trees: 1,
            max_depth: Some(1),
            bootstrap: false,
            ..RandomForestConfig::default()
        };
        let forest = RandomForest::fit(&data, &stump, 1);
        assert_eq!(
            forest.trees[0].nodes[0],
            Node {
                feature: 0,
                threshold: 4.5,
                left: 1,
                right: 2
            }
        );
        assert_eq!(
            (
                forest.trees[0].nodes[2].left,
                forest.trees[0].nodes[2].right
            ),
            (2, 1)
        );
        assert_eq!(forest.probabilities(&[4.4, 4.6]), [1.0, 0.0, 0.0, 1.0]);
        assert_eq!(forest.importance, [1.0]);
    }
}
