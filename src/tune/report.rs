//! What a search leaves for people: the ranked table (`trials.csv`), `best.yaml` (a config
//! `train` runs as is), the parameters' importance, `report.html`, and the best
//! configuration's figures on the test rows, evaluated once, after the search.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::space::{Domain, show};
use super::{Search, State, TrialResult, describe};
use crate::bail_input;
use crate::config::Config;
use crate::data::{prepare_evaluation, write_atomic};
use crate::eval::Metrics;
use crate::eval::multiclass::ClassReport;
use crate::log::RunLog;
use crate::report::assess::write_figures;
use crate::report::figures::{Figure, Ranking, Scatter, render};
use crate::report::html;
use crate::score::Scorer;
use crate::train::prepare::prepare_training;
use crate::train::{self, Run};

/// The search's results, best first: finished trials by the objective, then pruned ones (the
/// further they went, the higher), then failed ones; ties by trial number.
pub fn ranked(mut results: Vec<TrialResult>) -> Vec<TrialResult> {
    let key = |r: &TrialResult| {
        let last = r.reports.last().map_or(f64::NEG_INFINITY, |x| x.value);
        match r.state {
            State::Finished => (0, 0, -r.value.unwrap_or(f64::NEG_INFINITY)),
            State::Pruned => (1, usize::MAX - r.reports.len(), -last),
            State::Failed => (2, 0, 0.0),
        }
    };
    results.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        (ka.0, ka.1)
            .cmp(&(kb.0, kb.1))
            .then(ka.2.total_cmp(&kb.2))
            .then(a.trial.cmp(&b.trial))
    });
    results
}

/// The ranked table as CSV: rank, trial, state, objective, each part's objective, the last
/// reported step and figure, then one column per searched key (empty where inactive).
pub fn table_csv(search: &Search, ranked: &[TrialResult]) -> Result<Vec<u8>> {
    let metric = search.study.metric;
    let mut w = csv::Writer::from_writer(Vec::new());
    let keys: Vec<&str> = search.space.params.iter().map(|p| p.key.as_str()).collect();
    let mut header = vec![
        "rank",
        "trial",
        "state",
        metric.name(),
        "parts",
        "last_step",
        "last_figure",
    ];
    header.extend(&keys);
    w.write_record(&header)?;
    for (i, r) in ranked.iter().enumerate() {
        let parts: Vec<String> = (r.parts.iter())
            .map(|p| metric.of(p).map_or("".into(), |v| format!("{v:.6}")))
            .collect();
        let mut row = vec![
            (i + 1).to_string(),
            r.trial.to_string(),
            format!("{:?}", r.state).to_lowercase(),
            r.value.map_or(String::new(), |v| format!("{v:.6}")),
            parts.join(" "),
            r.reports
                .last()
                .map_or(String::new(), |x| x.step.to_string()),
            r.reports
                .last()
                .map_or(String::new(), |x| format!("{:.6}", x.value)),
        ];
        for k in &keys {
            let v = r.params.iter().find(|(key, _)| key == k);
            row.push(v.map_or(String::new(), |(_, v)| show(v)));
        }
        w.write_record(&row)?;
    }
    Ok(w.into_inner()?)
}

/// The table for the terminal: the best `top` trials, one line each.
pub fn table_text(search: &Search, ranked: &[TrialResult], top: usize) -> String {
    let of = search.trial_count();
    let mut out = String::new();
    for (i, r) in ranked.iter().take(top).enumerate() {
        out += &format!("{:>3}. {}\n", i + 1, describe(r, search.study.metric, of));
    }
    out
}

/// The base config with the best trial's settings, writing its run under `<out>/best`.
pub fn best_config(search: &Search, best: &TrialResult) -> Result<Config> {
    let mut c = search.base.with_values(&best.params)?;
    c.checkpoint.save_dir = search.out.join("best");
    c.logging.run_name = Some("best".into());
    c.logging.tensorboard_dir = search.out.join("runs");
    c.logging.log_dir = search.out.join("logs");
    Ok(c)
}

