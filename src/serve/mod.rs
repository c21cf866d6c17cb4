//! `anomaly serve`: the scorer behind an HTTP API and a dashboard, on axum and tokio.
//!
//! Requests are parsed and encoded on tokio's blocking pool and scored on one thread per model
//! ([`models::Model`]), which gathers small requests into one batch; the async threads only
//! move bytes. Every answer to bad input is a 4xx with a JSON `error` that names the row and
//! field; `/metrics` counts what was served.

mod alerts;
mod api;
mod metrics;
mod models;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use burn::tensor::Device;

use crate::alerts::Pipeline;
use crate::bail_input;
use crate::error::bad_input;
use metrics::Metrics;
use models::Model;

pub struct Options {
    /// Checkpoints to serve, each with the name the API knows it by (none: its run name).
    pub checkpoints: Vec<(Option<String>, PathBuf)>,
    pub host: String,
    pub port: u16,
    /// The bearer token every API request must carry.
    pub token: Option<String>,
    pub max_body: usize,
    pub max_batch: usize,
    pub max_wait: Duration,
    /// Rows per model kept for drift (0: none).
    pub drift_window: usize,
    /// CSV files the dashboard may open from the server.
    pub data_dir: Option<PathBuf>,
    /// Where analysts' verdicts on alarms are appended.
    pub feedback_file: PathBuf,
    /// The alert store and its sinks (none: alarms are only answered).
    pub alerts: Option<crate::alerts::Options>,
}

/// Alerts kept for event-stream listeners that fall behind (beyond it they get `lagged`).
const EVENTS: usize = 4096;

/// What every request handler sees.
pub struct State {
    models: Vec<Model>,
    token: Option<String>,
    metrics: Metrics,
    data_dir: Option<PathBuf>,
    /// The feedback file, locked while a verdict is appended.
    feedback: Mutex<PathBuf>,
    alerts: Option<Pipeline>,
    /// Each stored alert's JSON, for `/api/v1/alerts/stream`.
    events: tokio::sync::broadcast::Sender<Arc<String>>,
}

impl State {
    /// The named model, or the first when no name is given.
    fn model(&self, name: Option<&str>) -> std::result::Result<&Model, api::ApiError> {
        let Some(name) = name else {
            return Ok(&self.models[0]);
        };
        self.models.iter().find(|m| m.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
            api::ApiError::not_found(format!(
                "unknown model '{name}'; this server has: {}",
                known.join(", ")
            ))
        })
    }
}

/// Whether `host` is a loopback name or address, which needs no token.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Loads every checkpoint, binds, and serves until SIGINT or SIGTERM, then drains in-flight
/// requests and returns.
pub fn run(opts: Options, device: &Device) -> Result<()> {
    let mut metrics = Metrics::new();
    let mut models: Vec<Model> = Vec::new();
    for (name, path) in &opts.checkpoints {
        let batching = (opts.max_batch, opts.max_wait);
        let model = Model::load(name.clone(), path, device, batching, opts.drift_window)?;
        if models.iter().any(|m| m.name == model.name) {
            bail_input!(
                "--checkpoint {}: a second model named '{}'; name them with --checkpoint NAME=PATH",
                path.display(),
                model.name
            );
        }
        metrics.loaded(&model.name, model.load_seconds);
        models.push(model);
    }
    let (events, _) = tokio::sync::broadcast::channel(EVENTS);
    let alerts = match &opts.alerts {
        Some(a) => {
            let sender = events.clone();
            let listener = Box::new(move |stored: &[crate::alerts::Alert]| {
                // Written as JSON only for someone listening.
                if sender.receiver_count() == 0 {
                    return;
                }
                for alert in stored {
                    // Nobody listening is not an error.
                    let _ = sender.send(Arc::new(alert.to_json().to_string()));
                }
            });
            let pipeline = Pipeline::start(a, listener)?;
            metrics.register(|r| pipeline.counters.register(r));
            eprintln!("anomaly serve: alerts are stored in {}", pipeline.name);
            Some(pipeline)
        }
        None => None,
    };
    let state = Arc::new(State {
        models,
        token: opts.token,
        metrics,
        data_dir: opts.data_dir,
        feedback: Mutex::new(opts.feedback_file),
        alerts,
        events,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(serve(state.clone(), &opts.host, opts.port, opts.max_body));
    if let Some(p) = &state.alerts {
        p.close(Duration::from_secs(10));
    }
    served
}

async fn serve(state: Arc<State>, host: &str, port: u16, max_body: usize) -> Result<()> {
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|e| bad_input(format!("--host {host} --port {port}: cannot listen: {e}")))?;
    let addr = listener.local_addr()?;
    let names: Vec<&str> = state.models.iter().map(|m| m.name.as_str()).collect();
    eprintln!(
        "anomaly serve: listening on http://{addr} with {} (API /api/v1, docs /docs, dashboard /, metrics /metrics)",
        names.join(", ")
    );
    axum::serve(listener, api::router(state, max_body))
        .with_graceful_shutdown(stop_signal())
        .await
        .context("serving")?;
    eprintln!("anomaly serve: stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn stop_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
