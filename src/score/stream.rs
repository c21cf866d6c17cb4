//! `predict`'s engine: flow records from any byte stream (a file, gzip, stdin) are read and
//! encoded one by one with the checkpoint's preprocessing on a thread of their own, scored in
//! batches by the [`Scorer`], and written as one output row per input row, in input order,
//! flushed after every batch. A row that cannot be scored gets an output row that says why;
//! nothing is dropped. Memory holds a batch or two, whatever the number of rows.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use csv::ByteRecord;

use super::{JsonRow, Scorer, Verdict};
use crate::bail_input;
use crate::config::{DataConfig, MissingPolicy, SequenceConfig};
use crate::data::labels;
use crate::data::preprocess::{Encoding, Preprocessor};
use crate::data::read::{column_name, parse_bool, parse_number, text};
use crate::data::sequence::parse_time;
use crate::error::bad_input;
use crate::eval::Confusion;
use crate::explain::Explainer;

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
    /// Reasons given per flagged row (0: none).
    pub explain: usize,
}

/// What a run saw.
#[derive(Debug, Default)]
pub struct Summary {
    pub rows: usize,
    pub flagged: usize,
    pub failed: usize,
    /// A sequence model: rows before their group's first full window (no score).
    pub warming: usize,
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
    /// A sequence model's `order_by` and `group_by` fields.
    order: Option<usize>,
    group: Option<usize>,
}

impl Layout {
    fn new(
        names: &[String],
        pre: &Preprocessor,
        data: &DataConfig,
        (keep, sequence): (&[String], Option<&SequenceConfig>),
    ) -> Result<Layout> {
        let find = |name: &str| names.iter().position(|n| n == name);
        let key = |key: &str, name: Option<&String>| -> Result<Option<usize>> {
            let Some(name) = name.map(|n| n.trim()) else {
                return Ok(None);
            };
            match find(name) {
                Some(i) => Ok(Some(i)),
                None => Err(bad_input(format!(
                    "missing column '{name}' (sequence.{key}), which the model orders its \
                     windows by"
                ))),
            }
        };
        let order = key("order_by", sequence.and_then(|s| s.order_by.as_ref()))?;
        let group = key("group_by", sequence.and_then(|s| s.group_by.as_ref()))?;
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
            order,
            group,
        })
    }
}

/// One row's features before scaling, appended to `out`, or why it has none.
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
    for (input, &field) in pre.columns.iter().zip(&layout.inputs) {
        let cell = text(&record[field]);
        let cell = cell.as_ref();
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
    Ok(())
}

/// Rows read and encoded, in input order, with the scaled features of those that encoded.
#[derive(Default)]
struct Rows {
    x: Vec<f32>,
    /// When explaining: the same features before scaling.
    raw: Vec<f32>,
    info: Vec<RowInfo>,
}

struct RowInfo {
    /// Why the row has no features, if it has none.
    error: Option<String>,
    /// A sequence model: the row's `group_by` cell and `order_by` value.
    group: String,
    order: Option<f64>,
    /// A sequence model: the row's group has fewer flows than a window yet.
    warming: bool,
    /// The `--keep` cells.
    keep: Vec<String>,
    /// 0/1 from the label column, when the input has one and the value is readable.
    label: Option<f32>,
}

impl Rows {
    fn len(&self) -> usize {
        self.info.len()
    }

    fn append(&mut self, mut other: Rows) {
        self.x.append(&mut other.x);
        self.raw.append(&mut other.raw);
        self.info.append(&mut other.info);
    }
}

/// Reading, parsing and encoding, on their own thread: the main thread scores and writes
/// meanwhile, and waits on it with a timeout, so a slow producer's rows are scored after at
/// most `--flush-ms`.
struct Encoder<'a> {
    layout: Layout,
    pre: &'a Preprocessor,
    data: &'a DataConfig,
    /// The 0/1 meaning of each raw label value seen so far.
    labels: HashMap<Vec<u8>, Option<f32>>,
    /// Whether to keep the features before scaling too (for explanations).
    keep_raw: bool,
}

