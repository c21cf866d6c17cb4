//! Reads a CSV (plain or gzip) straight into typed column buffers.
//!
//! Each cell is parsed as it streams past: numeric columns become `f32` (missing and
//! non-finite cells become NaN and are counted), `true`/`false` columns become 0/1, and
//! other strings become codes into a per-column dictionary. The file is never held as strings.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::Result;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bail_input;
use crate::error::bad_input;

/// The sha256 of a file's bytes, hex-encoded (recorded in manifests and reports).
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut file =
        File::open(path).map_err(|e| bad_input(format!("cannot open {}: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// How a column's cells are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Numeric,
    Boolean,
    Categorical,
}

/// Cells that carried no usable number, per column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MissingCounts {
    pub empty: usize,
    pub nan: usize,
    pub infinite: usize,
}

impl MissingCounts {
    pub fn total(&self) -> usize {
        self.empty + self.nan + self.infinite
    }
}

/// Strings interned to dense codes, in order of first appearance.
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    pub values: Vec<String>,
    pub codes: Vec<u32>,
    index: HashMap<String, u32>,
}

impl Dictionary {
    pub(crate) fn push(&mut self, value: &str) {
        let code = match self.index.get(value) {
            Some(&c) => c,
            None => {
                let c = self.values.len() as u32;
                self.values.push(value.to_string());
                self.index.insert(value.to_string(), c);
                c
            }
        };
        self.codes.push(code);
    }

    pub fn value(&self, row: usize) -> &str {
        &self.values[self.codes[row] as usize]
    }

    /// Keeps only the given rows, in that order.
    fn select(&mut self, rows: &[usize]) {
        self.codes = rows.iter().map(|&r| self.codes[r]).collect();
    }
}

#[derive(Debug, Clone)]
pub enum ColumnData {
    /// Numbers; NaN marks a missing or non-finite cell.
    Numeric(Vec<f32>),
    /// 0.0 / 1.0 (NaN for an empty cell).
    Boolean(Vec<f32>),
    Categorical(Dictionary),
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
    pub missing: MissingCounts,
}

impl Column {
    pub fn kind(&self) -> Kind {
        match self.data {
            ColumnData::Numeric(_) => Kind::Numeric,
            ColumnData::Boolean(_) => Kind::Boolean,
            ColumnData::Categorical(_) => Kind::Categorical,
        }
    }
}

/// A parsed file: feature columns in file order, and the raw label of each row.
#[derive(Debug, Clone)]
pub struct Table {
    pub path: PathBuf,
    pub columns: Vec<Column>,
    /// The raw label of each row; all empty when the file has no label column (`labelled`).
    pub labels: Dictionary,
    /// Whether the file has the label column (only unsupervised training reads files without).
    pub labelled: bool,
    /// For each row, its 0-based data-record number in the file (rows may have been dropped).
    pub source_rows: Vec<usize>,
    /// Repeated column names skipped by `keep_first`, with their 1-based positions.
    pub skipped_duplicates: Vec<(String, usize)>,
}

