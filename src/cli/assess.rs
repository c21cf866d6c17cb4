use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::bail_input;
use crate::checkpoint::Checkpoint;
use crate::cli::{ConfigArgs, check_bootstrap};
use crate::data::folds::folds_path;
use crate::device;
use crate::report::assess::{assess_checkpoint, assess_folds};

#[derive(Args, Debug)]
pub struct AssessArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// The checkpoint to assess on its train, validation and test rows.
    #[arg(long, value_name = "CHECKPOINT")]
    pub checkpoint: Option<PathBuf>,
    /// Assess every fold checkpoint of the cv run in checkpoint.save_dir instead (the default
    /// when no --checkpoint is given and that folder holds a cv run).
    #[arg(long)]
    pub use_folds: bool,
    /// Output folder (default: reports/<run name>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Bootstrap resamples for the 95% intervals.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub bootstrap: usize,
}

pub fn run(args: AssessArgs) -> Result<()> {
    check_bootstrap(args.bootstrap)?;
    let config = args.common.load()?;
    let device = device::select(&config.device)?.device;
    let written = match (&args.checkpoint, args.use_folds) {
        (Some(path), false) => {
            let ck = Checkpoint::load(path)?;
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("reports").join(&ck.run_name));
            assess_checkpoint(path, &ck, &out, args.bootstrap, &device)?
        }
        (Some(_), true) => bail_input!("--checkpoint and --use-folds: give one of them"),
        (None, _) => {
            if !args.use_folds && !folds_path(&config).exists() {
                bail_input!(
                    "nothing to assess: give --checkpoint, or run `anomaly cv` first ({} does not exist)",
                    folds_path(&config).display()
                );
            }
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("reports").join("cv"));
            assess_folds(&config, &out, args.bootstrap, &device)?
        }
    };
    if !args.common.quiet {
        for (set, verdict) in &written.verdicts {
            println!("{set}: {verdict}");
        }
        println!("wrote {}", written.dir.join("report.html").display());
    }
    Ok(())
}
