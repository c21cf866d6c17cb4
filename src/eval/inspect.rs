//! The data check (`anomaly inspect`, `train --dry-run`): what the reader made of a file before
//! anything is trained on it, with the problems real flow exports have called out.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde::Serialize;

use crate::data::Labeled;
use crate::data::read::{Column, ColumnData, Kind, MissingCounts, Table};
use crate::eval::roc_auc;

/// A column whose values alone separate normal from anomalous rows at least this well (ROC
/// AUC, either direction) is reported as a likely leak.
const LEAK_AUC: f64 = 0.99;

#[derive(Debug, Clone, Serialize)]
pub struct ColumnCheck {
    pub name: String,
    pub kind: Kind,
    pub missing: MissingCounts,
    /// Distinct values (categories, or distinct numbers).
    pub distinct: usize,
    pub min: Option<f32>,
    pub max: Option<f32>,
    pub mean: Option<f64>,
    pub constant: bool,
    /// How well the column alone ranks anomalous above normal rows (max of AUC and 1 - AUC).
    pub separation: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabelCount {
    pub label: String,
    pub class: String,
    pub anomalous: bool,
    pub rows: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataCheck {
    pub file: String,
    pub rows: usize,
    pub columns: Vec<ColumnCheck>,
    /// Repeated header names skipped by `keep_first`, with their positions.
    pub skipped_duplicate_names: Vec<(String, usize)>,
    /// Groups of feature columns with identical values in every row.
    pub identical_columns: Vec<Vec<String>>,
    /// Rows that repeat an earlier row exactly (features and label).
    pub duplicate_rows: usize,
    pub labels: Vec<LabelCount>,
    pub normal_rows: usize,
    pub anomalous_rows: usize,
    pub warnings: Vec<String>,
}

impl DataCheck {
    pub fn of(data: &Labeled) -> DataCheck {
        let t = &data.table;
        let n = t.n_rows();
        let mut columns = Vec::new();
        let mut fingerprints: HashMap<u64, Vec<String>> = HashMap::new();
        for col in &t.columns {
            let (check, fingerprint) = column_check(col, data);
            fingerprints
                .entry(fingerprint)
                .or_default()
                .push(col.name.clone());
            columns.push(check);
        }
        let mut identical_columns: Vec<Vec<String>> =
            fingerprints.into_values().filter(|g| g.len() > 1).collect();
        identical_columns.sort();
        let duplicate_rows = duplicate_rows(t);
        let labels = label_counts(data);
        let anomalous_rows = data.y.iter().filter(|&&y| y == 1.0).count();
        let warnings = warnings(&columns, &identical_columns, duplicate_rows);
        DataCheck {
            file: t.path.display().to_string(),
            rows: n,
            columns,
            skipped_duplicate_names: t.skipped_duplicates.clone(),
            identical_columns,
            duplicate_rows,
            labels,
            normal_rows: n - anomalous_rows,
            anomalous_rows,
            warnings,
        }
    }

    /// The report for people: a line per column, the label table, then the warnings.
    pub fn table(&self) -> String {
        let width = self
            .columns
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(4)
            .max(6);
        let mut out = format!(
            "{}: {} rows, {} feature columns\n{:<width$} {:>11} {:>8} {:>7} {:>7} {:>12} {:>12} {:>10}\n",
            self.file,
            self.rows,
            self.columns.len(),
            "column",
            "kind",
            "distinct",
            "empty",
            "NaN/inf",
            "min",
            "max",
            "separation"
        );
        let num = |v: Option<f32>| v.map_or("".into(), |x| format!("{x:.4}"));
        for c in &self.columns {
            out += &format!(
                "{:<width$} {:>11} {:>8} {:>7} {:>7} {:>12} {:>12} {:>10}\n",
                c.name,
                format!("{:?}", c.kind).to_lowercase(),
                c.distinct,
                c.missing.empty,
                c.missing.nan + c.missing.infinite,
                num(c.min),
                num(c.max),
                c.separation.map_or("".into(), |s| format!("{s:.4}")),
            );
        }
        for (name, at) in &self.skipped_duplicate_names {
            out += &format!("repeated column name '{name}' at position {at}: skipped\n");
        }
        out += &if self.labels.is_empty() {
            format!(
                "labels: none (no label column); all {} rows count as normal\n",
                self.normal_rows
            )
        } else {
            format!(
                "labels: {} normal rows, {} anomalous rows\n",
                self.normal_rows, self.anomalous_rows
            )
        };
        for l in &self.labels {
            let class = if l.class == l.label.trim() {
                String::new()
            } else {
                format!(" → {}", l.class)
            };
            out += &format!(
                "  {:>9}  {}{class} ({})\n",
                l.rows,
                l.label,
                if l.anomalous { "anomalous" } else { "normal" }
            );
        }
        out += &format!("duplicate rows: {}\n", self.duplicate_rows);
        for w in &self.warnings {
            out += &format!("warning: {w}\n");
        }
        out
    }
}

/// One column's figures, and a fingerprint of its values (equal for identical columns).
fn column_check(col: &Column, data: &Labeled) -> (ColumnCheck, u64) {
    let mut h = DefaultHasher::new();
    let (distinct, min, max, mean, separation) = match &col.data {
        ColumnData::Numeric(v) | ColumnData::Boolean(v) => {
            v.iter().for_each(|x| x.to_bits().hash(&mut h));
            let finite: Vec<f32> = v.iter().copied().filter(|x| x.is_finite()).collect();
            let mut sorted = finite.clone();
            sorted.sort_unstable_by(f32::total_cmp);
            sorted.dedup();
            let mean = (!finite.is_empty())
                .then(|| finite.iter().map(|&x| x as f64).sum::<f64>() / finite.len() as f64);
            // Missing cells rank lowest, as a model that imputes would not see them
            // either; the leak check is about the values that are there.
            let scores: Vec<f32> = v
                .iter()
                .map(|x| if x.is_finite() { *x } else { f32::MIN })
                .collect();
            let separation = roc_auc(&scores, &data.y).map(|a| a.max(1.0 - a));
            (
                sorted.len(),
                sorted.first().copied(),
                sorted.last().copied(),
                mean,
                separation,
            )
        }
        ColumnData::Categorical(d) => {
            d.codes.iter().for_each(|c| c.hash(&mut h));
            // A category's score is its share of anomalous rows: the best any model
            // could do with this column alone.
            let mut counts = vec![(0usize, 0usize); d.values.len()];
            for (&c, &y) in d.codes.iter().zip(&data.y) {
                counts[c as usize].0 += 1;
                counts[c as usize].1 += (y == 1.0) as usize;
            }
            let scores: Vec<f32> = d
                .codes
                .iter()
                .map(|&c| {
                    let (rows, pos) = counts[c as usize];
                    pos as f32 / rows as f32
                })
                .collect();
            let used = counts.iter().filter(|c| c.0 > 0).count();
            (used, None, None, None, roc_auc(&scores, &data.y))
        }
    };
    let check = ColumnCheck {
        name: col.name.clone(),
        kind: col.kind(),
        missing: col.missing,
        distinct,
        min,
        max,
        mean,
        constant: distinct <= 1,
        separation,
    };
    (check, h.finish())
}

/// Rows equal to an earlier row in every column and the label.
fn duplicate_rows(t: &Table) -> usize {
    let n = t.n_rows();
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut duplicate_rows = 0;
    for r in 0..n {
        let mut h = DefaultHasher::new();
        for col in &t.columns {
            match &col.data {
                ColumnData::Numeric(v) | ColumnData::Boolean(v) => v[r].to_bits().hash(&mut h),
                ColumnData::Categorical(d) => d.codes[r].hash(&mut h),
            }
        }
        t.labels.codes[r].hash(&mut h);
        duplicate_rows += !seen.insert(h.finish()) as usize;
    }
    duplicate_rows
}

/// Rows per raw label value, most common first.
fn label_counts(data: &Labeled) -> Vec<LabelCount> {
    let t = &data.table;
    let mut per_value = vec![(0usize, false); t.labels.values.len()];
    for (&c, &y) in t.labels.codes.iter().zip(&data.y) {
        per_value[c as usize] = (per_value[c as usize].0 + 1, y == 1.0);
    }
    let mut labels: Vec<LabelCount> = t
        .labels
        .values
        .iter()
        .enumerate()
        // A file without the label column (unsupervised training) has no label values.
        .filter(|(i, _)| per_value[*i].0 > 0 && data.labelled)
        .map(|(i, v)| LabelCount {
            label: v.clone(),
            class: data.value_class[i].clone(),
            anomalous: per_value[i].1,
            rows: per_value[i].0,
        })
        .collect();
    labels.sort_by(|a, b| b.rows.cmp(&a.rows).then(a.label.cmp(&b.label)));
    labels
}

/// What a user should look at before training: leaks, constant and identical columns,
/// repeated rows.
fn warnings(
    columns: &[ColumnCheck],
    identical_columns: &[Vec<String>],
    duplicate_rows: usize,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for c in columns {
        if let Some(s) = c.separation.filter(|&s| s >= LEAK_AUC) {
            warnings.push(format!(
                "column '{}' alone separates normal from anomalous rows (AUC {s:.4}): \
                 check that it does not leak the label (an identifier, a timestamp, the \
                 label in another form); drop it with data.drop_columns if so",
                c.name
            ));
        }
        if c.constant {
            warnings.push(format!(
                "column '{}' is constant; it will be dropped",
                c.name
            ));
        }
    }
    for g in identical_columns {
        warnings.push(format!(
            "columns {} hold identical values",
            g.iter()
                .map(|c| format!("'{c}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if duplicate_rows > 0 {
        warnings.push(format!(
            "{duplicate_rows} rows repeat an earlier row exactly; a random split puts copies \
             on both sides, which flatters test metrics"
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DataConfig, Task};
    use crate::data::read_labeled;

    #[test]
    fn flags_leaks_constants_identical_columns_and_duplicate_rows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv");
        let mut body = String::from("noise,leak,copy,k,ip,label\n");
        for i in 0..40u32 {
            let y = (i % 4 == 0) as u32;
            body += &format!(
                "{},{},{},7,10.0.0.{},{}\n",
                (i * 7) % 40,
                y * 100 + i % 3,
                y * 100 + i % 3,
                i % 2 + y * 2,
                if y == 1 { "attack" } else { "normal" }
            );
        }
        let first = body.lines().nth(1).unwrap().to_string();
        body += &format!("{first}\n{first}\n");
        std::fs::write(&p, body).unwrap();
        let cfg = DataConfig {
            negative_labels: vec!["normal".into()],
            ..Default::default()
        };
        let data = read_labeled(&p, &cfg, Task::Binary, None).unwrap();
        let check = DataCheck::of(&data);
        assert_eq!(
            (check.rows, check.normal_rows, check.anomalous_rows),
            (42, 30, 12)
        );
        let w = check.warnings.join("\n");
        assert!(w.contains("column 'leak' alone separates"), "{w}");
        assert!(w.contains("column 'ip' alone separates"), "{w}");
        assert!(!w.contains("column 'noise' alone"), "{w}");
        assert!(w.contains("column 'k' is constant"), "{w}");
        assert_eq!(
            check.identical_columns,
            [vec!["leak".to_string(), "copy".to_string()]]
        );
        // `noise` is a permutation of 0..40, so only the two copies repeat a row.
        assert_eq!(check.duplicate_rows, 2);
        assert_eq!(check.labels[0].rows, 30);
        assert!(check.table().contains("warning: column 'leak'"));
    }
}
