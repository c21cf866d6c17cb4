use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::bail_input;
use crate::cli::ConfigArgs;
use crate::device;
use crate::log::default_run_name;
use crate::tune::prune::PrunerKind;
use crate::tune::sampler::SamplerKind;
use crate::tune::space::Space;
use crate::tune::{self, Metric, Search, Study, describe, report};

#[derive(Args, Debug)]
pub struct TuneArgs {
    /// The base config (`--config`, `--set`): what every trial starts from.
    #[command(flatten)]
    pub common: ConfigArgs,
    /// The search space: config keys mapped to domains (README, "Hyperparameter search").
    #[arg(long, value_name = "YAML")]
    pub space: Option<PathBuf>,
    /// How many trials (a grid stops at its size).
    #[arg(long, value_name = "N")]
    pub trials: Option<usize>,
    #[arg(long, value_enum, default_value = "tpe")]
    pub sampler: SamplerKind,
    #[arg(long, value_enum, default_value = "median")]
    pub pruner: PrunerKind,
    /// What the search maximises, on validation rows only.
    #[arg(long, value_enum, default_value = "roc_auc")]
    pub metric: Metric,
    /// Score each trial on K folds of the rows outside the test split (default: the config's
    /// validation split).
    #[arg(long, value_name = "K")]
    pub cv: Option<usize>,
    /// Trial K's settings and pruning use the results of trials 1 to K − N only, so they
    /// never depend on which trials ran at once; at most N run at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub lag: usize,
    /// Run N trials at once on this machine.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub jobs: usize,
    /// The search's folder (default runs/tune-<UTC time>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run trial K only (1-based), e.g. one task of a job array.
    #[arg(long, value_name = "K")]
    pub trial: Option<usize>,
    /// Collect the trials run so far: the ranked table, best.yaml, report.html, and the best
    /// configuration on the test rows.
    #[arg(long)]
    pub aggregate: bool,
    /// Continue a search cut short, without repeating its finished trials.
    #[arg(long)]
    pub resume: bool,
}

pub fn run(args: TuneArgs) -> Result<()> {
    let continuing = args.trial.is_some() || args.aggregate || args.resume;
    let out = match &args.out {
        Some(out) => out.clone(),
        None if continuing => {
            bail_input!("--trial, --aggregate and --resume need --out, the search's folder")
        }
        None => PathBuf::from("runs").join(format!("tune-{}", default_run_name())),
    };
    let new = match &args.space {
        Some(path) => Some(study(&args, path)?),
        None if out.join("study.json").exists() => None,
        None => bail_input!("--space is needed to start a search in {}", out.display()),
    };
    if !continuing && out.join("trials").exists() {
        bail_input!(
            "{} already holds a search: --resume to continue it, or choose another --out",
            out.display()
        );
    }
    let search = Search::open(&out, new)?;
    let mut local = search.base.clone();
    args.common.apply_device(&mut local);
    let device = device::select(&local.device)?.device;
    let quiet = args.common.quiet;
    let of = search.trial_count();
    let metric = search.study.metric;
    if let Some(k) = args.trial {
        let r = search.run_trial(k, &device)?;
        if !quiet {
            println!("{}", describe(&r, metric, of));
        }
        if !args.aggregate {
            return Ok(());
        }
    } else if !args.aggregate || args.resume {
        if !quiet {
            println!(
                "search in {}: {of} trials, {:?} sampler, {:?} pruner, validation {} on {}",
                out.display(),
                search.study.sampler,
                search.study.pruner,
                metric.name(),
                search
                    .study
                    .cv
                    .map_or("the validation split".into(), |k| format!("{k} folds"))
            );
        }
        let child_args: Vec<String> = args
            .common
            .device
            .and_then(|d| d.to_possible_value())
            .map(|v| vec!["--device".into(), v.get_name().into()])
            .unwrap_or_default();
        let started = std::time::Instant::now();
        tune::run_all(&search, args.jobs, &device, &child_args, &mut |r, took| {
            if !quiet {
                println!("{} · {:.1} s", describe(r, metric, of), took.as_secs_f64());
            }
        })?;
        if !quiet {
            println!("search: {:.1} s", started.elapsed().as_secs_f64());
        }
    }
    aggregate(&search, &device, quiet)
}

/// The study the flags describe.
fn study(args: &TuneArgs, space: &std::path::Path) -> Result<Study> {
    let base = args.common.load()?;
    let space = Space::read(space, &base)?;
    if let Some(k) = args.cv
        && k < 2
    {
        bail_input!("--cv {k}: expected at least 2 folds");
    }
    if args.lag == 0 || args.jobs == 0 || args.trials == Some(0) {
        bail_input!("--trials, --lag and --jobs: expected at least 1");
    }
    Ok(Study {
        config: base.to_yaml(),
        space: space.to_yaml(),
        sampler: args.sampler,
        pruner: args.pruner,
        metric: args.metric,
        cv: args.cv,
        trials: args.trials.unwrap_or(50),
        lag: args.lag,
        seed: base.training.seed,
    })
}

fn aggregate(search: &Search, device: &burn::tensor::Device, quiet: bool) -> Result<()> {
    let results = search.results()?;
    let missing = search.trial_count() - results.len();
    let ranked = report::ranked(results);
    let best = ranked.first().filter(|r| r.state == tune::State::Finished);
    let started = std::time::Instant::now();
    let test = match best {
        Some(best) => Some(report::evaluate_best(search, best, device, true)?),
        None => None,
    };
    let took = started.elapsed().as_secs_f64();
    let written = report::write(search, &ranked, test.as_ref())?;
    if quiet {
        return Ok(());
    }
    println!("\nbest trials (validation {}):", search.study.metric.name());
    print!("{}", report::table_text(search, &ranked, 10));
    if missing > 0 {
        println!("({missing} trials have no result yet)");
    }
    if let Some(t) = test {
        let m = &t.metrics;
        println!(
            "\nbest configuration (trial {}) on the test rows, read once after the search: \
             accuracy {:.4}, f1 {:.4}, roc_auc {}, pr_auc {} ({} rows; trained and tested in \
             {took:.1} s)",
            t.trial,
            m.accuracy,
            m.f1,
            m.roc_auc.map_or("n/a".into(), |v| format!("{v:.4}")),
            m.pr_auc.map_or("n/a".into(), |v| format!("{v:.4}")),
            m.rows
        );
    }
    println!(
        "wrote {}, {} and {}",
        written.table.display(),
        written.best_yaml.display(),
        written.html.display()
    );
    Ok(())
}
