//! Data: reading files, labels, splits, preprocessing, and the synthetic sample generator.

pub mod augment;
pub mod feedback;
pub mod folds;
pub mod generate;
pub mod labels;
pub mod npy;
pub mod preprocess;
pub mod read;
pub mod records;
pub mod select;
pub mod sequence;
pub mod split;
pub mod zeek;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::bail_input;
use crate::config::{Config, DataConfig, DataFormat, DuplicateColumns, FitOn, Task};
use augment::Outputs;
use preprocess::{Preprocessor, apply_missing_policy};
use read::{Kind, Table, TableSpec, read_table};
use split::{Split, stratified_split};

/// Features and 0/1 (normal/anomaly) targets, row-major; for multiclass also each row's class.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub n_features: usize,
    /// Multiclass: the class index of each row ([`labels::UNSEEN`] for a class the model was
    /// not trained on); empty for binary.
    pub class: Vec<u32>,
    /// Multiclass: the rows of each class name the model was not trained on.
    pub unseen: BTreeMap<String, Vec<usize>>,
    /// Sequence families: the rows are windows over these flows (`x` is empty).
    pub windows: Option<sequence::Windows>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    pub fn positives(&self) -> usize {
        self.y.iter().filter(|&&v| v == 1.0).count()
    }

    /// Appends the features of `rows`: copied, or each window built from its flows.
    pub fn gather(&self, rows: &[usize], out: &mut Vec<f32>) {
        let d = self.n_features;
        out.reserve(rows.len() * d);
        for &r in rows {
            match &self.windows {
                Some(w) => w.push(r, out),
                None => out.extend_from_slice(&self.x[r * d..(r + 1) * d]),
            }
        }
    }

    /// The rows `rows`, in that order.
    pub fn subset(&self, rows: &[usize]) -> Dataset {
        let d = self.n_features;
        let windows = self.windows.as_ref().map(|w| sequence::Windows {
            ends: rows.iter().map(|&r| w.ends[r]).collect(),
            ..w.clone()
        });
        Dataset {
            x: match windows {
                Some(_) => Vec::new(),
                None => rows
                    .iter()
                    .flat_map(|&r| &self.x[r * d..(r + 1) * d])
                    .copied()
                    .collect(),
            },
            y: rows.iter().map(|&r| self.y[r]).collect(),
            n_features: d,
            class: rows
                .iter()
                .filter_map(|&r| self.class.get(r).copied())
                .collect(),
            unseen: BTreeMap::new(),
            windows,
        }
    }
}

/// A labelled table, after the missing-value policy.
#[derive(Clone)]
pub struct Labeled {
    pub table: Table,
    /// Whether the file had the label column (else every row counts as normal).
    pub labelled: bool,
    pub y: Vec<f32>,
    /// Multiclass: class names (output order) and each row's index into them; empty for binary.
    pub classes: Vec<String>,
    /// Multiclass: whether each class counts as anomalous.
    pub anomalous: Vec<bool>,
    pub class: Vec<u32>,
    /// The class name of each distinct raw label (`data.label_map` applied).
    pub value_class: Vec<String>,
    pub notices: Vec<String>,
}

impl Labeled {
    /// What splits and folds stratify on: the class for multiclass, else normal/anomaly.
    pub fn strata(&self) -> Vec<f32> {
        if self.classes.is_empty() {
            self.y.clone()
        } else {
            self.class.iter().map(|&c| c as f32).collect()
        }
    }
}

