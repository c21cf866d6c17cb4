//! `anomaly drift`: do new rows still look like the training rows? Reads them as `predict`
//! does (a file, stdin or a capture), scores them, and compares every input column and the
//! score with the checkpoint's training profile.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::cli::predict::InputArgs;
use crate::cli::{CheckpointArgs, ConfigArgs};
use crate::device;
use crate::error::bad_input;
use crate::eval::drift::{Drift, Level};
use crate::report::drift;
use crate::score::Scorer;
use crate::stream::{Format, Options};

#[derive(Args, Debug)]
pub struct DriftArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    #[command(flatten)]
    pub checkpoint: CheckpointArgs,
    /// The new rows.
    #[command(flatten)]
    pub input: InputArgs,
    /// The report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also write drift.json, report.html and a chart per drifted column here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Exit 1 when the drift reaches this level (for a scheduler that retrains).
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub fail_on: Option<FailOn>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FailOn {
    Moderate,
    Significant,
}

pub fn run(args: DriftArgs) -> Result<()> {
    let ck = args.checkpoint.load()?;
    let local = args.common.load()?;
    let selected = device::select(&local.device)?;
    let scorer = Scorer::from_checkpoint(&ck, &selected.device)?;
    let pre = &ck.preprocessor;
    let train = (
        &ck.train_score_quantiles[..],
        ck.threshold,
        ck.data.train_rows,
    );
    let mut counts = Drift::new(pre, train.0, train.1, train.2).ok_or_else(|| {
        bad_input(format!(
            "checkpoint {}: it keeps no profile of its training rows (written before drift \
             and explanations existed); train it again",
            args.checkpoint.path.display()
        ))
    })?;
    let input = args.input.open(&ck)?;
    let opts = Options {
        keep: Vec::new(),
        format: Format::Csv,
        batch_rows: 4096,
        flush_after: std::time::Duration::from_millis(200),
        explain: 0,
        alerts: None,
    };
    let sink = Box::new(std::io::sink());
    let data = &ck.config.data;
    let (result, captured) = input.score(&scorer, data, sink, &opts, Some(&mut counts), true);
    let summary = result?;
    captured?;
    if summary.rows == 0 {
        return Err(bad_input(
            "no rows to compare: the input holds none".to_string(),
        ));
    }
    let report = counts.report();
    let source = args.input.name();
    if let Some(out) = &args.out {
        let header = [
            (
                "checkpoint".into(),
                args.checkpoint.path.display().to_string(),
            ),
            ("new rows".into(), format!("{} ({source})", report.rows)),
            ("training rows".into(), report.training_rows.to_string()),
        ];
        drift::write(out, &report, &header, &serde_yaml::to_string(&ck.config)?)?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else if !args.common.quiet {
        println!(
            "{} on {source}: {}",
            args.checkpoint.path.display(),
            drift::verdict(&report)
        );
        println!("{}", drift::table(&report));
        if summary.failed > 0 {
            println!(
                "note: {} rows could not be encoded and were left out",
                summary.failed
            );
        }
    }
    let limit = args.fail_on.map(|f| match f {
        FailOn::Moderate => Level::Moderate,
        FailOn::Significant => Level::Significant,
    });
    if limit.is_some_and(|l| report.level >= l) {
        anyhow::bail!(
            "drift is {} (--fail-on {})",
            report.level.name(),
            limit.map_or("", |l| l.name())
        );
    }
    Ok(())
}
