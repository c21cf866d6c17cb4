//! The hybrid: a supervised classifier (what the labelled attacks look like) and an
//! unsupervised detector fitted on normal rows only (what normal traffic looks like), each a
//! run of its own (the trainer's `fit_hybrid`), joined into one anomaly probability.
//!
//! Both parts speak probabilities: the classifier's own (its anomalous classes' total), and
//! the detector's score calibrated on the normal validation rows, which it never learnt from:
//! `d = σ(logit F(s) − logit q)`, with `F(s)` the share of those rows scoring below `s` and
//! `q` = `normal_quantile`, so that `d` is ½ where the detector passes the share `1 − q` of
//! normal traffic. `combine: either` (the default) is their noisy-OR, `1 − (1 − p)(1 − d)`:
//! a row is an attack when either part says so. `stacking` learns a logistic regression on
//! the two logits from the labelled validation rows instead; those rows hold only the attacks
//! the classifier was trained on, so it learns to trust the classifier and gives up most of
//! what the detector finds in attacks it never saw (README, "Hybrid": on NSL-KDD, accuracy
//! 0.81 against 0.91 for `either`).

use anyhow::{Result, bail};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::detector::{Detector, Output, anomalous_share};
use super::ensemble::{Severity, Votes, member_scores};
use super::family::{Facts, Family, Fit, Section};
use super::rank::{NormalRank, logit, sigmoid};
use super::{DetectorState, ModelKind};
use crate::bail_input;

/// `model.hybrid`: the two parts (each configured by its own section) and how they join.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HybridConfig {
    /// Any per-row classifier family, fitted on every labelled training row.
    pub classifier: ModelKind,
    /// Any unsupervised family, fitted on the normal training rows only.
    pub detector: ModelKind,
    pub combine: Join,
    /// The share of normal traffic the detector's own verdict passes: its score flags the
    /// rest (`1 − q`; 5% by default), which bounds what it adds to the false positives.
    pub normal_quantile: f64,
}

impl Default for HybridConfig {
    fn default() -> Self {
        Self {
            classifier: ModelKind::Mlp,
            detector: ModelKind::Autoencoder,
            combine: Join::Either,
            normal_quantile: 0.95,
        }
    }
}

/// How the two parts' probabilities make one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Join {
    /// The noisy-OR: an attack when either part says so.
    Either,
    /// A logistic regression on the two logits, fitted on the labelled validation rows.
    Stacking,
}

impl Section for HybridConfig {
    fn check(&self) -> Result<()> {
        let names = |keep: fn(ModelKind) -> bool| {
            let kinds: Vec<&str> = ModelKind::ALL
                .iter()
                .filter(|k| keep(**k))
                .map(|k| k.name())
                .collect();
            kinds.join(", ")
        };
        if !can_classify(self.classifier) {
            bail_input!(
                "model.hybrid.classifier: {} is not a per-row classifier (one of: {})",
                self.classifier.name(),
                names(can_classify)
            );
        }
        if !self.detector.can_be_member() {
            bail_input!(
                "model.hybrid.detector: {} is not an unsupervised family (one of: {})",
                self.detector.name(),
                names(ModelKind::can_be_member)
            );
        }
        let q = self.normal_quantile;
        if !(q > 0.0 && q < 1.0) {
            bail_input!("model.hybrid.normal_quantile: expected a share in (0, 1), got {q}");
        }
        Ok(())
    }
}

/// A classifier a hybrid may hold: one that scores single rows and is fitted on its own.
fn can_classify(kind: ModelKind) -> bool {
    kind.is_classifier() && !kind.is_sequence() && kind != ModelKind::Hybrid
}

/// A fitted hybrid as checkpoints store it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hybrid {
    /// Boxed: a part's state is a `DetectorState`, of which a hybrid is one.
    pub classifier: Box<DetectorState>,
    pub detector: Box<DetectorState>,
    pub joint: Joint,
}

/// What makes the parts' outputs one verdict: all that scoring keeps beside the loaded parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Joint {
    /// Multiclass: which of the classifier's outputs are anomalous (empty when binary).
    pub anomalous: Vec<bool>,
    /// The detector's scores on the normal validation rows, which it never learnt from.
    pub calibration: NormalRank,
    /// `model.hybrid.normal_quantile`: where the detector's probability is ½.
    pub normal_quantile: f64,
    pub join: Joined,
}