/// Each searched key's share of the objective's variance across finished trials: the
/// correlation ratio η² of the objective grouped by the key's value (numbers in four
/// equal-count bins by rank; a trial where the key is inactive in a group of its own),
/// normalised to sum to 1. Chosen over fANOVA's forest for being exact, seedless and readable
/// ("which knob moved the result"); like fANOVA it ignores interactions' shares.
pub fn importance(search: &Search, results: &[TrialResult]) -> Vec<(String, f64)> {
    let done: Vec<&TrialResult> = results.iter().filter(|r| r.value.is_some()).collect();
    let values: Vec<f64> = done.iter().map(|r| r.value.unwrap_or(0.0)).collect();
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n.max(1.0);
    let total: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    let mut shares: Vec<(String, f64)> = (search.space.params.iter())
        .map(|p| {
            let group = groups(&p.key, &p.domain, &done);
            let mut sums: std::collections::BTreeMap<usize, (f64, f64)> = Default::default();
            for (g, v) in group.iter().zip(&values) {
                let e = sums.entry(*g).or_default();
                *e = (e.0 + v, e.1 + 1.0);
            }
            let between: f64 = sums.values().map(|(s, c)| c * (s / c - mean).powi(2)).sum();
            let eta = if total > 0.0 { between / total } else { 0.0 };
            (p.key.clone(), eta)
        })
        .collect();
    let sum: f64 = shares.iter().map(|s| s.1).sum();
    if sum > 0.0 {
        shares.iter_mut().for_each(|s| s.1 /= sum);
    }
    shares.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    shares
}

/// Each trial's group for `key`: 0 when inactive, else 1 + the choice's index or the value's
/// quartile by rank.
fn groups(key: &str, domain: &Domain, done: &[&TrialResult]) -> Vec<usize> {
    let value = |r: &TrialResult| {
        r.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    match domain {
        Domain::Choice(choices) => done
            .iter()
            .map(|r| {
                value(r)
                    .and_then(|v| choices.iter().position(|c| *c == v))
                    .map_or(0, |i| i + 1)
            })
            .collect(),
        _ => {
            let xs: Vec<Option<f64>> = done
                .iter()
                .map(|r| value(r).and_then(|v| v.as_f64()))
                .collect();
            let mut sorted: Vec<f64> = xs.iter().flatten().copied().collect();
            sorted.sort_by(f64::total_cmp);
            let m = sorted.len().max(1);
            xs.iter()
                .map(|x| match x {
                    None => 0,
                    Some(x) => {
                        let rank = sorted.partition_point(|s| s < x);
                        1 + (rank * 4 / m).min(3)
                    }
                })
                .collect()
        }
    }
}

/// The best configuration on the test rows: `best/test.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    pub trial: usize,
    pub params: super::Params,
    pub metrics: Metrics,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<ClassReport>,
}

/// Trains the best configuration as `train` would (`best/best.mpk`) and evaluates it on the
/// test rows, once: a `best/test.json` of the same trial is read back instead.
pub fn evaluate_best(
    search: &Search,
    best: &TrialResult,
    device: &Device,
    quiet: bool,
) -> Result<TestResult> {
    let config = best_config(search, best)?;
    let path = config.checkpoint.save_dir.join("test.json");
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(done) = serde_json::from_str::<TestResult>(&text)
        && done.trial == best.trial
    {
        return Ok(done);
    }
    let prepared = prepare_training(&config)?;
    let mut log = RunLog::open(&config.logging, "best", config.training.epochs, quiet)?;
    config.save_resolved(&[&config.checkpoint.save_dir])?;
    let run = Run {
        config: &config,
        run_name: "best",
        data: &prepared,
        device,
        warm_start: None,
    };
    let ck = train::train(&run, None, &mut log)?.best;
    let (ds, _) = prepare_evaluation(&config, &ck.preprocessor, None)?;
    let p = Scorer::from_checkpoint(&ck, device)?.evaluate(&ds)?;
    let result = TestResult {
        trial: best.trial,
        params: best.params.clone(),
        metrics: Metrics::compute(&p.anomaly, &ds.y, ck.threshold),
        classes: p.classes,
    };
    write_atomic(&path, serde_json::to_string_pretty(&result)?)?;
    Ok(result)
}

/// What `--aggregate` wrote.
pub struct Written {
    pub table: PathBuf,
    pub best_yaml: PathBuf,
    pub html: PathBuf,
}

