use anyhow::Result;
use clap::Args;

use crate::cli::ConfigArgs;
use crate::config::Config;
use crate::data::{read_labeled, read_training};
use crate::eval::inspect::DataCheck;
use crate::train::prepare::prepare_training;

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Print one JSON object instead of the report: `files` (the training file's check, then
    /// the test file's) and `select_features` (the ranked columns, when the config selects).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let config = args.common.load()?;
    check(&config, args.json)
}

/// Reads the config's training file (and test file) as `train` would and reports on each.
pub fn check(config: &Config, json: bool) -> Result<()> {
    let cfg = &config.data;
    let mut checks = Vec::new();
    checks.push(DataCheck::of(&read_training(config)?));
    if let Some(path) = &cfg.test_path {
        checks.push(DataCheck::of(&read_labeled(path, cfg, config.task, None)?));
    }
    // The columns `data.select_features` keeps, ranked, as `train` will choose them.
    let selection = match cfg.select_features {
        Some(_) => prepare_training(config)?.selection,
        None => None,
    };
    if json {
        let out = serde_json::json!({"files": checks, "select_features": selection});
        println!("{out}");
        return Ok(());
    }
    for c in &checks {
        println!("{}", c.table());
    }
    if let Some(s) = selection {
        println!("{s}");
    }
    Ok(())
}
