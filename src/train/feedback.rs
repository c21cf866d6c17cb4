//! Retraining from analyst feedback. Judged rows join the training rows: a classifier learns
//! them with their corrected labels; an unsupervised family takes false positives (and rows
//! judged normal) into its normal set and loses the rows judged anomalous from it. Each judged
//! row counts `feedback.weight` times. The old and new models are then compared on the judged
//! rows and on the held-out test rows, so a fix for false alarms that costs detection
//! elsewhere is caught.

use std::path::Path;

use anyhow::{Context, Result};
use burn::tensor::Device;
use serde::Serialize;

use super::{Observer, checkpoint_paths};
use crate::bail_input;
use crate::checkpoint::Checkpoint;
use crate::config::Config;
use crate::data::feedback::{self, FeedbackRecord, Judged};
use crate::data::{Dataset, Prepared, prepare_evaluation, write_atomic};
use crate::eval::Metrics;
use crate::score::Scorer;

/// Retraining from feedback: adds `file`'s judged rows to the training rows (see
/// [`add_to_training`]) after checking that the old model's rows still encode as they did.
pub fn add_feedback(
    file: &Path,
    config: &Config,
    (old, ck): (&Path, &Checkpoint),
    data: &mut Prepared,
) -> Result<Judged> {
    if config.model.kind.is_sequence() {
        bail_input!(
            "--resume-from {}: feedback judges single rows, and a sequence model learns from \
             windows of flows; retraining it from feedback is not supported",
            old.display()
        );
    }
    let mut now = data.pre.clone();
    now.profile = ck.preprocessor.profile.clone();
    if now != ck.preprocessor {
        bail_input!(
            "--resume-from {}: its training rows encode differently now (the data file or data.* \
             changed since it was trained)",
            old.display()
        );
    }
    let judged = feedback::read(file, &data.pre, &config.data)?;
    let weight = config.feedback.weight;
    let line = add_to_training(data, &judged, weight, config.model.kind.is_classifier());
    data.notices.push(line);
    data.feedback = Some(FeedbackRecord::new(file, &judged, weight, old)?);
    Ok(judged)
}

