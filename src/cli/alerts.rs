//! The alert flags `serve` and `predict` share: where alerts are stored, how repeats are
//! aggregated, how long they are kept, and where they are delivered.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::alerts::sinks::{Spec, Target};
use crate::alerts::{Options, Severity};

#[derive(Args, Debug)]
pub struct AlertArgs {
    /// Store every flagged row as an alert: a SQLite file (created, WAL mode), or
    /// `postgres://USER:PASSWORD@HOST/DB` for a history several replicas share. `none`: no store.
    #[arg(long, value_name = "PATH|URL")]
    pub alerts_db: Option<String>,
    /// Alarms with the same model, source, destination, destination port and class within
    /// this many seconds are one alert with a count.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub dedup_window: u64,
    /// Alerts whose latest alarm arrived longer ago are deleted (checked hourly; 0: kept for
    /// ever).
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    pub alerts_retention_days: u32,
    /// POST each batch of new alerts as JSON to this URL (repeatable), retried with backoff.
    #[arg(long, value_name = "URL")]
    pub alert_webhook: Vec<String>,
    /// Send each new alert as RFC 5424 syslog with a CEF payload: udp://HOST:514 or
    /// tcp://HOST:601 (repeatable).
    #[arg(long, value_name = "URL")]
    pub alert_syslog: Vec<String>,
    /// Append each new alert to this file as ECS JSON (one line each, for Filebeat/Elastic).
    #[arg(long, value_name = "FILE")]
    pub alert_file: Option<PathBuf>,
    /// Rotate --alert-file to FILE.1 (keeping five) when it reaches this size.
    #[arg(long, default_value_t = 100, value_name = "MB")]
    pub alert_file_max_mb: u64,
    /// Deliver only alerts of at least this severity (the store keeps them all).
    #[arg(long, value_enum, default_value_t = Severity::Low)]
    pub alert_min_severity: Severity,
}

impl AlertArgs {
    /// The alert options, storing in `--alerts-db`, else in `default` (none: no store; then
    /// a sink is an error, as it would have nothing to deliver).
    pub fn options(&self, default: Option<&str>) -> Result<Option<Options>> {
        let db = match self.alerts_db.as_deref().or(default) {
            Some("none") | None => None,
            Some(db) => Some(db.to_string()),
        };
        let mut targets = Vec::new();
        for url in &self.alert_webhook {
            targets.push(Target::webhook(url)?);
        }
        for url in &self.alert_syslog {
            targets.push(Target::syslog(url)?);
        }
        if let Some(path) = &self.alert_file {
            let max_bytes = self.alert_file_max_mb.max(1) << 20;
            targets.push(Target::File {
                path: path.clone(),
                max_bytes,
            });
        }
        let Some(db) = db else {
            if !targets.is_empty() {
                crate::bail_input!(
                    "--alert-webhook, --alert-syslog and --alert-file deliver stored alerts: give --alerts-db too"
                );
            }
            return Ok(None);
        };
        let sinks = targets
            .into_iter()
            .map(|target| Spec {
                target,
                min_severity: self.alert_min_severity,
            })
            .collect();
        Ok(Some(Options {
            db,
            dedup_window: Duration::from_secs(self.dedup_window),
            retention_days: self.alerts_retention_days,
            sinks,
        }))
    }
}
