//! The scorer: a checkpoint's preprocessing, detector and decision rule, built once. Every
//! command that scores rows (`test`, `assess`, `cv`, `predict`) goes through it, so "load,
//! encode, score, threshold" exists once.

use std::fmt;

use anyhow::Result;
use burn::tensor::Device;
use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::data::Dataset;
use crate::data::preprocess::Preprocessor;
use crate::eval::clusters::ClusterReport;
use crate::eval::decision;
use crate::eval::ensemble::EnsembleReport;
use crate::eval::multiclass::ClassReport;
use crate::model::ModelKind;
use crate::model::detector::{Detector, Output, StepWeights};
use crate::model::ensemble::Votes;

pub mod sets;

pub struct Scorer {
    pub pre: Preprocessor,
    detector: Box<dyn Detector>,
    /// Rows scoring at least this are anomalies.
    pub threshold: f32,
    /// The training rows' score quantiles (empty for format-1 checkpoints).
    train_quantiles: Vec<f32>,
    /// The family (a hybrid's reasons are explained part by part).
    pub kind: ModelKind,
    /// An ensemble's member families, or a hybrid's parts, in order (else empty).
    pub members: Vec<&'static str>,
    /// The run's seed (the clustering report's silhouette sample).
    seed: u64,
    /// A sequence family's windows: rows are windows of consecutive flows.
    pub sequence: Option<crate::config::SequenceConfig>,
}

/// A batch's scores.
pub struct Scored {
    /// Per row: the anomaly score, higher meaning more anomalous (for classifiers, the
    /// probability of the anomalous classes).
    pub anomaly: Vec<f32>,
    /// Multiclass: each row's class probabilities (`pre.classes.len()` per row); else empty.
    pub class_probs: Vec<f32>,
    /// An ensemble (or a hybrid): its members' (parts') scores and votes, and each row's
    /// severity.
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
        Output::Hybrid { votes, class_probs } => Scored {
            anomaly: votes.combined.clone(),
            class_probs,
            ensemble: Some(votes),
        },
    }
}

/// One row's verdict, as `predict` writes it and `serve` answers it.
pub struct Verdict<'a> {
    pub score: f32,
    pub flagged: bool,
    /// Multiclass: the most probable class and its probability.
    pub class: Option<(&'a str, f32)>,
    pub ensemble: Option<EnsembleRow<'a>>,
    /// When explaining, a flagged row's top reasons.
    pub reasons: Option<&'a [Reason]>,
}

/// An ensemble's view of a row: each member's score and vote, and how many agree.
pub struct EnsembleRow<'a> {
    pub scores: &'a [f32],
    pub votes: &'a [bool],
    pub confidence: f64,
    pub severity: &'static str,
}

impl Scored {
    /// Row `i`'s verdict, flagged at `threshold`; `classes` names a multiclass model's columns.
    pub fn verdict<'a>(&'a self, classes: &'a [String], i: usize, threshold: f32) -> Verdict<'a> {
        let k = classes.len();
        let class = (k > 0).then(|| {
            let probs = &self.class_probs[i * k..(i + 1) * k];
            let (c, p) = probs
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (c, &p)| {
                    if p > best.1 { (c, p) } else { best }
                });
            (classes[c].as_str(), p)
        });
        let ensemble = self.ensemble.as_ref().map(|v| {
            let m = v.members;
            EnsembleRow {
                scores: &v.member_scores[i * m..(i + 1) * m],
                votes: &v.member_votes[i * m..(i + 1) * m],
                confidence: v.confidence(i),
                severity: v.severity[i].as_str(),
            }
        });
        let score = self.anomaly[i];
        Verdict {
            score,
            flagged: score >= threshold,
            class,
            ensemble,
            reasons: None,
        }
    }
}

/// One output row as a JSON object, as `predict --format jsonl` writes it and `serve` answers:
/// `row`, the kept columns, then `score`, `is_anomaly`, `class` and `class_probability`
/// (multiclass), `<member>_score`, `<member>_vote`, `confidence` and `severity` (ensembles),
/// `reasons` (a flagged row, when explaining); or
/// null scores and the `error`. Floats are written in their shortest f32 form; NaN as null.
pub struct JsonRow<'a> {
    pub row: usize,
    /// A Kafka message's partition and offset.
    pub source: Option<(i32, i64)>,
    /// Column names and the row's cells.
    pub keep: (&'a [String], &'a [String]),
    pub verdict: std::result::Result<&'a Verdict<'a>, &'a str>,
    /// An ensemble's member families (else empty).
    pub members: &'a [&'static str],
}

impl serde::Serialize for JsonRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("row", &self.row)?;
        if let Some((partition, offset)) = self.source {
            map.serialize_entry("partition", &partition)?;
            map.serialize_entry("offset", &offset)?;
        }
        for (name, cell) in self.keep.0.iter().zip(self.keep.1) {
            map.serialize_entry(name, cell)?;
        }
        let v = match self.verdict {
            Ok(v) => v,
            Err(e) => {
                map.serialize_entry("score", &())?;
                map.serialize_entry("is_anomaly", &())?;
                map.serialize_entry("error", e)?;
                return map.end();
            }
        };
        map.serialize_entry("score", &v.score)?;
        map.serialize_entry("is_anomaly", &v.flagged)?;
        if let Some((c, p)) = v.class {
            map.serialize_entry("class", c)?;
            map.serialize_entry("class_probability", &p)?;
        }
        if let Some(e) = &v.ensemble {
            for ((m, s), vote) in self.members.iter().zip(e.scores).zip(e.votes) {
                map.serialize_entry(&format!("{m}_score"), s)?;
                map.serialize_entry(&format!("{m}_vote"), vote)?;
            }
            map.serialize_entry("confidence", &e.confidence)?;
            map.serialize_entry("severity", e.severity)?;
        }
        if let Some(r) = v.reasons {
            map.serialize_entry("reasons", r)?;
        }
        map.end()
    }
}

