//! Feature selection by forest importance (`data.select_features`): a random forest fitted on
//! the run's encoded training rows ranks the input columns (a one-hot column's categories
//! summed), and the preprocessing keeps the top ones. It runs inside `prepare_rows`, so each
//! run and each cv fold selects on its own training rows only, and the checkpoint's
//! preprocessing carries the choice.

use anyhow::Result;

use super::Dataset;
use super::preprocess::Preprocessor;
use crate::bail_input;
use crate::config::{RandomForestConfig, SelectFeatures};
use crate::model::random_forest::{Labelled, RandomForest};

/// Each input column's importance (summing to 1), in `pre.columns` order.
pub fn column_importance(pre: &Preprocessor, train: &Dataset, trees: usize, seed: u64) -> Vec<f64> {
    let multiclass = !pre.classes.is_empty();
    let class: Vec<u32> = if multiclass {
        train.class.clone()
    } else {
        train.y.iter().map(|&y| y as u32).collect()
    };
    let k = if multiclass { pre.classes.len() } else { 2 };
    let rows: Vec<usize> = (0..train.len()).collect();
    let weights = vec![1.0; k];
    let data = Labelled {
        x: &train.x,
        d: train.n_features,
        rows: &rows,
        class: &class,
        class_weights: &weights,
        multiclass,
    };
    let cfg = RandomForestConfig {
        n_trees: trees,
        ..RandomForestConfig::default()
    };
    let forest = RandomForest::fit(&data, &cfg, seed);
    let mut at = 0;
    pre.columns
        .iter()
        .map(|c| {
            let sum = forest.importance[at..at + c.width()]
                .iter()
                .map(|&v| v as f64)
                .sum();
            at += c.width();
            sum
        })
        .collect()
}

/// Keeps the columns `cfg` asks for in `pre`; returns the notice with the ranked list.
pub fn select(
    pre: &mut Preprocessor,
    train: &Dataset,
    cfg: &SelectFeatures,
    seed: u64,
) -> Result<String> {
    if !train.y.contains(&1.0) && pre.classes.is_empty() {
        bail_input!(
            "data.select_features: the training rows hold no anomalies, so a forest cannot rank the columns"
        );
    }
    let importance = column_importance(pre, train, cfg.n_trees, seed);
    let mut ranked: Vec<usize> = (0..importance.len()).collect();
    ranked.sort_by(|&a, &b| importance[b].total_cmp(&importance[a]).then(a.cmp(&b)));
    let keep_n = match (cfg.keep, cfg.min_importance) {
        (Some(k), _) => k,
        (None, Some(m)) => ranked.iter().filter(|&&c| importance[c] >= m).count(),
        (None, None) => ranked.len(),
    }
    .clamp(1, ranked.len());
    let mut keep: Vec<usize> = ranked[..keep_n].to_vec();
    keep.sort_unstable();
    let list: Vec<String> = ranked
        .iter()
        .map(|&c| format!("{} {:.3}", pre.columns[c].name, importance[c]))
        .collect();
    let notice = format!(
        "data.select_features: kept {keep_n} of {} columns by forest importance (ranked: {})",
        ranked.len(),
        list.join(", ")
    );
    pre.keep_columns(&keep);
    Ok(notice)
}
