//! Families without gradients: fitted in one pass on the rows `training.fit_on` names, with the
//! same decision rules, checkpoints and observer as the gradient trainer.

use anyhow::Result;

use super::checkpoint::Checkpoint;
use super::{Observer, Outcome, checkpoint_paths};
use crate::bail_input;
use crate::config::{Config, FitOn};
use crate::data::{Dataset, Prepared};
use crate::eval::decision::{self, RuleInputs};
use crate::model::detector::DetectorState;
use crate::model::isolation_forest::IsolationForest;

/// The training rows an unsupervised detector learns from.
fn fit_rows(fit_on: FitOn, train: &Dataset) -> Result<Vec<usize>> {
    let rows: Vec<usize> = match fit_on {
        FitOn::All => (0..train.len()).collect(),
        FitOn::Normal => (0..train.len()).filter(|&r| train.y[r] == 0.0).collect(),
    };
    if rows.is_empty() {
        bail_input!("training.fit_on: normal, but the training rows hold no normal rows");
    }
    Ok(rows)
}

/// Fits an isolation forest and writes `best.mpk`.
pub fn isolation_forest(
    config: &Config,
    run_name: &str,
    data: &Prepared,
    resume: Option<Checkpoint>,
    observer: &mut dyn Observer,
) -> Result<Outcome> {
    if resume.is_some() {
        bail_input!(
            "--resume: an isolation forest is fitted in one pass; there is nothing to resume (train again)"
        );
    }
    let t = &config.training;
    let rows = fit_rows(t.fit_on, &data.train)?;
    let d = data.pre.n_features();
    let cfg = &config.model.isolation_forest;
    let forest = IsolationForest::fit(&data.train.x, d, &rows, cfg, t.seed);
    observer.note(&format!(
        "fitted {} trees on {} of the {} training rows (training.fit_on: {:?}), {} rows each",
        cfg.n_trees,
        rows.len(),
        data.train.len(),
        t.fit_on,
        forest.sample_size
    ));
    // Every training row's score, as for the supervised families: `contamination: r` flags
    // the top r of the training split, attacks included when there are labelled ones.
    let train_quantiles = decision::score_quantiles(&forest.scores(&data.train.x));
    let val_scores = forest.scores(&data.val.x);
    let inputs = RuleInputs {
        val_scores: &val_scores,
        val_y: &data.val.y,
        train_quantiles: &train_quantiles,
    };
    let best = Checkpoint {
        threshold: decision::threshold(t.threshold, &inputs)?,
        train_score_quantiles: train_quantiles,
        epoch: 1,
        weights_epoch: 1,
        ..Checkpoint::new(
            config,
            run_name,
            DetectorState::IsolationForest(forest),
            data,
        )
    };
    best.save(&checkpoint_paths(&config.checkpoint.save_dir).0)?;
    Ok(Outcome {
        best,
        epochs_run: 1,
        stopped_early: false,
    })
}
