//! An ensemble's members against the labels, side by side with the ensemble: ranking quality,
//! each member's vote, how often members agree, and what each severity grade holds.

use serde::Serialize;

use super::{Confusion, average_precision, roc_auc};
use crate::model::ensemble::{Severity, Votes};

#[derive(Debug, Clone, Serialize)]
pub struct EnsembleReport {
    /// Each member, then the ensemble itself (named `ensemble`).
    pub detectors: Vec<DetectorReport>,
    /// `agreement[i][j]`: the share of rows on which members i and j vote alike.
    pub agreement: Vec<Vec<f64>>,
    pub severity: Vec<SeverityRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DetectorReport {
    pub name: String,
    pub roc_auc: Option<f64>,
    pub average_precision: Option<f64>,
    /// At the detector's own threshold (a member's vote, the ensemble's verdict).
    pub f1: f64,
    pub flagged_share: f64,
}

/// The rows of one severity grade, and how many are real attacks.
#[derive(Debug, Clone, Serialize)]
pub struct SeverityRow {
    pub severity: Severity,
    pub rows: usize,
    pub attacks: usize,
    /// `attacks / rows` (how often an alarm of this grade is a real attack); none without rows.
    pub attack_share: Option<f64>,
}

impl EnsembleReport {
    /// The report on rows labelled `y`, scored `combined` (flagged from `threshold`) with the
    /// members' `votes`.
    pub fn compute(
        (names, whole): (&[&str], &str),
        votes: &Votes,
        combined: &[f32],
        threshold: f32,
        y: &[f32],
    ) -> EnsembleReport {
        let m = votes.members;
        let column = |j: usize| -> Vec<f32> {
            votes
                .member_scores
                .iter()
                .skip(j)
                .step_by(m)
                .copied()
                .collect()
        };
        let vote = |j: usize, r: usize| votes.member_votes[r * m + j];
        let detector = |name: &str, scores: &[f32], flagged: &dyn Fn(usize) -> bool| {
            let mut c = Confusion::default();
            (0..y.len()).for_each(|r| c.count(flagged(r), y[r] == 1.0));
            DetectorReport {
                name: name.to_string(),
                roc_auc: roc_auc(scores, y),
                average_precision: average_precision(scores, y),
                f1: c.f1(),
                flagged_share: (c.tp + c.fp) as f64 / y.len().max(1) as f64,
            }
        };
        let mut detectors: Vec<DetectorReport> = (0..m)
            .map(|j| detector(names[j], &column(j), &|r| vote(j, r)))
            .collect();
        detectors.push(detector(whole, combined, &|r| combined[r] >= threshold));
        let agreement = (0..m)
            .map(|i| {
                (0..m)
                    .map(|j| {
                        let same = (0..y.len()).filter(|&r| vote(i, r) == vote(j, r)).count();
                        same as f64 / y.len().max(1) as f64
                    })
                    .collect()
            })
            .collect();
        let severity = Severity::ALL
            .iter()
            .map(|&s| {
                let rows: Vec<usize> = (0..y.len()).filter(|&r| votes.severity[r] == s).collect();
                let attacks = rows.iter().filter(|&&r| y[r] == 1.0).count();
                SeverityRow {
                    severity: s,
                    rows: rows.len(),
                    attacks,
                    attack_share: (!rows.is_empty()).then(|| attacks as f64 / rows.len() as f64),
                }
            })
            .collect();
        EnsembleReport {
            detectors,
            agreement,
            severity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_agreement_and_severity_are_counted_by_hand() {
        // Two members, four rows: member 0 flags rows 0 and 1, member 1 flags rows 0 and 2.
        let votes = Votes {
            combined: vec![1.0, 0.5, 0.5, 0.0],
            member_scores: vec![0.9, 0.8, 0.7, 0.1, 0.2, 0.9, 0.1, 0.2],
            member_votes: vec![true, true, true, false, false, true, false, false],
            votes: vec![2, 1, 1, 0],
            severity: vec![Severity::High, Severity::Low, Severity::Low, Severity::None],
            members: 2,
        };
        let y = [1.0, 1.0, 0.0, 0.0];
        let r =
            EnsembleReport::compute((&["a", "b"], "ensemble"), &votes, &votes.combined, 1.0, &y);
        // Member a: TP 2, FP 0 → F1 1; ranks 0.9, 0.7 over 0.2, 0.1 → AUC 1.
        assert_eq!(r.detectors[0].f1, 1.0);
        assert_eq!(r.detectors[0].roc_auc, Some(1.0));
        // Member b: TP 1, FP 1, FN 1 → F1 0.5.
        assert_eq!(r.detectors[1].f1, 0.5);
        // The ensemble flags row 0 only (threshold 1): TP 1, FN 1 → F1 2/3; a quarter flagged.
        assert_eq!(r.detectors[2].name, "ensemble");
        assert!((r.detectors[2].f1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.detectors[2].flagged_share, 0.25);
        // They vote alike on rows 0 and 3.
        assert_eq!(r.agreement, [[1.0, 0.5], [0.5, 1.0]]);
        let low = &r.severity[1];
        assert_eq!((low.rows, low.attacks, low.attack_share), (2, 1, Some(0.5)));
        assert_eq!(r.severity[3].attack_share, Some(1.0));
        assert_eq!(r.severity[2].attack_share, None);
    }
}
