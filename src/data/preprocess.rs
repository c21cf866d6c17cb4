//! Turns table columns into a scaled feature matrix. Everything here is fitted on training rows
//! only and stored in the checkpoint, so `test` encodes new files exactly as training did.

use std::collections::HashMap;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::bail_input;
use crate::config::{DataConfig, MissingPolicy, QuantileOutput, ScalerKind, Transform};
use crate::data::read::{Column, ColumnData, Kind, Table};

/// How one input column becomes features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Encoding {
    /// One feature; missing cells take the training median; `log1p` maps x to ln(1 + max(x, 0)).
    Numeric {
        fill: f32,
        #[serde(default)]
        log1p: bool,
    },
    Boolean {
        fill: f32,
    },
    /// One 0/1 feature per category seen in training; an unseen category is all zeros.
    OneHot {
        categories: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputColumn {
    pub name: String,
    pub encoding: Encoding,
}

impl InputColumn {
    pub fn kind(&self) -> Kind {
        match self.encoding {
            Encoding::Numeric { .. } => Kind::Numeric,
            Encoding::Boolean { .. } => Kind::Boolean,
            Encoding::OneHot { .. } => Kind::Categorical,
        }
    }

    pub fn width(&self) -> usize {
        match &self.encoding {
            Encoding::OneHot { categories } => categories.len(),
            _ => 1,
        }
    }
}

impl Encoding {
    /// A numeric or boolean cell's feature before scaling: the training median when the cell is
    /// missing (NaN), then `log1p` where it was fitted. (One-hot columns have no such value.)
    pub fn value(&self, v: f32) -> f32 {
        match *self {
            Encoding::Numeric { fill, log1p } => {
                let v = if v.is_finite() { v } else { fill };
                if log1p { v.max(0.0).ln_1p() } else { v }
            }
            Encoding::Boolean { fill } => {
                if v.is_finite() {
                    v
                } else {
                    fill
                }
            }
            Encoding::OneHot { .. } => f32::NAN,
        }
    }
}

/// `x' = (x - offset) * scale` per feature, or for `quantile` the position of x among the
/// training quantiles (`quantiles[j]`, `n_quantiles` values from the 0th to the 100th percentile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub kind: ScalerKind,
    pub offset: Vec<f32>,
    pub scale: Vec<f32>,
    #[serde(default)]
    pub quantiles: Vec<Vec<f32>>,
    #[serde(default = "uniform")]
    pub output: QuantileOutput,
}

fn uniform() -> QuantileOutput {
    QuantileOutput::Uniform
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    pub columns: Vec<InputColumn>,
    pub feature_names: Vec<String>,
    pub scaler: Scaler,
    pub missing: MissingPolicy,
    /// Multiclass: the class names in output order (empty for a binary model), and which of
    /// them count as anomalous in the normal-vs-anomaly view.
    #[serde(default)]
    pub classes: Vec<String>,
    #[serde(default)]
    pub anomalous: Vec<bool>,
    /// What each input column looked like in the training rows, before scaling (what
    /// explanations compare a row with; empty in checkpoints from before explanations).
    #[serde(default)]
    pub profile: Vec<Profile>,
    /// A sequence family's order and group columns: read with the features, not encoded.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Whether the scaling, medians, categories and profile come from the normal training
    /// rows only (an unsupervised detector's learning rows); false: every training row, as in
    /// every checkpoint before `data.fit_preprocessing_on`.
    #[serde(default)]
    pub fitted_on_normal_rows: bool,
}

/// One input column over the training rows, in its features before scaling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Profile {
    /// A numeric column: its 0th to 100th percentiles (101 values).
    Percentiles { values: Vec<f32> },
    /// A boolean (false, true) or one-hot column (its categories): each value's share.
    Shares { values: Vec<f32> },
}

/// The index of the largest share (the first on ties).
pub fn most_common(shares: &[f32]) -> usize {
    (0..shares.len()).fold(0, |best, i| if shares[i] > shares[best] { i } else { best })
}

