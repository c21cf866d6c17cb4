//! The voting ensemble: unsupervised members, each with its own threshold, combined into one
//! score (`model.ensemble.combine`), and every row graded by how many members flag it.
//!
//! Members' scores live on different scales (a probability-like forest score, a LOF ratio
//! with a tail into the hundreds, a reconstruction error), so the score-combining rules first
//! standardise each on the rows it was fitted on. On NSL-KDD a mean of those z-scores is
//! dragged by the member with the heaviest tail (LOF's z reaches 140 on KDDTest+) and falls
//! below its best member; the median of the z-scores follows the members' majority and does
//! not (README, "Unsupervised detectors").

use anyhow::{Result, bail};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::detector::{Detector, Output};
use super::family::{Facts, Family, Fit, Section};
use super::rank::NormalRank;
use super::{DetectorState, ModelKind};
use crate::bail_input;

/// `model.ensemble`: the members (each configured by its own section) and how they combine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnsembleConfig {
    pub members: Vec<ModelKind>,
    pub combine: Combine,
    /// Members that must flag a row for `combine: vote` to call it anomalous.
    pub min_votes: usize,
    /// The votes from which a row is low, medium and high severity; default: `min_votes`,
    /// halfway, and every member.
    pub severity: Option<[usize; 3]>,
}

impl Default for EnsembleConfig {
    fn default() -> Self {
        Self {
            members: vec![
                ModelKind::IsolationForest,
                ModelKind::OneClassSvm,
                ModelKind::Lof,
                ModelKind::Autoencoder,
            ],
            combine: Combine::MedianRank,
            min_votes: 2,
            severity: None,
        }
    }
}

impl Section for EnsembleConfig {
    fn check(&self) -> Result<()> {
        let n = self.members.len();
        if n == 0 {
            bail_input!("model.ensemble.members: expected at least one unsupervised family");
        }
        for (i, m) in self.members.iter().enumerate() {
            if !m.can_be_member() {
                let members: Vec<&str> = ModelKind::ALL
                    .iter()
                    .filter(|k| k.can_be_member())
                    .map(|k| k.name())
                    .collect();
                bail_input!(
                    "model.ensemble.members: {} cannot be a member (members are the unsupervised families: {})",
                    m.name(),
                    members.join(", ")
                );
            }
            if self.members[..i].contains(m) {
                bail_input!(
                    "model.ensemble.members: {} is listed twice (each family has one section)",
                    m.name()
                );
            }
        }
        if self.min_votes == 0 || self.min_votes > n {
            bail_input!(
                "model.ensemble.min_votes: expected 1 to {n} (the number of members), got {}",
                self.min_votes
            );
        }
        let [low, medium, high] = self.severity_cutoffs();
        if low == 0 || low > medium || medium > high || high > n {
            bail_input!(
                "model.ensemble.severity: expected votes [low, medium, high] with 1 <= low <= medium <= high <= {n} (the number of members), got [{low}, {medium}, {high}]"
            );
        }
        Ok(())
    }
}

impl EnsembleConfig {
    /// The severity cut-offs in use.
    pub fn severity_cutoffs(&self) -> [usize; 3] {
        let n = self.members.len();
        self.severity
            .unwrap_or([self.min_votes, (self.min_votes + n).div_ceil(2), n])
    }
}

/// How an ensemble's members make one score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// The share of members that flag the row; anomalous from `min_votes`.
    Vote,
    /// The mean of the members' z-scores (standardised on their fitted rows).
    MeanZ,
    MaxZ,
    /// The median: what most members say, whatever one member's tail does.
    MedianZ,
    /// The median of the members' ranks among held-out normal rows (as logits): each member
    /// on the same bounded scale, whatever its scores' shape.
    MedianRank,
    /// The members' z-scores weighted by how well each ranked the labelled validation rows
    /// (its ROC AUC − 0.5): a member at or below chance gets no weight. Needs validation rows
    /// of both classes.
    Weighted,
}

/// A fitted ensemble as checkpoints store it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    pub members: Vec<Member>,
    pub combine: Combine,
    pub min_votes: usize,
    /// The votes from which a row's severity is low, medium and high.
    pub severity: [usize; 3],
}

/// A fitted member: its detector, the threshold at which it votes, and its scores' mean and
/// standard deviation on the rows it was fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub detector: DetectorState,
    pub threshold: f32,
    pub mean: f64,
    pub std: f64,
    /// `combine: weighted`: the member's weight (1 in checkpoints from before it).
    #[serde(default = "one")]
    pub weight: f64,
    /// Its scores on held-out normal rows, for `combine: median_rank` (absent in checkpoints
    /// from before it).
    #[serde(default)]
    pub rank: Option<NormalRank>,
}

fn one() -> f64 {
    1.0
}

