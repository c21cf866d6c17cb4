//! Why a detector flags what it flags, for every family alike, through the shared [`Scorer`]:
//!
//! - **global**: permutation importance of each input column (a one-hot column's features
//!   permuted together), as the drop in ROC AUC (and macro F1 for multiclass) or, without
//!   labels, the mean absolute change of the score, with a 95% interval over repeats;
//! - **per row**: the columns that push a row's score up, each measured by setting that column
//!   alone to its typical training value (the median, or the most common category) and taking
//!   the score's fall. (An autoencoder's per-feature reconstruction error was tried as a cheaper
//!   signal and left out: on a row extreme in one column it blamed other columns, whose
//!   reconstructions the extreme input had shifted.)

use std::ops::Range;

use anyhow::Result;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;

use crate::bail_input;
use crate::data::Dataset;
use crate::data::preprocess::{Encoding, Profile, most_common};
use crate::eval::multiclass::ClassReport;
use crate::eval::roc_auc;
use crate::model::ModelKind;
use crate::score::{Reason, Scored, Scorer};

pub mod steps;

/// A column's global importance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Importance {
    pub feature: String,
    /// The mean over repeats, and its 95% interval.
    pub importance: f64,
    pub low: f64,
    pub high: f64,
    /// Multiclass: the drop in macro F1, and its 95% interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub macro_f1_drop: Option<[f64; 3]>,
}

/// What global importance measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    RocAucDrop,
    MeanAbsScoreChange,
}

impl Measure {
    pub fn describe(self) -> &'static str {
        match self {
            Measure::RocAucDrop => "drop in ROC AUC when the column is permuted",
            Measure::MeanAbsScoreChange => "mean absolute change of the score when permuted",
        }
    }
}

/// One flagged row (1-based among the rows explained) and its reasons.
#[derive(Debug, Serialize)]
pub struct Flagged {
    pub row: usize,
    pub score: f32,
    pub reasons: Vec<Reason>,
}

/// How a global explanation runs.
pub struct Global {
    pub repeats: usize,
    /// Rows beyond this are sampled (seeded) down to it.
    pub max_rows: usize,
    pub seed: u64,
}

/// A hybrid's effects: per probe (`g` per row), the larger fall of its two parts'
/// probabilities from the row's own, and which part fell. Each part is explained on its own
/// probability because the joined one saturates: a row both parts flag sits within 1e-7 of
/// 1, where no single column moves it in f32.
fn parts_effects(own: &Scored, probed: &Scored, g: usize) -> Vec<(f32, Option<usize>)> {
    let (own, probed) = match (&own.ensemble, &probed.ensemble) {
        (Some(o), Some(p)) => (&o.member_scores, &p.member_scores),
        _ => unreachable!("a hybrid scores with its parts"),
    };
    probed
        .chunks_exact(2)
        .enumerate()
        .map(|(i, probe)| {
            let row = &own[(i / g) * 2..(i / g) * 2 + 2];
            let fall = [row[0] - probe[0], row[1] - probe[1]];
            let j = (fall[1] > fall[0]) as usize;
            (fall[j], Some(j))
        })
        .collect()
}

/// An input column's features.
struct Group {
    column: usize,
    features: Range<usize>,
}

/// A scorer with what explaining its scores needs: each column's features and typical value.
pub struct Explainer<'a> {
    scorer: &'a Scorer,
    groups: Vec<Group>,
    /// The typical row, scaled as the model sees it.
    typical: Vec<f32>,
}

