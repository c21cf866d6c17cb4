//! Flow records as CSV (the corrected CIC-IDS2017 release's header, or the original
//! CICFlowMeter export's) or JSON lines.

use std::io::Write;

use anyhow::Result;

use super::features::{Flow, IDENTIFIERS, NUMERIC};

/// Which header the CSV carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Schema {
    /// The corrected release (Engelen, Rimmer and Joosen, 2021).
    Cic,
    /// The original CIC-IDS2017 export (leading spaces, `Fwd Header Length` twice, no RST,
    /// ICMP or TCP-time columns), for models trained on the original CSVs.
    CicOriginal,
}

/// The original export's header, as its files spell it (GeneratedLabelledFlows, without
/// `Label`), and for each column the corrected release's column it holds.
const ORIGINAL: [(&str, &str); 84] = [
    ("Flow ID", "Flow ID"),
    (" Source IP", "Src IP"),
    (" Source Port", "Src Port"),
    (" Destination IP", "Dst IP"),
    (" Destination Port", "Dst Port"),
    (" Protocol", "Protocol"),
    (" Timestamp", "Timestamp"),
    (" Flow Duration", "Flow Duration"),
    (" Total Fwd Packets", "Total Fwd Packet"),
    (" Total Backward Packets", "Total Bwd packets"),
    ("Total Length of Fwd Packets", "Total Length of Fwd Packet"),
    (" Total Length of Bwd Packets", "Total Length of Bwd Packet"),
    (" Fwd Packet Length Max", "Fwd Packet Length Max"),
    (" Fwd Packet Length Min", "Fwd Packet Length Min"),
    (" Fwd Packet Length Mean", "Fwd Packet Length Mean"),
    (" Fwd Packet Length Std", "Fwd Packet Length Std"),
    ("Bwd Packet Length Max", "Bwd Packet Length Max"),
    (" Bwd Packet Length Min", "Bwd Packet Length Min"),
    (" Bwd Packet Length Mean", "Bwd Packet Length Mean"),
    (" Bwd Packet Length Std", "Bwd Packet Length Std"),
    ("Flow Bytes/s", "Flow Bytes/s"),
    (" Flow Packets/s", "Flow Packets/s"),
    (" Flow IAT Mean", "Flow IAT Mean"),
    (" Flow IAT Std", "Flow IAT Std"),
    (" Flow IAT Max", "Flow IAT Max"),
    (" Flow IAT Min", "Flow IAT Min"),
    ("Fwd IAT Total", "Fwd IAT Total"),
    (" Fwd IAT Mean", "Fwd IAT Mean"),
    (" Fwd IAT Std", "Fwd IAT Std"),
    (" Fwd IAT Max", "Fwd IAT Max"),
    (" Fwd IAT Min", "Fwd IAT Min"),
    ("Bwd IAT Total", "Bwd IAT Total"),
    (" Bwd IAT Mean", "Bwd IAT Mean"),
    (" Bwd IAT Std", "Bwd IAT Std"),
    (" Bwd IAT Max", "Bwd IAT Max"),
    (" Bwd IAT Min", "Bwd IAT Min"),
    ("Fwd PSH Flags", "Fwd PSH Flags"),
    (" Bwd PSH Flags", "Bwd PSH Flags"),
    (" Fwd URG Flags", "Fwd URG Flags"),
    (" Bwd URG Flags", "Bwd URG Flags"),
    (" Fwd Header Length", "Fwd Header Length"),
    (" Bwd Header Length", "Bwd Header Length"),
    ("Fwd Packets/s", "Fwd Packets/s"),
    (" Bwd Packets/s", "Bwd Packets/s"),
    (" Min Packet Length", "Packet Length Min"),
    (" Max Packet Length", "Packet Length Max"),
    (" Packet Length Mean", "Packet Length Mean"),
    (" Packet Length Std", "Packet Length Std"),
    (" Packet Length Variance", "Packet Length Variance"),
    ("FIN Flag Count", "FIN Flag Count"),
    (" SYN Flag Count", "SYN Flag Count"),
    (" RST Flag Count", "RST Flag Count"),
    (" PSH Flag Count", "PSH Flag Count"),
    (" ACK Flag Count", "ACK Flag Count"),
    (" URG Flag Count", "URG Flag Count"),
    (" CWR Flag Count", "CWR Flag Count"),
    (" ECE Flag Count", "ECE Flag Count"),
    (" Down/Up Ratio", "Down/Up Ratio"),
    (" Average Packet Size", "Average Packet Size"),
    (" Avg Fwd Segment Size", "Fwd Segment Size Avg"),
    (" Avg Bwd Segment Size", "Bwd Segment Size Avg"),
    (" Fwd Header Length", "Fwd Header Length"),
    ("Fwd Avg Bytes/Bulk", "Fwd Bytes/Bulk Avg"),
    (" Fwd Avg Packets/Bulk", "Fwd Packet/Bulk Avg"),
    (" Fwd Avg Bulk Rate", "Fwd Bulk Rate Avg"),
    (" Bwd Avg Bytes/Bulk", "Bwd Bytes/Bulk Avg"),
    (" Bwd Avg Packets/Bulk", "Bwd Packet/Bulk Avg"),
    ("Bwd Avg Bulk Rate", "Bwd Bulk Rate Avg"),
    ("Subflow Fwd Packets", "Subflow Fwd Packets"),
    (" Subflow Fwd Bytes", "Subflow Fwd Bytes"),
    (" Subflow Bwd Packets", "Subflow Bwd Packets"),
    (" Subflow Bwd Bytes", "Subflow Bwd Bytes"),
    ("Init_Win_bytes_forward", "FWD Init Win Bytes"),
    (" Init_Win_bytes_backward", "Bwd Init Win Bytes"),
    (" act_data_pkt_fwd", "Fwd Act Data Pkts"),
    (" min_seg_size_forward", "Fwd Seg Size Min"),
    ("Active Mean", "Active Mean"),
    (" Active Std", "Active Std"),
    (" Active Max", "Active Max"),
    (" Active Min", "Active Min"),
    ("Idle Mean", "Idle Mean"),
    (" Idle Std", "Idle Std"),
    (" Idle Max", "Idle Max"),
    (" Idle Min", "Idle Min"),
];

