//! `anomaly assess`: a checkpoint (or every fold of a cv run) evaluated on its splits, with
//! intervals, a baseline, figures, a self-contained HTML page, CSV/JSON numbers, and the same
//! figures and numbers in the run's TensorBoard folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::Device;
use plotters::chart::SeriesLabelPosition;
use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::config::Config;
use crate::data::Dataset;
use crate::data::read::sha256_file;
use crate::eval::Ranked;
use crate::eval::assess::Assessment;
use crate::eval::clusters::ClusterReport;
use crate::eval::ensemble::EnsembleReport;
use crate::eval::multiclass::ClassReport;
use crate::eval::summary::{FoldResult, METRIC_NAMES, Summary};
use crate::explain::{Explainer, Global};
use crate::log::{Scalars, run_dir, utc_timestamp};
use crate::report::explain;
use crate::report::figures::{
    Bars, Curves, Figure, HEIGHT, Heatmap, Scatter, Scores, Training, WIDTH, render,
};
use crate::report::html::{self, SetReport};
use crate::score::Scorer;
use crate::score::sets::{History, ScoredSet, checkpoint_sets, pooled, score_folds};

/// What `assess` wrote.
pub struct Written {
    pub dir: PathBuf,
    pub verdicts: Vec<(String, String)>,
}

#[derive(Serialize)]
struct MetricsFile<'a> {
    assessed: &'a str,
    data: String,
    data_sha256: String,
    tool_version: &'static str,
    generated: String,
    sets: Vec<(&'a str, &'a Assessment)>,
    /// Multiclass: the per-class report of each set.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    classes: Vec<(&'a str, &'a ClassReport)>,
    /// An ensemble: each set's members side by side.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ensemble: Vec<(&'a str, &'a EnsembleReport)>,
    /// k-means and DBSCAN: each set's clustering report.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    clusters: Vec<(&'a str, &'a ClusterReport)>,
    folds: Option<&'a Summary>,
}

/// Assesses `ck` on the train, validation and test rows of its run.
pub fn assess_checkpoint(
    path: &Path,
    ck: &Checkpoint,
    out: &Path,
    resamples: usize,
    device: &Device,
) -> Result<Written> {
    let scorer = Scorer::from_checkpoint(ck, device)?;
    let (sets, test_rows) = checkpoint_sets(ck, &scorer, resamples)?;
    let test = sets
        .iter()
        .find(|s| s.name == "test")
        .expect("evaluation_sets returns a test set");
    let mut figures = common_figures(&sets, test)?;
    if let Some(c) = &test.clusters {
        figures.extend(cluster_figures(c, &test.name)?);
    }
    figures.push(render(
        "training_curves",
        "Training curves",
        &Training {
            title: "Loss and learning rate per epoch".into(),
            history: ck.history.clone(),
            best_epoch: ck.weights_epoch,
        },
    )?);
    let importance = importance_section(ck, &scorer, &test_rows, &mut figures)?;
    let body = format!(
        "<h2>Metrics</h2>{}{}<h2>Figures</h2>{}{importance}",
        html::metrics_table(&set_reports(&sets)),
        class_tables(&sets),
        figures
            .iter()
            .filter(|f| f.name != "feature_importance")
            .map(html::figure)
            .collect::<String>()
    );
    write_report(
        &path.display().to_string(),
        &ck.config,
        &ck.run_name,
        ck.weights_epoch,
        &sets,
        &figures,
        &body,
        None,
        out,
    )
}

/// The report's permutation-importance section on the test rows (its figure added to
/// `figures`), or a line saying why there is none.
fn importance_section(
    ck: &Checkpoint,
    scorer: &Scorer,
    test: &Dataset,
    figures: &mut Vec<Figure>,
) -> Result<String> {
    const REPEATS: usize = 5;
    let Ok(explainer) = Explainer::new(scorer) else {
        return Ok(
            "<h2>Feature importance</h2><p>This checkpoint was written before \
                   explanations (no profile of its training rows); train it again for this \
                   section.</p>"
                .into(),
        );
    };
    let global = Global {
        repeats: REPEATS,
        max_rows: 5000,
        seed: ck.config.training.seed,
    };
    let (measure, ranked, rows) = explainer.importance(test, &global)?;
    let figure = explain::figure(measure, &ranked)?;
    let section = explain::html_section(measure, &ranked, &figure, rows, REPEATS);
    figures.push(figure);
    Ok(section)
}