/// Encodes and scales `records` (their fields named by `names`) exactly as `predict` does:
/// every row's features (and, with `keep_raw`, the same before scaling), or the first row
/// (1-based) that cannot be encoded and why.
pub fn encode_records(
    pre: &Preprocessor,
    data: &DataConfig,
    names: &[String],
    records: &[ByteRecord],
    keep_raw: bool,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut encoder = Encoder {
        layout: Layout::new(names, pre, data, (&[], None))?,
        pre,
        data,
        labels: HashMap::new(),
        keep_raw,
    };
    let mut rows = Rows::default();
    for (i, record) in records.iter().enumerate() {
        encoder.push(record, &mut rows);
        if let Some(e) = &rows.info[i].error {
            bail_input!("row {}: {e}", i + 1);
        }
    }
    Ok((rows.x, rows.raw))
}

impl Encoder<'_> {
    fn push(&mut self, record: &ByteRecord, rows: &mut Rows) {
        let mark = rows.x.len();
        let error = encode_row(record, &self.layout, self.pre, &mut rows.x).err();
        if error.is_some() {
            rows.x.truncate(mark);
        } else {
            if self.keep_raw {
                rows.raw.extend_from_slice(&rows.x[mark..]);
            }
            self.pre.scale(&mut rows.x[mark..]);
        }
        let keep = self
            .layout
            .keep
            .iter()
            .map(|&i| {
                record
                    .get(i)
                    .map_or(String::new(), |c| text(c).into_owned())
            })
            .collect();
        let label = self
            .layout
            .label
            .and_then(|i| record.get(i))
            .and_then(|raw| {
                let data = self.data;
                *self.labels.entry(raw.to_vec()).or_insert_with(|| {
                    let raw = text(raw);
                    labels::classify(labels::class_name(&raw, data), data).ok()
                })
            });
        let cell = |at: Option<usize>| at.and_then(|i| record.get(i)).map(text);
        let group = cell(self.layout.group).map_or(String::new(), Cow::into_owned);
        let order = cell(self.layout.order).and_then(|t| parse_time(&t));
        let error = match (error, self.layout.order, order) {
            (None, Some(i), None) => Some(format!(
                "the sequence.order_by cell: expected a number or a date-time, found {:?}",
                cell(Some(i)).unwrap_or_default()
            )),
            (error, ..) => error,
        };
        if error.is_some() && rows.x.len() > mark {
            rows.x.truncate(mark);
            rows.raw.truncate(mark);
        }
        rows.info.push(RowInfo {
            error,
            group,
            order,
            warming: false,
            keep,
            label,
        });
    }

    /// Sends groups of `group` rows until the input ends (or the receiver is gone).
    fn run(
        mut self,
        mut reader: csv::Reader<Box<dyn Read + Send>>,
        group: usize,
        tx: SyncSender<Result<Rows>>,
    ) {
        let mut record = ByteRecord::new();
        let mut rows = Rows::default();
        loop {
            match read_record(&mut reader, &mut record) {
                Ok(true) => {
                    self.push(&record, &mut rows);
                    if rows.len() >= group && tx.send(Ok(std::mem::take(&mut rows))).is_err() {
                        return;
                    }
                }
                Ok(false) => {
                    if rows.len() > 0 {
                        let _ = tx.send(Ok(rows));
                    }
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
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

/// Scores every record of `input` and writes the results to `out`. `stream`: the input may
/// pause (stdin), so rows are handed over one by one and a batch is scored when its first row
/// has waited `flush_after`; a file is handed over a batch at a time.
pub fn run(
    scorer: &Scorer,
    data: &DataConfig,
    input: Box<dyn Read + Send>,
    stream: bool,
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
    let sequence = scorer.sequence.as_ref();
    let layout = Layout::new(&names, &scorer.pre, data, (&opts.keep, sequence))?;
    let mut windower = sequence.map(|s| Windower {
        length: s.length,
        channels: scorer.pre.n_features(),
        groups: HashMap::new(),
    });
    let mut summary = Summary {
        confusion: layout.label.map(|_| Confusion::default()),
        ..Default::default()
    };
    let explainer = match opts.explain {
        0 => None,
        _ => Some(Explainer::new(scorer)?),
    };
    let mut writer = Writer::new(
        out,
        opts.format,
        &opts.keep,
        !scorer.pre.classes.is_empty(),
        &scorer.members,
        opts.explain,
    )?;
    let (group, queued) = if stream {
        (1, opts.batch_rows)
    } else {
        (opts.batch_rows, 2)
    };
    let (tx, rx) = sync_channel(queued);
    // Not scoped: on an error here the process ends without waiting for a blocked stdin.
    let (pre, data) = (scorer.pre.clone(), data.clone());
    let keep_raw = opts.explain > 0;
    std::thread::spawn(move || {
        let encoder = Encoder {
            layout,
            pre: &pre,
            data: &data,
            labels: HashMap::new(),
            keep_raw,
        };
        encoder.run(reader, group, tx)
    });
    let explain = explainer.as_ref().map(|e| (e, opts.explain));
    let mut pending = Rows::default();
    let mut first_at: Option<Instant> = None;
    loop {
        let got = match first_at {
            Some(t) => rx.recv_timeout(opts.flush_after.saturating_sub(t.elapsed())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(rows) => {
                first_at.get_or_insert_with(Instant::now);
                pending.append(rows?);
                if pending.len() < opts.batch_rows {
                    continue;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let stages = (explain, windower.as_mut());
                write_batch(scorer, stages, &mut pending, &mut writer, &mut summary)?;
                break;
            }
        }
        let stages = (explain, windower.as_mut());
        write_batch(scorer, stages, &mut pending, &mut writer, &mut summary)?;
        first_at = None;
    }
    writer.flush()?;
    Ok(summary)
}

/// A sequence model's rolling windows: the latest flows of each group, in arrival order.
struct Windower {
    length: usize,
    channels: usize,
    /// Per group: its last `length` flows (`channels` values each) and `order_by` value.
    groups: HashMap<String, (std::collections::VecDeque<f32>, Option<f64>)>,
}

impl Windower {
    /// Replaces the pending flows by the windows they complete: a row whose group has fewer
    /// than `length` flows so far is marked warming (and has no window), a row whose
    /// `order_by` goes back in time within its group is an error.
    fn windows(&mut self, pending: &mut Rows) {
        let (l, c) = (self.length, self.channels);
        let flows = std::mem::take(&mut pending.x);
        let encoded = pending.info.iter_mut().filter(|i| i.error.is_none());
        for (at, info) in encoded.enumerate() {
            let flow = &flows[at * c..(at + 1) * c];
            let (ring, last) = self.groups.entry(info.group.clone()).or_default();
            if let (Some(prev), Some(now)) = (*last, info.order)
                && now < prev
            {
                info.error = Some(format!(
                    "sequence.order_by goes back in time in group '{}' ({now} after {prev}): \
                     predict reads each group's flows in arrival order; sort the input",
                    info.group
                ));
                continue;
            }
            *last = info.order.or(*last);
            ring.extend(flow);
            if ring.len() > l * c {
                ring.drain(..c);
            }
            let seen = ring.len() / c;
            if seen < l {
                info.warming = true;
                info.error = Some(format!(
                    "no window yet: {seen} of the {l} flows of group '{}' a window needs",
                    info.group
                ));
                continue;
            }
            let (a, b) = ring.as_slices();
            let window: Vec<f32> = a.iter().chain(b).copied().collect();
            for ch in 0..c {
                pending.x.extend((0..l).map(|t| window[t * c + ch]));
            }
        }
    }
}

/// Scores the pending rows, writes one output row for each (with the top reasons of flagged
/// rows, when explaining), and flushes the output.
fn write_batch(
    scorer: &Scorer,
    (explain, windower): (Option<(&Explainer, usize)>, Option<&mut Windower>),
    pending: &mut Rows,
    writer: &mut Writer,
    summary: &mut Summary,
) -> Result<()> {
    if pending.len() == 0 {
        return Ok(());
    }
    if let Some(w) = windower {
        w.windows(pending);
    }
    let scored = scorer.score(&pending.x)?;
    let reasons = match explain {
        Some((e, k)) => {
            let rows = (&pending.x[..], &pending.raw[..], &scored.anomaly[..]);
            e.batch(rows, scorer.threshold, k)?
        }
        None => Vec::new(),
    };
    let mut next = 0;
    for info in &pending.info {
        summary.rows += 1;
        let row = summary.rows;
        let verdict = match &info.error {
            None => {
                let mut v = scored.verdict(&scorer.pre.classes, next, scorer.threshold);
                v.reasons = reasons.get(next).and_then(Option::as_deref);
                next += 1;
                summary.flagged += v.flagged as usize;
                if let (Some(y), Some(c)) = (info.label, summary.confusion.as_mut()) {
                    c.count(v.flagged, y == 1.0);
                }
                Ok(v)
            }
            Some(e) if info.warming => {
                summary.warming += 1;
                Err(e.as_str())
            }
            Some(e) => {
                summary.failed += 1;
                if summary.first_error.is_none() {
                    summary.first_error = Some(format!("row {row}: {e}"));
                }
                Err(e.as_str())
            }
        };
        writer.row(row, &info.keep, &verdict)?;
    }
    pending.x.clear();
    pending.raw.clear();
    pending.info.clear();
    writer.flush()
}

/// Output rows as CSV or JSON lines, written straight into the buffer.
struct Writer {
    out: std::io::BufWriter<Box<dyn Write>>,
    format: Format,
    keep: Vec<String>,
    multiclass: bool,
    /// An ensemble's member families (else empty).
    members: Vec<&'static str>,
    /// CSV: the `reason_N` columns.
    reasons: usize,
}

impl Writer {
    fn new(
        out: Box<dyn Write>,
        format: Format,
        keep: &[String],
        multiclass: bool,
        members: &[&'static str],
        reasons: usize,
    ) -> Result<Writer> {
        let mut w = Writer {
            out: std::io::BufWriter::with_capacity(1 << 16, out),
            format,
            keep: keep.to_vec(),
            multiclass,
            members: members.to_vec(),
            reasons,
        };
        if format == Format::Csv {
            let mut header: Vec<String> = vec!["row".into()];
            header.extend(keep.iter().cloned());
            header.extend(["score".into(), "is_anomaly".into()]);
            if multiclass {
                header.extend(["class".into(), "class_probability".into()]);
            }
            for m in members {
                header.extend([format!("{m}_score"), format!("{m}_vote")]);
            }
            if !members.is_empty() {
                header.extend(["confidence".into(), "severity".into()]);
            }
            header.extend((1..=reasons).map(|k| format!("reason_{k}")));
            header.push("error".into());
            for (i, h) in header.iter().enumerate() {
                if i > 0 {
                    w.out.write_all(b",")?;
                }
                csv_cell(&mut w.out, h)?;
            }
            w.out.write_all(b"\n")?;
        }
        Ok(w)
    }

    fn row(
        &mut self,
        row: usize,
        keep: &[String],
        verdict: &std::result::Result<Verdict, &str>,
    ) -> Result<()> {
        let written = match self.format {
            Format::Csv => self.csv_row(row, keep, verdict),
            Format::Jsonl => {
                let line = JsonRow {
                    row,
                    keep: (&self.keep, keep),
                    verdict: verdict.as_ref().map_err(|e| *e),
                    members: &self.members,
                };
                serde_json::to_writer(&mut self.out, &line)
                    .map_err(std::io::Error::from)
                    .and_then(|()| self.out.write_all(b"\n"))
            }
        };
        written.context("writing results")
    }

    fn csv_row(
        &mut self,
        row: usize,
        keep: &[String],
        verdict: &std::result::Result<Verdict, &str>,
    ) -> std::io::Result<()> {
        let out = &mut self.out;
        write!(out, "{row}")?;
        for k in keep {
            out.write_all(b",")?;
            csv_cell(out, k)?;
        }
        match verdict {
            Ok(v) => {
                write!(out, ",{},{}", v.score, v.flagged)?;
                if let Some((c, p)) = v.class {
                    out.write_all(b",")?;
                    csv_cell(out, c)?;
                    write!(out, ",{p}")?;
                }
                if let Some(e) = &v.ensemble {
                    for (s, vote) in e.scores.iter().zip(e.votes) {
                        write!(out, ",{s},{vote}")?;
                    }
                    write!(out, ",{},{}", e.confidence, e.severity)?;
                }
                let given = v.reasons.unwrap_or_default();
                for k in 0..self.reasons {
                    out.write_all(b",")?;
                    if let Some(r) = given.get(k) {
                        csv_cell(out, &r.to_string())?;
                    }
                }
                out.write_all(b",\n")
            }
            Err(e) => {
                // Empty cells up to `error`: score and is_anomaly, then the optional columns.
                let ensemble = if self.members.is_empty() {
                    0
                } else {
                    2 * self.members.len() + 2
                };
                let blanks = 2 + 2 * self.multiclass as usize + ensemble + self.reasons;
                out.write_all(",".repeat(blanks + 1).as_bytes())?;
                csv_cell(out, e)?;
                out.write_all(b"\n")
            }
        }
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().context("writing results")
    }
}

/// A CSV cell, quoted when it holds a comma, a quote or a line break.
fn csv_cell(out: &mut impl Write, s: &str) -> std::io::Result<()> {
    if s.contains([',', '"', '\n', '\r']) {
        write!(out, "\"{}\"", s.replace('"', "\"\""))
    } else {
        out.write_all(s.as_bytes())
    }
}