impl Profile {
    /// Fits the profile of the column whose features are `at..at + width` of `raw` rows.
    fn fit(column: &InputColumn, raw: &[f32], width: usize, at: usize) -> Profile {
        let rows = raw.chunks_exact(width);
        match &column.encoding {
            Encoding::Numeric { .. } => {
                let mut v: Vec<f32> = rows.map(|r| r[at]).collect();
                v.sort_unstable_by(f32::total_cmp);
                Profile::Percentiles {
                    values: percentiles(&v, 101),
                }
            }
            Encoding::Boolean { .. } => {
                let n = raw.len() / width;
                let ones = rows.filter(|r| r[at] == 1.0).count() as f32 / n as f32;
                Profile::Shares {
                    values: vec![1.0 - ones, ones],
                }
            }
            Encoding::OneHot { categories } => {
                let n = raw.len() / width;
                let mut shares = vec![0.0f32; categories.len()];
                for r in rows {
                    shares.iter_mut().zip(&r[at..]).for_each(|(s, v)| *s += v);
                }
                shares.iter_mut().for_each(|s| *s /= n as f32);
                Profile::Shares { values: shares }
            }
        }
    }

    /// The training rows' typical value as features before scaling: the median, or the most
    /// common value's one-hot (or 0/1) encoding.
    pub fn typical(&self, one_hot: bool) -> Vec<f32> {
        match self {
            Profile::Percentiles { values } => vec![values[50]],
            Profile::Shares { values } => {
                let top = most_common(values);
                if one_hot {
                    (0..values.len()).map(|i| (i == top) as u8 as f32).collect()
                } else {
                    vec![top as f32]
                }
            }
        }
    }

    /// Where a numeric feature value falls among the training rows, in percent.
    pub fn percentile(&self, v: f32) -> Option<f64> {
        match self {
            Profile::Percentiles { values } => Some(100.0 * quantile_position(v, values)),
            Profile::Shares { .. } => None,
        }
    }
}

/// What encoding a file met that training had not seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncodeReport {
    /// Per categorical column: how many cells held a category unseen in training.
    pub unseen_categories: Vec<(String, usize)>,
}

impl Preprocessor {
    /// Fits imputation, transforms, categories and the scaler on `train` rows. Columns that are
    /// constant on those rows carry no information and are left out (the notices say which).
    pub fn fit(
        table: &Table,
        train: &[usize],
        cfg: &DataConfig,
        (classes, anomalous): (Vec<String>, Vec<bool>),
    ) -> Result<(Preprocessor, Vec<String>)> {
        let mut columns = Vec::new();
        let mut notices = Vec::new();
        let mut logged = Vec::new();
        for col in &table.columns {
            match fit_column(col, train, cfg) {
                Ok(encoding) => {
                    if matches!(encoding, Encoding::Numeric { log1p: true, .. }) {
                        logged.push(col.name.clone());
                    }
                    columns.push(InputColumn {
                        name: col.name.clone(),
                        encoding,
                    });
                }
                Err(dropped) => notices.push(dropped),
            }
        }
        if columns.is_empty() {
            bail_input!(
                "no usable feature columns: every column is constant or empty in the training rows"
            );
        }
        if !logged.is_empty() {
            notices.push(format!(
                "log1p on {} columns: {}",
                logged.len(),
                logged.join(", ")
            ));
        }
        let mut pre = Preprocessor {
            feature_names: feature_names(&columns),
            columns,
            scaler: Scaler::identity(),
            missing: cfg.missing,
            classes,
            anomalous,
            profile: Vec::new(),
            keys: Vec::new(),
            fitted_on_normal_rows: false,
        };
        let (raw, _) = pre.encode(table, train)?;
        pre.scaler = Scaler::fit(cfg, &raw, pre.n_features());
        let width = pre.n_features();
        let mut at = 0;
        for c in &pre.columns {
            pre.profile.push(Profile::fit(c, &raw, width, at));
            at += c.width();
        }
        Ok((pre, notices))
    }

