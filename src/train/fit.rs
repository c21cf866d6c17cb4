//! Families without gradients: fitted in one pass, the unsupervised ones on the rows
//! `training.fit_on` names and the random forest on every labelled training row, with the
//! same decision rules, checkpoints and observer as the gradient trainer.

use anyhow::{Context, Result};

use super::{Objective, Observer, Outcome, Run, checkpoint_paths};
use crate::bail_input;
use crate::checkpoint::Checkpoint;
use crate::config::{Config, FitOn, Task};
use crate::data::labels::UNSEEN;
use crate::data::{Dataset, Prepared};
use crate::eval::decision::{self, RuleInputs};
use crate::eval::roc_auc;
use crate::model::detector::{Detector, Output};
use crate::model::ensemble::{Combine, Ensemble, Member, member_scores};
use crate::model::family::{FitData, Trainer};
use crate::model::gradient_boosting::Validation;
use crate::model::hybrid::{Hybrid, Join, Joined, Joint};
use crate::model::neighbors::gather;
use crate::model::random_forest::Labelled;
use crate::model::rank::NormalRank;
use crate::model::{DetectorState, ModelKind};
use crate::score::anomaly;

/// The training rows an unsupervised detector learns from.
pub(super) fn fit_rows(fit_on: FitOn, train: &Dataset) -> Result<Vec<usize>> {
    let rows = rows_named(fit_on, train);
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
/// the validation rows for early stopping (and for the observer, which may stop boosting).
fn fit_classifier(run: &Run, observer: &mut dyn Observer) -> Result<(DetectorState, String)> {
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
    let val_y: Vec<f32> = known.iter().map(|&r| data.val.y[r]).collect();
    let observer = std::cell::RefCell::new(observer);
    let progress = |round: usize, output: Output| {
        let scores = anomaly(&data.pre, output).anomaly;
        observer.borrow_mut().keep_going(round, &scores, &val_y)
    };
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
            progress: Some(&progress),
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

/// A part of an ensemble or a hybrid, fitted as a run of its own: the config as it is but
/// for the family (and what `adjust` changes), its checkpoint under `members/<family>/`.
fn fit_part(
    run: &Run,
    kind: ModelKind,
    adjust: impl FnOnce(&mut Config),
    observer: &mut dyn Observer,
) -> Result<Checkpoint> {
    let config = run.config;
    let mut part = config.clone();
    part.model.kind = kind;
    part.checkpoint.save_dir = config.checkpoint.save_dir.join("members").join(kind.name());
    adjust(&mut part);
    part.validate()
        .with_context(|| format!("the {} part's config", kind.name()))?;
    let outcome = super::train(
        &Run {
            config: &part,
            ..*run
        },
        None,
        &mut Whole(observer),
    )?;
    Ok(outcome.best)
}

/// A part's observer: told everything but asked nothing, so a part always runs to its end
/// (a search judges the whole model, not its parts' curves).
struct Whole<'a>(&'a mut dyn Observer);

impl Observer for Whole<'_> {
    fn epoch_started(&mut self, epoch: usize, batches: usize) {
        self.0.epoch_started(epoch, batches);
    }
    fn batch_done(&mut self, global_step: u64, loss: f64) {
        self.0.batch_done(global_step, loss);
    }
    fn epoch_done(
        &mut self,
        record: &crate::checkpoint::EpochRecord,
        improved: bool,
        best_val_loss: f64,
    ) {
        self.0.epoch_done(record, improved, best_val_loss);
    }
    fn note(&mut self, message: &str) {
        self.0.note(message);
    }
}

