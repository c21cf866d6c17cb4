//! The self-contained `report.html`: inline SVG figures and tables, no scripts, no external
//! resources, so it opens anywhere (an air-gapped SOC laptop included).

use crate::eval::assess::{Assessment, Interval};
use crate::eval::clusters::ClusterReport;
use crate::eval::ensemble::EnsembleReport;
use crate::eval::multiclass::ClassReport;
use crate::report::figures::Figure;

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One evaluated set of rows (a split, or a fold's validation part).
pub struct SetReport<'a> {
    pub name: &'a str,
    pub assessment: &'a Assessment,
}

fn ci(i: Option<Interval>) -> String {
    i.map_or("–".into(), |i| format!("{:.4} – {:.4}", i.low, i.high))
}

fn num(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |x| format!("{x:.4}"))
}

/// The metrics table: one row per set, each metric with its 95% interval.
pub fn metrics_table(sets: &[SetReport]) -> String {
    let mut out = String::from(
        "<table><thead><tr><th>set</th><th>rows</th><th>anomalous</th><th>threshold</th>\
         <th>accuracy</th><th>baseline accuracy</th><th>precision</th><th>recall</th><th>F1</th>\
         <th>ROC AUC</th><th>PR AUC</th></tr></thead><tbody>",
    );
    for s in sets {
        let (m, i) = (&s.assessment.metrics, &s.assessment.intervals);
        let cell = |v: Option<f64>, c: Option<Interval>| {
            format!("<td>{}<br><small>{}</small></td>", num(v), ci(c))
        };
        out += &format!(
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{:.4}</td>{}<td>{:.4}<br><small>always {}</small></td>{}{}{}{}{}</tr>",
            escape(s.name),
            m.rows,
            m.positives,
            m.threshold,
            cell(Some(m.accuracy), Some(i.accuracy)),
            s.assessment.baseline.accuracy,
            escape(&s.assessment.baseline.majority_class),
            cell(Some(m.precision), Some(i.precision)),
            cell(Some(m.recall), Some(i.recall)),
            cell(Some(m.f1), Some(i.f1)),
            cell(m.roc_auc, i.roc_auc),
            cell(m.pr_auc, i.pr_auc),
        );
    }
    out + "</tbody></table><p><small>Under each value: its 95% bootstrap interval.</small></p>"
}

/// An ensemble: its members and itself side by side, the members' agreement and the severity
/// grades against the labels.
pub fn ensemble_table(set: &str, r: &EnsembleReport) -> String {
    let mut out = format!(
        "<h3>{} by detector</h3><table><thead><tr><th>detector</th><th>ROC AUC</th>\
         <th>average precision</th><th>F1 at its threshold</th><th>flagged</th></tr></thead><tbody>",
        escape(set)
    );
    for d in &r.detectors {
        out += &format!(
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td></tr>",
            escape(&d.name),
            num(d.roc_auc),
            num(d.average_precision),
            d.f1,
            d.flagged_share
        );
    }
    out += "</tbody></table><table><thead><tr><th>votes alike</th>";
    let members = &r.detectors[..r.agreement.len()];
    for d in members {
        out += &format!("<th>{}</th>", escape(&d.name));
    }
    out += "</tr></thead><tbody>";
    for (d, row) in members.iter().zip(&r.agreement) {
        out += &format!("<tr><th>{}</th>", escape(&d.name));
        for v in row {
            out += &format!("<td>{v:.4}</td>");
        }
        out += "</tr>";
    }
    out += "</tbody></table><table><thead><tr><th>severity</th><th>rows</th><th>attacks</th>\
            <th>attack share</th></tr></thead><tbody>";
    for s in &r.severity {
        out += &format!(
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.severity.as_str(),
            s.rows,
            s.attacks,
            num(s.attack_share)
        );
    }
    out + "</tbody></table>"
}

