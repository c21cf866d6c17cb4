//! Turns the raw label column into 0 (normal) / 1 (anomaly), and for multiclass into a class
//! index per row. `data.label_map` renames raw labels first (NSL-KDD attack → category).

use anyhow::Result;

use crate::bail_input;
use crate::config::DataConfig;
use crate::data::read::Dictionary;

/// Whether a configured label value names a cell's value: the same text (any case), or the
/// same number (`0` names a `0.0` cell, as a YAML `0` in the config is meant to).
fn same_label(configured: &str, cell: &str) -> bool {
    let (a, b) = (configured.trim(), cell.trim());
    a.eq_ignore_ascii_case(b)
        || matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y)) if x == y)
}

fn matches(list: &[String], value: &str) -> bool {
    list.iter().any(|l| same_label(l, value))
}

/// Marks a row whose class the model was not trained on (multiclass test files).
pub const UNSEEN: u32 = u32::MAX;

/// A raw label's class: its `data.label_map` entry (keys trimmed, any case), else itself trimmed.
pub fn class_name<'a>(raw: &'a str, cfg: &'a DataConfig) -> &'a str {
    let v = raw.trim();
    cfg.label_map
        .iter()
        .find(|(k, _)| same_label(k, v))
        .map_or(v, |(_, class)| class.trim())
}

/// The classes that occur in `labels`, sorted (the model's output order).
pub fn classes_of(labels: &Dictionary, cfg: &DataConfig) -> Vec<String> {
    let mut used = vec![false; labels.values.len()];
    labels.codes.iter().for_each(|&c| used[c as usize] = true);
    let set: std::collections::BTreeSet<&str> = labels
        .values
        .iter()
        .zip(&used)
        .filter(|(_, u)| **u)
        .map(|(v, _)| class_name(v, cfg))
        .collect();
    set.into_iter().map(str::to_string).collect()
}

/// The index into `classes` of every row ([`UNSEEN`] for a class not in the list).
pub fn class_indices(labels: &Dictionary, cfg: &DataConfig, classes: &[String]) -> Vec<u32> {
    let per_value: Vec<u32> = labels
        .values
        .iter()
        .map(|v| {
            let name = class_name(v, cfg);
            classes
                .iter()
                .position(|c| c == name)
                .map_or(UNSEEN, |i| i as u32)
        })
        .collect();
    labels
        .codes
        .iter()
        .map(|&c| per_value[c as usize])
        .collect()
}

/// The 0/1 meaning of one class name.
pub fn classify(value: &str, cfg: &DataConfig) -> Result<f32> {
    if !cfg.positive_labels.is_empty() {
        return Ok(matches(&cfg.positive_labels, value) as u8 as f32);
    }
    if !cfg.negative_labels.is_empty() {
        return Ok((!matches(&cfg.negative_labels, value)) as u8 as f32);
    }
    let v = value.trim();
    if v.eq_ignore_ascii_case("true") {
        return Ok(1.0);
    }
    if v.eq_ignore_ascii_case("false") {
        return Ok(0.0);
    }
    match v.parse::<f64>() {
        Ok(0.0) => Ok(0.0),
        Ok(1.0) => Ok(1.0),
        Ok(_) => bail_input!(
            "label '{v}' in column '{}' is neither 0 nor 1: set data.negative_labels \
             (e.g. [0]) to say which values are normal",
            cfg.label_column
        ),
        Err(_) => bail_input!(
            "label '{v}' in column '{}' is text: set data.negative_labels (e.g. [normal] or \
             [BENIGN]) or data.positive_labels to say which values are anomalies",
            cfg.label_column
        ),
    }
}

/// One 0/1 target per row.
pub fn binarize(labels: &Dictionary, cfg: &DataConfig) -> Result<Vec<f32>> {
    let per_value: Vec<f32> = labels
        .values
        .iter()
        .map(|v| classify(class_name(v, cfg), cfg))
        .collect::<Result<_>>()?;
    Ok(labels
        .codes
        .iter()
        .map(|&c| per_value[c as usize])
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::one_line;

    fn dict(values: &[&str]) -> Dictionary {
        let mut d = Dictionary::default();
        for v in values {
            d.push(v);
        }
        d
    }

    #[test]
    fn numbers_booleans_and_named_classes() {
        let cfg = DataConfig::default();
        assert_eq!(
            binarize(&dict(&["0.0", "1.0", "0", "1"]), &cfg).unwrap(),
            [0., 1., 0., 1.]
        );
        assert_eq!(binarize(&dict(&["True", "false"]), &cfg).unwrap(), [1., 0.]);

        let cfg = DataConfig {
            negative_labels: vec!["BENIGN".into()],
            ..Default::default()
        };
        assert_eq!(
            binarize(&dict(&["benign ", "DDoS", "PortScan"]), &cfg).unwrap(),
            [0., 1., 1.]
        );

        let cfg = DataConfig {
            positive_labels: vec!["attack".into()],
            ..Default::default()
        };
        assert_eq!(
            binarize(&dict(&["Attack", "normal", "other"]), &cfg).unwrap(),
            [1., 0., 0.]
        );
    }

    #[test]
    fn numeric_label_values_match_cells_by_value() {
        // What `negative_labels: [0]` and `label_map: {1: attack}` in YAML become.
        let cfg = DataConfig {
            negative_labels: vec!["0".into()],
            label_map: [("1".to_string(), "attack".to_string())].into(),
            ..Default::default()
        };
        let labels = dict(&["0.0", "1.0", "0", " 1", "2"]);
        assert_eq!(binarize(&labels, &cfg).unwrap(), [0., 1., 0., 1., 1.]);
        assert_eq!(class_name("1.0", &cfg), "attack");
        assert_eq!(class_name("2", &cfg), "2");
    }

    #[test]
    fn label_map_renames_before_classes_and_the_binary_view() {
        let cfg = DataConfig {
            label_map: [("neptune", "DoS"), ("smurf", "DoS"), ("satan", "Probe")]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            negative_labels: vec!["normal".into()],
            ..Default::default()
        };
        let train = dict(&["normal", "Neptune", "smurf", "satan", "normal"]);
        let classes = classes_of(&train, &cfg);
        assert_eq!(classes, ["DoS", "Probe", "normal"]);
        assert_eq!(binarize(&train, &cfg).unwrap(), [0., 1., 1., 1., 0.]);
        let test = dict(&["smurf", "mscan", "normal", "mscan"]);
        assert_eq!(class_indices(&test, &cfg, &classes), [0, UNSEEN, 2, UNSEEN]);
    }

    #[test]
    fn text_labels_without_a_mapping_are_an_error_that_says_what_to_set() {
        let err = binarize(&dict(&["normal", "neptune"]), &DataConfig::default()).unwrap_err();
        assert!(one_line(&err).contains("data.negative_labels"));
        let err = binarize(&dict(&["0", "2"]), &DataConfig::default()).unwrap_err();
        assert!(one_line(&err).contains("'2'"));
    }
}
