//! The z-score detector: each feature's mean and standard deviation on the `training.fit_on`
//! rows, and a row's score is how many standard deviations its features stray from them (the
//! largest, or their mean). The simplest unsupervised baseline, and cheap: one pass to fit,
//! `d` subtractions per row to score. A feature constant on the fitted rows keeps unit scale
//! (as scikit-learn's `StandardScaler` does), so a row that moves it still stands out.

use anyhow::Result;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::detector::{Detector, Output};
use super::family::{Facts, Family, Fit, FitData, Fitted, Section};

/// `model.zscore`: how a row's features' z-scores make its score.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZscoreConfig {
    pub aggregate: Aggregate,
}

/// `max`: the feature that strays most decides (one wild feature is enough); `mean`: every
/// feature counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    #[default]
    Max,
    Mean,
}

impl Section for ZscoreConfig {
    /// Every value of `aggregate` is valid; serde refuses the rest with the key named.
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

/// The fitted rows' per-feature mean and scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Zscore {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub aggregate: Aggregate,
}

impl Family for Zscore {
    type Section = ZscoreConfig;
    type State = Zscore;
    const FACTS: Facts = Facts {
        classifier: false,
        sequence: false,
        unit_scores: false,
    };
    const FIT: Fit<ZscoreConfig, Zscore> = Fit::OnePass(Zscore::one_pass);

    fn load(state: &Self, _: &Device) -> Result<Box<dyn Detector>> {
        Ok(Box::new(state.clone()))
    }
}

impl Zscore {
    /// Means and (population) standard deviations in f64, summed in row order.
    pub fn fit(x: &[f32], d: usize, rows: &[usize], cfg: &ZscoreConfig) -> Zscore {
        let n = rows.len().max(1) as f64;
        let column = |f: usize| rows.iter().map(move |&r| x[r * d + f] as f64);
        let mean: Vec<f64> = (0..d).map(|f| column(f).sum::<f64>() / n).collect();
        let scale = (0..d)
            .map(|f| {
                let var = column(f).map(|v| (v - mean[f]).powi(2)).sum::<f64>() / n;
                if var > 0.0 { var.sqrt() } else { 1.0 }
            })
            .collect();
        Zscore {
            mean,
            scale,
            aggregate: cfg.aggregate,
        }
    }

    fn one_pass(cfg: &ZscoreConfig, data: &FitData) -> Result<Fitted<Self>> {
        let z = Zscore::fit(data.x, data.d, data.rows, cfg);
        let constant = z.scale.iter().filter(|&&s| s == 1.0).count();
        let said = format!(
            "{} features' means and scales, {constant} of them at unit scale, scored by the {:?} |z|",
            z.mean.len(),
            z.aggregate
        );
        Ok(Fitted::new(z, said))
    }

    /// Each row's score.
    pub fn scores(&self, x: &[f32]) -> Vec<f32> {
        let d = self.mean.len();
        x.chunks_exact(d)
            .map(|row| {
                let z = row
                    .iter()
                    .zip(self.mean.iter().zip(&self.scale))
                    .map(|(&v, (m, s))| ((v as f64 - m) / s).abs());
                let score = match self.aggregate {
                    Aggregate::Max => z.fold(0.0, f64::max),
                    Aggregate::Mean => z.sum::<f64>() / d as f64,
                };
                score as f32
            })
            .collect()
    }
}

impl Detector for Zscore {
    fn score(&self, x: &[f32]) -> Result<Output> {
        Ok(Output::Scores(self.scores(x)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two features, the second constant on the fitted rows.
    fn fitted(aggregate: Aggregate) -> Zscore {
        let x = [1.0, 5.0, 3.0, 5.0, 2.0, 5.0, 100.0, 0.0];
        Zscore::fit(&x, 2, &[0, 1, 2], &ZscoreConfig { aggregate })
    }

    #[test]
    fn fits_the_rows_named_and_keeps_unit_scale_for_a_constant_feature() {
        let z = fitted(Aggregate::Max);
        assert_eq!(z.mean, vec![2.0, 5.0]);
        assert!((z.scale[0] - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(z.scale[1], 1.0);
    }

    #[test]
    fn a_row_scores_its_largest_or_mean_absolute_z() {
        let row = [2.0, 8.0];
        assert_eq!(fitted(Aggregate::Max).scores(&row), vec![3.0]);
        assert_eq!(fitted(Aggregate::Mean).scores(&row), vec![1.5]);
    }
}