/// Assesses every fold checkpoint of the cv run in `config.checkpoint.save_dir`, each on its
/// own validation rows (as recorded in folds.json).
pub fn assess_folds(
    config: &Config,
    out: &Path,
    resamples: usize,
    device: &Device,
) -> Result<Written> {
    let (plan, folds) = score_folds(config, resamples, device)?;
    let (sets, histories): (Vec<ScoredSet>, Vec<_>) = folds.into_iter().unzip();
    let pooled = pooled(&sets, resamples, config.training.seed);
    let summary = Summary::new(
        sets.iter()
            .zip(&histories)
            .map(|(s, (k, _, best))| FoldResult {
                fold: *k,
                best_epoch: *best,
                metrics: s.assessment.metrics.clone(),
                classes: s.classes.clone(),
            })
            .collect(),
    );
    let mut figures = common_figures(&sets, &pooled)?;
    figures.extend(fold_figures(&summary, &histories)?);
    let aggregate: Vec<(String, String)> = summary
        .spread
        .iter()
        .map(|(name, s)| {
            let v = s.map_or("n/a".into(), |s| {
                format!(
                    "mean {:.4} ± {:.4} (min {:.4}, max {:.4})",
                    s.mean, s.std, s.min, s.max
                )
            });
            (name.clone(), v)
        })
        .collect();
    let mut all = sets;
    all.push(pooled);
    let body = format!(
        "<h2>Across folds</h2>{}<h2>Metrics</h2>{}{}<h2>Figures</h2>{}",
        html::key_values(&aggregate),
        html::metrics_table(&set_reports(&all)),
        class_tables(&all),
        figures.iter().map(html::figure).collect::<String>()
    );
    let name = format!(
        "{} ({} folds)",
        config.checkpoint.save_dir.display(),
        plan.n_splits
    );
    write_report(
        &name,
        config,
        &plan.run_name,
        0,
        &all,
        &figures,
        &body,
        Some(&summary),
        out,
    )
}

/// Each fold's metrics side by side, and each fold's training curves.
fn fold_figures(summary: &Summary, histories: &[History]) -> Result<Vec<Figure>> {
    let mut figures = vec![];
    figures.push(render(
        "fold_comparison",
        "Metrics per fold",
        &Bars {
            title: "Metrics per fold (validation part)".into(),
            y_label: "value".into(),
            groups: METRIC_NAMES.iter().map(|s| s.to_string()).collect(),
            series: summary
                .folds
                .iter()
                .map(|f| {
                    let m = &f.metrics;
                    let v = [
                        m.accuracy,
                        m.precision,
                        m.recall,
                        m.f1,
                        m.roc_auc.unwrap_or(0.0),
                        m.pr_auc.unwrap_or(0.0),
                    ];
                    (format!("fold {}", f.fold), v.to_vec())
                })
                .collect(),
            y_max: Some(1.1),
            integer_values: false,
        },
    )?);
    for (k, history, best) in histories {
        figures.push(render(
            &format!("training_curves_fold_{k}"),
            &format!("Training curves, fold {k}"),
            &Training {
                title: format!("Fold {k}: loss and learning rate per epoch"),
                history: history.clone(),
                best_epoch: *best,
            },
        )?);
    }
    Ok(figures)
}

