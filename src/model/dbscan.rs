//! DBSCAN (Ester, Kriegel, Sander, Xu 1996) as a detector: a fitted row with at least
//! `min_samples` rows (itself included) within `eps` is a core point, and a row that lies
//! beyond `eps` of every core point is noise. New rows are scored by their distance to the
//! nearest core point, so a threshold of `eps` flags exactly the rows DBSCAN calls noise.
//! Fitted on at most `max_fit_rows` training rows (a seeded subsample above that); the
//! neighbourhoods come from `neighbors.rs` (exact, thread-count independent).

use anyhow::Result;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::detector::{Clusters, Detector, Output, majority};
use super::family::{Facts, Family, Fit, FitData, Fitted, Section};
use super::neighbors::{components_within, counts_within, gather, nearest, subsample};
use crate::bail_input;

/// `model.dbscan`: scikit-learn's `DBSCAN` defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbscanConfig {
    /// The neighbourhood radius (in scaled feature units).
    pub eps: f64,
    /// Rows within `eps` (the row itself included) that make a core point.
    pub min_samples: usize,
    /// The fit looks at most at this many training rows (a seeded subsample above it).
    pub max_fit_rows: usize,
}

impl Default for DbscanConfig {
    fn default() -> Self {
        Self {
            eps: 0.5,
            min_samples: 5,
            max_fit_rows: 20_000,
        }
    }
}

