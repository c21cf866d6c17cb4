//! Gaussian-noise augmentation with class resampling, applied to a training part only.
//!
//! One [`Plan`] serves both uses: `cv` appends its rows to the in-memory table of a fold, and
//! `augment` writes them as CSV files next to the untouched original rows.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde::Serialize;

use crate::bail_input;
use crate::config::{AugmentationConfig, DataConfig, ResampleStrategy};
use crate::data::Labeled;
use crate::data::read::{ColumnData, Table, column_name, open_maybe_gz};

/// A noised copy of a positive training row.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// The table row it copies.
    pub source: usize,
    /// New values for the plan's noised columns, in their order.
    pub values: Vec<f32>,
}

/// What augmentation does to a training part.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Original training rows that stay (all of them, unless negatives are undersampled).
    pub keep: Vec<usize>,
    pub synthetic: Vec<Synthetic>,
    /// Indices into `table.columns` of the numeric, non-binary columns that get noise.
    pub noised: Vec<usize>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClassCounts {
    pub normal: usize,
    pub anomalous: usize,
}

impl ClassCounts {
    pub fn of(rows: impl IntoIterator<Item = usize>, y: &[f32]) -> ClassCounts {
        let mut c = ClassCounts::default();
        for r in rows {
            if y[r] == 1.0 {
                c.anomalous += 1;
            } else {
                c.normal += 1;
            }
        }
        c
    }
}

/// A numeric column that gets noise, with its training statistics.
#[derive(Debug, Clone, Copy)]
struct NoiseColumn {
    index: usize,
    std: f64,
    min: f32,
    max: f32,
    /// All training values are whole numbers (ports, counts): noised values are rounded.
    integer: bool,
}

/// Numeric columns whose training values are not all 0/1 get noise; one-hot, boolean and
/// 0/1 columns never do.
fn noise_columns(table: &Table, train: &[usize]) -> Vec<NoiseColumn> {
    let mut out = Vec::new();
    for (i, col) in table.columns.iter().enumerate() {
        let ColumnData::Numeric(v) = &col.data else {
            continue;
        };
        let vals: Vec<f32> = train
            .iter()
            .map(|&r| v[r])
            .filter(|x| x.is_finite())
            .collect();
        if vals.iter().all(|&x| x == 0.0 || x == 1.0) {
            continue;
        }
        let n = vals.len() as f64;
        let mean = vals.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = vals.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        let (lo, hi) = vals
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            });
        if var > 0.0 {
            let integer = vals.iter().all(|x| x.fract() == 0.0);
            out.push(NoiseColumn {
                index: i,
                std: var.sqrt(),
                min: lo,
                max: hi,
                integer,
            });
        }
    }
    out
}

/// Plans the augmentation of `train` rows so that anomalies make up the target ratio.
pub fn plan(
    table: &Table,
    y: &[f32],
    train: &[usize],
    cfg: &AugmentationConfig,
    seed: u64,
) -> Result<Plan> {
    let mut rng = StdRng::seed_from_u64(seed);
    let positives: Vec<usize> = train.iter().copied().filter(|&r| y[r] == 1.0).collect();
    let negatives: Vec<usize> = train.iter().copied().filter(|&r| y[r] != 1.0).collect();
    if positives.is_empty() {
        bail_input!("augmentation: the training rows hold no anomalies to resample");
    }
    let r = cfg.target_positive_ratio;
    let (p, n) = (positives.len() as f64, train.len() as f64);
    let columns = noise_columns(table, train);
    let mut plan = Plan {
        keep: train.to_vec(),
        synthetic: Vec::new(),
        noised: columns.iter().map(|c| c.index).collect(),
    };
    match cfg.strategy {
        ResampleStrategy::Oversample => {
            // (p + k) / (n + k) = r  ⇒  k = (r·n − p) / (1 − r)
            let k = ((r * n - p) / (1.0 - r)).round().max(0.0) as usize;
            for _ in 0..k {
                let source = positives[rng.random_range(0..positives.len())];
                let values = columns
                    .iter()
                    .map(|c| {
                        let ColumnData::Numeric(v) = &table.columns[c.index].data else {
                            unreachable!("noise columns are numeric")
                        };
                        let base = if v[source].is_finite() {
                            v[source]
                        } else {
                            c.min
                        };
                        let noise = Normal::new(0.0, c.std * cfg.noise_scale)
                            .expect("std is finite and >= 0");
                        let mut x = base + noise.sample(&mut rng) as f32;
                        if c.integer {
                            x = x.round();
                        }
                        if cfg.clip { x.clamp(c.min, c.max) } else { x }
                    })
                    .collect();
                plan.synthetic.push(Synthetic { source, values });
            }
        }
        ResampleStrategy::Undersample => {
            // p / (p + m) = r  ⇒  m = p·(1 − r) / r
            let m = (p * (1.0 - r) / r).round() as usize;
            if m < negatives.len() {
                let mut kept: Vec<usize> = sample(&mut rng, negatives.len(), m)
                    .into_iter()
                    .map(|i| negatives[i])
                    .collect();
                kept.extend_from_slice(&positives);
                kept.sort_unstable();
                plan.keep = kept;
            }
        }
    }
    Ok(plan)
}