/// The CSV header of `schema`.
pub fn header(schema: Schema) -> Vec<String> {
    match schema {
        Schema::Cic => IDENTIFIERS
            .iter()
            .chain(&NUMERIC)
            .map(|s| s.to_string())
            .collect(),
        Schema::CicOriginal => ORIGINAL.iter().map(|(name, _)| name.to_string()).collect(),
    }
}

/// The schema whose columns hold every one of `wanted`: the corrected release's, else the
/// original export's; else `Err` with the names the corrected one lacks.
pub fn schema_for(wanted: &[&str]) -> Result<Schema, Vec<String>> {
    let missing = |schema: Schema| -> Vec<String> {
        let have: Vec<String> = header(schema)
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let absent = wanted
            .iter()
            .filter(|w| !have.iter().any(|h| h == w.trim()));
        absent.map(|w| w.trim().to_string()).collect()
    };
    let corrected = missing(Schema::Cic);
    if corrected.is_empty() {
        Ok(Schema::Cic)
    } else if missing(Schema::CicOriginal).is_empty() {
        Ok(Schema::CicOriginal)
    } else {
        Err(corrected)
    }
}

/// The columns that say which flow a score is for: Flow ID, both ends and the time.
pub fn identifiers(schema: Schema) -> Vec<String> {
    let names = header(schema);
    [0, 1, 2, 3, 4, 6]
        .map(|i| names[i].trim().to_string())
        .to_vec()
}

/// A flow's values as text, in the corrected release's column order.
pub fn values(flow: &Flow) -> Vec<String> {
    let mut row = Row::default();
    row.fill(flow);
    (0..row.ends.len())
        .map(|i| row.get(i).to_string())
        .collect()
}

/// A flow's fields as text in one buffer that is reused from flow to flow (a String per
/// field was most of `flows`' allocations).
#[derive(Default)]
pub struct Row {
    text: String,
    ends: Vec<usize>,
}

impl Row {
    /// The `i`th field (the corrected release's order).
    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    pub fn fill(&mut self, flow: &Flow) {
        use std::fmt::Write as _;
        self.text.clear();
        self.ends.clear();
        let (y, mo, d, h, mi, s) = crate::clock::utc(flow.start.div_euclid(1_000_000));
        let micros = flow.start.rem_euclid(1_000_000);
        let t = &mut self.text;
        let ids: [&dyn Fn(&mut String); 7] = [
            &|t| t.push_str(&flow.id()),
            &|t| write!(t, "{}", flow.src).expect("writing to a String"),
            &|t| t.push_str(itoa::Buffer::new().format(flow.src_port)),
            &|t| write!(t, "{}", flow.dst).expect("writing to a String"),
            &|t| t.push_str(itoa::Buffer::new().format(flow.dst_port)),
            &|t| t.push_str(itoa::Buffer::new().format(flow.protocol)),
            &|t| {
                write!(t, "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{micros:06}")
                    .expect("writing to a String")
            },
        ];
        for id in ids {
            id(t);
            self.ends.push(t.len());
        }
        for v in flow.features() {
            number(t, v);
            self.ends.push(t.len());
        }
    }
}

