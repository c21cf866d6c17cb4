//! Delivery: each sink (a webhook, a syslog receiver, an ECS JSON file) has its own thread and
//! a bounded queue, so a slow or dead receiver never slows scoring: when a queue is full its
//! oldest alert is dropped and counted. A failed delivery is retried with exponential backoff
//! (0.5 s doubling to 30 s) until it succeeds, the receiver refuses it for good, or the queue
//! overflows.

use std::collections::VecDeque;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::Result;
use prometheus_client::encoding::EncodeLabelSet;
use serde_json::{Value, json};

use super::pipeline::Counters;
use super::{Alert, Severity, rfc3339_micros};
use crate::error::bad_input;

/// Alerts a sink holds while its receiver is slow or down.
pub const QUEUE: usize = 10_000;

/// Alerts sent in one webhook request or written between two flushes, at most.
const BATCH: usize = 100;

const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(30);

/// A sink's label on its metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Label {
    pub sink: String,
}

/// Where alerts go.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A JSON POST per batch: `{"text": summary, "alerts": [...]}`.
    Webhook(String),
    /// RFC 5424 messages with a CEF payload, over UDP (a datagram each) or TCP (octet-counted
    /// frames, RFC 6587).
    Syslog { tcp: bool, addr: String },
    /// ECS-shaped JSON lines, the file renamed to `FILE.1` (`.2` … up to `.5`) when it
    /// reaches `max_bytes`.
    File { path: PathBuf, max_bytes: u64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub target: Target,
    /// Alerts below this severity are not sent.
    pub min_severity: Severity,
}

impl Target {
    /// `udp://host:514` or `tcp://host:601`.
    pub fn syslog(url: &str) -> Result<Target> {
        let (tcp, addr) = match url.split_once("://") {
            Some(("udp", a)) => (false, a),
            Some(("tcp", a)) => (true, a),
            _ => None.ok_or_else(|| {
                bad_input(format!(
                    "--alert-syslog {url}: expected udp://HOST:PORT or tcp://HOST:PORT"
                ))
            })?,
        };
        if addr
            .rsplit_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_err())
        {
            return Err(bad_input(format!(
                "--alert-syslog {url}: expected a port after the host, e.g. udp://{addr}:514"
            )));
        }
        Ok(Target::Syslog {
            tcp,
            addr: addr.to_string(),
        })
    }

    /// `http://…` or `https://…`.
    pub fn webhook(url: &str) -> Result<Target> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(bad_input(format!(
                "--alert-webhook {url}: expected an http:// or https:// URL"
            )));
        }
        Ok(Target::Webhook(url.to_string()))
    }

    fn label(&self) -> String {
        match self {
            Target::Webhook(_) => "webhook".into(),
            Target::Syslog { tcp: false, .. } => "syslog_udp".into(),
            Target::Syslog { tcp: true, .. } => "syslog_tcp".into(),
            Target::File { .. } => "file".into(),
        }
    }
}

/// A bounded queue that drops its oldest when full, and how many alerts its thread is
/// delivering now.
struct Queue {
    items: Mutex<(VecDeque<Alert>, usize)>,
    ready: Condvar,
}

struct Sink {
    spec: Spec,
    queue: Arc<Queue>,
    dropped: prometheus_client::metrics::counter::Counter,
}

pub struct Sinks(Vec<Sink>);

impl Sinks {
    /// Starts a thread per sink (a file sink opens its file now, so a bad path is an error
    /// before anything is scored).
    pub fn start(specs: &[Spec], counters: &Counters) -> Result<Sinks> {
        let mut sinks = Vec::new();
        for spec in specs {
            let label = Label {
                sink: spec.target.label(),
            };
            let queue = Arc::new(Queue {
                items: Mutex::new((VecDeque::new(), 0)),
                ready: Condvar::new(),
            });
            let mut deliver = Deliver::open(&spec.target)?;
            let (q, c, l) = (queue.clone(), counters.clone(), label.clone());
            std::thread::Builder::new()
                .name(format!("alerts-{}", label.sink))
                .spawn(move || deliver.run(&q, &c, &l))?;
            sinks.push(Sink {
                spec: spec.clone(),
                queue,
                dropped: counters.dropped.get_or_create(&label).clone(),
            });
        }
        Ok(Sinks(sinks))
    }

