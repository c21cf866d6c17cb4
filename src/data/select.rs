//! Feature selection by forest importance (`data.select_features`): a random forest fitted on
//! the run's encoded training rows ranks the input columns (a one-hot column's categories
//! summed), and the preprocessing keeps the top ones. It runs inside `prepare_rows`, so each
//! run and each cv fold selects on its own training rows only, and the checkpoint's
//! preprocessing carries the choice.

use std::fmt;

use anyhow::Result;
use serde::Serialize;

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

/// The outcome of a selection: every input column ranked by importance, and how many of the
/// first were kept.
#[derive(Debug, Clone, Serialize)]
pub struct Selection {
    pub kept: usize,
    pub ranked: Vec<Ranked>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    pub column: String,
    pub importance: f64,
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let list: Vec<String> = self
            .ranked
            .iter()
            .map(|r| format!("{} {:.3}", r.column, r.importance))
            .collect();
        write!(
            f,
            "data.select_features: kept {} of {} columns by forest importance (ranked: {})",
            self.kept,
            self.ranked.len(),
            list.join(", ")
        )
    }
}

/// Keeps the columns `cfg` asks for in `pre`.
pub fn select(
    pre: &mut Preprocessor,
    train: &Dataset,
    cfg: &SelectFeatures,
    seed: u64,
) -> Result<Selection> {
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
    let selection = Selection {
        kept: keep_n,
        ranked: ranked
            .iter()
            .map(|&c| Ranked {
                column: pre.columns[c].name.clone(),
                importance: importance[c],
            })
            .collect(),
    };
    pre.keep_columns(&keep);
    Ok(selection)
}
