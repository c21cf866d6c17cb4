//! Drift: whether new rows still look like the rows a model was fitted on. Each input column
//! is compared with the profile its checkpoint keeps of the training rows (101 percentiles of
//! a numeric feature, the shares of a boolean's or a category's values), and the model's
//! score with the training scores' kept quantiles:
//! - the population stability index over the training deciles (numeric) or the values
//!   (categorical, with a bucket for categories training never saw), the usual reading being
//!   below 0.1 no drift, 0.1 to 0.25 moderate, above 0.25 significant;
//! - a test beside it: Kolmogorov–Smirnov's D for a numeric column, read where the training
//!   CDF is known (at its percentiles), with the asymptotic two-sample p-value; Pearson's
//!   chi-squared for a categorical one. p-values are also given Bonferroni-corrected for the
//!   number of columns tested.
//!
//! New rows are counted into bins as they come ([`Drift::add`]), so a file of any length and
//! a server's window cost the same memory: two bins per distinct training percentile.

use std::collections::VecDeque;

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};

use crate::data::preprocess::{Encoding, InputColumn, Preprocessor, Profile};

/// PSI from which drift is moderate, and significant.
pub const MODERATE: f64 = 0.1;
pub const SIGNIFICANT: f64 = 0.25;
/// The share a bin empty on one side counts as, so that PSI stays finite (evidently's floor).
const FLOOR: f64 = 1e-4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    None,
    Moderate,
    Significant,
}

impl Level {
    pub fn of(psi: f64) -> Level {
        if psi >= SIGNIFICANT {
            Level::Significant
        } else if psi >= MODERATE {
            Level::Moderate
        } else {
            Level::None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Moderate => "moderate",
            Level::Significant => "significant",
        }
    }
}

/// One column's (or the score's) drift.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnDrift {
    pub column: String,
    /// `numeric`, `boolean` or `categorical`.
    pub kind: &'static str,
    pub psi: f64,
    pub level: Level,
    /// `ks` (D) or `chi2` (Pearson's statistic).
    pub test: &'static str,
    pub statistic: f64,
    pub p_value: f64,
    /// `p_value` times the number of columns tested, at most 1.
    pub p_adjusted: f64,
    /// The PSI bins: the training and the new share of each.
    pub bins: Vec<Bin>,
    /// Categorical: new rows whose category training never saw.
    pub unseen: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bin {
    pub label: String,
    pub expected: f64,
    pub actual: f64,
}

/// The whole report: columns ranked by PSI, the score, the alarm rates and the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub rows: usize,
    pub training_rows: usize,
    pub level: Level,
    /// Columns (and the score) at `moderate` or above.
    pub drifted: usize,
    pub columns: Vec<ColumnDrift>,
    pub score: Option<ColumnDrift>,
    /// The share of the new rows flagged, and of the training rows the threshold flags.
    pub alarm_rate: f64,
    pub expected_alarm_rate: f64,
}

/// A reference distribution known at quantiles `values[j]` of probability `j / (len - 1)`,
/// and the new values counted around its distinct values.
#[derive(Clone)]
struct Numeric {
    /// Distinct reference values, ascending.
    edges: Vec<f32>,
    /// The reference CDF just below and at each edge.
    below: Vec<f64>,
    at: Vec<f64>,
    /// New values: bin `2k` is (edges[k-1], edges[k]), bin `2k + 1` is edges[k] itself, the
    /// last bin above the last edge.
    counts: Vec<u64>,
}

impl Numeric {
    fn new(quantiles: &[f32]) -> Numeric {
        let last = (quantiles.len().max(2) - 1) as f64;
        let (mut edges, mut below, mut at) = (Vec::new(), Vec::new(), Vec::new());
        for (j, &q) in quantiles.iter().enumerate() {
            if edges.last() == Some(&q) {
                *at.last_mut().expect("an edge") = j as f64 / last;
            } else {
                edges.push(q);
                below.push(if j == 0 { 0.0 } else { (j as f64 - 0.5) / last });
                at.push(j as f64 / last);
            }
        }
        let counts = vec![0; 2 * edges.len() + 1];
        Numeric {
            edges,
            below,
            at,
            counts,
        }
    }

