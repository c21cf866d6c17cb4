//! The analyst feedback file: one CSV row per judged alarm, holding the row's input columns,
//! then `score`, `verdict`, `model` and `time`. The dashboard appends to it; feedback
//! retraining reads it. Each append rewrites the file under a temporary name and renames it
//! over the old one, so a reader never sees half a row.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use csv::ByteRecord;
use serde::{Deserialize, Serialize};

use crate::bail_input;
use crate::config::DataConfig;
use crate::data::preprocess::Preprocessor;
use crate::data::read::{column_name, sha256_file};
use crate::data::records::encode_records;
use crate::error::bad_input;

/// An analyst's judgement of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Verdict {
    TruePositive,
    FalsePositive,
    FalseNegative,
    Normal,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::TruePositive => "true_positive",
            Verdict::FalsePositive => "false_positive",
            Verdict::FalseNegative => "false_negative",
            Verdict::Normal => "normal",
        }
    }

    pub const ALL: [Verdict; 4] = [
        Verdict::TruePositive,
        Verdict::FalsePositive,
        Verdict::FalseNegative,
        Verdict::Normal,
    ];

    /// Whether the analyst says the row is an anomaly.
    pub fn is_anomaly(self) -> bool {
        matches!(self, Verdict::TruePositive | Verdict::FalseNegative)
    }

    fn parse(text: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == text)
    }
}

/// A feedback file read for a model: its rows encoded with the model's preprocessing, each
/// with its verdict, and the file's sha256.
pub struct Judged {
    pub x: Vec<f32>,
    pub verdicts: Vec<Verdict>,
    pub sha256: String,
}

impl Judged {
    /// The analysts' labels: 1 for an anomaly, 0 for a normal row.
    pub fn labels(&self) -> Vec<f32> {
        self.verdicts
            .iter()
            .map(|v| v.is_anomaly() as u8 as f32)
            .collect()
    }

    pub fn count(&self, verdict: Verdict) -> usize {
        self.verdicts.iter().filter(|&&v| v == verdict).count()
    }
}

/// The rows of a feedback file as a CSV table: column names and records.
fn table(path: &Path) -> Result<(Vec<String>, Vec<ByteRecord>)> {
    let file = std::fs::File::open(path).map_err(|e| {
        bad_input(format!(
            "feedback file {}: cannot open it: {e}",
            path.display()
        ))
    })?;
    let mut reader = csv::ReaderBuilder::new().from_reader(file);
    let bad = |e: csv::Error| bad_input(format!("feedback file {}: {e}", path.display()));
    let names = reader
        .byte_headers()
        .map_err(bad)?
        .iter()
        .map(column_name)
        .collect();
    let records = reader
        .byte_records()
        .collect::<Result<_, _>>()
        .map_err(bad)?;
    Ok((names, records))
}

/// Reads the feedback file at `path` for the model whose preprocessing is `pre`: every input
/// column must be there, and every verdict one of the four.
pub fn read(path: &Path, pre: &Preprocessor, data: &DataConfig) -> Result<Judged> {
    let (names, records) = table(path)?;
    let shown = path.display();
    for c in &pre.columns {
        if !names.contains(&c.name) {
            bail_input!(
                "feedback file {shown}: no column '{}', which the model was trained on (its columns: {})",
                c.name,
                names.join(", ")
            );
        }
    }
    let Some(at) = names.iter().position(|n| n == "verdict") else {
        bail_input!("feedback file {shown}: no 'verdict' column");
    };
    if records.is_empty() {
        bail_input!("feedback file {shown}: no rows");
    }
    let verdicts = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let cell = String::from_utf8_lossy(r.get(at).unwrap_or_default());
            Verdict::parse(cell.trim()).ok_or_else(|| {
                bad_input(format!(
                    "feedback file {shown}, row {}: verdict {cell:?}: expected true_positive, false_positive, false_negative or normal",
                    i + 1
                ))
            })
        })
        .collect::<Result<_>>()?;
    let (x, _) = encode_records(pre, data, &names, &records, false)
        .with_context(|| format!("feedback file {shown}"))?;
    Ok(Judged {
        x,
        verdicts,
        sha256: sha256_file(path)?,
    })
}

/// What `feedback list` shows: rows per verdict and per model, and the time span.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub rows: usize,
    pub verdicts: BTreeMap<String, usize>,
    pub models: BTreeMap<String, usize>,
    pub first: Option<String>,
    pub last: Option<String>,
}

