//! One-class SVM (Schölkopf et al. 2001) with an RBF kernel, as scikit-learn's `OneClassSVM`
//! (libsvm): the ν-formulation's dual solved by SMO with libsvm's second-order working-set
//! selection, fitted on at most `max_fit_rows` training rows (a seeded subsample above that).
//! The score is the negated decision value, ρ − Σ αᵢ K(xᵢ, x): positive outside the learnt
//! boundary, larger the further out.
//!
//! Written here: linfa-svm builds the whole kernel matrix in f64 (800 MB at 10,000 rows) and
//! scores one row at a time; this solver keeps a bounded cache of kernel columns, and scoring
//! is one matrix product per block of rows (`neighbors::blocks`).

use std::collections::{HashMap, VecDeque};

use anyhow::Result;
use burn::tensor::Device;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::detector::{Detector, Output};
use super::family::{Facts, Family, Fit, FitData, Fitted, Section};
use super::neighbors::{blocks, gather, squared_distance, squared_norms, subsample};
use crate::bail_input;

/// `model.one_class_svm`: scikit-learn's `OneClassSVM(kernel='rbf')` settings, fitted on at
/// most `max_fit_rows` rows (a seeded subsample above it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OneClassSvmConfig {
    /// An upper bound on the share of fitted rows left outside, and a lower bound on the
    /// share of support vectors.
    pub nu: f64,
    pub gamma: Gamma,
    pub max_fit_rows: usize,
    /// The solver stops when the largest optimality violation is below this.
    pub tol: f64,
    pub max_iter: usize,
}

impl Default for OneClassSvmConfig {
    fn default() -> Self {
        Self {
            nu: 0.1,
            gamma: Gamma::Scale(GammaScale::Scale),
            max_fit_rows: 10_000,
            tol: 1e-3,
            max_iter: 1_000_000,
        }
    }
}

impl Section for OneClassSvmConfig {
    fn check(&self) -> Result<()> {
        let svm = self;
        let gamma_ok = match svm.gamma {
            Gamma::Value(g) => g > 0.0 && g.is_finite(),
            Gamma::Scale(_) => true,
        };
        if !(svm.nu > 0.0 && svm.nu <= 1.0 && gamma_ok) || svm.max_fit_rows < 2 {
            bail_input!(
                "model.one_class_svm: expected nu in (0, 1], gamma `scale` or a number > 0 and max_fit_rows >= 2, got {}, {:?} and {}",
                svm.nu,
                svm.gamma,
                svm.max_fit_rows
            );
        }
        if svm.tol.is_nan() || svm.tol <= 0.0 || svm.max_iter == 0 {
            bail_input!(
                "model.one_class_svm: expected tol > 0 and max_iter >= 1, got {} and {}",
                svm.tol,
                svm.max_iter
            );
        }
        Ok(())
    }
}

/// The RBF kernel's width: a number, or `scale` (1 / (features × the fitted rows' variance)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Gamma {
    Value(f64),
    Scale(GammaScale),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GammaScale {
    Scale,
}

/// libsvm's floor on the second-order coefficient of a non-positive-definite pair.
const TAU: f64 = 1e-12;
/// Kernel columns kept between iterations (at 10,000 rows, 40 KB each).
const CACHE_COLUMNS: usize = 2048;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneClassSvm {
    pub n_features: usize,
    pub gamma: f64,
    pub rho: f64,
    /// The support vectors (rows with α > 0), row-major.
    pub support: Vec<f32>,
    pub alpha: Vec<f64>,
    /// Rows the solver saw, and its iterations.
    pub fitted_rows: usize,
    pub iterations: usize,
}

impl Family for OneClassSvm {
    type Section = OneClassSvmConfig;
    type State = OneClassSvm;
    const FACTS: Facts = Facts {
        classifier: false,
        sequence: false,
        unit_scores: false,
    };
    const FIT: Fit<OneClassSvmConfig, OneClassSvm> = Fit::OnePass(OneClassSvm::one_pass);

    fn load(state: &Self, _: &Device) -> Result<Box<dyn Detector>> {
        Ok(Box::new(state.clone()))
    }
}