    /// Queues the alerts each sink takes (never blocks on a receiver).
    pub fn push(&self, alerts: &[Alert]) {
        for sink in &self.0 {
            let mut items = sink.queue.items.lock().unwrap_or_else(|e| e.into_inner());
            for a in alerts
                .iter()
                .filter(|a| a.severity >= sink.spec.min_severity)
            {
                if items.0.len() == QUEUE {
                    items.0.pop_front();
                    sink.dropped.inc();
                }
                items.0.push_back(a.clone());
            }
            sink.queue.ready.notify_all();
        }
    }

    /// Waits until every sink has delivered what it holds, or `timeout` passes; the number
    /// still undelivered.
    pub fn drain(&self, timeout: Duration) -> usize {
        let deadline = std::time::Instant::now() + timeout;
        let mut left = 0;
        for sink in &self.0 {
            let mut items = sink.queue.items.lock().unwrap_or_else(|e| e.into_inner());
            while !items.0.is_empty() || items.1 > 0 {
                let wait = deadline.saturating_duration_since(std::time::Instant::now());
                if wait.is_zero() {
                    break;
                }
                items = sink
                    .queue
                    .ready
                    .wait_timeout(items, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            left += items.0.len() + items.1;
        }
        left
    }
}

/// A sink's connection or file.
enum Deliver {
    Webhook(ureq::Agent, String),
    Udp(UdpSocket, String),
    Tcp(Option<TcpStream>, String),
    File(PathBuf, u64, std::fs::File),
}

/// Why a delivery failed: worth retrying, or not.
enum Failure {
    Retry(String),
    Refused(String),
}

impl Deliver {
    fn open(target: &Target) -> Result<Deliver> {
        Ok(match target {
            Target::Webhook(url) => {
                let agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(10)))
                    .build()
                    .into();
                Deliver::Webhook(agent, url.clone())
            }
            Target::Syslog { tcp: false, addr } => {
                let socket = UdpSocket::bind(("0.0.0.0", 0))?;
                Deliver::Udp(socket, addr.clone())
            }
            Target::Syslog { tcp: true, addr } => Deliver::Tcp(None, addr.clone()),
            Target::File { path, max_bytes } => {
                let file = open_append(path)?;
                Deliver::File(path.clone(), *max_bytes, file)
            }
        })
    }

    /// Takes up to [`BATCH`] alerts at a time and delivers them, retrying with backoff.
    fn run(&mut self, queue: &Queue, counters: &Counters, label: &Label) {
        let host = crate::device::hostname();
        loop {
            let batch: Vec<Alert> = {
                let mut items = queue.items.lock().unwrap_or_else(|e| e.into_inner());
                while items.0.is_empty() {
                    items = queue.ready.wait(items).unwrap_or_else(|e| e.into_inner());
                }
                let n = items.0.len().min(BATCH);
                items.1 = n;
                items.0.drain(..n).collect()
            };
            let mut wait = FIRST_RETRY;
            loop {
                match self.send(&batch, &host) {
                    Ok(()) => {
                        counters
                            .delivered
                            .get_or_create(label)
                            .inc_by(batch.len() as u64);
                        break;
                    }
                    Err(Failure::Refused(why)) => {
                        eprintln!("anomaly: alert {}: refused, dropped: {why}", label.sink);
                        counters
                            .dropped
                            .get_or_create(label)
                            .inc_by(batch.len() as u64);
                        break;
                    }
                    Err(Failure::Retry(why)) => {
                        counters.retried.get_or_create(label).inc();
                        eprintln!(
                            "anomaly: alert {}: {why}; retrying in {:.1}s",
                            label.sink,
                            wait.as_secs_f64()
                        );
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(LAST_RETRY);
                    }
                }
            }
            queue.items.lock().unwrap_or_else(|e| e.into_inner()).1 = 0;
            queue.ready.notify_all();
        }
    }

