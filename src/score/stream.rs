//! `predict`'s engine: flow records from any byte stream (a file, gzip, stdin) are encoded one
//! by one with the checkpoint's preprocessing, scored in batches by the [`Scorer`], and written
//! as one output row per input row, in input order, flushed after every batch. A row that
//! cannot be scored gets an output row that says why; nothing is dropped. Memory holds one
//! batch, whatever the number of rows.

use std::io::{Read, Write};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use csv::ByteRecord;

use super::Scorer;
use crate::bail_input;
use crate::config::{DataConfig, MissingPolicy};
use crate::data::labels;
use crate::data::preprocess::{Encoding, Preprocessor};
use crate::data::read::{column_name, parse_bool, parse_number};
use crate::error::bad_input;
use crate::eval::Confusion;

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

pub struct Options {
    /// Input columns copied to each output row (identifiers such as `Flow ID`).
    pub keep: Vec<String>,
    pub format: Format,
    /// Rows scored together.
    pub batch_rows: usize,
    /// The longest a read row waits for its batch to fill before it is scored anyway.
    pub flush_after: Duration,
}

/// What a run saw.
#[derive(Debug, Default)]
pub struct Summary {
    pub rows: usize,
    pub flagged: usize,
    pub failed: usize,
    /// The first failed row's message.
    pub first_error: Option<String>,
    /// Against the label column, when the input has one.
    pub confusion: Option<Confusion>,
}

/// Where each needed field of an input record is.
struct Layout {
    n_fields: usize,
    /// Per preprocessor column, its field index.
    inputs: Vec<usize>,
    keep: Vec<usize>,
    label: Option<usize>,
}

impl Layout {
    fn new(
        names: &[String],
        pre: &Preprocessor,
        data: &DataConfig,
        keep: &[String],
    ) -> Result<Layout> {
        let find = |name: &str| names.iter().position(|n| n == name);
        let inputs = pre
            .columns
            .iter()
            .map(|c| match find(&c.name) {
                Some(i) => Ok(i),
                None => Err(bad_input(format!(
                    "missing column '{}', which the model was trained on",
                    c.name
                ))),
            })
            .collect::<Result<_>>()?;
        let keep = keep
            .iter()
            .map(|k| match find(k) {
                Some(i) => Ok(i),
                None => Err(bad_input(format!(
                    "--keep: no column '{k}'; the columns are: {}",
                    names.join(", ")
                ))),
            })
            .collect::<Result<_>>()?;
        Ok(Layout {
            n_fields: names.len(),
            inputs,
            keep,
            label: find(data.label_column.trim()),
        })
    }
}

/// One row's features before scaling, or why it has none.
fn encode_row(
    record: &ByteRecord,
    layout: &Layout,
    pre: &Preprocessor,
    out: &mut Vec<f32>,
) -> std::result::Result<(), String> {
    if record.len() != layout.n_fields {
        return Err(format!(
            "expected {} fields, found {}",
            layout.n_fields,
            record.len()
        ));
    }
    let start = out.len();
    for (input, &field) in pre.columns.iter().zip(&layout.inputs) {
        let text = String::from_utf8_lossy(&record[field]);
        let cell = text.trim();
        let name = &input.name;
        let missing = || {
            let what = if cell.is_empty() {
                "an empty cell"
            } else {
                "a non-finite cell"
            };
            match pre.missing {
                MissingPolicy::ImputeMedian => Ok(f32::NAN),
                MissingPolicy::Error => {
                    Err(format!("column '{name}': {what} (data.missing: error)"))
                }
                MissingPolicy::DropRows => Err(format!(
                    "column '{name}': {what} (data.missing: drop_rows; training dropped such rows)"
                )),
            }
        };
        match &input.encoding {
            Encoding::Numeric { .. } => {
                let v = match parse_number(cell) {
                    Some(v) if v.is_finite() => v,
                    Some(_) => missing()?,
                    None if cell.is_empty() => missing()?,
                    None => {
                        return Err(format!(
                            "column '{name}': expected a number, found {cell:?}"
                        ));
                    }
                };
                out.push(input.encoding.value(v));
            }
            Encoding::Boolean { .. } => {
                let v = match parse_bool(cell) {
                    Some(b) => b as u8 as f32,
                    None if cell.is_empty() => missing()?,
                    None => {
                        return Err(format!(
                            "column '{name}': expected true/false, found {cell:?}"
                        ));
                    }
                };
                out.push(input.encoding.value(v));
            }
            Encoding::OneHot { categories } => {
                let at = out.len();
                out.resize(at + categories.len(), 0.0);
                // An unseen category is all zeros, as at test time.
                if let Some(k) = categories.iter().position(|c| c == cell) {
                    out[at + k] = 1.0;
                }
            }
        }
    }
    debug_assert_eq!(out.len() - start, pre.n_features());
    Ok(())
}

