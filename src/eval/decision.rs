//! Decision rules: the one place that turns anomaly scores into a threshold. A row is flagged
//! when its score is at least the threshold. The rule runs on the validation split (and, for
//! `contamination`, on the training rows' scores, whose distribution every checkpoint keeps so
//! the rule can be changed later without refitting: `predict --contamination`).

use anyhow::Result;

use crate::bail_input;
use crate::config::{ThresholdChoice, ThresholdRule};
use crate::eval::Ranked;

/// How many quantiles of the training scores a checkpoint keeps (all scores when fewer).
pub const KEPT_QUANTILES: usize = 10_001;

/// The scores a rule looks at.
pub struct RuleInputs<'a> {
    pub val_scores: &'a [f32],
    /// 0/1 per validation row.
    pub val_y: &'a [f32],
    /// [`score_quantiles`] of the training rows.
    pub train_quantiles: &'a [f32],
}

/// The threshold `choice` picks.
pub fn threshold(choice: ThresholdChoice, inputs: &RuleInputs) -> Result<f32> {
    Ok(match choice {
        ThresholdChoice::Fixed(t) => t as f32,
        ThresholdChoice::Rule(rule) => best_on_validation(inputs.val_scores, inputs.val_y, rule),
        ThresholdChoice::Contamination { contamination: r } => {
            contamination(inputs.train_quantiles, r)?
        }
        ThresholdChoice::NormalQuantile { normal_quantile: q } => {
            let mut normal = normal_scores(inputs, "normal_quantile")?;
            normal.sort_unstable_by(f32::total_cmp);
            quantile(&normal, q)
        }
        ThresholdChoice::TargetFpr { target_fpr: f } => {
            target_fpr(&normal_scores(inputs, "target_fpr")?, f)
        }
    })
}

fn normal_scores(inputs: &RuleInputs, rule: &str) -> Result<Vec<f32>> {
    let normal: Vec<f32> = inputs
        .val_scores
        .iter()
        .zip(inputs.val_y)
        .filter(|(_, y)| **y == 0.0)
        .map(|(s, _)| *s)
        .collect();
    if normal.is_empty() {
        bail_input!("training.threshold.{rule}: the validation split holds no normal rows");
    }
    Ok(normal)
}

/// The score that maximises F1 or Youden's J (TPR − FPR) on validation rows; 0.5 when the rows
/// hold a single class and so cannot decide.
pub fn best_on_validation(scores: &[f32], y: &[f32], rule: ThresholdRule) -> f32 {
    let ranked = Ranked::new(scores, y);
    let one = |_| 1.0;
    let (p, n) = ranked
        .groups(&one)
        .fold((0.0, 0.0), |(p, n), (_, gp, gn)| (p + gp, n + gn));
    if p == 0.0 || n == 0.0 {
        return 0.5;
    }
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut best = (f64::NEG_INFINITY, 0.5f32);
    for (score, gp, gn) in ranked.groups(&one) {
        tp += gp;
        fp += gn;
        let value = match rule {
            ThresholdRule::MaxF1 => 2.0 * tp / (tp + p + fp),
            ThresholdRule::Youden => tp / p - fp / n,
        };
        if value > best.0 {
            best = (value, score);
        }
    }
    best.1
}

/// The threshold that flags the top share `r` of the training scores: their (1 − r)-quantile,
/// as PyOD's `contamination` (`numpy.percentile`, linear interpolation).
pub fn contamination(train_quantiles: &[f32], r: f64) -> Result<f32> {
    if train_quantiles.is_empty() {
        bail_input!(
            "contamination: this checkpoint keeps no training scores (written before checkpoint \
             format 2); retrain, or give a fixed --threshold"
        );
    }
    Ok(quantile(train_quantiles, 1.0 - r))
}

/// The lowest threshold at which at most a share `f` of `normal` scores is flagged.
pub fn target_fpr(normal: &[f32], f: f64) -> f32 {
    let mut desc = normal.to_vec();
    desc.sort_unstable_by(|a, b| b.total_cmp(a));
    let allowed = (f * desc.len() as f64).floor() as usize;
    // Everything above the first score that may not be flagged.
    desc.get(allowed)
        .map_or(f32::NEG_INFINITY, |&s| s.next_up())
}

