use anyhow::Result;
use clap::Args;

use crate::cli::ConfigArgs;
use crate::config::Config;
use crate::data::inspect::DataCheck;
use crate::data::{prepare_training, read_labeled, read_training};

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Print one JSON object instead of the report.
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
    if json {
        println!("{}", serde_json::to_string(&checks)?);
    } else {
        for c in &checks {
            println!("{}", c.table());
        }
        // The columns `data.select_features` keeps, ranked, as `train` will choose them.
        if cfg.select_features.is_some() {
            let prepared = prepare_training(config)?;
            let chosen = prepared.notices.iter();
            for n in chosen.filter(|n| n.starts_with("data.select_features")) {
                println!("{n}");
            }
        }
    }
    Ok(())
}