/// What to read: with `pre`, its columns and kinds; `keys` (a sequence's order and group
/// columns) are also read, as text.
fn spec(
    cfg: &DataConfig,
    pre: Option<&Preprocessor>,
    label_optional: bool,
    keys: &[String],
) -> TableSpec {
    let (mut forced_kinds, only_columns): (HashMap<String, Kind>, _) = match pre {
        Some(p) => (
            p.forced_kinds(),
            Some(
                p.columns
                    .iter()
                    .map(|c| c.name.clone())
                    .chain(keys.iter().cloned())
                    .collect(),
            ),
        ),
        None => (
            cfg.categorical_columns
                .iter()
                .map(|c| (c.trim().to_string(), Kind::Categorical))
                .collect(),
            None,
        ),
    };
    forced_kinds.extend(keys.iter().map(|k| (k.clone(), Kind::Categorical)));
    TableSpec {
        header: cfg.header,
        columns: cfg.columns.clone(),
        label_column: cfg.label_column.clone(),
        drop_columns: cfg.drop_columns.clone(),
        drop_if_present: cfg.drop_if_present.clone(),
        forced_kinds,
        only_columns,
        keep_first_duplicate: cfg.duplicate_columns == DuplicateColumns::KeepFirst,
        label_optional,
        zeek: cfg.format == DataFormat::Zeek,
    }
}

/// Keys that name feature columns must name ones the file has: a typo would otherwise leave a
/// column silently unencoded or untransformed. (`drop_columns` is checked by the reader.)
fn check_named_columns(table: &Table, cfg: &DataConfig) -> Result<()> {
    for (key, names) in [
        ("data.categorical_columns", &cfg.categorical_columns),
        ("data.transform_columns", &cfg.transform_columns),
    ] {
        for name in names {
            if table.column(name.trim()).is_none() {
                bail_input!(
                    "{key}: no feature column '{}' (the label and dropped columns do not count)",
                    name.trim()
                );
            }
        }
    }
    Ok(())
}

/// Reads and labels `path`. With `pre`, reads only the columns it was fitted on, with its kinds
/// and classes; without, a multiclass `task` takes its classes from this file.
pub fn read_labeled(
    path: &Path,
    cfg: &DataConfig,
    task: Task,
    pre: Option<&Preprocessor>,
) -> Result<Labeled> {
    read(path, cfg, task, pre, false)
}

/// [`read_labeled`], also reading a file without the label column when `label_optional` (its
/// rows then all count as normal, and `labelled` says so).
fn read(
    path: &Path,
    cfg: &DataConfig,
    task: Task,
    pre: Option<&Preprocessor>,
    label_optional: bool,
) -> Result<Labeled> {
    read_keyed(path, cfg, (task, pre), label_optional, &[])
}

/// [`read`], also reading the `keys` columns (as text; `sequence::Keys::take` removes them).
fn read_keyed(
    path: &Path,
    cfg: &DataConfig,
    (task, pre): (Task, Option<&Preprocessor>),
    label_optional: bool,
    keys: &[String],
) -> Result<Labeled> {
    let load = || -> Result<Labeled> {
        let table = read_table(path, &spec(cfg, pre, label_optional, keys))?;
        if pre.is_none() {
            check_named_columns(&table, cfg)?;
        }
        label_table(table, cfg, (task, pre))
    };
    load().with_context(|| format!("reading {}", path.display()))
}

/// A read table after the missing-value policy, with its labels (0/1, and classes for
/// multiclass; `pre`'s classes when given).
fn label_table(
    mut table: Table,
    cfg: &DataConfig,
    (task, pre): (Task, Option<&Preprocessor>),
) -> Result<Labeled> {
    let mut notices = Vec::new();
    for (name, at) in &table.skipped_duplicates {
        notices.push(format!(
            "column '{name}' at position {at} repeats an earlier name; skipped (data.duplicate_columns: keep_first)"
        ));
    }
    for c in table.columns.iter().filter(|c| c.missing.total() > 0) {
        notices.push(format!(
            "column '{}': {} empty, {} NaN, {} infinite cells",
            c.name, c.missing.empty, c.missing.nan, c.missing.infinite
        ));
    }
    let policy = pre.map_or(cfg.missing, |p| p.missing);
    let dropped = apply_missing_policy(&mut table, policy)?;
    if dropped > 0 {
        notices.push(format!(
            "dropped {dropped} rows with missing or non-finite cells"
        ));
    }
    if table.n_rows() == 0 {
        bail_input!("no rows left after dropping rows with missing cells");
    }
    let y = if table.labelled {
        labels::binarize(&table.labels, cfg)?
    } else {
        vec![0.0; table.n_rows()]
    };
    let classes = match pre {
        Some(p) => p.classes.clone(),
        None if task == Task::Multiclass => labels::classes_of(&table.labels, cfg),
        None => Vec::new(),
    };
    let class = if classes.is_empty() {
        Vec::new()
    } else {
        labels::class_indices(&table.labels, cfg, &classes)
    };
    let anomalous = classes
        .iter()
        .map(|c| Ok(labels::classify(c, cfg)? == 1.0))
        .collect::<Result<_>>()?;
    let value_class = table
        .labels
        .values
        .iter()
        .map(|v| labels::class_name(v, cfg).to_string())
        .collect();
    Ok(Labeled {
        labelled: table.labelled,
        table,
        y,
        classes,
        anomalous,
        class,
        value_class,
        notices,
    })
}