impl Plan {
    /// Appends the synthetic rows to the table and returns the augmented training rows.
    pub fn apply(&self, data: &mut Labeled) -> Vec<usize> {
        let mut rows = self.keep.clone();
        for s in &self.synthetic {
            let t = &mut data.table;
            for (i, col) in t.columns.iter_mut().enumerate() {
                match &mut col.data {
                    ColumnData::Numeric(v) | ColumnData::Boolean(v) => {
                        let x = match self.noised.iter().position(|&c| c == i) {
                            Some(k) => s.values[k],
                            None => v[s.source],
                        };
                        v.push(x);
                    }
                    ColumnData::Categorical(d) => d.codes.push(d.codes[s.source]),
                }
            }
            t.labels.codes.push(t.labels.codes[s.source]);
            t.source_rows.push(t.source_rows[s.source]);
            data.y.push(data.y[s.source]);
            if !data.class.is_empty() {
                data.class.push(data.class[s.source]);
            }
            rows.push(data.y.len() - 1);
        }
        rows
    }

    pub fn counts_after(&self, y: &[f32]) -> ClassCounts {
        let mut c = ClassCounts::of(self.keep.iter().copied(), y);
        c.anomalous += self.synthetic.len();
        c
    }
}

/// The files `augment` writes.
pub struct Outputs {
    pub train: PathBuf,
    pub val: PathBuf,
    pub test: PathBuf,
}

impl Outputs {
    pub fn in_dir(dir: &Path) -> Outputs {
        Outputs {
            train: dir.join("train_data_augmented.csv"),
            val: dir.join("val_data.csv"),
            test: dir.join("test_data.csv"),
        }
    }
}

/// Writes the augmented training rows, and the validation and test rows untouched, in the
/// input's format (header, column order, cell text). Original rows are copied record by
/// record from the input; a synthetic row is its source record with the noised cells replaced.
pub fn write_files(
    cfg: &DataConfig,
    table: &Table,
    plan: &Plan,
    val: &[usize],
    test: &[usize],
    out: &Outputs,
) -> Result<()> {
    // File record number → where the record goes.
    #[derive(Clone, Copy, PartialEq)]
    enum Dest {
        Train,
        Val,
        Test,
    }
    let mut dest: HashMap<usize, Dest> = HashMap::new();
    for (rows, d) in [
        (&plan.keep[..], Dest::Train),
        (val, Dest::Val),
        (test, Dest::Test),
    ] {
        for &r in rows {
            dest.insert(table.source_rows[r], d);
        }
    }
    let sources: HashSet<usize> = plan
        .synthetic
        .iter()
        .map(|s| table.source_rows[s.source])
        .collect();

    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(open_maybe_gz(&table.path)?);
    let mut record = csv::ByteRecord::new();
    let header = if cfg.header {
        reader.read_byte_record(&mut record)?;
        Some(record.clone())
    } else {
        None
    };
    let names: Vec<String> = match &header {
        Some(h) => h.iter().map(column_name).collect(),
        None => cfg.columns.iter().map(|c| c.trim().to_string()).collect(),
    };
    let positions: Vec<usize> = plan
        .noised
        .iter()
        .map(|&c| {
            names
                .iter()
                .position(|n| *n == table.columns[c].name)
                .expect("a read column is in the header")
        })
        .collect();

    let tmp = |p: &Path| p.with_extension("csv.tmp");
    let open = |p: &Path| -> Result<csv::Writer<std::fs::File>> {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut w =
            csv::Writer::from_path(tmp(p)).with_context(|| format!("writing {}", p.display()))?;
        if let Some(h) = &header {
            w.write_byte_record(h)?;
        }
        Ok(w)
    };
    let mut writers = [open(&out.train)?, open(&out.val)?, open(&out.test)?];
    let mut source_records: HashMap<usize, csv::ByteRecord> = HashMap::new();
    let mut index = 0;
    while reader
        .read_byte_record(&mut record)
        .with_context(|| format!("re-reading {}", table.path.display()))?
    {
        match dest.get(&index) {
            Some(Dest::Train) => writers[0].write_byte_record(&record)?,
            Some(Dest::Val) => writers[1].write_byte_record(&record)?,
            Some(Dest::Test) => writers[2].write_byte_record(&record)?,
            None => {}
        }
        if sources.contains(&index) {
            source_records.insert(index, record.clone());
        }
        index += 1;
    }
    for s in &plan.synthetic {
        let source = &source_records[&table.source_rows[s.source]];
        let mut cells: Vec<Vec<u8>> = source.iter().map(|c| c.to_vec()).collect();
        for (&pos, v) in positions.iter().zip(&s.values) {
            cells[pos] = v.to_string().into_bytes();
        }
        writers[0].write_record(&cells)?;
    }
    for (w, p) in writers.iter_mut().zip([&out.train, &out.val, &out.test]) {
        w.flush()?;
        std::fs::rename(tmp(p), p).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