impl<'a> Explainer<'a> {
    pub fn new(scorer: &'a Scorer) -> Result<Explainer<'a>> {
        let pre = &scorer.pre;
        if scorer.sequence.is_some() {
            bail_input!(
                "a sequence model scores windows of flows, not columns: `predict --explain K` \
                 names the steps (flows) an attention head's score rests on; explain a \
                 per-flow model for column reasons"
            );
        }
        if pre.profile.len() != pre.columns.len() {
            bail_input!(
                "this checkpoint holds no profile of its training rows (it was written before \
                 explanations); train it again to explain its scores"
            );
        }
        let mut groups = Vec::new();
        let mut typical = Vec::new();
        for (column, (c, p)) in pre.columns.iter().zip(&pre.profile).enumerate() {
            let at = typical.len();
            typical.extend(p.typical(matches!(c.encoding, Encoding::OneHot { .. })));
            groups.push(Group {
                column,
                features: at..typical.len(),
            });
        }
        pre.scale(&mut typical);
        Ok(Explainer {
            scorer,
            groups,
            typical,
        })
    }

    fn width(&self) -> usize {
        self.typical.len()
    }

    /// Each row of a batch (`x` the scaled features, `raw` the same rows before scaling,
    /// `scores` their anomaly scores): its top `k` reasons when it scores at least
    /// `threshold`, else none.
    pub fn batch(
        &self,
        rows: (&[f32], &[f32], &[f32]),
        threshold: f32,
        k: usize,
    ) -> Result<Vec<Option<Vec<Reason>>>> {
        let scores = rows.2;
        let flagged: Vec<usize> = (0..scores.len())
            .filter(|&i| scores[i] >= threshold)
            .collect();
        let mut out = vec![None; scores.len()];
        for (i, reasons) in flagged.iter().zip(self.reasons(rows, &flagged, k)?) {
            out[*i] = Some(reasons);
        }
        Ok(out)
    }

    /// The top `k` reasons of each row `rows` of a batch (as [`Explainer::batch`]).
    fn reasons(
        &self,
        (x, raw, scores): (&[f32], &[f32], &[f32]),
        rows: &[usize],
        k: usize,
    ) -> Result<Vec<Vec<Reason>>> {
        let d = self.width();
        let g = self.groups.len();
        let picked: Vec<f32> = rows
            .iter()
            .flat_map(|&r| &x[r * d..(r + 1) * d])
            .copied()
            .collect();
        let mut probes = Vec::with_capacity(picked.len() * g);
        for row in picked.chunks_exact(d) {
            for group in &self.groups {
                probes.extend_from_slice(row);
                let at = probes.len() - d;
                probes[at..][group.features.clone()]
                    .copy_from_slice(&self.typical[group.features.clone()]);
            }
        }
        let probed = self.scorer.score(&probes)?;
        let effects = match self.scorer.kind {
            ModelKind::Hybrid => {
                let own = self.scorer.score(&picked)?;
                parts_effects(&own, &probed, g)
            }
            _ => {
                let own = rows.iter().flat_map(|&r| std::iter::repeat_n(scores[r], g));
                let fall = own.zip(&probed.anomaly).map(|(s, p)| (s - p, None));
                fall.collect()
            }
        };
        Ok(rows
            .iter()
            .zip(effects.chunks_exact(g))
            .map(|(&r, effect)| self.top(&raw[r * d..(r + 1) * d], effect, k))
            .collect())
    }

    /// The `k` columns with the largest positive effects, largest first (ties: column order).
    fn top(&self, raw: &[f32], effect: &[(f32, Option<usize>)], k: usize) -> Vec<Reason> {
        let mut order: Vec<usize> = (0..effect.len()).filter(|&i| effect[i].0 > 0.0).collect();
        order.sort_by(|&a, &b| effect[b].0.total_cmp(&effect[a].0).then(a.cmp(&b)));
        order.truncate(k);
        order
            .into_iter()
            .map(|i| Reason {
                part: effect[i].1.map(|j| self.scorer.members[j]),
                ..self.reason(&self.groups[i], raw, effect[i].0)
            })
            .collect()
    }

    fn reason(&self, group: &Group, raw: &[f32], effect: f32) -> Reason {
        let pre = &self.scorer.pre;
        let column = &pre.columns[group.column];
        let profile = &pre.profile[group.column];
        let v = &raw[group.features.clone()];
        let (value, typical, percentile, share) = match (&column.encoding, profile) {
            (Encoding::Numeric { log1p, .. }, p) => {
                let show = |v: f32| number(if *log1p { v.exp_m1() } else { v });
                let median = p.typical(false)[0];
                let percentile = p.percentile(v[0]).map(|p| p as f32);
                (show(v[0]), show(median), percentile, None)
            }
            (Encoding::Boolean { .. }, Profile::Shares { values }) => {
                let name = |b: bool| b.to_string();
                let top = most_common(values);
                let at = (v[0] == 1.0) as usize;
                (name(at == 1), name(top == 1), None, Some(values[at]))
            }
            (Encoding::OneHot { categories }, Profile::Shares { values }) => {
                let hot = v.iter().position(|&b| b == 1.0);
                let value = hot.map_or("(unseen)".to_string(), |h| categories[h].clone());
                let share = hot.map_or(0.0, |h| values[h]);
                (
                    value,
                    categories[most_common(values)].clone(),
                    None,
                    Some(share),
                )
            }
            _ => (number(v[0]), String::new(), None, None),
        };
        Reason {
            feature: column.name.clone(),
            value,
            typical,
            percentile,
            share,
            effect,
            part: None,
            flows: None,
        }
    }

    /// Every flagged row of `ds` (`raw`: its features before scaling) with its top `k` reasons.
    pub fn flagged(&self, ds: &Dataset, raw: &[f32], k: usize) -> Result<Vec<Flagged>> {
        const CHUNK: usize = 4096;
        let d = self.width();
        let mut out = Vec::new();
        for (c, (x, raw)) in
            ds.x.chunks(CHUNK * d)
                .zip(raw.chunks(CHUNK * d))
                .enumerate()
        {
            let scores = self.scorer.score(x)?.anomaly;
            let threshold = self.scorer.threshold;
            let reasons = self.batch((x, raw, &scores), threshold, k)?;
            out.extend(reasons.into_iter().enumerate().filter_map(|(i, r)| {
                Some(Flagged {
                    row: c * CHUNK + i + 1,
                    score: scores[i],
                    reasons: r?,
                })
            }));
        }
        Ok(out)
    }

    /// Permutation importance of every input column on `ds` (on a seeded sample of
    /// `max_rows` when larger), most important first, each from `repeats` seeded shuffles;
    /// with the number of rows used.
    pub fn importance(
        &self,
        ds: &Dataset,
        opts: &Global,
    ) -> Result<(Measure, Vec<Importance>, usize)> {
        let sample;
        let ds = if ds.len() > opts.max_rows {
            let mut rows: Vec<usize> = (0..ds.len()).collect();
            rows.shuffle(&mut StdRng::seed_from_u64(opts.seed));
            rows.truncate(opts.max_rows);
            rows.sort_unstable();
            sample = ds.subset(&rows);
            &sample
        } else {
            ds
        };
        let (repeats, seed) = (opts.repeats, opts.seed);
        let d = self.width();
        let base = self.scorer.score(&ds.x)?;
        let auc = roc_auc(&base.anomaly, &ds.y);
        let measure = match auc {
            Some(_) => Measure::RocAucDrop,
            None => Measure::MeanAbsScoreChange,
        };
        let f1 = |probs: &[f32], anomaly: &[f32]| {
            let pre = &self.scorer.pre;
            ClassReport::compute(probs, ds, &pre.classes, anomaly, self.scorer.threshold)
                .macro_avg
                .f1
        };
        let multiclass = !self.scorer.pre.classes.is_empty();
        let base_f1 = multiclass.then(|| f1(&base.class_probs, &base.anomaly));
        let n = ds.len();
        let mut out = Vec::new();
        for (gi, group) in self.groups.iter().enumerate() {
            let mut drops = Vec::new();
            let mut f1_drops = Vec::new();
            for rep in 0..repeats {
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(&mut StdRng::seed_from_u64(
                    seed ^ ((gi as u64) << 32 | rep as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                ));
                let mut x = ds.x.clone();
                for (i, &from) in order.iter().enumerate() {
                    let f = group.features.clone();
                    x[i * d..][f.clone()].copy_from_slice(&ds.x[from * d..][f]);
                }
                let s = self.scorer.score(&x)?;
                drops.push(match auc {
                    Some(a) => a - roc_auc(&s.anomaly, &ds.y).unwrap_or(0.5),
                    None => {
                        let total: f64 = s
                            .anomaly
                            .iter()
                            .zip(&base.anomaly)
                            .map(|(p, b)| (p - b).abs() as f64)
                            .sum();
                        total / n as f64
                    }
                });
                if let Some(b) = base_f1 {
                    f1_drops.push(b - f1(&s.class_probs, &s.anomaly));
                }
            }
            let (importance, low, high) = mean_interval(&drops);
            out.push(Importance {
                feature: self.scorer.pre.columns[group.column].name.clone(),
                importance,
                low,
                high,
                macro_f1_drop: base_f1.map(|_| {
                    let (m, l, h) = mean_interval(&f1_drops);
                    [m, l, h]
                }),
            });
        }
        // Stable: equal importances keep column order.
        out.sort_by(|a, b| b.importance.total_cmp(&a.importance));
        Ok((measure, out, n))
    }
}

/// A value with at most 6 significant digits, as a person reads it.
pub fn number(v: f32) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let rounded: f64 = format!("{:.5e}", v as f64).parse().unwrap_or(v as f64);
    rounded.to_string()
}

/// The mean of `values` and its 95% interval (Student's t over the repeats).
fn mean_interval(values: &[f64]) -> (f64, f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, mean, mean);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let half = t_975(values.len() - 1) * (var / n).sqrt();
    (mean, mean - half, mean + half)
}

/// Student's t distribution's 97.5th percentile for `df` degrees of freedom.
fn t_975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    T.get(df - 1).copied().unwrap_or(1.96)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_use_students_t() {
        let (m, l, h) = mean_interval(&[1.0, 2.0, 3.0]);
        assert_eq!(m, 2.0);
        // sd 1, n 3, t(2) = 4.303.
        assert!((h - m - 4.303 / 3f64.sqrt()).abs() < 1e-9, "{l} {h}");
        assert_eq!(mean_interval(&[0.5]), (0.5, 0.5, 0.5));
    }

    #[test]
    fn numbers_keep_six_significant_digits() {
        assert_eq!(number(9_099_999.5), "9100000");
        assert_eq!(number(0.123_456_79), "0.123457");
        assert_eq!(number(3.0), "3");
    }
}