    fn add(&mut self, v: f32) {
        let k = self.edges.partition_point(|&e| e < v);
        let bin = if self.edges.get(k) == Some(&v) {
            2 * k + 1
        } else {
            2 * k
        };
        self.counts[bin] += 1;
    }

    /// KS's D at every edge (just below and at it), and the PSI bins over the deciles.
    fn compare(&self) -> (f64, Vec<Bin>) {
        let n = self.counts.iter().sum::<u64>().max(1) as f64;
        let mut seen = 0u64;
        let mut d = 0.0f64;
        let mut new_at = Vec::with_capacity(self.edges.len());
        for k in 0..self.edges.len() {
            seen += self.counts[2 * k];
            d = d.max((seen as f64 / n - self.below[k]).abs());
            seen += self.counts[2 * k + 1];
            d = d.max((seen as f64 / n - self.at[k]).abs());
            new_at.push(seen as f64 / n);
        }
        (d, self.decile_bins(&new_at))
    }

    /// Bins bounded by the training deciles (merged where they tie): `(a, b]` each.
    fn decile_bins(&self, new_at: &[f64]) -> Vec<Bin> {
        let mut bounds: Vec<usize> = Vec::new();
        for decile in 1..10 {
            let p = decile as f64 / 10.0;
            // The first edge whose CDF reaches the decile.
            let k = self.at.partition_point(|&a| a < p - 1e-9);
            if k < self.edges.len() - 1 && bounds.last() != Some(&k) {
                bounds.push(k);
            }
        }
        let cdf = |k: Option<usize>, side: &[f64]| k.map_or(0.0, |k| side[k]);
        let mut bins = Vec::new();
        let mut lower: Option<usize> = None;
        for upper in bounds.iter().map(|&k| Some(k)).chain([None]) {
            let (e_hi, a_hi) = match upper {
                Some(k) => (self.at[k], new_at[k]),
                None => (1.0, 1.0),
            };
            let label = match (lower, upper) {
                (None, Some(k)) => format!("<= {}", self.edges[k]),
                (Some(j), Some(k)) => format!("({}, {}]", self.edges[j], self.edges[k]),
                (Some(j), None) => format!("> {}", self.edges[j]),
                (None, None) => "all".to_string(),
            };
            bins.push(Bin {
                label,
                expected: e_hi - cdf(lower, &self.at),
                actual: a_hi - cdf(lower, new_at),
            });
            lower = upper;
        }
        bins
    }
}

/// A categorical (or boolean) column: the training shares and the new counts, plus unseen.
#[derive(Clone)]
struct Shares {
    labels: Vec<String>,
    expected: Vec<f64>,
    counts: Vec<u64>,
    unseen: u64,
}

impl Shares {
    fn compare(&self) -> (f64, f64, Vec<Bin>) {
        let n = (self.counts.iter().sum::<u64>() + self.unseen).max(1) as f64;
        let mut bins: Vec<Bin> = self
            .labels
            .iter()
            .zip(&self.expected)
            .zip(&self.counts)
            .map(|((label, &e), &c)| Bin {
                label: label.clone(),
                expected: e,
                actual: c as f64 / n,
            })
            .collect();
        if self.unseen > 0 {
            bins.push(Bin {
                label: "(unseen)".into(),
                expected: 0.0,
                actual: self.unseen as f64 / n,
            });
        }
        let chi2: f64 = bins
            .iter()
            .map(|b| {
                let e = b.expected.max(FLOOR) * n;
                (b.actual * n - e).powi(2) / e
            })
            .sum();
        let df = (bins.len().max(2) - 1) as f64;
        let p = ChiSquared::new(df).map_or(f64::NAN, |c| c.sf(chi2));
        (chi2, p, bins)
    }
}

