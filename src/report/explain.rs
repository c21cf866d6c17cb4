//! Explanations shown: the importance ranking as a table, a figure, CSV and an HTML section,
//! and per-row reasons as long-format CSV (one row per reason).

use anyhow::Result;

use super::figures::{Figure, Ranking, render};
use super::html::escape;
use crate::explain::{Flagged, Importance, Measure};

/// Bars drawn in the figure.
const FIGURE_BARS: usize = 20;

/// The ranking as text: rank, column, importance and its 95% interval.
pub fn table(measure: Measure, ranked: &[Importance]) -> String {
    let width = ranked
        .iter()
        .map(|r| r.feature.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let f1 = ranked.iter().any(|r| r.macro_f1_drop.is_some());
    let mut out = format!(
        "{:>4}  {:<width$}  {:>10}  {:<21}{}\n",
        "rank",
        "feature",
        "importance",
        "95% interval",
        if f1 { "  macro F1 drop" } else { "" }
    );
    for (i, r) in ranked.iter().enumerate() {
        out += &format!(
            "{:>4}  {:<width$}  {:>10.4}  [{:>8.4}, {:>8.4}]",
            i + 1,
            r.feature,
            r.importance,
            r.low,
            r.high
        );
        if let Some([m, l, h]) = r.macro_f1_drop {
            out += &format!("  {m:.4} [{l:.4}, {h:.4}]");
        }
        out.push('\n');
    }
    out + &format!("importance: {}", measure.describe())
}

pub fn figure(measure: Measure, ranked: &[Importance]) -> Result<Figure> {
    render(
        "feature_importance",
        "Permutation importance",
        &Ranking {
            title: format!(
                "Permutation importance (top {})",
                ranked.len().min(FIGURE_BARS)
            ),
            x_desc: measure.describe().into(),
            bars: ranked
                .iter()
                .take(FIGURE_BARS)
                .map(|r| (r.feature.clone(), r.importance, r.low, r.high))
                .collect(),
        },
    )
}

/// `feature,importance,ci_low,ci_high[,macro_f1_drop,…]`, most important first.
pub fn importance_csv(ranked: &[Importance]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let f1 = ranked.iter().any(|r| r.macro_f1_drop.is_some());
    let mut header = vec!["feature", "importance", "ci_low", "ci_high"];
    if f1 {
        header.extend(["macro_f1_drop", "macro_f1_ci_low", "macro_f1_ci_high"]);
    }
    w.write_record(&header)?;
    for r in ranked {
        let mut row = vec![
            r.feature.clone(),
            r.importance.to_string(),
            r.low.to_string(),
            r.high.to_string(),
        ];
        row.extend(r.macro_f1_drop.iter().flatten().map(f64::to_string));
        w.write_record(&row)?;
    }
    Ok(w.into_inner()?)
}

/// `row,score,rank,feature,value,typical,percentile,share,effect`: one line per reason.
pub fn reasons_csv(flagged: &[Flagged]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "row",
        "score",
        "rank",
        "feature",
        "value",
        "typical",
        "percentile",
        "share",
        "effect",
    ])?;
    let opt = |v: Option<f32>| v.map_or(String::new(), |v| v.to_string());
    for f in flagged {
        for (k, r) in f.reasons.iter().enumerate() {
            w.write_record([
                f.row.to_string(),
                f.score.to_string(),
                (k + 1).to_string(),
                r.feature.clone(),
                r.value.clone(),
                r.typical.clone(),
                opt(r.percentile),
                opt(r.share),
                r.effect.to_string(),
            ])?;
        }
    }
    Ok(w.into_inner()?)
}

/// The `assess` report's section: the figure and the ranked table.
pub fn html_section(
    measure: Measure,
    ranked: &[Importance],
    figure: &Figure,
    rows: usize,
    repeats: usize,
) -> String {
    let mut out = format!(
        "<h2>Feature importance</h2><p>Permutation importance on {rows} test rows, {repeats} \
         repeats: the {}, with its 95% interval.</p>",
        escape(measure.describe())
    );
    out += &super::html::figure(figure);
    out += "<table><thead><tr><th>rank</th><th>feature</th><th>importance</th>\
            <th>95% interval</th></tr></thead><tbody>";
    for (i, r) in ranked.iter().enumerate() {
        out += &format!(
            "<tr><td>{}</td><td>{}</td><td>{:.4}</td><td>[{:.4}, {:.4}]</td></tr>",
            i + 1,
            escape(&r.feature),
            r.importance,
            r.low,
            r.high
        );
    }
    out + "</tbody></table>"
}