pub fn summarize(path: &Path) -> Result<Summary> {
    let (names, records) = table(path)?;
    let at = |name: &str| names.iter().position(|n| n == name);
    let (Some(v), Some(m), Some(t)) = (at("verdict"), at("model"), at("time")) else {
        bail_input!(
            "feedback file {}: expected the columns {} after the model's input columns",
            path.display(),
            TRAILER.join(", ")
        );
    };
    let cell = |r: &ByteRecord, i: usize| {
        String::from_utf8_lossy(r.get(i).unwrap_or_default()).into_owned()
    };
    let mut s = Summary {
        rows: records.len(),
        verdicts: BTreeMap::new(),
        models: BTreeMap::new(),
        first: None,
        last: None,
    };
    for r in &records {
        *s.verdicts.entry(cell(r, v)).or_default() += 1;
        *s.models.entry(cell(r, m)).or_default() += 1;
        let time = cell(r, t);
        // RFC 3339 UTC times order as text.
        if s.first.as_ref().is_none_or(|f| time < *f) {
            s.first = Some(time.clone());
        }
        if s.last.as_ref().is_none_or(|l| time > *l) {
            s.last = Some(time);
        }
    }
    Ok(s)
}

/// One judged row.
pub struct Entry {
    /// The row's columns and values, in the model's input column order.
    pub columns: Vec<String>,
    pub values: Vec<String>,
    pub score: f32,
    pub verdict: Verdict,
    pub model: String,
    /// RFC 3339, UTC.
    pub time: String,
}

const TRAILER: [&str; 4] = ["score", "verdict", "model", "time"];

/// Appends `entry` to the feedback file at `path` (created with its header when absent) and
/// returns how many rows it now holds. A file whose header differs is refused.
pub fn append(path: &Path, entry: &Entry) -> Result<usize> {
    let header: Vec<&str> = entry
        .columns
        .iter()
        .map(String::as_str)
        .chain(TRAILER)
        .collect();
    let mut text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => line(&header),
        Err(e) => bail_input!("feedback file {}: cannot read it: {e}", path.display()),
    };
    let first = text.lines().next().unwrap_or("");
    if first != line(&header).trim_end() {
        bail_input!(
            "feedback file {}: its header is `{first}`, expected `{}` (the model's input columns, then {}); use another --feedback-file",
            path.display(),
            line(&header).trim_end(),
            TRAILER.join(", ")
        );
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let score = entry.score.to_string();
    let row: Vec<&str> = entry
        .values
        .iter()
        .map(String::as_str)
        .chain([
            score.as_str(),
            entry.verdict.as_str(),
            &entry.model,
            &entry.time,
        ])
        .collect();
    text.push_str(&line(&row));
    super::write_atomic(path, &text)?;
    Ok(text.lines().count() - 1)
}

/// Cells joined as one CSV line, quoted where needed.
fn line(cells: &[&str]) -> String {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    // Writing into memory cannot fail.
    let _ = w.write_record(cells);
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// What a retrained checkpoint records of its feedback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    pub file: PathBuf,
    pub sha256: String,
    pub rows: usize,
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    pub normal: usize,
    pub weight: u32,
    /// The checkpoint retraining started from, and its sha256.
    pub parent: PathBuf,
    pub parent_sha256: String,
}

impl FeedbackRecord {
    pub fn new(file: &Path, judged: &Judged, weight: u32, parent: &Path) -> Result<Self> {
        Ok(FeedbackRecord {
            file: file.to_path_buf(),
            sha256: judged.sha256.clone(),
            rows: judged.verdicts.len(),
            true_positives: judged.count(Verdict::TruePositive),
            false_positives: judged.count(Verdict::FalsePositive),
            false_negatives: judged.count(Verdict::FalseNegative),
            normal: judged.count(Verdict::Normal),
            weight,
            parent: parent.to_path_buf(),
            parent_sha256: sha256_file(parent)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(values: [&str; 2], verdict: Verdict) -> Entry {
        Entry {
            columns: vec!["bytes".into(), "proto".into()],
            values: values.iter().map(|v| v.to_string()).collect(),
            score: 0.75,
            verdict,
            model: "mlp".into(),
            time: "2026-12-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn appends_rows_under_one_header_and_refuses_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fb/feedback.csv");
        assert_eq!(
            append(&path, &entry(["10", "tcp"], Verdict::FalsePositive)).unwrap(),
            1
        );
        assert_eq!(
            append(&path, &entry(["5", "a,b"], Verdict::TruePositive)).unwrap(),
            2
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "bytes,proto,score,verdict,model,time\n\
             10,tcp,0.75,false_positive,mlp,2026-12-01T00:00:00Z\n\
             5,\"a,b\",0.75,true_positive,mlp,2026-12-01T00:00:00Z\n"
        );
        let mut other = entry(["1", "udp"], Verdict::Normal);
        other.columns[0] = "packets".into();
        let err = append(&path, &other).unwrap_err().to_string();
        assert!(err.contains("its header is `bytes,proto,score"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1);
    }
}
