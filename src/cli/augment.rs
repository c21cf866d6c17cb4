use std::io::Read;

use anyhow::{Context, Result};
use clap::Args;

use crate::bail_input;
use crate::cli::ConfigArgs;
use crate::config::ResampleStrategy;
use crate::data::augment::{self, ClassCounts, Outputs};
use crate::data::read::{open_maybe_gz, sha256_file};
use crate::data::{read_labeled, split_rows};

#[derive(Args, Debug)]
pub struct AugmentArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Noise standard deviation as a fraction of each column's (overrides augmentation.noise_scale).
    #[arg(long, allow_negative_numbers = true)]
    pub noise_scale: Option<f64>,
    /// Share of anomalies in the augmented training rows (overrides augmentation.target_positive_ratio).
    #[arg(long, allow_negative_numbers = true)]
    pub target_positive_ratio: Option<f64>,
    /// oversample (noised copies of anomalies) or undersample (drop normal rows).
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum StrategyArg {
    Oversample,
    Undersample,
}

pub fn run(args: AugmentArgs) -> Result<()> {
    let mut config = args.common.load()?;
    let a = &mut config.augmentation;
    if let Some(s) = args.noise_scale {
        if !(s.is_finite() && s >= 0.0) {
            bail_input!("--noise-scale {s}: expected a number >= 0");
        }
        a.noise_scale = s;
    }
    if let Some(r) = args.target_positive_ratio {
        if !(r > 0.0 && r < 1.0) {
            bail_input!("--target-positive-ratio {r}: expected a value in (0, 1)");
        }
        a.target_positive_ratio = r;
    }
    if let Some(s) = args.strategy {
        a.strategy = match s {
            StrategyArg::Oversample => ResampleStrategy::Oversample,
            StrategyArg::Undersample => ResampleStrategy::Undersample,
        };
    }
    let cfg = &config.data;
    let data = read_labeled(&cfg.path, cfg, config.task, None)?;
    // The test rows are set aside exactly as `train` sets them aside, before anything else.
    let split = split_rows(&data, cfg);
    let plan = augment::plan(
        &data.table,
        &data.y,
        &split.train,
        &config.augmentation,
        cfg.random_state,
    )?;
    let out = Outputs::in_dir(&config.augmentation.output_dir);
    augment::write_files(cfg, &data.table, &plan, &split.val, &split.test, &out)?;
    if let Some(test_path) = &cfg.test_path {
        // A separate test file is the held-out set: copied as it is (decompressed).
        let mut text = Vec::new();
        open_maybe_gz(test_path)?.read_to_end(&mut text)?;
        std::fs::write(&out.test, text)
            .with_context(|| format!("writing {}", out.test.display()))?;
    }

    let before = ClassCounts::of(split.train.iter().copied(), &data.y);
    let after = plan.counts_after(&data.y);
    let noised: Vec<&str> = plan
        .noised
        .iter()
        .map(|&c| data.table.columns[c].name.as_str())
        .collect();
    let manifest = serde_json::json!({
        "input": cfg.path,
        "input_sha256": sha256_file(&cfg.path)?,
        "seed": cfg.random_state,
        "noise_scale": config.augmentation.noise_scale,
        "target_positive_ratio": config.augmentation.target_positive_ratio,
        "strategy": config.augmentation.strategy,
        "clip": config.augmentation.clip,
        "noised_columns": noised,
        "train_before": before,
        "train_after": after,
        "validation": ClassCounts::of(split.val.iter().copied(), &data.y),
        "test": if cfg.test_path.is_some() { None } else { Some(ClassCounts::of(split.test.iter().copied(), &data.y)) },
        "files": [&out.train, &out.val, &out.test],
    });
    let path = config.augmentation.output_dir.join("manifest.json");
    std::fs::write(&path, serde_json::to_string_pretty(&manifest)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    if !args.common.quiet {
        let ratio = |c: ClassCounts| c.anomalous as f64 / (c.normal + c.anomalous) as f64;
        println!(
            "training rows: {} normal / {} anomalous ({:.3}) → {} / {} ({:.3}); noised columns: {}",
            before.normal,
            before.anomalous,
            ratio(before),
            after.normal,
            after.anomalous,
            ratio(after),
            noised.join(", ")
        );
        println!(
            "wrote {}, {}, {} and {}",
            out.train.display(),
            out.val.display(),
            out.test.display(),
            path.display()
        );
    }
    Ok(())
}