    pub fn n_features(&self) -> usize {
        self.columns.iter().map(InputColumn::width).sum()
    }

    /// Keeps the input columns `keep` (indices into `columns`, in order) and their features'
    /// names and scaling, dropping the rest.
    pub fn keep_columns(&mut self, keep: &[usize]) {
        let mut start = 0;
        let mut features = Vec::new();
        for (c, col) in self.columns.iter().enumerate() {
            if keep.contains(&c) {
                features.extend(start..start + col.width());
            }
            start += col.width();
        }
        let pick = |v: &[f32]| -> Vec<f32> {
            if v.is_empty() {
                Vec::new()
            } else {
                features.iter().map(|&f| v[f]).collect()
            }
        };
        let s = &mut self.scaler;
        (s.offset, s.scale) = (pick(&s.offset), pick(&s.scale));
        if !s.quantiles.is_empty() {
            s.quantiles = features.iter().map(|&f| s.quantiles[f].clone()).collect();
        }
        self.feature_names = features
            .iter()
            .map(|&f| self.feature_names[f].clone())
            .collect();
        self.columns = keep.iter().map(|&c| self.columns[c].clone()).collect();
        if !self.profile.is_empty() {
            self.profile = keep.iter().map(|&c| self.profile[c].clone()).collect();
        }
    }

    /// Model outputs: 1 (an anomaly logit) or one per class.
    pub fn n_outputs(&self) -> usize {
        self.classes.len().max(1)
    }

    /// Each row's anomaly probability from the model's probabilities (`n_outputs` per row):
    /// for multiclass, the total probability of the anomalous classes.
    pub fn anomaly_scores(&self, probs: &[f32]) -> Vec<f32> {
        if self.classes.is_empty() {
            return probs.to_vec();
        }
        crate::model::detector::anomalous_share(probs, &self.anomalous)
    }

    /// The column kinds a file must be read with to be encoded by this preprocessor.
    pub fn forced_kinds(&self) -> HashMap<String, Kind> {
        self.columns
            .iter()
            .map(|c| (c.name.clone(), c.kind()))
            .collect()
    }

    /// Encodes and scales `rows` of `table` into a row-major matrix.
    pub fn transform(&self, table: &Table, rows: &[usize]) -> Result<(Vec<f32>, EncodeReport)> {
        let (mut x, report) = self.encode(table, rows)?;
        self.scale(&mut x);
        Ok((x, report))
    }

    /// Scales encoded rows in place, as training did.
    pub fn scale(&self, x: &mut [f32]) {
        self.scaler.apply(x);
    }

    /// Encodes `rows` of `table` into features before scaling (what explanations quote).
    pub fn encode(&self, table: &Table, rows: &[usize]) -> Result<(Vec<f32>, EncodeReport)> {
        let width = self.n_features();
        let mut x = vec![0.0f32; rows.len() * width];
        let mut report = EncodeReport::default();
        let mut at = 0;
        for input in &self.columns {
            let Some(col) = table.column(&input.name) else {
                bail_input!(
                    "missing column '{}', which the model was trained on",
                    input.name
                );
            };
            match (&input.encoding, &col.data) {
                (Encoding::Numeric { .. }, ColumnData::Numeric(v))
                | (Encoding::Boolean { .. }, ColumnData::Boolean(v)) => {
                    for (i, &r) in rows.iter().enumerate() {
                        x[i * width + at] = input.encoding.value(v[r]);
                    }
                }
                (Encoding::OneHot { categories }, ColumnData::Categorical(d)) => {
                    let slot: Vec<Option<usize>> = d
                        .values
                        .iter()
                        .map(|v| categories.iter().position(|c| c == v))
                        .collect();
                    let mut unseen = 0;
                    for (i, &r) in rows.iter().enumerate() {
                        match slot[d.codes[r] as usize] {
                            Some(k) => x[i * width + at + k] = 1.0,
                            None => unseen += 1,
                        }
                    }
                    if unseen > 0 {
                        report.unseen_categories.push((input.name.clone(), unseen));
                    }
                }
                (_, other) => bail_input!(
                    "column '{}' holds {:?} values, but the model was trained on {:?} values",
                    input.name,
                    kind_of(other),
                    input.kind()
                ),
            }
            at += input.width();
        }
        Ok((x, report))
    }
}