/// A clustering family's map of the rows (first two principal components, by cluster) and its
/// clusters by class.
fn cluster_figures(c: &ClusterReport, set: &str) -> Result<Vec<Figure>> {
    let name =
        |cluster: Option<u32>| cluster.map_or("noise".to_string(), |k| format!("cluster {k}"));
    let mut groups: Vec<Option<u32>> = c.map.iter().map(|p| p.cluster).collect();
    groups.sort_unstable_by_key(|g| g.map_or(u32::MAX, |k| k));
    groups.dedup();
    let points = c
        .map
        .iter()
        .map(|p| {
            let g = groups.iter().position(|&g| g == p.cluster).expect("listed");
            (p.x, p.y, g)
        })
        .collect();
    let counts = c
        .contingency
        .iter()
        .map(|r| vec![r.normal, r.anomalous])
        .collect();
    Ok(vec![
        render(
            "clusters_map",
            &format!("Clusters ({set}), first two principal components"),
            &Scatter {
                title: format!("{} rows of {set} by cluster", c.map.len()),
                x_desc: "first principal component".into(),
                y_desc: "second principal component".into(),
                points,
                groups: groups.into_iter().map(name).collect(),
            },
        )?,
        render(
            "clusters_by_class",
            &format!("Clusters by class ({set})"),
            &Heatmap {
                title: format!("Rows of each cluster by class, {set}"),
                x_desc: "class".into(),
                y_desc: "cluster".into(),
                rows: c.contingency.iter().map(|r| r.cluster.clone()).collect(),
                columns: vec!["normal".into(), "anomalous".into()],
                counts,
                normalized: false,
            },
        )?,
    ])
}

/// Multiclass: a per-class table and confusion matrix for each set; an ensemble: its members
/// side by side; a clustering family: its clustering report.
fn class_tables(sets: &[ScoredSet]) -> String {
    let ensembles = sets
        .iter()
        .filter_map(|s| Some(html::ensemble_table(&s.name, s.ensemble.as_ref()?)));
    let clusters = sets
        .iter()
        .filter_map(|s| Some(html::cluster_table(&s.name, s.clusters.as_ref()?)));
    sets.iter()
        .filter_map(|s| Some(html::class_table(&s.name, s.classes.as_ref()?)))
        .chain(ensembles)
        .chain(clusters)
        .collect()
}

fn set_reports(sets: &[ScoredSet]) -> Vec<SetReport<'_>> {
    sets.iter()
        .map(|s| SetReport {
            name: &s.name,
            assessment: &s.assessment,
        })
        .collect()
}

/// Class balance, ROC and PR curves of every set; confusion matrices, score distributions and
/// the threshold sweep of the `main` set.
/// The figures every assessment draws: class balance, the main set's confusion matrices,
/// ROC and PR curves of every set, the main set's score distribution and threshold sweep.
fn common_figures(sets: &[ScoredSet], main: &ScoredSet) -> Result<Vec<Figure>> {
    let mut figures = vec![class_balance(sets)?];
    figures.extend(confusion_figures(main)?);
    figures.extend(ranking_curves(sets)?);
    figures.extend(score_figures(main)?);
    Ok(figures)
}

fn class_balance(sets: &[ScoredSet]) -> Result<Figure> {
    let count = |s: &ScoredSet, class: f32| s.y.iter().filter(|&&v| v == class).count() as f64;
    render(
        "class_balance",
        "Class balance",
        &Bars {
            title: "Rows per class".into(),
            y_label: "rows".into(),
            groups: sets.iter().map(|s| s.name.clone()).collect(),
            series: vec![
                (
                    "normal".into(),
                    sets.iter().map(|s| count(s, 0.0)).collect(),
                ),
                (
                    "anomalous".into(),
                    sets.iter().map(|s| count(s, 1.0)).collect(),
                ),
            ],
            y_max: None,
            integer_values: true,
        },
    )
}

fn confusion_figures(main: &ScoredSet) -> Result<Vec<Figure>> {
    let c = main.assessment.metrics.confusion;
    Ok(vec![
        render(
            "confusion_matrix",
            &format!("Confusion matrix ({}), counts", main.name),
            &Heatmap::confusion(
                format!("Confusion matrix, {} (counts)", main.name),
                &c,
                false,
            ),
        )?,
        render(
            "confusion_matrix_normalized",
            &format!("Confusion matrix ({}), row-normalised", main.name),
            &Heatmap::confusion(
                format!(
                    "Confusion matrix, {} (share of each actual class)",
                    main.name
                ),
                &c,
                true,
            ),
        )?,
    ])
}

