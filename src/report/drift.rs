//! What `drift` shows: the ranked table on stdout, and with `--out` a folder holding
//! `drift.json`, a self-contained `report.html` and a chart per drifted column (its training
//! and new shares, bin by bin).

use std::path::Path;

use anyhow::{Context, Result};

use crate::data::write_atomic;
use crate::eval::drift::{ColumnDrift, DriftReport, Level, MODERATE, SIGNIFICANT};
use crate::report::figures::{Bars, Figure, render};
use crate::report::html;

/// The ranked table: every column, then the score and the alarm rates.
pub fn table(r: &DriftReport) -> String {
    let mut out = format!(
        "{:<32} {:<12} {:>8} {:<12} {:>10} {:>10} {:>12}\n",
        "column", "kind", "PSI", "drift", "test", "statistic", "p (Bonf.)"
    );
    let line = |c: &ColumnDrift| {
        format!(
            "{:<32} {:<12} {:>8.4} {:<12} {:>10} {:>10.4} {:>12}\n",
            truncate(&c.column, 32),
            c.kind,
            c.psi,
            c.level.name(),
            c.test,
            c.statistic,
            p_value(c.p_adjusted)
        )
    };
    for c in &r.columns {
        out += &line(c);
    }
    if let Some(s) = &r.score {
        out += &line(s);
    }
    out + &format!(
        "alarm rate {:.4} on {} new rows (the threshold flags {:.4} of the training rows)",
        r.alarm_rate, r.rows, r.expected_alarm_rate
    )
}

/// One line for the top of the output.
pub fn verdict(r: &DriftReport) -> String {
    let tested = r.columns.len() + r.score.is_some() as usize;
    match r.level {
        Level::None => format!(
            "no drift: all {tested} columns (and the score) within PSI {MODERATE} of training"
        ),
        level => format!(
            "{} drift: {} of {tested} at PSI {MODERATE} or above ({} above {SIGNIFICANT})",
            level.name(),
            r.drifted,
            r.columns
                .iter()
                .chain(r.score.iter())
                .filter(|c| c.level == Level::Significant)
                .count()
        ),
    }
}

/// `drift.json`, `report.html` and a chart per drifted column, in `out`.
pub fn write(out: &Path, r: &DriftReport, header: &[(String, String)], config: &str) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json = serde_json::to_string_pretty(r)? + "\n";
    write_atomic(&out.join("drift.json"), json.as_bytes())?;
    let drifted: Vec<&ColumnDrift> = r
        .columns
        .iter()
        .chain(r.score.iter())
        .filter(|c| c.level > Level::None)
        .collect();
    let figures = drifted
        .iter()
        .map(|c| chart(c))
        .collect::<Result<Vec<_>>>()?;
    for f in &figures {
        write_atomic(&out.join(format!("{}.svg", f.name)), f.svg.as_bytes())?;
    }
    let body = format!(
        "<p class=\"{}\"><b>{}</b></p><h2>Columns</h2>{}<h2>Drifted columns</h2>{}",
        if r.level == Level::None { "ok" } else { "warn" },
        html::escape(&verdict(r)),
        columns_html(r),
        figures.iter().map(html::figure).collect::<String>()
    );
    let page = html::page("Drift report", header, &[], &body, config);
    write_atomic(&out.join("report.html"), page.as_bytes())
}

fn columns_html(r: &DriftReport) -> String {
    let mut out = String::from(
        "<table><thead><tr><th>column</th><th>kind</th><th>PSI</th><th>drift</th>\
         <th>test</th><th>statistic</th><th>p</th><th>p (Bonferroni)</th><th>unseen</th>\
         </tr></thead><tbody>",
    );
    for c in r.columns.iter().chain(r.score.iter()) {
        out += &format!(
            "<tr><th>{}</th><td>{}</td><td>{:.4}</td><td>{}</td><td>{}</td><td>{:.4}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            html::escape(&c.column),
            c.kind,
            c.psi,
            c.level.name(),
            c.test,
            c.statistic,
            p_value(c.p_value),
            p_value(c.p_adjusted),
            c.unseen
        );
    }
    out + "</tbody></table>"
}

/// Training against new shares, bin by bin.
fn chart(c: &ColumnDrift) -> Result<Figure> {
    let name: String = c
        .column
        .chars()
        .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
        .collect();
    let bars = Bars {
        title: format!("{} (PSI {:.3})", c.column, c.psi),
        y_label: "share of rows".into(),
        groups: c.bins.iter().map(|b| truncate(&b.label, 18)).collect(),
        series: vec![
            (
                "training".into(),
                c.bins.iter().map(|b| b.expected).collect(),
            ),
            ("new".into(), c.bins.iter().map(|b| b.actual).collect()),
        ],
        y_max: None,
        integer_values: false,
    };
    render(&format!("drift_{name}"), &c.column, &bars)
}

/// Four decimals, or scientific notation below 0.0001.
fn p_value(p: f64) -> String {
    if p >= 1e-4 || p == 0.0 {
        format!("{p:.4}")
    } else {
        format!("{p:.1e}")
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}
