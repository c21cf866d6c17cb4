//! The analyst feedback file: one CSV row per judged alarm, holding the row's input columns,
//! then `score`, `verdict`, `model` and `time`. The dashboard appends to it; feedback
//! retraining reads it. Each append rewrites the file under a temporary name and renames it
//! over the old one, so a reader never sees half a row.

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::bail_input;

/// An analyst's judgement of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