/// After retraining: the old and new model side by side; when the held-out ROC AUC fell by
/// more than `max_regression`, the old model becomes best.mpk again (the new one is kept as
/// rejected.mpk) and the run fails.
pub fn gate(
    max_regression: f64,
    (old, ck): (&Path, &Checkpoint),
    (new, judged): (&Checkpoint, &Judged),
    save_dir: &Path,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<()> {
    let c = Comparison::compute(ck, new, judged, device)?;
    observer.note(&format!(
        "old ({}) and retrained model:\n{}",
        old.display(),
        c.table()
    ));
    if c.auc_drop.is_nan() {
        observer.note(
            "note: a held-out ROC AUC is undefined (one class, or one score for every row), so \
             --max-regression cannot be checked",
        );
    }
    if c.auc_drop > max_regression {
        let (best, _) = checkpoint_paths(save_dir);
        let rejected = save_dir.join("rejected.mpk");
        std::fs::rename(&best, &rejected)?;
        let bytes = std::fs::read(old).with_context(|| format!("reading {}", old.display()))?;
        write_atomic(&best, bytes)?;
        anyhow::bail!(
            "the retrained model's held-out ROC AUC fell by {:.4} (more than --max-regression {}); \
             {} is the old model again, the retrained one is {}",
            c.auc_drop,
            max_regression,
            best.display(),
            rejected.display()
        );
    }
    Ok(())
}

/// Adds the judged rows to `data`'s training rows, each `weight` times, and returns a line on
/// what changed. `classifier`: learn every row with its corrected label (a multiclass model
/// learns only rows judged normal, as its normal class: an anomaly verdict names no class);
/// else rows judged normal join the normal set and training rows equal to a row judged
/// anomalous leave it.
pub fn add_to_training(
    data: &mut Prepared,
    judged: &Judged,
    weight: u32,
    classifier: bool,
) -> String {
    let train = &mut data.train;
    let d = train.n_features;
    let pre = &data.pre;
    let normal_class = pre.anomalous.iter().position(|a| !a).unwrap_or(0) as u32;
    let multiclass = !pre.classes.is_empty();
    let labels = judged.labels();
    let mut added = 0;
    let mut anomalous: Vec<&[f32]> = Vec::new();
    for (row, &y) in judged.x.chunks_exact(d).zip(&labels) {
        let learn = if classifier {
            y == 0.0 || !multiclass
        } else {
            if y == 1.0 {
                anomalous.push(row);
            }
            y == 0.0
        };
        if !learn {
            continue;
        }
        for _ in 0..weight {
            train.x.extend_from_slice(row);
            train.y.push(y);
            if multiclass {
                train.class.push(normal_class);
            }
            added += 1;
        }
    }
    let removed = remove_rows(train, &anomalous);
    let skipped = if classifier && multiclass {
        labels.iter().filter(|&&y| y == 1.0).count()
    } else {
        0
    };
    let mut line = format!(
        "feedback: {} judged rows; {added} training rows added (weight {weight})",
        judged.verdicts.len()
    );
    if removed > 0 {
        line += &format!("; {removed} training rows equal to rows judged anomalous removed");
    }
    if skipped > 0 {
        line += &format!(
            "; {skipped} rows judged anomalous skipped (a multiclass model needs their class)"
        );
    }
    line
}

/// Drops the rows of `ds` equal (bit for bit) to any of `rows`; returns how many.
fn remove_rows(ds: &mut Dataset, rows: &[&[f32]]) -> usize {
    if rows.is_empty() {
        return 0;
    }
    let d = ds.n_features;
    let bits = |r: &[f32]| r.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    let drop: std::collections::HashSet<Vec<u32>> = rows.iter().map(|r| bits(r)).collect();
    let keep: Vec<usize> = (0..ds.len())
        .filter(|&i| !drop.contains(&bits(&ds.x[i * d..(i + 1) * d])))
        .collect();
    let removed = ds.len() - keep.len();
    if removed > 0 {
        *ds = ds.subset(&keep);
    }
    removed
}

/// One model's figures in a [`Comparison`].
#[derive(Debug, Serialize)]
pub struct Side {
    /// Judged rows whose flag matches the analyst's verdict.
    pub feedback_agree: usize,
    /// Rows judged normal (false positives included) the model still flags.
    pub normal_flagged: usize,
    /// Rows judged anomalous the model flags.
    pub anomalous_flagged: usize,
    pub test: Metrics,
}

/// The old and the retrained model side by side.
#[derive(Debug, Serialize)]
pub struct Comparison {
    pub judged_rows: usize,
    pub judged_normal: usize,
    pub judged_anomalous: usize,
    pub old: Side,
    pub new: Side,
    /// How far the held-out ROC AUC fell (negative: it rose).
    pub auc_drop: f64,
}

impl Comparison {
    pub fn compute(
        old: &Checkpoint,
        new: &Checkpoint,
        judged: &Judged,
        device: &Device,
    ) -> Result<Comparison> {
        let (test, _) = prepare_evaluation(&new.config, &new.preprocessor, None)?;
        let labels = judged.labels();
        let side = |ck: &Checkpoint| -> Result<Side> {
            let scorer = Scorer::from_checkpoint(ck, device)?;
            let flags: Vec<bool> = scorer
                .score(&judged.x)?
                .anomaly
                .iter()
                .map(|&s| s >= scorer.threshold)
                .collect();
            let count = |anomaly: bool| {
                flags
                    .iter()
                    .zip(&labels)
                    .filter(|(f, y)| **f && (**y == 1.0) == anomaly)
                    .count()
            };
            let agree = flags
                .iter()
                .zip(&labels)
                .filter(|(f, y)| **f == (**y == 1.0))
                .count();
            let scores = scorer.score(&test.x)?.anomaly;
            Ok(Side {
                feedback_agree: agree,
                normal_flagged: count(false),
                anomalous_flagged: count(true),
                test: Metrics::compute(&scores, &test.y, scorer.threshold),
            })
        };
        let (old, new) = (side(old)?, side(new)?);
        let auc = |s: &Side| s.test.roc_auc.unwrap_or(f64::NAN);
        let anomalous = labels.iter().filter(|&&y| y == 1.0).count();
        Ok(Comparison {
            judged_rows: labels.len(),
            judged_normal: labels.len() - anomalous,
            judged_anomalous: anomalous,
            auc_drop: auc(&old) - auc(&new),
            old,
            new,
        })
    }

    /// The comparison as a table.
    pub fn table(&self) -> String {
        let (o, n) = (&self.old, &self.new);
        let auc = |s: &Side| s.test.roc_auc.map_or("n/a".into(), |a| format!("{a:.4}"));
        format!(
            "{:<44} {:>12} {:>12}\n\
             {:<44} {:>12} {:>12}\n\
             {:<44} {:>12} {:>12}\n\
             {:<44} {:>12} {:>12}\n\
             held-out test rows ({}):\n\
             {:<44} {:>12} {:>12}\n\
             {:<44} {:>12.4} {:>12.4}\n\
             {:<44} {:>12.4} {:>12.4}\n\
             {:<44} {:>12.4} {:>12.4}",
            "",
            "old model",
            "retrained",
            format!(
                "judged rows agreeing with the analysts ({})",
                self.judged_rows
            ),
            o.feedback_agree,
            n.feedback_agree,
            format!("  judged normal, still flagged (of {})", self.judged_normal),
            o.normal_flagged,
            n.normal_flagged,
            format!("  judged anomalous, flagged (of {})", self.judged_anomalous),
            o.anomalous_flagged,
            n.anomalous_flagged,
            o.test.rows,
            "  ROC AUC",
            auc(o),
            auc(n),
            "  F1",
            o.test.f1,
            n.test.f1,
            "  recall",
            o.test.recall,
            n.test.recall,
            "  false-positive rate",
            o.test.confusion.false_positive_rate(),
            n.test.confusion.false_positive_rate(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::feedback::Verdict;

    fn judged(rows: &[[f32; 2]], verdicts: &[Verdict]) -> Judged {
        Judged {
            x: rows.concat(),
            verdicts: verdicts.to_vec(),
            sha256: String::new(),
        }
    }

    fn prepared(x: Vec<f32>, y: Vec<f32>) -> Prepared {
        let pre: crate::data::preprocess::Preprocessor = serde_json::from_str(
            r#"{"columns": [], "feature_names": [], "missing": "error",
                "scaler": {"kind": "none", "offset": [], "scale": []}}"#,
        )
        .unwrap();
        Prepared {
            pre,
            train: Dataset {
                x,
                y,
                n_features: 2,
                ..Default::default()
            },
            val: Dataset::default(),
            test: Dataset::default(),
            notices: Vec::new(),
            selection: None,
            feedback: None,
        }
    }

    #[test]
    fn classifiers_learn_corrected_labels_and_unsupervised_normal_sets_change() {
        use Verdict::*;
        let j = judged(&[[1.0, 2.0], [3.0, 4.0]], &[FalsePositive, TruePositive]);
        let mut p = prepared(vec![3.0, 4.0, 5.0, 6.0], vec![0.0, 0.0]);
        let line = add_to_training(&mut p, &j, 3, true);
        assert_eq!(p.train.y, [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        assert_eq!(&p.train.x[4..6], [1.0, 2.0]);
        assert_eq!(&p.train.x[14..16], [3.0, 4.0]);
        assert!(line.contains("6 training rows added (weight 3)"), "{line}");

        // Unsupervised: the false positive joins the normal set; the training row equal to
        // the true positive leaves it.
        let mut p = prepared(vec![3.0, 4.0, 5.0, 6.0], vec![0.0, 0.0]);
        let line = add_to_training(&mut p, &j, 2, false);
        assert_eq!(p.train.x, [5.0, 6.0, 1.0, 2.0, 1.0, 2.0]);
        assert_eq!(p.train.y, [0.0, 0.0, 0.0]);
        assert!(line.contains("1 training rows equal to rows judged anomalous removed"));
    }
}
