use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::bail_input;
use crate::data::generate::write_sample;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[arg(long, default_value_t = 5000)]
    pub rows: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of anomalous rows.
    #[arg(long, default_value_t = 0.1)]
    pub anomaly_ratio: f64,
    #[arg(long, default_value = "data/sample.csv")]
    pub out: PathBuf,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    if args.rows == 0 {
        bail_input!("--rows: expected at least 1");
    }
    if !(args.anomaly_ratio > 0.0 && args.anomaly_ratio < 1.0) {
        bail_input!(
            "--anomaly-ratio: expected a value in (0, 1), got {}",
            args.anomaly_ratio
        );
    }
    write_sample(&args.out, args.rows, args.seed, args.anomaly_ratio)?;
    println!("wrote {} rows to {}", args.rows, args.out.display());
    Ok(())
}