/// k-means and DBSCAN: the clustering scores, then each cluster's rows by class.
pub fn cluster_table(set: &str, r: &ClusterReport) -> String {
    let mut rows = vec![
        ("clusters".to_string(), r.clusters.to_string()),
        (
            "silhouette".into(),
            format!("{} (on {} rows)", num(r.silhouette), r.silhouette_rows),
        ),
        ("Calinski-Harabasz".into(), num(r.calinski_harabasz)),
        ("Davies-Bouldin".into(), num(r.davies_bouldin)),
    ];
    if let Some(i) = r.inertia {
        rows.push(("inertia".into(), format!("{i:.4}")));
    }
    if let Some(n) = r.noise_share {
        rows.push(("noise share".into(), format!("{n:.4}")));
    }
    if let Some(v) = &r.majority_view {
        rows.push((
            "each cluster voting its training majority".into(),
            format!(
                "accuracy {:.4}, precision {:.4}, recall {:.4}, F1 {:.4}",
                v.accuracy, v.precision, v.recall, v.f1
            ),
        ));
    }
    let mut out = format!("<h3>{} clusters</h3>{}", escape(set), key_values(&rows));
    out += "<table><thead><tr><th>cluster</th><th>normal</th><th>anomalous</th>\
            <th>training majority</th></tr></thead><tbody>";
    for c in &r.contingency {
        out += &format!(
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.cluster),
            c.normal,
            c.anomalous,
            c.training_majority.unwrap_or("")
        );
    }
    out + "</tbody></table>"
}

/// Multiclass: per-class figures with the averages, then the confusion matrix.
pub fn class_table(set: &str, r: &ClassReport) -> String {
    let mut out = format!(
        "<h3>{} per class ({} rows of known classes, accuracy {:.4})</h3><table><thead><tr>\
         <th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th><th>ROC AUC (one vs rest)</th>\
         </tr></thead><tbody>",
        escape(set),
        r.rows,
        r.accuracy
    );
    for m in &r.per_class {
        out += &format!(
            "<tr><th>{}</th><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td><td>{}</td></tr>",
            escape(&m.class),
            m.precision,
            m.recall,
            m.f1,
            m.support,
            num(m.roc_auc)
        );
    }
    for (name, a) in [
        ("macro avg", &r.macro_avg),
        ("weighted avg", &r.weighted_avg),
    ] {
        out += &format!(
            "<tr><th>{name}</th><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td><td>{}</td></tr>",
            a.precision,
            a.recall,
            a.f1,
            r.rows,
            num(a.roc_auc)
        );
    }
    out += "</tbody></table><table><thead><tr><th>actual \\ predicted</th>";
    for c in &r.classes {
        out += &format!("<th>{}</th>", escape(c));
    }
    out += "</tr></thead><tbody>";
    for (c, row) in r.classes.iter().zip(&r.confusion) {
        out += &format!("<tr><th>{}</th>", escape(c));
        for n in row {
            out += &format!("<td>{n}</td>");
        }
        out += "</tr>";
    }
    out += "</tbody></table>";
    for u in &r.unseen {
        out += &format!(
            "<p>{} rows of class <b>{}</b>, not seen in training: {} flagged anomalous.</p>",
            u.rows,
            escape(&u.class),
            u.flagged_anomalous
        );
    }
    out
}

/// A key/value table (the report's header, aggregated fold figures).
pub fn key_values(rows: &[(String, String)]) -> String {
    let mut out = String::from("<table class=\"kv\"><tbody>");
    for (k, v) in rows {
        out += &format!("<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
    }
    out + "</tbody></table>"
}

pub fn figure(f: &Figure) -> String {
    format!(
        "<figure id=\"{}\">{}<figcaption>{} — <a href=\"{}.svg\">{}.svg</a>, <a href=\"{}.png\">{}.png</a></figcaption></figure>",
        escape(&f.name),
        f.svg,
        escape(&f.title),
        f.name,
        f.name,
        f.name,
        f.name
    )
}

/// The whole page. `verdicts` come first, in plain words, before any number.
pub fn page(
    title: &str,
    header: &[(String, String)],
    verdicts: &[(String, Assessment)],
    body: &str,
    config_yaml: &str,
) -> String {
    let mut banners = String::new();
    for (name, a) in verdicts {
        let class = if a.beats_baseline { "ok" } else { "warn" };
        banners += &format!(
            "<p class=\"{class}\"><b>{}:</b> {}</p>",
            escape(name),
            escape(&a.verdict)
        );
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>\
         body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         .kv th,.kv td{{text-align:left}}small{{color:#666}}figure{{margin:1.5em 0}}figcaption{{color:#555}}\
         .warn{{background:#fff3cd;border:1px solid #e0b000;padding:.6em}}.ok{{background:#e8f5e9;border:1px solid #5a5;padding:.6em}}\
         svg{{max-width:100%;height:auto}}</style></head><body>\
         <h1>{t}</h1>{banners}{h}{body}<h2>Config</h2><details><summary>the resolved config of the run</summary><pre>{c}</pre></details>\
         </body></html>\n",
        t = escape(title),
        h = key_values(header),
        c = escape(config_yaml),
    )
}