/// One column's part in a row's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub feature: String,
    /// The row's value, as the file wrote it (a category's name).
    pub value: String,
    /// The training rows' median, or most common value.
    pub typical: String,
    /// Numeric columns: where the value falls among the training rows, in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentile: Option<f32>,
    /// Categorical and boolean columns: the share of training rows with this value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<f32>,
    /// How much the column raises the row's score.
    pub effect: f32,
    /// A hybrid: the part whose probability the column raises (the effect is that rise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<&'static str>,
    /// A sequence model's step (`feature` names it, `effect` is its attention weight): the
    /// window's flows it covers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flows: Option<Flows>,
}

/// The flows of a window one step of a sequence model covers: the first and last by row
/// number (from 1 over the input) and by `order_by` cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flows {
    pub rows: [usize; 2],
    pub from: String,
    pub to: String,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let Reason {
            feature,
            value,
            typical,
            effect,
            ..
        } = self;
        if let Some(Flows { rows, from, to }) = &self.flows {
            let [first, last] = rows;
            write!(f, "{feature} ({value}: rows {first}-{last}")?;
            if !from.is_empty() {
                write!(f, ", {from} to {to}")?;
            }
            return write!(f, ") weight {effect:.4}");
        }
        write!(f, "{feature} = {value} (")?;
        if let Some(p) = self.percentile {
            write!(f, "{p:.1}th percentile of training rows, median {typical}")?;
        } else if let Some(s) = self.share {
            write!(
                f,
                "{:.1}% of training rows, most common {typical}",
                100.0 * s
            )?;
        }
        write!(f, ") {effect:+.4}")?;
        match self.part {
            Some(part) => write!(f, " [{part}]"),
            None => Ok(()),
        }
    }
}

/// Scores every row of a dataset: its rows as they are, or its windows built a chunk at a
/// time (never all at once).
pub fn score_dataset(detector: &dyn Detector, ds: &Dataset) -> Result<Output> {
    if ds.windows.is_none() {
        return detector.score(&ds.x);
    }
    const CHUNK: usize = 4096;
    let rows: Vec<usize> = (0..ds.len()).collect();
    let (mut values, mut width, mut buf) = (Vec::new(), 1, Vec::new());
    for chunk in rows.chunks(CHUNK) {
        buf.clear();
        ds.gather(chunk, &mut buf);
        match detector.score(&buf)? {
            Output::Probabilities {
                values: v,
                width: w,
            } => {
                values.extend(v);
                width = w;
            }
            Output::Scores(_) | Output::Ensemble(_) | Output::Hybrid { .. } => {
                unreachable!("sequence families are classifiers scoring windows alone")
            }
        }
    }
    Ok(Output::Probabilities { values, width })
}

impl Scorer {
    pub fn from_checkpoint(ck: &Checkpoint, device: &Device) -> Result<Scorer> {
        Ok(Scorer {
            pre: ck.preprocessor.clone(),
            detector: ck.detector.load(device)?,
            threshold: ck.threshold,
            train_quantiles: ck.train_score_quantiles.clone(),
            kind: ck.detector.kind(),
            members: ck.detector.members(),
            seed: ck.config.training.seed,
            sequence: ck
                .detector
                .kind()
                .is_sequence()
                .then(|| ck.config.sequence.clone()),
        })
    }

    /// Scores encoded rows (row-major, `pre.n_features()` per row).
    pub fn score(&self, x: &[f32]) -> Result<Scored> {
        Ok(anomaly(&self.pre, self.detector.score(x)?))
    }

    /// A sequence model with an attention head: its weights over each window's steps.
    pub fn step_weights(&self, x: &[f32]) -> Result<Option<StepWeights>> {
        self.detector.step_weights(x)
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

    /// The training rows' scores, sorted (or evenly spaced quantiles of them; empty for
    /// format-1 checkpoints).
    pub fn train_quantiles(&self) -> &[f32] {
        &self.train_quantiles
    }

    /// Scores a labelled dataset and, for multiclass, reports per class.
    pub fn evaluate(&self, ds: &Dataset) -> Result<Predictions> {
        let scored = anomaly(&self.pre, score_dataset(&*self.detector, ds)?);
        // An unsupervised part of a hybrid trained on multiclass data has classes but scores.
        let classes = (!scored.class_probs.is_empty()).then(|| {
            ClassReport::compute(
                &scored.class_probs,
                ds,
                &self.pre.classes,
                &scored.anomaly,
                self.threshold,
            )
        });
        let ensemble = scored.ensemble.as_ref().map(|votes| {
            let names = (&self.members[..], self.kind.name());
            EnsembleReport::compute(names, votes, &scored.anomaly, self.threshold, &ds.y)
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