/// Where records come from: a file is read as it goes; stdin is read on a thread, so a batch
/// can be scored when a slow producer has sent no row for a while.
enum Source {
    Direct(csv::Reader<Box<dyn Read + Send>>),
    Threaded(Receiver<Result<ByteRecord>>),
}

enum Next {
    Record(ByteRecord),
    /// Nothing arrived in the time given.
    Idle,
    End,
}

impl Source {
    fn new(reader: csv::Reader<Box<dyn Read + Send>>, threaded: bool, capacity: usize) -> Source {
        if !threaded {
            return Source::Direct(reader);
        }
        let (tx, rx) = sync_channel(capacity);
        std::thread::spawn(move || read_into(reader, tx));
        Source::Threaded(rx)
    }

    fn next(&mut self, wait: Option<Duration>) -> Result<Next> {
        match self {
            Source::Direct(reader) => {
                let mut record = ByteRecord::new();
                Ok(if read_record(reader, &mut record)? {
                    Next::Record(record)
                } else {
                    Next::End
                })
            }
            Source::Threaded(rx) => {
                let got = match wait {
                    Some(w) => rx.recv_timeout(w),
                    None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match got {
                    Ok(record) => Ok(Next::Record(record?)),
                    Err(RecvTimeoutError::Timeout) => Ok(Next::Idle),
                    Err(RecvTimeoutError::Disconnected) => Ok(Next::End),
                }
            }
        }
    }
}

fn read_into(mut reader: csv::Reader<Box<dyn Read + Send>>, tx: SyncSender<Result<ByteRecord>>) {
    loop {
        let mut record = ByteRecord::new();
        let sent = match read_record(&mut reader, &mut record) {
            Ok(false) => return,
            Ok(true) => tx.send(Ok(record)),
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

fn read_record(
    reader: &mut csv::Reader<Box<dyn Read + Send>>,
    record: &mut ByteRecord,
) -> Result<bool> {
    reader.read_byte_record(record).map_err(|e| {
        let line = e.position().map_or(0, |p| p.line());
        match e.kind() {
            csv::ErrorKind::Io(io) => bad_input(format!("cannot read the input: {io}")),
            _ => bad_input(format!("line {line}: {e}")),
        }
    })
}

/// Scores every record of `input` and writes the results to `out`.
pub fn run(
    scorer: &Scorer,
    data: &DataConfig,
    input: Box<dyn Read + Send>,
    threaded: bool,
    out: Box<dyn Write>,
    opts: &Options,
) -> Result<Summary> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(input);
    let names: Vec<String> = if data.header {
        let mut header = ByteRecord::new();
        if !read_record(&mut reader, &mut header)? {
            bail_input!("the input is empty: expected a header row");
        }
        header.iter().map(column_name).collect()
    } else {
        data.columns.iter().map(|c| c.trim().to_string()).collect()
    };
    let layout = Layout::new(&names, &scorer.pre, data, &opts.keep)?;
    let mut writer = Writer::new(out, opts.format, &opts.keep, !scorer.pre.classes.is_empty())?;
    let mut source = Source::new(reader, threaded, opts.batch_rows);
    let mut batch = Batch::new(&layout, scorer, data);
    let mut first_at: Option<Instant> = None;
    loop {
        let wait = first_at.map(|t| opts.flush_after.saturating_sub(t.elapsed()));
        match source.next(wait)? {
            Next::Record(record) => {
                first_at.get_or_insert_with(Instant::now);
                batch.push(record);
                if batch.len() >= opts.batch_rows {
                    batch.flush(&mut writer)?;
                    first_at = None;
                }
            }
            Next::Idle => {
                batch.flush(&mut writer)?;
                first_at = None;
            }
            Next::End => {
                batch.flush(&mut writer)?;
                break;
            }
        }
    }
    writer.finish()?;
    Ok(batch.summary)
}

/// Rows read but not yet written.
struct Batch<'a> {
    layout: &'a Layout,
    scorer: &'a Scorer,
    data: &'a DataConfig,
    records: Vec<ByteRecord>,
    x: Vec<f32>,
    summary: Summary,
}

impl<'a> Batch<'a> {
    fn new(layout: &'a Layout, scorer: &'a Scorer, data: &'a DataConfig) -> Batch<'a> {
        let summary = Summary {
            confusion: layout.label.map(|_| Confusion::default()),
            ..Default::default()
        };
        Batch {
            layout,
            scorer,
            data,
            records: Vec::new(),
            x: Vec::new(),
            summary,
        }
    }

    fn len(&self) -> usize {
        self.records.len()
    }

    fn push(&mut self, record: ByteRecord) {
        self.records.push(record);
    }

    /// Encodes, scores and writes the pending rows, then flushes the output.
    fn flush(&mut self, writer: &mut Writer) -> Result<()> {
        if self.records.is_empty() {
            return Ok(());
        }
        let pre = &self.scorer.pre;
        self.x.clear();
        let encoded: Vec<std::result::Result<(), String>> = self
            .records
            .iter()
            .map(|r| {
                let mark = self.x.len();
                let result = encode_row(r, self.layout, pre, &mut self.x);
                if result.is_err() {
                    self.x.truncate(mark);
                }
                result
            })
            .collect();
        pre.scale(&mut self.x);
        let scored = self.scorer.score(&self.x)?;
        let k = pre.classes.len();
        let mut next = 0;
        let records = std::mem::take(&mut self.records);
        for (record, result) in records.iter().zip(encoded) {
            self.summary.rows += 1;
            let row = self.summary.rows;
            let verdict = match result {
                Ok(()) => {
                    let score = scored.anomaly[next];
                    let class = (k > 0).then(|| {
                        let probs = &scored.class_probs[next * k..(next + 1) * k];
                        let (c, p) = probs.iter().enumerate().fold(
                            (0, f32::NEG_INFINITY),
                            |best, (c, &p)| {
                                if p > best.1 { (c, p) } else { best }
                            },
                        );
                        (pre.classes[c].as_str(), p)
                    });
                    next += 1;
                    let flagged = self.scorer.is_anomaly(score);
                    self.summary.flagged += flagged as usize;
                    self.count_label(record, flagged);
                    Ok(Verdict {
                        score,
                        flagged,
                        class,
                    })
                }
                Err(e) => {
                    self.summary.failed += 1;
                    if self.summary.first_error.is_none() {
                        self.summary.first_error = Some(format!("row {row}: {e}"));
                    }
                    Err(e)
                }
            };
            let keep: Vec<String> = self
                .layout
                .keep
                .iter()
                .map(|&i| {
                    record.get(i).map_or(String::new(), |c| {
                        String::from_utf8_lossy(c).trim().to_string()
                    })
                })
                .collect();
            writer.row(row, &keep, &verdict)?;
        }
        // Keep the allocation for the next batch.
        self.records = records;
        self.records.clear();
        writer.flush()
    }

    fn count_label(&mut self, record: &ByteRecord, flagged: bool) {
        let (Some(i), Some(c)) = (self.layout.label, self.summary.confusion.as_mut()) else {
            return;
        };
        let Some(cell) = record.get(i) else { return };
        let raw = String::from_utf8_lossy(cell);
        let Ok(y) = labels::classify(labels::class_name(&raw, self.data), self.data) else {
            return;
        };
        match (flagged, y == 1.0) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, true) => c.fn_ += 1,
            (false, false) => c.tn += 1,
        }
    }
}

/// A scored row.
struct Verdict<'a> {
    score: f32,
    flagged: bool,
    /// Multiclass: the most probable class and its probability.
    class: Option<(&'a str, f32)>,
}

/// Output rows as CSV or JSON lines.
struct Writer {
    out: std::io::BufWriter<Box<dyn Write>>,
    format: Format,
    keep: Vec<String>,
    multiclass: bool,
}

impl Writer {
    fn new(
        out: Box<dyn Write>,
        format: Format,
        keep: &[String],
        multiclass: bool,
    ) -> Result<Writer> {
        let mut w = Writer {
            out: std::io::BufWriter::with_capacity(1 << 16, out),
            format,
            keep: keep.to_vec(),
            multiclass,
        };
        if format == Format::Csv {
            let mut header: Vec<String> = vec!["row".into()];
            header.extend(keep.iter().cloned());
            header.extend(["score".into(), "is_anomaly".into()]);
            if multiclass {
                header.extend(["class".into(), "class_probability".into()]);
            }
            header.push("error".into());
            let cells: Vec<String> = header.iter().map(|h| csv_cell(h)).collect();
            writeln!(w.out, "{}", cells.join(","))?;
        }
        Ok(w)
    }

