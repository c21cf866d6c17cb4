//! Metrics of a binary detector: a confusion matrix at a threshold, and ranking metrics.

pub mod assess;
pub mod clusters;
pub mod decision;
pub mod drift;
pub mod ensemble;
pub mod inspect;
pub mod multiclass;
pub mod summary;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    pub tn: usize,
    pub fp: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
    pub tp: usize,
}

impl Confusion {
    /// Rows are predicted positive when their probability is at least `threshold`.
    pub fn at(probs: &[f32], y: &[f32], threshold: f32) -> Confusion {
        let mut c = Confusion::default();
        for (&p, &t) in probs.iter().zip(y) {
            c.count(p >= threshold, t == 1.0);
        }
        c
    }

    /// Counts one row: whether it was flagged, and whether it is an anomaly.
    pub fn count(&mut self, flagged: bool, anomaly: bool) {
        match (flagged, anomaly) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.tn + self.fp + self.fn_ + self.tp
    }

    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.total())
    }

    /// 0 when nothing is predicted positive (scikit-learn's `zero_division=0`).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    pub fn false_positive_rate(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }

    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The figures `test` reports. AUCs are `None` when the data hold a single class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub threshold: f32,
    pub confusion: Confusion,
    pub rows: usize,
    pub positives: usize,
}

impl Metrics {
    pub fn compute(probs: &[f32], y: &[f32], threshold: f32) -> Metrics {
        let c = Confusion::at(probs, y, threshold);
        Metrics {
            accuracy: c.accuracy(),
            precision: c.precision(),
            recall: c.recall(),
            f1: c.f1(),
            roc_auc: roc_auc(probs, y),
            pr_auc: average_precision(probs, y),
            threshold,
            confusion: c,
            rows: y.len(),
            positives: c.tp + c.fn_,
        }
    }
}

/// Scores sorted once, descending, with the boundaries of runs of equal scores. Every ranking
/// metric is one pass over it, optionally weighted per row, which is what makes a thousand
/// bootstrap resamples cheap (a resample is a weight per row: how often it was drawn).
pub struct Ranked<'a> {
    scores: &'a [f32],
    y: &'a [f32],
    order: Vec<usize>,
    /// `order[group_start[g]..group_start[g + 1]]` share one score.
    group_start: Vec<usize>,
}

