//! k-fold cross-validation over the rows outside the held-out test split, leak-free: each
//! fold fits its own preprocessing (and augmentation) on its training part only and stops
//! early on its own validation part. Folds can run as separate processes (`--fold K`) and be
//! merged later (`--aggregate`); a rerun skips finished folds and resumes an interrupted one.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::tensor::Device;

use crate::bail_input;
use crate::checkpoint::Checkpoint;
use crate::config::{Config, ThresholdChoice};
use crate::data::augment;
use crate::data::folds::{FoldPlan, fold_dir, folds_path, kfold};
use crate::data::sequence::{self, Layout};
use crate::data::{Labeled, Prepared, read_labeled, split_rows, write_atomic};
use crate::eval::Metrics;
use crate::eval::summary::{FoldResult, Summary};
use crate::score::Scorer;
use crate::train::prepare::prepare_rows;
use crate::train::{self, Observer, Outcome, Run};

/// The data of a cv run and its folds (as table row indices).
pub struct CvData {
    pub data: Labeled,
    pub folds: Vec<Vec<usize>>,
    pub plan: FoldPlan,
    /// A sequence family: the rows in sequence order (the folds are blocks of it).
    pub layout: Option<Layout>,
}

/// Reads the data, sets the test split aside and deals the rest into folds.
pub fn plan_folds(config: &Config, run_name: &str) -> Result<CvData> {
    if config.model.kind.is_sequence() {
        return plan_blocked_folds(config, run_name);
    }
    let cv = &config.cross_validation;
    let data = read_labeled(&config.data.path, &config.data, config.task, None)?;
    let split = split_rows(&data, &config.data);
    let mut pool: Vec<usize> = split.train.iter().chain(&split.val).copied().collect();
    pool.sort_unstable();
    let positives = pool.iter().filter(|&&r| data.y[r] == 1.0).count();
    let smaller = positives.min(pool.len() - positives);
    if cv.n_splits > smaller {
        bail_input!(
            "{} folds (--folds / cross_validation.n_splits), but only {smaller} rows of the smaller \
             class outside the test split: use at most {smaller} folds",
            cv.n_splits
        );
    }
    let folds = kfold(
        &pool,
        &data.strata(),
        cv.n_splits,
        cv.shuffle,
        cv.stratify,
        cv.random_state,
    );
    let file_rows = |rows: &[usize]| rows.iter().map(|&r| data.table.source_rows[r]).collect();
    let plan = FoldPlan {
        data: config.data.path.clone(),
        n_splits: cv.n_splits,
        shuffle: cv.shuffle,
        stratify: cv.stratify,
        random_state: cv.random_state,
        run_name: run_name.to_string(),
        folds: folds.iter().map(|f| file_rows(f)).collect(),
        test_rows: file_rows(&split.test),
    };
    Ok(CvData {
        data,
        folds,
        plan,
        layout: None,
    })
}

/// A sequence family's folds: contiguous blocks of each group's flows before its test block
/// (a shuffled or stratified deal would put validation flows inside training windows, so
/// `shuffle` and `stratify` are not used, and the plan says so).
fn plan_blocked_folds(config: &Config, run_name: &str) -> Result<CvData> {
    let (cv, cfg) = (&config.cross_validation, &config.data);
    let (data, layout) = sequence::read(&cfg.path, config, None)?;
    let test = if cfg.test_path.is_some() {
        0.0
    } else {
        cfg.test_size
    };
    let (folds, test_rows) = layout.folds(test, cv.n_splits);
    let file_rows = |rows: &[usize]| rows.iter().map(|&r| data.table.source_rows[r]).collect();
    let plan = FoldPlan {
        data: cfg.path.clone(),
        n_splits: cv.n_splits,
        shuffle: false,
        stratify: false,
        random_state: cv.random_state,
        run_name: run_name.to_string(),
        folds: folds.iter().map(|f| file_rows(f)).collect(),
        test_rows: file_rows(&test_rows),
    };
    Ok(CvData {
        data,
        folds,
        plan,
        layout: Some(layout),
    })
}

/// A model's data for `train` and `val` rows: [`prepare_rows`], or for a sequence family the
/// windows of those rows' blocks.
fn prepare(
    config: &Config,
    cv: &CvData,
    data: &Labeled,
    rows: (&[usize], &[usize]),
) -> Result<Prepared> {
    match &cv.layout {
        Some(layout) => {
            let parts = layout.parts_of(rows.0, rows.1);
            sequence::prepare_parts(config, data, layout.clone(), &parts)
        }
        None => prepare_rows(config, data, rows.0, rows.1),
    }
}

/// Writes `folds.json`, or checks that the one on disk describes the same folds (so that
/// separately run folds never mix two different fold assignments).
pub fn record_plan(config: &Config, plan: &FoldPlan) -> Result<FoldPlan> {
    let path = folds_path(config);
    if path.exists() {
        let old = FoldPlan::read(&path)?;
        if old.folds != plan.folds || old.test_rows != plan.test_rows {
            bail_input!(
                "{} describes other folds (another data file, seed or fold count); move the checkpoint folder away to start a new cross-validation",
                path.display()
            );
        }
        return Ok(old);
    }
    std::fs::create_dir_all(&config.checkpoint.save_dir)?;
    write_atomic(&path, &serde_json::to_string_pretty(plan)?)?;
    Ok(plan.clone())
}

fn metrics_path(config: &Config, fold: usize) -> PathBuf {
    fold_dir(config, fold).join("metrics.json")
}