impl Table {
    pub fn n_rows(&self) -> usize {
        self.labels.codes.len()
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Keeps only the given rows (used to drop rows with missing cells).
    pub fn retain_rows(&mut self, rows: &[usize]) {
        for col in &mut self.columns {
            match &mut col.data {
                ColumnData::Numeric(v) | ColumnData::Boolean(v) => {
                    *v = rows.iter().map(|&r| v[r]).collect();
                }
                ColumnData::Categorical(d) => d.select(rows),
            }
        }
        self.labels.select(rows);
        self.source_rows = rows.iter().map(|&r| self.source_rows[r]).collect();
    }
}

/// What to read from a file.
#[derive(Debug, Clone, Default)]
pub struct TableSpec {
    pub header: bool,
    /// Names for a headerless file, one per field.
    pub columns: Vec<String>,
    pub label_column: String,
    pub drop_columns: Vec<String>,
    /// Dropped when present.
    pub drop_if_present: Vec<String>,
    /// Kinds that are not to be inferred (a checkpoint's schema, or `data.categorical_columns`).
    pub forced_kinds: HashMap<String, Kind>,
    /// When set, only these feature columns are read; others are skipped (test time).
    pub only_columns: Option<Vec<String>>,
    /// Skip the later columns of a repeated name instead of refusing the file.
    pub keep_first_duplicate: bool,
    /// Read a file without the label column (unsupervised training) instead of refusing it.
    pub label_optional: bool,
    /// Refuse a file that is not a Zeek log (`data.format: zeek`).
    pub zeek: bool,
}

/// Opens a file, transparently gunzipping it when it starts with the gzip magic bytes.
pub fn open_maybe_gz(path: &Path) -> Result<Box<dyn Read + Send>> {
    let file =
        File::open(path).map_err(|e| bad_input(format!("cannot open {}: {e}", path.display())))?;
    maybe_gz(file)
}

/// Any byte stream (a file, a pipe, stdin), gunzipped when it starts with the gzip magic bytes,
/// and a Zeek log (TSV or JSON lines) read as CSV.
pub fn maybe_gz(stream: impl Read + Send + 'static) -> Result<Box<dyn Read + Send>> {
    Ok(sniff(stream)?.0)
}

/// How a stream was found to be laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Csv,
    /// A Zeek log, TSV or JSON lines, read as CSV.
    Zeek,
}

/// [`maybe_gz`], and whether the stream was a Zeek log.
fn sniff(mut stream: impl Read + Send + 'static) -> Result<(Box<dyn Read + Send>, Layout)> {
    let mut magic = [0u8; 2];
    let mut n = 0;
    // A pipe may deliver the two bytes separately.
    while n < 2 {
        match stream.read(&mut magic[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let reader = BufReader::with_capacity(1 << 20, head.chain(stream));
    let mut reader: Box<dyn BufRead + Send> = if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::read::MultiGzDecoder::new(reader),
        ))
    } else {
        Box::new(reader)
    };
    // A Zeek log, TSV (its first line `#separator …`) or JSON lines, is read as CSV.
    use super::zeek::{AsCsv, JsonLines, ZeekTsv, is_json_lines, is_zeek};
    let head = reader.fill_buf()?;
    Ok(
        if is_zeek(head) || (!head.is_empty() && b"#separator".starts_with(head)) {
            (Box::new(AsCsv::new(ZeekTsv::new(reader))), Layout::Zeek)
        } else if is_json_lines(head) {
            (Box::new(AsCsv::new(JsonLines::new(reader))), Layout::Zeek)
        } else {
            (Box::new(reader), Layout::Csv)
        },
    )
}

/// One column being filled while the file streams past. Its kind is settled by its first
/// non-empty cell (unless forced); empty cells before that are remembered and back-filled.
struct Builder {
    /// The record field it reads.
    field: usize,
    name: String,
    kind: Option<Kind>,
    leading_empty: usize,
    numbers: Vec<f32>,
    dict: Dictionary,
    missing: MissingCounts,
}

impl Builder {
    fn new(field: usize, name: String, kind: Option<Kind>) -> Self {
        Self {
            field,
            name,
            kind,
            leading_empty: 0,
            numbers: Vec::new(),
            dict: Dictionary::default(),
            missing: MissingCounts::default(),
        }
    }