/// How many members agree that a row is anomalous, as a grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    None,
    Low,
    Medium,
    High,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::None,
        Severity::Low,
        Severity::Medium,
        Severity::High,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::None => "none",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }

    /// The grade of `votes` under the cut-offs `[low, medium, high]`.
    pub fn of(votes: usize, cutoffs: [usize; 3]) -> Severity {
        match cutoffs.iter().filter(|&&c| votes >= c).count() {
            0 => Severity::None,
            1 => Severity::Low,
            2 => Severity::Medium,
            _ => Severity::High,
        }
    }
}

/// An ensemble's verdict on a batch: the combined score and, per row, every member's score
/// and vote.
#[derive(Debug, Clone, PartialEq)]
pub struct Votes {
    pub combined: Vec<f32>,
    /// Row-major, one score per member.
    pub member_scores: Vec<f32>,
    /// Row-major, one vote per member.
    pub member_votes: Vec<bool>,
    pub votes: Vec<usize>,
    pub severity: Vec<Severity>,
    pub members: usize,
}

impl Votes {
    /// The share of members that flag each row.
    pub fn confidence(&self, row: usize) -> f64 {
        self.votes[row] as f64 / self.members as f64
    }
}

impl Ensemble {
    /// The verdict on rows whose member scores are `member_scores` (row-major, one per
    /// member): each member votes at its threshold; the combined score is the vote share
    /// (`vote`), the mean, maximum or median of the members' z-scores, or the median of their
    /// normal-rank logits (`median_rank`).
    pub fn verdict(&self, member_scores: Vec<f32>) -> Votes {
        let n = self.members.len();
        let rows = member_scores.len() / n;
        let mut z = vec![0.0f64; n];
        let mut out = Votes {
            combined: Vec::with_capacity(rows),
            member_votes: Vec::with_capacity(rows * n),
            votes: Vec::with_capacity(rows),
            severity: Vec::with_capacity(rows),
            member_scores: Vec::new(),
            members: n,
        };
        for row in member_scores.chunks_exact(n) {
            let mut votes = 0;
            for ((zi, m), &s) in z.iter_mut().zip(&self.members).zip(row) {
                let vote = s >= m.threshold;
                votes += vote as usize;
                out.member_votes.push(vote);
                *zi = match (&m.rank, self.combine) {
                    (Some(rank), Combine::MedianRank) => rank.logit(s),
                    _ => (s as f64 - m.mean) / m.std,
                };
            }
            out.combined
                .push(self.combine.of(&mut z, &self.members, votes) as f32);
            out.votes.push(votes);
            out.severity.push(Severity::of(votes, self.severity));
        }
        out.member_scores = member_scores;
        out
    }
}

impl Combine {
    /// The combined score of one row from its members' z-scores (reordered in place) and
    /// its vote count.
    fn of(self, z: &mut [f64], members: &[Member], votes: usize) -> f64 {
        let n = z.len();
        match self {
            Combine::Weighted => {
                let total: f64 = members.iter().map(|m| m.weight).sum();
                let sum: f64 = z.iter().zip(members).map(|(z, m)| z * m.weight).sum();
                sum / total
            }
            Combine::Vote => votes as f64 / n as f64,
            Combine::MeanZ => z.iter().sum::<f64>() / n as f64,
            Combine::MaxZ => z.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Combine::MedianZ | Combine::MedianRank => {
                z.sort_unstable_by(f64::total_cmp);
                if n % 2 == 1 {
                    z[n / 2]
                } else {
                    (z[n / 2 - 1] + z[n / 2]) / 2.0
                }
            }
        }
    }
}

/// Each member is fitted as a run of its own (the trainer's `fit_ensemble`).
impl Family for Ensemble {
    type Section = EnsembleConfig;
    type State = Ensemble;
    const FACTS: Facts = Facts {
        classifier: false,
        sequence: false,
        unit_scores: false,
    };
    const FIT: Fit<EnsembleConfig, Ensemble> = Fit::Members;

    fn load(state: &Self, device: &Device) -> Result<Box<dyn Detector>> {
        Ok(Box::new(Loaded::new(state, device)?))
    }
}

/// A loaded ensemble: its members ready to score.
pub struct Loaded {
    ensemble: Ensemble,
    members: Vec<Box<dyn Detector>>,
}

impl Loaded {
    pub fn new(ensemble: &Ensemble, device: &burn::tensor::Device) -> Result<Loaded> {
        let members = ensemble
            .members
            .iter()
            .map(|m| m.detector.load(device))
            .collect::<Result<_>>()?;
        Ok(Loaded {
            ensemble: ensemble.clone(),
            members,
        })
    }
}

/// A member's one score per row.
pub fn member_scores(detector: &dyn Detector, x: &[f32]) -> Result<Vec<f32>> {
    match detector.score(x)? {
        Output::Scores(s)
        | Output::Probabilities {
            values: s,
            width: 1,
        } => Ok(s),
        Output::Probabilities { .. } | Output::Ensemble(_) | Output::Hybrid { .. } => {
            bail!("an ensemble member gives one score per row")
        }
    }
}

