use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::bail_input;
use crate::data::generate::{write_sample, write_sequences};

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
    /// Time-ordered flows of several hosts (`timestamp`, `src_host`) with attacks that only
    /// their order and timing give away: beacons, slow port scans, brute-force runs (for
    /// `model.kind: cnn_lstm` with `sequence.order_by: timestamp`, `group_by: src_host`).
    #[arg(long)]
    pub sequences: bool,
    /// With --sequences: how many hosts.
    #[arg(long, default_value_t = 20)]
    pub hosts: usize,
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
    if args.sequences {
        if args.hosts == 0 || args.hosts > args.rows {
            bail_input!(
                "--hosts: expected 1 to --rows ({}), got {}",
                args.rows,
                args.hosts
            );
        }
        write_sequences(
            &args.out,
            args.rows,
            args.hosts,
            args.seed,
            args.anomaly_ratio,
        )?;
    } else {
        write_sample(&args.out, args.rows, args.seed, args.anomaly_ratio)?;
    }
    println!("wrote {} rows to {}", args.rows, args.out.display());
    Ok(())
}
