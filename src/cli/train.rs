use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use crate::bail_input;
use crate::checkpoint::Checkpoint;
use crate::cli::ConfigArgs;
use crate::config::Config;
use crate::data::feedback::FeedbackRecord;
use crate::data::feedback::{self, Judged};
use crate::data::{Prepared, write_atomic};
use crate::log::{RunLog, default_run_name, run_dir};
use crate::train::feedback::{Comparison, add_to_training};
use crate::train::prepare::prepare_training;
use crate::{device, train};

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Continue an interrupted run from its last.mpk (same data and stored config; only
    /// `--set training.epochs=N` may extend it).
    #[arg(long, value_name = "CHECKPOINT")]
    pub resume: Option<PathBuf>,
    /// Check the data (as `anomaly inspect`) and the config, then stop without training.
    #[arg(long, conflicts_with = "resume")]
    pub dry_run: bool,
    /// Retrain this model with analyst feedback (`--feedback` or feedback.path): neural
    /// classifiers fine-tune from its weights, other families refit. Writes to
    /// `<its folder>/retrained/` unless checkpoint.save_dir is set; the old file is untouched.
    #[arg(long, value_name = "CHECKPOINT", conflicts_with_all = ["resume", "dry_run"])]
    pub resume_from: Option<PathBuf>,
    /// The feedback file (`anomaly feedback add`, or the dashboard's verdicts).
    #[arg(long, value_name = "CSV", requires = "resume_from")]
    pub feedback: Option<PathBuf>,
    /// Keep the old model as best.mpk (and exit 1) when the retrained one's held-out ROC AUC
    /// is lower by more than this.
    #[arg(long, default_value_t = 0.01, value_name = "AUC")]
    pub max_regression: f64,
}

/// A retraining run keeps the old model's stored config (its data, split and model), with
/// `--set` overrides (e.g. training.epochs), writing beside it into `retrained/`.
fn retrain_config(args: &TrainArgs, old: &Path, ck: &Checkpoint) -> Result<Config> {
    if let Some(path) = &args.common.config {
        bail_input!(
            "--resume-from retrains under the checkpoint's stored config; --config {} would not \
             be applied (use --set key=value)",
            path.display()
        );
    }
    let mut config = ck.config.with_overrides(&args.common.overrides)?;
    let save_dir_set = args.common.overrides.iter().any(|o| {
        o.split('=')
            .next()
            .is_some_and(|k| k.trim() == "checkpoint.save_dir")
    });
    if !save_dir_set {
        let dir = old.parent().unwrap_or(Path::new("."));
        config.checkpoint.save_dir = dir.join("retrained");
    }
    let old_file = std::fs::canonicalize(old)?;
    let (best, last) = train::checkpoint_paths(&config.checkpoint.save_dir);
    if [best, last]
        .iter()
        .any(|p| std::fs::canonicalize(p).is_ok_and(|p| p == old_file))
    {
        bail_input!(
            "--resume-from {}: retraining would overwrite it; set another checkpoint.save_dir",
            old.display()
        );
    }
    Ok(config)
}

/// Adds the feedback file's judged rows to the training rows (see [`train::feedback`]).
fn add_feedback(
    args: &TrainArgs,
    config: &Config,
    (old, ck): (&Path, &Checkpoint),
    data: &mut Prepared,
) -> Result<Judged> {
    let Some(file) = args
        .feedback
        .clone()
        .or_else(|| config.feedback.path.clone())
    else {
        bail_input!("--resume-from: give the feedback file (--feedback FILE or feedback.path)");
    };
    if config.model.kind.is_sequence() {
        bail_input!(
            "--resume-from {}: feedback judges single rows, and a sequence model learns from \
             windows of flows; retraining it from feedback is not supported",
            old.display()
        );
    }
    let mut now = data.pre.clone();
    now.profile = ck.preprocessor.profile.clone();
    if now != ck.preprocessor {
        bail_input!(
            "--resume-from {}: its training rows encode differently now (the data file or data.* \
             changed since it was trained)",
            old.display()
        );
    }
    let judged = feedback::read(&file, &data.pre, &config.data)?;
    let weight = config.feedback.weight;
    let line = add_to_training(data, &judged, weight, config.model.kind.is_classifier());
    data.notices.push(line);
    data.feedback = Some(FeedbackRecord::new(&file, &judged, weight, old)?);
    Ok(judged)
}

/// After retraining: the old and new model side by side; when the held-out ROC AUC fell by
/// more than `--max-regression`, the old model becomes best.mpk again (the new one is kept as
/// rejected.mpk) and the run fails.
fn gate(
    args: &TrainArgs,
    (old, ck): (&Path, &Checkpoint),
    new: &Checkpoint,
    judged: &Judged,
    save_dir: &Path,
    device: &burn::tensor::Device,
    log: &mut RunLog,
) -> Result<()> {
    let c = Comparison::compute(ck, new, judged, device)?;
    log.say(&format!(
        "old ({}) and retrained model:\n{}",
        old.display(),
        c.table()
    ));
    if c.auc_drop.is_nan() {
        log.say(
            "note: a held-out ROC AUC is undefined (one class, or one score for every row), so \
             --max-regression cannot be checked",
        );
    }
    if c.auc_drop > args.max_regression {
        let (best, _) = train::checkpoint_paths(save_dir);
        let rejected = save_dir.join("rejected.mpk");
        std::fs::rename(&best, &rejected)?;
        let bytes = std::fs::read(old).with_context(|| format!("reading {}", old.display()))?;
        write_atomic(&best, bytes)?;
        anyhow::bail!(
            "the retrained model's held-out ROC AUC fell by {:.4} (more than --max-regression {}); \
             {} is the old model again, the retrained one is {}",
            c.auc_drop,
            args.max_regression,
            best.display(),
            rejected.display()
        );
    }
    Ok(())
}

