//! Rows scored for `assess`: a checkpoint's train, validation and test rows, or each cv
//! fold's validation rows by the fold's own checkpoint, and all folds pooled. What the
//! report renders; nothing here draws or writes.

use std::collections::HashMap;

use anyhow::Result;
use burn::tensor::Device;

use crate::bail_input;
use crate::checkpoint::{Checkpoint, EpochRecord};
use crate::config::Config;
use crate::data::folds::{FoldPlan, fold_dir, folds_path};
use crate::data::sequence;
use crate::data::{Dataset, encode, evaluation_sets, read_labeled};
use crate::error::bad_input;
use crate::eval::assess::Assessment;
use crate::eval::clusters::ClusterReport;
use crate::eval::ensemble::EnsembleReport;
use crate::eval::multiclass::ClassReport;
use crate::score::Scorer;

/// One set of rows scored by one model.
pub struct ScoredSet {
    pub name: String,
    pub y: Vec<f32>,
    pub probs: Vec<f32>,
    pub assessment: Assessment,
    pub classes: Option<ClassReport>,
    pub ensemble: Option<EnsembleReport>,
    pub clusters: Option<ClusterReport>,
}

/// Scores `ds` with `scorer`, built once per checkpoint `ck` by the caller.
fn score(
    name: &str,
    ck: &Checkpoint,
    scorer: &Scorer,
    ds: &Dataset,
    resamples: usize,
) -> Result<ScoredSet> {
    let p = scorer.evaluate(ds)?;
    let assessment = Assessment::new(
        &p.anomaly,
        &ds.y,
        scorer.threshold,
        resamples,
        ck.config.training.seed,
    );
    Ok(ScoredSet {
        name: name.to_string(),
        y: ds.y.clone(),
        probs: p.anomaly,
        assessment,
        classes: p.classes,
        ensemble: p.ensemble,
        clusters: p.clusters,
    })
}

/// A checkpoint's train, validation and test rows (as `train` split them), each scored by
/// `scorer`; with the test rows, for what the report computes on them.
pub fn checkpoint_sets(
    ck: &Checkpoint,
    scorer: &Scorer,
    resamples: usize,
) -> Result<(Vec<ScoredSet>, Dataset)> {
    let data = evaluation_sets(&ck.config, &ck.preprocessor)?;
    let sets = data
        .iter()
        .map(|(name, ds)| score(name, ck, scorer, ds, resamples))
        .collect::<Result<_>>()?;
    let (_, test) = data
        .into_iter()
        .find(|(name, _)| *name == "test")
        .expect("evaluation_sets returns a test set");
    Ok((sets, test))
}

/// A fold's number, training history and best epoch.
pub type History = (usize, Vec<EpochRecord>, usize);

/// One fold's validation rows scored by its checkpoint, and its history.
pub type Fold = (ScoredSet, History);

/// Each fold's checkpoint scoring the validation rows folds.json gives it.
pub fn score_folds(
    config: &Config,
    resamples: usize,
    device: &Device,
) -> Result<(FoldPlan, Vec<Fold>)> {
    let plan_path = folds_path(config);
    let plan = FoldPlan::read(&plan_path)?;
    let (data, layout) = if config.model.kind.is_sequence() {
        let (data, layout) = sequence::read(&config.data.path, config, None)?;
        (data, Some(layout))
    } else {
        let data = read_labeled(&config.data.path, &config.data, config.task, None)?;
        (data, None)
    };
    let table_row: HashMap<usize, usize> = data
        .table
        .source_rows
        .iter()
        .enumerate()
        .map(|(i, &r)| (r, i))
        .collect();
    let mut folds = Vec::new();
    for k in 1..=plan.n_splits {
        let path = fold_dir(config, k).join("best.mpk");
        if !path.exists() {
            bail_input!(
                "fold {k} has no checkpoint at {}: run `anomaly cv --fold {k}` first",
                path.display()
            );
        }
        let ck = Checkpoint::load(&path)?;
        let rows: Vec<usize> = plan.folds[k - 1]
            .iter()
            .map(|r| {
                table_row.get(r).copied().ok_or_else(|| {
                    bad_input(format!(
                        "{}: row {r} of fold {k} is not in {}",
                        plan_path.display(),
                        config.data.path.display()
                    ))
                })
            })
            .collect::<Result<_>>()?;
        let ds = match &layout {
            Some(l) => sequence::windows_of(config, &ck.preprocessor, &data, l, &rows)?,
            None => encode(&ck.preprocessor, &data, &rows, &mut Vec::new())?,
        };
        let scorer = Scorer::from_checkpoint(&ck, device)?;
        let set = score(&format!("fold_{k}"), &ck, &scorer, &ds, resamples)?;
        folds.push((set, (k, ck.history.clone(), ck.weights_epoch)));
    }
    Ok((plan, folds))
}

/// All folds' validation rows together: every non-test row scored once by the model that
/// did not train on it, at the folds' mean threshold.
pub fn pooled(sets: &[ScoredSet], resamples: usize, seed: u64) -> ScoredSet {
    let y: Vec<f32> = sets.iter().flat_map(|s| s.y.iter().copied()).collect();
    let probs: Vec<f32> = sets.iter().flat_map(|s| s.probs.iter().copied()).collect();
    let threshold = sets
        .iter()
        .map(|s| s.assessment.metrics.threshold)
        .sum::<f32>()
        / sets.len() as f32;
    let assessment = Assessment::new(&probs, &y, threshold, resamples, seed);
    ScoredSet {
        name: "all folds".into(),
        y,
        probs,
        assessment,
        classes: None,
        ensemble: None,
        clusters: None,
    }
}
