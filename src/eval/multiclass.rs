//! Metrics of a multiclass detector: per class, macro and weighted averages, one-vs-rest ROC
//! AUC and the N×N confusion matrix. Rows whose class the model never saw are counted apart.

use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::data::labels::UNSEEN;
use crate::eval::roc_auc;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
    /// One-vs-rest; `None` when the class has no rows (or is all rows).
    pub roc_auc: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Averages {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub roc_auc: Option<f64>,
}

/// Test rows of a class the model was not trained on, and how many the anomaly score flagged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnseenClass {
    pub class: String,
    pub rows: usize,
    pub flagged_anomalous: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassReport {
    pub classes: Vec<String>,
    /// Over the rows of known classes.
    pub accuracy: f64,
    pub rows: usize,
    pub per_class: Vec<ClassMetrics>,
    /// Unweighted mean over classes with rows (scikit-learn's `macro`, AUC over defined ones).
    pub macro_avg: Averages,
    /// Weighted by support (scikit-learn's `weighted`).
    pub weighted_avg: Averages,
    /// `confusion[actual][predicted]`, predicted = the most probable class.
    pub confusion: Vec<Vec<usize>>,
    pub unseen: Vec<UnseenClass>,
}

impl ClassReport {
    /// `probs` holds one probability per class per row; `scores` and `threshold` are the
    /// anomaly view, used to say how many unseen-class rows were still flagged.
    pub fn compute(
        probs: &[f32],
        ds: &Dataset,
        classes: &[String],
        scores: &[f32],
        threshold: f32,
    ) -> ClassReport {
        let k = classes.len();
        let mut confusion = vec![vec![0usize; k]; k];
        let unseen = ds
            .unseen
            .iter()
            .map(|(class, rows)| UnseenClass {
                class: class.clone(),
                rows: rows.len(),
                flagged_anomalous: rows.iter().filter(|&&i| scores[i] >= threshold).count(),
            })
            .collect();
        let known: Vec<usize> = (0..ds.class.len())
            .filter(|&i| ds.class[i] != UNSEEN)
            .collect();
        for &i in &known {
            let row = &probs[i * k..(i + 1) * k];
            let predicted = (0..k)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
                .expect("at least one class");
            confusion[ds.class[i] as usize][predicted] += 1;
        }
        let mut per_class = Vec::with_capacity(k);
        for (c, name) in classes.iter().enumerate() {
            let tp = confusion[c][c];
            let support: usize = confusion[c].iter().sum();
            let predicted: usize = confusion.iter().map(|r| r[c]).sum();
            let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
            let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
            let scores: Vec<f32> = known.iter().map(|&i| probs[i * k + c]).collect();
            let y: Vec<f32> = known
                .iter()
                .map(|&i| (ds.class[i] as usize == c) as u8 as f32)
                .collect();
            per_class.push(ClassMetrics {
                class: name.clone(),
                precision,
                recall,
                f1: ratio(2 * tp, support + predicted),
                support,
                roc_auc: roc_auc(&scores, &y),
            });
        }
        let rows = known.len();
        let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
        ClassReport {
            classes: classes.to_vec(),
            accuracy: if rows == 0 {
                0.0
            } else {
                correct as f64 / rows as f64
            },
            rows,
            macro_avg: average(&per_class, |_| 1.0),
            weighted_avg: average(&per_class, |m| m.support as f64),
            per_class,
            confusion,
            unseen,
        }
    }
}

/// The weighted mean of each metric over classes with rows.
fn average(per_class: &[ClassMetrics], weight: impl Fn(&ClassMetrics) -> f64) -> Averages {
    let present: Vec<&ClassMetrics> = per_class.iter().filter(|m| m.support > 0).collect();
    let mean = |f: &dyn Fn(&ClassMetrics) -> Option<f64>| {
        let (sum, total) = present
            .iter()
            .filter_map(|m| f(m).map(|v| (v * weight(m), weight(m))))
            .fold((0.0, 0.0), |(s, t), (v, w)| (s + v, t + w));
        (total > 0.0).then(|| sum / total)
    };
    Averages {
        precision: mean(&|m| Some(m.precision)).unwrap_or(0.0),
        recall: mean(&|m| Some(m.recall)).unwrap_or(0.0),
        f1: mean(&|m| Some(m.f1)).unwrap_or(0.0),
        roc_auc: mean(&|m| m.roc_auc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_class_averages_confusion_and_unseen_rows() {
        let classes: Vec<String> = ["DoS", "Probe", "normal"].map(String::from).to_vec();
        // Actual: DoS, DoS, Probe, normal, normal, unseen.
        let ds = Dataset {
            class: vec![0, 0, 1, 2, 2, UNSEEN],
            y: vec![1., 1., 1., 0., 0., 1.],
            unseen: [("mscan".to_string(), vec![5])].into_iter().collect(),
            ..Default::default()
        };
        #[rustfmt::skip]
        let probs = [
            0.8, 0.1, 0.1,
            0.3, 0.6, 0.1,
            0.1, 0.7, 0.2,
            0.1, 0.1, 0.8,
            0.2, 0.1, 0.7,
            0.5, 0.3, 0.2,
        ];
        let scores: Vec<f32> = probs.chunks(3).map(|r| r[0] + r[1]).collect();
        let r = ClassReport::compute(&probs, &ds, &classes, &scores, 0.5);
        assert_eq!(r.confusion, [vec![1, 1, 0], vec![0, 1, 0], vec![0, 0, 2]]);
        assert_eq!((r.rows, r.accuracy), (5, 0.8));
        let dos = &r.per_class[0];
        assert_eq!((dos.precision, dos.recall, dos.support), (1.0, 0.5, 2));
        assert!((dos.f1 - 2.0 / 3.0).abs() < 1e-12);
        let probe = &r.per_class[1];
        assert_eq!((probe.precision, probe.recall), (0.5, 1.0));
        // scikit-learn: precision_recall_fscore_support(average="macro") = (0.8333, 0.8333, 0.7778)
        assert!((r.macro_avg.precision - 2.5 / 3.0).abs() < 1e-12);
        assert!((r.macro_avg.f1 - (2.0 / 3.0 + 2.0 / 3.0 + 1.0) / 3.0).abs() < 1e-12);
        assert!((r.weighted_avg.recall - 0.8).abs() < 1e-12);
        // DoS one-vs-rest over the known rows: scores 0.8, 0.3 vs 0.1, 0.1, 0.2 → AUC 1.
        assert_eq!(dos.roc_auc, Some(1.0));
        assert_eq!(
            r.unseen,
            [UnseenClass {
                class: "mscan".into(),
                rows: 1,
                flagged_anomalous: 1
            }]
        );
    }
}
