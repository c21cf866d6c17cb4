//! Where a trial's settings come from: uniformly at random, the grid in a seeded order, or
//! the tree-structured Parzen estimator (TPE, Bergstra et al. 2011, with Optuna's defaults:
//! 10 random start-up trials, γ(n) = min(⌈n/10⌉, 25), 24 candidates, a prior of weight 1,
//! Optuna's bandwidths and its ramp of weights past 25 trials). Written here: no Rust crate
//! implements TPE over conditional, mixed spaces with a seeded, order-free result. Its
//! arithmetic uses `libm`, so the same trials come out on every CPU.

use anyhow::Result;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use super::space::{Domain, Param, Params, Space};
use crate::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    Tpe,
    Random,
    Grid,
}

/// A finished trial as the sampler sees it.
#[derive(Debug, Clone)]
pub struct Past {
    pub trial: usize,
    pub params: Params,
    /// The objective (higher is better), for trials that ran to the end.
    pub value: Option<f64>,
    /// A pruned trial: how many reports it made, and its last value.
    pub pruned: Option<(usize, f64)>,
    /// A trial running beside this one, as far as it knows: counted among the bad ones
    /// (Optuna's constant liar), so that trials run at once spread out instead of sampling
    /// one spot.
    pub pending: bool,
}

/// TPE's settings (Optuna's defaults).
const STARTUP_TRIALS: usize = 10;
const CANDIDATES: usize = 24;
const PRIOR_WEIGHT: f64 = 1.0;

