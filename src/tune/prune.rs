//! Stopping bad trials early. A trial reports its validation ROC AUC (PR AUC when that is
//! the objective; the threshold-free figure available mid-run) after every epoch of a neural
//! family and every 10 boosting rounds; a pruner compares it with the same report of the
//! trials it depends on only (those at least `lag` before it), so whether a trial is pruned
//! never depends on timing.

use serde::{Deserialize, Serialize};

use crate::checkpoint::EpochRecord;
use crate::eval::{average_precision, roc_auc};
use crate::train::Observer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PrunerKind {
    None,
    /// Optuna's MedianPruner: stop when the trial's best so far is below the median of the
    /// finished trials' values at the same step (from 5 finished trials on, however many of
    /// them reached that step).
    Median,
    /// Asynchronous successive halving (Optuna's SuccessiveHalvingPruner: minimum resource
    /// 1 report, reduction factor 3): at the 1st, 3rd, 9th, 27th … report, continue only
    /// in the top third of every trial that reached it.
    Asha,
}

/// One report: the part (cv fold, or 1 for the validation split), the epoch or boosting round,
/// and the figure then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub fold: usize,
    pub step: usize,
    pub value: f64,
}

/// An earlier trial's reports, and whether it ran to its end.
pub struct Curve<'a> {
    pub reports: &'a [Report],
    pub finished: bool,
}

const MEDIAN_STARTUP: usize = 5;
const REDUCTION: usize = 3;

impl PrunerKind {
    /// Whether a trial whose reports in this part are `own` (the latest last) goes on.
    pub fn keep(self, own: &[Report], earlier: &[Curve]) -> bool {
        let Some(last) = own.last() else {
            return true;
        };
        let at = |c: &Curve, pick: &dyn Fn(&Report) -> bool| -> Option<f64> {
            c.reports
                .iter()
                .find(|r| r.fold == last.fold && pick(r))
                .map(|r| r.value)
        };
        match self {
            PrunerKind::None => true,
            PrunerKind::Median => {
                // As Optuna: from 5 finished trials on, against those of them that reached
                // this step (one is enough; a step none reached prunes nothing).
                let finished: Vec<&Curve> = earlier.iter().filter(|c| c.finished).collect();
                if finished.len() < MEDIAN_STARTUP {
                    return true;
                }
                let mut others: Vec<f64> = (finished.into_iter())
                    .filter_map(|c| at(c, &|r| r.step == last.step))
                    .collect();
                if others.is_empty() {
                    return true;
                }
                others.sort_by(f64::total_cmp);
                let n = others.len();
                let median = if n % 2 == 1 {
                    others[n / 2]
                } else {
                    (others[n / 2 - 1] + others[n / 2]) / 2.0
                };
                let best = own
                    .iter()
                    .map(|r| r.value)
                    .fold(f64::NEG_INFINITY, f64::max);
                best >= median
            }
            PrunerKind::Asha => {
                let rung = own.len();
                if !is_power(rung, REDUCTION) {
                    return true;
                }
                // The rung-th report of each earlier trial in this part, and ours.
                let mut competing: Vec<f64> = earlier
                    .iter()
                    .filter_map(|c| {
                        let mut mine = c.reports.iter().filter(|r| r.fold == last.fold);
                        mine.nth(rung - 1).map(|r| r.value)
                    })
                    .collect();
                competing.push(last.value);
                competing.sort_by(|a, b| b.total_cmp(a));
                // Optuna: the top ⌊n/η⌋ go on; while fewer than η compete, only the best.
                let top = (competing.len() / REDUCTION).max(1);
                last.value >= competing[top - 1]
            }
        }
    }
}

/// 1, η, η², …
fn is_power(mut n: usize, base: usize) -> bool {
    if n == 0 {
        return false;
    }
    while n.is_multiple_of(base) {
        n /= base;
    }
    n == 1
}

/// The figure a trial reports mid-run.
pub fn intermediate(pr_auc: bool, scores: &[f32], y: &[f32]) -> Option<f64> {
    if pr_auc {
        average_precision(scores, y)
    } else {
        roc_auc(scores, y)
    }
}

/// A trial's observer for one part: records each report, asks the pruner, and passes
/// everything else on to the run's log.
pub struct Watch<'a> {
    pub log: &'a mut dyn Observer,
    pub pruner: PrunerKind,
    pub pr_auc: bool,
    pub fold: usize,
    pub earlier: &'a [Curve<'a>],
    /// Every report of the trial so far (all parts).
    pub reports: Vec<Report>,
    pub pruned: bool,
}

