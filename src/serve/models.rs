//! A served model: its checkpoint's scorer on a thread of its own, which scores together the
//! rows of every request that queued while it was busy (and of those that arrive within
//! `--max-wait-ms`), up to `--max-batch` rows. Scores do not depend on the batch a row lands
//! in: CPU batches are padded to one size.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::bail_input;
use anyhow::{Context, Result, anyhow};
use burn::tensor::Device;
use serde_json::{Value, json};

use crate::alerts::{self, Alert, Fields, Origin};
use crate::checkpoint::Checkpoint;
use crate::config::DataConfig;
use crate::data::preprocess::Encoding;
use crate::data::read::Kind;
use crate::eval::drift::{Drift, Window};
use crate::explain::Explainer;
use crate::score::Reason;
use crate::score::{JsonRow, Scored, Scorer};

pub struct Model {
    pub name: String,
    pub scorer: Arc<Scorer>,
    /// The checkpoint's data settings (label column, missing-cell policy), as `predict` uses.
    pub data: DataConfig,
    /// What `/api/v1/models` says about it.
    pub info: Value,
    pub load_seconds: f64,
    /// Whether `?explain=` can give reasons (the checkpoint profiles its training rows).
    pub explainable: bool,
    /// The latest rows scored, for drift (none: `--drift-window 0`, or a checkpoint without
    /// a training profile).
    pub drift: Option<Arc<Mutex<Window>>>,
    jobs: Sender<Job>,
    worker: JoinHandle<()>,
}

/// Encoded rows waiting to be scored, and where their predictions go.
struct Job {
    x: Vec<f32>,
    /// When explaining or keeping a drift window: the features before scaling.
    raw: Vec<f32>,
    rows: usize,
    threshold: f32,
    /// Reasons per flagged row (0: none).
    explain: usize,
    /// When alerts are kept: the rows as they came, for the alerts of flagged rows.
    table: Option<Table>,
    reply: tokio::sync::oneshot::Sender<Result<(String, Vec<Alert>)>>,
}

/// A request's rows as they came: named fields, and when they arrived (µs since 1970).
pub struct Table {
    pub names: Vec<String>,
    pub records: Vec<csv::ByteRecord>,
    pub received: i64,
}

impl Model {
    pub fn load(
        name: Option<String>,
        path: &Path,
        device: &Device,
        (max_batch, max_wait): (usize, Duration),
        drift_window: usize,
    ) -> Result<Model> {
        let started = Instant::now();
        let ck = Checkpoint::load(path)?;
        if ck.detector.kind().is_sequence() {
            bail_input!(
                "{}: a sequence model scores windows of a group's consecutive flows; the API \
                 scores rows one by one, so serve a per-flow model (use `anomaly predict` \
                 with stdin for streaming windows)",
                path.display()
            );
        }
        let scorer = Arc::new(
            Scorer::from_checkpoint(&ck, device)
                .with_context(|| format!("checkpoint {}", path.display()))?,
        );
        let load_seconds = started.elapsed().as_secs_f64();
        let name = name.unwrap_or_else(|| ck.run_name.clone());
        let info = describe(&name, path, &ck, load_seconds);
        let explainable = Explainer::new(&scorer).is_ok();
        let origin = Origin {
            model: name.clone(),
            checkpoint: crate::data::read::sha256_file(path)?,
        };
        let mut info = info;
        info["explainable"] = json!(explainable);
        let train = (
            &ck.train_score_quantiles[..],
            ck.threshold,
            ck.data.train_rows,
        );
        let drift = Drift::new(&ck.preprocessor, train.0, train.1, train.2)
            .filter(|_| drift_window > 0)
            .map(|d| Arc::new(Mutex::new(Window::new(d, drift_window))));
        let (jobs, rx) = channel();
        let worker = {
            let scorer = scorer.clone();
            let window = drift.clone();
            std::thread::Builder::new()
                .name(format!("score-{name}"))
                .spawn({
                    let origin = origin.clone();
                    move || score_batches(&scorer, &origin, &rx, (max_batch, max_wait), window)
                })
                .context("starting a scoring thread")?
        };
        Ok(Model {
            name,
            scorer,
            data: ck.config.data.clone(),
            info,
            load_seconds,
            explainable,
            drift,
            jobs,
            worker,
        })
    }

    /// Scores encoded rows (in whatever batch they share) and returns the JSON array of their
    /// predictions: per row `row` (1-based), then the fields `predict --format jsonl` writes;
    /// and, given the rows' `table`, the alerts of the flagged ones.
    pub async fn predict(
        &self,
        (x, raw, rows): (Vec<f32>, Vec<f32>, usize),
        threshold: f32,
        explain: usize,
        table: Option<Table>,
    ) -> Result<(String, Vec<Alert>)> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            x,
            raw,
            rows,
            threshold,
            explain,
            table,
            reply,
        };
        self.jobs
            .send(job)
            .map_err(|_| anyhow!("model '{}': its scoring thread has stopped", self.name))?;
        answer
            .await
            .map_err(|_| anyhow!("model '{}': its scoring thread has stopped", self.name))?
    }

    /// Drift over the model's latest rows (none without a window, or before any row).
    /// The window is copied under its lock and counted outside it, so a `/metrics` scrape
    /// never holds up the scoring thread for longer than a copy.
    pub fn drift_report(&self) -> Option<crate::eval::drift::DriftReport> {
        let window = self.drift.as_ref()?;
        let copy = window.lock().unwrap_or_else(|e| e.into_inner()).clone();
        copy.report()
    }

    /// Whether the scoring thread still runs.
    pub fn is_ready(&self) -> bool {
        !self.worker.is_finished()
    }
}

