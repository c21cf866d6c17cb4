//! How results are shown: a readable table for people, JSON for programs, and the `assess`
//! report with its figures.

pub mod assess;
pub mod drift;
pub mod explain;
pub mod figures;
pub mod html;

use crate::eval::assess::{Assessment, Interval};
use crate::eval::clusters::ClusterReport;
use crate::eval::ensemble::EnsembleReport;
use crate::eval::multiclass::ClassReport;

fn ci(i: Option<Interval>) -> String {
    i.map_or(String::new(), |i| format!("[{:.4}, {:.4}]", i.low, i.high))
}

/// The block `test` prints: the verdict first, then each metric with its 95% interval.
pub fn metrics_table(a: &Assessment) -> String {
    let m = &a.metrics;
    let c = &m.confusion;
    let auc = |v: Option<f64>| v.map_or("n/a (one class)".into(), |x| format!("{x:.4}"));
    let i = &a.intervals;
    format!(
        "{}\n\
         rows {} ({} anomalous), threshold {:.4}; 95% intervals from {} bootstrap resamples\n\
         accuracy   {:.4}  {}   (majority-class baseline {:.4})\n\
         precision  {:.4}  {}\n\
         recall     {:.4}  {}\n\
         f1         {:.4}  {}\n\
         roc_auc    {}  {}   (chance 0.5)\n\
         pr_auc     {}  {}\n\
         confusion matrix (rows: actual, columns: predicted)\n\
         {:>12} {:>10} {:>10}\n\
         {:>12} {:>10} {:>10}\n\
         {:>12} {:>10} {:>10}",
        a.verdict,
        m.rows,
        m.positives,
        m.threshold,
        i.resamples,
        m.accuracy,
        ci(Some(i.accuracy)),
        a.baseline.accuracy,
        m.precision,
        ci(Some(i.precision)),
        m.recall,
        ci(Some(i.recall)),
        m.f1,
        ci(Some(i.f1)),
        auc(m.roc_auc),
        ci(i.roc_auc),
        auc(m.pr_auc),
        ci(i.pr_auc),
        "",
        "normal",
        "anomaly",
        "normal",
        c.tn,
        c.fp,
        "anomaly",
        c.fn_,
        c.tp,
    )
}

/// An ensemble: each member and the ensemble, the members' agreement, and the severity grades
/// against the labels.
pub fn ensemble_table(r: &EnsembleReport) -> String {
    let num = |v: Option<f64>| v.map_or("n/a".into(), |x| format!("{x:.4}"));
    // Room for the agreement rows' "[i] name" labels.
    let width = r
        .detectors
        .iter()
        .map(|d| d.name.len() + 4)
        .max()
        .unwrap_or(0);
    let mut out = format!(
        "{:<width$} {:>9} {:>9} {:>9} {:>9}\n",
        "detector", "roc_auc", "avg_prec", "f1", "flagged"
    );
    for d in &r.detectors {
        out += &format!(
            "{:<width$} {:>9} {:>9} {:>9.4} {:>9.4}\n",
            d.name,
            num(d.roc_auc),
            num(d.average_precision),
            d.f1,
            d.flagged_share
        );
    }
    out += &format!("votes alike (share of rows)\n{:<width$}", "");
    let members = &r.detectors[..r.agreement.len()];
    for i in 1..=members.len() {
        out += &format!(" {:>9}", format!("[{i}]"));
    }
    for (i, (d, row)) in members.iter().zip(&r.agreement).enumerate() {
        out += &format!("\n{:<width$}", format!("[{}] {}", i + 1, d.name));
        for v in row {
            out += &format!(" {v:>9.4}");
        }
    }
    out += "\nseverity    rows   attacks  attack share\n";
    for s in &r.severity {
        out += &format!(
            "{:<8} {:>7} {:>9} {:>13}\n",
            s.severity.as_str(),
            s.rows,
            s.attacks,
            num(s.attack_share)
        );
    }
    out
}

/// k-means and DBSCAN: the clustering scores, then the rows of each cluster by class.
pub fn cluster_table(r: &ClusterReport) -> String {
    let num = |v: Option<f64>| v.map_or("n/a".into(), |x| format!("{x:.4}"));
    let mut out = format!(
        "clusters {} ({} rows)\nsilhouette {} (on {} rows)  calinski-harabasz {}  davies-bouldin {}",
        r.clusters,
        r.rows,
        num(r.silhouette),
        r.silhouette_rows,
        num(r.calinski_harabasz),
        num(r.davies_bouldin)
    );
    if let Some(i) = r.inertia {
        out += &format!("  inertia {i:.4}");
    }
    if let Some(n) = r.noise_share {
        out += &format!("  noise {n:.4}");
    }
    out += "\ncluster     normal  anomalous  training majority\n";
    for c in &r.contingency {
        out += &format!(
            "{:<8} {:>9} {:>10}  {}\n",
            c.cluster,
            c.normal,
            c.anomalous,
            c.training_majority.unwrap_or("")
        );
    }
    if let Some(v) = &r.majority_view {
        out += &format!(
            "each cluster voting its training majority: accuracy {:.4}, precision {:.4}, recall {:.4}, F1 {:.4}\n",
            v.accuracy, v.precision, v.recall, v.f1
        );
    }
    out
}

/// Multiclass: per-class figures, averages, the confusion matrix and unseen classes.
pub fn class_table(r: &ClassReport) -> String {
    let auc = |v: Option<f64>| v.map_or("n/a".into(), |x| format!("{x:.4}"));
    let width = r.classes.iter().map(String::len).max().unwrap_or(0).max(12);
    let mut out = format!(
        "per class ({} rows of known classes, accuracy {:.4})\n{:<width$} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        r.rows, r.accuracy, "class", "precision", "recall", "f1", "support", "roc_auc"
    );
    for m in &r.per_class {
        out += &format!(
            "{:<width$} {:>9.4} {:>9.4} {:>9.4} {:>9} {:>9}\n",
            m.class,
            m.precision,
            m.recall,
            m.f1,
            m.support,
            auc(m.roc_auc)
        );
    }
    for (name, a) in [
        ("macro avg", &r.macro_avg),
        ("weighted avg", &r.weighted_avg),
    ] {
        out += &format!(
            "{name:<width$} {:>9.4} {:>9.4} {:>9.4} {:>9} {:>9}\n",
            a.precision,
            a.recall,
            a.f1,
            r.rows,
            auc(a.roc_auc)
        );
    }
    out += &format!(
        "confusion matrix (rows: actual, columns: predicted)\n{:<width$}",
        ""
    );
    let cell = r.classes.iter().map(String::len).max().unwrap_or(0).max(7);
    for c in &r.classes {
        out += &format!(" {c:>cell$}");
    }
    for (c, row) in r.classes.iter().zip(&r.confusion) {
        out += &format!("\n{c:<width$}");
        for n in row {
            out += &format!(" {n:>cell$}");
        }
    }
    for u in &r.unseen {
        out += &format!(
            "\nclass '{}' was not seen in training: {} rows, {} flagged anomalous",
            u.class, u.rows, u.flagged_anomalous
        );
    }
    out
}
