//! NumPy `.npy` input: the prepared arrays of the CNN+LSTM project this tool replaces, `X` of
//! shape (N, C, L) (windows of C channels over L time steps) and `y` of shape (N,).
//!
//! The format is a short text header and the raw values (numpy.lib.format); no crate among
//! this project's reads it, and the subset numpy writes for plain arrays is small enough to
//! read here: little-endian or single-byte integers, floats and booleans, C order.

use std::path::Path;

use anyhow::{Context, Result};

use super::read::{Column, ColumnData, Dictionary, MissingCounts, Table};
use crate::bail_input;
use crate::config::DataConfig;

/// A numeric array: its shape and its values in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

/// Reads a `.npy` file.
pub fn read(path: &Path) -> Result<Array> {
    let bytes = std::fs::read(path)
        .map_err(|e| crate::error::bad_input(format!("cannot read {}: {e}", path.display())))?;
    parse(&bytes).with_context(|| format!("reading {}", path.display()))
}

/// Parses `.npy` bytes (format versions 1 to 3).
pub fn parse(bytes: &[u8]) -> Result<Array> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail_input!("not a NumPy .npy file (no \\x93NUMPY magic)");
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => bail_input!("unsupported .npy format version {v}"),
    };
    let Some(header) = bytes.get(start..start + len) else {
        bail_input!("the .npy header is cut short");
    };
    let header = String::from_utf8_lossy(header);
    let field = |key: &str| -> Result<String> {
        let at = header
            .find(&format!("'{key}':"))
            .ok_or_else(|| crate::error::bad_input(format!("the .npy header has no '{key}'")))?;
        Ok(header[at + key.len() + 3..].trim_start().to_string())
    };
    if field("fortran_order")?.starts_with("True") {
        bail_input!("Fortran-ordered arrays are not supported (save with numpy's C order)");
    }
    let descr = field("descr")?;
    let descr = descr
        .trim_start_matches('\'')
        .split('\'')
        .next()
        .unwrap_or("");
    let shape_text = field("shape")?;
    let inner = shape_text
        .trim_start_matches('(')
        .split(')')
        .next()
        .unwrap_or("");
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| crate::error::bad_input(format!("the .npy shape ({inner}) is not a shape")))?;
    let count: usize = shape.iter().product();
    let data = &bytes[start + len..];
    let values = decode(descr, data, count)?;
    Ok(Array { shape, values })
}

/// The `count` values of `data` as numbers, per numpy's type string.
fn decode(descr: &str, data: &[u8], count: usize) -> Result<Vec<f64>> {
    let (order, kind) = descr.split_at(1.min(descr.len()));
    let size: usize = kind.get(1..).and_then(|s| s.parse().ok()).unwrap_or(0);
    if order == ">" && size > 1 {
        bail_input!("big-endian arrays ({descr}) are not supported");
    }
    if data.len() < count * size || size == 0 {
        bail_input!(
            "the .npy data holds {} bytes, expected {count} values of type {descr}",
            data.len()
        );
    }
    let chunks = data[..count * size].chunks_exact(size);
    let values = match kind {
        "f4" => chunks
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
            .collect(),
        "f8" => chunks
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        "i1" => chunks.map(|c| c[0] as i8 as f64).collect(),
        "u1" | "b1" => chunks.map(|c| c[0] as f64).collect(),
        "i2" => chunks
            .map(|c| i16::from_le_bytes([c[0], c[1]]) as f64)
            .collect(),
        "u2" => chunks
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as f64)
            .collect(),
        "i4" => chunks
            .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
            .collect(),
        "u4" => chunks
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
            .collect(),
        "i8" => chunks
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64)
            .collect(),
        "u8" => chunks
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) as f64)
            .collect(),
        _ => bail_input!("unsupported .npy type {descr} (expected integers, floats or booleans)"),
    };
    Ok(values)
}

/// Windows `X` (N, C, L) and labels `y` (N,) as a table of N·L flows (window i's time steps
/// as rows i·L to i·L + L − 1; columns `data.columns` or c0, c1, …), each flow labelled
/// with its window's label. Returns the table and L.
pub fn read_windows(x_path: &Path, cfg: &DataConfig) -> Result<(Table, usize)> {
    let x = read(x_path)?;
    let [n, c, l] = x.shape[..] else {
        bail_input!(
            "{}: shape ({}), expected (N, C, L): windows of C channels over L time steps",
            x_path.display(),
            x.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let names: Vec<String> = if cfg.columns.len() == c {
        cfg.columns.iter().map(|s| s.trim().to_string()).collect()
    } else if cfg.columns.is_empty() {
        (0..c).map(|k| format!("c{k}")).collect()
    } else {
        bail_input!(
            "data.columns: {} names for the {c} channels of {}",
            cfg.columns.len(),
            x_path.display()
        );
    };
    let mut labels = Dictionary::default();
    let labelled = match &cfg.labels_path {
        Some(p) => {
            let y = read(p)?;
            if y.shape != [n] {
                bail_input!(
                    "{}: shape ({}), expected ({n},): one label per window of {}",
                    p.display(),
                    y.shape
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    x_path.display()
                );
            }
            for v in &y.values {
                for _ in 0..l {
                    labels.push(&v.to_string());
                }
            }
            true
        }
        None => {
            (0..n * l).for_each(|_| labels.push(""));
            false
        }
    };
    let columns = names
        .into_iter()
        .enumerate()
        .map(|(k, name)| {
            let mut missing = MissingCounts::default();
            let values: Vec<f32> = (0..n * l)
                .map(|f| {
                    let v = x.values[(f / l) * c * l + k * l + f % l];
                    if v.is_nan() {
                        missing.nan += 1;
                    } else if v.is_infinite() {
                        missing.infinite += 1;
                    }
                    if v.is_finite() { v as f32 } else { f32::NAN }
                })
                .collect();
            Column {
                name,
                data: ColumnData::Numeric(values),
                missing,
            }
        })
        .collect();
    let table = Table {
        path: x_path.to_path_buf(),
        columns,
        labels,
        labelled,
        source_rows: (0..n * l).collect(),
        skipped_duplicates: Vec::new(),
    };
    Ok((table, l))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What `numpy.save` writes for an array of `descr` and `shape` (format 1.0).
    pub fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn reads_what_numpy_writes() {
        let f: Vec<u8> = [1.5f32, -2.0, 3.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse(&npy("<f4", "(3,)", &f)).unwrap();
        assert_eq!(
            a,
            Array {
                shape: vec![3],
                values: vec![1.5, -2.0, 3.25]
            }
        );
        let i: Vec<u8> = [7i64, 0, 1, 2]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse(&npy("<i8", "(2, 2)", &i)).unwrap();
        assert_eq!((a.shape, a.values), (vec![2, 2], vec![7.0, 0.0, 1.0, 2.0]));
        assert_eq!(
            parse(&npy("|b1", "(2,)", &[1, 0])).unwrap().values,
            [1.0, 0.0]
        );
        let err = |b: &[u8]| crate::error::one_line(&parse(b).unwrap_err());
        assert!(err(b"not numpy").contains("magic"));
        assert!(err(&npy(">f4", "(1,)", &[0; 4])).contains("big-endian"));
        assert!(err(&npy("<f4", "(4,)", &[0; 8])).contains("expected 4 values"));
        assert!(err(&npy("<U3", "(1,)", &[0; 12])).contains("unsupported .npy type"));
    }
}
