//! What feature selection (`data.select_features`) chose: every input column ranked by
//! forest importance and how many were kept. `train::prepare` does the choosing.

use std::fmt;

use serde::Serialize;

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
