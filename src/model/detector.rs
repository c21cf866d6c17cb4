//! The face every family shares: a fitted family, stored in a checkpoint as a
//! `DetectorState`, loads as a [`Detector`] that scores encoded rows. Everything downstream
//! (the scorer, `test`, `assess`, `cv`, `predict`, `serve`) only sees this face.

use anyhow::Result;

use super::ensemble::Votes;

/// What a detector makes of a batch of encoded rows.
pub enum Output {
    /// A classifier's probabilities, `width` per row (1: the anomaly probability).
    Probabilities { values: Vec<f32>, width: usize },
    /// An unsupervised detector's anomaly score per row.
    Scores(Vec<f32>),
    /// An ensemble's combined score per row, with its members' scores and votes.
    Ensemble(Votes),
    /// A hybrid's joined probability per row, with its two parts' probabilities and votes,
    /// and a multiclass classifier's class probabilities (else empty).
    Hybrid { votes: Votes, class_probs: Vec<f32> },
}

/// Each row's anomaly probability from a classifier's class probabilities: the anomalous
/// classes' total (capped at 1 against rounding), or the probability itself when binary
/// (`anomalous` empty).
pub fn anomalous_share(probs: &[f32], anomalous: &[bool]) -> Vec<f32> {
    if anomalous.is_empty() {
        return probs.to_vec();
    }
    probs
        .chunks_exact(anomalous.len())
        .map(|row| {
            row.iter()
                .zip(anomalous)
                .filter(|(_, a)| **a)
                .map(|(p, _)| p)
                .sum::<f32>()
                .min(1.0)
        })
        .collect()
}

/// A loaded detector, ready to score encoded (preprocessed, scaled) rows.
pub trait Detector: Send + Sync {
    /// Scores `x`, row-major with `n_features` values per row.
    fn score(&self, x: &[f32]) -> Result<Output>;

    /// A clustering family's clusters (k-means, DBSCAN).
    fn clusters(&self) -> Option<&dyn Clusters> {
        None
    }

    /// A sequence model with an attention head: its weights over each window's steps (none
    /// for every other model).
    fn step_weights(&self, _x: &[f32]) -> Result<Option<StepWeights>> {
        Ok(None)
    }
}

/// A sequence model's attention over the steps of its windows.
pub struct StepWeights {
    /// Per window, row by row, its steps' weights (each row sums to 1).
    pub weights: Vec<f32>,
    /// Per step, the window's flows it covers (0-based; a step after the convolution blocks
    /// sees several neighbouring flows).
    pub flows: Vec<std::ops::Range<usize>>,
}

/// A clustering family's partition of rows, for the clustering report.
pub trait Clusters {
    /// Each row's cluster, or `None` for noise.
    fn assign(&self, x: &[f32]) -> Vec<Option<u32>>;
    /// How many clusters the fit found.
    fn count(&self) -> usize;
    /// Per cluster: whether most training rows in it were anomalies (empty when the training
    /// rows held no anomalies to learn from).
    fn majority(&self) -> &[bool];
    /// k-means: the squared distances of the rows to their nearest centroid, summed.
    fn inertia(&self, _x: &[f32]) -> Option<f64> {
        None
    }
    /// DBSCAN: rows may be noise.
    fn has_noise(&self) -> bool {
        false
    }
}

/// Per cluster of `count`: whether most of the `y`-labelled rows `assigned` to it are
/// anomalies; empty when no row is one.
pub fn majority(assigned: &[Option<u32>], y: &[f32], count: usize) -> Vec<bool> {
    if !y.contains(&1.0) {
        return Vec::new();
    }
    let mut tally = vec![(0usize, 0usize); count];
    for (c, &label) in assigned.iter().zip(y) {
        if let Some(c) = c {
            let t = &mut tally[*c as usize];
            *(if label == 1.0 { &mut t.1 } else { &mut t.0 }) += 1;
        }
    }
    tally
        .iter()
        .map(|(normal, anomalous)| anomalous > normal)
        .collect()
}
