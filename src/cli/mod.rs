//! The command line: one clap tree, one thin module per subcommand.

mod alerts;
mod assess;
mod augment;
mod cv;
mod drift;
mod explain;
mod feedback;
mod flows;
mod generate;
mod info;
mod inspect;
mod predict;
mod serve;
mod test;
mod train;
mod tune;
mod upload;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::checkpoint::Checkpoint;
use crate::config::Config;
use crate::device::Backend;

#[derive(Parser, Debug)]
#[command(
    name = "anomaly",
    version,
    about = "Train, test and publish network-traffic anomaly detectors from flow CSVs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a detector from the config's data; writes best.mpk and last.mpk.
    Train(train::TrainArgs),
    /// k-fold cross-validation on the rows outside the test split.
    Cv(cv::CvArgs),
    /// Hyperparameter search on validation rows: TPE, random or grid, with pruning.
    Tune(tune::TuneArgs),
    /// Report on a checkpoint (or a cv run): figures, intervals, baseline, HTML.
    Assess(assess::AssessArgs),
    /// Write Gaussian-noise augmented training data with class resampling.
    Augment(augment::AugmentArgs),
    /// Check the config's data: types, missing cells, duplicates, labels, likely leaks.
    Inspect(inspect::InspectArgs),
    /// Evaluate a checkpoint on its held-out test rows or on another CSV.
    Test(test::TestArgs),
    /// Whether new rows still look like the training rows: per column, the score, alarms.
    Drift(drift::DriftArgs),
    /// Why the detector flags what it flags: column importance and per-row reasons.
    Explain(explain::ExplainArgs),
    /// Record analysts' verdicts on alarms, or summarise them (for `train --feedback`).
    Feedback(feedback::FeedbackArgs),
    /// Score new traffic (a file or a stream on stdin): one result row per input row.
    Predict(Box<predict::PredictArgs>),
    /// Serve checkpoints over HTTP: a REST API, Prometheus metrics and a dashboard.
    Serve(serve::ServeArgs),
    /// Publish a checkpoint to a Hugging Face Hub model repository.
    Upload(upload::UploadArgs),
    /// Versions, compiled backends and the GPU adapters this machine offers.
    Info(info::InfoArgs),
    /// Write synthetic embedded-device traffic (the project's sample data).
    Generate(generate::GenerateArgs),
    /// Turn a pcap/pcapng capture into CIC-IDS2017 flow features, each flow as it ends.
    Flows(flows::FlowsArgs),
}

/// `--checkpoint`, for the commands that use one trained model (`test`, `predict`, `explain`,
/// `feedback add`).
#[derive(Args, Debug, Clone)]
pub struct CheckpointArgs {
    /// The checkpoint (e.g. checkpoints/best.mpk): it carries the preprocessing, the detector
    /// and its decision threshold.
    #[arg(long = "checkpoint", value_name = "CHECKPOINT")]
    pub path: PathBuf,
}

impl CheckpointArgs {
    pub fn load(&self) -> Result<Checkpoint> {
        Checkpoint::load(&self.path)
    }
}

/// Options every config-driven command shares.
#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// YAML config; without it, ./config.yaml if present, else the built-in defaults.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Override any config key, e.g. `--set training.epochs=20` (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Print nothing but errors (and `--json` output).
    #[arg(long, short)]
    pub quiet: bool,
    /// Where to compute (overrides device.backend): auto (CUDA if built in, else the first GPU,
    /// else the CPU), cpu, gpu (wgpu) or cuda (a build with the `cuda` feature).
    #[arg(long, value_enum)]
    pub device: Option<DeviceArg>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum DeviceArg {
    Auto,
    Cpu,
    Gpu,
    Cuda,
}

impl ConfigArgs {
    pub fn load(&self) -> Result<Config> {
        let default = Path::new("config.yaml");
        let path = match &self.config {
            Some(p) => Some(p.as_path()),
            None if default.exists() => Some(default),
            None => None,
        };
        let mut config = Config::load(path, &self.overrides)?;
        self.apply_device(&mut config);
        Ok(config)
    }

    /// `--device` wins over the config's `device.backend` (also a checkpoint's stored one).
    pub fn apply_device(&self, config: &mut Config) {
        if let Some(d) = self.device {
            config.device.backend = match d {
                DeviceArg::Auto => Backend::Auto,
                DeviceArg::Cpu => Backend::Cpu,
                DeviceArg::Gpu => Backend::Gpu,
                DeviceArg::Cuda => Backend::Cuda,
            };
        }
    }
}

/// Where a command writes its records: standard output, or a file written under a temporary
/// name beside it and renamed into place when the command is done, so the name never holds a
/// half-written file.
pub struct OutputFile {
    /// (the file, its temporary name)
    path: Option<(PathBuf, PathBuf)>,
}

impl OutputFile {
    pub fn create(path: Option<&Path>) -> Result<OutputFile> {
        let path = path.map(|p| {
            let name = p
                .file_name()
                .map_or("out".into(), |n| n.to_string_lossy().into_owned());
            let tmp = p.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
            (p.to_path_buf(), tmp)
        });
        Ok(OutputFile { path })
    }

    /// The stream to write to (the temporary file, created now, or standard output).
    pub fn writer(&self) -> Result<Box<dyn std::io::Write + Send>> {
        Ok(match &self.path {
            Some((_, tmp)) => {
                let file = std::fs::File::create(tmp).map_err(|e| {
                    crate::error::bad_input(format!("cannot write {}: {e}", tmp.display()))
                })?;
                Box::new(std::io::BufWriter::new(file))
            }
            None => Box::new(std::io::stdout()),
        })
    }

    /// Renames the file into place (`keep`), or removes what was written.
    pub fn finish(self, keep: bool) -> Result<()> {
        let Some((path, tmp)) = self.path else {
            return Ok(());
        };
        if keep {
            std::fs::rename(&tmp, &path)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
        } else {
            let _ = std::fs::remove_file(tmp);
            Ok(())
        }
    }
}

/// `--bootstrap N` of `test` and `assess`: intervals need at least one resample.
pub fn check_bootstrap(resamples: usize) -> Result<()> {
    if resamples == 0 {
        crate::bail_input!("--bootstrap 0: expected at least 1 resample");
    }
    Ok(())
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train::run(args),
        Command::Test(args) => test::run(args),
        Command::Predict(args) => predict::run(*args),
        Command::Explain(args) => explain::run(args),
        Command::Drift(args) => drift::run(args),
        Command::Feedback(args) => feedback::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Cv(args) => cv::run(args),
        Command::Tune(args) => tune::run(args),
        Command::Augment(args) => augment::run(args),
        Command::Assess(args) => assess::run(args),
        Command::Upload(args) => upload::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Flows(args) => flows::run(args),
        Command::Info(args) => info::run(args),
        Command::Inspect(args) => inspect::run(args),
    }
}
