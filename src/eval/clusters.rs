//! The clustering report of k-means and DBSCAN: how well separated the clusters are
//! (silhouette, Calinski-Harabasz, Davies-Bouldin, as scikit-learn defines them, over the rows
//! in a cluster; DBSCAN's noise is left out), and, with labels, which clusters hold the attacks
//! and how good a classifier "each cluster votes its training majority" makes.

use serde::Serialize;

use super::Confusion;
use crate::model::detector::Clusters;
use crate::model::neighbors::{BLOCK, blocks, gather, squared_norms, subsample};

/// Silhouette costs a distance per pair of rows: it is taken on a seeded sample this large.
pub const SILHOUETTE_ROWS: usize = 10_000;
/// Rows drawn on the 2-D map.
const MAP_ROWS: usize = 2_000;

#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    /// Clusters the fit found.
    pub clusters: usize,
    pub rows: usize,
    /// DBSCAN: the share of rows beyond `eps` of every core point.
    pub noise_share: Option<f64>,
    /// k-means: the rows' squared distances to their nearest centroid, summed.
    pub inertia: Option<f64>,
    /// None with fewer than two clusters among the rows.
    pub silhouette: Option<f64>,
    pub silhouette_rows: usize,
    pub calinski_harabasz: Option<f64>,
    pub davies_bouldin: Option<f64>,
    /// Rows per cluster by class; noise (DBSCAN) last, as cluster `noise`.
    pub contingency: Vec<ClusterRow>,
    /// Each cluster flags its rows when most of its training rows were anomalies (noise is
    /// flagged); none when the training rows held no labelled anomalies.
    pub majority_view: Option<MajorityView>,
    /// A seeded sample of rows on their first two principal components (for the figure).
    #[serde(skip)]
    pub map: Vec<MapPoint>,
}

/// A row on the plane of the first two principal components.
#[derive(Debug, Clone, PartialEq)]
pub struct MapPoint {
    pub x: f64,
    pub y: f64,
    pub cluster: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterRow {
    pub cluster: String,
    pub normal: usize,
    pub anomalous: usize,
    /// What the cluster's training rows mostly were (`anomalous` or `normal`), when known.
    pub training_majority: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MajorityView {
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl ClusterReport {
    /// The report on rows `x` (row-major, `d` features) labelled `y`; `seed` draws the
    /// silhouette sample.
    pub fn compute(model: &dyn Clusters, x: &[f32], d: usize, y: &[f32], seed: u64) -> Self {
        let assigned = model.assign(x);
        let k = model.count();
        let noise = assigned.iter().filter(|c| c.is_none()).count();
        let in_cluster: Vec<usize> = (0..y.len()).filter(|&r| assigned[r].is_some()).collect();
        let label = |r: usize| assigned[r].expect("a row in a cluster") as usize;
        let sample = subsample(&in_cluster, SILHOUETTE_ROWS, seed);
        let separation = Separation::of(x, d, &in_cluster, &label, k);
        let noise_share = model
            .has_noise()
            .then(|| noise as f64 / y.len().max(1) as f64);
        ClusterReport {
            clusters: k,
            rows: y.len(),
            noise_share,
            inertia: model.inertia(x),
            silhouette: silhouette(x, d, &sample, &label, k),
            silhouette_rows: sample.len(),
            calinski_harabasz: separation.as_ref().map(|s| s.calinski_harabasz),
            davies_bouldin: separation.as_ref().map(|s| s.davies_bouldin),
            contingency: contingency(&assigned, y, k, model.majority()),
            majority_view: majority_view(&assigned, y, model.majority()),
            map: map(x, d, &assigned, seed),
        }
    }
}

/// A seeded sample of the rows projected on their first two principal components.
fn map(x: &[f32], d: usize, assigned: &[Option<u32>], seed: u64) -> Vec<MapPoint> {
    let all: Vec<usize> = (0..assigned.len()).collect();
    let sample = subsample(&all, MAP_ROWS, seed);
    let rows: Vec<Vec<f64>> = sample
        .iter()
        .map(|&r| x[r * d..(r + 1) * d].iter().map(|&v| v as f64).collect())
        .collect();
    let [first, second] = principal_plane(&rows, d);
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    sample
        .iter()
        .zip(&rows)
        .map(|(&r, row)| MapPoint {
            x: dot(row, &first),
            y: dot(row, &second),
            cluster: assigned[r],
        })
        .collect()
}

/// The first two principal axes of `rows` (unit vectors; the second zero when d = 1): power
/// iteration on the covariance, the first axis deflated before the second. Written here: it is
/// a few lines, and `d` is the feature count (at most a few hundred).
fn principal_plane(rows: &[Vec<f64>], d: usize) -> [Vec<f64>; 2] {
    let n = rows.len().max(1) as f64;
    let mean: Vec<f64> = (0..d)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
        .collect();
    let mut cov = vec![0.0f64; d * d];
    for r in rows {
        for i in 0..d {
            let a = r[i] - mean[i];
            for j in 0..d {
                cov[i * d + j] += a * (r[j] - mean[j]) / n;
            }
        }
    }
    let mut axes = [vec![0.0; d], vec![0.0; d]];
    for axis in &mut axes {
        // A fixed start that no covariance of real data is orthogonal to in practice.
        let mut v: Vec<f64> = (0..d).map(|j| 1.0 + (j as f64 * 0.618).fract()).collect();
        let mut value = 0.0;
        for _ in 0..300 {
            let w: Vec<f64> = (0..d)
                .map(|i| (0..d).map(|j| cov[i * d + j] * v[j]).sum())
                .collect();
            let norm = w.iter().map(|a| a * a).sum::<f64>().sqrt();
            if norm == 0.0 {
                v = vec![0.0; d];
                break;
            }
            value = norm;
            v = w.into_iter().map(|a| a / norm).collect();
        }
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] -= value * v[i] * v[j];
            }
        }
        *axis = v;
    }
    axes
}