impl OneClassSvm {
    fn one_pass(cfg: &OneClassSvmConfig, data: &FitData) -> Result<Fitted<Self>> {
        let m = OneClassSvm::fit(data.x, data.d, data.rows, cfg, data.seed);
        let said = format!(
            "{} support vectors among {} rows, gamma {:.4}, {} solver steps",
            m.alpha.len(),
            m.fitted_rows,
            m.gamma,
            m.iterations
        );
        Ok(Fitted::new(m, said))
    }

    /// Fits on `rows` of `x` (row-major, `d` features per row), subsampled to at most
    /// `max_fit_rows` with `seed`.
    pub fn fit(x: &[f32], d: usize, rows: &[usize], cfg: &OneClassSvmConfig, seed: u64) -> Self {
        let kept = subsample(rows, cfg.max_fit_rows, seed);
        let fit = gather(x, d, &kept);
        let gamma = match cfg.gamma {
            Gamma::Value(g) => g,
            Gamma::Scale(_) => scale_gamma(&fit, d),
        };
        let mut solver = Solver::new(&fit, d, gamma, cfg.nu);
        let iterations = solver.solve(cfg.tol, cfg.max_iter);
        let rho = solver.rho();
        let (mut support, mut alpha) = (Vec::new(), Vec::new());
        for (i, &a) in solver.alpha.iter().enumerate() {
            if a > 0.0 {
                support.extend_from_slice(&fit[i * d..(i + 1) * d]);
                alpha.push(a);
            }
        }
        OneClassSvm {
            n_features: d,
            gamma,
            rho,
            support,
            alpha,
            fitted_rows: kept.len(),
            iterations,
        }
    }

    /// Each row's negated decision value, ρ − Σ αᵢ exp(−γ‖xᵢ − x‖²).
    pub fn scores(&self, x: &[f32]) -> Vec<f32> {
        let d = self.n_features;
        let sv_norms = squared_norms(&self.support, d);
        let n = sv_norms.len();
        blocks(&self.support, x, d, |_, block, dots| {
            squared_norms(block, d)
                .iter()
                .enumerate()
                .map(|(i, &qn)| {
                    let inside: f64 = dots[i * n..(i + 1) * n]
                        .iter()
                        .zip(&sv_norms)
                        .zip(&self.alpha)
                        .map(|((&dot, &sn), &a)| {
                            let squared = (qn + sn - 2.0 * dot).max(0.0) as f64;
                            a * (-self.gamma * squared).exp()
                        })
                        .sum();
                    (self.rho - inside) as f32
                })
                .collect()
        })
    }
}

/// scikit-learn's `gamma='scale'`: 1 / (features × the variance of all fitted values).
fn scale_gamma(fit: &[f32], d: usize) -> f64 {
    let n = fit.len().max(1) as f64;
    let mean = fit.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = fit.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    if var > 0.0 {
        1.0 / (d as f64 * var)
    } else {
        1.0
    }
}

/// libsvm's solver for the one-class dual: minimise ½ αᵀQα subject to 0 ≤ αᵢ ≤ 1 and
/// Σ αᵢ = ν·l, where Qᵢⱼ = K(xᵢ, xⱼ). Every label is +1, so the general solver's sign
/// bookkeeping drops out.
struct Solver<'a> {
    rows: &'a [f32],
    d: usize,
    gamma: f64,
    alpha: Vec<f64>,
    /// The gradient Qα.
    grad: Vec<f64>,
    cache: HashMap<usize, Vec<f32>>,
    order: VecDeque<usize>,
}

impl<'a> Solver<'a> {
    /// libsvm's start: the first ⌊ν·l⌋ rows at the upper bound, the next one holding the rest.
    fn new(rows: &'a [f32], d: usize, gamma: f64, nu: f64) -> Self {
        let l = rows.len() / d;
        let total = nu * l as f64;
        let alpha: Vec<f64> = (0..l).map(|i| (total - i as f64).clamp(0.0, 1.0)).collect();
        let mut solver = Solver {
            rows,
            d,
            gamma,
            alpha,
            grad: vec![0.0; l],
            cache: HashMap::new(),
            order: VecDeque::new(),
        };
        for i in 0..l {
            let a = solver.alpha[i];
            if a > 0.0 {
                let column = solver.column(i);
                for (g, &q) in solver.grad.iter_mut().zip(column.iter()) {
                    *g += a * q as f64;
                }
            }
        }
        solver
    }

