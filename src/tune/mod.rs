//! `anomaly tune`: hyperparameter search on validation data only. A search lives in one
//! folder: `study.json` (what is searched, how, with which seed), `folds.json` for `--cv`,
//! and `trials/K/` per trial (its config and, once finished, `result.json`). Trial K's
//! settings are a function of the seed, K and the results of trials 1 to K − `lag`, read back
//! from that folder; so a trial runs the same anywhere, as a job-array task (`--trial K`),
//! beside others (`--jobs N`), or after a restart (`--resume`).
//! The test rows are never read during the search: `--aggregate` evaluates the best
//! configuration on them, once.

pub mod prune;
pub mod report;
pub mod sampler;
pub mod space;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::bail_input;
use crate::config::Config;
use crate::data::folds::FoldPlan;
use crate::data::{Prepared, read_training, split_rows, write_atomic};
use crate::error::{bad_input, one_line};
use crate::eval::summary::FoldResult;
use crate::log::RunLog;
use crate::train::prepare::prepare_rows;
use crate::train::{self, Run, cv};
use prune::{Curve, PrunerKind, Report, Watch};
use sampler::{Past, SamplerKind};
use space::{Params, Space};

/// What a search maximises, on the validation rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    #[value(name = "roc_auc")]
    RocAuc,
    #[value(name = "pr_auc")]
    PrAuc,
    F1,
    /// The classes' mean F1 (multiclass), or the mean of the normal and anomalous F1.
    #[value(name = "macro_f1")]
    MacroF1,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::RocAuc => "roc_auc",
            Metric::PrAuc => "pr_auc",
            Metric::F1 => "f1",
            Metric::MacroF1 => "macro_f1",
        }
    }

    /// This metric of one part's result.
    pub fn of(self, r: &FoldResult) -> Option<f64> {
        let m = &r.metrics;
        match self {
            Metric::RocAuc => m.roc_auc,
            Metric::PrAuc => m.pr_auc,
            Metric::F1 => Some(m.f1),
            Metric::MacroF1 => Some(match &r.classes {
                Some(c) => c.macro_avg.f1,
                None => {
                    let c = &m.confusion;
                    let negative = 2.0 * c.tn as f64 / (2 * c.tn + c.fp + c.fn_).max(1) as f64;
                    (m.f1 + negative) / 2.0
                }
            }),
        }
    }
}

/// `study.json`: everything that decides a search's trials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Study {
    /// The base config, resolved.
    pub config: String,
    pub space: String,
    pub sampler: SamplerKind,
    pub pruner: PrunerKind,
    pub metric: Metric,
    /// Folds of the rows outside the test split; none: the validation split.
    pub cv: Option<usize>,
    pub trials: usize,
    /// Trial K sees the results of trials 1 to K − lag only: up to `lag` trials run at once.
    pub lag: usize,
    pub seed: u64,
}

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Finished,
    Pruned,
    Failed,
}

/// `trials/K/result.json`: the same bytes wherever and whenever trial K runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    pub trial: usize,
    pub params: Params,
    pub state: State,
    /// The metric's mean over the parts (finished trials).
    pub value: Option<f64>,
    pub parts: Vec<FoldResult>,
    pub reports: Vec<Report>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An open search: its study, the base config and space it names, and its folder.
pub struct Search {
    pub study: Study,
    pub base: Config,
    pub space: Space,
    pub out: PathBuf,
    /// `--sampler grid`: every combination, in the seeded order.
    grid: Vec<Params>,
}

impl Search {
    fn study_path(out: &Path) -> PathBuf {
        out.join("study.json")
    }

