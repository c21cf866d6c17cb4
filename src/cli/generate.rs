use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use crate::bail_input;
use crate::cli::OutputFile;
use crate::data::generate::{write_sample, write_sequences};
use crate::flows::traffic;

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
    /// Write a synthetic capture instead (pcapng when the name ends in .pcapng): TCP, UDP and
    /// ICMP sessions, VLAN-tagged and IPv6 ones among them, with a SYN port scan, brute-force
    /// logins and a UDP flood; each flow's label goes to <name>.labels.csv (`Flow ID,Label`).
    #[arg(long, value_name = "FILE", conflicts_with = "sequences")]
    pub pcap: Option<PathBuf>,
    /// With --pcap: how many sessions (flows).
    #[arg(long, default_value_t = 2000)]
    pub flows: usize,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    if let Some(path) = &args.pcap {
        return capture(path, args.flows, args.seed);
    }
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

/// `generate --pcap`: the capture and its labels, each written whole or not at all.
fn capture(path: &Path, flows: usize, seed: u64) -> Result<()> {
    if flows == 0 {
        bail_input!("--flows: expected at least 1");
    }
    let labels = path.with_extension("labels.csv");
    let pcapng = path.extension().is_some_and(|e| e == "pcapng");
    let (capture_out, labels_out) = (
        OutputFile::create(Some(path))?,
        OutputFile::create(Some(&labels))?,
    );
    let written = traffic::write(
        capture_out.writer()?,
        labels_out.writer()?,
        flows,
        seed,
        pcapng,
    );
    let ok = written.is_ok();
    capture_out.finish(ok)?;
    labels_out.finish(ok)?;
    let w = written?;
    println!(
        "wrote {} packets of {} flows ({} attacks) to {}, their labels to {}",
        w.packets,
        w.flows,
        w.attacks,
        path.display(),
        labels.display()
    );
    Ok(())
}
