//! Families without gradients: fitted in one pass, the unsupervised ones on the rows
//! `training.fit_on` names and the random forest on every labelled training row, with the
//! same decision rules, checkpoints and observer as the gradient trainer.

use anyhow::Result;

use super::{Objective, Observer, Outcome, Run, checkpoint_paths};
use crate::bail_input;
use crate::checkpoint::Checkpoint;
use crate::config::FitOn;
use crate::data::labels::UNSEEN;
use crate::data::{Dataset, Prepared};
use crate::eval::decision::{self, RuleInputs};
use crate::eval::roc_auc;
use crate::model::DetectorState;
use crate::model::detector::Detector;
use crate::model::ensemble::{Combine, Ensemble, Member, member_scores};
use crate::model::family::{FitData, Trainer};
use crate::model::gradient_boosting::Validation;
use crate::model::neighbors::gather;
use crate::model::random_forest::Labelled;
use crate::score::anomaly;

/// The training rows an unsupervised detector learns from.
pub(super) fn fit_rows(fit_on: FitOn, train: &Dataset) -> Result<Vec<usize>> {
    let rows: Vec<usize> = match fit_on {
        FitOn::All => (0..train.len()).collect(),
        FitOn::Normal => (0..train.len()).filter(|&r| train.y[r] == 0.0).collect(),
    };
    if rows.is_empty() {
        bail_input!("training.fit_on: normal, but the training rows hold no normal rows");
    }
    Ok(rows)
}

/// Each row's class for the tree families: the 0/1 label (binary) or the class index.
fn classes(ds: &Dataset, multiclass: bool) -> Vec<u32> {
    if multiclass {
        ds.class.clone()
    } else {
        ds.y.iter().map(|&y| y as u32).collect()
    }
}

/// A classifier (the tree families) on every training row, classes weighted as the neural
/// classifiers' loss weighs them (`training.pos_weight` / `training.class_weights`), with
/// the validation rows for early stopping.
fn fit_classifier(run: &Run) -> Result<(DetectorState, String)> {
    let (config, data) = (run.config, run.data);
    let train = &data.train;
    let (weights, multiclass) = match super::objective(config, data)? {
        Objective::Binary { pos_weight } => (vec![1.0, pos_weight], false),
        Objective::Multiclass { weights } => (weights, true),
        Objective::Reconstruction => unreachable!("a classifier classifies"),
    };
    let class = classes(train, multiclass);
    let rows: Vec<usize> = (0..train.len()).collect();
    let d = train.n_features;
    // Validation rows of a class the training rows lack have no output to score.
    let val_class = classes(&data.val, multiclass);
    let known: Vec<usize> = (0..val_class.len())
        .filter(|&r| val_class[r] != UNSEEN)
        .collect();
    let (val_x, val_known) = (
        gather(&data.val.x, d, &known),
        known.iter().map(|&r| val_class[r]).collect::<Vec<u32>>(),
    );
    let fitted = config.model.fit(&FitData {
        x: &train.x,
        d,
        y: &train.y,
        rows: &rows,
        labelled: Some(Labelled {
            x: &train.x,
            d,
            rows: &rows,
            class: &class,
            class_weights: &weights,
            multiclass,
        }),
        validation: (!known.is_empty()).then_some(Validation {
            x: &val_x,
            class: &val_known,
        }),
        seed: config.training.seed,
    })?;
    let (detector, what) = (fitted.state, fitted.said);
    let importance = fitted.importance.unwrap_or_default();
    let mut ranked: Vec<(usize, f32)> = importance.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let top: Vec<String> = ranked
        .iter()
        .take(5)
        .map(|&(f, v)| format!("{} {v:.3}", data.pre.feature_names[f]))
        .collect();
    let said = format!(
        "on the {} training rows: {what}; most important: {}",
        rows.len(),
        top.join(", ")
    );
    Ok((detector, said))
}

/// An ensemble: each member fitted as a run of its own (its checkpoint under
/// `members/<family>/`, its threshold from the decision rule), then its scores' mean and
/// standard deviation on the fitted rows, which standardise it.
fn fit_ensemble(
    run: &Run,
    rows: &[usize],
    observer: &mut dyn Observer,
) -> Result<(DetectorState, String)> {
    let (config, train) = (run.config, &run.data.train);
    let e = &config.model.ensemble;
    let d = train.n_features;
    let fitted = gather(&train.x, d, rows);
    let mut members = Vec::new();
    for &kind in &e.members {
        let mut member = config.clone();
        member.model.kind = kind;
        member.checkpoint.save_dir = config.checkpoint.save_dir.join("members").join(kind.name());
        let outcome = super::train(
            &Run {
                config: &member,
                ..*run
            },
            None,
            observer,
        )?;
        let detector = outcome.best.detector;
        let loaded = detector.load(run.device)?;
        let (mean, std) = mean_std(&member_scores(loaded.as_ref(), &fitted)?);
        let weight = match e.combine {
            Combine::Weighted => validation_weight(loaded.as_ref(), run.data, kind.name())?,
            _ => 1.0,
        };
        members.push(Member {
            detector,
            threshold: outcome.best.threshold,
            mean,
            std,
            weight,
        });
    }
    let names: Vec<String> = e
        .members
        .iter()
        .zip(&members)
        .map(|(k, m)| match e.combine {
            Combine::Weighted if m.weight == 0.0 => format!("{} dropped (at chance)", k.name()),
            Combine::Weighted => format!("{} weight {:.3}", k.name(), m.weight),
            _ => k.name().to_string(),
        })
        .collect();
    if members.iter().all(|m| m.weight == 0.0) {
        bail_input!(
            "model.ensemble.combine: weighted, but no member ranks the validation rows better \
             than chance ({})",
            names.join(", ")
        );
    }
    let said = format!(
        "{} members ({}) combined by {:?}",
        names.len(),
        names.join(", "),
        e.combine
    );
    let ensemble = Ensemble {
        members,
        combine: e.combine,
        min_votes: e.min_votes,
        severity: e.severity_cutoffs(),
    };
    Ok((DetectorState::Ensemble(ensemble), said))
}

