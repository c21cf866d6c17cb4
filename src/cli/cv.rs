use anyhow::Result;
use clap::Args;

use crate::bail_input;
use crate::cli::ConfigArgs;
use crate::data::folds::{FoldPlan, folds_path};
use crate::device;
use crate::log::{RunLog, default_run_name, run_dir};
use crate::train::cv::{self, finished_fold};

#[derive(Args, Debug)]
pub struct CvArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Number of folds (overrides cross_validation.n_splits).
    #[arg(long)]
    pub folds: Option<usize>,
    /// Run this fold only (1-based), e.g. one job of a cluster job array.
    #[arg(long, value_name = "K")]
    pub fold: Option<usize>,
    /// Merge the per-fold results already on disk into the summary (no training).
    #[arg(long)]
    pub aggregate: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: CvArgs) -> Result<()> {
    let mut config = args.common.load()?;
    if let Some(k) = args.folds {
        if k < 2 {
            bail_input!("--folds {k}: expected at least 2");
        }
        config.cross_validation.n_splits = k;
    }
    let n = config.cross_validation.n_splits;
    if let Some(k) = args.fold
        && (k == 0 || k > n)
    {
        bail_input!("--fold {k}: expected a fold between 1 and {n}");
    }
    let quiet = args.common.quiet || args.json;
    if !(args.aggregate && args.fold.is_none()) {
        // A rerun continues the recorded run (same folds, same TensorBoard run name).
        let recorded = std::fs::read_to_string(folds_path(&config))
            .ok()
            .and_then(|t| serde_json::from_str::<FoldPlan>(&t).ok())
            .map(|p| p.run_name);
        let run_name = recorded
            .or(config.logging.run_name.clone())
            .unwrap_or_else(default_run_name);
        let mut data = cv::plan_folds(&config, &run_name)?;
        data.plan = cv::record_plan(&config, &data.plan)?;
        config.save_resolved(&[
            &config.checkpoint.save_dir,
            &run_dir(&config.logging, &data.plan.run_name),
        ])?;
        let selected = device::select(&config.device)?;
        let (device, device_note) = (selected.device, selected.note);
        let selected: Vec<usize> = match args.fold {
            Some(k) => vec![k],
            None => (1..=n).collect(),
        };
        for k in selected {
            let mut log = RunLog::open(
                &config.logging,
                &format!("{}/fold_{k}", data.plan.run_name),
                config.training.epochs,
                quiet,
            )?;
            if let Some(done) = finished_fold(&config, k)? {
                log.say(&format!(
                    "fold {k}/{n}: already done (best epoch {}), skipped",
                    done.best_epoch
                ));
                continue;
            }
            log.say(&format!(
                "fold {k}/{n} of run {} on {device_note}: {} validation rows",
                data.plan.run_name,
                data.folds[k - 1].len()
            ));
            let r = cv::run_fold(&config, &data, k, &device, &mut log)?;
            log.say(&format!(
                "fold {k}/{n}: accuracy {:.4}, f1 {:.4}, roc_auc {}",
                r.metrics.accuracy,
                r.metrics.f1,
                r.metrics
                    .roc_auc
                    .map_or("n/a".into(), |a| format!("{a:.4}"))
            ));
        }
        if args.fold.is_some() && !args.aggregate {
            return Ok(());
        }
        let summary = cv::aggregate(&config, n)?;
        if config.cross_validation.final_model {
            let mut log = RunLog::open(
                &config.logging,
                &format!("{}/final", data.plan.run_name),
                config.training.epochs,
                quiet,
            )?;
            let path = cv::final_model(&config, &data, &summary, &device, &mut log)?;
            log.say(&format!(
                "final model ({} epochs) written to {}",
                summary.mean_best_epoch.round(),
                path.display()
            ));
        }
        return print(&summary, &config, args.json);
    }
    let summary = cv::aggregate(&config, n)?;
    print(&summary, &config, args.json)
}

fn print(
    summary: &crate::eval::summary::Summary,
    config: &crate::config::Config,
    json: bool,
) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(summary)?);
    } else {
        print!("{}", summary.table());
        println!(
            "wrote {} and cv_summary.csv",
            config.checkpoint.save_dir.join("cv_summary.json").display()
        );
    }
    Ok(())
}