#[derive(Clone)]
enum Counter {
    Numeric(Numeric),
    /// A one-hot column: a row's slots hold one 1, or none for an unseen category.
    OneHot(Shares),
    /// A boolean column: one feature, 1 for true.
    Boolean(Shares),
}

/// One column's counter and where its features are in an encoded row.
#[derive(Clone)]
struct Tracked {
    name: String,
    kind: &'static str,
    at: usize,
    counter: Counter,
}

/// New rows counted against a checkpoint's training profile.
#[derive(Clone)]
pub struct Drift {
    width: usize,
    columns: Vec<Tracked>,
    score: Option<Numeric>,
    threshold: f32,
    expected_alarm_rate: f64,
    flagged: u64,
    rows: u64,
    training_rows: usize,
}

impl Drift {
    /// `None`: the checkpoint keeps no profile of its training rows (written before drift
    /// and explanations existed).
    pub fn new(
        pre: &Preprocessor,
        train_scores: &[f32],
        threshold: f32,
        training_rows: usize,
    ) -> Option<Drift> {
        if pre.profile.len() != pre.columns.len() {
            return None;
        }
        let mut at = 0;
        let mut columns = Vec::new();
        for (c, profile) in pre.columns.iter().zip(&pre.profile) {
            columns.push(tracked(c, profile, at));
            at += c.width();
        }
        Some(Drift {
            width: pre.n_features(),
            columns,
            score: (!train_scores.is_empty()).then(|| Numeric::new(train_scores)),
            threshold,
            expected_alarm_rate: super::decision::flagged_share(train_scores, threshold),
            flagged: 0,
            rows: 0,
            training_rows,
        })
    }

    /// Counts rows of features before scaling (`raw`, row-major) and their scores.
    pub fn add(&mut self, raw: &[f32], scores: &[f32]) {
        for row in raw.chunks_exact(self.width) {
            for t in &mut self.columns {
                match &mut t.counter {
                    Counter::Numeric(n) => n.add(row[t.at]),
                    Counter::Boolean(s) => s.counts[(row[t.at] == 1.0) as usize] += 1,
                    Counter::OneHot(s) => {
                        let slots = &row[t.at..t.at + s.labels.len()];
                        match slots.iter().position(|&v| v == 1.0) {
                            Some(k) => s.counts[k] += 1,
                            None => s.unseen += 1,
                        }
                    }
                }
            }
        }
        for &s in scores {
            if let Some(n) = &mut self.score {
                n.add(s);
            }
            self.flagged += (s >= self.threshold) as u64;
        }
        self.rows += scores.len() as u64;
    }

    pub fn report(&self) -> DriftReport {
        let n = self.rows as f64;
        let n_train = self.training_rows.max(1) as f64;
        let tests = self.columns.len() + self.score.is_some() as usize;
        let numeric = |name: &str, kind, counter: &Numeric| {
            let (d, bins) = counter.compare();
            finish(
                name,
                kind,
                ("ks", d, ks_p_value(d, n, n_train)),
                bins,
                0,
                tests,
            )
        };
        let mut columns: Vec<ColumnDrift> = self
            .columns
            .iter()
            .map(|t| match &t.counter {
                Counter::Numeric(c) => numeric(&t.name, t.kind, c),
                Counter::OneHot(s) | Counter::Boolean(s) => {
                    let (chi2, p, bins) = s.compare();
                    let test = ("chi2", chi2, p);
                    finish(&t.name, t.kind, test, bins, s.unseen as usize, tests)
                }
            })
            .collect();
        columns.sort_by(|a, b| b.psi.total_cmp(&a.psi).then(a.column.cmp(&b.column)));
        let score = self.score.as_ref().map(|c| numeric("score", "numeric", c));
        let all = columns.iter().chain(score.iter());
        let level = all.clone().map(|c| c.level).max().unwrap_or(Level::None);
        let drifted = all.filter(|c| c.level > Level::None).count();
        DriftReport {
            rows: self.rows as usize,
            training_rows: self.training_rows,
            level,
            drifted,
            columns,
            score,
            alarm_rate: self.flagged as f64 / n.max(1.0),
            expected_alarm_rate: self.expected_alarm_rate,
        }
    }
}