    fn len(&self) -> usize {
        self.alpha.len()
    }

    /// Column `i` of Q, from the cache or computed (in parallel, each value on its own, so
    /// the bits do not depend on the threads).
    fn column(&mut self, i: usize) -> Vec<f32> {
        if let Some(c) = self.cache.get(&i) {
            return c.clone();
        }
        let d = self.d;
        let row = &self.rows[i * d..(i + 1) * d];
        let column: Vec<f32> = self
            .rows
            .par_chunks(d)
            .map(|other| (-self.gamma * squared_distance(row, other)).exp() as f32)
            .collect();
        if self.order.len() == CACHE_COLUMNS {
            let old = self.order.pop_front().expect("a full cache");
            self.cache.remove(&old);
        }
        self.order.push_back(i);
        self.cache.insert(i, column.clone());
        column
    }

    /// The pair to optimise next (libsvm's WSS 2), or `None` when the maximal violation is
    /// below `tol`.
    fn select(&mut self, tol: f64) -> Option<(usize, usize)> {
        // i: the steepest row that can still grow.
        let mut g_max = f64::NEG_INFINITY;
        let mut i = None;
        for t in 0..self.len() {
            if self.alpha[t] < 1.0 && -self.grad[t] >= g_max {
                g_max = -self.grad[t];
                i = Some(t);
            }
        }
        let i = i?;
        let qi = self.column(i);
        // j: among rows that can shrink, the one whose pairing with i lowers the objective most.
        let mut g_max2 = f64::NEG_INFINITY;
        let mut best = f64::INFINITY;
        let mut j = None;
        for (t, &q) in qi.iter().enumerate() {
            if self.alpha[t] <= 0.0 {
                continue;
            }
            g_max2 = g_max2.max(self.grad[t]);
            let b = g_max + self.grad[t];
            if b > 0.0 {
                let a = (2.0 - 2.0 * q as f64).max(TAU);
                let gain = -(b * b) / a;
                if gain <= best {
                    best = gain;
                    j = Some(t);
                }
            }
        }
        if g_max + g_max2 < tol {
            return None;
        }
        j.map(|j| (i, j))
    }

    /// Moves α along the pair (i, j), keeping the sum and the box, and updates the gradient.
    fn step(&mut self, i: usize, j: usize) {
        let (qi, qj) = (self.column(i), self.column(j));
        let quad = (2.0 - 2.0 * qi[j] as f64).max(TAU);
        let (old_i, old_j) = (self.alpha[i], self.alpha[j]);
        let sum = old_i + old_j;
        let delta = (self.grad[i] - self.grad[j]) / quad;
        let mut ai = old_i - delta;
        let mut aj = old_j + delta;
        if sum > 1.0 {
            if ai > 1.0 {
                (ai, aj) = (1.0, sum - 1.0);
            }
            if aj > 1.0 {
                (ai, aj) = (sum - 1.0, 1.0);
            }
        } else {
            if aj < 0.0 {
                (ai, aj) = (sum, 0.0);
            }
            if ai < 0.0 {
                (ai, aj) = (0.0, sum);
            }
        }
        (self.alpha[i], self.alpha[j]) = (ai, aj);
        let (di, dj) = (ai - old_i, aj - old_j);
        for (t, g) in self.grad.iter_mut().enumerate() {
            *g += qi[t] as f64 * di + qj[t] as f64 * dj;
        }
    }

    /// Runs SMO until the pair violation is below `tol` or `max_iter` steps; the steps taken.
    fn solve(&mut self, tol: f64, max_iter: usize) -> usize {
        for iteration in 0..max_iter {
            match self.select(tol) {
                Some((i, j)) => self.step(i, j),
                None => return iteration,
            }
        }
        max_iter
    }

