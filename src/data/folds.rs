//! K-fold assignment for cross-validation.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Splits `rows` into `k` folds. Rows are shuffled first (flow CSVs are ordered by day and
/// attack, so contiguous folds would be wrong), then dealt out round-robin, per class when
/// stratified, so every fold's class count is within one row of the others.
pub fn kfold(
    rows: &[usize],
    y: &[f32],
    k: usize,
    shuffle: bool,
    stratify: bool,
    seed: u64,
) -> Vec<Vec<usize>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let groups: Vec<Vec<usize>> = if stratify {
        let present: Vec<f32> = rows.iter().map(|&r| y[r]).collect();
        crate::data::split::distinct(&present)
            .into_iter()
            .map(|c| rows.iter().copied().filter(|&r| y[r] == c).collect())
            .collect()
    } else {
        vec![rows.to_vec()]
    };
    let mut folds = vec![Vec::new(); k];
    let mut next = 0;
    for mut group in groups {
        if shuffle {
            group.shuffle(&mut rng);
        }
        for r in group {
            folds[next % k].push(r);
            next += 1;
        }
    }
    folds.iter_mut().for_each(|f| f.sort_unstable());
    folds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_disjoint_complete_and_stratified_within_one_row() {
        let y: Vec<f32> = (0..1000).map(|i| (i % 7 == 0) as u8 as f32).collect();
        let rows: Vec<usize> = (0..1000).filter(|r| r % 5 != 0).collect(); // a test split set aside
        let folds = kfold(&rows, &y, 5, true, true, 42);
        let mut all: Vec<usize> = folds.concat();
        all.sort_unstable();
        assert_eq!(all, rows);
        let total_pos = rows.iter().filter(|&&r| y[r] == 1.0).count() as f64;
        for f in &folds {
            let pos = f.iter().filter(|&&r| y[r] == 1.0).count() as f64;
            let expected = total_pos * f.len() as f64 / rows.len() as f64;
            assert!((pos - expected).abs() <= 1.0, "{pos} vs {expected}");
        }
        assert_eq!(folds, kfold(&rows, &y, 5, true, true, 42));
        assert_ne!(folds, kfold(&rows, &y, 5, true, true, 7));
        // Without shuffling, rows are dealt in order.
        assert_eq!(
            kfold(&[0, 1, 2, 3], &[0.0; 4], 2, false, false, 1),
            [vec![0, 2], vec![1, 3]]
        );
    }
}
