//! Pre-binned features for the tree families: each feature's split candidates are at most
//! `max_bins − 1` thresholds taken from the training rows' values (quantiles, each placed
//! halfway to the next distinct value), and a row's bin is how many thresholds lie at or below
//! its value. Trees then find splits by histogram over at most 256 bins instead of sorting
//! every node's rows; the thresholds are kept with the model, so a split reads "value <
//! threshold" on raw (preprocessed) rows at prediction time.

use serde::{Deserialize, Serialize};

/// Values looked at per feature to place the thresholds (a strided sample above this).
const SAMPLE: usize = 200_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bins {
    /// Per feature, the thresholds in increasing order.
    pub thresholds: Vec<Vec<f32>>,
}

impl Bins {
    /// Thresholds of every feature of `rows` of `x` (row-major, `d` per row).
    pub fn fit(x: &[f32], d: usize, rows: &[usize], max_bins: usize) -> Bins {
        let stride = rows.len().div_ceil(SAMPLE).max(1);
        let thresholds = (0..d)
            .map(|f| {
                let mut values: Vec<f32> = rows
                    .iter()
                    .step_by(stride)
                    .map(|&r| x[r * d + f])
                    .filter(|v| !v.is_nan())
                    .collect();
                values.sort_unstable_by(f32::total_cmp);
                feature_thresholds(&values, max_bins)
            })
            .collect();
        Bins { thresholds }
    }

    /// The bin of `value` for feature `f`: the thresholds at or below it (NaN: bin 0).
    pub fn bin(&self, f: usize, value: f32) -> u8 {
        self.thresholds[f].partition_point(|&t| t <= value) as u8
    }

    /// `rows` of `x` binned, feature-major: `out[f * rows.len() + i]` is row `rows[i]`'s bin.
    pub fn binned(&self, x: &[f32], d: usize, rows: &[usize]) -> Vec<u8> {
        let mut out = Vec::with_capacity(d * rows.len());
        for f in 0..d {
            out.extend(rows.iter().map(|&r| self.bin(f, x[r * d + f])));
        }
        out
    }

    /// `rows` of `x` binned, row-major: `out[i * d + f]` is row `rows[i]`'s bin of feature
    /// `f`, so a histogram of every feature reads each row's bins side by side.
    pub fn binned_by_row(&self, x: &[f32], d: usize, rows: &[usize]) -> Vec<u8> {
        rows.iter()
            .flat_map(|&r| (0..d).map(move |f| self.bin(f, x[r * d + f])))
            .collect()
    }
}

/// Puts the `rows` whose bin (`bin_of` the row) is at most `bin` first, each side in its
/// order; returns how many there are. Rows that start sorted stay sorted in every node, so a
/// node's histogram reads the binned rows front to back.
pub fn partition(rows: &mut [u32], bin_of: impl Fn(u32) -> u8, bin: u8) -> usize {
    let mut right = Vec::new();
    let mut split = 0;
    for i in 0..rows.len() {
        let r = rows[i];
        if bin_of(r) <= bin {
            rows[split] = r;
            split += 1;
        } else {
            right.push(r);
        }
    }
    rows[split..].copy_from_slice(&right);
    split
}

/// Up to `max_bins − 1` thresholds from sorted values: each distinct value gets its own bin
/// when there are few enough; otherwise the values at evenly spaced ranks. A threshold sits
/// halfway between a value and the next distinct one.
fn feature_thresholds(sorted: &[f32], max_bins: usize) -> Vec<f32> {
    let mut distinct = sorted.to_vec();
    distinct.dedup();
    let halfway = |v: f32| {
        let above = distinct.partition_point(|&u| u <= v);
        distinct.get(above).map(|&next| v + (next - v) / 2.0)
    };
    let cut_at: Vec<f32> = if distinct.len() <= max_bins {
        distinct.clone()
    } else {
        (1..max_bins)
            .map(|q| sorted[q * sorted.len() / max_bins])
            .collect()
    };
    let mut thresholds: Vec<f32> = cut_at.into_iter().filter_map(halfway).collect();
    thresholds.dedup();
    thresholds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_get_a_bin_each_and_many_get_quantiles() {
        let x = [3.0f32, 1.0, 2.0, 2.0, f32::NAN];
        let b = Bins::fit(&x, 1, &[0, 1, 2, 3, 4], 256);
        assert_eq!(b.thresholds[0], [1.5, 2.5]);
        let bins: Vec<u8> = [0.0, 1.0, 1.5, 2.0, 3.0, 9.0, f32::NAN]
            .iter()
            .map(|&v| b.bin(0, v))
            .collect();
        assert_eq!(bins, [0, 0, 1, 1, 2, 2, 0]);
        // 1000 distinct values into 4 bins: thresholds near the quartiles.
        let x: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let rows: Vec<usize> = (0..1000).collect();
        let b = Bins::fit(&x, 1, &rows, 4);
        assert_eq!(b.thresholds[0], [250.5, 500.5, 750.5]);
        assert_eq!(b.binned(&x, 1, &[0, 300, 999]), [0, 1, 3]);
    }

    #[test]
    fn binned_by_row_is_binned_transposed() {
        let x: Vec<f32> = (0..12).map(|i| ((i * 7) % 5) as f32).collect();
        let rows = [3usize, 0, 2];
        let b = Bins::fit(&x, 3, &[0, 1, 2, 3], 256);
        let (columns, by_row) = (b.binned(&x, 3, &rows), b.binned_by_row(&x, 3, &rows));
        for (i, f) in (0..3).flat_map(|i| (0..3).map(move |f| (i, f))) {
            assert_eq!(
                by_row[i * 3 + f],
                columns[f * 3 + i],
                "row {i}, feature {f}"
            );
        }
    }

    #[test]
    fn a_partition_keeps_each_side_in_its_order() {
        let column = [3u8, 0, 2, 1, 3, 0, 2];
        let mut rows = [6u32, 5, 4, 3, 2, 1, 0];
        assert_eq!(partition(&mut rows, |r| column[r as usize], 1), 3);
        assert_eq!(rows, [5, 3, 1, 6, 4, 2, 0]);
    }
}
