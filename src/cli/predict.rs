use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;

use crate::alerts::{Origin, Pipeline};
use crate::bail_input;
use crate::checkpoint::Checkpoint;
use crate::cli::alerts::AlertArgs;
use crate::cli::flows::{BrokerArgs, Capture, CaptureArgs};
use crate::cli::{CheckpointArgs, ConfigArgs, OutputFile};
use crate::config::DataConfig;
use crate::data::read::sha256_file;
use crate::data::read::{maybe_gz, open_maybe_gz};
use crate::device;
use crate::eval::drift::Drift;
use crate::flows::output::{Schema, Writer, identifiers, schema_for};
use crate::flows::pipe::pipe;
use crate::score::Scorer;
use crate::stream::kafka::consume::{self, KafkaOptions};
use crate::stream::kafka::decode::InputFormat;
use crate::stream::{self, AlertSink, Format, Options};

#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    #[command(flatten)]
    pub checkpoint: CheckpointArgs,
    #[command(flatten)]
    pub input: InputArgs,
    /// Or flow records from a Kafka topic, as a member of a consumer group (see the README's
    /// "Streaming at scale with Kafka").
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Where to write the results (default: standard output).
    #[arg(long, value_name = "FILE", conflicts_with = "brokers")]
    pub out: Option<PathBuf>,
    /// Flag rows scoring at least this (instead of the checkpoint's threshold).
    #[arg(long, value_name = "T", conflicts_with = "contamination")]
    pub threshold: Option<f32>,
    /// Flag this share of the training rows' scores (the threshold is their (1-R)-quantile).
    #[arg(long, value_name = "R")]
    pub contamination: Option<f64>,
    /// csv, or jsonl (the default with --kafka-brokers).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
    /// Input columns copied to each output row, e.g. `--keep "Flow ID,Src IP,Timestamp"`.
    #[arg(long, value_name = "COLUMNS", value_delimiter = ',')]
    pub keep: Vec<String>,
    /// Rows scored together.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub batch_rows: usize,
    /// The longest a row read from standard input waits before its batch is scored.
    #[arg(long, default_value_t = 200, value_name = "MS")]
    pub flush_ms: u64,
    /// Add each flagged row's top K reasons (CSV: reason_1…reason_K; JSON: a `reasons` list).
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub explain: usize,
    /// Alerts: with --alerts-db, each flagged row is stored (and delivered) before its output
    /// row is written.
    #[command(flatten)]
    pub alerts: AlertArgs,
}