    fn push(&mut self, cell: &str, line: u64) -> Result<()> {
        let kind = match self.kind {
            Some(k) => k,
            None if cell.is_empty() => {
                self.leading_empty += 1;
                self.missing.empty += 1;
                return Ok(());
            }
            None => {
                let k = infer_kind(cell);
                self.kind = Some(k);
                match k {
                    Kind::Categorical => {
                        (0..self.leading_empty).for_each(|_| self.dict.push(""));
                    }
                    _ => self.numbers.resize(self.leading_empty, f32::NAN),
                }
                k
            }
        };
        match kind {
            Kind::Numeric => {
                let v = if cell.is_empty() {
                    self.missing.empty += 1;
                    f32::NAN
                } else {
                    match parse_number(cell) {
                        Some(v) if v.is_finite() => v,
                        Some(v) if v.is_nan() => {
                            self.missing.nan += 1;
                            f32::NAN
                        }
                        Some(_) => {
                            self.missing.infinite += 1;
                            f32::NAN
                        }
                        None => bail_input!(
                            "line {line}, column '{}': expected a number, found {cell:?} \
                             (list the column in data.categorical_columns if it holds categories)",
                            self.name
                        ),
                    }
                };
                self.numbers.push(v);
            }
            Kind::Boolean => {
                let v = if cell.is_empty() {
                    self.missing.empty += 1;
                    f32::NAN
                } else {
                    match parse_bool(cell) {
                        Some(b) => b as u8 as f32,
                        None => bail_input!(
                            "line {line}, column '{}': expected true/false, found {cell:?}",
                            self.name
                        ),
                    }
                };
                self.numbers.push(v);
            }
            Kind::Categorical => self.dict.push(cell),
        }
        Ok(())
    }

    fn finish(self) -> Column {
        // A column that was empty throughout reads as numeric and all-missing.
        let data = match self.kind.unwrap_or(Kind::Numeric) {
            Kind::Numeric if self.kind.is_none() => {
                ColumnData::Numeric(vec![f32::NAN; self.leading_empty])
            }
            Kind::Numeric => ColumnData::Numeric(self.numbers),
            Kind::Boolean => ColumnData::Boolean(self.numbers),
            Kind::Categorical => ColumnData::Categorical(self.dict),
        };
        Column {
            name: self.name,
            data,
            missing: self.missing,
        }
    }
}

fn infer_kind(cell: &str) -> Kind {
    if parse_bool(cell).is_some() {
        Kind::Boolean
    } else if parse_number(cell).is_some() {
        Kind::Numeric
    } else {
        Kind::Categorical
    }
}

/// Numbers as flow exporters write them, including `Infinity`, `inf` and `NaN`.
pub(crate) fn parse_number(cell: &str) -> Option<f32> {
    cell.parse::<f32>().ok()
}

pub(crate) fn parse_bool(cell: &str) -> Option<bool> {
    if cell.eq_ignore_ascii_case("true") {
        Some(true)
    } else if cell.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A cell as trimmed text: ASCII (nearly every cell) and UTF-8 as they stand, any odd byte
/// read as U+FFFD. Validating every short cell as UTF-8 took a sixth of a flow file's load time;
/// the ASCII check is much cheaper.
pub(crate) fn text(bytes: &[u8]) -> Cow<'_, str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are UTF-8.
        return Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(bytes.trim_ascii()) });
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s.trim()),
        Err(_) => Cow::Owned(String::from_utf8_lossy(bytes).trim().to_string()),
    }
}

/// A header cell as a column name: trimmed, without a UTF-8 byte-order mark, any odd byte
/// read as U+FFFD.
pub fn column_name(cell: &[u8]) -> String {
    String::from_utf8_lossy(cell)
        .trim_start_matches('\u{feff}')
        .trim()
        .to_string()
}

/// Records split per step: enough to amortize handing work between threads, few enough
/// (about a megabyte of an 80-column flow file) to stay in cache while every column reads them.
const BATCH_RECORDS: usize = 2048;

/// Opens a data file; with `zeek`, refuses one that is not a Zeek log.
fn open_table(path: &Path, zeek: bool) -> Result<Box<dyn Read + Send>> {
    let file =
        File::open(path).map_err(|e| bad_input(format!("cannot open {}: {e}", path.display())))?;
    let (input, layout) = sniff(file)?;
    if zeek && layout != Layout::Zeek {
        bail_input!(
            "{}: data.format is zeek, but this is not a Zeek log: expected a first line \
             `#separator …` (TSV) or one JSON object per line",
            path.display()
        );
    }
    Ok(input)
}