    /// ρ: the mean gradient over the free αs (libsvm's rule), or the middle of the bounds
    /// when none is free.
    fn rho(&self) -> f64 {
        let (mut upper, mut lower) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut free, mut sum) = (0usize, 0.0);
        for (&a, &g) in self.alpha.iter().zip(&self.grad) {
            if a >= 1.0 {
                lower = lower.max(g);
            } else if a <= 0.0 {
                upper = upper.min(g);
            } else {
                free += 1;
                sum += g;
            }
        }
        if free > 0 {
            sum / free as f64
        } else {
            (upper + lower) / 2.0
        }
    }
}

impl Detector for OneClassSvm {
    fn score(&self, x: &[f32]) -> Result<Output> {
        Ok(Output::Scores(self.scores(x)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::on_threads;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const SCALE: Gamma = Gamma::Scale(GammaScale::Scale);

    fn cfg(nu: f64, gamma: Gamma) -> OneClassSvmConfig {
        OneClassSvmConfig {
            nu,
            gamma,
            ..OneClassSvmConfig::default()
        }
    }

    #[test]
    fn two_points_split_the_weight_and_the_boundary_passes_through_both() {
        // ν = 0.5 on two rows a = 0, b = 2: by symmetry α = (½, ½), and ρ = ½ (K(a, a) +
        // K(a, b)) = ½ (1 + e^(−γ·4)); each fitted row's decision value is then exactly 0.
        let svm = OneClassSvm::fit(&[0.0, 2.0], 1, &[0, 1], &cfg(0.5, Gamma::Value(0.5)), 1);
        assert_eq!(svm.alpha, [0.5, 0.5]);
        let want = (1.0 + (-2.0f64).exp()) / 2.0;
        assert!((svm.rho - want).abs() < 1e-9, "{}", svm.rho);
        let s = svm.scores(&[0.0, 2.0, 1.0, 9.0]);
        assert!(s[0].abs() < 1e-6 && s[1].abs() < 1e-6, "{s:?}");
        // Between them inside (negative), far away outside: ρ − 0.
        assert!(s[2] < 0.0);
        assert!((s[3] as f64 - want).abs() < 1e-6);
    }

    #[test]
    fn the_solution_satisfies_the_constraints_and_the_optimality_gap() {
        let mut rng = StdRng::seed_from_u64(4);
        let x: Vec<f32> = (0..300 * 3).map(|_| rng.random_range(-1.0..1.0)).collect();
        let rows: Vec<usize> = (0..300).collect();
        let svm = OneClassSvm::fit(&x, 3, &rows, &cfg(0.2, SCALE), 1);
        let total: f64 = svm.alpha.iter().sum();
        assert!((total - 60.0).abs() < 1e-9, "Σα = {total}");
        assert!(svm.alpha.iter().all(|&a| a > 0.0 && a <= 1.0));
        // About ν of the fitted rows fall outside (ν bounds the outlier share from above and
        // the support-vector share from below).
        let outside = svm.scores(&x).iter().filter(|&&s| s > 1e-3).count();
        assert!(outside <= 66, "{outside} outside");
        assert!(svm.alpha.len() >= 60, "{} support vectors", svm.alpha.len());
    }

    #[test]
    fn the_far_point_scores_highest_on_any_number_of_threads() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut x: Vec<f32> = (0..500 * 4).map(|_| rng.random_range(-1.0..1.0)).collect();
        x[200 * 4..201 * 4].copy_from_slice(&[5.0, -5.0, 5.0, 5.0]);
        let rows: Vec<usize> = (0..500).filter(|&r| r != 200).collect();
        let run = || {
            let svm = OneClassSvm::fit(&x, 4, &rows, &cfg(0.1, SCALE), 3);
            (svm.alpha.clone(), svm.scores(&x))
        };
        let (one, two) = (on_threads(1, run), on_threads(2, run));
        assert_eq!(one, two);
        let s = &one.1;
        let top = (0..500).max_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap();
        assert_eq!(top, 200);
    }
}
