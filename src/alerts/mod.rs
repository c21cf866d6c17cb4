//! Alerts: every flagged row, as a record that outlives the response that flagged it. A
//! [`Pipeline`] writes them to a [`store::Store`] (SQLite or PostgreSQL), aggregating repeats,
//! and hands what it stored to the delivery [`sinks`] (webhook, syslog CEF, ECS file) and to
//! whoever listens (the server's event stream). `serve` and `predict --alerts-db` share it.

use csv::ByteRecord;
use serde_json::{Value, json};

use crate::data::feedback::Verdict;
use crate::data::sequence::parse_time;
use crate::score::{Scorer, Verdict as Scored};

mod pipeline;
pub mod sinks;
pub mod store;

pub use pipeline::{Counters, Options, Pipeline};

/// How urgent an alert is. Ordered: `Low < Medium < High`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Low, Severity::Medium, Severity::High];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// 1, 2, 3: stored beside the name so the store can keep the highest of repeats.
    pub fn rank(self) -> i64 {
        self as i64 + 1
    }
}

/// One alert: a flagged row, or several alike within the dedup window (`count`, first `time`
/// and `last_seen`). Times are microseconds since 1970 (UTC).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The store's id (0 before it is stored).
    pub id: i64,
    /// The first alarm's time: its row's own timestamp when it has one, else when it arrived.
    pub time: i64,
    pub last_seen: i64,
    pub count: i64,
    /// When its latest alarm arrived (retention counts from it).
    pub received: i64,
    pub model: String,
    /// The sha256 of the model's checkpoint file.
    pub checkpoint: String,
    /// The highest score among the alarms.
    pub score: f64,
    pub threshold: f64,
    pub severity: Severity,
    pub confidence: f64,
    /// A multiclass model's class.
    pub class: Option<String>,
    pub flow_id: Option<String>,
    pub src: Option<String>,
    pub src_port: Option<i64>,
    pub dst: Option<String>,
    pub dst_port: Option<i64>,
    pub protocol: Option<String>,
    /// The top reasons, when the row was explained (a JSON array).
    pub reasons: Option<Value>,
    /// The row's cells by column name: a JSON object's text, written once when the row is
    /// flagged (a map of values would be built, copied and dropped on the hot path).
    pub fields: String,
    pub verdict: Option<Verdict>,
    pub verdict_time: Option<i64>,
}

impl Alert {
    /// The alarms that are one alert within the dedup window: same model, both ends,
    /// destination port and class. None for a row that names neither end: nothing to say two
    /// such rows are the same event.
    pub fn dedup_key(&self) -> Option<String> {
        if self.src.is_none() && self.dst.is_none() {
            return None;
        }
        let port = self.dst_port.map_or(String::new(), |p| p.to_string());
        let part = |s: &Option<String>| s.clone().unwrap_or_default();
        Some(
            [
                self.model.as_str(),
                &part(&self.src),
                &part(&self.dst),
                &port,
                &part(&self.class),
            ]
            .join("\u{1f}"),
        )
    }

    /// The alert as the API, the event stream and the webhook give it.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "time": rfc3339_micros(self.time),
            "last_seen": rfc3339_micros(self.last_seen),
            "count": self.count,
            "received": rfc3339_micros(self.received),
            "model": self.model,
            "checkpoint_sha256": self.checkpoint,
            // Scores are f32s: written in their shortest form (0.69, not 0.6899999976158142).
            "score": self.score as f32,
            "threshold": self.threshold as f32,
            "severity": self.severity.as_str(),
            "confidence": self.confidence,
            "class": self.class,
            "flow_id": self.flow_id,
            "src": self.src,
            "src_port": self.src_port,
            "dst": self.dst,
            "dst_port": self.dst_port,
            "protocol": self.protocol,
            "reasons": self.reasons,
            "fields": serde_json::from_str::<Value>(&self.fields).unwrap_or(Value::Null),
            "verdict": self.verdict.map(Verdict::as_str),
            "verdict_time": self.verdict_time.map(rfc3339_micros),
        })
    }
}