/// Reads `path` as described by `spec`. Errors name the file's line and column.
///
/// One thread splits the next batch of records while the others parse the current one, a
/// group of columns each. Every column is still filled in file order, so the table, and the
/// first error reported, are the same on any number of threads.
pub fn read_table(path: &Path, spec: &TableSpec) -> Result<Table> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .buffer_capacity(1 << 20)
        .from_reader(open_table(path, spec.zeek)?);

    // Bytes, not strings: CIC-IDS2017 writes some attack names in Windows-1252 ("Web Attack
    // \x96 Brute Force"); such cells are read with U+FFFD in place of the odd byte.
    let mut record = csv::ByteRecord::new();
    let names: Vec<String> = if spec.header {
        if !next_record(&mut reader, &mut record)? {
            bail_input!("the file is empty: expected a header row");
        }
        record.iter().map(column_name).collect()
    } else {
        spec.columns.iter().map(|s| s.trim().to_string()).collect()
    };
    let Plan {
        label,
        mut builders,
        skipped_duplicates,
    } = plan_columns(&names, spec)?;

    let mut labels = Dictionary::default();
    let mut current = Batch::default();
    let mut next = Batch::default();
    current.fill(&mut reader, names.len(), if spec.header { 2 } else { 1 });
    loop {
        let reading = current.stop.is_none();
        let following = current.first_line + current.len as u64;
        let ((), parsed) = rayon::join(
            || {
                if reading {
                    next.fill(&mut reader, names.len(), following)
                }
            },
            || parse_batch(&current, &mut builders, &mut labels, label),
        );
        parsed?;
        match current.stop.take() {
            Some(stop) => break stop?,
            None => std::mem::swap(&mut current, &mut next),
        }
    }
    if labels.codes.is_empty() {
        bail_input!("no data rows");
    }
    Ok(Table {
        path: path.to_path_buf(),
        columns: builders.into_iter().map(Builder::finish).collect(),
        source_rows: (0..labels.codes.len()).collect(),
        labels,
        labelled: label.is_some(),
        skipped_duplicates,
    })
}

/// What `read_table` does with each field.
struct Plan<'a> {
    /// The label's field index and name, when the file has it.
    label: Label<'a>,
    /// One for each feature column that is read.
    builders: Vec<Builder>,
    /// Repeated names skipped, with their 1-based positions.
    skipped_duplicates: Vec<(String, usize)>,
}

type Label<'a> = Option<(usize, &'a str)>;

/// Plans the reading of `names`; refuses names the spec cannot use.
fn plan_columns<'a>(names: &'a [String], spec: &TableSpec) -> Result<Plan<'a>> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut duplicate = vec![false; names.len()];
    let mut skipped_duplicates = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if let Some(&first) = seen.get(name.as_str()) {
            if !spec.keep_first_duplicate {
                bail_input!(
                    "duplicate column name '{name}' at positions {} and {} \
                     (data.duplicate_columns: keep_first keeps the first)",
                    first + 1,
                    i + 1
                );
            }
            duplicate[i] = true;
            skipped_duplicates.push((name.clone(), i + 1));
        } else {
            seen.insert(name.as_str(), i);
        }
    }
    let label_name = spec.label_column.trim();
    let label = names.iter().position(|n| n == label_name);
    if label.is_none() && !spec.label_optional {
        bail_input!(
            "no label column '{label_name}' (data.label_column); the columns are: {}",
            names.join(", ")
        );
    }
    for d in &spec.drop_columns {
        if !names.iter().any(|n| n == d.trim()) {
            bail_input!("data.drop_columns: no column '{}' in the file", d.trim());
        }
    }
    if let Some(only) = &spec.only_columns {
        for want in only {
            if !names.iter().any(|n| n == want) {
                bail_input!("missing column '{want}', which the model was trained on");
            }
        }
    }
    let dropped = |name: &String| {
        spec.drop_columns
            .iter()
            .chain(&spec.drop_if_present)
            .any(|d| d.trim() == name)
            || spec
                .only_columns
                .as_ref()
                .is_some_and(|o| !o.contains(name))
    };
    let builders = names
        .iter()
        .enumerate()
        .filter(|&(i, name)| !duplicate[i] && Some(i) != label && !dropped(name))
        .map(|(i, name)| Builder::new(i, name.clone(), spec.forced_kinds.get(name).copied()))
        .collect();
    Ok(Plan {
        label: label.map(|i| (i, names[i].as_str())),
        builders,
        skipped_duplicates,
    })
}

