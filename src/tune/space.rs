//! The search space: `space.yaml` maps config keys (the `--set` paths) to domains, each key
//! optionally active only `when` other keys hold given values (so one search can span
//! families). Checked against the base config before any trial runs.

use std::path::Path;

use anyhow::Result;
use serde_yaml::{Mapping, Value};

use crate::bail_input;
use crate::config::Config;
use crate::error::bad_input;

/// Where one key's values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    Choice(Vec<Value>),
    Uniform(f64, f64),
    LogUniform(f64, f64),
    /// Both ends included.
    Int(i64, i64),
}

/// One searched key.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub key: String,
    pub domain: Domain,
    /// Active only when each of these keys holds one of its values.
    pub when: Vec<(String, Vec<Value>)>,
}

/// A trial's settings: the active keys, in the space's order.
pub type Params = Vec<(String, Value)>;

#[derive(Debug, Clone, PartialEq)]
pub struct Space {
    pub params: Vec<Param>,
}

/// Keys a trial may not change: the search owns where runs go, and the split decides which
/// rows are held out (the objective must be computed on the same rows for every trial).
const OWNED: [&str; 10] = [
    "checkpoint",
    "logging",
    "cross_validation",
    "data.path",
    "data.test_path",
    "data.test_size",
    "data.val_size",
    "data.random_state",
    "data.use_augmented_data",
    "training.seed",
];

impl Domain {
    fn parse(key: &str, name: &str, v: &Value) -> Result<Domain> {
        let pair = || -> Result<(f64, f64)> {
            match v.as_sequence().map(|s| s.as_slice()) {
                Some([a, b]) => match (a.as_f64(), b.as_f64()) {
                    (Some(a), Some(b)) if a.is_finite() && b.is_finite() && a < b => Ok((a, b)),
                    _ => bail_input!("{key}: {name}: expected [low, high] numbers, low < high"),
                },
                _ => bail_input!("{key}: {name}: expected [low, high]"),
            }
        };
        Ok(match name {
            "choice" => match v.as_sequence() {
                Some(values) if !values.is_empty() => Domain::Choice(values.clone()),
                _ => bail_input!("{key}: choice: expected a non-empty list of values"),
            },
            "uniform" => {
                let (a, b) = pair()?;
                Domain::Uniform(a, b)
            }
            "log_uniform" => {
                let (a, b) = pair()?;
                if a <= 0.0 {
                    bail_input!("{key}: log_uniform: expected 0 < low < high, got [{a}, {b}]");
                }
                Domain::LogUniform(a, b)
            }
            "int" => match v.as_sequence().map(|s| s.as_slice()) {
                Some([a, b]) => match (a.as_i64(), b.as_i64()) {
                    (Some(a), Some(b)) if a <= b => Domain::Int(a, b),
                    _ => bail_input!("{key}: int: expected [low, high] integers, low <= high"),
                },
                _ => bail_input!("{key}: int: expected [low, high]"),
            },
            other => bail_input!(
                "{key}: unknown domain {other:?}; expected choice, uniform, log_uniform or int"
            ),
        })
    }

    /// The values a check tries: every choice, both ends of a range.
    fn probes(&self) -> Vec<Value> {
        match self {
            Domain::Choice(values) => values.clone(),
            Domain::Uniform(a, b) | Domain::LogUniform(a, b) => vec![(*a).into(), (*b).into()],
            Domain::Int(a, b) => vec![(*a).into(), (*b).into()],
        }
    }

    /// Every value, for the grid: choices and integers only.
    pub fn grid(&self, key: &str) -> Result<Vec<Value>> {
        match self {
            Domain::Choice(values) => Ok(values.clone()),
            Domain::Int(a, b) if b - a < 10_000 => Ok((*a..=*b).map(Value::from).collect()),
            _ => bail_input!(
                "{key}: --sampler grid enumerates choice and int domains (up to 10,000 values); \
                 use tpe or random for a continuous range"
            ),
        }
    }
}

