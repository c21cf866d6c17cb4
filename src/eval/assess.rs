//! Statistical honesty: every metric with a 95% bootstrap interval, next to what always
//! predicting the larger class would score, and a plain-words verdict.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::eval::{Metrics, Ranked};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }
}

/// 95% percentile-bootstrap intervals; AUC intervals are `None` when undefined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intervals {
    pub resamples: usize,
    pub accuracy: Interval,
    pub precision: Interval,
    pub recall: Interval,
    pub f1: Interval,
    pub roc_auc: Option<Interval>,
    pub pr_auc: Option<Interval>,
}

/// Always predicting the larger class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub majority_class: String,
    pub accuracy: f64,
    pub roc_auc: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub metrics: Metrics,
    pub intervals: Intervals,
    pub baseline: Baseline,
    /// Its accuracy interval lies above the baseline's accuracy, or its ROC AUC interval
    /// excludes chance (a real ranking, whatever the threshold makes of it).
    pub beats_baseline: bool,
    pub verdict: String,
}

fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_unstable_by(|a, b| a.total_cmp(b));
    let pos = q * (values.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
}

fn interval(mut values: Vec<f64>) -> Option<Interval> {
    values.retain(|v| v.is_finite());
    (!values.is_empty()).then(|| Interval {
        low: percentile(&mut values, 0.025),
        high: percentile(&mut values, 0.975),
    })
}

