//! `predict`'s engine: flow records from any byte stream (a file, gzip, stdin) are read and
//! encoded one by one with the checkpoint's preprocessing on a thread of their own, scored in
//! batches by the [`Scorer`], and written as one output row per input row, in input order,
//! flushed after every batch. A row that cannot be scored gets an output row that says why;
//! nothing is dropped. Memory holds a batch or two, whatever the number of rows.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use csv::ByteRecord;

use crate::alerts::{Fields, Origin, Pipeline, alert};
use crate::bail_input;
use crate::config::DataConfig;
use crate::data::read::column_name;
use crate::data::records::{Encoder, Layout, RowInfo, Rows, read_record};
use crate::eval::Confusion;
use crate::eval::drift::Drift;
use crate::explain::Explainer;
use crate::explain::steps::{self, Flow};
use crate::score::{JsonRow, Reason, Scored, Scorer, Verdict};

pub mod kafka;

/// The content type of [`metrics_text`]'s text (OpenMetrics), for `serve` and the Kafka
/// consumer's `/metrics`.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A registry's metrics in the Prometheus text format.
pub fn metrics_text(registry: &prometheus_client::registry::Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

#[derive(Clone)]
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
    /// Where flagged rows' alerts are stored (none: nowhere).
    pub alerts: Option<AlertSink>,
}