fn ranking_curves(sets: &[ScoredSet]) -> Result<Vec<Figure>> {
    let auc = |v: Option<f64>| v.map_or("n/a".into(), |x| format!("{x:.3}"));
    let roc: Vec<(String, Vec<(f64, f64)>)> = sets
        .iter()
        .map(|s| {
            (
                format!("{} (AUC {})", s.name, auc(s.assessment.metrics.roc_auc)),
                Ranked::new(&s.probs, &s.y).roc_curve(),
            )
        })
        .collect();
    let pr: Vec<(String, Vec<(f64, f64)>)> = sets
        .iter()
        .map(|s| {
            (
                format!("{} (AP {})", s.name, auc(s.assessment.metrics.pr_auc)),
                Ranked::new(&s.probs, &s.y).pr_curve(),
            )
        })
        .collect();
    Ok(vec![
        render(
            "roc_curve",
            "ROC curves",
            &Curves {
                title: "ROC curve".into(),
                x_label: "false positive rate".into(),
                y_label: "true positive rate".into(),
                series: roc,
                diagonal: true,
                marker: None,
                legend: SeriesLabelPosition::LowerRight,
            },
        )?,
        render(
            "pr_curve",
            "Precision-recall curves",
            &Curves {
                title: "Precision-recall curve".into(),
                x_label: "recall".into(),
                y_label: "precision".into(),
                series: pr,
                diagonal: false,
                marker: None,
                legend: SeriesLabelPosition::LowerLeft,
            },
        )?,
    ])
}

fn score_figures(main: &ScoredSet) -> Result<Vec<Figure>> {
    let sweep = Ranked::new(&main.probs, &main.y).sweep();
    let line = |k: usize| -> Vec<(f64, f64)> {
        sweep
            .iter()
            .map(|p| (p.0, [p.1, p.2, p.3][k]))
            .rev()
            .collect()
    };
    let threshold = main.assessment.metrics.threshold;
    Ok(vec![
        render(
            "score_distribution",
            &format!("Score distributions ({})", main.name),
            &Scores {
                title: format!("Anomaly probability by class, {}", main.name),
                normal: main
                    .probs
                    .iter()
                    .zip(&main.y)
                    .filter(|(_, y)| **y != 1.0)
                    .map(|(p, _)| *p)
                    .collect(),
                anomalous: main
                    .probs
                    .iter()
                    .zip(&main.y)
                    .filter(|(_, y)| **y == 1.0)
                    .map(|(p, _)| *p)
                    .collect(),
                threshold,
            },
        )?,
        render(
            "threshold_sweep",
            &format!("Threshold sweep ({})", main.name),
            &Curves {
                title: format!("Precision, recall and F1 by threshold, {}", main.name),
                x_label: "threshold".into(),
                y_label: "value".into(),
                series: vec![
                    ("precision".into(), line(0)),
                    ("recall".into(), line(1)),
                    ("F1".into(), line(2)),
                ],
                diagonal: false,
                marker: Some((format!("threshold {threshold:.3}"), threshold as f64)),
                legend: SeriesLabelPosition::LowerLeft,
            },
        )?,
    ])
}

#[allow(clippy::too_many_arguments)]
fn write_report(
    assessed: &str,
    config: &Config,
    run_name: &str,
    step: usize,
    sets: &[ScoredSet],
    figures: &[Figure],
    body: &str,
    folds: Option<&Summary>,
    out: &Path,
) -> Result<Written> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let data_sha = sha256_file(&config.data.path)?;
    let generated = utc_timestamp();
    write_figures(out, figures)?;
    write_metrics_csv(out, sets)?;
    let metrics = MetricsFile {
        assessed,
        data: config.data.path.display().to_string(),
        data_sha256: data_sha.clone(),
        tool_version: env!("CARGO_PKG_VERSION"),
        generated: generated.clone(),
        sets: sets
            .iter()
            .map(|s| (s.name.as_str(), &s.assessment))
            .collect(),
        classes: sets
            .iter()
            .filter_map(|s| Some((s.name.as_str(), s.classes.as_ref()?)))
            .collect(),
        ensemble: sets
            .iter()
            .filter_map(|s| Some((s.name.as_str(), s.ensemble.as_ref()?)))
            .collect(),
        clusters: sets
            .iter()
            .filter_map(|s| Some((s.name.as_str(), s.clusters.as_ref()?)))
            .collect(),
        folds,
    };
    std::fs::write(
        out.join("metrics.json"),
        serde_json::to_string_pretty(&metrics)? + "\n",
    )?;

    let header = vec![
        ("assessed".to_string(), assessed.to_string()),
        (
            "data".into(),
            format!("{} (sha256 {data_sha})", config.data.path.display()),
        ),
        ("run".into(), run_name.to_string()),
        (
            "tool".into(),
            format!("anomaly {}", env!("CARGO_PKG_VERSION")),
        ),
        ("generated".into(), generated),
        (
            "intervals".into(),
            format!(
                "95% percentile bootstrap, {} resamples",
                sets[0].assessment.intervals.resamples
            ),
        ),
    ];
    let verdicts: Vec<(String, Assessment)> = sets
        .iter()
        .map(|s| (s.name.clone(), s.assessment.clone()))
        .collect();
    let page = html::page(
        &format!("anomaly assessment: {assessed}"),
        &header,
        &verdicts,
        body,
        &config.to_yaml(),
    );
    std::fs::write(out.join("report.html"), page)
        .with_context(|| format!("writing {}", out.join("report.html").display()))?;

    write_scalars(config, run_name, step, sets, figures)?;
    Ok(Written {
        dir: out.to_path_buf(),
        verdicts: sets
            .iter()
            .map(|s| (s.name.clone(), s.assessment.verdict.clone()))
            .collect(),
    })
}

