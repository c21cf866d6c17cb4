use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use crate::bail_input;
use crate::cli::OutputFile;
use crate::data::read::{maybe_gz, open_maybe_gz};
use crate::flows::output::{Labels, Schema, Writer};
use crate::flows::pipe::read_ahead;
use crate::flows::{self, Limits, Summary};
use crate::stream::Format;
use crate::stream::kafka::{Connection, Publisher};

/// A Kafka topic and how to reach its brokers (shared by `flows` and `predict`).
#[derive(Args, Debug, Clone)]
pub struct BrokerArgs {
    /// Kafka's bootstrap brokers: host:port[,host:port…].
    #[arg(long = "kafka-brokers", id = "brokers", value_name = "HOSTS")]
    pub brokers: Option<String>,
    /// The topic: read by `predict`, written by `flows`.
    #[arg(long, value_name = "TOPIC", requires = "brokers")]
    pub topic: Option<String>,
    /// A librdkafka setting, passed as given (repeatable): TLS and SASL, e.g.
    /// `security.protocol=SASL_SSL`, `sasl.mechanism=SCRAM-SHA-512`, `sasl.username=…`.
    #[arg(long, value_name = "KEY=VALUE", requires = "brokers")]
    pub kafka_config: Vec<String>,
}

impl BrokerArgs {
    /// The connection, when `--kafka-brokers` is given.
    pub fn connection(&self) -> Result<Option<Connection>> {
        self.brokers
            .as_deref()
            .map(|b| Connection::new(b, &self.kafka_config))
            .transpose()
    }

    pub fn topic(&self) -> Result<String> {
        match self.topic.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => Ok(t.to_string()),
            _ => bail_input!("--topic: expected the Kafka topic's name (with --kafka-brokers)"),
        }
    }
}

/// A capture and how its packets become flows (shared by `flows` and `predict --pcap`).
#[derive(Args, Debug, Clone)]
pub struct CaptureArgs {
    /// A pcap or pcapng capture (plain or gzip), or `-` for standard input
    /// (`tcpdump -i eth0 -w - | anomaly flows --pcap - --live`).
    #[arg(long, value_name = "CAPTURE")]
    pub pcap: Option<PathBuf>,
    /// A flow ends when a packet comes this many seconds after its first one.
    #[arg(long, default_value_t = 120.0, value_name = "SECONDS")]
    pub flow_timeout: f64,
    /// Gaps longer than this (seconds) split a flow's active and idle periods; a closed TCP
    /// flow is written once this passes with no packet for it.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub activity_timeout: f64,
    /// The most flows held at once; a new one beyond it ends the flow idle longest.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_flows: usize,
    /// A live capture: while no packet arrives, the wall clock moves the capture's on, so a
    /// quiet link still reports its last flows.
    #[arg(long)]
    pub live: bool,
}

impl CaptureArgs {
    /// The table's limits, checked.
    pub fn limits(&self) -> Result<Limits> {
        for (flag, v) in [
            ("--flow-timeout", self.flow_timeout),
            ("--activity-timeout", self.activity_timeout),
        ] {
            if !(v.is_finite() && v > 0.0) {
                bail_input!("{flag}: expected a positive number of seconds, got {v}");
            }
        }
        if self.max_flows == 0 {
            bail_input!("--max-flows: expected at least 1");
        }
        Ok(Limits {
            flow_timeout: (self.flow_timeout * 1e6) as i64,
            activity_timeout: (self.activity_timeout * 1e6) as i64,
            max_flows: self.max_flows,
        })
    }

    /// The capture's name for messages, and its bytes (gunzipped when gzip).
    pub fn open(&self) -> Result<(String, Box<dyn Read + Send>)> {
        let Some(path) = &self.pcap else {
            bail_input!("--pcap: expected a capture file or - for standard input");
        };
        // Read (and gunzipped) on a thread of its own, parsed on this one.
        let (name, input) = if path.as_os_str() == "-" {
            ("standard input".to_string(), maybe_gz(std::io::stdin())?)
        } else {
            (path.display().to_string(), open_maybe_gz(path)?)
        };
        Ok((name, Box::new(read_ahead(input))))
    }

    /// The capture opened and its limits checked, before anything is written.
    pub fn start(&self) -> Result<Capture> {
        let limits = self.limits()?;
        let (name, input) = self.open()?;
        Ok(Capture {
            name,
            input,
            limits,
            live: self.live,
        })
    }
}

/// An opened capture, ready to be read into flows.
pub struct Capture {
    name: String,
    input: Box<dyn Read + Send>,
    limits: Limits,
    live: bool,
}

