//! K-fold assignment for cross-validation, and `folds.json`, the plan a cv run leaves.

use std::path::{Path, PathBuf};

use anyhow::Result;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::bail_input;
use crate::config::Config;

/// `folds.json`: enough to reproduce every fold. Rows are 0-based data-record numbers in the
/// input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldPlan {
    pub data: PathBuf,
    pub n_splits: usize,
    pub shuffle: bool,
    pub stratify: bool,
    pub random_state: u64,
    pub run_name: String,
    /// The validation rows of each fold; a fold trains on the other folds' rows.
    pub folds: Vec<Vec<usize>>,
    pub test_rows: Vec<usize>,
}

impl FoldPlan {
    /// Reads and checks `folds.json` (a hand-edited one is user input like any other).
    pub fn read(path: &Path) -> Result<FoldPlan> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            crate::error::bad_input(format!("{}: {e}; run `anomaly cv` first", path.display()))
        })?;
        let plan: FoldPlan = serde_json::from_str(&text)
            .map_err(|e| crate::error::bad_input(format!("{}: {e}", path.display())))?;
        if plan.n_splits < 2 || plan.folds.len() != plan.n_splits {
            bail_input!(
                "{}: n_splits is {} but the file lists {} folds (expected at least 2, one per fold)",
                path.display(),
                plan.n_splits,
                plan.folds.len()
            );
        }
        Ok(plan)
    }
}

/// Where fold `fold`'s checkpoints go.
pub fn fold_dir(config: &Config, fold: usize) -> PathBuf {
    config.checkpoint.save_dir.join(format!("fold_{fold}"))
}

/// Where a cv run's `folds.json` goes.
pub fn folds_path(config: &Config) -> PathBuf {
    config.checkpoint.save_dir.join("folds.json")
}

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