/// A resumed run keeps its stored config, so it ends where an uninterrupted run would have;
/// only `--set training.epochs=N` (to extend a run) may change it, and anything else is refused
/// rather than silently ignored.
fn resumed_config(args: &TrainArgs, ck: &Checkpoint) -> Result<crate::config::Config> {
    if let Some(path) = &args.common.config {
        bail_input!(
            "--resume continues under the checkpoint's stored config; --config {} would not be \
             applied (to extend the run: --set training.epochs=N)",
            path.display()
        );
    }
    for item in &args.common.overrides {
        let key = item
            .split_once('=')
            .map_or(item.as_str(), |(k, _)| k)
            .trim();
        if key != "training.epochs" {
            bail_input!(
                "--set {key}: a resumed run keeps its stored config; only training.epochs can \
                 change (to extend the run)"
            );
        }
    }
    ck.config.with_overrides(&args.common.overrides)
}

pub fn run(args: TrainArgs) -> Result<()> {
    let started = Instant::now();
    let resume = args.resume.as_deref().map(Checkpoint::load).transpose()?;
    let parent = match &args.resume_from {
        Some(p) => Some((p.as_path(), Checkpoint::load(p)?)),
        None => None,
    };
    // A resumed run continues under its own config and run name, so it ends where an
    // uninterrupted run would have.
    let (mut config, run_name) = match (&resume, &parent) {
        (Some(ck), _) => (resumed_config(&args, ck)?, ck.run_name.clone()),
        (None, Some((old, ck))) => (
            retrain_config(&args, old, ck)?,
            format!("{}-retrained", ck.run_name),
        ),
        (None, None) => {
            let config = args.common.load()?;
            let name = config
                .logging
                .run_name
                .clone()
                .unwrap_or_else(default_run_name);
            (config, name)
        }
    };
    args.common.apply_device(&mut config);
    if args.dry_run {
        return crate::cli::inspect::check(&config, false);
    }
    let selected = device::select(&config.device)?;
    let (device, device_note) = (selected.device, selected.note);
    // Read and check the data before anything is written, so bad input leaves no trace.
    let mut data = prepare_training(&config)?;
    let judged = match &parent {
        Some((old, ck)) => Some(add_feedback(&args, &config, (old, ck), &mut data)?),
        None => None,
    };
    let mut log = RunLog::open(
        &config.logging,
        &run_name,
        config.training.epochs,
        args.common.quiet,
    )?;
    let rows = match &data.train.windows {
        Some(w) => format!("windows of {} flows", w.length),
        None => "rows".into(),
    };
    log.say(&format!(
        "run {run_name} on {device_note}: {} train / {} validation / {} test {rows}, {} features",
        data.train.len(),
        data.val.len(),
        data.test.len(),
        data.pre.n_features()
    ));
    for notice in &data.notices {
        log.say(&format!("note: {notice}"));
    }
    config.save_resolved(&[
        &config.checkpoint.save_dir,
        &run_dir(&config.logging, &run_name),
    ])?;
    if let Some(ck) = &resume {
        log.say(&format!("resuming after epoch {}", ck.epoch));
    }

    // Neural classifiers fine-tune from the old weights; other families refit.
    let warm_start = parent
        .as_ref()
        .filter(|_| config.model.kind.is_classifier())
        .and_then(|(_, ck)| ck.detector.as_network());
    let run = train::Run {
        config: &config,
        run_name: &run_name,
        data: &data,
        device: &device,
        warm_start,
    };
    let outcome = train::train(&run, resume, &mut log)?;
    let best = &outcome.best;
    let best_loss = best
        .history
        .iter()
        .find(|r| r.epoch == best.weights_epoch)
        .map_or(f64::NAN, |r| r.val_loss);
    let written = config.checkpoint.save_dir.join("best.mpk");
    if best.history.is_empty() {
        // A one-pass fit: no epochs to speak of.
        log.say(&format!(
            "fitted {} in {:.1}s; threshold {:.4} (it flags {:.2}% of the training rows); wrote {}",
            best.detector.family(),
            started.elapsed().as_secs_f64(),
            best.threshold,
            100.0
                * crate::eval::decision::flagged_share(&best.train_score_quantiles, best.threshold),
            written.display()
        ));
    } else {
        log.say(&format!(
        "{} after {} epochs in {:.1}s; best epoch {} (val_loss {:.5}), threshold {:.4}; wrote {}",
        if outcome.stopped_early {
            "stopped early"
        } else {
            "finished"
        },
        outcome.epochs_run,
        started.elapsed().as_secs_f64(),
        best.weights_epoch,
        best_loss,
        best.threshold,
        written.display()
    ));
    }
    if let (Some((old, ck)), Some(judged)) = (&parent, &judged) {
        let save_dir = &config.checkpoint.save_dir;
        gate(&args, (old, ck), best, judged, save_dir, &device, &mut log)?;
    }
    if let Some(repo_id) = config
        .huggingface
        .repo_id
        .as_deref()
        .filter(|_| config.huggingface.push_to_hub)
    {
        let best = config.checkpoint.save_dir.join("best.mpk");
        let files = crate::hub::upload(&crate::hub::UploadRequest {
            checkpoint: &best,
            repo_id,
            token: None,
            private: config.huggingface.private,
            revision: "main",
            commit_message: None,
        })?;
        log.say(&format!(
            "pushed {} to {repo_id}: {}",
            best.display(),
            files.join(", ")
        ));
    }
    Ok(())
}
