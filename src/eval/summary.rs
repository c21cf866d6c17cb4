//! Cross-validation results: per fold, and mean ± std, min, max across folds.

use serde::{Deserialize, Serialize};

use crate::eval::Metrics;
use crate::eval::multiclass::ClassReport;

/// What one fold leaves in `fold_K/metrics.json`: the normal-vs-anomaly metrics, and for
/// multiclass the per-class report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldResult {
    pub fold: usize,
    pub best_epoch: usize,
    pub metrics: Metrics,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<ClassReport>,
}

/// The multiclass figures summarised across folds.
pub const CLASS_METRIC_NAMES: [&str; 4] = ["accuracy", "macro_f1", "weighted_f1", "macro_roc_auc"];

fn class_metric(r: &ClassReport, name: &str) -> Option<f64> {
    match name {
        "accuracy" => Some(r.accuracy),
        "macro_f1" => Some(r.macro_avg.f1),
        "weighted_f1" => Some(r.weighted_avg.f1),
        "macro_roc_auc" => r.macro_avg.roc_auc,
        _ => None,
    }
}

/// Spread of one metric across folds (`std` is the population standard deviation, as numpy's
/// default; folds whose AUC is undefined are left out of that AUC's figures).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Spread {
            mean,
            std,
            min,
            max,
        })
    }
}

pub const METRIC_NAMES: [&str; 6] = ["accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc"];

fn metric(m: &Metrics, name: &str) -> Option<f64> {
    match name {
        "accuracy" => Some(m.accuracy),
        "precision" => Some(m.precision),
        "recall" => Some(m.recall),
        "f1" => Some(m.f1),
        "roc_auc" => m.roc_auc,
        "pr_auc" => m.pr_auc,
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n_splits: usize,
    pub folds: Vec<FoldResult>,
    /// Per metric name, in [`METRIC_NAMES`] order.
    pub spread: Vec<(String, Option<Spread>)>,
    /// Multiclass: per [`CLASS_METRIC_NAMES`] name (empty for binary).
    #[serde(default)]
    pub class_spread: Vec<(String, Option<Spread>)>,
    pub mean_best_epoch: f64,
}

impl Summary {
    pub fn new(folds: Vec<FoldResult>) -> Summary {
        let spread = METRIC_NAMES
            .iter()
            .map(|&name| {
                let values: Vec<f64> = folds
                    .iter()
                    .filter_map(|f| metric(&f.metrics, name))
                    .collect();
                (name.to_string(), Spread::of(&values))
            })
            .collect();
        let reports: Vec<&ClassReport> = folds.iter().filter_map(|f| f.classes.as_ref()).collect();
        let class_spread = if reports.is_empty() {
            Vec::new()
        } else {
            CLASS_METRIC_NAMES
                .iter()
                .map(|&name| {
                    let values: Vec<f64> = reports
                        .iter()
                        .filter_map(|r| class_metric(r, name))
                        .collect();
                    (name.to_string(), Spread::of(&values))
                })
                .collect()
        };
        let mean_best_epoch =
            folds.iter().map(|f| f.best_epoch as f64).sum::<f64>() / folds.len().max(1) as f64;
        Summary {
            n_splits: folds.len(),
            folds,
            spread,
            class_spread,
            mean_best_epoch,
        }
    }

    /// The per-fold table and the mean ± std, min, max lines.
    pub fn table(&self) -> String {
        let fmt = |v: Option<f64>| v.map_or("     n/a".to_string(), |x| format!("{x:>8.4}"));
        let mut out = format!("{:<8}", "fold");
        for name in METRIC_NAMES {
            out.push_str(&format!(" {name:>8}"));
        }
        out.push_str("  best_epoch\n");
        for f in &self.folds {
            out.push_str(&format!("{:<8}", f.fold));
            for name in METRIC_NAMES {
                out.push_str(&format!(" {}", fmt(metric(&f.metrics, name))));
            }
            out.push_str(&format!("  {:>10}\n", f.best_epoch));
        }
        for (label, pick) in [
            ("mean", (|s: &Spread| s.mean) as fn(&Spread) -> f64),
            ("std", |s| s.std),
            ("min", |s| s.min),
            ("max", |s| s.max),
        ] {
            out.push_str(&format!("{label:<8}"));
            for (_, s) in &self.spread {
                out.push_str(&format!(" {}", fmt(s.as_ref().map(pick))));
            }
            out.push('\n');
        }
        for (name, s) in &self.spread {
            if let Some(s) = s {
                out.push_str(&format!("{name}: {:.4} ± {:.4}\n", s.mean, s.std));
            }
        }
        for (name, s) in &self.class_spread {
            if let Some(s) = s {
                out.push_str(&format!(
                    "multiclass {name}: {:.4} ± {:.4}\n",
                    s.mean, s.std
                ));
            }
        }
        out
    }

    /// `cv_summary.csv`: one row per fold, then mean, std, min and max rows.
    pub fn write_csv(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let mut w = csv::Writer::from_path(path)?;
        let mut header = vec!["fold".to_string()];
        header.extend(METRIC_NAMES.iter().map(|s| s.to_string()));
        header.push("best_epoch".into());
        w.write_record(&header)?;
        let cell = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
        for f in &self.folds {
            let mut row = vec![f.fold.to_string()];
            row.extend(METRIC_NAMES.iter().map(|n| cell(metric(&f.metrics, n))));
            row.push(f.best_epoch.to_string());
            w.write_record(&row)?;
        }
        for label in ["mean", "std", "min", "max"] {
            let mut row = vec![label.to_string()];
            for (_, s) in &self.spread {
                row.push(cell(s.map(|s| match label {
                    "mean" => s.mean,
                    "std" => s.std,
                    "min" => s.min,
                    _ => s.max,
                })));
            }
            row.push(if label == "mean" {
                self.mean_best_epoch.to_string()
            } else {
                String::new()
            });
            w.write_record(&row)?;
        }
        w.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_population_std_and_skips_undefined_aucs() {
        let s = Spread::of(&[0.8, 0.9, 1.0]).unwrap();
        assert!((s.mean - 0.9).abs() < 1e-12);
        assert!((s.std - (0.02f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max), (0.8, 1.0));
        assert_eq!(Spread::of(&[]), None);
    }
}