impl Assessment {
    /// Metrics at `threshold`, with `resamples` bootstrap resamples drawn from `seed`.
    pub fn new(
        probs: &[f32],
        y: &[f32],
        threshold: f32,
        resamples: usize,
        seed: u64,
    ) -> Assessment {
        let metrics = Metrics::compute(probs, y, threshold);
        let ranked = Ranked::new(probs, y);
        let n = y.len();
        // Each resample has its own seed, so the result does not depend on thread scheduling.
        let samples: Vec<[f64; 6]> = (0..resamples)
            .into_par_iter()
            .map(|b| {
                let mut rng =
                    StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b as u64);
                let mut count = vec![0u32; n];
                for _ in 0..n {
                    count[rng.random_range(0..n)] += 1;
                }
                let (mut tp, mut fp, mut fneg, mut tn) = (0.0, 0.0, 0.0, 0.0);
                for i in 0..n {
                    let w = count[i] as f64;
                    match (probs[i] >= threshold, y[i] == 1.0) {
                        (true, true) => tp += w,
                        (true, false) => fp += w,
                        (false, true) => fneg += w,
                        (false, false) => tn += w,
                    }
                }
                let ratio = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
                let (auc, ap) = ranked.auc_ap(&|i| count[i] as f64);
                [
                    ratio(tp + tn, n as f64),
                    ratio(tp, tp + fp),
                    ratio(tp, tp + fneg),
                    ratio(2.0 * tp, 2.0 * tp + fp + fneg),
                    auc.unwrap_or(f64::NAN),
                    ap.unwrap_or(f64::NAN),
                ]
            })
            .collect();
        let column = |k: usize| samples.iter().map(|s| s[k]).collect::<Vec<f64>>();
        let point = Interval {
            low: 0.0,
            high: 0.0,
        };
        let intervals = Intervals {
            resamples,
            accuracy: interval(column(0)).unwrap_or(point),
            precision: interval(column(1)).unwrap_or(point),
            recall: interval(column(2)).unwrap_or(point),
            f1: interval(column(3)).unwrap_or(point),
            roc_auc: metrics.roc_auc.and(interval(column(4))),
            pr_auc: metrics.pr_auc.and(interval(column(5))),
        };
        let positives = metrics.positives as f64;
        let (majority_class, accuracy) = if positives * 2.0 > n as f64 {
            ("anomaly", positives / n as f64)
        } else {
            ("normal", 1.0 - positives / n.max(1) as f64)
        };
        let baseline = Baseline {
            majority_class: majority_class.into(),
            accuracy,
            roc_auc: 0.5,
        };
        let acc_overlaps = intervals.accuracy.low <= baseline.accuracy;
        let auc_chance = intervals.roc_auc.is_none_or(|ci| ci.contains(0.5));
        let beats_baseline = !(acc_overlaps && auc_chance);
        let auc_text = match (metrics.roc_auc, intervals.roc_auc) {
            (Some(a), Some(ci)) => format!("ROC AUC {a:.3} (95% CI {:.3}–{:.3})", ci.low, ci.high),
            _ => "ROC AUC undefined (one class)".into(),
        };
        let acc_text = format!(
            "accuracy {:.3} (95% CI {:.3}–{:.3}) against {:.3} for always predicting '{majority_class}'",
            metrics.accuracy, intervals.accuracy.low, intervals.accuracy.high, baseline.accuracy
        );
        let verdict = if !acc_overlaps {
            format!("The model beats the majority-class baseline: {acc_text}; {auc_text}.")
        } else if beats_baseline {
            format!(
                "The model ranks anomalies above normal rows better than chance ({auc_text}), but \
                 at threshold {:.3} its {acc_text} does not beat the baseline; a threshold chosen \
                 on validation (training.threshold: max_f1 or youden) may serve better.",
                metrics.threshold
            )
        } else {
            format!(
                "The model does not beat the majority-class baseline: {acc_text}, and the {auc_text} includes 0.5 (chance)."
            )
        };
        Assessment {
            metrics,
            intervals,
            baseline,
            beats_baseline,
            verdict,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_ranker_beats_the_baseline_and_a_random_one_does_not() {
        let y: Vec<f32> = (0..400).map(|i| (i % 10 == 0) as u8 as f32).collect();
        let perfect: Vec<f32> = y
            .iter()
            .map(|&v| if v == 1.0 { 0.9 } else { 0.1 })
            .collect();
        let a = Assessment::new(&perfect, &y, 0.5, 300, 1);
        assert!(a.beats_baseline, "{}", a.verdict);
        assert_eq!(
            a.intervals.roc_auc,
            Some(Interval {
                low: 1.0,
                high: 1.0
            })
        );
        assert!((a.baseline.accuracy - 0.9).abs() < 1e-12);

        // A perfect ranking whose scores all fall below the threshold: it has signal, but its
        // accuracy is the baseline's, and the verdict says both.
        let low: Vec<f32> = perfect.iter().map(|p| p / 3.0).collect();
        let c = Assessment::new(&low, &y, 0.5, 300, 1);
        assert!(c.beats_baseline);
        assert!(
            c.verdict
                .starts_with("The model ranks anomalies above normal rows better than chance")
                && c.verdict.contains("does not beat the baseline"),
            "{}",
            c.verdict
        );

        // Scores unrelated to the labels, all below the threshold: the majority-class accuracy.
        let noise: Vec<f32> = (0..400)
            .map(|i| ((i * 7919) % 400) as f32 / 1000.0)
            .collect();
        let b = Assessment::new(&noise, &y, 0.5, 300, 1);
        assert!(!b.beats_baseline, "{}", b.verdict);
        assert!(
            b.verdict
                .starts_with("The model does not beat the majority-class baseline")
        );
        let ci = b.intervals.accuracy;
        assert!(ci.low < 0.9 && 0.9 < ci.high, "{ci:?}");
        // Seeded: the same intervals every time.
        assert_eq!(b, Assessment::new(&noise, &y, 0.5, 300, 1));
    }

    #[test]
    fn weighted_ranking_equals_duplicating_rows() {
        let y = [0., 1., 1., 0., 1.];
        let s = [0.2, 0.7, 0.4, 0.4, 0.9];
        let w = [1.0, 2.0, 0.0, 3.0, 1.0];
        let (auc, ap) = Ranked::new(&s, &y).auc_ap(&|i| w[i]);
        let (ys, ss): (Vec<f32>, Vec<f32>) = (0..5)
            .flat_map(|i| std::iter::repeat_n((y[i], s[i]), w[i] as usize))
            .unzip();
        assert_eq!(auc, crate::eval::roc_auc(&ss, &ys));
        assert_eq!(ap, crate::eval::average_precision(&ss, &ys));
    }
}