fn tracked(c: &InputColumn, profile: &Profile, at: usize) -> Tracked {
    let (kind, counter) = match (&c.encoding, profile) {
        (Encoding::Numeric { .. }, Profile::Percentiles { values }) => {
            ("numeric", Counter::Numeric(Numeric::new(values)))
        }
        (Encoding::OneHot { categories }, Profile::Shares { values }) => (
            "categorical",
            Counter::OneHot(Shares {
                labels: categories.clone(),
                expected: values.iter().map(|&v| v as f64).collect(),
                counts: vec![0; categories.len()],
                unseen: 0,
            }),
        ),
        (_, Profile::Shares { values }) => (
            "boolean",
            Counter::Boolean(Shares {
                labels: vec!["false".into(), "true".into()],
                expected: values.iter().map(|&v| v as f64).collect(),
                counts: vec![0; 2],
                unseen: 0,
            }),
        ),
        (_, Profile::Percentiles { values }) => ("numeric", Counter::Numeric(Numeric::new(values))),
    };
    Tracked {
        name: c.name.clone(),
        kind,
        at,
        counter,
    }
}

fn finish(
    name: &str,
    kind: &'static str,
    (test, statistic, p_value): (&'static str, f64, f64),
    bins: Vec<Bin>,
    unseen: usize,
    tests: usize,
) -> ColumnDrift {
    let psi = psi(&bins);
    ColumnDrift {
        column: name.to_string(),
        kind,
        psi,
        level: Level::of(psi),
        test,
        statistic,
        p_value,
        p_adjusted: (p_value * tests as f64).min(1.0),
        bins,
        unseen,
    }
}

/// Σ (actual − expected) · ln(actual / expected), each share floored at [`FLOOR`].
pub fn psi(bins: &[Bin]) -> f64 {
    bins.iter()
        .map(|b| {
            let (a, e) = (b.actual.max(FLOOR), b.expected.max(FLOOR));
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// The asymptotic two-sample Kolmogorov–Smirnov p-value of `d` between samples of `n` and `m`
/// rows: Q(λ) = 2 Σ (−1)^(k−1) e^(−2k²λ²), λ = (√e + 0.12 + 0.11/√e)·d with e = nm/(n+m)
/// (Stephens' correction, as Numerical Recipes computes it).
pub fn ks_p_value(d: f64, n: f64, m: f64) -> f64 {
    if n <= 0.0 || m <= 0.0 {
        return f64::NAN;
    }
    let e = (n * m / (n + m)).sqrt();
    let lambda = (e + 0.12 + 0.11 / e) * d;
    if lambda < 1e-3 {
        return 1.0;
    }
    let mut sum = 0.0;
    let mut sign = 1.0;
    for k in 1..=100 {
        let term = sign * (-2.0 * (k * k) as f64 * lambda * lambda).exp();
        sum += term;
        if term.abs() < 1e-12 {
            break;
        }
        sign = -sign;
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// A server's latest rows (features before scaling, and scores), at most `capacity`: the
/// oldest leave as new ones come. Its report counts them afresh, as `drift` would count a
/// file of the same rows.
#[derive(Clone)]
pub struct Window {
    empty: Drift,
    capacity: usize,
    raw: VecDeque<f32>,
    scores: VecDeque<f32>,
}

impl Window {
    pub fn new(empty: Drift, capacity: usize) -> Window {
        Window {
            empty,
            capacity,
            raw: VecDeque::new(),
            scores: VecDeque::new(),
        }
    }

    /// Adds rows of features before scaling and their scores.
    pub fn push(&mut self, raw: &[f32], scores: &[f32]) {
        let width = self.empty.width;
        self.raw.extend(raw);
        self.scores.extend(scores);
        let over = self.scores.len().saturating_sub(self.capacity);
        self.scores.drain(..over);
        self.raw.drain(..over * width);
    }

    /// The window's drift, or `None` before any row.
    pub fn report(&self) -> Option<DriftReport> {
        if self.scores.is_empty() {
            return None;
        }
        let mut drift = self.empty.clone();
        let (a, b) = self.raw.as_slices();
        let (sa, sb) = self.scores.as_slices();
        // `add` takes whole rows; a ring buffer's halves may split one, so join them.
        let raw: Vec<f32> = a.iter().chain(b).copied().collect();
        let scores: Vec<f32> = sa.iter().chain(sb).copied().collect();
        drift.add(&raw, &scores);
        Some(drift.report())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 101 percentiles of the values 0..n (evenly spread).
    fn percentiles(values: &[f32]) -> Vec<f32> {
        let mut v = values.to_vec();
        v.sort_by(f32::total_cmp);
        (0..=100).map(|j| v[(j * (v.len() - 1)) / 100]).collect()
    }

    fn counted(reference: &[f32], new: &[f32]) -> (f64, Vec<Bin>) {
        let mut n = Numeric::new(&percentiles(reference));
        new.iter().for_each(|&v| n.add(v));
        n.compare()
    }

    #[test]
    fn the_same_distribution_has_no_drift_and_a_shift_has_the_psi_of_theory() {
        let uniform: Vec<f32> = (0..10_000).map(|i| i as f32 / 10_000.0).collect();
        let (d, bins) = counted(&uniform, &uniform);
        assert_eq!(bins.len(), 10);
        assert!(bins.iter().all(|b| (b.expected - 0.1).abs() < 1e-9));
        assert!(d < 0.011 && psi(&bins) < 1e-4, "{d} {}", psi(&bins));
        // Shifted by half its range: the lower five deciles empty, the top one 60% full.
        let shifted: Vec<f32> = uniform.iter().map(|v| v + 0.5).collect();
        let (d, bins) = counted(&uniform, &shifted);
        assert!((d - 0.5).abs() < 0.011, "{d}");
        let theory = 5.0 * (1e-4 - 0.1) * (1e-4f64 / 0.1).ln()
            + 4.0 * 0.0
            + (0.6 - 0.1) * (0.6f64 / 0.1).ln();
        assert!(
            (psi(&bins) - theory).abs() < 0.05,
            "{} vs {theory}",
            psi(&bins)
        );
    }

    #[test]
    fn a_value_most_rows_share_is_one_bin_not_many() {
        // 60% zeros, then a spread: the deciles up to 0.6 tie at 0 and merge.
        let col: Vec<f32> = (0..1000)
            .map(|i| if i < 600 { 0.0 } else { i as f32 })
            .collect();
        let (_, bins) = counted(&col, &col);
        assert_eq!(bins[0].label, "<= 0");
        assert!((bins[0].expected - 0.6).abs() < 0.011, "{:?}", bins[0]);
        assert!(psi(&bins) < 1e-3);
    }

    /// Against the asymptotic two-sample p-values scipy's `ks_2samp(method="asymp")` gives.
    #[test]
    fn ks_p_values_follow_the_kolmogorov_distribution() {
        assert!((ks_p_value(0.05, 1000.0, 1000.0) - 0.164).abs() < 0.01);
        assert!(ks_p_value(0.2, 1000.0, 1000.0) < 1e-15);
        assert_eq!(ks_p_value(0.0, 10.0, 10.0), 1.0);
    }

    #[test]
    fn levels_follow_the_cut_offs() {
        assert_eq!(Level::of(0.099), Level::None);
        assert_eq!(Level::of(0.1), Level::Moderate);
        assert_eq!(Level::of(0.25), Level::Significant);
    }
}