/// The split of a training file that `train`, `test` and `assess` all agree on.
pub fn split_rows(data: &Labeled, cfg: &DataConfig) -> Split {
    let test_frac = if cfg.test_path.is_some() {
        0.0
    } else {
        cfg.test_size
    };
    stratified_split(&data.strata(), test_frac, cfg.val_size, cfg.random_state)
}

/// Encodes `rows` of a labelled table into a dataset, with a notice for unseen categories.
pub fn encode(
    pre: &Preprocessor,
    data: &Labeled,
    rows: &[usize],
    notices: &mut Vec<String>,
) -> Result<Dataset> {
    let (x, report) = pre
        .transform(&data.table, rows)
        .with_context(|| format!("encoding {}", data.table.path.display()))?;
    for (col, n) in report.unseen_categories {
        notices.push(format!(
            "column '{col}': {n} cells hold categories unseen in training (encoded as all zeros)"
        ));
    }
    let class: Vec<u32> = if pre.classes.is_empty() {
        Vec::new()
    } else {
        rows.iter().map(|&r| data.class[r]).collect()
    };
    let mut unseen: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, (&r, _)) in rows
        .iter()
        .zip(&class)
        .enumerate()
        .filter(|(_, (_, c))| **c == labels::UNSEEN)
    {
        let name = &data.value_class[data.table.labels.codes[r] as usize];
        unseen.entry(name.clone()).or_default().push(i);
    }
    if !unseen.is_empty() {
        let list: Vec<String> = unseen
            .iter()
            .map(|(c, r)| format!("{c} ({})", r.len()))
            .collect();
        notices.push(format!(
            "{} rows belong to classes the model was not trained on: {}; they are left out of \
             the per-class metrics and kept in the normal-vs-anomaly view",
            unseen.values().map(Vec::len).sum::<usize>(),
            list.join(", ")
        ));
    }
    Ok(Dataset {
        x,
        y: rows.iter().map(|&r| data.y[r]).collect(),
        n_features: pre.n_features(),
        class,
        unseen,
        windows: None,
    })
}

/// What training needs: the fitted preprocessor and the encoded splits.
pub struct Prepared {
    pub pre: Preprocessor,
    pub train: Dataset,
    pub val: Dataset,
    pub test: Dataset,
    pub notices: Vec<String>,
    /// The columns `data.select_features` ranked and kept, when it is set.
    pub selection: Option<select::Selection>,
    /// Feedback retraining: the judged rows the training rows now include.
    pub feedback: Option<feedback::FeedbackRecord>,
}

/// `rows` with the largest stratum cut at random to at most `ratio` times the other rows
/// together (the CIC-IDS2017 trainer's undersampling of BENIGN). Keeps file order.
pub fn undersample(strata: &[f32], rows: &[usize], ratio: f64, seed: u64) -> Vec<usize> {
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for &r in rows {
        *counts.entry(strata[r].to_bits()).or_insert(0) += 1;
    }
    let (&largest, &n_largest) = counts
        .iter()
        .max_by_key(|(k, n)| (**n, std::cmp::Reverse(**k)))
        .expect("training rows are not empty");
    let cap = ((rows.len() - n_largest) as f64 * ratio).round() as usize;
    if n_largest <= cap {
        return rows.to_vec();
    }
    let mut majority: Vec<usize> = rows
        .iter()
        .copied()
        .filter(|&r| strata[r].to_bits() == largest)
        .collect();
    majority.shuffle(&mut StdRng::seed_from_u64(seed));
    majority.truncate(cap.max(1));
    let mut keep: Vec<usize> = rows
        .iter()
        .copied()
        .filter(|&r| strata[r].to_bits() != largest)
        .chain(majority)
        .collect();
    keep.sort_unstable();
    keep
}