impl Space {
    /// Reads and checks `path` against `base`: every key exists, takes every probed value,
    /// and is not one the search owns.
    pub fn read(path: &Path, base: &Config) -> Result<Space> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad_input(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text, base).map_err(|e| bad_input(format!("{}: {e}", path.display())))
    }

    pub fn parse(text: &str, base: &Config) -> Result<Space> {
        let root: Value = serde_yaml::from_str(text).map_err(|e| bad_input(e.to_string()))?;
        let Some(map) = root.as_mapping().filter(|m| !m.is_empty()) else {
            bail_input!(
                "expected a mapping of config keys to domains, e.g. `training.learning_rate: {{log_uniform: [0.0001, 0.01]}}`"
            );
        };
        let mut params: Vec<Param> = Vec::new();
        for (k, v) in map {
            let Some(key) = k.as_str() else {
                bail_input!("{k:?}: expected a config key such as training.learning_rate");
            };
            let param = Self::param(key, v, &params, base)?;
            params.push(param);
        }
        let space = Space { params };
        for p in &space.params {
            space.check(p, base)?;
        }
        Ok(space)
    }

    fn param(key: &str, v: &Value, earlier: &[Param], base: &Config) -> Result<Param> {
        if let Some(owned) = OWNED
            .iter()
            .find(|o| key == **o || key.starts_with(&format!("{o}.")))
        {
            bail_input!(
                "{key}: {owned} is the search's own (where runs go, which rows are held out, \
                 the seed); set it in the base config"
            );
        }
        let Some(m) = v.as_mapping() else {
            bail_input!("{key}: expected a domain such as {{choice: [a, b]}}");
        };
        let mut domain = None;
        let mut when = Vec::new();
        for (name, arg) in m {
            match name.as_str() {
                Some("when") => when = Self::when(key, arg, earlier, base)?,
                Some(name) if domain.is_none() => domain = Some(Domain::parse(key, name, arg)?),
                _ => bail_input!("{key}: expected one domain (and optionally when)"),
            }
        }
        let Some(domain) = domain else {
            bail_input!("{key}: expected one of choice, uniform, log_uniform or int");
        };
        Ok(Param {
            key: key.to_string(),
            domain,
            when,
        })
    }

    /// `when: {model.kind: mlp}` or `{model.kind: [mlp, resmlp]}`: keys of the base config or
    /// searched before this one.
    fn when(
        key: &str,
        arg: &Value,
        earlier: &[Param],
        base: &Config,
    ) -> Result<Vec<(String, Vec<Value>)>> {
        let Some(m) = arg.as_mapping() else {
            bail_input!("{key}: when: expected a mapping such as {{model.kind: mlp}}");
        };
        let mut out = Vec::new();
        for (k, v) in m {
            let Some(other) = k.as_str() else {
                bail_input!("{key}: when: expected config keys");
            };
            if !earlier.iter().any(|p| p.key == other) && base.value_at(other).is_none() {
                bail_input!(
                    "{key}: when: {other} is neither a config key nor a key searched before {key}"
                );
            }
            let allowed = match v {
                Value::Sequence(values) => values.clone(),
                one => vec![one.clone()],
            };
            out.push((other.to_string(), allowed));
        }
        Ok(out)
    }

    /// Every probed value of `p` makes a valid config (with its conditions met).
    fn check(&self, p: &Param, base: &Config) -> Result<()> {
        let mut met: Params = Vec::new();
        for (k, allowed) in &p.when {
            met.push((k.clone(), allowed[0].clone()));
        }
        for value in p.domain.probes() {
            let mut values = met.clone();
            values.push((p.key.clone(), value.clone()));
            if let Err(e) = base.with_values(&values) {
                bail_input!(
                    "{}: the value {} does not make a valid config: {}",
                    p.key,
                    show(&value),
                    crate::error::one_line(&e)
                );
            }
        }
        Ok(())
    }

    /// Whether `p` is active given the keys set so far (else the base config's values).
    pub fn active(&self, p: &Param, set: &Params, base: &Config) -> bool {
        p.when.iter().all(|(k, allowed)| {
            let current = set
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .or_else(|| base.value_at(k));
            current.is_some_and(|v| allowed.contains(&v))
        })
    }

    /// The space as YAML again (recorded in `study.json`).
    pub fn to_yaml(&self) -> String {
        let mut root = Mapping::new();
        for p in &self.params {
            let mut m = Mapping::new();
            let (name, arg): (&str, Value) = match &p.domain {
                Domain::Choice(v) => ("choice", Value::Sequence(v.clone())),
                Domain::Uniform(a, b) => ("uniform", vec![*a, *b].into()),
                Domain::LogUniform(a, b) => ("log_uniform", vec![*a, *b].into()),
                Domain::Int(a, b) => ("int", vec![*a, *b].into()),
            };
            m.insert(name.into(), arg);
            if !p.when.is_empty() {
                let mut w = Mapping::new();
                for (k, allowed) in &p.when {
                    w.insert(k.as_str().into(), Value::Sequence(allowed.clone()));
                }
                m.insert("when".into(), Value::Mapping(w));
            }
            root.insert(p.key.as_str().into(), Value::Mapping(m));
        }
        serde_yaml::to_string(&root).expect("a space always serializes")
    }
}