/// Records split ahead of parsing, and why the splitting stopped, once it has.
#[derive(Default)]
struct Batch {
    /// Reused from batch to batch; the first `len` hold this batch.
    records: Vec<csv::ByteRecord>,
    len: usize,
    /// The line of `records[0]`, counting records (the header is line 1).
    first_line: u64,
    /// `Ok` at the end of the file, or the reader's error: reported after the batch is parsed,
    /// so that a bad cell on an earlier line is reported first, as a sequential reader would.
    stop: Option<Result<()>>,
}

impl Batch {
    fn fill<R: Read>(&mut self, reader: &mut csv::Reader<R>, width: usize, first_line: u64) {
        self.len = 0;
        self.first_line = first_line;
        while self.len < BATCH_RECORDS && self.stop.is_none() {
            if self.records.len() == self.len {
                self.records.push(csv::ByteRecord::new());
            }
            let record = &mut self.records[self.len];
            match next_record(reader, record) {
                Ok(true) if record.len() == width => self.len += 1,
                Ok(true) => {
                    let line = first_line + self.len as u64;
                    self.stop = Some(Err(bad_input(format!(
                        "line {line}: expected {width} fields, found {}",
                        record.len()
                    ))));
                }
                Ok(false) => self.stop = Some(Ok(())),
                Err(e) => self.stop = Some(Err(e)),
            }
        }
    }

    fn lines(&self) -> impl Iterator<Item = (u64, &csv::ByteRecord)> {
        (self.first_line..).zip(&self.records[..self.len])
    }
}

/// A bad cell's error, with its place to pick the earliest of several.
struct CellError {
    line: u64,
    field: usize,
    error: anyhow::Error,
}

/// Parses one batch into the labels and the feature columns (in groups of columns on rayon's
/// threads); on bad cells, returns the error of the first one in file order.
fn parse_batch(
    batch: &Batch,
    builders: &mut [Builder],
    labels: &mut Dictionary,
    label: Label,
) -> Result<()> {
    let group = builders.len().div_ceil(8).max(1);
    let (label_error, cell_error) = rayon::join(
        || parse_labels(batch, labels, label).err(),
        || {
            builders
                .par_chunks_mut(group)
                .filter_map(|columns| parse_columns(batch, columns).err())
                .min_by_key(|e| (e.line, e.field))
        },
    );
    match label_error
        .into_iter()
        .chain(cell_error)
        .min_by_key(|e| (e.line, e.field))
    {
        Some(e) => Err(e.error),
        None => Ok(()),
    }
}

/// Fills `columns` from the batch, record by record, stopping at the first bad cell.
fn parse_columns(batch: &Batch, columns: &mut [Builder]) -> Result<(), CellError> {
    for (line, record) in batch.lines() {
        for column in columns.iter_mut() {
            let field = column.field;
            column
                .push(&text(&record[field]), line)
                .map_err(|error| CellError { line, field, error })?;
        }
    }
    Ok(())
}

/// Each record's label, or an empty one when the file has no label column.
fn parse_labels(batch: &Batch, labels: &mut Dictionary, label: Label) -> Result<(), CellError> {
    for (line, record) in batch.lines() {
        let Some((field, name)) = label else {
            labels.push("");
            continue;
        };
        let cell = text(&record[field]);
        if cell.is_empty() {
            return Err(CellError {
                line,
                field,
                error: bad_input(format!("line {line}: the label column '{name}' is empty")),
            });
        }
        labels.push(&cell);
    }
    Ok(())
}