    fn send(&mut self, batch: &[Alert], host: &str) -> Result<(), Failure> {
        let retry = |e: &dyn std::fmt::Display| Failure::Retry(e.to_string());
        match self {
            Deliver::Webhook(agent, url) => {
                let response = agent
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .send(webhook_body(batch).to_string())
                    .map_err(|e| retry(&e))?;
                match response.status().as_u16() {
                    200..=299 => Ok(()),
                    s @ (408 | 429 | 500..) => Err(Failure::Retry(format!("{url} answered {s}"))),
                    s => Err(Failure::Refused(format!("{url} answered {s}"))),
                }
            }
            Deliver::Udp(socket, addr) => batch.iter().try_for_each(|a| {
                socket
                    .send_to(syslog_message(a, host).as_bytes(), addr.as_str())
                    .map(|_| ())
                    .map_err(|e| retry(&e))
            }),
            Deliver::Tcp(stream, addr) => {
                if stream.is_none() {
                    *stream = Some(TcpStream::connect(addr.as_str()).map_err(|e| retry(&e))?);
                }
                let mut frames = Vec::new();
                for a in batch {
                    let m = syslog_message(a, host);
                    frames.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
                }
                let written = stream
                    .as_mut()
                    .map(|s| s.write_all(&frames).and_then(|_| s.flush()));
                match written {
                    Some(Ok(())) => Ok(()),
                    Some(Err(e)) => {
                        // A broken connection is opened again on the retry.
                        *stream = None;
                        Err(retry(&e))
                    }
                    None => Err(Failure::Retry("not connected".into())),
                }
            }
            Deliver::File(path, max_bytes, file) => {
                let mut size = file.metadata().map(|m| m.len()).unwrap_or(0);
                for a in batch {
                    let mut line = serde_json::to_vec(&ecs(a, host)).map_err(|e| retry(&e))?;
                    line.push(b'\n');
                    // A line that would take the file past its size starts the next one.
                    if size > 0 && size + line.len() as u64 > *max_bytes {
                        *file = rotate(path).map_err(|e| retry(&e))?;
                        size = 0;
                    }
                    file.write_all(&line).map_err(|e| retry(&e))?;
                    size += line.len() as u64;
                }
                Ok(())
            }
        }
    }
}

fn open_append(path: &std::path::Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| bad_input(format!("--alert-file {}: cannot open: {e}", path.display())))
}

/// `FILE` becomes `FILE.1` (the older ones shift up to `.5`), and a new `FILE` is opened.
fn rotate(path: &std::path::Path) -> Result<std::fs::File> {
    let numbered = |i: usize| PathBuf::from(format!("{}.{i}", path.display()));
    for i in (1..5).rev() {
        if numbered(i).exists() {
            std::fs::rename(numbered(i), numbered(i + 1))?;
        }
    }
    std::fs::rename(path, numbered(1))?;
    open_append(path)
}

/// A webhook's body: a one-line summary (`text`, which chat receivers show) and the alerts.
fn webhook_body(batch: &[Alert]) -> Value {
    let lines: Vec<String> = batch.iter().map(summary).collect();
    json!({
        "text": lines.join("\n"),
        "alerts": batch.iter().map(Alert::to_json).collect::<Vec<_>>(),
    })
}

/// `high anomaly from 10.0.0.5 to 10.0.0.9:80 (model nsl, score 0.97, 3 alarms)`.
fn summary(a: &Alert) -> String {
    let end = |ip: &Option<String>, port: Option<i64>| match (ip, port) {
        (Some(ip), Some(p)) => format!("{ip}:{p}"),
        (Some(ip), None) => ip.clone(),
        (None, _) => "?".into(),
    };
    format!(
        "{} anomaly from {} to {} (model {}, score {}, {} alarm{})",
        a.severity.as_str(),
        end(&a.src, None),
        end(&a.dst, a.dst_port),
        a.model,
        a.score,
        a.count,
        if a.count == 1 { "" } else { "s" }
    )
}

/// CEF's 0–10 severity.
fn cef_severity(s: Severity) -> u8 {
    match s {
        Severity::Low => 3,
        Severity::Medium => 6,
        Severity::High => 9,
    }
}

/// An RFC 5424 message (facility local0; severity notice, warning or error) whose text is a
/// CEF event: `<PRI>1 TIME HOST anomaly - alert - CEF:0|anomaly|anomaly|VERSION|…`.
fn syslog_message(a: &Alert, host: &str) -> String {
    let level = match a.severity {
        Severity::Low => 5,
        Severity::Medium => 4,
        Severity::High => 3,
    };
    let pri = 16 * 8 + level;
    format!(
        "<{pri}>1 {} {host} anomaly - alert - {}",
        rfc3339_micros(a.last_seen),
        cef(a)
    )
}