    /// Opens the search in `out`: `new` is recorded when the folder has none, else must
    /// describe the same search (only `trials` may grow).
    pub fn open(out: &Path, new: Option<Study>) -> Result<Search> {
        let path = Self::study_path(out);
        let stored = if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                serde_json::from_str::<Study>(&text)
                    .map_err(|e| bad_input(format!("{}: {e}", path.display())))?,
            )
        } else {
            None
        };
        let study = match (stored, new) {
            (None, None) => bail_input!(
                "{} holds no search: start one with --config and --space",
                out.display()
            ),
            (Some(old), Some(new)) => {
                let same = |s: &Study| Study {
                    trials: 0,
                    ..s.clone()
                };
                if same(&old) != same(&new) {
                    bail_input!(
                        "{} holds another search (config, space, sampler, pruner, metric, cv, \
                         lag or seed differ); continue it with --out {} alone, or choose \
                         another --out",
                        out.display(),
                        out.display()
                    );
                }
                new
            }
            (Some(old), None) => old,
            (None, Some(new)) => new,
        };
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        write_atomic(&path, serde_json::to_string_pretty(&study)?)?;
        let base = Config::from_yaml(&study.config, &[])
            .with_context(|| format!("the base config in {}", path.display()))?;
        let space = Space::parse(&study.space, &base)?;
        let grid = match study.sampler {
            SamplerKind::Grid => sampler::grid(&space, &base, study.seed)?,
            _ => Vec::new(),
        };
        let search = Search {
            study,
            base,
            space,
            out: out.to_path_buf(),
            grid,
        };
        if let Some(k) = search.study.cv {
            search.record_folds(k)?;
        }
        Ok(search)
    }

    /// A search over `space` that never runs (unit tests of what reads results).
    #[cfg(test)]
    pub fn for_tests(space: Space, base: Config) -> Search {
        Search {
            study: Study {
                config: base.to_yaml(),
                space: space.to_yaml(),
                sampler: SamplerKind::Random,
                pruner: PrunerKind::None,
                metric: Metric::RocAuc,
                cv: None,
                trials: 1,
                lag: 1,
                seed: 0,
            },
            base,
            space,
            out: PathBuf::new(),
            grid: Vec::new(),
        }
    }

    /// The number of trials: `trials`, or the grid's size when smaller.
    pub fn trial_count(&self) -> usize {
        match self.study.sampler {
            SamplerKind::Grid => self.study.trials.min(self.grid.len()),
            _ => self.study.trials,
        }
    }

    pub fn trial_dir(&self, k: usize) -> PathBuf {
        self.out.join("trials").join(k.to_string())
    }

    fn folds_path(&self) -> PathBuf {
        self.out.join("folds.json")
    }

    /// Writes `folds.json` the first time; every trial's folds are checked against it.
    fn record_folds(&self, k: usize) -> Result<()> {
        let path = self.folds_path();
        if path.exists() {
            return Ok(());
        }
        let plan = self.plan(&self.cv_config(&self.base, k))?.plan;
        write_atomic(&path, serde_json::to_string_pretty(&plan)?)
    }

    fn cv_config(&self, config: &Config, k: usize) -> Config {
        let mut c = config.clone();
        c.cross_validation.n_splits = k;
        c
    }

    fn plan(&self, config: &Config) -> Result<cv::CvData> {
        cv::plan_folds(config, "tune")
    }

    /// Trial `k`'s result, if it finished.
    pub fn result(&self, k: usize) -> Result<Option<TrialResult>> {
        let path = self.trial_dir(k).join("result.json");
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let r = serde_json::from_str(&text)
            .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
        Ok(Some(r))
    }

    /// The trials whose results trial `k` depends on: 1 to k − lag, when the sampler (TPE)
    /// or the pruner uses results at all. A window, not rounds: a long trial holds back only
    /// the trial `lag` after it, not everything after its round.
    pub fn depends_on(&self, k: usize) -> std::ops::Range<usize> {
        let uses = self.study.sampler == SamplerKind::Tpe || self.study.pruner != PrunerKind::None;
        if uses {
            1..k.saturating_sub(self.study.lag) + 1
        } else {
            1..1
        }
    }

    /// The results trial `k` depends on; an error names those not yet there.
    fn history(&self, k: usize) -> Result<Vec<TrialResult>> {
        let deps = self.depends_on(k);
        let mut out = Vec::new();
        let mut missing = Vec::new();
        for j in deps.clone() {
            match self.result(j)? {
                Some(r) => out.push(r),
                None => missing.push(j.to_string()),
            }
        }
        if !missing.is_empty() {
            bail_input!(
                "trial {k} is decided by the results of trials {}–{} (those at least --lag {} \
                 before it); trials {} have none yet: run them first",
                deps.start,
                deps.end - 1,
                self.study.lag,
                missing.join(", ")
            );
        }
        Ok(out)
    }

    /// Trial `k`'s settings, given `history`, the results of the trials it depends on. For
    /// TPE, the trials between (running beside it, as far as it knows) count as pending.
    fn params(&self, k: usize, history: &[TrialResult]) -> Params {
        let mut rng = sampler::trial_rng(self.study.seed, k);
        match self.study.sampler {
            SamplerKind::Grid => self.grid[k - 1].clone(),
            SamplerKind::Random => sampler::random(&self.space, &self.base, &mut rng),
            SamplerKind::Tpe => {
                // Each unseen trial's settings, from its own (shorter) history, oldest first;
                // those in `history` are its settings as recorded.
                let mut settings: Vec<Params> = history.iter().map(|r| r.params.clone()).collect();
                for j in settings.len() + 1..=k {
                    let seen = self.depends_on(j);
                    let mut past: Vec<Past> = history[..seen.end - 1].iter().map(past).collect();
                    past.extend((seen.end..j).map(|i| Past {
                        trial: i,
                        params: settings[i - 1].clone(),
                        value: None,
                        pruned: None,
                        pending: true,
                    }));
                    let mut rng = sampler::trial_rng(self.study.seed, j);
                    settings.push(sampler::tpe(&self.space, &self.base, &past, &mut rng));
                }
                settings.swap_remove(k - 1)
            }
        }
    }

    /// The config trial `k` trains with: the base config with its settings, its checkpoints
    /// in its own folder, its logs under the search's.
    fn trial_config(&self, k: usize, params: &Params) -> Result<Config> {
        let mut c = self.base.with_values(params)?;
        c.checkpoint.save_dir = self.trial_dir(k);
        c.checkpoint.save_frequency = 0;
        c.logging.log_dir = self.out.join("logs");
        c.logging.tensorboard_dir = self.out.join("runs");
        c.logging.run_name = Some(format!("trial_{k}"));
        Ok(c)
    }

    /// Runs trial `k` (again from the start if an earlier run of it was cut short) and writes
    /// its result; a finished one is read back, not repeated.
    pub fn run_trial(&self, k: usize, device: &Device) -> Result<TrialResult> {
        if k == 0 || k > self.trial_count() {
            bail_input!(
                "--trial {k}: expected a trial between 1 and {}",
                self.trial_count()
            );
        }
        if let Some(done) = self.result(k)? {
            return Ok(done);
        }
        let history = self.history(k)?;
        let params = self.params(k, &history);
        let dir = self.trial_dir(k);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let curves: Vec<Curve> = history
            .iter()
            .map(|r| Curve {
                reports: &r.reports,
                finished: r.state == State::Finished,
            })
            .collect();
        let outcome = self.trial_config(k, &params).and_then(|config| {
            config.save_resolved(&[&dir])?;
            self.evaluate(&config, &curves, device)
        });
        let result = match outcome {
            Ok((parts, reports, pruned)) => {
                let state = if pruned {
                    State::Pruned
                } else {
                    State::Finished
                };
                let value = match state {
                    State::Finished => Some(self.objective(&parts)?),
                    _ => None,
                };
                TrialResult {
                    trial: k,
                    params,
                    state,
                    value,
                    parts,
                    reports,
                    error: None,
                }
            }
            Err(e) => TrialResult {
                trial: k,
                params,
                state: State::Failed,
                value: None,
                parts: Vec::new(),
                reports: Vec::new(),
                error: Some(one_line(&e)),
            },
        };
        write_atomic(
            &dir.join("result.json"),
            serde_json::to_string_pretty(&result)?,
        )?;
        remove_checkpoints(&dir)?;
        Ok(result)
    }

    /// The metric's mean over the parts; an error when a part's rows leave it undefined.
    fn objective(&self, parts: &[FoldResult]) -> Result<f64> {
        let metric = self.study.metric;
        let mut sum = 0.0;
        for p in parts {
            match metric.of(p) {
                Some(v) => sum += v,
                None => bail_input!(
                    "--metric {}: undefined on part {}'s validation rows (one class only)",
                    metric.name(),
                    p.fold
                ),
            }
        }
        Ok(sum / parts.len().max(1) as f64)
    }

    /// Trains `config` on each part (the cv folds, or the validation split) and scores it on
    /// the part's validation rows, stopping when the pruner says so.
    fn evaluate(
        &self,
        config: &Config,
        curves: &[Curve],
        device: &Device,
    ) -> Result<(Vec<FoldResult>, Vec<Report>, bool)> {
        let run_name = config.logging.run_name.clone().unwrap_or_default();
        let mut log = RunLog::open(&config.logging, &run_name, config.training.epochs, true)?;
        let mut watch = Watch {
            log: &mut log,
            pruner: self.study.pruner,
            pr_auc: self.study.metric == Metric::PrAuc,
            fold: 1,
            earlier: curves,
            reports: Vec::new(),
            pruned: false,
        };
        let mut parts = Vec::new();
        match self.study.cv {
            Some(n) => {
                let config = self.cv_config(config, n);
                let data = self.plan(&config)?;
                self.check_folds(&data.plan)?;
                for fold in 1..=n {
                    watch.fold = fold;
                    parts.push(cv::run_fold(&config, &data, fold, device, &mut watch)?);
                    if watch.pruned {
                        break;
                    }
                }
            }
            None => {
                let prepared = validation_split(config)?;
                let run = Run {
                    config,
                    run_name: &run_name,
                    data: &prepared,
                    device,
                    warm_start: None,
                };
                let best = train::train(&run, None, &mut watch)?.best;
                parts.push(cv::fold_result(&best, &prepared, 1, device)?);
            }
        }
        Ok((parts, watch.reports, watch.pruned))
    }

    /// A trial's folds must be the search's: its settings may not move rows between folds.
    fn check_folds(&self, plan: &FoldPlan) -> Result<()> {
        let recorded = FoldPlan::read(&self.folds_path())?;
        if recorded.folds != plan.folds || recorded.test_rows != plan.test_rows {
            bail_input!(
                "this trial's settings change which rows fall in which fold ({}); \
                 keep keys that decide rows out of the space",
                self.folds_path().display()
            );
        }
        Ok(())
    }

    /// Every trial's result so far, in trial order.
    pub fn results(&self) -> Result<Vec<TrialResult>> {
        let mut out = Vec::new();
        for k in 1..=self.trial_count() {
            if let Some(r) = self.result(k)? {
                out.push(r);
            }
        }
        Ok(out)
    }
}