impl Detector for Loaded {
    fn score(&self, x: &[f32]) -> Result<Output> {
        let n = self.members.len();
        let per_member: Vec<Vec<f32>> = self
            .members
            .iter()
            .map(|m| member_scores(m.as_ref(), x))
            .collect::<Result<_>>()?;
        let rows = per_member.first().map_or(0, Vec::len);
        let mut scores = vec![0.0f32; rows * n];
        for (j, s) in per_member.iter().enumerate() {
            for (r, &v) in s.iter().enumerate() {
                scores[r * n + j] = v;
            }
        }
        Ok(Output::Ensemble(self.ensemble.verdict(scores)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kmeans::Kmeans;

    /// Members that only carry thresholds and training statistics (`verdict` reads nothing
    /// else).
    fn ensemble(combine: Combine, thresholds: &[f32]) -> Ensemble {
        let member = |&t: &f32| Member {
            detector: DetectorState::Kmeans(Kmeans {
                n_features: 1,
                centroids: vec![0.0],
                inertia: 0.0,
                majority: Vec::new(),
            }),
            threshold: t,
            mean: 1.0,
            std: 2.0,
            weight: 1.0,
            rank: None,
        };
        Ensemble {
            members: thresholds.iter().map(member).collect(),
            combine,
            min_votes: 2,
            severity: [2, 3, 4],
        }
    }

    #[test]
    fn votes_confidence_and_severity_follow_a_hand_made_vote_table() {
        // Four members, threshold 1 each; rows flagged by 0, 1, 2, 3 and 4 members.
        let rows = [
            [0.0, 0.0, 0.0, 0.0],
            [5.0, 0.0, 0.0, 0.0],
            [5.0, 0.0, 5.0, 0.0],
            [5.0, 5.0, 0.0, 5.0],
            [5.0, 5.0, 5.0, 5.0],
        ];
        let v = ensemble(Combine::Vote, &[1.0; 4]).verdict(rows.concat());
        assert_eq!(v.votes, [0, 1, 2, 3, 4]);
        assert_eq!(v.combined, [0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(v.confidence(3), 0.75);
        use Severity::*;
        assert_eq!(v.severity, [None, None, Low, Medium, High]);
        assert_eq!(&v.member_votes[8..12], [true, false, true, false]);
        // Three members: severity cut-offs at 2, 2, 3 grade two votes as medium.
        assert_eq!(Severity::of(2, [2, 2, 3]), Medium);
    }

    #[test]
    fn z_combinations_standardise_each_member_first() {
        // mean 1, std 2: scores 1, 3, 9 give z 0, 1, 4.
        let scores = vec![1.0, 3.0, 9.0];
        let z = |c| ensemble(c, &[2.0; 3]).verdict(scores.clone()).combined[0];
        assert_eq!(z(Combine::MeanZ), 5.0 / 3.0);
        assert_eq!(z(Combine::MaxZ), 4.0);
        assert_eq!(z(Combine::MedianZ), 1.0);
        let even = ensemble(Combine::MedianZ, &[2.0; 4]).verdict(vec![1.0, 3.0, 9.0, 5.0]);
        assert_eq!(even.combined, [1.5]);
        assert_eq!(even.votes, [3]);
        // Weights 3, 1 and 0 (a member at chance): (3·0 + 1·1 + 0·4) / 4.
        let mut weighted = ensemble(Combine::Weighted, &[2.0; 3]);
        for (m, w) in weighted.members.iter_mut().zip([3.0, 1.0, 0.0]) {
            m.weight = w;
        }
        assert_eq!(weighted.verdict(scores.clone()).combined, [0.25]);
    }

    #[test]
    fn median_rank_takes_each_member_on_its_normal_rows_scale() {
        // Member 0's normal rows score 0..=10, member 1's 0..=1000, member 2's 0..=1: a score
        // of 5 is member 0's median (logit 0), low for member 1, above every row of member 2.
        let mut e = ensemble(Combine::MedianRank, &[2.0; 3]);
        for (m, top) in e.members.iter_mut().zip([10.0f32, 1000.0, 1.0]) {
            let normal = (0..=10).map(|v| v as f32 * top / 10.0).collect();
            m.rank = Some(NormalRank { normal, rows: 11 });
        }
        let v = e.verdict(vec![5.0, 5.0, 5.0]);
        assert_eq!(v.combined, [0.0]);
        // Raw z-scores would rank by the members' means and spreads instead.
        assert_ne!(
            ensemble(Combine::MedianZ, &[2.0; 3])
                .verdict(vec![5.0; 3])
                .combined,
            [0.0]
        );
    }
}