/// How `col` is encoded, fitted on the `train` rows; `Err` is the notice that says why it
/// is dropped (no values there, or one value).
fn fit_column(
    col: &Column,
    train: &[usize],
    cfg: &DataConfig,
) -> std::result::Result<Encoding, String> {
    let constant = || {
        format!(
            "column '{}' is constant in training rows; dropped",
            col.name
        )
    };
    match &col.data {
        ColumnData::Numeric(v) | ColumnData::Boolean(v) => {
            let mut seen: Vec<f32> = train
                .iter()
                .map(|&r| v[r])
                .filter(|x| x.is_finite())
                .collect();
            let Some(fill) = median(&mut seen) else {
                return Err(format!(
                    "column '{}' has no values in training rows; dropped",
                    col.name
                ));
            };
            if seen.first() == seen.last() {
                return Err(constant());
            }
            if !matches!(col.data, ColumnData::Numeric(_)) {
                return Ok(Encoding::Boolean { fill });
            }
            let log1p = cfg.transform == Transform::Log1p
                && if cfg.transform_columns.is_empty() {
                    heavy_tailed(&seen)
                } else {
                    cfg.transform_columns.iter().any(|c| c.trim() == col.name)
                };
            Ok(Encoding::Numeric { fill, log1p })
        }
        ColumnData::Categorical(d) => {
            let mut present = vec![false; d.values.len()];
            train
                .iter()
                .for_each(|&r| present[d.codes[r] as usize] = true);
            let categories: Vec<String> = d
                .values
                .iter()
                .zip(&present)
                .filter(|(_, p)| **p)
                .map(|(v, _)| v.clone())
                .collect();
            if categories.len() < 2 {
                return Err(constant());
            }
            Ok(Encoding::OneHot { categories })
        }
    }
}

/// Each feature's name: a column's, or `column=category` for a one-hot feature.
fn feature_names(columns: &[InputColumn]) -> Vec<String> {
    columns
        .iter()
        .flat_map(|c| match &c.encoding {
            Encoding::OneHot { categories } => categories
                .iter()
                .map(|v| format!("{}={v}", c.name))
                .collect(),
            _ => vec![c.name.clone()],
        })
        .collect()
}

fn kind_of(data: &ColumnData) -> Kind {
    match data {
        ColumnData::Numeric(_) => Kind::Numeric,
        ColumnData::Boolean(_) => Kind::Boolean,
        ColumnData::Categorical(_) => Kind::Categorical,
    }
}

/// Non-negative with a long right tail (sample skewness above 2): byte and packet counts,
/// durations. `values` are sorted and finite.
fn heavy_tailed(values: &[f32]) -> bool {
    if values.first().is_none_or(|&v| v < 0.0) {
        return false;
    }
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    let (m2, m3) = values.iter().fold((0.0, 0.0), |(m2, m3), &v| {
        let d = v as f64 - mean;
        (m2 + d * d, m3 + d * d * d)
    });
    let (m2, m3) = (m2 / n, m3 / n);
    m2 > 0.0 && m3 / m2.powf(1.5) > 2.0
}

/// Sorts `values` and returns their median (`None` when empty).
fn median(values: &mut [f32]) -> Option<f32> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(|a, b| a.total_cmp(b));
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

impl Scaler {
    fn identity() -> Scaler {
        Scaler {
            kind: ScalerKind::None,
            offset: vec![],
            scale: vec![],
            quantiles: vec![],
            output: QuantileOutput::Uniform,
        }
    }