impl Section for DbscanConfig {
    fn check(&self) -> Result<()> {
        let db = self;
        if !(db.eps > 0.0 && db.eps.is_finite()) || db.min_samples == 0 || db.max_fit_rows < 2 {
            bail_input!(
                "model.dbscan: expected eps > 0, min_samples >= 1 and max_fit_rows >= 2, got {}, {} and {}",
                db.eps,
                db.min_samples,
                db.max_fit_rows
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dbscan {
    pub n_features: usize,
    pub eps: f32,
    /// The core points, row-major.
    pub core: Vec<f32>,
    /// Each core point's cluster: core points within `eps` of each other share one.
    #[serde(default)]
    pub cluster: Vec<u32>,
    /// Per cluster: whether most training rows in it were anomalies (empty without labelled
    /// anomalies).
    #[serde(default)]
    pub majority: Vec<bool>,
    /// How many rows the fit looked at, and how many of them were noise.
    pub fitted_rows: usize,
    pub noise_rows: usize,
}

impl Family for Dbscan {
    type Section = DbscanConfig;
    type State = Dbscan;
    const FACTS: Facts = Facts {
        classifier: false,
        sequence: false,
        unit_scores: false,
    };
    const FIT: Fit<DbscanConfig, Dbscan> = Fit::OnePass(Dbscan::one_pass);

    fn load(state: &Self, _: &Device) -> Result<Box<dyn Detector>> {
        Ok(Box::new(state.loaded()))
    }
}

impl Dbscan {
    /// Fits, then marks the clusters that hold mostly anomalies among the labelled rows.
    fn one_pass(cfg: &DbscanConfig, data: &FitData) -> Result<Fitted<Self>> {
        let mut m = Dbscan::fit(data.x, data.d, data.rows, cfg, data.seed)?;
        m.majority = majority(&m.assign(data.x), data.y, m.count());
        let said = format!(
            "{} core points in {} clusters; {} of the {} rows looked at are noise",
            m.core.len() / data.d,
            m.count(),
            m.noise_rows,
            m.fitted_rows
        );
        Ok(Fitted::new(m, said))
    }

    /// Fits on `rows` of `x` (row-major, `d` features per row).
    pub fn fit(
        x: &[f32],
        d: usize,
        rows: &[usize],
        cfg: &DbscanConfig,
        seed: u64,
    ) -> Result<Dbscan> {
        let kept = subsample(rows, cfg.max_fit_rows, seed);
        let fit = gather(x, d, &kept);
        let eps = cfg.eps as f32;
        let counts = counts_within(&fit, d, eps);
        let core: Vec<f32> = fit
            .chunks_exact(d)
            .zip(&counts)
            .filter(|(_, n)| **n >= cfg.min_samples)
            .flat_map(|(row, _)| row.iter().copied())
            .collect();
        if core.is_empty() {
            bail_input!(
                "model.dbscan: no core points (no training row has {} rows within eps {}); \
                 raise eps or lower min_samples",
                cfg.min_samples,
                cfg.eps
            );
        }
        let mut model = Dbscan {
            n_features: d,
            eps,
            cluster: components_within(&core, d, eps),
            majority: Vec::new(),
            core,
            fitted_rows: kept.len(),
            noise_rows: 0,
        };
        model.noise_rows = model.scores(&fit).iter().filter(|&&s| s > eps).count();
        Ok(model)
    }

    /// The model ready to score: checkpoints written before clusters were stored get them
    /// computed here.
    pub fn loaded(&self) -> Dbscan {
        let mut m = self.clone();
        if m.cluster.is_empty() {
            m.cluster = components_within(&m.core, m.n_features, m.eps);
        }
        m
    }

    /// Each row's distance to the nearest core point.
    pub fn scores(&self, x: &[f32]) -> Vec<f32> {
        nearest(&self.core, x, self.n_features, 1, false)
            .iter()
            .map(|nb| nb[0].1)
            .collect()
    }
}

impl Detector for Dbscan {
    fn score(&self, x: &[f32]) -> Result<Output> {
        Ok(Output::Scores(self.scores(x)))
    }

    fn clusters(&self) -> Option<&dyn Clusters> {
        Some(self)
    }
}

impl Clusters for Dbscan {
    /// The cluster of the nearest core point within `eps`; beyond every one, noise.
    fn assign(&self, x: &[f32]) -> Vec<Option<u32>> {
        nearest(&self.core, x, self.n_features, 1, false)
            .iter()
            .map(|nb| {
                let (j, dist) = nb[0];
                (dist <= self.eps).then(|| self.cluster[j as usize])
            })
            .collect()
    }

    fn count(&self) -> usize {
        self.cluster.iter().max().map_or(0, |&c| c as usize + 1)
    }

    fn majority(&self) -> &[bool] {
        &self.majority
    }

    fn has_noise(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(eps: f64, min_samples: usize) -> DbscanConfig {
        DbscanConfig {
            eps,
            min_samples,
            max_fit_rows: 1000,
        }
    }

    #[test]
    fn core_points_noise_and_scores_worked_out_by_hand() {
        // On a line: 0, 0.4, 0.8 and 1.2 are within 0.5 of their neighbours, 5 is alone.
        // With eps 0.5 and min_samples 3: 0.4 and 0.8 are core (3 rows each), 0 and 1.2 are
        // border points, 5 is noise.
        let x = [0.0f32, 0.4, 0.8, 1.2, 5.0];
        let m = Dbscan::fit(&x, 1, &[0, 1, 2, 3, 4], &cfg(0.5, 3), 1).unwrap();
        assert_eq!(m.core, [0.4, 0.8]);
        assert_eq!((m.cluster.as_slice(), m.count()), ([0, 0].as_slice(), 1));
        // The border point 1.2 joins the cluster; 2.0 and 5.0 are noise.
        assert_eq!(m.assign(&[1.2, 2.0, 5.0]), [Some(0), None, None]);
        let older = Dbscan {
            cluster: Vec::new(),
            ..m.clone()
        };
        assert_eq!(older.loaded(), m);
        assert_eq!((m.fitted_rows, m.noise_rows), (5, 1));
        let s = m.scores(&[0.0, 0.6, 2.0, 5.0]);
        let want = [0.4, 0.2, 1.2, 4.2];
        assert!(
            s.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{s:?}"
        );
        let err = Dbscan::fit(&x, 1, &[0, 1, 2, 3, 4], &cfg(0.1, 3), 1).unwrap_err();
        assert!(crate::error::one_line(&err).contains("no core points"));
    }
}