/// Where a row's identifiers are among its columns (CICFlowMeter, Zeek `conn.log`, UNSW-NB15
/// and NetFlow-style names alike).
#[derive(Debug, Default, Clone)]
pub struct Fields {
    /// Each column's name as a JSON object key (`"Flow ID":`), escaped once.
    keys: Vec<String>,
    flow_id: Option<usize>,
    src: Option<usize>,
    dst: Option<usize>,
    src_port: Option<usize>,
    dst_port: Option<usize>,
    protocol: Option<usize>,
    time: Option<usize>,
}

impl Fields {
    pub fn locate(names: &[String]) -> Fields {
        let squash = |n: &str| -> String {
            n.chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .collect()
        };
        let squashed: Vec<String> = names.iter().map(|n| squash(n)).collect();
        let find = |aliases: &[&str]| squashed.iter().position(|n| aliases.contains(&n.as_str()));
        let keys = names
            .iter()
            .map(|n| format!("{}:", Value::from(n.as_str())))
            .collect();
        Fields {
            keys,
            flow_id: find(&["flowid", "uid"]),
            src: find(&[
                "srcip",
                "sourceip",
                "idorigh",
                "srcaddr",
                "saddr",
                "sourceaddress",
            ]),
            dst: find(&["dstip", "destinationip", "idresph", "dstaddr", "daddr"]),
            src_port: find(&["srcport", "sourceport", "idorigp", "sport"]),
            dst_port: find(&["dstport", "destinationport", "idrespp", "dport", "dsport"]),
            protocol: find(&["protocol", "proto", "protocoltype"]),
            time: find(&["timestamp", "ts", "stime", "time", "flowstarttime"]),
        }
    }
}

/// Where alerts come from: the model's name and its checkpoint's sha256.
#[derive(Debug, Clone)]
pub struct Origin {
    pub model: String,
    pub checkpoint: String,
}

/// The alert a flagged row makes: `record` is the row, its columns located by `fields`;
/// `received` (µs) stands in for a row without a readable timestamp.
pub fn alert(
    origin: &Origin,
    scorer: &Scorer,
    fields: &Fields,
    record: &ByteRecord,
    verdict: &Scored,
    (threshold, received): (f32, i64),
) -> Alert {
    let cells: Vec<std::borrow::Cow<str>> = record.iter().map(String::from_utf8_lossy).collect();
    let cell = |i: Option<usize>| {
        i.and_then(|i| cells.get(i))
            .map(|c| c.trim())
            .filter(|c| !c.is_empty() && *c != "-")
    };
    let text = |i| cell(i).map(str::to_string);
    let port = |i| {
        cell(i)
            .and_then(|c| c.parse::<f64>().ok())
            .map(|p| p as i64)
    };
    let time = cell(fields.time)
        .and_then(parse_time)
        .map_or(received, |s| (s * 1e6).round() as i64);
    let (severity, confidence) = grade(scorer, verdict, threshold);
    let mut row: Vec<u8> = Vec::with_capacity(32 * cells.len());
    row.push(b'{');
    for (i, (key, cell)) in fields.keys.iter().zip(&cells).enumerate() {
        if i > 0 {
            row.push(b',');
        }
        row.extend_from_slice(key.as_bytes());
        // Writing a string's JSON into memory cannot fail.
        let _ = serde_json::to_writer(&mut row, cell.as_ref());
    }
    row.push(b'}');
    let row = String::from_utf8(row)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    Alert {
        id: 0,
        time,
        last_seen: time,
        count: 1,
        received,
        model: origin.model.clone(),
        checkpoint: origin.checkpoint.clone(),
        score: verdict.score as f64,
        threshold: threshold as f64,
        severity,
        confidence,
        class: verdict.class.map(|(c, _)| c.to_string()),
        flow_id: text(fields.flow_id),
        src: text(fields.src),
        src_port: port(fields.src_port),
        dst: text(fields.dst),
        dst_port: port(fields.dst_port),
        protocol: text(fields.protocol),
        reasons: verdict
            .reasons
            .map(|r| serde_json::to_value(r).unwrap_or(Value::Null)),
        fields: row,
        verdict: None,
        verdict_time: None,
    }
}