impl Capture {
    /// Extracts the capture's flows, handing each to `on_flow` as it ends; the summary goes
    /// to stderr unless `quiet`.
    pub fn extract(
        self,
        quiet: bool,
        on_flow: &mut dyn FnMut(&flows::features::Flow) -> Result<()>,
    ) -> Result<Summary> {
        let Capture {
            name,
            input,
            limits,
            live,
        } = self;
        let started = Instant::now();
        let summary = flows::extract(&name, input, limits, live, on_flow)?;
        if !quiet {
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "{name}: {} in {secs:.2}s ({:.0} packets/s)",
                summary.line(),
                summary.packets as f64 / secs.max(1e-9)
            );
        }
        Ok(summary)
    }
}

#[derive(Args, Debug)]
pub struct FlowsArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// Where to write the flows (default: standard output).
    #[arg(long, value_name = "FILE", conflicts_with = "brokers")]
    pub out: Option<PathBuf>,
    /// Or publish each flow as a message (keyed by its Flow ID) to a Kafka topic.
    #[command(flatten)]
    pub kafka: BrokerArgs,
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
    /// The header to write: the corrected CIC-IDS2017 release's (`cic`) or the original
    /// CICFlowMeter export's (`cic-original`), for models trained on either.
    #[arg(long, value_enum, default_value_t = Schema::Cic)]
    pub schema: Schema,
    /// Add a `Label` column from a ground truth with `Flow ID` and `Label` columns (as
    /// `generate --pcap` writes); flows it does not name get an empty label, counted.
    #[arg(long, value_name = "CSV")]
    pub labels: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: FlowsArgs) -> Result<()> {
    if args.capture.pcap.is_none() {
        bail_input!("--pcap: expected a capture file or - for standard input");
    }
    let labels = args.labels.as_deref().map(read_labels).transpose()?;
    let publish = match args.kafka.connection()? {
        Some(connection) => Some((connection, args.kafka.topic()?)),
        None => None,
    };
    let capture = args.capture.start()?;
    let json = args.format == Format::Jsonl;
    if let Some((connection, topic)) = publish {
        let key = std::rc::Rc::new(std::cell::RefCell::new(String::new()));
        let lines = Publisher::new(&connection, &topic)?.lines(!json, key.clone());
        let mut writer = Writer::new(lines, args.schema, json, labels)?;
        let result = capture.extract(args.quiet, &mut |flow| {
            *key.borrow_mut() = flow.id();
            writer.write(flow)
        });
        report_unlabelled(writer.labels(), args.quiet);
        // Whatever was extracted is delivered, even from a truncated capture.
        writer.into_inner().finish()?;
        return result.map(|_| ());
    }
    let out = OutputFile::create(args.out.as_deref())?;
    let mut writer = Writer::new(out.writer()?, args.schema, json, labels)?;
    let result = capture.extract(args.quiet, &mut |flow| writer.write(flow));
    report_unlabelled(writer.labels(), args.quiet);
    drop(writer);
    // A truncated capture still leaves every flow up to the damage, whole.
    let keep = match &result {
        Ok(_) => true,
        Err(e) => crate::error::exit_code(e) == crate::error::EXIT_BAD_INPUT,
    };
    out.finish(keep)?;
    result.map(|_| ())
}

fn report_unlabelled(labels: Option<&Labels>, quiet: bool) {
    if let Some(labels) = labels.filter(|l| l.missing > 0 && !quiet) {
        eprintln!(
            "{} flows have no label in the ground truth (left empty)",
            labels.missing
        );
    }
}

/// A ground truth: `Flow ID` → `Label`.
fn read_labels(path: &Path) -> Result<Labels> {
    let name = path.display();
    let mut reader = csv::Reader::from_reader(open_maybe_gz(path)?);
    let headers = reader.headers()?.clone();
    let column = |want: &str| match headers.iter().position(|h| h.trim() == want) {
        Some(i) => Ok(i),
        None => Err(crate::error::bad_input(format!(
            "{name}: no '{want}' column"
        ))),
    };
    let (id, label) = (column("Flow ID")?, column("Label")?);
    let mut by_flow = std::collections::HashMap::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| crate::error::bad_input(format!("{name}: {e}")))?;
        let (Some(f), Some(l)) = (record.get(id), record.get(label)) else {
            bail_input!("{name}: line {}: expected a Flow ID and a Label", i + 2);
        };
        by_flow.insert(f.trim().to_string(), l.trim().to_string());
    }
    Ok(Labels {
        by_flow,
        missing: 0,
    })
}
