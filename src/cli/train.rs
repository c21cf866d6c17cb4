use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use crate::bail_input;
use crate::checkpoint::Checkpoint;
use crate::cli::ConfigArgs;
use crate::config::Config;
use crate::log::{RunLog, default_run_name, run_dir};
use crate::train::feedback::{add_feedback, gate};
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

/// The run's last line: how it ended, the best epoch and threshold, where it was written.
fn finished(outcome: &train::Outcome, secs: f64, written: &Path) -> String {
    let best = &outcome.best;
    if best.history.is_empty() {
        // A one-pass fit: no epochs to speak of.
        return format!(
            "fitted {} in {secs:.1}s; threshold {:.4} (it flags {:.2}% of the training rows); wrote {}",
            best.detector.family(),
            best.threshold,
            100.0
                * crate::eval::decision::flagged_share(&best.train_score_quantiles, best.threshold),
            written.display()
        );
    }
    let best_loss = best
        .history
        .iter()
        .find(|r| r.epoch == best.weights_epoch)
        .map_or(f64::NAN, |r| r.val_loss);
    let how = if outcome.stopped_early {
        "stopped early"
    } else {
        "finished"
    };
    format!(
        "{how} after {} epochs in {secs:.1}s; best epoch {} (val_loss {best_loss:.5}), threshold {:.4}; wrote {}",
        outcome.epochs_run,
        best.weights_epoch,
        best.threshold,
        written.display()
    )
}

/// The run's config and name: a resumed run's own (so it ends where an uninterrupted run
/// would have), a retraining run's parent's, or the command line's.
fn run_config(
    args: &TrainArgs,
    resume: Option<&Checkpoint>,
    parent: Option<(&Path, &Checkpoint)>,
) -> Result<(Config, String)> {
    Ok(match (resume, parent) {
        (Some(ck), _) => (resumed_config(args, ck)?, ck.run_name.clone()),
        (None, Some((old, ck))) => (
            retrain_config(args, old, ck)?,
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
    })
}

pub fn run(args: TrainArgs) -> Result<()> {
    let started = Instant::now();
    let resume = args.resume.as_deref().map(Checkpoint::load).transpose()?;
    let parent = match &args.resume_from {
        Some(p) => Some((p.as_path(), Checkpoint::load(p)?)),
        None => None,
    };
    let parent = parent.as_ref().map(|(p, ck)| (*p, ck));
    let (mut config, run_name) = run_config(&args, resume.as_ref(), parent)?;
    args.common.apply_device(&mut config);
    if args.dry_run {
        return crate::cli::inspect::check(&config, false);
    }
    let selected = device::select(&config.device)?;
    let (device, device_note) = (selected.device, selected.note);
    // Read and check the data before anything is written, so bad input leaves no trace.
    let mut data = prepare_training(&config)?;
    let judged = match &parent {
        Some(parent) => {
            let Some(file) = args.feedback.as_ref().or(config.feedback.path.as_ref()) else {
                bail_input!(
                    "--resume-from: give the feedback file (--feedback FILE or feedback.path)"
                );
            };
            Some(add_feedback(file, &config, *parent, &mut data)?)
        }
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
    let written = config.checkpoint.save_dir.join("best.mpk");
    log.say(&finished(
        &outcome,
        started.elapsed().as_secs_f64(),
        &written,
    ));
    if let (Some(parent), Some(judged)) = (parent, &judged) {
        let save_dir = &config.checkpoint.save_dir;
        let retrained = (best, judged);
        gate(
            args.max_regression,
            parent,
            retrained,
            save_dir,
            &device,
            &mut log,
        )?;
    }
    if let Some(line) = crate::hub::push_trained(&config)? {
        log.say(&line);
    }
    Ok(())
}
