use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::bail_input;
use crate::cli::{CheckpointArgs, ConfigArgs};
use crate::data::{explanation_rows, write_atomic};
use crate::device;
use crate::explain::{Explainer, Flagged, Global, Importance, Measure};
use crate::report::explain as show;
use crate::report::figures::{HEIGHT, WIDTH};
use crate::score::Scorer;

#[derive(Args, Debug)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    #[command(flatten)]
    pub checkpoint: CheckpointArgs,
    /// Rows to explain, labelled or not (default: the training run's held-out test rows).
    #[arg(long, value_name = "CSV")]
    pub data: Option<PathBuf>,
    /// Shuffles per column for the permutation importance.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub repeats: usize,
    /// Rows the permutation importance uses at most (a seeded sample beyond).
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub max_rows: usize,
    /// Reasons given per flagged row.
    #[arg(long, default_value_t = 3, value_name = "K")]
    pub top: usize,
    /// Seed of the shuffles (default: the run's seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print one JSON object instead of the tables.
    #[arg(long)]
    pub json: bool,
    /// Also write importance.{json,csv,svg,png} and reasons.csv to this folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// What `--json` prints and `importance.json` holds.
#[derive(serde::Serialize)]
struct Report<'a> {
    checkpoint: &'a std::path::Path,
    data: &'a str,
    rows: usize,
    labelled: bool,
    /// The rows the permutation importance used.
    importance_rows: usize,
    repeats: usize,
    measure: Measure,
    importance: &'a [Importance],
    threshold: f32,
    flagged: &'a [Flagged],
}

pub fn run(args: ExplainArgs) -> Result<()> {
    if args.repeats == 0 || args.max_rows == 0 {
        bail_input!("--repeats and --max-rows: expected at least 1");
    }
    let ck = args.checkpoint.load()?;
    let local = args.common.load()?;
    let device = device::select(&local.device)?.device;
    let scorer = Scorer::from_checkpoint(&ck, &device)?;
    let explainer = Explainer::new(&scorer)?;
    let (ds, raw, labelled, rows) =
        explanation_rows(&ck.config, &ck.preprocessor, args.data.as_deref())?;
    let global = Global {
        repeats: args.repeats,
        max_rows: args.max_rows,
        seed: args.seed.unwrap_or(ck.config.training.seed),
    };
    let (measure, ranked, used) = explainer.importance(&ds, &global)?;
    let mut flagged = explainer.flagged(&ds, &raw, args.top)?;
    // Numbered as the file's data rows, as `predict` numbers them.
    flagged.iter_mut().for_each(|f| f.row = rows[f.row - 1] + 1);
    let source = args.data.as_ref().map_or_else(
        || format!("held-out test rows of {}", ck.config.data.path.display()),
        |p| p.display().to_string(),
    );
    let report = Report {
        checkpoint: &args.checkpoint.path,
        data: &source,
        rows: ds.len(),
        labelled,
        importance_rows: used,
        repeats: args.repeats,
        measure,
        importance: &ranked,
        threshold: scorer.threshold,
        flagged: &flagged,
    };
    if let Some(dir) = &args.out {
        let figure = show::figure(measure, &ranked)?;
        write_atomic(
            &dir.join("importance.json"),
            serde_json::to_string_pretty(&report)? + "\n",
        )?;
        write_atomic(&dir.join("importance.csv"), show::importance_csv(&ranked)?)?;
        write_atomic(&dir.join("importance.svg"), &figure.svg)?;
        let mut png = std::io::Cursor::new(Vec::new());
        image::write_buffer_with_format(
            &mut png,
            &figure.rgb,
            WIDTH,
            HEIGHT,
            image::ColorType::Rgb8,
            image::ImageFormat::Png,
        )?;
        write_atomic(&dir.join("importance.png"), png.into_inner())?;
        write_atomic(&dir.join("reasons.csv"), show::reasons_csv(&flagged)?)?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    if args.common.quiet {
        return Ok(());
    }
    println!(
        "{} on {source}: permutation importance over {used} rows, {} repeats",
        args.checkpoint.path.display(),
        args.repeats
    );
    println!("{}", show::table(measure, &ranked));
    println!(
        "\n{} of {} rows flagged (threshold {:.4}); the first 10 and why:",
        flagged.len(),
        ds.len(),
        scorer.threshold
    );
    for f in flagged.iter().take(10) {
        println!("row {} (score {:.4})", f.row, f.score);
        for r in &f.reasons {
            println!("    {r}");
        }
    }
    if let Some(dir) = &args.out {
        println!(
            "wrote importance.json, importance.csv, importance.svg, importance.png and reasons.csv to {}",
            dir.display()
        );
    }
    Ok(())
}