    fn row(
        &mut self,
        row: usize,
        keep: &[String],
        verdict: &std::result::Result<Verdict, String>,
    ) -> Result<()> {
        let line = match self.format {
            Format::Csv => {
                let mut cells = vec![row.to_string()];
                cells.extend(keep.iter().map(|k| csv_cell(k)));
                match verdict {
                    Ok(v) => {
                        cells.extend([v.score.to_string(), v.flagged.to_string()]);
                        if let Some((c, p)) = v.class {
                            cells.extend([csv_cell(c), p.to_string()]);
                        }
                        cells.push(String::new());
                    }
                    Err(e) => {
                        let blanks = if self.multiclass { 4 } else { 2 };
                        cells.extend(std::iter::repeat_n(String::new(), blanks));
                        cells.push(csv_cell(e));
                    }
                }
                cells.join(",")
            }
            Format::Jsonl => {
                let mut obj = serde_json::Map::new();
                obj.insert("row".into(), row.into());
                for (name, value) in self.keep.iter().zip(keep) {
                    obj.insert(name.clone(), value.clone().into());
                }
                match verdict {
                    Ok(v) => {
                        obj.insert("score".into(), json_number(v.score));
                        obj.insert("is_anomaly".into(), v.flagged.into());
                        if let Some((c, p)) = v.class {
                            obj.insert("class".into(), c.into());
                            obj.insert("class_probability".into(), json_number(p));
                        }
                    }
                    Err(e) => {
                        obj.insert("score".into(), serde_json::Value::Null);
                        obj.insert("is_anomaly".into(), serde_json::Value::Null);
                        obj.insert("error".into(), e.clone().into());
                    }
                }
                serde_json::Value::Object(obj).to_string()
            }
        };
        writeln!(self.out, "{line}").context("writing results")
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().context("writing results")
    }

    fn finish(mut self) -> Result<()> {
        self.flush()
    }
}

/// A CSV cell, quoted when it holds a comma, a quote or a line break.
fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// An f32 as JSON with its shortest decimal form (`0.25`, not `0.25000000372529`); null for NaN.
fn json_number(v: f32) -> serde_json::Value {
    format!("{v}")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}
