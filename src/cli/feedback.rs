use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use csv::ByteRecord;

use crate::bail_input;
use crate::checkpoint::Checkpoint;
use crate::cli::{CheckpointArgs, ConfigArgs};
use crate::data::feedback::{Entry, Verdict, append, summarize};
use crate::data::read::{column_name, open_maybe_gz};
use crate::data::records::encode_records;
use crate::device;
use crate::log::utc_rfc3339;
use crate::score::Scorer;

#[derive(Args, Debug)]
pub struct FeedbackArgs {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Record an analyst's verdict on one row of a flow file.
    Add(AddArgs),
    /// Summarise a feedback file: rows per verdict and per model, first and last time.
    List(ListArgs),
}

#[derive(Args, Debug)]
pub struct AddArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    #[command(flatten)]
    pub checkpoint: CheckpointArgs,
    /// The flow file holding the row.
    #[arg(long, value_name = "CSV")]
    pub data: PathBuf,
    /// The row, numbered from 1 as `predict` numbers them.
    #[arg(long, value_name = "N")]
    pub row: usize,
    #[arg(long, value_enum)]
    pub verdict: Verdict,
    /// The feedback file to append to.
    #[arg(long, value_name = "CSV", default_value = "feedback/feedback.csv")]
    pub file: PathBuf,
    /// The model's name in the file (default: the checkpoint's run name).
    #[arg(long)]
    pub model: Option<String>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long, value_name = "CSV", default_value = "feedback/feedback.csv")]
    pub file: PathBuf,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: FeedbackArgs) -> Result<()> {
    match args.action {
        Action::Add(a) => add(a),
        Action::List(a) => list(a),
    }
}

/// Row `n` (1-based, after the header) of a flow file, with the file's column names.
fn read_row(args: &AddArgs, ck: &Checkpoint) -> Result<(Vec<String>, ByteRecord)> {
    let data = &ck.config.data;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(open_maybe_gz(&args.data)?);
    let mut records = reader.byte_records();
    let mut next = || records.next().transpose().map_err(anyhow::Error::from);
    let names = if data.header {
        match next()? {
            Some(h) => h.iter().map(column_name).collect(),
            None => bail_input!("{}: the file is empty", args.data.display()),
        }
    } else {
        data.columns.iter().map(|c| c.trim().to_string()).collect()
    };
    for seen in 1.. {
        match next()? {
            Some(r) if seen == args.row => return Ok((names, r)),
            Some(_) => {}
            None => bail_input!(
                "--row {}: {} has {} rows",
                args.row,
                args.data.display(),
                seen - 1
            ),
        }
    }
    unreachable!("the loop returns")
}

fn add(args: AddArgs) -> Result<()> {
    if args.row == 0 {
        bail_input!("--row: rows are numbered from 1");
    }
    let ck = args.checkpoint.load()?;
    let local = args.common.load()?;
    let device = device::select(&local.device)?.device;
    let scorer = Scorer::from_checkpoint(&ck, &device)?;
    let (names, record) = read_row(&args, &ck)?;
    let context = || format!("{}, row {}", args.data.display(), args.row);
    let (x, _) = encode_records(
        &scorer.pre,
        &ck.config.data,
        &names,
        std::slice::from_ref(&record),
        false,
    )
    .with_context(context)?;
    let score = scorer.score(&x)?.anomaly[0];
    let columns: Vec<String> = scorer.pre.columns.iter().map(|c| c.name.clone()).collect();
    let values = columns
        .iter()
        .map(|c| {
            let at = names
                .iter()
                .position(|n| n == c)
                .expect("encoding found it");
            String::from_utf8_lossy(&record[at]).trim().to_string()
        })
        .collect();
    let entry = Entry {
        columns,
        values,
        score,
        verdict: args.verdict,
        model: args.model.clone().unwrap_or_else(|| ck.run_name.clone()),
        time: utc_rfc3339(),
    };
    let rows = append(&args.file, &entry)?;
    if !args.common.quiet {
        println!(
            "row {} of {} (score {score:.4}, {}) recorded as {} in {} ({rows} rows)",
            args.row,
            args.data.display(),
            if score >= scorer.threshold {
                "flagged"
            } else {
                "not flagged"
            },
            args.verdict.as_str(),
            args.file.display()
        );
    }
    Ok(())
}

fn list(args: ListArgs) -> Result<()> {
    let s = summarize(&args.file)?;
    if args.json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(());
    }
    println!("{}: {} rows", args.file.display(), s.rows);
    for (v, n) in &s.verdicts {
        println!("  {v:<16} {n}");
    }
    println!("models:");
    for (m, n) in &s.models {
        println!("  {m:<16} {n}");
    }
    if let (Some(first), Some(last)) = (&s.first, &s.last) {
        println!("from {first} to {last}");
    }
    Ok(())
}
