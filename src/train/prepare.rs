//! Training's data: preprocessing fitted on the training rows only (after undersampling),
//! feature selection by a forest's importance (`data.select_features`), and the splits
//! encoded with both. Shared by `train`, each `cv` fold and the final cross-validated model,
//! so each selects on its own training rows and the checkpoint's preprocessing carries the
//! choice.

use anyhow::{Context, Result};

use crate::bail_input;
use crate::config::{Config, FitOn, PreprocessingRows, SelectFeatures};
use crate::data::augment::Outputs;
use crate::data::preprocess::Preprocessor;
use crate::data::select::{Ranked, Selection};
use crate::data::{
    Dataset, Labeled, Prepared, augmented_file, encode, encode_file, read_labeled, read_training,
    split_rows, undersample,
};
use crate::model::random_forest::RandomForestConfig;
use crate::model::random_forest::{Labelled, RandomForest};

/// The data `train` uses: the config's file split into train/validation/test, or the files
/// `anomaly augment` wrote when `data.use_augmented_data` is set.
pub fn prepare_training(config: &Config) -> Result<Prepared> {
    let cfg = &config.data;
    if config.model.kind.is_sequence() {
        return crate::data::sequence::prepare_training(config);
    }
    if cfg.use_augmented_data {
        let out = Outputs::in_dir(&config.augmentation.output_dir);
        let data = read_labeled(augmented_file(&out.train)?, cfg, config.task, None)?;
        let rows: Vec<usize> = (0..data.y.len()).collect();
        let mut p = prepare_rows(config, &data, &rows, &[])?;
        p.val = encode_file(augmented_file(&out.val)?, cfg, &p.pre, &mut p.notices)?;
        p.test = encode_file(augmented_file(&out.test)?, cfg, &p.pre, &mut p.notices)?;
        return Ok(p);
    }
    let data = read_training(config)?;
    let split = split_rows(&data, cfg);
    if split.val.is_empty() {
        bail_input!(
            "{}: too few rows for a validation split (data.val_size)",
            cfg.path.display()
        );
    }
    let mut p = prepare_rows(config, &data, &split.train, &split.val)?;
    p.test = match &cfg.test_path {
        Some(path) => encode_file(path, cfg, &p.pre, &mut p.notices)?,
        None => encode(&p.pre, &data, &split.test, &mut p.notices)?,
    };
    Ok(p)
}

/// Fits preprocessing on `train` rows of `data` and encodes `train` and `val` (the test set is
/// left empty). Shared by `train`, each `cv` fold and the final cross-validated model.
pub fn prepare_rows(
    config: &Config,
    data: &Labeled,
    train: &[usize],
    val: &[usize],
) -> Result<Prepared> {
    let cfg = &config.data;
    let path = data.table.path.display();
    let pos = train.iter().filter(|&&r| data.y[r] == 1.0).count();
    // A supervised model needs both classes; an unsupervised one may learn from normal rows only.
    if config.model.kind.is_classifier() && (pos == 0 || pos == train.len()) {
        bail_input!(
            "{path}: the training rows hold a single class ({} normal, {pos} anomalous); \
             check data.label_column and the label mapping",
            train.len() - pos
        );
    }
    let mut notices = data.notices.clone();
    let kept;
    let train = match cfg.undersample {
        Some(ratio) => {
            kept = undersample(&data.strata(), train, ratio, cfg.random_state);
            notices.push(format!(
                "undersampled the largest class: {} of {} training rows kept",
                kept.len(),
                train.len()
            ));
            &kept[..]
        }
        None => train,
    };
    let normal = normal_rows(config, data, train)?;
    let (mut pre, fit_notices) = Preprocessor::fit(
        &data.table,
        normal.as_deref().unwrap_or(train),
        cfg,
        (data.classes.clone(), data.anomalous.clone()),
    )
    .with_context(|| format!("fitting preprocessing on {path}"))?;
    notices.extend(fit_notices);
    if let Some(rows) = &normal {
        pre.fitted_on_normal_rows = true;
        notices.push(format!(
            "preprocessing fitted on the {} normal training rows the detector learns from \
             (data.fit_preprocessing_on: learning_rows)",
            rows.len()
        ));
    }
    let selection = match &cfg.select_features {
        Some(by) => {
            let all = encode(&pre, data, train, &mut Vec::new())?;
            let chosen = select(&mut pre, &all, by, cfg.random_state)?;
            notices.push(chosen.to_string());
            Some(chosen)
        }
        None => None,
    };
    let train = encode(&pre, data, train, &mut notices)?;
    let val = encode(&pre, data, val, &mut notices)?;
    let test = Dataset {
        n_features: pre.n_features(),
        ..Default::default()
    };
    Ok(Prepared {
        pre,
        train,
        val,
        test,
        notices,
        selection,
        feedback: None,
    })
}

/// The rows an unsupervised detector learns from, when they are fewer than the training rows
/// and preprocessing is fitted on them (`training.fit_on: normal` with
/// `data.fit_preprocessing_on: learning_rows`): attack rows must not set what the normal
/// scale is. `None`: every training row (classifiers, `fit_on: all`, or the setting off).
fn normal_rows(config: &Config, data: &Labeled, train: &[usize]) -> Result<Option<Vec<usize>>> {
    let learning = config.data.fit_preprocessing_on == PreprocessingRows::LearningRows
        && config.training.fit_on == FitOn::Normal
        && !config.model.kind.is_classifier();
    if !learning {
        return Ok(None);
    }
    let rows: Vec<usize> = train
        .iter()
        .copied()
        .filter(|&r| data.y[r] == 0.0)
        .collect();
    if rows.is_empty() {
        bail_input!("training.fit_on: normal, but the training rows hold no normal rows");
    }
    Ok((rows.len() < train.len()).then_some(rows))
}

