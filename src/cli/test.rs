use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use crate::checkpoint::Checkpoint;
use crate::cli::{CheckpointArgs, ConfigArgs, check_bootstrap};
use crate::data::feedback;
use crate::data::{evaluation_source, prepare_evaluation};
use crate::device;
use crate::eval::assess::Assessment;
use crate::log::{Scalars, run_dir};
use crate::report::{class_table, cluster_table, ensemble_table, metrics_table};
use crate::score::{Predictions, Scorer};
use crate::train::feedback::Comparison;

#[derive(Args, Debug)]
pub struct TestArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    #[command(flatten)]
    pub checkpoint: CheckpointArgs,
    /// A labelled CSV to evaluate on (default: the training run's held-out test rows).
    #[arg(long, value_name = "CSV")]
    pub data: Option<PathBuf>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Do not write metrics.json beside the checkpoint or log to TensorBoard.
    #[arg(long)]
    pub no_write: bool,
    /// Bootstrap resamples for the 95% intervals.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub bootstrap: usize,
}

pub fn run(args: TestArgs) -> Result<()> {
    check_bootstrap(args.bootstrap)?;
    let ck = args.checkpoint.load()?;
    // The checkpoint decides how data is read and scored; the local config (or --device)
    // decides where.
    let local = args.common.load()?;
    let cfg = &ck.config;
    let selected = device::select(&local.device)?;
    let device = selected.device;
    let (ds, mut notices) = prepare_evaluation(cfg, &ck.preprocessor, args.data.as_deref())?;
    let predictions = Scorer::from_checkpoint(&ck, &device)?.evaluate(&ds)?;
    let assessment = Assessment::new(
        &predictions.anomaly,
        &ds.y,
        ck.threshold,
        args.bootstrap,
        cfg.training.seed,
    );
    let feedback = side_by_side(&ck, &device)?;
    if let Err(note) = &feedback {
        notices.push(note.clone());
    }
    let feedback = feedback.ok().flatten();

    let source = args
        .data
        .clone()
        .or_else(|| evaluation_source(cfg))
        .map_or_else(
            || format!("held-out test rows of {}", cfg.data.path.display()),
            |p| p.display().to_string(),
        );
    let report = serde_json::json!({
        "checkpoint": args.checkpoint.path,
        "data": source,
        "epoch": ck.weights_epoch,
        "metrics": assessment.metrics,
        "intervals": assessment.intervals,
        "baseline": assessment.baseline,
        "beats_baseline": assessment.beats_baseline,
        "verdict": assessment.verdict,
        "classes": predictions.classes,
        "ensemble": predictions.ensemble,
        "clusters": predictions.clusters,
        "feedback": feedback,
        "notices": notices,
    });
    if !args.no_write {
        write(
            &args.checkpoint.path,
            &ck,
            &report,
            &assessment,
            &predictions,
        )?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else if !args.common.quiet {
        let header = format!("{} on {source}", args.checkpoint.path.display());
        print(
            &header,
            &notices,
            &assessment,
            &predictions,
            (&feedback, &ck),
        );
    }
    Ok(())
}

/// `metrics.json` beside the checkpoint, and the metrics as TensorBoard scalars of the run.
fn write(
    checkpoint: &Path,
    ck: &Checkpoint,
    report: &serde_json::Value,
    assessment: &Assessment,
    predictions: &Predictions,
) -> Result<()> {
    let metrics = &assessment.metrics;
    let path = checkpoint.with_file_name("metrics.json");
    std::fs::write(&path, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    let mut tb = Scalars::open(&run_dir(&ck.config.logging, &ck.run_name))?;
    let step = ck.weights_epoch;
    tb.add("Metrics/Accuracy", metrics.accuracy, step);
    tb.add("Metrics/Precision", metrics.precision, step);
    tb.add("Metrics/Recall", metrics.recall, step);
    tb.add("Metrics/F1_Score", metrics.f1, step);
    if let Some(auc) = metrics.roc_auc {
        tb.add("Metrics/AUC", auc, step);
    }
    if let Some(r) = &predictions.classes {
        tb.add("Metrics/Multiclass_Accuracy", r.accuracy, step);
        tb.add("Metrics/Macro_F1", r.macro_avg.f1, step);
    }
    Ok(())
}

/// The tables people read: notes, metrics, then classes, ensemble members, clusters and a
/// retrained model's comparison where there are any.
fn print(
    header: &str,
    notices: &[String],
    assessment: &Assessment,
    predictions: &Predictions,
    (feedback, ck): (&Option<Comparison>, &Checkpoint),
) {
    for n in notices {
        println!("note: {n}");
    }
    println!("{header}");
    if let Some(r) = &predictions.classes {
        println!("{}\n", class_table(r));
        println!("normal vs anomaly view:");
    }
    println!("{}", metrics_table(assessment));
    if let Some(r) = &predictions.ensemble {
        println!("\n{}", ensemble_table(r));
    }
    if let Some(r) = &predictions.clusters {
        println!("\n{}", cluster_table(r));
    }
    if let (Some(c), Some(r)) = (feedback, &ck.feedback) {
        println!(
            "\nretrained from {} with {} judged rows of {}:\n{}",
            r.parent.display(),
            r.rows,
            r.file.display(),
            c.table()
        );
    }
}

/// A model retrained from feedback: itself and the model it started from, on the judged rows
/// and the held-out test rows. `Err` says why that comparison cannot be made.
fn side_by_side(
    ck: &Checkpoint,
    device: &burn::tensor::Device,
) -> Result<std::result::Result<Option<Comparison>, String>> {
    let Some(r) = &ck.feedback else {
        return Ok(Ok(None));
    };
    for (what, path) in [("old model", &r.parent), ("feedback file", &r.file)] {
        if !path.exists() {
            return Ok(Err(format!(
                "retrained from feedback, but the {what} {} is gone: no side-by-side comparison",
                path.display()
            )));
        }
    }
    let parent = Checkpoint::load(&r.parent)?;
    let judged = feedback::read(&r.file, &ck.preprocessor, &ck.config.data)?;
    Ok(Ok(Some(Comparison::compute(&parent, ck, &judged, device)?)))
}
