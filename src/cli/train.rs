use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use crate::bail_input;
use crate::cli::ConfigArgs;
use crate::data::prepare_training;
use crate::log::{RunLog, default_run_name, run_dir};
use crate::train::checkpoint::Checkpoint;
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
    // A resumed run continues under its own config and run name, so it ends where an
    // uninterrupted run would have.
    let (mut config, run_name) = match &resume {
        Some(ck) => (resumed_config(&args, ck)?, ck.run_name.clone()),
        None => {
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
    let data = prepare_training(&config)?;
    let mut log = RunLog::open(
        &config.logging,
        &run_name,
        config.training.epochs,
        args.common.quiet,
    )?;
    log.say(&format!(
        "run {run_name} on {device_note}: {} train / {} validation / {} test rows, {} features",
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

    let run = train::Run {
        config: &config,
        run_name: &run_name,
        data: &data,
        device: &device,
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
