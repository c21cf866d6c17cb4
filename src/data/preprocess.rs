//! Turns table columns into a scaled feature matrix. Everything here is fitted on training rows
//! only and stored in the checkpoint, so `test` encodes new files exactly as training did.

use std::collections::HashMap;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::bail_input;
use crate::config::{MissingPolicy, ScalerKind};
use crate::data::read::{ColumnData, Kind, Table};

/// How one input column becomes features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Encoding {
    /// One feature; missing cells take the training median.
    Numeric {
        fill: f32,
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

    fn width(&self) -> usize {
        match &self.encoding {
            Encoding::OneHot { categories } => categories.len(),
            _ => 1,
        }
    }
}

/// `x' = (x - offset) * scale`, per feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub kind: ScalerKind,
    pub offset: Vec<f32>,
    pub scale: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    pub columns: Vec<InputColumn>,
    pub feature_names: Vec<String>,
    pub scaler: Scaler,
    pub missing: MissingPolicy,
}

/// What encoding a file met that training had not seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncodeReport {
    /// Per categorical column: how many cells held a category unseen in training.
    pub unseen_categories: Vec<(String, usize)>,
}

impl Preprocessor {
    /// Fits imputation, categories and the scaler on `train` rows. Columns that are constant
    /// on those rows carry no information and are left out (the notices say which).
    pub fn fit(
        table: &Table,
        train: &[usize],
        missing: MissingPolicy,
        scaler: ScalerKind,
    ) -> Result<(Preprocessor, Vec<String>)> {
        let mut columns = Vec::new();
        let mut notices = Vec::new();
        for col in &table.columns {
            let encoding = match &col.data {
                ColumnData::Numeric(v) | ColumnData::Boolean(v) => {
                    let mut seen: Vec<f32> = train
                        .iter()
                        .map(|&r| v[r])
                        .filter(|x| x.is_finite())
                        .collect();
                    let Some(fill) = median(&mut seen) else {
                        notices.push(format!(
                            "column '{}' has no values in training rows; dropped",
                            col.name
                        ));
                        continue;
                    };
                    if seen.first() == seen.last() {
                        notices.push(format!(
                            "column '{}' is constant in training rows; dropped",
                            col.name
                        ));
                        continue;
                    }
                    if matches!(col.data, ColumnData::Numeric(_)) {
                        Encoding::Numeric { fill }
                    } else {
                        Encoding::Boolean { fill }
                    }
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
                        notices.push(format!(
                            "column '{}' is constant in training rows; dropped",
                            col.name
                        ));
                        continue;
                    }
                    Encoding::OneHot { categories }
                }
            };
            columns.push(InputColumn {
                name: col.name.clone(),
                encoding,
            });
        }
        if columns.is_empty() {
            bail_input!(
                "no usable feature columns: every column is constant or empty in the training rows"
            );
        }
        let feature_names = columns
            .iter()
            .flat_map(|c| match &c.encoding {
                Encoding::OneHot { categories } => categories
                    .iter()
                    .map(|v| format!("{}={v}", c.name))
                    .collect(),
                _ => vec![c.name.clone()],
            })
            .collect();
        let mut pre = Preprocessor {
            columns,
            feature_names,
            scaler: Scaler {
                kind: ScalerKind::None,
                offset: vec![],
                scale: vec![],
            },
            missing,
        };
        let (raw, _) = pre.encode(table, train)?;
        pre.scaler = Scaler::fit(scaler, &raw, pre.n_features());
        Ok((pre, notices))
    }

    pub fn n_features(&self) -> usize {
        self.columns.iter().map(InputColumn::width).sum()
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
        self.scaler.apply(&mut x);
        Ok((x, report))
    }

    fn encode(&self, table: &Table, rows: &[usize]) -> Result<(Vec<f32>, EncodeReport)> {
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
                (Encoding::Numeric { fill }, ColumnData::Numeric(v))
                | (Encoding::Boolean { fill }, ColumnData::Boolean(v)) => {
                    for (i, &r) in rows.iter().enumerate() {
                        let val = v[r];
                        x[i * width + at] = if val.is_finite() { val } else { *fill };
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

fn kind_of(data: &ColumnData) -> Kind {
    match data {
        ColumnData::Numeric(_) => Kind::Numeric,
        ColumnData::Boolean(_) => Kind::Boolean,
        ColumnData::Categorical(_) => Kind::Categorical,
    }
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
    fn fit(kind: ScalerKind, x: &[f32], width: usize) -> Scaler {
        let n = (x.len() / width.max(1)).max(1) as f64;
        let mut offset = vec![0.0f32; width];
        let mut scale = vec![1.0f32; width];
        for j in 0..width {
            let col = x.iter().skip(j).step_by(width).map(|&v| v as f64);
            match kind {
                ScalerKind::None => {}
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
        }
    }

    fn apply(&self, x: &mut [f32]) {
        if self.kind == ScalerKind::None {
            return;
        }
        let width = self.offset.len();
        for row in x.chunks_exact_mut(width) {
            for ((v, o), s) in row.iter_mut().zip(&self.offset).zip(&self.scale) {
                *v = (*v - o) * s;
            }
        }
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
        let (pre, notices) = Preprocessor::fit(
            &t,
            &[0, 1, 2],
            MissingPolicy::ImputeMedian,
            ScalerKind::None,
        )
        .unwrap();
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
            Preprocessor::fit(&t, &[0, 1, 2], MissingPolicy::Error, ScalerKind::Minmax).unwrap();
        assert_eq!(pre.transform(&t, &[3]).unwrap().0, [2.5]);
        let (pre, _) =
            Preprocessor::fit(&t, &[0, 1, 2], MissingPolicy::Error, ScalerKind::Standard).unwrap();
        let x = pre.transform(&t, &[0, 1, 2]).unwrap().0;
        assert!((x.iter().sum::<f32>()).abs() < 1e-6);
        assert!((x.iter().map(|v| v * v).sum::<f32>() / 3.0 - 1.0).abs() < 1e-5);
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