/// Shortest text that reads back as the same number (whole numbers without a fraction);
/// Java's spellings for the rates that divide by a zero duration.
fn number(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else {
        out.push_str(ryu::Buffer::new().format_finite(v));
    }
}

/// Writes flows as CSV or JSON lines, one record per flow, flushed after each so a reader
/// downstream sees a flow as soon as it ends.
pub struct Writer<W: Write> {
    out: Sink<W>,
    /// Each output column's index in [`values`].
    picks: Vec<usize>,
    names: Vec<String>,
    /// A `Label` column from a ground truth by Flow ID; what it lacks is counted.
    labels: Option<Labels>,
    row: Row,
}

/// Flow ID → label, and how many flows it had none for.
pub struct Labels {
    pub by_flow: std::collections::HashMap<String, String>,
    pub missing: u64,
}

enum Sink<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Json(W),
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, schema: Schema, json: bool, labels: Option<Labels>) -> Result<Writer<W>> {
        let corrected = header(Schema::Cic);
        let mut names = header(schema);
        if labels.is_some() {
            names.push("Label".into());
        }
        let picks = match schema {
            Schema::Cic => (0..corrected.len()).collect(),
            Schema::CicOriginal => ORIGINAL
                .iter()
                .map(|(_, source)| {
                    let at = corrected.iter().position(|c| c == source);
                    at.expect("every original column has a source")
                })
                .collect(),
        };
        let out = if json {
            Sink::Json(out)
        } else {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(&names)?;
            w.flush()?;
            Sink::Csv(Box::new(w))
        };
        Ok(Writer {
            out,
            picks,
            names,
            labels,
            row: Row::default(),
        })
    }

    /// The stream written to.
    pub fn into_inner(self) -> W {
        match self.out {
            Sink::Csv(w) => w
                .into_inner()
                .map_err(|e| e.into_error())
                .expect("flushed after every flow"),
            Sink::Json(w) => w,
        }
    }

    /// The ground truth, once every flow is written.
    pub fn labels(&self) -> Option<&Labels> {
        self.labels.as_ref()
    }

    pub fn write(&mut self, flow: &Flow) -> Result<()> {
        self.row.fill(flow);
        let all = &self.row;
        let label = self.labels.as_mut().map(|labels| {
            let label = labels.by_flow.get(all.get(0)).map_or("", String::as_str);
            labels.missing += label.is_empty() as u64;
            label
        });
        let fields = self.picks.iter().map(|&i| all.get(i));
        let row: Vec<&str> = fields.chain(label).collect();
        let picks: Vec<usize> = (self.picks.iter().copied())
            .chain(label.map(|_| IDENTIFIERS.len() + NUMERIC.len()))
            .collect();
        match &mut self.out {
            Sink::Csv(w) => {
                w.write_record(row)?;
                w.flush()?;
            }
            Sink::Json(w) => {
                let mut object = serde_json::Map::new();
                for ((name, value), &i) in self.names.iter().zip(row).zip(&picks) {
                    // Flow ID, the addresses and the timestamp are text; numbers without a
                    // finite value (a rate over no time) are null.
                    let text = i < IDENTIFIERS.len() && i != 2 && i != 4 && i != 5;
                    let v = match value.parse::<f64>() {
                        _ if text || i == IDENTIFIERS.len() + NUMERIC.len() => {
                            serde_json::Value::from(value)
                        }
                        Ok(n) if n.fract() == 0.0 && n.abs() < 9e15 => {
                            serde_json::Value::from(n as i64)
                        }
                        Ok(n) if n.is_finite() => serde_json::Value::from(n),
                        _ => serde_json::Value::Null,
                    };
                    object.insert(name.trim().to_string(), v);
                }
                serde_json::to_writer(&mut *w, &object)?;
                w.write_all(b"\n")?;
                w.flush()?;
            }
        }
        Ok(())
    }
}