/// Each input column's importance (summing to 1), in `pre.columns` order.
pub fn column_importance(pre: &Preprocessor, train: &Dataset, trees: usize, seed: u64) -> Vec<f64> {
    let multiclass = !pre.classes.is_empty();
    let class: Vec<u32> = if multiclass {
        train.class.clone()
    } else {
        train.y.iter().map(|&y| y as u32).collect()
    };
    let k = if multiclass { pre.classes.len() } else { 2 };
    let rows: Vec<usize> = (0..train.len()).collect();
    let weights = vec![1.0; k];
    let data = Labelled {
        x: &train.x,
        d: train.n_features,
        rows: &rows,
        class: &class,
        class_weights: &weights,
        multiclass,
    };
    let cfg = RandomForestConfig {
        n_trees: trees,
        ..RandomForestConfig::default()
    };
    let forest = RandomForest::fit(&data, &cfg, seed);
    let mut at = 0;
    pre.columns
        .iter()
        .map(|c| {
            let sum = forest.importance[at..at + c.width()]
                .iter()
                .map(|&v| v as f64)
                .sum();
            at += c.width();
            sum
        })
        .collect()
}

/// Keeps the columns `cfg` asks for in `pre`.
pub fn select(
    pre: &mut Preprocessor,
    train: &Dataset,
    cfg: &SelectFeatures,
    seed: u64,
) -> Result<Selection> {
    if !train.y.contains(&1.0) && pre.classes.is_empty() {
        bail_input!(
            "data.select_features: the training rows hold no anomalies, so a forest cannot rank the columns"
        );
    }
    let importance = column_importance(pre, train, cfg.n_trees, seed);
    let mut ranked: Vec<usize> = (0..importance.len()).collect();
    ranked.sort_by(|&a, &b| importance[b].total_cmp(&importance[a]).then(a.cmp(&b)));
    let keep_n = match (cfg.keep, cfg.min_importance) {
        (Some(k), _) => k,
        (None, Some(m)) => ranked.iter().filter(|&&c| importance[c] >= m).count(),
        (None, None) => ranked.len(),
    }
    .clamp(1, ranked.len());
    let mut keep: Vec<usize> = ranked[..keep_n].to_vec();
    keep.sort_unstable();
    let selection = Selection {
        kept: keep_n,
        ranked: ranked
            .iter()
            .map(|&c| Ranked {
                column: pre.columns[c].name.clone(),
                importance: importance[c],
            })
            .collect(),
    };
    pre.keep_columns(&keep);
    Ok(selection)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Task;
    use crate::data::{read_labeled, split_rows};
    use crate::model::ModelKind;

    /// Rows whose attacks sit far from the normal rows, so that their scale differs.
    fn labelled(dir: &tempfile::TempDir) -> std::path::PathBuf {
        let mut csv = String::from("a,b,label\n");
        for i in 0..400 {
            let attack = i % 3 == 0;
            let (a, b) = if attack {
                (100.0 + i as f64, 50.0)
            } else {
                ((i % 17) as f64, (i % 5) as f64)
            };
            csv += &format!("{a},{b},{}\n", attack as u8);
        }
        let path = dir.path().join("d.csv");
        std::fs::write(&path, csv).unwrap();
        path
    }

    /// `fit_on: normal`: an unsupervised detector's scaling is the normal rows' alone; the
    /// setting off, or a classifier, keeps every training row.
    #[test]
    fn preprocessing_is_fitted_on_the_rows_the_detector_learns_from() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.data.path = labelled(&dir);
        config.data.label_column = "label".into();
        config.model.kind = ModelKind::IsolationForest;
        config.data.fit_preprocessing_on = PreprocessingRows::LearningRows;
        let data = read_labeled(&config.data.path, &config.data, Task::Binary, None).unwrap();
        let split = split_rows(&data, &config.data);
        let fitted = |config: &Config| prepare_rows(config, &data, &split.train, &split.val);
        let scaler_of = |rows: &[usize]| {
            let labels = (data.classes.clone(), data.anomalous.clone());
            let (pre, _) = Preprocessor::fit(&data.table, rows, &config.data, labels).unwrap();
            pre.scaler
        };
        let normal: Vec<usize> = split
            .train
            .iter()
            .copied()
            .filter(|&r| data.y[r] == 0.0)
            .collect();
        assert!(normal.len() < split.train.len());

        let learning = fitted(&config).unwrap().pre;
        assert!(learning.fitted_on_normal_rows);
        assert_eq!(learning.scaler, scaler_of(&normal));
        assert_ne!(learning.scaler, scaler_of(&split.train));

        let mut all = config.clone();
        all.data.fit_preprocessing_on = PreprocessingRows::AllTrainingRows;
        let every = fitted(&all).unwrap().pre;
        assert!(!every.fitted_on_normal_rows);
        assert_eq!(every.scaler, scaler_of(&split.train));

        let mut classifier = config.clone();
        classifier.model.kind = ModelKind::Mlp;
        assert_eq!(
            fitted(&classifier).unwrap().pre.scaler,
            scaler_of(&split.train)
        );
    }
}