/// The q-quantile of ascending `sorted` values, interpolated linearly (numpy's default).
pub fn quantile(sorted: &[f32], q: f64) -> f32 {
    let pos = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let (lo, frac) = (pos.floor() as usize, pos.fract());
    let hi = (lo + 1).min(sorted.len() - 1);
    (sorted[lo] as f64 + frac * (sorted[hi] as f64 - sorted[lo] as f64)) as f32
}

/// What a checkpoint keeps of the training scores: every score, sorted, when there are at most
/// [`KEPT_QUANTILES`]; else that many evenly spaced quantiles (the same quantile function to
/// within 1/10,000 of the rows).
pub fn score_quantiles(scores: &[f32]) -> Vec<f32> {
    let mut sorted: Vec<f32> = scores.iter().copied().filter(|s| !s.is_nan()).collect();
    sorted.sort_unstable_by(f32::total_cmp);
    if sorted.len() <= KEPT_QUANTILES {
        return sorted;
    }
    (0..KEPT_QUANTILES)
        .map(|i| quantile(&sorted, i as f64 / (KEPT_QUANTILES - 1) as f64))
        .collect()
}

/// The share of the training rows a threshold flags (read off the kept quantiles).
pub fn flagged_share(train_quantiles: &[f32], threshold: f32) -> f64 {
    let n = train_quantiles.len();
    if n == 0 {
        return f64::NAN;
    }
    let below = train_quantiles.partition_point(|&s| s < threshold);
    (n - below) as f64 / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const Y: [f32; 8] = [0., 0., 1., 1., 0., 1., 0., 1.];
    const P: [f32; 8] = [0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.6, 0.55];

    fn rule(choice: ThresholdChoice, train: &[f32]) -> f32 {
        let inputs = RuleInputs {
            val_scores: &P,
            val_y: &Y,
            train_quantiles: train,
        };
        threshold(choice, &inputs).unwrap()
    }

    #[test]
    fn validation_rules_pick_a_validation_score() {
        assert_eq!(rule(ThresholdChoice::Rule(ThresholdRule::MaxF1), &[]), 0.35);
        // J = 0.5 at 0.8, 0.55 and 0.35: the highest threshold wins the tie.
        assert_eq!(rule(ThresholdChoice::Rule(ThresholdRule::Youden), &[]), 0.8);
        assert_eq!(rule(ThresholdChoice::Fixed(0.25), &[]), 0.25);
    }

    #[test]
    fn rate_rules_give_the_thresholds_worked_out_by_hand() {
        // Training scores 1..=10: the 0.8-quantile is at position 0.8·9 = 7.2, i.e. 8.2, which
        // flags 9 and 10: 20%.
        let train: Vec<f32> = (1..=10).map(|v| v as f32).collect();
        let t = rule(
            ThresholdChoice::Contamination { contamination: 0.2 },
            &train,
        );
        assert!((t - 8.2).abs() < 1e-6, "{t}");
        assert_eq!(flagged_share(&train, t), 0.2);
        // Normal validation scores 0.1, 0.4, 0.2, 0.6: sorted 0.1 0.2 0.4 0.6; the
        // 0.5-quantile is at position 1.5: 0.3.
        let t = rule(
            ThresholdChoice::NormalQuantile {
                normal_quantile: 0.5,
            },
            &[],
        );
        assert!((t - 0.3).abs() < 1e-6, "{t}");
        // FPR at most 0.25 of 4 normal rows: one may be flagged (0.6); 0.4 may not, so the
        // threshold is just above 0.4.
        let t = rule(ThresholdChoice::TargetFpr { target_fpr: 0.25 }, &[]);
        assert_eq!(t, 0.4f32.next_up());
        // Below 1/4, none may be flagged: just above the highest normal score.
        let t = rule(ThresholdChoice::TargetFpr { target_fpr: 0.2 }, &[]);
        assert_eq!(t, 0.6f32.next_up());
    }

    #[test]
    fn kept_quantiles_are_all_scores_or_an_even_grid() {
        assert_eq!(score_quantiles(&[3.0, f32::NAN, 1.0, 2.0]), [1.0, 2.0, 3.0]);
        let many: Vec<f32> = (0..100_000).rev().map(|v| v as f32).collect();
        let q = score_quantiles(&many);
        assert_eq!(q.len(), KEPT_QUANTILES);
        assert_eq!((q[0], q[KEPT_QUANTILES - 1]), (0.0, 99_999.0));
        let share = flagged_share(&q, contamination(&q, 0.1).unwrap());
        assert!((share - 0.1).abs() < 2e-4, "{share}");
        assert!(contamination(&[], 0.1).is_err());
    }
}