fn contingency(
    assigned: &[Option<u32>],
    y: &[f32],
    k: usize,
    majority: &[bool],
) -> Vec<ClusterRow> {
    let mut counts = vec![(0usize, 0usize); k + 1];
    for (c, &label) in assigned.iter().zip(y) {
        let t = &mut counts[c.map_or(k, |c| c as usize)];
        *(if label == 1.0 { &mut t.1 } else { &mut t.0 }) += 1;
    }
    let name = |m: bool| if m { "anomalous" } else { "normal" };
    counts
        .iter()
        .enumerate()
        .filter(|&(c, t)| c < k || t.0 + t.1 > 0)
        .map(|(c, &(normal, anomalous))| ClusterRow {
            cluster: if c < k { c.to_string() } else { "noise".into() },
            normal,
            anomalous,
            training_majority: majority.get(c).map(|&m| name(m)),
        })
        .collect()
}

fn majority_view(assigned: &[Option<u32>], y: &[f32], majority: &[bool]) -> Option<MajorityView> {
    if majority.is_empty() {
        return None;
    }
    let mut c = Confusion::default();
    for (cluster, &label) in assigned.iter().zip(y) {
        let flagged = cluster.is_none_or(|k| majority[k as usize]);
        c.count(flagged, label == 1.0);
    }
    Some(MajorityView {
        accuracy: c.accuracy(),
        precision: c.precision(),
        recall: c.recall(),
        f1: c.f1(),
    })
}

/// Calinski-Harabasz and Davies-Bouldin, from the clusters' own means.
struct Separation {
    calinski_harabasz: f64,
    davies_bouldin: f64,
}