/// A CEF event: the header's signature is the model, its name says what and where, and the
/// extension carries ArcSight's standard keys (`src`, `dpt`, `rt` …) and custom strings and
/// numbers with their labels.
fn cef(a: &Alert) -> String {
    let header = |s: &str| s.replace('\\', "\\\\").replace('|', "\\|");
    let mut ext: Vec<(&str, String)> = vec![
        ("rt", (a.last_seen / 1000).to_string()),
        ("start", (a.time / 1000).to_string()),
        ("cnt", a.count.to_string()),
        ("externalId", a.id.to_string()),
    ];
    let mut opt = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            ext.push((k, v));
        }
    };
    opt("src", a.src.clone());
    opt("spt", a.src_port.map(|p| p.to_string()));
    opt("dst", a.dst.clone());
    opt("dpt", a.dst_port.map(|p| p.to_string()));
    opt("proto", a.protocol.clone());
    opt("cs1", a.flow_id.clone());
    opt("cs1Label", a.flow_id.as_ref().map(|_| "flowId".into()));
    opt("cs2", a.class.clone());
    opt("cs2Label", a.class.as_ref().map(|_| "class".into()));
    ext.push(("cs3", a.checkpoint.clone()));
    ext.push(("cs3Label", "checkpointSha256".into()));
    ext.push(("cfp1", a.score.to_string()));
    ext.push(("cfp1Label", "score".into()));
    ext.push(("cfp2", a.threshold.to_string()));
    ext.push(("cfp2Label", "threshold".into()));
    let ext: Vec<String> = ext
        .into_iter()
        .map(|(k, v)| format!("{k}={}", cef_value(&v)))
        .collect();
    format!(
        "CEF:0|anomaly|anomaly|{}|{}|{} network anomaly|{}|{}",
        env!("CARGO_PKG_VERSION"),
        header(&a.model),
        header(a.severity.as_str()),
        cef_severity(a.severity),
        ext.join(" ")
    )
}

/// An extension value with CEF's escapes (`\`, `=`, and line breaks).
fn cef_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// The alert in the Elastic Common Schema: `event`, `source`, `destination`, `network`,
/// `rule`, `observer`, with what ECS has no field for under `anomaly`.
fn ecs(a: &Alert, host: &str) -> Value {
    let end = |ip: &Option<String>, port: Option<i64>| {
        let mut v = json!({});
        if let Some(ip) = ip {
            v["ip"] = json!(ip);
        }
        if let Some(p) = port {
            v["port"] = json!(p);
        }
        v
    };
    json!({
        "@timestamp": rfc3339_micros(a.last_seen),
        "ecs": {"version": "8.11.0"},
        "message": summary(a),
        "event": {
            "kind": "alert",
            "category": ["network", "intrusion_detection"],
            "type": ["info"],
            "id": a.id.to_string(),
            "start": rfc3339_micros(a.time),
            "end": rfc3339_micros(a.last_seen),
            "created": rfc3339_micros(a.received),
            "severity": cef_severity(a.severity),
            "risk_score": a.score,
            "count": a.count,
        },
        "source": end(&a.src, a.src_port),
        "destination": end(&a.dst, a.dst_port),
        "network": network(a.protocol.as_deref()),
        "rule": {"name": a.model, "id": a.checkpoint},
        "observer": {"hostname": host, "product": "anomaly", "vendor": "anomaly", "version": env!("CARGO_PKG_VERSION")},
        "anomaly": {
            "severity": a.severity.as_str(),
            "score": a.score,
            "threshold": a.threshold,
            "confidence": a.confidence,
            "class": a.class,
            "flow_id": a.flow_id,
            "reasons": a.reasons,
        },
    })
}