/// A flagged row's severity and confidence. An ensemble grades by its members' votes. Any
/// other model grades against the training rows it flagged itself: below their median score
/// is low, up to their 90th percentile medium, above it high; the confidence is the share of
/// those rows scoring below this one (1 where the model flagged no training row).
pub fn grade(scorer: &Scorer, verdict: &Scored, threshold: f32) -> (Severity, f64) {
    if let Some(e) = &verdict.ensemble {
        let severity = Severity::parse(e.severity).unwrap_or(Severity::Low);
        return (severity, e.confidence);
    }
    let quantiles = scorer.train_quantiles();
    let flagged = &quantiles[quantiles.partition_point(|&s| s < threshold)..];
    if flagged.is_empty() {
        return (Severity::High, 1.0);
    }
    let rank = flagged.partition_point(|&s| s < verdict.score) as f64 / flagged.len() as f64;
    let severity = match rank {
        r if r < 0.5 => Severity::Low,
        r if r <= 0.9 => Severity::Medium,
        _ => Severity::High,
    };
    (severity, rank)
}

/// Microseconds since 1970 now.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// `2026-12-06T09:41:07.123456Z`.
pub fn rfc3339_micros(micros: i64) -> String {
    let (y, m, d, h, min, s) = crate::clock::utc(micros.div_euclid(1_000_000));
    let frac = micros.rem_euclid(1_000_000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{frac:06}Z")
}

/// A time given to the API or the command line (RFC 3339, a date, or seconds since 1970) in
/// microseconds since 1970.
pub fn parse_micros(text: &str) -> Option<i64> {
    let trimmed = text.trim();
    let seconds = parse_time(trimmed.strip_suffix('Z').unwrap_or(trimmed))?;
    Some((seconds * 1e6).round() as i64)
}

/// A fresh database on the PostgreSQL server `ANOMALY_TEST_POSTGRES` names (`.ci/run` starts
/// one), as a URL; none, saying why, where the variable is not set.
#[cfg(test)]
pub(crate) fn test_postgres(name: &str) -> Option<String> {
    let Ok(server) = std::env::var("ANOMALY_TEST_POSTGRES") else {
        eprintln!(
            "skipped: ANOMALY_TEST_POSTGRES is not set (`.ci/run` starts a PostgreSQL and sets it)"
        );
        return None;
    };
    Some(store::create_database(&server, &format!("{name}_{}", std::process::id())).unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_found_under_each_tools_names() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cic = Fields::locate(&names(&[
            "Flow ID",
            " Source IP",
            " Source Port",
            " Destination IP",
            " Destination Port",
            " Protocol",
            " Timestamp",
        ]));
        assert_eq!(
            (cic.flow_id, cic.src, cic.src_port, cic.dst, cic.dst_port),
            (Some(0), Some(1), Some(2), Some(3), Some(4))
        );
        assert_eq!((cic.protocol, cic.time), (Some(5), Some(6)));
        let zeek = Fields::locate(&names(&["ts", "uid", "id.orig_h", "id.resp_p"]));
        assert_eq!(
            (zeek.time, zeek.flow_id, zeek.src, zeek.dst_port),
            (Some(0), Some(1), Some(2), Some(3))
        );
        assert_eq!(Fields::locate(&names(&["duration"])).src, None);
    }

    #[test]
    fn times_print_and_parse_to_the_microsecond() {
        assert_eq!(
            rfc3339_micros(1_499_075_758_250_001),
            "2017-07-03T09:55:58.250001Z"
        );
        assert_eq!(
            parse_micros("2017-07-03T09:55:58.25Z"),
            Some(1_499_075_758_250_000)
        );
        assert_eq!(parse_micros("1499075758"), Some(1_499_075_758_000_000));
        assert_eq!(parse_micros("yesterday"), None);
    }
}