/// The result of a finished fold, if its best.mpk and metrics are on disk.
pub fn finished_fold(config: &Config, fold: usize) -> Result<Option<FoldResult>> {
    let path = metrics_path(config, fold);
    if !path.exists() || !fold_dir(config, fold).join("best.mpk").exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let r = serde_json::from_str(&text)
        .map_err(|e| crate::error::bad_input(format!("{}: {e}", path.display())))?;
    Ok(Some(r))
}

/// The config a fold trains with: its own checkpoint folder and TensorBoard run.
fn fold_config(config: &Config, fold: usize) -> Config {
    let mut c = config.clone();
    c.checkpoint.save_dir = fold_dir(config, fold);
    c
}

/// The data a model of the cv run trains on: `rows`, augmented (inside this training part
/// only) when `augmentation.enabled`.
fn training_part(
    config: &Config,
    cv: &CvData,
    rows: Vec<usize>,
    seed: u64,
) -> Result<(Labeled, Vec<usize>)> {
    let mut data = cv.data.clone();
    if !config.augmentation.enabled {
        return Ok((data, rows));
    }
    let plan = augment::plan(&data.table, &data.y, &rows, &config.augmentation, seed)?;
    let rows = plan.apply(&mut data);
    Ok((data, rows))
}

/// Trains fold `fold` (1-based), resuming from its last.mpk when an earlier run was cut short.
pub fn run_fold(
    config: &Config,
    cv: &CvData,
    fold: usize,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<FoldResult> {
    let val_rows = &cv.folds[fold - 1];
    let mut train_rows: Vec<usize> = cv
        .folds
        .iter()
        .enumerate()
        .filter(|(i, _)| i + 1 != fold)
        .flat_map(|(_, f)| f.iter().copied())
        .collect();
    train_rows.sort_unstable();
    let (data, train_rows) = training_part(
        config,
        cv,
        train_rows,
        config.data.random_state + fold as u64,
    )?;
    let prepared = prepare(config, cv, &data, (&train_rows, val_rows))?;
    let fold_cfg = fold_config(config, fold);
    let run_name = format!("{}/fold_{fold}", cv.plan.run_name);
    let last = fold_dir(config, fold).join("last.mpk");
    let resume = if last.exists() {
        Some(Checkpoint::load(&last)?)
    } else {
        None
    };
    let Outcome { best, .. } = train::train(
        &Run {
            config: &fold_cfg,
            run_name: &run_name,
            data: &prepared,
            device,
            warm_start: None,
        },
        resume,
        observer,
    )?;
    let result = fold_result(&best, &prepared, fold, device)?;
    write_atomic(
        &metrics_path(config, fold),
        &serde_json::to_string_pretty(&result)?,
    )?;
    Ok(result)
}

/// A trained model's figures on its validation rows.
pub fn fold_result(
    best: &Checkpoint,
    prepared: &Prepared,
    fold: usize,
    device: &Device,
) -> Result<FoldResult> {
    let p = Scorer::from_checkpoint(best, device)?.evaluate(&prepared.val)?;
    Ok(FoldResult {
        fold,
        best_epoch: best.weights_epoch,
        metrics: Metrics::compute(&p.anomaly, &prepared.val.y, best.threshold),
        classes: p.classes,
    })
}

/// Reads every fold's result; a fold without one is an error that names it.
pub fn aggregate(config: &Config, n_splits: usize) -> Result<Summary> {
    let mut folds = Vec::new();
    for k in 1..=n_splits {
        match finished_fold(config, k)? {
            Some(r) => folds.push(r),
            None => bail_input!(
                "fold {k} has no results in {} yet: run `anomaly cv --fold {k}` first",
                fold_dir(config, k).display()
            ),
        }
    }
    let summary = Summary::new(folds);
    let dir = &config.checkpoint.save_dir;
    write_atomic(
        &dir.join("cv_summary.json"),
        &serde_json::to_string_pretty(&summary)?,
    )?;
    summary.write_csv(&dir.join("cv_summary.csv"))?;
    Ok(summary)
}

/// Retrains on all rows outside the test split for the folds' mean best-epoch count, with the
/// folds' mean threshold, and writes `final.mpk`.
pub fn final_model(
    config: &Config,
    cv: &CvData,
    summary: &Summary,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<PathBuf> {
    let mut rows: Vec<usize> = cv.folds.concat();
    rows.sort_unstable();
    let (data, rows) = training_part(config, cv, rows, config.data.random_state)?;
    let prepared = prepare(config, cv, &data, (&rows, &[]))?;
    let mut c = config.clone();
    c.checkpoint.save_dir = config.checkpoint.save_dir.join("final");
    c.training.epochs = summary.mean_best_epoch.round().max(1.0) as usize;
    c.training.early_stopping.enabled = false;
    let threshold = summary
        .folds
        .iter()
        .map(|f| f.metrics.threshold as f64)
        .sum::<f64>()
        / summary.folds.len() as f64;
    c.training.threshold = ThresholdChoice::Fixed(threshold);
    let run_name = format!("{}/final", cv.plan.run_name);
    let run = Run {
        config: &c,
        run_name: &run_name,
        data: &prepared,
        device,
        warm_start: None,
    };
    let outcome = train::train(&run, None, observer)?;
    let path = config.checkpoint.save_dir.join("final.mpk");
    outcome.best.save(&path)?;
    Ok(path)
}