/// How a fitted hybrid joins its parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Joined {
    Either,
    /// `σ(a·logit p + b·logit d + c)`.
    Stacking {
        weights: [f64; 3],
    },
}

/// The detector's score `s` as a probability: ½ at the normal rows' `quantile`.
fn probability(rank: &NormalRank, quantile: f64, s: f32) -> f64 {
    sigmoid(rank.logit(s) - logit(quantile))
}

impl Joined {
    fn of(&self, p: f64, d: f64) -> f64 {
        match self {
            Joined::Either => 1.0 - (1.0 - p) * (1.0 - d),
            Joined::Stacking { weights: [a, b, c] } => sigmoid(a * logit(p) + b * logit(d) + c),
        }
    }

    /// A logistic regression of `y` on the two parts' logits, L2-penalised as scikit-learn's
    /// `LogisticRegression(C=1)` (the intercept free), solved by Newton's method in f64 over
    /// the rows in order.
    pub fn stacking(p: &[f64], d: &[f64], y: &[f32]) -> Result<Joined> {
        let positives = y.iter().filter(|&&v| v == 1.0).count();
        if positives == 0 || positives == y.len() {
            bail_input!(
                "model.hybrid.combine: stacking is fitted on the labelled validation rows, \
                 which hold one class only; use either"
            );
        }
        let x: Vec<[f64; 3]> = p
            .iter()
            .zip(d)
            .map(|(&p, &d)| [logit(p), logit(d), 1.0])
            .collect();
        let mut w = [0.0f64; 3];
        for _ in 0..100 {
            let mut grad = [w[0], w[1], 0.0];
            let mut hess = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1e-9]];
            for (xi, &yi) in x.iter().zip(y) {
                let mu = sigmoid(xi[0] * w[0] + xi[1] * w[1] + xi[2] * w[2]);
                for j in 0..3 {
                    grad[j] += (mu - yi as f64) * xi[j];
                    for k in 0..3 {
                        hess[j][k] += mu * (1.0 - mu) * xi[j] * xi[k];
                    }
                }
            }
            let step = solve3(hess, grad);
            for j in 0..3 {
                w[j] -= step[j];
            }
            if step.iter().all(|s| s.abs() < 1e-10) {
                break;
            }
        }
        if w.iter().any(|v| !v.is_finite()) {
            bail!("the stacking regression did not converge");
        }
        Ok(Joined::Stacking { weights: w })
    }
}

/// Solves the symmetric positive definite system `a·x = b` (Cramer's rule: three unknowns).
fn solve3(a: [[f64; 3]; 3], b: [f64; 3]) -> [f64; 3] {
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let whole = det(a);
    std::array::from_fn(|j| {
        let mut m = a;
        for (row, &v) in m.iter_mut().zip(&b) {
            row[j] = v;
        }
        det(m) / whole
    })
}

/// A part votes when its probability reaches ½; one vote is a medium alarm, both high.
const SEVERITY: [usize; 3] = [1, 1, 2];

impl Joint {
    /// The verdict on rows whose classifier probabilities are `p` and detector scores `s`:
    /// each part's probability and vote, and the joined probability.
    pub fn verdict(&self, p: &[f32], s: &[f32]) -> Votes {
        let rows = p.len();
        let mut out = Votes {
            combined: Vec::with_capacity(rows),
            member_scores: Vec::with_capacity(2 * rows),
            member_votes: Vec::with_capacity(2 * rows),
            votes: Vec::with_capacity(rows),
            severity: Vec::with_capacity(rows),
            members: 2,
        };
        for (&p, &s) in p.iter().zip(s) {
            let d = probability(&self.calibration, self.normal_quantile, s);
            let p = p as f64;
            let votes = (p >= 0.5) as usize + (d >= 0.5) as usize;
            out.combined.push(self.join.of(p, d) as f32);
            out.member_scores.extend([p as f32, d as f32]);
            out.member_votes.extend([p >= 0.5, d >= 0.5]);
            out.votes.push(votes);
            out.severity.push(Severity::of(votes, SEVERITY));
        }
        out
    }
}