/// Each figure as SVG and PNG.
pub fn write_figures(out: &Path, figures: &[Figure]) -> Result<()> {
    for f in figures {
        let svg = out.join(format!("{}.svg", f.name));
        std::fs::write(&svg, &f.svg).with_context(|| format!("writing {}", svg.display()))?;
        let png = out.join(format!("{}.png", f.name));
        image::save_buffer(&png, &f.rgb, WIDTH, HEIGHT, image::ColorType::Rgb8)
            .with_context(|| format!("writing {}", png.display()))?;
    }
    Ok(())
}

/// `metrics.csv`: a row per set and metric, with its interval and baseline.
fn write_metrics_csv(out: &Path, sets: &[ScoredSet]) -> Result<()> {
    let mut csv = csv::Writer::from_path(out.join("metrics.csv"))?;
    csv.write_record(["set", "metric", "value", "ci_low", "ci_high", "baseline"])?;
    for s in sets {
        let (m, i, b) = (
            &s.assessment.metrics,
            &s.assessment.intervals,
            &s.assessment.baseline,
        );
        let rows = [
            (
                "accuracy",
                Some(m.accuracy),
                Some(i.accuracy),
                Some(b.accuracy),
            ),
            ("precision", Some(m.precision), Some(i.precision), None),
            ("recall", Some(m.recall), Some(i.recall), None),
            ("f1", Some(m.f1), Some(i.f1), None),
            ("roc_auc", m.roc_auc, i.roc_auc, Some(b.roc_auc)),
            ("pr_auc", m.pr_auc, i.pr_auc, None),
        ];
        let cell = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
        for (name, v, ci, base) in rows {
            csv.write_record([
                s.name.clone(),
                name.into(),
                cell(v),
                cell(ci.map(|c| c.low)),
                cell(ci.map(|c| c.high)),
                cell(base),
            ])?;
        }
    }
    csv.flush()?;
    Ok(())
}

/// The sets' metrics and the figures into the run's TensorBoard folder, at `step`.
fn write_scalars(
    config: &Config,
    run_name: &str,
    step: usize,
    sets: &[ScoredSet],
    figures: &[Figure],
) -> Result<()> {
    let mut tb = Scalars::open(&run_dir(&config.logging, run_name))?;
    for s in sets {
        let m = &s.assessment.metrics;
        let tag = |name: &str| format!("Assess/{}/{name}", s.name.replace(' ', "_"));
        tb.add(&tag("Accuracy"), m.accuracy, step);
        tb.add(&tag("Precision"), m.precision, step);
        tb.add(&tag("Recall"), m.recall, step);
        tb.add(&tag("F1_Score"), m.f1, step);
        if let Some(a) = m.roc_auc {
            tb.add(&tag("AUC"), a, step);
        }
    }
    for f in figures {
        tb.image(&format!("Assess/{}", f.name), &f.rgb, WIDTH, HEIGHT, step);
    }
    Ok(())
}