    fn fit(cfg: &DataConfig, x: &[f32], width: usize) -> Scaler {
        let kind = cfg.scaler;
        let n = (x.len() / width.max(1)).max(1) as f64;
        let mut offset = vec![0.0f32; width];
        let mut scale = vec![1.0f32; width];
        let mut quantiles = Vec::new();
        for j in 0..width {
            let col = x.iter().skip(j).step_by(width).map(|&v| v as f64);
            match kind {
                ScalerKind::None => {}
                ScalerKind::Quantile => {
                    let mut sorted: Vec<f32> = x.iter().skip(j).step_by(width).copied().collect();
                    sorted.sort_unstable_by(f32::total_cmp);
                    quantiles.push(percentiles(&sorted, cfg.n_quantiles));
                }
                ScalerKind::Standard => {
                    let mean = col.clone().sum::<f64>() / n;
                    let var = col.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
                    offset[j] = mean as f32;
                    scale[j] = if var > 0.0 {
                        (1.0 / var.sqrt()) as f32
                    } else {
                        1.0
                    };
                }
                ScalerKind::Minmax => {
                    let (lo, hi) = col.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                        (lo.min(v), hi.max(v))
                    });
                    offset[j] = lo as f32;
                    scale[j] = if hi > lo {
                        (1.0 / (hi - lo)) as f32
                    } else {
                        1.0
                    };
                }
            }
        }
        Scaler {
            kind,
            offset,
            scale,
            quantiles,
            output: cfg.quantile_output,
        }
    }

    fn apply(&self, x: &mut [f32]) {
        match self.kind {
            ScalerKind::None => {}
            ScalerKind::Quantile => {
                let width = self.quantiles.len();
                for row in x.chunks_exact_mut(width) {
                    for (v, q) in row.iter_mut().zip(&self.quantiles) {
                        let u = quantile_position(*v, q);
                        *v = match self.output {
                            QuantileOutput::Uniform => u as f32,
                            // scikit-learn clips to (1e-7, 1 - 1e-7) so the tails stay finite.
                            QuantileOutput::Normal => {
                                normal_quantile(u.clamp(1e-7, 1.0 - 1e-7)) as f32
                            }
                        };
                    }
                }
            }
            ScalerKind::Standard | ScalerKind::Minmax => {
                let width = self.offset.len();
                for row in x.chunks_exact_mut(width) {
                    for ((v, o), s) in row.iter_mut().zip(&self.offset).zip(&self.scale) {
                        *v = (*v - o) * s;
                    }
                }
            }
        }
    }
}

/// `n` evenly spaced percentiles of sorted values, interpolated linearly (numpy's default).
fn percentiles(sorted: &[f32], n: usize) -> Vec<f32> {
    let last = (sorted.len() - 1) as f64;
    (0..n)
        .map(|i| {
            let pos = last * i as f64 / (n - 1) as f64;
            let (lo, frac) = (pos.floor() as usize, pos.fract());
            let hi = (lo + 1).min(sorted.len() - 1);
            (sorted[lo] as f64 + frac * (sorted[hi] as f64 - sorted[lo] as f64)) as f32
        })
        .collect()
}

/// Where x falls among quantiles `q` (references evenly spaced on [0, 1]), interpolated from
/// below and from above and averaged, as scikit-learn does, so a value repeated across many
/// quantiles (a spike at 0) lands in the middle of its run.
fn quantile_position(x: f32, q: &[f32]) -> f64 {
    let n = q.len();
    let r = |i: usize| i as f64 / (n - 1) as f64;
    if x <= q[0] {
        return 0.0;
    }
    if x >= q[n - 1] {
        return 1.0;
    }
    let between =
        |j: usize| r(j) + (x - q[j]) as f64 / (q[j + 1] - q[j]) as f64 * (r(j + 1) - r(j));
    // From below: the last quantile <= x. From above: the first quantile >= x.
    let up = between(q.partition_point(|&v| v <= x) - 1);
    let k = q.partition_point(|&v| v < x);
    let down = if q[k] == x { r(k) } else { between(k - 1) };
    0.5 * (up + down)
}

