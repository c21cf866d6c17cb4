//! How results are shown: a readable table for people, JSON for programs.

use crate::eval::Metrics;

fn auc(v: Option<f64>) -> String {
    v.map_or("n/a (one class)".into(), |x| format!("{x:.4}"))
}

/// The metrics block `test` prints.
pub fn metrics_table(m: &Metrics) -> String {
    let c = &m.confusion;
    format!(
        "rows {} ({} anomalous), threshold {:.4}\n\
         accuracy   {:.4}\n\
         precision  {:.4}\n\
         recall     {:.4}\n\
         f1         {:.4}\n\
         roc_auc    {}\n\
         pr_auc     {}\n\
         confusion matrix (rows: actual, columns: predicted)\n\
         {:>12} {:>10} {:>10}\n\
         {:>12} {:>10} {:>10}\n\
         {:>12} {:>10} {:>10}",
        m.rows,
        m.positives,
        m.threshold,
        m.accuracy,
        m.precision,
        m.recall,
        m.f1,
        auc(m.roc_auc),
        auc(m.pr_auc),
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
