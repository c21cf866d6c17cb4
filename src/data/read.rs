//! Reads a CSV (plain or gzip) straight into typed column buffers.
//!
//! Each cell is parsed as it streams past: numeric columns become `f32` (missing and
//! non-finite cells become NaN and are counted), `true`/`false` columns become 0/1, and
//! other strings become codes into a per-column dictionary. The file is never held as strings.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::Result;
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
}

/// Opens a file, transparently gunzipping it when it starts with the gzip magic bytes.
pub fn open_maybe_gz(path: &Path) -> Result<Box<dyn Read + Send>> {
    let file =
        File::open(path).map_err(|e| bad_input(format!("cannot open {}: {e}", path.display())))?;
    maybe_gz(file)
}

/// Any byte stream (a file, a pipe, stdin), gunzipped when it starts with the gzip magic bytes.
pub fn maybe_gz(mut stream: impl Read + Send + 'static) -> Result<Box<dyn Read + Send>> {
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
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::read::MultiGzDecoder::new(reader),
        )))
    } else {
        Ok(Box::new(reader))
    }
}

/// One column being filled while the file streams past. Its kind is settled by its first
/// non-empty cell (unless forced); empty cells before that are remembered and back-filled.
struct Builder {
    name: String,
    kind: Option<Kind>,
    leading_empty: usize,
    numbers: Vec<f32>,
    dict: Dictionary,
    missing: MissingCounts,
}

impl Builder {
    fn new(name: String, kind: Option<Kind>) -> Self {
        Self {
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

/// A header cell as a column name: trimmed, without a UTF-8 byte-order mark, any odd byte
/// read as U+FFFD.
pub fn column_name(cell: &[u8]) -> String {
    String::from_utf8_lossy(cell)
        .trim_start_matches('\u{feff}')
        .trim()
        .to_string()
}

/// Where each field of a record goes.
enum Slot {
    Skip,
    Label,
    Feature(usize),
}

/// Reads `path` as described by `spec`. Errors name the file's line and column.
pub fn read_table(path: &Path, spec: &TableSpec) -> Result<Table> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .trim(csv::Trim::All)
        .buffer_capacity(1 << 20)
        .from_reader(open_maybe_gz(path)?);

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
    let label = spec.label_column.trim();
    let labelled = names.iter().any(|n| n == label);
    if !labelled && !spec.label_optional {
        bail_input!(
            "no label column '{label}' (data.label_column); the columns are: {}",
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

    let mut builders = Vec::new();
    let slots: Vec<Slot> = names
        .iter()
        .zip(&duplicate)
        .map(|(name, &dup)| {
            if dup {
                Slot::Skip
            } else if name == label {
                Slot::Label
            } else if spec
                .drop_columns
                .iter()
                .chain(&spec.drop_if_present)
                .any(|d| d.trim() == name)
                || spec
                    .only_columns
                    .as_ref()
                    .is_some_and(|o| !o.contains(name))
            {
                Slot::Skip
            } else {
                builders.push(Builder::new(
                    name.clone(),
                    spec.forced_kinds.get(name).copied(),
                ));
                Slot::Feature(builders.len() - 1)
            }
        })
        .collect();

    let mut labels = Dictionary::default();
    let mut line = if spec.header { 1 } else { 0 };
    while next_record(&mut reader, &mut record)? {
        line += 1;
        if !labelled {
            labels.push("");
        }
        if record.len() != names.len() {
            bail_input!(
                "line {line}: expected {} fields, found {}",
                names.len(),
                record.len()
            );
        }
        for (bytes, slot) in record.iter().zip(&slots) {
            match slot {
                Slot::Skip => {}
                Slot::Label => {
                    if bytes.is_empty() {
                        bail_input!("line {line}: the label column '{label}' is empty");
                    }
                    labels.push(&String::from_utf8_lossy(bytes));
                }
                Slot::Feature(i) => builders[*i].push(&String::from_utf8_lossy(bytes), line)?,
            }
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
        labelled,
        skipped_duplicates,
    })
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