impl<'a> Ranked<'a> {
    pub fn new(scores: &'a [f32], y: &'a [f32]) -> Ranked<'a> {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let mut group_start = vec![0];
        for i in 1..order.len() {
            if scores[order[i]] != scores[order[i - 1]] {
                group_start.push(i);
            }
        }
        group_start.push(order.len());
        Ranked {
            scores,
            y,
            order,
            group_start,
        }
    }

    /// (score, weighted positives, weighted negatives) per group of equal scores, descending.
    pub(crate) fn groups<'w>(
        &'w self,
        weight: &'w dyn Fn(usize) -> f64,
    ) -> impl Iterator<Item = (f32, f64, f64)> + 'w {
        self.group_start.windows(2).map(move |g| {
            let (mut pos, mut neg) = (0.0, 0.0);
            for &i in &self.order[g[0]..g[1]] {
                if self.y[i] == 1.0 {
                    pos += weight(i)
                } else {
                    neg += weight(i)
                }
            }
            (self.scores[self.order[g[0]]], pos, neg)
        })
    }

    /// ROC AUC (ties count half, as scikit-learn) and average precision; `None` with one class.
    pub fn auc_ap(&self, weight: &dyn Fn(usize) -> f64) -> (Option<f64>, Option<f64>) {
        let (p, n) = self
            .groups(weight)
            .fold((0.0, 0.0), |(p, n), (_, gp, gn)| (p + gp, n + gn));
        if p == 0.0 || n == 0.0 {
            return (None, None);
        }
        let (mut tp, mut seen, mut area, mut ap) = (0.0, 0.0, 0.0, 0.0);
        for (_, gp, gn) in self.groups(weight) {
            area += gn * (tp + gp / 2.0);
            tp += gp;
            seen += gp + gn;
            ap += (gp / p) * (tp / seen);
        }
        (Some(area / (p * n)), Some(ap))
    }

    /// Points of the ROC curve (false positive rate, true positive rate), from (0, 0).
    pub fn roc_curve(&self) -> Vec<(f64, f64)> {
        let one = |_| 1.0;
        let (p, n) = self
            .groups(&one)
            .fold((0.0, 0.0), |(p, n), (_, gp, gn)| (p + gp, n + gn));
        let (mut tp, mut fp) = (0.0, 0.0);
        let mut points = vec![(0.0, 0.0)];
        for (_, gp, gn) in self.groups(&one) {
            tp += gp;
            fp += gn;
            points.push((fp / n.max(1.0), tp / p.max(1.0)));
        }
        points
    }

    /// Points of the precision-recall curve (recall, precision), from recall 0.
    pub fn pr_curve(&self) -> Vec<(f64, f64)> {
        let one = |_| 1.0;
        let p: f64 = self.groups(&one).map(|g| g.1).sum();
        let (mut tp, mut seen) = (0.0, 0.0);
        let mut points = Vec::new();
        for (_, gp, gn) in self.groups(&one) {
            tp += gp;
            seen += gp + gn;
            if points.is_empty() {
                points.push((0.0, tp / seen));
            }
            points.push((tp / p.max(1.0), tp / seen));
        }
        points
    }

    /// (threshold, precision, recall, F1) at each distinct score used as the threshold.
    pub fn sweep(&self) -> Vec<(f64, f64, f64, f64)> {
        let one = |_| 1.0;
        let p: f64 = self.groups(&one).map(|g| g.1).sum();
        let (mut tp, mut fp) = (0.0, 0.0);
        self.groups(&one)
            .map(|(score, gp, gn)| {
                tp += gp;
                fp += gn;
                let precision = tp / (tp + fp);
                let recall = if p > 0.0 { tp / p } else { 0.0 };
                let f1 = if tp > 0.0 {
                    2.0 * tp / (tp + fp + p)
                } else {
                    0.0
                };
                (score as f64, precision, recall, f1)
            })
            .collect()
    }
}

/// Area under the ROC curve (ties count half, as in scikit-learn).
pub fn roc_auc(scores: &[f32], y: &[f32]) -> Option<f64> {
    Ranked::new(scores, y).auc_ap(&|_| 1.0).0
}

/// Average precision: the step-wise area under the precision-recall curve, as scikit-learn.
pub fn average_precision(scores: &[f32], y: &[f32]) -> Option<f64> {
    Ranked::new(scores, y).auc_ap(&|_| 1.0).1
}

#[cfg(test)]
mod tests {
    use super::*;

    const Y: [f32; 8] = [0., 0., 1., 1., 0., 1., 0., 1.];
    const P: [f32; 8] = [0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.6, 0.55];

    #[test]
    fn confusion_matrix_and_rates() {
        let m = Metrics::compute(&P, &Y, 0.5);
        assert_eq!(
            m.confusion,
            Confusion {
                tn: 3,
                fp: 1,
                fn_: 1,
                tp: 3
            }
        );
        assert_eq!(
            (m.accuracy, m.precision, m.recall, m.f1),
            (0.75, 0.75, 0.75, 0.75)
        );
    }

    #[test]
    fn ranking_metrics_match_scikit_learn() {
        // 13 of the 16 (positive, negative) pairs are ordered right; precision at each positive
        // in rank order is 1, 1, 3/4, 4/6 (scikit-learn gives the same 0.8125 and 0.854167).
        assert!((roc_auc(&P, &Y).unwrap() - 13.0 / 16.0).abs() < 1e-12);
        assert!((average_precision(&P, &Y).unwrap() - (2.75 + 4.0 / 6.0) / 4.0).abs() < 1e-12);
        // All-tied scores: AUC 0.5, AP = prevalence.
        assert_eq!(roc_auc(&[0.3; 8], &Y), Some(0.5));
        assert_eq!(average_precision(&[0.3; 8], &Y), Some(0.5));
        assert_eq!(roc_auc(&P, &[0.0; 8]), None);
    }
}