/// The scoring thread: waits for a job, gathers more until the batch is full or the first has
/// waited `max_wait`, scores them in one call and answers each.
fn score_batches(
    scorer: &Scorer,
    origin: &Origin,
    rx: &Receiver<Job>,
    (max_batch, max_wait): (usize, Duration),
    window: Option<Arc<Mutex<Window>>>,
) {
    let explainer = Explainer::new(scorer).ok();
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + max_wait;
        let mut rows = first.rows;
        let mut jobs = vec![first];
        while rows < max_batch {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(job) => {
                    rows += job.rows;
                    jobs.push(job);
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let x: Vec<f32> = jobs.iter().flat_map(|j| j.x.iter().copied()).collect();
        match scorer.score(&x) {
            Ok(scored) => {
                if let Some(w) = &window {
                    let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                    let mut at = 0;
                    for job in &jobs {
                        w.push(&job.raw, &scored.anomaly[at..at + job.rows]);
                        at += job.rows;
                    }
                }
                let mut at = 0;
                for job in jobs {
                    let rows = at..at + job.rows;
                    at += job.rows;
                    let predictions =
                        reasons(explainer.as_ref(), &job, &scored.anomaly[rows.clone()]).and_then(
                            |r| {
                                let alerts =
                                    job_alerts(scorer, origin, &job, &scored, rows.start, &r);
                                let json = json_rows(scorer, &scored, rows, job.threshold, &r)?;
                                Ok((json, alerts))
                            },
                        );
                    let _ = job.reply.send(predictions);
                }
            }
            Err(e) => {
                let message = format!("{e:#}");
                for job in jobs {
                    let _ = job.reply.send(Err(anyhow!("scoring failed: {message}")));
                }
            }
        }
    }
}

/// A job's flagged rows' reasons, when it asks for them (else empty).
fn reasons(
    explainer: Option<&Explainer>,
    job: &Job,
    scores: &[f32],
) -> Result<Vec<Option<Vec<Reason>>>> {
    match (explainer, job.explain) {
        (Some(e), k) if k > 0 => {
            let rows = (&job.x[..], &job.raw[..], scores);
            e.batch(rows, job.threshold, k)
        }
        _ => Ok(Vec::new()),
    }
}

/// The alerts of a job's flagged rows (none when alerts are not kept); `first` is its first
/// row in the scored batch.
fn job_alerts(
    scorer: &Scorer,
    origin: &Origin,
    job: &Job,
    scored: &Scored,
    first: usize,
    reasons: &[Option<Vec<Reason>>],
) -> Vec<Alert> {
    let Some(table) = &job.table else {
        return Vec::new();
    };
    let fields = Fields::locate(&table.names);
    let mut out = Vec::new();
    for (i, record) in table.records.iter().enumerate() {
        let mut v = scored.verdict(&scorer.pre.classes, first + i, job.threshold);
        if !v.flagged {
            continue;
        }
        v.reasons = reasons.get(i).and_then(Option::as_deref);
        let at = (job.threshold, table.received);
        out.push(alerts::alert(origin, scorer, &fields, record, &v, at));
    }
    out
}

/// The JSON array of the predictions of `rows` of a scored batch, with `reasons` of flagged
/// rows when explaining.
fn json_rows(
    scorer: &Scorer,
    scored: &Scored,
    rows: std::ops::Range<usize>,
    threshold: f32,
    reasons: &[Option<Vec<Reason>>],
) -> Result<String> {
    let mut out = Vec::with_capacity(64 * rows.len());
    out.push(b'[');
    for (i, at) in rows.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut v = scored.verdict(&scorer.pre.classes, at, threshold);
        v.reasons = reasons.get(i).and_then(Option::as_deref);
        let row = JsonRow {
            row: i + 1,
            source: None,
            keep: (&[], &[]),
            verdict: Ok(&v),
            members: &scorer.members,
        };
        serde_json::to_writer(&mut out, &row)?;
    }
    out.push(b']');
    Ok(String::from_utf8(out)?)
}

/// The model as `/api/v1/models` lists it.
fn describe(name: &str, path: &Path, ck: &Checkpoint, load_seconds: f64) -> Value {
    let pre = &ck.preprocessor;
    let features: Vec<Value> = pre
        .columns
        .iter()
        .map(|c| {
            let mut f = json!({"name": c.name, "kind": kind_name(c.kind())});
            match &c.encoding {
                Encoding::OneHot { categories } => f["categories"] = json!(categories),
                // What a missing cell is filled with: the training rows' median.
                Encoding::Numeric { fill, .. } | Encoding::Boolean { fill } => {
                    f["median"] = json!(fill)
                }
            }
            f
        })
        .collect();
    let best = ck
        .history
        .iter()
        .find(|r| r.epoch == ck.weights_epoch)
        .map(|r| r.val_loss);
    json!({
        "name": name,
        "path": PathBuf::from(path),
        "family": ck.detector.family(),
        "task": ck.config.task,
        "features": features,
        "classes": pre.classes,
        "members": ck.detector.members(),
        "decision": {
            "rule": ck.config.training.threshold,
            "threshold": ck.threshold,
        },
        "training": {
            "run_name": ck.run_name,
            "epochs": ck.epoch,
            "weights_epoch": ck.weights_epoch,
            "val_loss": best,
            "train_rows": ck.data.train_rows,
            "val_rows": ck.data.val_rows,
            "train_positives": ck.data.train_positives,
            "history": ck.history,
        },
        "trained_with": ck.tool_version,
        "tool_version": env!("CARGO_PKG_VERSION"),
        "load_seconds": load_seconds,
    })
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Numeric => "numeric",
        Kind::Boolean => "boolean",
        Kind::Categorical => "categorical",
    }
}