/// The standard normal quantile function (Acklam's rational approximation, relative error
/// below 1.2e-9), for `quantile_output: normal`.
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Applies `data.missing` to a freshly read table: `error` refuses any missing or non-finite
/// cell, `drop_rows` removes such rows (returning how many), `impute_median` leaves them for
/// the preprocessor to fill.
pub fn apply_missing_policy(table: &mut Table, policy: MissingPolicy) -> Result<usize> {
    let bad: Vec<_> = table
        .columns
        .iter()
        .filter(|c| c.missing.total() > 0)
        .collect();
    if bad.is_empty() || policy == MissingPolicy::ImputeMedian {
        return Ok(0);
    }
    if policy == MissingPolicy::Error {
        let c = bad[0];
        bail_input!(
            "column '{}' has {} empty, {} NaN and {} infinite cells (data.missing: error; \
             use drop_rows or impute_median to accept them)",
            c.name,
            c.missing.empty,
            c.missing.nan,
            c.missing.infinite
        );
    }
    let n = table.n_rows();
    let mut keep = vec![true; n];
    for col in &table.columns {
        if let ColumnData::Numeric(v) | ColumnData::Boolean(v) = &col.data {
            v.iter()
                .zip(keep.iter_mut())
                .for_each(|(x, k)| *k &= x.is_finite());
        }
    }
    let rows: Vec<usize> = (0..n).filter(|&r| keep[r]).collect();
    let dropped = n - rows.len();
    table.retain_rows(&rows);
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::read::{TableSpec, read_table};

    fn table(body: &str) -> Table {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, body).unwrap();
        let spec = TableSpec {
            header: true,
            label_column: "label".into(),
            ..Default::default()
        };
        read_table(&p, &spec).unwrap()
    }

    #[test]
    fn fits_on_train_rows_only_and_encodes_unseen_categories_as_zeros() {
        let t = table(
            "a,proto,k,flag,label\n1,tcp,5,true,0\n3,udp,5,false,1\n,tcp,5,true,0\n100,icmp,5,true,1\n",
        );
        let (pre, notices) =
            Preprocessor::fit(&t, &[0, 1, 2], &cfg(ScalerKind::None), Default::default()).unwrap();
        assert_eq!(pre.feature_names, ["a", "proto=tcp", "proto=udp", "flag"]);
        assert_eq!(
            notices,
            ["column 'k' is constant in training rows; dropped"]
        );
        let (x, report) = pre.transform(&t, &[2, 3]).unwrap();
        // Row 2's empty `a` takes the training median (2); row 3's `icmp` was never seen.
        assert_eq!(x, [2.0, 1.0, 0.0, 1.0, 100.0, 0.0, 0.0, 1.0]);
        assert_eq!(report.unseen_categories, [("proto".to_string(), 1)]);
    }

    #[test]
    fn standard_and_minmax_scaling_use_training_statistics() {
        let t = table("a,label\n0,0\n2,1\n4,0\n10,1\n");
        let (pre, _) =
            Preprocessor::fit(&t, &[0, 1, 2], &cfg(ScalerKind::Minmax), Default::default())
                .unwrap();
        assert_eq!(pre.transform(&t, &[3]).unwrap().0, [2.5]);
        let (pre, _) = Preprocessor::fit(
            &t,
            &[0, 1, 2],
            &cfg(ScalerKind::Standard),
            Default::default(),
        )
        .unwrap();
        let x = pre.transform(&t, &[0, 1, 2]).unwrap().0;
        assert!((x.iter().sum::<f32>()).abs() < 1e-6);
        assert!((x.iter().map(|v| v * v).sum::<f32>() / 3.0 - 1.0).abs() < 1e-5);
    }

    #[test]
    fn kept_columns_encode_and_scale_as_before() {
        let t = table("a,proto,b,label\n1,tcp,10,0\n3,udp,20,1\n5,tcp,60,0\n");
        let (mut pre, _) = Preprocessor::fit(
            &t,
            &[0, 1, 2],
            &cfg(ScalerKind::Standard),
            Default::default(),
        )
        .unwrap();
        let all = pre.transform(&t, &[0, 1, 2]).unwrap().0;
        // Keep `proto` (two features) and `b`, drop `a`.
        pre.keep_columns(&[1, 2]);
        assert_eq!(pre.feature_names, ["proto=tcp", "proto=udp", "b"]);
        let kept = pre.transform(&t, &[0, 1, 2]).unwrap().0;
        let want: Vec<f32> = all
            .chunks_exact(4)
            .flat_map(|row| row[1..].to_vec())
            .collect();
        assert_eq!(kept, want);
    }

    fn cfg(scaler: ScalerKind) -> DataConfig {
        DataConfig {
            scaler,
            ..Default::default()
        }
    }

    #[test]
    fn quantile_scaling_matches_scikit_learn() {
        // QuantileTransformer(n_quantiles=5).fit([[0],[0],[0],[1],[10]]) has quantiles
        // [0, 0, 0, 1, 10]; transform gives 0 at the minimum, 0.75 for 1, 0.75 + 0.25/9 for 2
        // (between 1 and 10) and 1 above the maximum.
        let t = table("a,label\n0,0\n0,1\n0,0\n1,1\n10,0\n2,1\n50,0\n");
        let c = DataConfig {
            scaler: ScalerKind::Quantile,
            n_quantiles: 5,
            ..Default::default()
        };
        let (pre, _) = Preprocessor::fit(&t, &[0, 1, 2, 3, 4], &c, Default::default()).unwrap();
        let x = pre.transform(&t, &[0, 3, 5, 6]).unwrap().0;
        let want = [0.0, 0.75, 0.75 + 0.25 / 9.0, 1.0];
        assert!(
            x.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{x:?}"
        );
        let normal = DataConfig {
            quantile_output: QuantileOutput::Normal,
            ..c
        };
        let (pre, _) =
            Preprocessor::fit(&t, &[0, 1, 2, 3, 4], &normal, Default::default()).unwrap();
        let x = pre.transform(&t, &[0, 3]).unwrap().0;
        // The minimum is clipped to norm.ppf(1e-7) = -5.199337582605575; norm.ppf(0.75) = 0.6744897501960817.
        assert!(
            (x[0] + 5.199_337_6).abs() < 1e-5 && (x[1] - 0.674_489_75).abs() < 1e-6,
            "{x:?}"
        );
    }

    #[test]
    fn log1p_goes_to_detected_heavy_tailed_columns_or_the_named_ones() {
        let mut body = String::from("bytes,ratio,label\n");
        for i in 0..50 {
            let bytes = if i % 10 == 0 { 100_000 } else { i };
            body += &format!("{bytes},{},{}\n", (i as f32 - 25.0) / 10.0, i % 2);
        }
        let t = table(&body);
        let rows: Vec<usize> = (0..50).collect();
        let c = DataConfig {
            transform: Transform::Log1p,
            scaler: ScalerKind::None,
            ..Default::default()
        };
        let (pre, notices) = Preprocessor::fit(&t, &rows, &c, Default::default()).unwrap();
        assert!(
            notices.iter().any(|n| n == "log1p on 1 columns: bytes"),
            "{notices:?}"
        );
        assert_eq!(
            pre.transform(&t, &[0]).unwrap().0,
            [100_000f32.ln_1p(), -2.5]
        );
    }

    #[test]
    fn missing_policies() {
        let mut t = table("a,b,label\n1,Infinity,0\n2,3,1\nNaN,4,0\n");
        assert!(apply_missing_policy(&mut t.clone(), MissingPolicy::Error).is_err());
        assert_eq!(
            apply_missing_policy(&mut t, MissingPolicy::DropRows).unwrap(),
            2
        );
        assert_eq!(t.n_rows(), 1);
        assert_eq!(t.labels.value(0), "1");
    }
}
