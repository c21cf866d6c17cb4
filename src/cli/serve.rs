use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::bail_input;
use crate::cli::ConfigArgs;
use crate::cli::alerts::AlertArgs;
use crate::device;
use crate::serve::{self, Options, is_loopback};

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// A checkpoint to serve, as PATH or NAME=PATH (repeatable; the first is the default
    /// model). Without a name, a model is known by its run name.
    #[arg(long, value_name = "[NAME=]CHECKPOINT", required = true)]
    pub checkpoint: Vec<String>,
    /// The address to listen on; any but a loopback one needs --token-file or
    /// --insecure-no-auth.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The port (0: any free one; the address is printed on stderr).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// A file holding the bearer token every API request must carry (never printed).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Listen off loopback without a token.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// The largest request body, in bytes (larger ones get 413).
    #[arg(long, default_value_t = 16 << 20, value_name = "BYTES")]
    pub max_body: usize,
    /// Rows from concurrent requests scored together, at most.
    #[arg(long, default_value_t = 4096, value_name = "ROWS")]
    pub max_batch: usize,
    /// The longest a request waits for others to share its batch. 0: a batch is whatever
    /// arrived while the previous one was scored (fastest on a busy server).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub max_wait_ms: u64,
    /// Rows per model kept for `GET /api/v1/drift` and the drift gauges (0: no window).
    #[arg(long, default_value_t = 10_000, value_name = "ROWS")]
    pub drift_window: usize,
    /// A folder of CSV files the dashboard may open.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where the dashboard appends analysts' verdicts on alarms.
    #[arg(long, default_value = "feedback/feedback.csv", value_name = "FILE")]
    pub feedback_file: PathBuf,
    /// Alerts (stored by default in alerts/alerts.sqlite).
    #[command(flatten)]
    pub alerts: AlertArgs,
}

/// Where `serve` stores alerts unless told otherwise (beside feedback/feedback.csv).
const DEFAULT_ALERTS_DB: &str = "alerts/alerts.sqlite";

pub fn run(args: ServeArgs) -> Result<()> {
    let token = match &args.token_file {
        Some(path) => Some(read_token(path)?),
        None if is_loopback(&args.host) || args.insecure_no_auth => None,
        None => bail_input!(
            "--host {}: listening off loopback needs --token-file FILE (a bearer token clients must send), or --insecure-no-auth to accept anyone",
            args.host
        ),
    };
    if args.max_batch == 0 || args.max_body == 0 {
        bail_input!("--max-batch and --max-body: expected at least 1");
    }
    if let Some(dir) = args.data_dir.as_ref().filter(|d| !d.is_dir()) {
        bail_input!("--data-dir {}: not a folder", dir.display());
    }
    let local = args.common.load()?;
    let selected = device::select(&local.device)?;
    let opts = Options {
        checkpoints: args.checkpoint.iter().map(|c| named(c)).collect(),
        host: args.host,
        port: args.port,
        token,
        max_body: args.max_body,
        max_batch: args.max_batch,
        max_wait: Duration::from_millis(args.max_wait_ms),
        drift_window: args.drift_window,
        data_dir: args.data_dir,
        feedback_file: args.feedback_file,
        alerts: args.alerts.options(Some(DEFAULT_ALERTS_DB))?,
    };
    serve::run(opts, &selected.device)
}

/// `NAME=PATH` or `PATH` (a name is letters, digits, `_`, `-` and `.`).
fn named(arg: &str) -> (Option<String>, PathBuf) {
    match arg.split_once('=') {
        Some((name, path))
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) =>
        {
            (Some(name.to_string()), PathBuf::from(path))
        }
        _ => (None, PathBuf::from(arg)),
    }
}

fn read_token(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::error::bad_input(format!("--token-file {}: {e}", path.display())))?;
    let token = text.trim().to_string();
    if token.is_empty() || token.contains(char::is_whitespace) {
        bail_input!(
            "--token-file {}: expected one token with no spaces",
            path.display()
        );
    }
    Ok(token)
}