/// An ensemble: each member fitted as a run of its own (its threshold from the decision
/// rule), then its scores' mean and standard deviation on the fitted rows, which standardise
/// it.
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
        let best = fit_part(run, kind, |_| {}, observer)?;
        let detector = best.detector;
        let loaded = detector.load(run.device)?;
        let (mean, std) = mean_std(&member_scores(loaded.as_ref(), &fitted)?);
        let weight = match e.combine {
            Combine::Weighted => validation_weight(loaded.as_ref(), run.data, kind.name())?,
            _ => 1.0,
        };
        // Held-out rows of the kind it learnt from; the fitted rows when there are none.
        let val = &run.data.val;
        let held_out = gather(&val.x, d, &rows_named(config.training.fit_on, val));
        let reference = if held_out.is_empty() {
            &fitted
        } else {
            &held_out
        };
        members.push(Member {
            detector,
            threshold: best.threshold,
            mean,
            std,
            weight,
            rank: Some(normal_rank(loaded.as_ref(), reference)?),
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

/// A hybrid: the classifier fitted on every labelled training row, the detector on the
/// normal training rows only (`training.fit_on: normal`, whatever the config says), each a
/// run of its own; then, on the validation rows neither learnt from, the detector calibrated
/// on the normal ones and, for `stacking`, the join fitted on all of them.
fn fit_hybrid(run: &Run, observer: &mut dyn Observer) -> Result<(DetectorState, String)> {
    let (h, pre) = (&run.config.model.hybrid, &run.data.pre);
    let classifier = fit_part(run, h.classifier, |_| {}, observer)?.detector;
    // Binary as any detector's run (a multiclass one's class weights go with it), so that
    // its checkpoint loads on its own.
    let normal_only = |c: &mut Config| {
        c.task = Task::Binary;
        c.training.class_weights = None;
        c.training.fit_on = FitOn::Normal;
    };
    let detector = fit_part(run, h.detector, normal_only, observer)?.detector;
    let val = &run.data.val;
    let normal = gather(&val.x, val.n_features, &rows_named(FitOn::Normal, val));
    if normal.is_empty() {
        bail_input!(
            "model.kind hybrid: the validation rows hold no normal row to calibrate the detector \
             on (data.val_size, or the labels)"
        );
    }
    let calibration = normal_rank(detector.load(run.device)?.as_ref(), &normal)?;
    let mut hybrid = Hybrid {
        classifier: Box::new(classifier),
        detector: Box::new(detector),
        joint: Joint {
            // One flag per class; none when binary.
            anomalous: pre.anomalous.clone(),
            calibration,
            normal_quantile: h.normal_quantile,
            join: Joined::Either,
        },
    };
    let joined = match h.combine {
        Join::Either => "either (noisy-OR)".to_string(),
        Join::Stacking => {
            hybrid.joint.join = stack(&hybrid, run)?;
            let Joined::Stacking { weights: [a, b, c] } = hybrid.joint.join else {
                unreachable!("just fitted")
            };
            format!("stacking: σ({a:.3}·logit classifier + {b:.3}·logit detector + {c:.3})")
        }
    };
    let said = format!(
        "{} (every training row) and {} (the normal training rows only), the detector \
         calibrated on {} normal validation rows (one half at their {} quantile), joined by \
         {joined}",
        h.classifier.name(),
        h.detector.name(),
        hybrid.joint.calibration.rows,
        h.normal_quantile
    );
    Ok((DetectorState::Hybrid(hybrid), said))
}

/// A detector's scores on the row-major rows `x`, kept as the quantiles its rank is read on.
fn normal_rank(detector: &dyn Detector, x: &[f32]) -> Result<NormalRank> {
    let scores = member_scores(detector, x)?;
    Ok(NormalRank {
        normal: decision::score_quantiles(&scores),
        rows: scores.len(),
    })
}

/// The rows of `ds` `fit_on` names: all, or the normal ones.
pub(super) fn rows_named(fit_on: FitOn, ds: &Dataset) -> Vec<usize> {
    (0..ds.len())
        .filter(|&r| fit_on == FitOn::All || ds.y[r] == 0.0)
        .collect()
}

/// `combine: stacking`: the regression of the validation labels on the parts' probabilities.
fn stack(hybrid: &Hybrid, run: &Run) -> Result<Joined> {
    let val = &run.data.val;
    let loaded = DetectorState::Hybrid(hybrid.clone()).load(run.device)?;
    let Output::Hybrid { votes, .. } = loaded.score(&val.x)? else {
        unreachable!("a hybrid scores as one")
    };
    let part = |j: usize| -> Vec<f64> {
        let scores = votes.member_scores.iter().skip(j).step_by(2);
        scores.map(|&v| v as f64).collect()
    };
    Joined::stacking(&part(0), &part(1), &val.y)
}

/// A member's weight for `combine: weighted`: its validation ROC AUC − 0.5, or 0 at or below
/// chance (it is dropped).
fn validation_weight(member: &dyn Detector, data: &Prepared, name: &str) -> Result<f64> {
    let scores = member_scores(member, &data.val.x)?;
    match roc_auc(&scores, &data.val.y) {
        Some(auc) => Ok((auc - 0.5).max(0.0)),
        None => bail_input!(
            "model.ensemble.combine: weighted weighs members by their validation ROC AUC, and \
             the validation rows hold one class only ({name}); use median_rank"
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
    let (detector, said) = if kind == ModelKind::Hybrid {
        fit_hybrid(run, observer)?
    } else if kind.is_classifier() {
        fit_classifier(run, observer)?
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