/// `csv`'s own errors (ragged rows, bad UTF-8, I/O) reworded with the line they occurred on.
fn next_record<R: Read>(reader: &mut csv::Reader<R>, record: &mut csv::ByteRecord) -> Result<bool> {
    reader.read_byte_record(record).map_err(|e| {
        let line = e.position().map(|p| p.line());
        match (e.kind(), line) {
            (
                csv::ErrorKind::UnequalLengths {
                    expected_len, len, ..
                },
                Some(l),
            ) => bad_input(format!(
                "line {l}: expected {expected_len} fields, found {len}"
            )),
            (csv::ErrorKind::Io(io), _) => bad_input(format!("cannot read the file: {io}")),
            _ => bad_input(e.to_string()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::one_line;
    use std::io::Write;

    fn spec(label: &str) -> TableSpec {
        TableSpec {
            header: true,
            label_column: label.into(),
            ..Default::default()
        }
    }

    fn write(dir: &tempfile::TempDir, name: &str, body: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn infers_kinds_counts_missing_and_keeps_label_in_the_middle() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            &dir,
            "a.csv",
            b" x , label, flag,proto\r\n1.5,0.0,True,tcp\r\n,1.0,False,udp\r\nInfinity,0.0,True,tcp\r\nNaN,0.0,false,icmp\r\n",
        );
        let t = read_table(&p, &spec("label")).unwrap();
        assert_eq!(t.n_rows(), 4);
        let names: Vec<_> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["x", "flag", "proto"]);
        let x = t.column("x").unwrap();
        assert_eq!(
            x.missing,
            MissingCounts {
                empty: 1,
                nan: 1,
                infinite: 1
            }
        );
        assert_eq!(t.column("flag").unwrap().kind(), Kind::Boolean);
        assert_eq!(t.column("proto").unwrap().kind(), Kind::Categorical);
        assert_eq!(t.labels.value(1), "1.0");
    }

    #[test]
    fn keeps_the_first_of_duplicate_columns_and_reads_windows_1252_labels() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            &dir,
            "cic.csv",
            b" Flow Bytes/s, Fwd Header Length, Fwd Header Length, Label\n1,2,3,BENIGN\n4,5,6,Web Attack \x96 Brute Force\n",
        );
        let err = read_table(&p, &spec("Label")).unwrap_err();
        assert!(
            one_line(&err)
                .contains("duplicate column name 'Fwd Header Length' at positions 2 and 3")
        );
        let s = TableSpec {
            keep_first_duplicate: true,
            ..spec("Label")
        };
        let t = read_table(&p, &s).unwrap();
        let names: Vec<_> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Flow Bytes/s", "Fwd Header Length"]);
        let ColumnData::Numeric(v) = &t.column("Fwd Header Length").unwrap().data else {
            panic!()
        };
        assert_eq!(v, &[2.0, 5.0]);
        assert_eq!(t.skipped_duplicates, [("Fwd Header Length".to_string(), 3)]);
        assert_eq!(t.labels.value(1), "Web Attack \u{fffd} Brute Force");
    }

    #[test]
    fn reads_gzip_and_headerless_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"0,tcp,normal,20\n5,udp,neptune,21\n")
            .unwrap();
        let p = write(&dir, "k.txt.gz", &gz.finish().unwrap());
        let s = TableSpec {
            header: false,
            columns: vec![
                "duration".into(),
                "proto".into(),
                "label".into(),
                "difficulty".into(),
            ],
            label_column: "label".into(),
            drop_columns: vec!["difficulty".into()],
            ..Default::default()
        };
        let t = read_table(&p, &s).unwrap();
        assert_eq!(t.columns.len(), 2);
        assert_eq!(t.labels.values, ["normal", "neptune"]);
    }

    #[test]
    fn bad_files_name_the_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let cases: &[(&[u8], &str)] = &[
            (b"a,label\n1,0\n2\n", "line 3: expected 2 fields, found 1"),
            (
                b"a,label\n1,0\nfoo,1\n",
                "line 3, column 'a': expected a number",
            ),
            (b"a,b\n1,0\n", "no label column 'label'"),
            (b"", "the file is empty"),
            (b"a,label\n", "no data rows"),
            (
                b"a,label,a\n1,0,2\n",
                "duplicate column name 'a' at positions 1 and 3",
            ),
        ];
        for (body, want) in cases {
            let p = write(&dir, "bad.csv", body);
            let err = read_table(&p, &spec("label")).unwrap_err();
            assert!(
                one_line(&err).contains(want),
                "{} !~ {want}",
                one_line(&err)
            );
        }
    }

    /// A file of several batches: the columns as one thread reads them, and the first bad
    /// line reported whichever batch holds it and whatever kind of fault it is.
    #[test]
    fn batches_read_the_same_on_any_thread_count_and_report_the_first_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        type Fault<'a> = &'a dyn Fn(usize) -> Option<&'static str>;
        let rows = |fault: Fault| {
            let mut body = String::from("a,c,label,b\n");
            for i in 0..3 * BATCH_RECORDS + 17 {
                let row = format!("{}.5,k{},{},{}\n", i % 97, i % 5, i % 3, i as f32 / 7.0);
                body.push_str(fault(i + 2).unwrap_or(row.as_str()));
            }
            body
        };
        let p = write(&dir, "ok.csv", rows(&|_| None).as_bytes());
        let read_on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
            let t = pool
                .unwrap()
                .install(|| read_table(&p, &spec("label")))
                .unwrap();
            let cells = |c: &Column| match &c.data {
                ColumnData::Numeric(v) | ColumnData::Boolean(v) => format!("{v:?}"),
                ColumnData::Categorical(d) => format!("{:?} {:?}", d.values, d.codes),
            };
            let columns: Vec<_> = t
                .columns
                .iter()
                .map(|c| (&c.name, c.missing, cells(c)))
                .collect();
            format!("{columns:?} {:?} {:?}", t.labels.values, t.labels.codes)
        };
        let one = read_on(1);
        assert_eq!(one, read_on(2));
        assert_eq!(one, read_on(5));

        // Lines 2..=2049 are the first batch: the first two faults straddle its end.
        let (cell, ragged, empty_label) = (2040, 2600, 5000);
        let cases: [(Fault, String); 3] = [
            (
                &|l| match l {
                    l if l == cell => Some("1,k,0,oops\n"),
                    l if l == ragged => Some("1,k\n"),
                    _ => None,
                },
                format!("line {cell}, column 'b': expected a number"),
            ),
            (
                &|l| match l {
                    l if l == cell => Some("1,k\n"),
                    l if l == ragged => Some("1,k,0,oops\n"),
                    _ => None,
                },
                format!("line {cell}: expected 4 fields, found 2"),
            ),
            (
                &|l| match l {
                    l if l == empty_label => Some("x,k,,1\n"),
                    l if l == empty_label + 1 => Some("x,k,0,1\n"),
                    _ => None,
                },
                format!("line {empty_label}, column 'a': expected a number"),
            ),
        ];
        for (fault, want) in cases {
            let p = write(&dir, "bad.csv", rows(fault).as_bytes());
            let err = one_line(&read_table(&p, &spec("label")).unwrap_err());
            assert!(err.contains(&want), "{err} !~ {want}");
        }
    }

    #[test]
    fn retain_rows_keeps_columns_and_labels_aligned() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "r.csv", b"a,c,label\n1,x,p\n2,y,q\n3,x,r\n");
        let mut t = read_table(&p, &spec("label")).unwrap();
        t.retain_rows(&[2, 0]);
        let ColumnData::Numeric(a) = &t.columns[0].data else {
            panic!()
        };
        assert_eq!(a, &[3.0, 1.0]);
        let ColumnData::Categorical(c) = &t.columns[1].data else {
            panic!()
        };
        assert_eq!((c.value(0), c.value(1)), ("x", "x"));
        assert_eq!((t.labels.value(0), t.labels.value(1)), ("r", "p"));
    }
}