pub fn run(args: PredictArgs) -> Result<()> {
    let started = Instant::now();
    if args.batch_rows == 0 {
        bail_input!("--batch-rows: expected at least 1");
    }
    let ck = args.checkpoint.load()?;
    let local = args.common.load()?;
    let selected = device::select(&local.device)?;
    let mut scorer = Scorer::from_checkpoint(&ck, &selected.device)?;
    match (args.threshold, args.contamination) {
        (Some(t), _) if !t.is_finite() => bail_input!("--threshold: expected a number, got {t}"),
        (Some(t), _) => scorer.threshold = t,
        (_, Some(r)) if !(r > 0.0 && r < 1.0) => {
            bail_input!("--contamination: expected a share in (0, 1), got {r}")
        }
        (_, Some(r)) => scorer
            .use_contamination(r)
            .with_context(|| format!("checkpoint {}", args.checkpoint.path.display()))?,
        _ => {}
    }
    let keep: Vec<String> = args.keep.iter().map(|k| k.trim().to_string()).collect();
    let default_format = match args.kafka.broker.brokers {
        Some(_) => Format::Jsonl,
        None => Format::Csv,
    };
    let alerts = match args.alerts.options(None)? {
        Some(a) => Some(AlertSink {
            pipeline: Arc::new(Pipeline::start(&a, Box::new(|_| {}))?),
            origin: Origin {
                model: ck.run_name.clone(),
                checkpoint: sha256_file(&args.checkpoint.path)?,
            },
        }),
        None => None,
    };
    let opts = Options {
        keep,
        format: args.format.unwrap_or(default_format),
        batch_rows: args.batch_rows,
        flush_after: Duration::from_millis(args.flush_ms),
        explain: args.explain,
        alerts,
    };
    if let Some(kafka) = args.kafka.options()? {
        let stdout = Box::new(std::io::stdout());
        let summary = consume::run(&scorer, &ck.config.data, &kafka, &opts, stdout);
        close_alerts(&opts);
        let summary = summary?;
        if !args.common.quiet {
            report(&summary, &scorer, started.elapsed());
        }
        return Ok(());
    }
    // The input is opened (and a capture's schema checked) before any output exists.
    let input = args.input.open(&ck)?;
    let output = OutputFile::create(args.out.as_deref())?;
    let data = &ck.config.data;
    let (result, captured) = input.score(
        &scorer,
        data,
        output.writer()?,
        &opts,
        None,
        args.common.quiet,
    );
    close_alerts(&opts);
    // A truncated capture still leaves every flow up to the damage scored and written.
    let capture_failed = captured.as_ref().err().map(crate::error::exit_code);
    output.finish(result.is_ok() && capture_failed != Some(crate::error::EXIT_RUNTIME))?;
    let summary = result?;
    captured?;
    if !args.common.quiet {
        report(&summary, &scorer, started.elapsed());
    }
    if summary.failed > 0 {
        bail_input!(
            "{} of {} rows could not be scored; their output rows carry the error (first: {})",
            summary.failed,
            summary.rows,
            summary.first_error.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

/// Lets the alert sinks deliver what they hold (up to 10 s) before the process ends.
fn close_alerts(opts: &Options) {
    if let Some(sink) = &opts.alerts {
        sink.pipeline.close(Duration::from_secs(10));
    }
}

/// `predict`'s Kafka side: the topic read as a member of a consumer group, and where each
/// message's output goes.
#[derive(Args, Debug)]
pub struct KafkaArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// The consumer group: replicas in one group share the topic's partitions.
    #[arg(long, default_value = "anomaly", requires = "brokers")]
    pub group: String,
    /// Send each output here, keyed as its input (default: standard output).
    #[arg(long, value_name = "TOPIC", requires = "brokers")]
    pub out_topic: Option<String>,
    /// Only flagged rows (and messages that cannot be scored) get an output.
    #[arg(long, requires = "brokers")]
    pub alerts_only: bool,
    /// Send messages that cannot be scored here, as they were (with `anomaly.error`,
    /// `anomaly.partition` and `anomaly.offset` headers), instead of an error output.
    #[arg(long, value_name = "TOPIC", requires = "brokers")]
    pub dead_letter_topic: Option<String>,
    #[arg(long, value_enum, default_value_t = InputFormat::Jsonl, requires = "brokers")]
    pub input_format: InputFormat,
    /// `--input-format csv`: the fields of each line (default: the model's input columns).
    #[arg(
        long,
        value_name = "COLUMNS",
        value_delimiter = ',',
        requires = "brokers"
    )]
    pub columns: Vec<String>,
    /// Serve Prometheus metrics on http://0.0.0.0:PORT/metrics.
    #[arg(long, value_name = "PORT", requires = "brokers")]
    pub metrics_port: Option<u16>,
}

impl KafkaArgs {
    /// The consumer's options, when `--kafka-brokers` is given.
    fn options(&self) -> Result<Option<KafkaOptions>> {
        let Some(connection) = self.broker.connection()? else {
            return Ok(None);
        };
        Ok(Some(KafkaOptions {
            connection,
            topic: self.broker.topic()?,
            group: self.group.clone(),
            out_topic: self.out_topic.clone(),
            dead_letter_topic: self.dead_letter_topic.clone(),
            alerts_only: self.alerts_only,
            input: self.input_format,
            columns: self.columns.clone(),
            metrics_port: self.metrics_port,
        }))
    }
}

/// `--data` or `--pcap`: what `predict` and `drift` read.
#[derive(Args, Debug)]
pub struct InputArgs {
    /// Flow records (CSV, plain or gzip), or `-` for standard input.
    #[arg(
        long,
        value_name = "CSV",
        required_unless_present_any = ["pcap", "brokers"],
        conflicts_with_all = ["pcap", "brokers"]
    )]
    pub data: Option<PathBuf>,
    /// Or a capture's flows, each read as it ends (see `anomaly flows`): `--pcap FILE|-`.
    #[command(flatten)]
    pub capture: CaptureArgs,
}

impl InputArgs {
    /// Opens the input (and checks a capture's schema against the checkpoint's columns).
    pub(crate) fn open(&self, ck: &Checkpoint) -> Result<Input> {
        Input::open(ck, self.data.as_deref(), &self.capture)
    }

