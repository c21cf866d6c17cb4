//! Stratified, shuffled train/validation/test splits, identical for the same seed.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Row indices of each split, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

/// Within each class: `test_frac` of its rows go to test, then `val_frac` of the remainder to
/// validation (as the reference pipeline did: 80/20, then 10% of train), the rest to train.
/// `test_frac = 0` means the test rows come from another file.
pub fn stratified_split(y: &[f32], test_frac: f64, val_frac: f64, seed: u64) -> Split {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut split = Split {
        train: vec![],
        val: vec![],
        test: vec![],
    };
    for class in distinct(y) {
        let mut rows: Vec<usize> = (0..y.len()).filter(|&i| y[i] == class).collect();
        rows.shuffle(&mut rng);
        let n_test = (rows.len() as f64 * test_frac).round() as usize;
        let n_val = ((rows.len() - n_test) as f64 * val_frac).round() as usize;
        split.test.extend_from_slice(&rows[..n_test]);
        split.val.extend_from_slice(&rows[n_test..n_test + n_val]);
        split.train.extend_from_slice(&rows[n_test + n_val..]);
    }
    split.train.sort_unstable();
    split.val.sort_unstable();
    split.test.sort_unstable();
    split
}

/// The distinct values of `y`, ascending (classes: 0/1, or class indices for multiclass).
pub fn distinct(y: &[f32]) -> Vec<f32> {
    let mut v = y.to_vec();
    v.sort_unstable_by(f32::total_cmp);
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_disjoint_complete_stratified_and_seeded() {
        let y: Vec<f32> = (0..1000).map(|i| (i % 10 == 0) as u8 as f32).collect();
        let s = stratified_split(&y, 0.2, 0.1, 42);
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (720, 80, 200));
        let mut all: Vec<usize> = [&s.train[..], &s.val[..], &s.test[..]].concat();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        let pos = |rows: &[usize]| rows.iter().filter(|&&r| y[r] == 1.0).count();
        assert_eq!((pos(&s.train), pos(&s.val), pos(&s.test)), (72, 8, 20));
        assert_eq!(s, stratified_split(&y, 0.2, 0.1, 42));
        assert_ne!(s, stratified_split(&y, 0.2, 0.1, 43));
    }
}