/// Writes `trials.csv`, `best.yaml` and `report.html` (with its figures) into the search's
/// folder.
pub fn write(
    search: &Search,
    ranked: &[TrialResult],
    test: Option<&TestResult>,
) -> Result<Written> {
    let Some(best) = ranked.first().filter(|r| r.state == State::Finished) else {
        bail_input!(
            "{}: no trial has finished yet{}",
            search.out.display(),
            ranked
                .iter()
                .find_map(|r| r
                    .error
                    .as_ref()
                    .map(|e| format!(" (trial {}: {e})", r.trial)))
                .unwrap_or_default()
        );
    };
    let out = &search.out;
    let table = out.join("trials.csv");
    write_atomic(&table, table_csv(search, ranked)?)?;
    let best_yaml = out.join("best.yaml");
    let yaml = best_config(search, best)?.to_yaml();
    let settings: Vec<String> = (best.params.iter())
        .map(|(k, v)| format!("#   {k}: {}", show(v)))
        .collect();
    write_atomic(
        &best_yaml,
        format!(
            "# The best of {} trials (trial {}, validation {} {:.5}), found by `anomaly tune`:\n{}\n{yaml}",
            ranked.len(),
            best.trial,
            search.study.metric.name(),
            best.value.unwrap_or(f64::NAN),
            settings.join("\n")
        ),
    )?;
    let figures = figures(search, ranked)?;
    write_figures(out, &figures)?;
    let html_path = out.join("report.html");
    write_atomic(&html_path, page(search, ranked, test, &figures, &yaml))?;
    Ok(Written {
        table,
        best_yaml,
        html: html_path,
    })
}

fn figures(search: &Search, ranked: &[TrialResult]) -> Result<Vec<Figure>> {
    let metric = search.study.metric.name();
    let mut by_trial = ranked.to_vec();
    by_trial.sort_by_key(|r| r.trial);
    let mut best = f64::NEG_INFINITY;
    let mut points = Vec::new();
    for r in &by_trial {
        match (r.state, r.value, r.reports.last()) {
            (State::Finished, Some(v), _) => {
                points.push((r.trial as f64, v, 0));
                best = best.max(v);
                points.push((r.trial as f64, best, 2));
            }
            (State::Pruned, _, Some(last)) => points.push((r.trial as f64, last.value, 1)),
            _ => {}
        }
    }
    let mut out = vec![render(
        "objective",
        "The objective over trials",
        &Scatter {
            title: format!("Validation {metric} by trial"),
            x_desc: "trial".into(),
            y_desc: metric.into(),
            points,
            groups: vec![
                "finished".into(),
                "pruned (last report)".into(),
                "best so far".into(),
            ],
        },
    )?];
    for (i, p) in search.space.params.iter().enumerate() {
        let x_desc = axis(&p.key, &p.domain);
        let points = by_trial
            .iter()
            .filter_map(|r| {
                let v = r.value?;
                let (_, setting) = r.params.iter().find(|(k, _)| *k == p.key)?;
                Some((position(&p.domain, setting)?, v, 0))
            })
            .collect();
        out.push(render(
            &format!("param_{}", i + 1),
            &format!("{} against the objective", p.key),
            &Scatter {
                title: format!("{} (finished trials)", p.key),
                x_desc,
                y_desc: metric.into(),
                points,
                groups: vec!["trial".into()],
            },
        )?);
    }
    let shares = importance(search, ranked);
    out.push(render(
        "importance",
        "The parameters' importance",
        &Ranking {
            title: "Share of the objective's variance (η², normalised)".into(),
            x_desc: "importance".into(),
            bars: shares
                .iter()
                .map(|(k, v)| (k.clone(), *v, *v, *v))
                .collect(),
        },
    )?);
    Ok(out)
}

/// A parameter's axis label: a choice's values by index, a log-uniform key in log10.
fn axis(key: &str, domain: &Domain) -> String {
    match domain {
        Domain::Choice(c) => {
            let names: Vec<String> = (c.iter().enumerate())
                .map(|(i, v)| format!("{i}: {}", show(v)))
                .collect();
            format!("{key} ({})", names.join(", "))
        }
        Domain::LogUniform(..) => format!("log10 {key}"),
        _ => key.to_string(),
    }
}

/// Where a setting sits on its parameter's axis.
fn position(domain: &Domain, v: &serde_yaml::Value) -> Option<f64> {
    match domain {
        Domain::Choice(c) => c.iter().position(|x| x == v).map(|i| i as f64),
        Domain::LogUniform(..) => v.as_f64().map(f64::log10),
        _ => v.as_f64(),
    }
}