/// A value as a table cell or a log line: plain strings bare, the rest as JSON.
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}")),
    }
}

/// A value for a log line: [`show`], with fractions to four significant digits.
pub fn brief(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if v.is_f64() && x != 0.0 && x.abs() < 0.01 => format!("{x:.3e}"),
        Some(x) if v.is_f64() => format!("{:.4}", x),
        _ => show(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::one_line;

    fn err(text: &str) -> String {
        one_line(&Space::parse(text, &Config::default()).unwrap_err())
    }

    #[test]
    fn spaces_parse_and_bad_ones_name_the_key() {
        let s = Space::parse(
            "model.kind: {choice: [mlp, random_forest]}\n\
             training.learning_rate: {log_uniform: [0.0001, 0.01], when: {model.kind: mlp}}\n\
             model.random_forest.n_trees: {int: [10, 50], when: {model.kind: [random_forest]}}\n\
             model.dropout: {uniform: [0.0, 0.5]}\n",
            &Config::default(),
        )
        .unwrap();
        assert_eq!(s.params.len(), 4);
        assert_eq!(s.params[1].domain, Domain::LogUniform(0.0001, 0.01));
        assert_eq!(Space::parse(&s.to_yaml(), &Config::default()).unwrap(), s);
        for (text, want) in [
            (
                "training.learning_rat: {uniform: [0.1, 0.2]}",
                "training.learning_rat",
            ),
            (
                "training.learning_rate: {uniform: [0.2, 0.1]}",
                "low < high",
            ),
            ("training.learning_rate: {log_uniform: [0, 0.1]}", "0 < low"),
            ("training.learning_rate: {normal: [0, 1]}", "unknown domain"),
            ("training.epochs: {int: [0, 5]}", "training.epochs"),
            ("model.kind: {choice: []}", "non-empty"),
            ("data.test_size: {uniform: [0.1, 0.3]}", "held out"),
            ("training.seed: {int: [1, 3]}", "training.seed"),
            (
                "training.epochs: {int: [1, 3], when: {model.nope: 1}}",
                "model.nope",
            ),
            (
                "training.epochs: {int: [1, 3], uniform: [1, 2]}",
                "one domain",
            ),
        ] {
            let e = err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn conditional_keys_are_active_only_with_their_family() {
        let base = Config::default();
        let s = Space::parse(
            "model.kind: {choice: [mlp, random_forest]}\n\
             model.hidden_dims: {choice: [[8], [16, 8]], when: {model.kind: mlp}}\n",
            &base,
        )
        .unwrap();
        let mlp = vec![("model.kind".to_string(), Value::from("mlp"))];
        let forest = vec![("model.kind".to_string(), Value::from("random_forest"))];
        assert!(s.active(&s.params[1], &mlp, &base));
        assert!(!s.active(&s.params[1], &forest, &base));
        // Unset, the base config's value decides (mlp by default).
        assert!(s.active(&s.params[1], &Vec::new(), &base));
    }
}