/// Writes `bytes` to `path` under a temporary name, then renames it over `path`, so a reader
/// never sees half a file (the folder is created when missing).
pub fn write_atomic(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(name);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Reads a whole labelled file with a fitted preprocessor.
pub fn encode_file(
    path: &Path,
    cfg: &DataConfig,
    pre: &Preprocessor,
    notices: &mut Vec<String>,
) -> Result<Dataset> {
    let t = read_labeled(path, cfg, Task::Binary, Some(pre))?;
    notices.extend(t.notices.iter().map(|n| format!("{}: {n}", path.display())));
    let rows: Vec<usize> = (0..t.y.len()).collect();
    encode(pre, &t, &rows, notices)
}

/// Reads a file that `anomaly augment` should have written, saying so when it is missing.
pub fn augmented_file(path: &Path) -> Result<&Path> {
    if !path.exists() {
        bail_input!(
            "data.use_augmented_data is set but {} does not exist: run `anomaly augment` first",
            path.display()
        );
    }
    Ok(path)
}

/// The config's training file, as `train` reads it: unsupervised families learning from every
/// row (`training.fit_on: all`) accept a file without the label column.
pub fn read_training(config: &Config) -> Result<Labeled> {
    let cfg = &config.data;
    let unsupervised = !config.model.kind.is_classifier();
    let data = read(&cfg.path, cfg, config.task, None, unsupervised)?;
    if !data.labelled && config.training.fit_on == FitOn::Normal {
        bail_input!(
            "{}: no label column '{}' (data.label_column): training.fit_on: normal picks the \
             normal rows by their labels; for unlabelled data set training.fit_on: all",
            cfg.path.display(),
            cfg.label_column.trim()
        );
    }
    Ok(data)
}

/// The train, validation and test rows of a run, encoded with its fitted preprocessor, as
/// `train` split them (what `assess` evaluates; the test rows are exactly those of `test`).
pub fn evaluation_sets(
    config: &Config,
    pre: &Preprocessor,
) -> Result<Vec<(&'static str, Dataset)>> {
    let cfg = &config.data;
    let mut notices = Vec::new();
    if config.model.kind.is_sequence() {
        return sequence::evaluation_sets(config, pre);
    }
    if cfg.use_augmented_data {
        let out = Outputs::in_dir(&config.augmentation.output_dir);
        return Ok(vec![
            (
                "train",
                encode_file(augmented_file(&out.train)?, cfg, pre, &mut notices)?,
            ),
            (
                "validation",
                encode_file(augmented_file(&out.val)?, cfg, pre, &mut notices)?,
            ),
            (
                "test",
                encode_file(augmented_file(&out.test)?, cfg, pre, &mut notices)?,
            ),
        ]);
    }
    let t = read_labeled(&cfg.path, cfg, config.task, None)?;
    let split = split_rows(&t, cfg);
    let test = match &cfg.test_path {
        Some(p) => encode_file(p, cfg, pre, &mut notices)?,
        None => encode(pre, &t, &split.test, &mut notices)?,
    };
    Ok(vec![
        ("train", encode(pre, &t, &split.train, &mut notices)?),
        ("validation", encode(pre, &t, &split.val, &mut notices)?),
        ("test", test),
    ])
}

/// Where `test` takes its rows from when no file is given.
pub fn evaluation_source(config: &Config) -> Option<PathBuf> {
    if config.data.use_augmented_data {
        Some(Outputs::in_dir(&config.augmentation.output_dir).test)
    } else {
        config.data.test_path.clone()
    }
}

/// Rows to explain, as `explain` reads them: a given file, labelled or not, or else the run's
/// held-out test rows; with the features before scaling (what reasons quote), whether the
/// rows carry labels, and each row's place among the file's rows (0-based).
pub fn explanation_rows(
    config: &Config,
    pre: &Preprocessor,
    file: Option<&Path>,
) -> Result<(Dataset, Vec<f32>, bool, Vec<usize>)> {
    let cfg = &config.data;
    let source = file
        .map(Path::to_path_buf)
        .or_else(|| evaluation_source(config));
    let (t, rows) = match source {
        Some(p) => {
            let t = read(&p, cfg, Task::Binary, Some(pre), true)?;
            let rows = (0..t.y.len()).collect();
            (t, rows)
        }
        None => {
            let t = read_labeled(&cfg.path, cfg, config.task, None)?;
            let split = split_rows(&t, cfg);
            (t, split.test)
        }
    };
    let ds = encode(pre, &t, &rows, &mut Vec::new())?;
    let (raw, _) = pre
        .encode(&t.table, &rows)
        .with_context(|| format!("encoding {}", t.table.path.display()))?;
    Ok((ds, raw, t.labelled, rows))
}

/// The data `test` evaluates: a given file, or else the training run's held-out test rows.
pub fn prepare_evaluation(
    config: &Config,
    pre: &Preprocessor,
    file: Option<&Path>,
) -> Result<(Dataset, Vec<String>)> {
    let cfg = &config.data;
    let mut notices = Vec::new();
    if config.model.kind.is_sequence() {
        return sequence::evaluation(config, pre, file);
    }
    let ds = match file
        .map(Path::to_path_buf)
        .or_else(|| evaluation_source(config))
    {
        Some(p) => encode_file(&p, cfg, pre, &mut notices)?,
        None => {
            // The same rows as at training time: same file, policy and seed give the same split.
            let t = read_labeled(&cfg.path, cfg, config.task, None)?;
            notices.extend(t.notices.iter().cloned());
            let split = split_rows(&t, cfg);
            encode(pre, &t, &split.test, &mut notices)?
        }
    };
    Ok((ds, notices))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_must_name_feature_columns_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.csv");
        std::fs::write(&path, "bytes,proto,label\n10,tcp,0\n20,udp,1\n").unwrap();
        let read = |cfg: DataConfig| read_labeled(&path, &cfg, Task::Binary, None);
        assert!(
            read(DataConfig {
                categorical_columns: vec!["proto".into()],
                transform_columns: vec![" bytes".into()],
                ..Default::default()
            })
            .is_ok()
        );
        for (cfg, key, name) in [
            (
                DataConfig {
                    categorical_columns: vec!["protocol".into()],
                    ..Default::default()
                },
                "data.categorical_columns",
                "protocol",
            ),
            (
                DataConfig {
                    transform_columns: vec!["label".into()],
                    ..Default::default()
                },
                "data.transform_columns",
                "label",
            ),
        ] {
            let Err(err) = read(cfg) else {
                panic!("{key} naming '{name}' was accepted")
            };
            let err = crate::error::one_line(&err);
            assert!(err.contains("flows.csv"), "{err}");
            assert!(
                err.contains(&format!("{key}: no feature column '{name}'")),
                "{err}"
            );
        }
    }

    #[test]
    fn undersampling_cuts_only_the_largest_class_and_is_seeded() {
        let strata: Vec<f32> = (0..100)
            .map(|i| [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 2.0][i % 10])
            .collect();
        let rows: Vec<usize> = (0..100).collect();
        let kept = undersample(&strata, &rows, 1.0, 7);
        let count = |c: f32| kept.iter().filter(|&&r| strata[r] == c).count();
        assert_eq!((count(0.0), count(1.0), count(2.0)), (30, 20, 10));
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(kept, undersample(&strata, &rows, 1.0, 7));
        assert_ne!(kept, undersample(&strata, &rows, 1.0, 8));
        assert_eq!(undersample(&strata, &rows, 3.0, 7), rows);
    }
}