/// A member's weight for `combine: weighted`: its validation ROC AUC − 0.5, or 0 at or below
/// chance (it is dropped).
fn validation_weight(member: &dyn Detector, data: &Prepared, name: &str) -> Result<f64> {
    let scores = member_scores(member, &data.val.x)?;
    match roc_auc(&scores, &data.val.y) {
        Some(auc) => Ok((auc - 0.5).max(0.0)),
        None => bail_input!(
            "model.ensemble.combine: weighted weighs members by their validation ROC AUC, and \
             the validation rows hold one class only ({name}); use median_z"
        ),
    }
}

/// The mean and (population) standard deviation of `scores`, in f64; a constant member keeps
/// its scale (std 1).
fn mean_std(scores: &[f32]) -> (f64, f64) {
    let n = scores.len().max(1) as f64;
    let mean = scores.iter().map(|&s| s as f64).sum::<f64>() / n;
    let var = scores
        .iter()
        .map(|&s| (s as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let std = var.sqrt();
    (
        mean,
        if std > 0.0 && std.is_finite() {
            std
        } else {
            1.0
        },
    )
}

/// Fits a family without gradients in one pass and writes `best.mpk`: the detector, the
/// threshold its decision rule picks, and the training rows' score distribution.
pub fn one_pass(
    run: &Run,
    resume: Option<Checkpoint>,
    observer: &mut dyn Observer,
) -> Result<Outcome> {
    let Run {
        config,
        run_name,
        data,
        device,
        ..
    } = *run;
    let t = &config.training;
    if resume.is_some() {
        bail_input!(
            "--resume: a {:?} detector is fitted in one pass; there is nothing to resume (train again)",
            config.model.kind
        );
    }
    let kind = config.model.kind;
    let (detector, said) = if kind.is_classifier() {
        fit_classifier(run)?
    } else {
        let rows = fit_rows(t.fit_on, &data.train)?;
        let (detector, said) = if kind.trainer() == Trainer::Members {
            fit_ensemble(run, &rows, observer)?
        } else {
            let train = &data.train;
            let fitted = config.model.fit(&FitData {
                x: &train.x,
                d: data.pre.n_features(),
                y: &train.y,
                rows: &rows,
                labelled: None,
                validation: None,
                seed: t.seed,
            })?;
            (fitted.state, fitted.said)
        };
        let on = format!(
            "{} of the {} training rows (training.fit_on: {:?})",
            rows.len(),
            data.train.len(),
            t.fit_on
        );
        (detector, format!("on {on}: {said}"))
    };
    observer.note(&format!("fitted {} {said}", detector.family()));
    let scorer = detector.load(device)?;
    let scores = |x: &[f32]| Ok::<_, anyhow::Error>(anomaly(&data.pre, scorer.score(x)?).anomaly);
    // Every training row's score, as for the supervised families: `contamination: r` flags
    // the top r of the training split, attacks included when there are labelled ones.
    let train_quantiles = decision::score_quantiles(&scores(&data.train.x)?);
    let val_scores = scores(&data.val.x)?;
    let inputs = RuleInputs {
        val_scores: &val_scores,
        val_y: &data.val.y,
        train_quantiles: &train_quantiles,
    };
    // A vote flags from `min_votes` members on, whatever the rule (which set each member's
    // threshold).
    let threshold = match &detector {
        DetectorState::Ensemble(e) if e.combine == Combine::Vote => {
            e.min_votes as f32 / e.members.len() as f32
        }
        _ => decision::threshold(t.threshold, &inputs)?,
    };
    let best = Checkpoint {
        threshold,
        train_score_quantiles: train_quantiles,
        epoch: 1,
        weights_epoch: 1,
        ..Checkpoint::new(config, run_name, detector, data)
    };
    best.save(&checkpoint_paths(&config.checkpoint.save_dir).0)?;
    Ok(Outcome {
        best,
        epochs_run: 1,
        stopped_early: false,
    })
}