fn page(
    search: &Search,
    ranked: &[TrialResult],
    test: Option<&TestResult>,
    figures: &[Figure],
    best_yaml: &str,
) -> String {
    let s = &search.study;
    let count = |state: State| ranked.iter().filter(|r| r.state == state).count();
    let header = vec![
        (
            "trials".to_string(),
            format!("{} of {}", ranked.len(), search.trial_count()),
        ),
        (
            "finished / pruned / failed".into(),
            format!(
                "{} / {} / {}",
                count(State::Finished),
                count(State::Pruned),
                count(State::Failed)
            ),
        ),
        (
            "objective".into(),
            format!("validation {}", s.metric.name()),
        ),
        (
            "validation rows".into(),
            match s.cv {
                Some(k) => format!("{k} folds of the rows outside the test split"),
                None => "the config's validation split".into(),
            },
        ),
        (
            "sampler / pruner".into(),
            format!("{:?} / {:?}", s.sampler, s.pruner).to_lowercase(),
        ),
        ("seed".into(), s.seed.to_string()),
    ];
    let mut body = String::from("<h2>Best configuration on the test rows</h2>");
    body += &match test {
        Some(t) => html::key_values(&[
            ("trial".into(), t.trial.to_string()),
            ("accuracy".into(), format!("{:.4}", t.metrics.accuracy)),
            ("F1".into(), format!("{:.4}", t.metrics.f1)),
            (
                "ROC AUC".into(),
                t.metrics
                    .roc_auc
                    .map_or("n/a".into(), |v| format!("{v:.4}")),
            ),
            (
                "PR AUC".into(),
                t.metrics.pr_auc.map_or("n/a".into(), |v| format!("{v:.4}")),
            ),
            ("rows".into(), t.metrics.rows.to_string()),
        ]),
        None => "<p>Not evaluated yet (`anomaly tune --aggregate`).</p>".into(),
    };
    body += "<p><small>The test rows were not read during the search; only the best \
             configuration is evaluated on them, once.</small></p><h2>Trials, best first</h2>";
    body += &trials_table(search, ranked);
    body += "<h2>Figures</h2>";
    for f in figures {
        body += &html::figure(f);
    }
    html::page("Hyperparameter search", &header, &[], &body, best_yaml)
}

fn trials_table(search: &Search, ranked: &[TrialResult]) -> String {
    let metric = search.study.metric;
    let keys: Vec<&str> = search.space.params.iter().map(|p| p.key.as_str()).collect();
    let mut out = format!(
        "<table><thead><tr><th>rank</th><th>trial</th><th>state</th><th>{}</th>",
        metric.name()
    );
    for k in &keys {
        out += &format!("<th>{}</th>", html::escape(k));
    }
    out += "</tr></thead><tbody>";
    for (i, r) in ranked.iter().enumerate() {
        out += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            i + 1,
            r.trial,
            format!("{:?}", r.state).to_lowercase(),
            r.value.map_or("–".into(), |v| format!("{v:.5}"))
        );
        for k in &keys {
            let v = r.params.iter().find(|(key, _)| key == k);
            out += &format!(
                "<td>{}</td>",
                html::escape(&v.map_or("–".into(), |(_, v)| show(v)))
            );
        }
        out += "</tr>";
    }
    out + "</tbody></table>"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::space::Space;

    #[test]
    fn importance_goes_to_the_key_that_moves_the_objective() {
        let base = Config::default();
        let space = Space::parse(
            "model.dropout: {uniform: [0.0, 0.5]}\ntraining.batch_size: {choice: [32, 64]}\n",
            &base,
        )
        .unwrap();
        let search = Search::for_tests(space, base);
        // The objective follows dropout; batch size alternates independently of it.
        let results: Vec<TrialResult> = (0..16)
            .map(|i| TrialResult {
                trial: i + 1,
                params: vec![
                    ("model.dropout".into(), (i as f64 / 40.0).into()),
                    ("training.batch_size".into(), (32 << (i % 2)).into()),
                ],
                state: State::Finished,
                value: Some(0.9 - i as f64 / 100.0),
                parts: Vec::new(),
                reports: Vec::new(),
                error: None,
            })
            .collect();
        let shares = importance(&search, &results);
        assert_eq!(shares[0].0, "model.dropout");
        assert!(shares[0].1 > 0.9 && shares[1].1 < 0.1, "{shares:?}");
        assert!((shares.iter().map(|s| s.1).sum::<f64>() - 1.0).abs() < 1e-12);
        let ranked = ranked(results);
        assert_eq!(ranked[0].trial, 1);
    }
}
