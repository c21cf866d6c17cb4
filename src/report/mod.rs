//! How results are shown: a readable table for people, JSON for programs, and the `assess`
//! report with its figures.

pub mod assess;
pub mod figures;
pub mod html;

use crate::eval::assess::{Assessment, Interval};

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