impl Observer for Watch<'_> {
    fn epoch_started(&mut self, epoch: usize, batches: usize) {
        self.log.epoch_started(epoch, batches);
    }
    fn batch_done(&mut self, global_step: u64, loss: f64) {
        self.log.batch_done(global_step, loss);
    }
    fn epoch_done(&mut self, record: &EpochRecord, improved: bool, best_val_loss: f64) {
        self.log.epoch_done(record, improved, best_val_loss);
    }
    fn note(&mut self, message: &str) {
        self.log.note(message);
    }
    fn keep_going(&mut self, step: usize, scores: &[f32], y: &[f32]) -> bool {
        let Some(value) = intermediate(self.pr_auc, scores, y) else {
            return true;
        };
        self.reports.push(Report {
            fold: self.fold,
            step,
            value,
        });
        let own: Vec<Report> = (self.reports.iter())
            .filter(|r| r.fold == self.fold)
            .cloned()
            .collect();
        let keep = self.pruner.keep(&own, self.earlier);
        if !keep {
            self.log.note(&format!(
                "pruned at step {step}: validation figure {value:.4}"
            ));
            self.pruned = true;
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(values: &[f64]) -> Vec<Report> {
        (values.iter().enumerate())
            .map(|(i, &value)| Report {
                fold: 1,
                step: i + 1,
                value,
            })
            .collect()
    }

    #[test]
    fn median_pruning_stops_a_trial_whose_curve_is_worse() {
        let good: Vec<Vec<Report>> = (0..5)
            .map(|i| curve(&[0.80 + i as f64 * 0.01, 0.90, 0.93]))
            .collect();
        let earlier: Vec<Curve> = (good.iter())
            .map(|r| Curve {
                reports: r,
                finished: true,
            })
            .collect();
        let worse = curve(&[0.70, 0.75]);
        assert!(!PrunerKind::Median.keep(&worse[..1], &earlier));
        let better = curve(&[0.85, 0.95]);
        assert!(PrunerKind::Median.keep(&better[..1], &earlier));
        assert!(PrunerKind::Median.keep(&better, &earlier));
        // Fewer than five finished trials: never.
        assert!(PrunerKind::Median.keep(&worse[..1], &earlier[..4]));
        // Five finished, of which one ran longer: its value alone is the median there (as
        // Optuna's n_min_trials = 1); a step none reached prunes nothing.
        let long = curve(&[0.80, 0.90, 0.93, 0.95]);
        let mut with_long: Vec<Curve> = (good[..4].iter())
            .map(|r| Curve {
                reports: r,
                finished: true,
            })
            .collect();
        with_long.push(Curve {
            reports: &long,
            finished: true,
        });
        let stalls = curve(&[0.85, 0.93, 0.93, 0.93]);
        assert!(PrunerKind::Median.keep(&stalls[..3], &with_long));
        assert!(!PrunerKind::Median.keep(&stalls, &with_long));
        let longer = curve(&[0.85, 0.95, 0.94, 0.96, 0.1]);
        assert!(PrunerKind::Median.keep(&longer, &with_long));
        // A pruned trial does not count towards the median.
        let unfinished: Vec<Curve> = (good.iter())
            .map(|r| Curve {
                reports: r,
                finished: false,
            })
            .collect();
        assert!(PrunerKind::Median.keep(&worse[..1], &unfinished));
        assert!(PrunerKind::None.keep(&worse[..1], &earlier));
    }

    #[test]
    fn asha_keeps_the_top_third_at_rungs_one_three_and_nine() {
        let others: Vec<Vec<Report>> = (0..8).map(|i| curve(&[0.5 + i as f64 * 0.05; 9])).collect();
        let earlier: Vec<Curve> = (others.iter())
            .map(|r| Curve {
                reports: r,
                finished: false,
            })
            .collect();
        // 9 compete at rung 1: the top 3 go on (values 0.85, 0.80, 0.75 and better).
        assert!(PrunerKind::Asha.keep(&curve(&[0.76]), &earlier));
        assert!(!PrunerKind::Asha.keep(&curve(&[0.74]), &earlier));
        // Not a rung (report 2): always on.
        assert!(PrunerKind::Asha.keep(&curve(&[0.76, 0.1]), &earlier));
        assert!(!PrunerKind::Asha.keep(&curve(&[0.76, 0.1, 0.1]), &earlier));
        // The first trial, alone at its rung, goes on.
        assert!(PrunerKind::Asha.keep(&curve(&[0.1]), &[]));
        assert!(is_power(1, 3) && is_power(9, 3) && !is_power(6, 3) && !is_power(0, 3));
    }
}
