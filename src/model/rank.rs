//! A detector's score as its rank among held-out normal rows, on the logit scale: one scale
//! for detectors whose raw scores share none (a reconstruction error, a LOF ratio with a tail
//! into the hundreds, a forest's depth score). Unlike a z-score, no detector's tail can
//! outweigh the others: a rank's logit is bounded by the rows it was taken on (±9.9 for
//! 10,000 rows). The ensemble's default combination and the hybrid's calibration use it.

use serde::{Deserialize, Serialize};

/// Evenly spaced quantiles of a detector's scores on held-out normal rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalRank {
    /// The quantiles (all the scores when few), ascending.
    pub normal: Vec<f32>,
    /// How many rows they summarise.
    pub rows: usize,
}

/// Logits are clipped here, so that a saturated probability stays a finite input.
const MAX_LOGIT: f64 = 16.0;

pub fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln().clamp(-MAX_LOGIT, MAX_LOGIT)
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl NormalRank {
    /// The share of the normal rows scoring below `s`, read between the kept quantiles and
    /// kept half a row inside (0, 1).
    pub fn share_below(&self, s: f32) -> f64 {
        let q = &self.normal;
        let edge = 0.5 / self.rows as f64;
        let i = q.partition_point(|&v| v < s);
        let share = if i == 0 {
            0.0
        } else if i == q.len() || q.len() == 1 {
            1.0
        } else {
            let frac = (s - q[i - 1]) as f64 / (q[i] - q[i - 1]) as f64;
            (i - 1) as f64 / (q.len() - 1) as f64 + frac / (q.len() - 1) as f64
        };
        share.clamp(edge, 1.0 - edge)
    }

    /// `logit(share_below(s))`: 0 at the normal rows' median, NaN for a NaN score.
    pub fn logit(&self, s: f32) -> f64 {
        if s.is_nan() {
            return f64::NAN;
        }
        logit(self.share_below(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_score_reads_its_share_between_the_kept_quantiles() {
        // 11 normal scores 0..=10.
        let r = NormalRank {
            normal: (0..=10).map(|v| v as f32).collect(),
            rows: 11,
        };
        assert!((r.share_below(4.5) - 0.45).abs() < 1e-12);
        assert_eq!(r.logit(5.0), 0.0);
        // Below every normal score, or above: half a row inside (0, 1), never 0 or 1.
        assert_eq!(r.share_below(-3.0), 0.5 / 11.0);
        assert_eq!(r.share_below(99.0), 1.0 - 0.5 / 11.0);
        assert!((r.logit(99.0) + r.logit(-3.0)).abs() < 1e-12);
        assert!(r.logit(f32::NAN).is_nan());
    }
}