/// Runs every trial without a result, `jobs` at a time, each once the trials it depends on
/// have finished; `told` hears of each as it ends. One job runs in this process; more run
/// as child processes (`<this binary> tune --out OUT --trial K`, the job-array path itself),
/// the cores shared among them.
pub fn run_all(
    search: &Search,
    jobs: usize,
    device: &Device,
    child_args: &[String],
    told: &mut dyn FnMut(&TrialResult, std::time::Duration),
) -> Result<()> {
    let pending: Vec<usize> = (1..=search.trial_count())
        .filter(|&k| !search.trial_dir(k).join("result.json").exists())
        .collect();
    if jobs <= 1 {
        for k in pending {
            let started = std::time::Instant::now();
            let r = search.run_trial(k, device)?;
            told(&r, started.elapsed());
        }
        return Ok(());
    }
    let exe = std::env::current_exe().context("finding this program to run trials")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / jobs).max(1).to_string();
    let mut running: Vec<(usize, std::process::Child, std::time::Instant)> = Vec::new();
    let mut queue = pending.into_iter().peekable();
    loop {
        let mut i = 0;
        while i < running.len() {
            let Some(status) = running[i].1.try_wait()? else {
                i += 1;
                continue;
            };
            let (k, _, started) = running.remove(i);
            if !status.success() {
                for (_, child, _) in &mut running {
                    let _ = child.kill();
                }
                anyhow::bail!("trial {k} stopped ({status}); its error is above");
            }
            match search.result(k)? {
                Some(r) => told(&r, started.elapsed()),
                None => anyhow::bail!("trial {k} ended without writing its result"),
            }
        }
        while running.len() < jobs
            && let Some(&k) = queue.peek()
            && search
                .depends_on(k)
                .all(|j| search.trial_dir(j).join("result.json").exists())
        {
            queue.next();
            let child = std::process::Command::new(&exe)
                .arg("tune")
                .arg("--out")
                .arg(&search.out)
                .args(["--trial", &k.to_string(), "--quiet"])
                .args(child_args)
                .env("RAYON_NUM_THREADS", &threads)
                .stdout(std::process::Stdio::null())
                .spawn()
                .context("starting a trial")?;
            running.push((k, child, std::time::Instant::now()));
        }
        if running.is_empty() {
            match queue.peek() {
                None => return Ok(()),
                Some(k) => anyhow::bail!("trial {k} waits for trials that left no result"),
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A result as the sampler sees it.
fn past(r: &TrialResult) -> Past {
    Past {
        trial: r.trial,
        params: r.params.clone(),
        value: r.value,
        pruned: match (r.state, r.reports.last()) {
            (State::Pruned, Some(last)) => Some((r.reports.len(), last.value)),
            _ => None,
        },
        pending: false,
    }
}

/// The training and validation rows of the config's split, encoded (not the test rows; a
/// sequence family's test windows are cut with its split, and never scored here).
fn validation_split(config: &Config) -> Result<Prepared> {
    if config.model.kind.is_sequence() {
        return crate::data::sequence::prepare_training(config);
    }
    let data = read_training(config)?;
    let split = split_rows(&data, &config.data);
    if split.val.is_empty() {
        bail_input!(
            "{}: too few rows for a validation split (data.val_size)",
            config.data.path.display()
        );
    }
    prepare_rows(config, &data, &split.train, &split.val)
}

/// A finished trial keeps its config, result and logs, not its checkpoints.
fn remove_checkpoints(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing {}", path.display()))?;
        } else if path.extension().is_some_and(|e| e == "mpk") {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// A trial's line for the terminal.
pub fn describe(r: &TrialResult, metric: Metric, of: usize) -> String {
    let settings: Vec<String> = (r.params.iter())
        .map(|(k, v)| format!("{k}={}", space::brief(v)))
        .collect();
    let what = match (r.state, r.value, r.reports.last()) {
        (State::Finished, Some(v), _) => format!("{} {v:.5}", metric.name()),
        (State::Pruned, _, Some(last)) => format!(
            "pruned at step {} of part {} ({:.4})",
            last.step, last.fold, last.value
        ),
        _ => format!("failed: {}", r.error.as_deref().unwrap_or("?")),
    };
    format!("trial {}/{of}: {what} · {}", r.trial, settings.join(" "))
}
