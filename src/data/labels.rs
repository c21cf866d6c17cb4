//! Turns the raw label column into 0 (normal) / 1 (anomaly).

use anyhow::Result;

use crate::bail_input;
use crate::config::DataConfig;
use crate::data::read::Dictionary;

fn matches(list: &[String], value: &str) -> bool {
    list.iter()
        .any(|l| l.trim().eq_ignore_ascii_case(value.trim()))
}

/// The 0/1 meaning of one distinct label value.
fn classify(value: &str, cfg: &DataConfig) -> Result<f32> {
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
        .map(|v| classify(v, cfg))
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
            d.push_for_test(v);
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
    fn text_labels_without_a_mapping_are_an_error_that_says_what_to_set() {
        let err = binarize(&dict(&["normal", "neptune"]), &DataConfig::default()).unwrap_err();
        assert!(one_line(&err).contains("data.negative_labels"));
        let err = binarize(&dict(&["0", "2"]), &DataConfig::default()).unwrap_err();
        assert!(one_line(&err).contains("'2'"));
    }
}