/// Trial `k`'s random numbers: a function of the search's seed and `k` only.
pub fn trial_rng(seed: u64, k: usize) -> StdRng {
    // splitmix64 of the pair, so neighbouring seeds and trials share nothing.
    let mut z = seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

/// Every active key drawn uniformly (log-uniformly for `log_uniform`).
pub fn random(space: &Space, base: &Config, rng: &mut StdRng) -> Params {
    let mut set = Params::new();
    for p in &space.params {
        if space.active(p, &set, base) {
            let v = draw(&p.domain, rng);
            set.push((p.key.clone(), v));
        }
    }
    set
}

fn draw(domain: &Domain, rng: &mut StdRng) -> Value {
    match domain {
        Domain::Choice(values) => values[rng.random_range(0..values.len())].clone(),
        Domain::Uniform(a, b) => (a + (b - a) * rng.random::<f64>()).into(),
        Domain::LogUniform(a, b) => {
            let (la, lb) = (libm::log(*a), libm::log(*b));
            libm::exp(la + (lb - la) * rng.random::<f64>()).into()
        }
        Domain::Int(a, b) => rng.random_range(*a..=*b).into(),
    }
}

/// Every combination of the grid's values (a conditional key only where it is active), in an
/// order shuffled by `seed`, so a search cut short still covers the grid evenly.
pub fn grid(space: &Space, base: &Config, seed: u64) -> Result<Vec<Params>> {
    let values: Vec<Vec<Value>> = space
        .params
        .iter()
        .map(|p| p.domain.grid(&p.key))
        .collect::<Result<_>>()?;
    let mut all = Vec::new();
    expand(space, base, &values, 0, &mut Params::new(), &mut all);
    all.shuffle(&mut StdRng::seed_from_u64(seed));
    Ok(all)
}

fn expand(
    space: &Space,
    base: &Config,
    values: &[Vec<Value>],
    i: usize,
    set: &mut Params,
    out: &mut Vec<Params>,
) {
    let Some(p) = space.params.get(i) else {
        out.push(set.clone());
        return;
    };
    if !space.active(p, set, base) {
        return expand(space, base, values, i + 1, set, out);
    }
    for v in &values[i] {
        set.push((p.key.clone(), v.clone()));
        expand(space, base, values, i + 1, set, out);
        set.pop();
    }
}

/// TPE: random for the first start-up trials, then each active key drawn from the density of
/// the best γ trials' values, the candidate with the highest ratio to the rest's density.
pub fn tpe(space: &Space, base: &Config, past: &[Past], rng: &mut StdRng) -> Params {
    let known = |p: &&Past| p.value.is_some() || p.pruned.is_some();
    if past.iter().filter(known).count() < STARTUP_TRIALS {
        return random(space, base, rng);
    }
    let mut ranked: Vec<&Past> = past.iter().filter(|p| known(p) || p.pending).collect();
    // Finished trials best first, then pruned ones (those that went further first), then
    // the pending ones.
    ranked.sort_by(|a, b| {
        let key = |p: &Past| match (p.value, p.pruned) {
            (Some(v), _) => (0, 0, -v),
            (None, Some((steps, v))) => (1, usize::MAX - steps, -v),
            (None, None) => (2, 0, 0.0),
        };
        let (ka, kb) = (key(a), key(b));
        (ka.0, ka.1)
            .cmp(&(kb.0, kb.1))
            .then(ka.2.total_cmp(&kb.2))
            .then(a.trial.cmp(&b.trial))
    });
    let n_below = ranked
        .iter()
        .filter(|p| known(p))
        .count()
        .div_ceil(10)
        .min(25);
    let weights = ramp_weights(&ranked);
    let (below, above) = ranked.split_at(n_below);
    let (w_below, w_above) = weights.split_at(n_below);
    let mut set = Params::new();
    for p in &space.params {
        if !space.active(p, &set, base) {
            continue;
        }
        let seen = |group: &[&Past], w: &[f64]| -> Vec<(Value, f64)> {
            group
                .iter()
                .zip(w)
                .filter_map(|(t, &w)| {
                    let v = t.params.iter().find(|(k, _)| *k == p.key)?;
                    Some((v.1.clone(), w))
                })
                .collect()
        };
        let v = propose(p, &seen(below, w_below), &seen(above, w_above), rng);
        set.push((p.key.clone(), v));
    }
    set
}

/// Optuna's weights: 1 for the 25 latest trials, a ramp from 1/n up to 1 for older ones; in
/// the order of `ranked`.
fn ramp_weights(ranked: &[&Past]) -> Vec<f64> {
    let mut order: Vec<usize> = ranked.iter().map(|p| p.trial).collect();
    order.sort_unstable();
    let n = order.len();
    let flat = 25.min(n);
    let ramp = n - flat;
    let weight_of = |trial: usize| {
        let i = order.binary_search(&trial).expect("a ranked trial");
        if i >= ramp {
            1.0
        } else if ramp == 1 {
            1.0 / n as f64
        } else {
            1.0 / n as f64 + (1.0 - 1.0 / n as f64) * i as f64 / (ramp - 1) as f64
        }
    };
    ranked.iter().map(|p| weight_of(p.trial)).collect()
}

/// One key's value: candidates from the good trials' density, the one most likelier under it
/// than under the others'.
fn propose(p: &Param, below: &[(Value, f64)], above: &[(Value, f64)], rng: &mut StdRng) -> Value {
    match &p.domain {
        Domain::Choice(values) => {
            let index = |v: &Value| values.iter().position(|c| c == v);
            let count = |obs: &[(Value, f64)]| -> Vec<f64> {
                let mut c = vec![PRIOR_WEIGHT / values.len() as f64; values.len()];
                obs.iter()
                    .filter_map(|(v, w)| Some((index(v)?, w)))
                    .for_each(|(i, w)| c[i] += w);
                let sum: f64 = c.iter().sum();
                c.iter().map(|x| x / sum).collect()
            };
            let (l, g) = (count(below), count(above));
            let best = (0..CANDIDATES)
                .map(|_| pick(&l, rng))
                .max_by(|&a, &b| {
                    let ratio = |i: usize| libm::log(l[i]) - libm::log(g[i]);
                    ratio(a).total_cmp(&ratio(b)).then(b.cmp(&a))
                })
                .expect("at least one candidate");
            values[best].clone()
        }
        domain => {
            let (lo, hi) = internal_range(domain);
            let xs = |obs: &[(Value, f64)]| -> Vec<(f64, f64)> {
                obs.iter()
                    .filter_map(|(v, w)| Some((internal(domain, v)?, *w)))
                    .collect()
            };
            let (l, g) = (
                Parzen::new(&xs(below), lo, hi),
                Parzen::new(&xs(above), lo, hi),
            );
            let best = (0..CANDIDATES)
                .map(|_| l.sample(rng))
                .max_by(|&a, &b| {
                    let ratio = |x: f64| l.log_pdf(x) - g.log_pdf(x);
                    ratio(a).total_cmp(&ratio(b))
                })
                .expect("at least one candidate");
            external(domain, best)
        }
    }
}

/// An index drawn with probabilities `p`.
fn pick(p: &[f64], rng: &mut StdRng) -> usize {
    let mut u: f64 = rng.random();
    for (i, &pi) in p.iter().enumerate() {
        if u < pi {
            return i;
        }
        u -= pi;
    }
    p.len() - 1
}

/// A numeric domain's range where TPE works: log for `log_uniform`, ±½ around integers.
fn internal_range(domain: &Domain) -> (f64, f64) {
    match domain {
        Domain::Uniform(a, b) => (*a, *b),
        Domain::LogUniform(a, b) => (libm::log(*a), libm::log(*b)),
        Domain::Int(a, b) => (*a as f64 - 0.5, *b as f64 + 0.5),
        Domain::Choice(_) => unreachable!("choices are counted, not smoothed"),
    }
}

fn internal(domain: &Domain, v: &Value) -> Option<f64> {
    let x = v.as_f64()?;
    Some(match domain {
        Domain::LogUniform(..) => libm::log(x),
        _ => x,
    })
}

fn external(domain: &Domain, x: f64) -> Value {
    match domain {
        Domain::Uniform(a, b) => x.clamp(*a, *b).into(),
        Domain::LogUniform(a, b) => libm::exp(x).clamp(*a, *b).into(),
        Domain::Int(a, b) => (libm::round(x) as i64).clamp(*a, *b).into(),
        Domain::Choice(_) => unreachable!("choices are counted, not smoothed"),
    }
}

/// A mixture of normals truncated to [lo, hi]: one per observation and the prior (centred,
/// as wide as the range), with Optuna's bandwidths (the larger gap to a neighbour, clipped to
/// [range/min(100, n + 1), range]).
struct Parzen {
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    weights: Vec<f64>,
    lo: f64,
    hi: f64,
}

impl Parzen {
    fn new(obs: &[(f64, f64)], lo: f64, hi: f64) -> Parzen {
        let range = hi - lo;
        let mut comps: Vec<(f64, f64, bool)> = obs.iter().map(|&(x, w)| (x, w, false)).collect();
        comps.push(((lo + hi) / 2.0, PRIOR_WEIGHT, true));
        comps.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = comps.len();
        let mus: Vec<f64> = comps.iter().map(|c| c.0).collect();
        let (min_sigma, max_sigma) = (range / (n as f64 + 1.0).min(100.0), range);
        let sigmas = (0..n)
            .map(|i| {
                if comps[i].2 {
                    return range;
                }
                let left = if i == 0 { lo } else { mus[i - 1] };
                let right = if i + 1 == n { hi } else { mus[i + 1] };
                let gap = match (i, n) {
                    (_, 1) => range,
                    (0, _) => mus[1] - mus[0],
                    (i, n) if i + 1 == n => mus[i] - mus[i - 1],
                    _ => (mus[i] - left).max(right - mus[i]),
                };
                gap.clamp(min_sigma, max_sigma)
            })
            .collect();
        let total: f64 = comps.iter().map(|c| c.1).sum();
        Parzen {
            mus,
            sigmas,
            weights: comps.iter().map(|c| c.1 / total).collect(),
            lo,
            hi,
        }
    }

    fn sample(&self, rng: &mut StdRng) -> f64 {
        let i = pick(&self.weights, rng);
        let (mu, sigma) = (self.mus[i], self.sigmas[i]);
        for _ in 0..100 {
            let z: f64 = StandardNormal.sample(rng);
            let x = mu + sigma * z;
            if (self.lo..=self.hi).contains(&x) {
                return x;
            }
        }
        mu.clamp(self.lo, self.hi)
    }

    fn log_pdf(&self, x: f64) -> f64 {
        let p: f64 = (0..self.mus.len())
            .map(|i| {
                let (mu, s) = (self.mus[i], self.sigmas[i]);
                let mass = phi((self.hi - mu) / s) - phi((self.lo - mu) / s);
                let z = (x - mu) / s;
                self.weights[i] * libm::exp(-0.5 * z * z)
                    / (s * (2.0 * std::f64::consts::PI).sqrt() * mass.max(1e-300))
            })
            .sum();
        libm::log(p.max(1e-300))
    }
}

/// The standard normal CDF.
fn phi(z: f64) -> f64 {
    0.5 * (1.0 + libm::erf(z / std::f64::consts::SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(text: &str) -> Space {
        Space::parse(text, &Config::default()).unwrap()
    }

    #[test]
    fn each_domain_samples_within_its_bounds() {
        let s = space(
            "training.learning_rate: {log_uniform: [0.0001, 0.01]}\n\
             model.dropout: {uniform: [0.1, 0.4]}\n\
             training.batch_size: {int: [16, 20]}\n\
             training.optimizer: {choice: [adam, sgd]}\n",
        );
        let base = Config::default();
        let mut seen_ints = std::collections::BTreeSet::new();
        let mut logs_below = 0;
        for k in 1..=400 {
            let p = random(&s, &base, &mut trial_rng(7, k));
            let lr = p[0].1.as_f64().unwrap();
            assert!((0.0001..=0.01).contains(&lr), "{lr}");
            logs_below += (lr < 0.001) as usize;
            assert!((0.1..=0.4).contains(&p[1].1.as_f64().unwrap()));
            let b = p[2].1.as_i64().unwrap();
            assert!((16..=20).contains(&b));
            seen_ints.insert(b);
            assert!(["adam", "sgd"].contains(&p[3].1.as_str().unwrap()));
        }
        assert_eq!(seen_ints.len(), 5, "both ends included");
        // Log-uniform: half the draws below the geometric middle.
        assert!((150..250).contains(&logs_below), "{logs_below}");
        assert_eq!(
            random(&s, &base, &mut trial_rng(7, 3)),
            random(&s, &base, &mut trial_rng(7, 3))
        );
    }

    #[test]
    fn the_grid_enumerates_exactly_once_each_and_skips_inactive_keys() {
        let s = space(
            "model.kind: {choice: [mlp, random_forest]}\n\
             model.hidden_dims: {choice: [[8], [16, 8], [4]], when: {model.kind: mlp}}\n\
             training.batch_size: {int: [16, 17]}\n",
        );
        let g = grid(&s, &Config::default(), 1).unwrap();
        // mlp: 3 × 2, random_forest: 2 (hidden_dims inactive).
        assert_eq!(g.len(), 8);
        let mut distinct = g.clone();
        distinct.sort_by_key(|p| format!("{p:?}"));
        distinct.dedup();
        assert_eq!(distinct.len(), 8);
        assert!(
            g.iter()
                .filter(|p| p[0].1 == "random_forest")
                .all(|p| p.len() == 2)
        );
        assert_ne!(g, grid(&s, &Config::default(), 2).unwrap(), "seeded order");
        let err = grid(
            &space("model.dropout: {uniform: [0, 0.5]}"),
            &Config::default(),
            1,
        );
        assert!(format!("{:#}", err.unwrap_err()).contains("model.dropout"));
    }

    /// A search on f(x, y) = −(x − 0.3)² − (y + 0.2)² over [−1, 1]², one trial at a time.
    fn search(tpe_on: bool, seed: u64, trials: usize) -> Vec<f64> {
        let axis = |key: &str| Param {
            key: key.into(),
            domain: Domain::Uniform(-1.0, 1.0),
            when: Vec::new(),
        };
        let s = Space {
            params: vec![axis("x"), axis("y")],
        };
        let base = Config::default();
        let mut past: Vec<Past> = Vec::new();
        for k in 1..=trials {
            let mut rng = trial_rng(seed, k);
            let p = if tpe_on {
                tpe(&s, &base, &past, &mut rng)
            } else {
                random(&s, &base, &mut rng)
            };
            let (x, y) = (p[0].1.as_f64().unwrap(), p[1].1.as_f64().unwrap());
            let value = -(x - 0.3).powi(2) - (y + 0.2).powi(2);
            past.push(Past {
                trial: k,
                params: p,
                value: Some(value),
                pruned: None,
                pending: false,
            });
        }
        past.iter().map(|p| p.value.unwrap()).collect()
    }

    #[test]
    fn pending_trials_spread_the_proposals_made_beside_them() {
        // 12 results, then 8 proposals from them at once: with the earlier proposals
        // pending (the constant liar) and without.
        let axis = Param {
            key: "x".into(),
            domain: Domain::Uniform(0.0, 1.0),
            when: Vec::new(),
        };
        let s = Space { params: vec![axis] };
        let base = Config::default();
        let result = |k: usize, x: f64| Past {
            trial: k,
            params: vec![("x".into(), x.into())],
            value: Some(-(x - 0.3f64).powi(2)),
            pruned: None,
            pending: false,
        };
        let history: Vec<Past> = (1..=12).map(|k| result(k, k as f64 / 13.0)).collect();
        let spread = |liar: bool| -> f64 {
            let mut past = history.clone();
            let mut xs = Vec::new();
            for k in 13..=20 {
                let p = tpe(&s, &base, &past, &mut trial_rng(5, k));
                let x = p[0].1.as_f64().unwrap();
                xs.push(x);
                if liar {
                    past.push(Past {
                        value: None,
                        pending: true,
                        ..result(k, x)
                    });
                }
            }
            let mean = xs.iter().sum::<f64>() / xs.len() as f64;
            (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64).sqrt()
        };
        let (with, without) = (spread(true), spread(false));
        assert!(with > 1.5 * without, "pending {with}, without {without}");
    }

    #[test]
    fn tpe_finds_the_minimum_region_faster_than_random() {
        // Trials 21–40 within 0.1 of the optimum (value > −0.01), summed over 10 seeds.
        let near = |tpe_on: bool| -> usize {
            (1..=10)
                .map(|seed| {
                    let v = search(tpe_on, seed, 40);
                    v[20..].iter().filter(|&&v| v > -0.01).count()
                })
                .sum()
        };
        let (t, r) = (near(true), near(false));
        assert!(t >= 3 * r.max(1), "tpe {t}, random {r}");
    }
}