    /// The input as the output names it.
    pub fn name(&self) -> String {
        self.data
            .as_ref()
            .map_or("the capture's flows".into(), |p| p.display().to_string())
    }
}

/// What `predict` (and `drift`) reads: flow records (named, and whether from stdin), or a
/// capture's flows.
pub(crate) enum Input {
    Rows(String, Box<dyn std::io::Read + Send>, bool),
    Capture(Schema, Capture),
}

impl Input {
    /// `data` (a file, or `-` for stdin), else the capture `--pcap` names.
    pub(crate) fn open(
        ck: &Checkpoint,
        data: Option<&Path>,
        capture: &CaptureArgs,
    ) -> Result<Input> {
        Ok(match data {
            Some(path) if path.as_os_str() == "-" => {
                Input::Rows("standard input".into(), maybe_gz(std::io::stdin())?, true)
            }
            Some(path) => Input::Rows(path.display().to_string(), open_maybe_gz(path)?, false),
            None => Input::Capture(flow_schema(ck)?, capture.start()?),
        })
    }

    /// Scores every row into `out` (and `drift`): the stream's result, and the capture's (a
    /// truncated capture still leaves every flow up to the damage scored).
    pub(crate) fn score(
        self,
        scorer: &Scorer,
        data: &DataConfig,
        out: Box<dyn Write>,
        opts: &Options,
        drift: Option<&mut Drift>,
        quiet: bool,
    ) -> (Result<stream::Summary>, Result<()>) {
        match self {
            Input::Rows(source, input, stdin) => {
                let result = stream::run(scorer, data, input, stdin, out, opts, drift)
                    .with_context(|| format!("reading {source}"));
                (result, Ok(()))
            }
            Input::Capture(schema, capture) => {
                let mut opts = opts.clone();
                if opts.keep.is_empty() {
                    opts.keep = identifiers(schema);
                }
                let (reader, writer) = pipe();
                std::thread::scope(|scope| {
                    // Flows are written as they end and scored as they arrive, batch by batch.
                    let flows = scope.spawn(move || -> Result<()> {
                        let mut w = Writer::new(writer, schema, false, None)?;
                        capture
                            .extract(quiet, &mut |flow| w.write(flow))
                            .map(|_| ())
                    });
                    let result =
                        stream::run(scorer, data, Box::new(reader), true, out, &opts, drift)
                            .context("scoring the capture's flows");
                    (result, flows.join().expect("the flow extractor panicked"))
                })
            }
        }
    }
}

/// The flow schema whose columns hold the checkpoint's input columns, or why there is none.
fn flow_schema(ck: &Checkpoint) -> Result<Schema> {
    let wanted: Vec<&str> = ck
        .preprocessor
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    schema_for(&wanted).map_err(|missing| {
        crate::error::bad_input(format!(
            "--pcap: the checkpoint was trained on columns that flows from a capture do not \
             have: {} (a model for captures is trained on CIC-IDS2017 flow features, e.g. the \
             output of `anomaly flows`)",
            missing.join(", ")
        ))
    })
}

/// The run's summary on stderr (stdout may carry the results).
fn report(s: &stream::Summary, scorer: &Scorer, took: Duration) {
    let secs = took.as_secs_f64();
    eprintln!(
        "scored {} rows in {secs:.2}s ({:.0} rows/s): {} flagged at threshold {} (it flags {:.2}% of the training rows){}",
        s.rows,
        s.rows as f64 / secs.max(1e-9),
        s.flagged,
        scorer.threshold,
        100.0 * scorer.training_flag_rate(),
        if s.failed > 0 {
            format!(", {} could not be scored", s.failed)
        } else {
            String::new()
        }
    );
    if s.warming > 0 {
        eprintln!(
            "{} rows came before their group's first full window of {} flows and have no score",
            s.warming,
            scorer.sequence.as_ref().map_or(0, |q| q.length)
        );
    }
    if let Some(c) = s.confusion.filter(|c| c.total() > 0) {
        eprintln!(
            "against the label column ({} rows): accuracy {:.4}, precision {:.4}, recall {:.4}, F1 {:.4} (TP {}, FP {}, FN {}, TN {})",
            c.total(),
            c.accuracy(),
            c.precision(),
            c.recall(),
            c.f1(),
            c.tp,
            c.fp,
            c.fn_,
            c.tn
        );
    }
}