impl Separation {
    fn of(
        x: &[f32],
        d: usize,
        rows: &[usize],
        label: &dyn Fn(usize) -> usize,
        k: usize,
    ) -> Option<Separation> {
        let mut sums = vec![0.0f64; k * d];
        let mut sizes = vec![0usize; k];
        for &r in rows {
            let c = label(r);
            sizes[c] += 1;
            for (s, &v) in sums[c * d..(c + 1) * d]
                .iter_mut()
                .zip(&x[r * d..(r + 1) * d])
            {
                *s += v as f64;
            }
        }
        let present: Vec<usize> = (0..k).filter(|&c| sizes[c] > 0).collect();
        let (n, kk) = (rows.len(), present.len());
        if kk < 2 || n <= kk {
            return None;
        }
        let centre: Vec<f64> = (0..d)
            .map(|j| present.iter().map(|&c| sums[c * d + j]).sum::<f64>() / n as f64)
            .collect();
        let means: Vec<f64> = (0..k * d)
            .map(|i| sums[i] / sizes[i / d].max(1) as f64)
            .collect();
        let mean = |c: usize| &means[c * d..(c + 1) * d];
        let dist2 = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| (p - q).powi(2)).sum();
        let row = |r: usize| x[r * d..(r + 1) * d].iter().map(|&v| v as f64);
        let to_mean = |r: usize| -> f64 {
            row(r)
                .zip(mean(label(r)))
                .map(|(v, m)| (v - m).powi(2))
                .sum()
        };
        let within: f64 = rows.iter().map(|&r| to_mean(r)).sum();
        let between: f64 = present
            .iter()
            .map(|&c| sizes[c] as f64 * dist2(mean(c), &centre))
            .sum();
        let calinski_harabasz = if within == 0.0 {
            1.0
        } else {
            between * (n - kk) as f64 / (within * (kk - 1) as f64)
        };
        // Each cluster's mean distance to its mean, then its worst ratio against another.
        let mut spread = vec![0.0f64; k];
        for &r in rows {
            spread[label(r)] += to_mean(r).sqrt();
        }
        let spread: Vec<f64> = (0..k).map(|c| spread[c] / sizes[c].max(1) as f64).collect();
        let worst = |&i: &usize| {
            present
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| {
                    let apart: f64 = dist2(mean(i), mean(j));
                    if apart == 0.0 {
                        0.0
                    } else {
                        (spread[i] + spread[j]) / apart.sqrt()
                    }
                })
                .fold(0.0, f64::max)
        };
        let davies_bouldin = present.iter().map(worst).sum::<f64>() / kk as f64;
        Some(Separation {
            calinski_harabasz,
            davies_bouldin,
        })
    }
}