/// ECS's `network`: the transport's name, and its IANA number where the row gave one
/// (CICFlowMeter writes 6, Zeek `tcp`).
fn network(protocol: Option<&str>) -> Value {
    let Some(p) = protocol else {
        return json!({});
    };
    match p.parse::<u8>() {
        Ok(n) => {
            let name = match n {
                1 => "icmp",
                6 => "tcp",
                17 => "udp",
                58 => "ipv6-icmp",
                _ => "",
            };
            let mut v = json!({"iana_number": n.to_string()});
            if !name.is_empty() {
                v["transport"] = json!(name);
            }
            v
        }
        Err(_) => json!({"transport": p.to_ascii_lowercase()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: i64, severity: Severity) -> Alert {
        Alert {
            id,
            time: 1_767_603_601_000_000,
            last_seen: 1_767_603_601_000_000,
            count: 1,
            received: 1_767_603_601_000_000,
            model: "ids|v2".into(),
            checkpoint: "ab".into(),
            score: 0.75,
            threshold: 0.5,
            severity,
            confidence: 0.5,
            class: Some("DoS=Hulk".into()),
            flow_id: None,
            src: Some("10.0.0.5".into()),
            src_port: None,
            dst: Some("10.0.0.9".into()),
            dst_port: Some(80),
            protocol: Some("17".into()),
            reasons: None,
            fields: "{}".into(),
            verdict: None,
            verdict_time: None,
        }
    }

    fn counters() -> Counters {
        crate::alerts::pipeline::tests_counters()
    }

    #[test]
    fn cef_escapes_its_separators_and_grades_severity() {
        let line = syslog_message(&alert(7, Severity::High), "sensor1");
        assert!(
            line.starts_with("<131>1 2026-01-05T09:00:01.000000Z sensor1 anomaly - alert - CEF:0|"),
            "{line}"
        );
        assert!(line.contains("|ids\\|v2|high network anomaly|9|"), "{line}");
        assert!(line.contains(" cs2=DoS\\=Hulk cs2Label=class "), "{line}");
        assert!(
            line.contains(" externalId=7 src=10.0.0.5 dst=10.0.0.9 dpt=80 proto=17 "),
            "{line}"
        );
        assert_eq!(
            ecs(&alert(7, Severity::Low), "h")["network"]["transport"],
            "udp"
        );
    }

    #[test]
    fn a_file_sink_keeps_only_its_severities_and_rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.ndjson");
        let max_bytes = 6000;
        let spec = Spec {
            target: Target::File {
                path: path.clone(),
                max_bytes,
            },
            min_severity: Severity::Medium,
        };
        let sinks = Sinks::start(&[spec], &counters()).unwrap();
        let alerts: Vec<Alert> = (0..30)
            .map(|i| alert(i, Severity::ALL[i as usize % 3]))
            .collect();
        for a in &alerts {
            sinks.push(std::slice::from_ref(a));
        }
        assert_eq!(sinks.drain(Duration::from_secs(10)), 0);
        let mut ids = Vec::new();
        let oldest_first = (1..=5)
            .rev()
            .map(|i| path.with_extension(format!("ndjson.{i}")));
        for file in oldest_first.chain([path.clone()]) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            assert!(
                text.len() as u64 <= max_bytes,
                "{}: {} bytes",
                file.display(),
                text.len()
            );
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                ids.push(v["event"]["id"].as_str().unwrap().parse::<i64>().unwrap());
            }
        }
        let want: Vec<i64> = (0..30).filter(|i| i % 3 != 0).collect();
        assert_eq!(
            ids, want,
            "medium and high only, in order, across the rotated files"
        );
        assert!(
            path.with_extension("ndjson.2").exists(),
            "rotated at least twice"
        );
    }

    #[test]
    fn a_full_queue_drops_its_oldest_and_counts_them() {
        // Nothing listens on port 9 of loopback: every delivery fails and is retried.
        let spec = Spec {
            target: Target::syslog("tcp://127.0.0.1:9").unwrap(),
            min_severity: Severity::Low,
        };
        let c = counters();
        let sinks = Sinks::start(&[spec], &c).unwrap();
        let alerts: Vec<Alert> = (0..QUEUE as i64 + 500)
            .map(|i| alert(i, Severity::Low))
            .collect();
        sinks.push(&alerts);
        let label = Label {
            sink: "syslog_tcp".into(),
        };
        let dropped = c.dropped.get_or_create(&label).get();
        // The thread may have taken one batch out before the queue filled.
        assert!((400..=500).contains(&dropped), "{dropped} dropped");
        let queue = sinks.0[0].queue.items.lock().unwrap();
        // Each alert is queued, being delivered, or dropped and counted: none vanishes.
        assert_eq!(queue.0.len() + queue.1 + dropped as usize, QUEUE + 500);
        assert!(queue.0.len() + BATCH >= QUEUE);
        assert_eq!(
            queue.0.back().unwrap().id,
            QUEUE as i64 + 499,
            "the newest kept"
        );
    }
}