/// Each part is fitted as a run of its own (the trainer's `fit_hybrid`).
impl Family for Hybrid {
    type Section = HybridConfig;
    type State = Hybrid;
    const FACTS: Facts = Facts {
        classifier: true,
        sequence: false,
        unit_scores: true,
    };
    const FIT: Fit<HybridConfig, Hybrid> = Fit::Members;

    fn load(state: &Self, device: &Device) -> Result<Box<dyn Detector>> {
        Ok(Box::new(Loaded {
            classifier: state.classifier.load(device)?,
            detector: state.detector.load(device)?,
            joint: state.joint.clone(),
        }))
    }
}

/// A loaded hybrid: both parts ready to score.
struct Loaded {
    joint: Joint,
    classifier: Box<dyn Detector>,
    detector: Box<dyn Detector>,
}

impl Detector for Loaded {
    fn score(&self, x: &[f32]) -> Result<Output> {
        let Output::Probabilities { values, width } = self.classifier.score(x)? else {
            bail!("a hybrid's classifier gives probabilities");
        };
        let p = anomalous_share(&values, &self.joint.anomalous);
        let s = member_scores(self.detector.as_ref(), x)?;
        let votes = self.joint.verdict(&p, &s);
        let class_probs = if width > 1 { values } else { Vec::new() };
        Ok(Output::Hybrid { votes, class_probs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calibration(normal: Vec<f32>) -> NormalRank {
        NormalRank {
            rows: normal.len(),
            normal,
        }
    }

    #[test]
    fn the_detector_is_one_half_at_the_normal_rows_quantile() {
        // 11 normal scores 0..=10: the 0.9 quantile is 9.
        let r = calibration((0..=10).map(|v| v as f32).collect());
        assert!((probability(&r, 0.9, 9.0) - 0.5).abs() < 1e-12);
        assert!(probability(&r, 0.9, 5.0) < 0.5 && probability(&r, 0.9, 9.5) > 0.5);
        assert!(probability(&r, 0.9, f32::NAN).is_nan());
    }

    #[test]
    fn either_part_flags_and_votes_grade_the_row() {
        let h = Joint {
            anomalous: Vec::new(),
            calibration: calibration((0..=10).map(|v| v as f32).collect()),
            normal_quantile: 0.9,
            join: Joined::Either,
        };
        // Rows: both quiet; the classifier alone; the detector alone (at its quantile); both.
        let v = h.verdict(&[0.1, 0.8, 0.1, 0.9], &[1.0, 1.0, 9.0, 10.0]);
        assert_eq!(v.votes, [0, 1, 1, 2]);
        use Severity::*;
        assert_eq!(v.severity, [None, Medium, Medium, High]);
        // 1 − (1 − 0.1)(1 − ½) at the quantile.
        assert!((v.combined[2] - 0.55).abs() < 1e-6);
        assert_eq!(v.member_scores[2], 0.8);
        assert!(
            v.combined.iter().skip(1).all(|&c| c >= 0.5),
            "{:?}",
            v.combined
        );
        assert!(v.combined[0] < 0.5);
    }

    #[test]
    fn stacking_matches_scikit_learns_logistic_regression() {
        // sklearn.linear_model.LogisticRegression(C=1, tol=1e-12).fit(logits, y) on these
        // rows: coef_ [[0.931135, 0.410643]], intercept_ [-0.086655].
        let p = [0.9, 0.2, 0.7, 0.4, 0.95, 0.1, 0.6, 0.3];
        let d = [0.6, 0.3, 0.2, 0.8, 0.9, 0.2, 0.4, 0.6];
        let y = [1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0];
        let Joined::Stacking { weights } = Joined::stacking(&p, &d, &y).unwrap() else {
            unreachable!()
        };
        for (got, want) in weights.iter().zip([0.931135, 0.410643, -0.086655]) {
            assert!((got - want).abs() < 1e-5, "{weights:?}");
        }
        let one_class = Joined::stacking(&p, &d, &[0.0; 8]).unwrap_err();
        assert!(
            one_class.to_string().contains("one class only"),
            "{one_class}"
        );
    }
}
