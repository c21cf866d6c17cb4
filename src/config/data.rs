//! `data`: the files, their columns and labels, the splits, missing values, scaling and
//! feature selection.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::bail_input;

use super::Task;

/// `data.select_features`: rank the input columns by a random forest's impurity importance
/// (a one-hot column's categories summed) and keep the top `keep`, or those with at least
/// `min_importance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectFeatures {
    pub by: SelectBy,
    #[serde(default)]
    pub keep: Option<usize>,
    #[serde(default)]
    pub min_importance: Option<f64>,
    /// Trees of the ranking forest.
    #[serde(default = "ranking_trees")]
    pub n_trees: usize,
}

impl SelectFeatures {
    fn check(&self) -> Result<()> {
        let ok = match (self.keep, self.min_importance) {
            (Some(k), None) => k >= 1,
            (None, Some(m)) => m > 0.0 && m < 1.0,
            _ => false,
        };
        if !ok || self.n_trees == 0 {
            bail_input!(
                "data.select_features: expected `keep: K` (K >= 1) or `min_importance: x` (x in (0, 1)), one of them, and n_trees >= 1"
            );
        }
        Ok(())
    }
}

fn ranking_trees() -> usize {
    100
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectBy {
    ForestImportance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingPolicy {
    DropRows,
    ImputeMedian,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalerKind {
    Standard,
    Minmax,
    /// scikit-learn's QuantileTransformer: each feature through its training CDF.
    Quantile,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantileOutput {
    Uniform,
    Normal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    None,
    /// `ln(1 + x)` on heavy-tailed non-negative columns (`transform_columns`, or detected).
    Log1p,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateColumns {
    Error,
    /// Keep the first column of a repeated name and skip the others (CIC-IDS2017).
    KeepFirst,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// The training CSV (`.csv`, `.csv.gz`, `.txt.gz`, …), or with `format: npy` the windows.
    pub path: PathBuf,
    /// `csv` (a Zeek log is recognised and read as CSV too), `zeek` (only Zeek logs, TSV or
    /// JSON, are accepted), or `npy`: NumPy arrays of windows, `path` of shape (N, C, L) and
    /// `labels_path` of shape (N,) (sequence families only).
    pub format: DataFormat,
    /// With `format: npy`: the labels, one per window.
    pub labels_path: Option<PathBuf>,
    /// A separate test file (NSL-KDD ships KDDTest+); when set, `test_size` is not used.
    pub test_path: Option<PathBuf>,
    pub header: bool,
    /// Column names for headerless files.
    pub columns: Vec<String>,
    pub label_column: String,
    pub drop_columns: Vec<String>,
    /// Like `drop_columns`, but a column that is not in the file is no error (identifiers that
    /// some exports of a dataset carry and others do not).
    pub drop_if_present: Vec<String>,
    pub duplicate_columns: DuplicateColumns,
    /// Columns to one-hot encode even though their values look numeric.
    pub categorical_columns: Vec<String>,
    /// Raw label → class name (e.g. NSL-KDD attack → category), applied before anything else.
    #[serde(deserialize_with = "label_map")]
    pub label_map: BTreeMap<String, String>,
    #[serde(deserialize_with = "label_list")]
    pub negative_labels: Vec<String>,
    #[serde(deserialize_with = "label_list")]
    pub positive_labels: Vec<String>,
    pub missing: MissingPolicy,
    pub transform: Transform,
    /// Columns for `transform`; empty: every numeric column that is non-negative and heavy-tailed
    /// (skewness above 2) on the training rows.
    pub transform_columns: Vec<String>,
    pub scaler: ScalerKind,
    pub quantile_output: QuantileOutput,
    pub n_quantiles: usize,
    /// Cut the largest class to at most this many times the other classes' rows together,
    /// in the training split only (null: keep every row).
    pub undersample: Option<f64>,
    /// Keep only the input columns a forest finds important, fitted on each run's (or cv
    /// fold's) training rows (null: keep every column).
    pub select_features: Option<SelectFeatures>,
    pub test_size: f64,
    pub val_size: f64,
    pub random_state: u64,
    pub use_augmented_data: bool,
    /// The rows scaling, imputation medians and category lists are fitted on: an
    /// unsupervised detector's learning rows (`training.fit_on`), or every training row.
    pub fit_preprocessing_on: PreprocessingRows,
}

/// `data.fit_preprocessing_on`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreprocessingRows {
    /// The rows the detector learns from: with `training.fit_on: normal`, the normal rows
    /// (attacks must not set what "normal scale" is); every training row for a classifier.
    LearningRows,
    /// Every training row, attacks included (the default until feedback retraining can
    /// refit the scale it warm-starts from; see the README).
    #[default]
    AllTrainingRows,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/sample.csv"),
            format: DataFormat::Csv,
            labels_path: None,
            test_path: None,
            header: true,
            columns: Vec::new(),
            label_column: "label".into(),
            drop_columns: Vec::new(),
            drop_if_present: Vec::new(),
            duplicate_columns: DuplicateColumns::Error,
            categorical_columns: Vec::new(),
            label_map: BTreeMap::new(),
            negative_labels: Vec::new(),
            positive_labels: Vec::new(),
            missing: MissingPolicy::ImputeMedian,
            transform: Transform::None,
            transform_columns: Vec::new(),
            scaler: ScalerKind::Standard,
            quantile_output: QuantileOutput::Uniform,
            n_quantiles: 1000,
            undersample: None,
            select_features: None,
            test_size: 0.2,
            val_size: 0.1,
            random_state: 42,
            use_augmented_data: false,
            fit_preprocessing_on: PreprocessingRows::AllTrainingRows,
        }
    }
}

impl DataConfig {
    /// The split sizes, the label keys and the preprocessing settings; `task` decides whether
    /// the normal classes must be named.
    pub fn check(&self, task: Task) -> Result<()> {
        let d = self;
        if d.test_path.is_none() && !(d.test_size > 0.0 && d.test_size < 1.0) {
            bail_input!(
                "data.test_size: expected a value in (0, 1), got {}",
                d.test_size
            );
        }
        if !(d.val_size > 0.0 && d.val_size < 1.0) {
            bail_input!(
                "data.val_size: expected a value in (0, 1), got {}",
                d.val_size
            );
        }
        if d.test_path.is_none() && d.test_size + d.val_size >= 1.0 {
            bail_input!(
                "data.test_size + data.val_size: expected a sum below 1, got {}",
                d.test_size + d.val_size
            );
        }
        if !d.header && d.columns.is_empty() {
            bail_input!(
                "data.columns: a headerless file (data.header: false) needs the column names"
            );
        }
        d.check_labels(task)?;
        if d.n_quantiles < 2 {
            bail_input!(
                "data.n_quantiles: expected at least 2, got {}",
                d.n_quantiles
            );
        }
        if let Some(r) = d.undersample
            && !(r > 0.0 && r.is_finite())
        {
            bail_input!("data.undersample: expected a positive ratio (e.g. 1.0), got {r}");
        }
        match &d.select_features {
            Some(s) => s.check(),
            None => Ok(()),
        }
    }

    fn check_labels(&self, task: Task) -> Result<()> {
        if self.label_column.trim().is_empty() {
            bail_input!("data.label_column: expected a column name");
        }
        if !self.negative_labels.is_empty() && !self.positive_labels.is_empty() {
            bail_input!("data.negative_labels and data.positive_labels: set one of them, not both");
        }
        if task == Task::Multiclass
            && self.negative_labels.is_empty()
            && self.positive_labels.is_empty()
        {
            bail_input!(
                "data.negative_labels: task multiclass needs the normal classes (or \
                 data.positive_labels, the anomalous ones) for its normal-vs-anomaly view"
            );
        }
        Ok(())
    }
}

/// How the data files are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    Csv,
    Zeek,
    Npy,
}

/// A label value as a config may write it: text, or a YAML number or boolean
/// (`negative_labels: [0]`, `label_map: {1: attack}`), kept as its text; `data/labels.rs`
/// matches numbers by value, so `0` also matches a `0.0` cell.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct LabelText(String);

impl<'de> Deserialize<'de> for LabelText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a label value (text, number or boolean)")]
        enum Scalar {
            Text(String),
            Int(i64),
            Float(f64),
            Bool(bool),
        }
        Ok(LabelText(match Scalar::deserialize(d)? {
            Scalar::Text(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }))
    }
}

fn label_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    let values = Vec::<LabelText>::deserialize(d)?;
    Ok(values.into_iter().map(|v| v.0).collect())
}

fn label_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, String>, D::Error> {
    let map = BTreeMap::<LabelText, LabelText>::deserialize(d)?;
    Ok(map.into_iter().map(|(k, v)| (k.0, v.0)).collect())
}
