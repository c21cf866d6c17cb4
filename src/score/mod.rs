//! The scorer: a checkpoint's preprocessing, detector and decision rule, built once. Every
//! command that scores rows (`test`, `assess`, `cv`, `predict`) goes through it, so "load,
//! encode, score, threshold" exists once.

pub mod stream;

use anyhow::Result;
use burn::tensor::Device;

use crate::data::Dataset;
use crate::data::preprocess::Preprocessor;
use crate::eval::clusters::ClusterReport;
use crate::eval::decision;
use crate::eval::ensemble::EnsembleReport;
use crate::eval::multiclass::ClassReport;
use crate::model::detector::{Detector, Output};
use crate::model::ensemble::Votes;
use crate::train::checkpoint::Checkpoint;

pub struct Scorer {
    pub pre: Preprocessor,
    detector: Box<dyn Detector>,
    /// Rows scoring at least this are anomalies.
    pub threshold: f32,
    /// The training rows' score quantiles (empty for format-1 checkpoints).
    train_quantiles: Vec<f32>,
    /// An ensemble's member families, in order (else empty).
    pub members: Vec<&'static str>,
    /// The run's seed (the clustering report's silhouette sample).
    seed: u64,
}

/// A batch's scores.
pub struct Scored {
    /// Per row: the anomaly score, higher meaning more anomalous (for classifiers, the
    /// probability of the anomalous classes).
    pub anomaly: Vec<f32>,
    /// Multiclass: each row's class probabilities (`pre.classes.len()` per row); else empty.
    pub class_probs: Vec<f32>,
    /// An ensemble: its members' scores and votes, and each row's severity.
    pub ensemble: Option<Votes>,
}

/// A detector's verdict on a labelled dataset: each row's anomaly score, and for multiclass
/// the per-class report.
pub struct Predictions {
    pub anomaly: Vec<f32>,
    pub classes: Option<ClassReport>,
    /// An ensemble: its members and itself side by side.
    pub ensemble: Option<EnsembleReport>,
    /// k-means and DBSCAN: the clustering report.
    pub clusters: Option<ClusterReport>,
}

/// A detector's output as anomaly scores: a multiclass model's anomalous classes summed, any
/// other output as it is.
pub fn anomaly(pre: &Preprocessor, output: Output) -> Scored {
    match output {
        Output::Probabilities { values, width } if width > 1 => Scored {
            anomaly: pre.anomaly_scores(&values),
            class_probs: values,
            ensemble: None,
        },
        Output::Probabilities { values, .. } | Output::Scores(values) => Scored {
            anomaly: values,
            class_probs: Vec::new(),
            ensemble: None,
        },
        Output::Ensemble(votes) => Scored {
            anomaly: votes.combined.clone(),
            class_probs: Vec::new(),
            ensemble: Some(votes),
        },
    }
}

impl Scorer {
    pub fn from_checkpoint(ck: &Checkpoint, device: &Device) -> Result<Scorer> {
        Ok(Scorer {
            pre: ck.preprocessor.clone(),
            detector: ck.detector.load(device)?,
            threshold: ck.threshold,
            train_quantiles: ck.train_score_quantiles.clone(),
            members: ck.detector.members(),
            seed: ck.config.training.seed,
        })
    }

    /// Scores encoded rows (row-major, `pre.n_features()` per row).
    pub fn score(&self, x: &[f32]) -> Result<Scored> {
        Ok(anomaly(&self.pre, self.detector.score(x)?))
    }

    pub fn is_anomaly(&self, score: f32) -> bool {
        score >= self.threshold
    }

    /// Flags the top share `r` of the training rows from now on (`predict --contamination`).
    pub fn use_contamination(&mut self, r: f64) -> Result<()> {
        self.threshold = decision::contamination(&self.train_quantiles, r)?;
        Ok(())
    }

    /// The share of the training rows the current threshold flags (NaN when not kept).
    pub fn training_flag_rate(&self) -> f64 {
        decision::flagged_share(&self.train_quantiles, self.threshold)
    }

    /// Scores a labelled dataset and, for multiclass, reports per class.
    pub fn evaluate(&self, ds: &Dataset) -> Result<Predictions> {
        let scored = self.score(&ds.x)?;
        let classes = (!self.pre.classes.is_empty()).then(|| {
            ClassReport::compute(
                &scored.class_probs,
                ds,
                &self.pre.classes,
                &scored.anomaly,
                self.threshold,
            )
        });
        let ensemble = scored.ensemble.as_ref().map(|votes| {
            EnsembleReport::compute(&self.members, votes, &scored.anomaly, self.threshold, &ds.y)
        });
        let clusters = self.detector.clusters().map(|model| {
            ClusterReport::compute(model, &ds.x, self.pre.n_features(), &ds.y, self.seed)
        });
        Ok(Predictions {
            anomaly: scored.anomaly,
            classes,
            ensemble,
            clusters,
        })
    }
}