/// The mean silhouette of the `sample` rows among themselves: (b − a) / max(a, b), with a the
/// mean distance to the rest of the row's cluster and b the least mean distance to another
/// cluster (0 for a row alone in its cluster). Distances by blocks of one matrix product, as
/// scikit-learn's `euclidean_distances` computes them.
fn silhouette(
    x: &[f32],
    d: usize,
    sample: &[usize],
    label: &dyn Fn(usize) -> usize,
    k: usize,
) -> Option<f64> {
    let rows = gather(x, d, sample);
    let labels: Vec<usize> = sample.iter().map(|&r| label(r)).collect();
    let mut sizes = vec![0usize; k];
    labels.iter().for_each(|&c| sizes[c] += 1);
    if sizes.iter().filter(|&&n| n > 0).count() < 2 {
        return None;
    }
    let norms = squared_norms(&rows, d);
    let n = labels.len();
    let values = blocks(&rows, &rows, d, |b, block, dots| {
        let mut sums = vec![0.0f64; k];
        (0..block.len() / d)
            .map(|i| {
                let me = b * BLOCK + i;
                sums.iter_mut().for_each(|s| *s = 0.0);
                for j in (0..n).filter(|&j| j != me) {
                    let squared = norms[me] + norms[j] - 2.0 * dots[i * n + j];
                    sums[labels[j]] += (squared.max(0.0) as f64).sqrt();
                }
                let own = labels[me];
                if sizes[own] == 1 {
                    return 0.0;
                }
                let a = sums[own] / (sizes[own] - 1) as f64;
                let b = (0..k)
                    .filter(|&c| c != own && sizes[c] > 0)
                    .map(|c| sums[c] / sizes[c] as f64)
                    .fold(f64::INFINITY, f64::min);
                if a.max(b) > 0.0 {
                    (b - a) / a.max(b)
                } else {
                    0.0
                }
            })
            .collect()
    });
    Some(values.iter().sum::<f64>() / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixed clusters over 1-D rows: each row's cluster given, `None` for noise.
    struct Given(Vec<Option<u32>>, Vec<bool>);

    impl Clusters for Given {
        fn assign(&self, _x: &[f32]) -> Vec<Option<u32>> {
            self.0.clone()
        }
        fn count(&self) -> usize {
            2
        }
        fn majority(&self) -> &[bool] {
            &self.1
        }
        fn has_noise(&self) -> bool {
            true
        }
    }

    #[test]
    fn separation_scores_match_values_worked_out_by_hand() {
        // Clusters {0, 1} and {10, 11}, and a noise row at 50 (left out of the scores).
        let x = [0.0f32, 1.0, 10.0, 11.0, 50.0];
        let model = Given(
            vec![Some(0), Some(0), Some(1), Some(1), None],
            vec![false, true],
        );
        let y = [0.0, 0.0, 1.0, 0.0, 1.0];
        let r = ClusterReport::compute(&model, &x, 1, &y, 1);
        // Silhouette: row 0 has a = 1, b = 10.5; row 1 a = 1, b = 9.5; the others mirror them.
        let want = (9.5 / 10.5 + 8.5 / 9.5) / 2.0;
        assert!((r.silhouette.unwrap() - want).abs() < 1e-9, "{r:?}");
        assert_eq!(r.silhouette_rows, 4);
        // Calinski-Harabasz: between 2·5² + 2·5² = 100, within 4 · 0.5² = 1, (100/1)/(1/2).
        assert!((r.calinski_harabasz.unwrap() - 200.0).abs() < 1e-9);
        // Davies-Bouldin: spreads 0.5 and 0.5, means 10 apart.
        assert!((r.davies_bouldin.unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(r.noise_share, Some(0.2));
        let rows: Vec<(&str, usize, usize)> = r
            .contingency
            .iter()
            .map(|c| (c.cluster.as_str(), c.normal, c.anomalous))
            .collect();
        assert_eq!(rows, [("0", 2, 0), ("1", 1, 1), ("noise", 0, 1)]);
        assert_eq!(r.contingency[1].training_majority, Some("anomalous"));
        // Cluster 1 and noise flag: rows 2, 3, 4 → TP 2, FP 1 → precision 2/3, recall 1.
        let v = r.majority_view.unwrap();
        assert_eq!((v.accuracy, v.recall), (0.8, 1.0));
        assert!((v.precision - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn the_principal_plane_follows_the_spread() {
        // Rows spread along (1, 1, 0) widely and along (1, −1, 0) a little.
        let rows: Vec<Vec<f64>> = (0..40)
            .map(|i| {
                // Pairs share a; b = ±0.1 within a pair, so a and b are uncorrelated.
                let (a, b) = ((i / 2) as f64 - 9.5, if i % 2 == 0 { 0.1 } else { -0.1 });
                vec![a + b, a - b, 0.0]
            })
            .collect();
        let [first, second] = principal_plane(&rows, 3);
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert!((first[0].abs() - h).abs() < 1e-6 && (first[1] - first[0]).abs() < 1e-6);
        assert!((second[0].abs() - h).abs() < 1e-6 && (second[1] + second[0]).abs() < 1e-6);
        assert!(first[2].abs() < 1e-9 && second[2].abs() < 1e-9);
    }

    #[test]
    fn one_cluster_has_no_separation_scores() {
        let model = Given(vec![Some(0); 3], Vec::new());
        let r = ClusterReport::compute(&model, &[0.0, 1.0, 2.0], 1, &[0.0, 1.0, 0.0], 1);
        assert!(r.silhouette.is_none() && r.calinski_harabasz.is_none());
        assert!(r.majority_view.is_none());
        assert_eq!(r.contingency.len(), 2);
    }
}