/// The alert store flagged rows go to, and what their alerts say they come from.
#[derive(Clone)]
pub struct AlertSink {
    pub pipeline: Arc<Pipeline>,
    pub origin: Origin,
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
    mut drift: Option<&mut Drift>,
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
    let mut layout = Layout::new(
        &names,
        &scorer.pre,
        data,
        (&opts.keep, scorer.sequence.as_ref()),
    )?;
    layout.records = opts.alerts.is_some();
    let mut batches = Batches::new(scorer, opts.explain, layout.label.is_some())?
        .alerting(opts.alerts.as_ref(), &names);
    let format = RowFormat::new(opts.format, &opts.keep, scorer, opts.explain, false);
    let mut writer = Writer::new(out, format)?;
    let (group, queued) = if stream {
        (1, opts.batch_rows)
    } else {
        (opts.batch_rows, 2)
    };
    let (tx, rx) = sync_channel(queued);
    // Not scoped: on an error here the process ends without waiting for a blocked stdin.
    let (pre, data) = (scorer.pre.clone(), data.clone());
    let keep_raw = opts.explain > 0 || drift.is_some();
    std::thread::spawn(move || Encoder::new(layout, &pre, &data, keep_raw).run(reader, group, tx));
    let mut pending = Rows::default();
    let mut first_at: Option<Instant> = None;
    loop {
        let got = match first_at {
            Some(t) => rx.recv_timeout(opts.flush_after.saturating_sub(t.elapsed())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let end = match got {
            Ok(rows) => {
                first_at.get_or_insert_with(Instant::now);
                pending.append(rows?);
                if pending.len() < opts.batch_rows {
                    continue;
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        batches.score(
            &mut pending,
            drift.as_deref_mut(),
            &mut |row, info, verdict| writer.row(row, None, &info.keep, verdict),
        )?;
        writer.flush()?;
        if end {
            break;
        }
        first_at = None;
    }
    Ok(batches.summary)
}

/// What every batch passes through, wherever its rows come from (a file, a capture, a Kafka
/// topic): a sequence model's windows, the scorer, the explainer and the drift counters; and
/// the run's counts.
pub(crate) struct Batches<'a> {
    scorer: &'a Scorer,
    explainer: Option<(Explainer<'a>, usize)>,
    /// A sequence model: the steps named per flagged window (0: none).
    steps: usize,
    windower: Option<Windower>,
    /// Where flagged rows' alerts go, and where the input's identifiers are.
    alerts: Option<(AlertSink, Fields)>,
    pub summary: Summary,
}

impl<'a> Batches<'a> {
    /// `explain`: reasons per flagged row (0: none); `labelled`: the input has a label column.
    pub(crate) fn new(scorer: &'a Scorer, explain: usize, labelled: bool) -> Result<Batches<'a>> {
        let (explainer, steps) = match explain {
            0 => (None, 0),
            k if scorer.sequence.is_some() => {
                steps::check(scorer)?;
                (None, k)
            }
            k => (Some((Explainer::new(scorer)?, k)), 0),
        };
        let windower = scorer.sequence.as_ref().map(|s| Windower {
            length: s.length,
            channels: scorer.pre.n_features(),
            groups: HashMap::new(),
            named: (steps > 0).then(Vec::new),
        });
        let summary = Summary {
            confusion: labelled.then(Confusion::default),
            ..Default::default()
        };
        Ok(Batches {
            scorer,
            explainer,
            steps,
            windower,
            alerts: None,
            summary,
        })
    }

    /// Stores the alerts of flagged rows in `sink` (rows named by `names`, their layout
    /// keeping [`Layout::records`]) before their outputs are handed on.
    pub(crate) fn alerting(mut self, sink: Option<&AlertSink>, names: &[String]) -> Self {
        self.alerts = sink.map(|s| (s.clone(), Fields::locate(names)));
        self
    }

    /// Commits the alerts of a scored batch's flagged rows.
    fn store_alerts(
        &self,
        pending: &Rows,
        scored: &Scored,
        reasons: &[Option<Vec<Reason>>],
    ) -> Result<()> {
        let Some((sink, fields)) = &self.alerts else {
            return Ok(());
        };
        let scorer = self.scorer;
        let received = crate::alerts::now_micros();
        let mut alerts = Vec::new();
        let scoredrows = pending.info.iter().filter(|i| i.error.is_none());
        for (next, info) in scoredrows.enumerate() {
            let mut v = scored.verdict(&scorer.pre.classes, next, scorer.threshold);
            let Some(record) = info.record.as_ref().filter(|_| v.flagged) else {
                continue;
            };
            v.reasons = reasons.get(next).and_then(Option::as_deref);
            let at = (scorer.threshold, received);
            alerts.push(alert(&sink.origin, scorer, fields, record, &v, at));
        }
        sink.pipeline.store_blocking(alerts)
    }

    /// Scores the pending rows and hands each to `emit`, in order, with its row number (from
    /// 1 over the run) and its verdict (with the top reasons of flagged rows, when
    /// explaining) or why it has none; `pending` is left empty.
    pub(crate) fn score(
        &mut self,
        pending: &mut Rows,
        drift: Option<&mut Drift>,
        emit: &mut dyn FnMut(usize, &RowInfo, &Outcome) -> Result<()>,
    ) -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let scorer = self.scorer;
        if let Some(w) = self.windower.as_mut() {
            w.windows(pending, self.summary.rows + 1);
        }
        let scored = scorer.score(&pending.x)?;
        if let Some(d) = drift {
            d.add(&pending.raw, &scored.anomaly);
        }
        let reasons = match (&self.explainer, &self.windower) {
            (Some((e, k)), _) => {
                let rows = (&pending.x[..], &pending.raw[..], &scored.anomaly[..]);
                e.batch(rows, scorer.threshold, *k)?
            }
            (
                None,
                Some(Windower {
                    named: Some(flows), ..
                }),
            ) => {
                let windows = (&pending.x[..], &scored.anomaly[..]);
                steps::reasons(scorer, windows, flows, self.steps)?
            }
            _ => Vec::new(),
        };
        self.store_alerts(pending, &scored, &reasons)?;
        let summary = &mut self.summary;
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
            emit(row, info, &verdict)?;
        }
        pending.x.clear();
        pending.raw.clear();
        pending.info.clear();
        Ok(())
    }
}

/// A sequence model's rolling windows: the latest flows of each group, in arrival order.
struct Windower {
    length: usize,
    channels: usize,
    groups: HashMap<String, Group>,
    /// When naming steps: each window of the batch's flows, by row number and `order_by` cell.
    named: Option<Vec<Vec<Flow>>>,
}

/// A group's last `length` flows (`channels` values each), its last `order_by` value, and
/// when naming steps its last flows' names.
#[derive(Default)]
struct Group {
    flows: std::collections::VecDeque<f32>,
    last: Option<f64>,
    named: std::collections::VecDeque<Flow>,
}

impl Windower {
    /// Replaces the pending flows by the windows they complete: a row whose group has fewer
    /// than `length` flows so far is marked warming (and has no window), a row whose
    /// `order_by` goes back in time within its group is an error. `first_row`: the first
    /// pending row's number.
    fn windows(&mut self, pending: &mut Rows, first_row: usize) {
        let (l, c) = (self.length, self.channels);
        let flows = std::mem::take(&mut pending.x);
        if let Some(named) = self.named.as_mut() {
            named.clear();
        }
        let mut at = 0;
        for (i, info) in pending.info.iter_mut().enumerate() {
            if info.error.is_some() {
                continue;
            }
            let flow = &flows[at * c..(at + 1) * c];
            at += 1;
            let group = self.groups.entry(info.group.clone()).or_default();
            if let (Some(prev), Some(now)) = (group.last, info.order)
                && now < prev
            {
                info.error = Some(format!(
                    "sequence.order_by goes back in time in group '{}' ({now} after {prev}): \
                     predict reads each group's flows in arrival order; sort the input",
                    info.group
                ));
                continue;
            }
            group.last = info.order.or(group.last);
            group.flows.extend(flow);
            if group.flows.len() > l * c {
                group.flows.drain(..c);
            }
            if self.named.is_some() {
                group
                    .named
                    .push_back((first_row + i, info.order_text.clone()));
                if group.named.len() > l {
                    group.named.pop_front();
                }
            }
            let seen = group.flows.len() / c;
            if seen < l {
                info.warming = true;
                info.error = Some(format!(
                    "no window yet: {seen} of the {l} flows of group '{}' a window needs",
                    info.group
                ));
                continue;
            }
            let (a, b) = group.flows.as_slices();
            let window: Vec<f32> = a.iter().chain(b).copied().collect();
            for ch in 0..c {
                pending.x.extend((0..l).map(|t| window[t * c + ch]));
            }
            if let Some(named) = self.named.as_mut() {
                named.push(group.named.iter().cloned().collect());
            }
        }
    }
}

/// How an output row is written, as CSV or a JSON line: the columns a model's verdicts have,
/// the `--keep` cells and, for rows read from Kafka, the input's partition and offset.
pub(crate) struct RowFormat {
    format: Format,
    keep: Vec<String>,
    multiclass: bool,
    /// An ensemble's member families (else empty).
    members: Vec<&'static str>,
    /// CSV: the `reason_N` columns.
    reasons: usize,
    /// Rows carry their source partition and offset.
    sourced: bool,
}

/// A row's verdict, or why it has none.
pub(crate) type Outcome<'a> = std::result::Result<Verdict<'a>, &'a str>;

/// A Kafka message's partition and offset.
pub type Source = (i32, i64);

impl RowFormat {
    pub(crate) fn new(
        format: Format,
        keep: &[String],
        scorer: &Scorer,
        reasons: usize,
        sourced: bool,
    ) -> RowFormat {
        RowFormat {
            format,
            keep: keep.to_vec(),
            multiclass: !scorer.pre.classes.is_empty(),
            members: scorer.members.to_vec(),
            reasons,
            sourced,
        }
    }

    /// The CSV header's names.
    pub(crate) fn header(&self) -> Vec<String> {
        let mut header: Vec<String> = vec!["row".into()];
        if self.sourced {
            header.extend(["partition".into(), "offset".into()]);
        }
        header.extend(self.keep.iter().cloned());
        header.extend(["score".into(), "is_anomaly".into()]);
        if self.multiclass {
            header.extend(["class".into(), "class_probability".into()]);
        }
        for m in &self.members {
            header.extend([format!("{m}_score"), format!("{m}_vote")]);
        }
        if !self.members.is_empty() {
            header.extend(["confidence".into(), "severity".into()]);
        }
        header.extend((1..=self.reasons).map(|k| format!("reason_{k}")));
        header.push("error".into());
        header
    }

    /// Writes one row, ended by a line break.
    pub(crate) fn row(
        &self,
        out: &mut impl Write,
        row: usize,
        source: Option<Source>,
        keep: &[String],
        verdict: &Outcome,
    ) -> std::io::Result<()> {
        match self.format {
            Format::Csv => self.csv_row(out, (row, source), keep, verdict),
            Format::Jsonl => {
                let line = JsonRow {
                    row,
                    source,
                    keep: (&self.keep, keep),
                    verdict: verdict.as_ref().map_err(|e| *e),
                    members: &self.members,
                };
                serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
                out.write_all(b"\n")
            }
        }
    }

    fn csv_row(
        &self,
        out: &mut impl Write,
        (row, source): (usize, Option<Source>),
        keep: &[String],
        verdict: &Outcome,
    ) -> std::io::Result<()> {
        write!(out, "{row}")?;
        if let Some((partition, offset)) = source {
            write!(out, ",{partition},{offset}")?;
        }
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
}

/// Output rows written straight into a buffer, a CSV header first.
struct Writer {
    out: std::io::BufWriter<Box<dyn Write>>,
    format: RowFormat,
}

impl Writer {
    fn new(out: Box<dyn Write>, format: RowFormat) -> Result<Writer> {
        let mut w = Writer {
            out: std::io::BufWriter::with_capacity(1 << 16, out),
            format,
        };
        if w.format.format == Format::Csv {
            for (i, h) in w.format.header().iter().enumerate() {
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
        source: Option<Source>,
        keep: &[String],
        verdict: &Outcome,
    ) -> Result<()> {
        let written = self.format.row(&mut self.out, row, source, keep, verdict);
        written.context("writing results")
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
