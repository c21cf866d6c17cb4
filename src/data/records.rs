//! Flow records read and encoded one at a time with a checkpoint's preprocessing: where each
//! needed field is, a row's features (or why it has none), its identifiers and label. What
//! `predict`, `serve` and the feedback file share, so a row encodes the same bits everywhere.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::sync::mpsc::SyncSender;

use anyhow::Result;
use csv::ByteRecord;

use crate::bail_input;
use crate::config::{DataConfig, MissingPolicy, SequenceConfig};
use crate::data::labels;
use crate::data::preprocess::{Encoding, Preprocessor};
use crate::data::read::{parse_bool, parse_number, text};
use crate::data::sequence::parse_time;
use crate::error::bad_input;

/// Where each needed field of an input record is.
pub struct Layout {
    n_fields: usize,
    /// Per preprocessor column, its field index.
    inputs: Vec<usize>,
    keep: Vec<usize>,
    pub label: Option<usize>,
    /// A sequence model's `order_by` and `group_by` fields.
    order: Option<usize>,
    group: Option<usize>,
    /// Whether each row keeps its whole record (for the alerts of flagged rows).
    pub records: bool,
}

impl Layout {
    pub fn new(
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
            records: false,
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

/// A JSON scalar as a cell: numbers and strings as written, booleans as true/false, null as an
/// empty (missing) cell; `None` for a list or an object.
pub fn json_cell(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// Rows read and encoded, in input order, with the scaled features of those that encoded.
#[derive(Default)]
pub struct Rows {
    pub x: Vec<f32>,
    /// When explaining: the same features before scaling.
    pub raw: Vec<f32>,
    pub info: Vec<RowInfo>,
}

pub struct RowInfo {
    /// Why the row has no features, if it has none.
    pub error: Option<String>,
    /// A sequence model: the row's `group_by` cell and `order_by` value.
    pub group: String,
    pub order: Option<f64>,
    /// A sequence model: the `order_by` cell as written (naming a window's flows).
    pub order_text: String,
    /// A sequence model: the row's group has fewer flows than a window yet.
    pub warming: bool,
    /// The `--keep` cells.
    pub keep: Vec<String>,
    /// The whole record, when the layout keeps [`Layout::records`].
    pub record: Option<ByteRecord>,
    /// 0/1 from the label column, when the input has one and the value is readable.
    pub label: Option<f32>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.info.len()
    }

    pub fn is_empty(&self) -> bool {
        self.info.is_empty()
    }

    /// A row that could not be read at all (a Kafka message that is not a record), with
    /// `keep` empty `--keep` cells.
    pub fn push_error(&mut self, error: String, keep: usize) {
        self.info.push(RowInfo {
            error: Some(error),
            group: String::new(),
            order: None,
            order_text: String::new(),
            warming: false,
            keep: vec![String::new(); keep],
            record: None,
            label: None,
        });
    }

    pub fn append(&mut self, mut other: Rows) {
        self.x.append(&mut other.x);
        self.raw.append(&mut other.raw);
        self.info.append(&mut other.info);
    }
}

/// Reading, parsing and encoding, on their own thread: the main thread scores and writes
/// meanwhile, and waits on it with a timeout, so a slow producer's rows are scored after at
/// most `--flush-ms`.
pub struct Encoder<'a> {
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
    let mut encoder = Encoder::new(
        Layout::new(names, pre, data, (&[], None))?,
        pre,
        data,
        keep_raw,
    );
    let mut rows = Rows::default();
    for (i, record) in records.iter().enumerate() {
        encoder.push(record, &mut rows);
        if let Some(e) = &rows.info[i].error {
            bail_input!("row {}: {e}", i + 1);
        }
    }
    Ok((rows.x, rows.raw))
}

impl<'a> Encoder<'a> {
    pub fn new(
        layout: Layout,
        pre: &'a Preprocessor,
        data: &'a DataConfig,
        keep_raw: bool,
    ) -> Self {
        Encoder {
            layout,
            pre,
            data,
            labels: HashMap::new(),
            keep_raw,
        }
    }

    /// Encodes one record onto `rows` (with why not, when it cannot be).
    pub fn push(&mut self, record: &ByteRecord, rows: &mut Rows) {
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
        let order_text = cell(self.layout.order).map_or(String::new(), Cow::into_owned);
        let order = self.layout.order.and_then(|_| parse_time(&order_text));
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
            order_text,
            warming: false,
            keep,
            record: self.layout.records.then(|| record.clone()),
            label,
        });
    }

    /// Sends groups of `group` rows until the input ends (or the receiver is gone).
    pub fn run(
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
                    if !rows.is_empty() {
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

pub fn read_record(
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
