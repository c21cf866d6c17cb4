//! The YAML config: typed sections with defaults, `--set` overrides, and validation (each
//! section checks its own keys, in its own file).
//!
//! Every command reads its settings from [`Config`]; nothing else looks at raw YAML. A key the
//! structs do not know is an error that names it, so a typo never silently falls back to a default.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::bail_input;
use crate::device::DeviceConfig;
use crate::error::bad_input;
use crate::model::ModelConfig;

mod data;
mod run;
mod training;

pub use data::*;
pub use run::*;
pub use training::*;

/// The commented default config, also the template users copy.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../../config.yaml");

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub task: Task,
    pub model: ModelConfig,
    pub training: TrainingConfig,
    pub data: DataConfig,
    pub checkpoint: CheckpointConfig,
    pub logging: LoggingConfig,
    pub device: DeviceConfig,
    pub cross_validation: CrossValidationConfig,
    pub huggingface: HuggingFaceConfig,
    pub augmentation: AugmentationConfig,
    pub feedback: FeedbackConfig,
    /// Sequence families (`model.kind: cnn_lstm`): how flows become windows.
    pub sequence: SequenceConfig,
}

/// `binary`: one anomaly logit. `multiclass`: one softmax output per class of the label column,
/// with a derived normal-vs-anomaly view from `data.negative_labels`/`positive_labels`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    #[default]
    Binary,
    Multiclass,
}

impl Config {
    /// Reads `path` (or the built-in defaults when `None`), applies `--set key=value`
    /// overrides, and validates the result.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Config> {
        let (text, origin) = match path {
            Some(p) => (
                std::fs::read_to_string(p)
                    .map_err(|e| bad_input(format!("cannot read config {}: {e}", p.display())))?,
                p.display().to_string(),
            ),
            None => (
                DEFAULT_CONFIG_YAML.to_string(),
                "(built-in defaults)".into(),
            ),
        };
        Self::from_yaml(&text, overrides).with_context(|| format!("config {origin}"))
    }

    pub fn from_yaml(text: &str, overrides: &[String]) -> Result<Config> {
        let mut value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| bad_input(e.to_string()))?;
        if value.is_null() {
            value = serde_yaml::Value::Mapping(Default::default());
        }
        for item in overrides {
            apply_override(&mut value, item)?;
        }
        Self::from_value(value)
    }

    /// Typed and validated. serde_path_to_error names the full key (`training.learning_rate`),
    /// also for keys that came from `--set` and so have no line in the file.
    fn from_value(value: serde_yaml::Value) -> Result<Config> {
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            bad_input(if path == "." {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            })
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The sequence keys, checked only for a sequence family.
    fn validate_sequence(&self) -> Result<()> {
        let npy = self.data.format == DataFormat::Npy;
        if !self.model.kind.is_sequence() {
            if npy {
                bail_input!(
                    "data.format: npy holds windows, for sequence families (model.kind: cnn_lstm)"
                );
            }
            return Ok(());
        }
        if npy && self.data.test_path.is_some() {
            bail_input!(
                "data.test_path: with data.format: npy the test windows are the last \
                 data.test_size of data.path's"
            );
        }
        if npy && (self.sequence.order_by.is_some() || self.sequence.group_by.is_some()) {
            bail_input!(
                "sequence.order_by/group_by: an .npy file's windows are already cut; leave them null"
            );
        }
        let s = &self.sequence;
        if s.length < 2 || s.stride == 0 {
            bail_input!(
                "sequence: expected length >= 2 and stride >= 1, got {} and {}",
                s.length,
                s.stride
            );
        }
        for (key, name) in [("order_by", &s.order_by), ("group_by", &s.group_by)] {
            if let Some(name) = name
                && name.trim() == self.data.label_column.trim()
            {
                bail_input!("sequence.{key}: '{name}' is the label column");
            }
        }
        let d = &self.data;
        for (key, set) in [
            ("data.undersample", d.undersample.is_some()),
            ("data.select_features", d.select_features.is_some()),
            ("data.use_augmented_data", d.use_augmented_data),
            ("augmentation.enabled", self.augmentation.enabled),
        ] {
            if set {
                bail_input!(
                    "{key}: not available for sequence families, whose windows need every flow \
                     of a group in order"
                );
            }
        }
        self.model.cnn_lstm.fits(s.length)
    }

    /// Every range and cross-key check, once; code past this point trusts the config.
    /// Each section checks its own keys (`check` beside its struct); what spans sections is
    /// checked here.
    pub fn validate(&self) -> Result<()> {
        self.model.check()?;
        self.validate_sequence()?;
        if !self.model.kind.is_classifier() && self.task == Task::Multiclass {
            bail_input!(
                "task: multiclass needs a classifier; model.kind {:?} is an unsupervised detector (use task: binary)",
                self.model.kind
            );
        }
        self.training.check(self.task, self.model.kind)?;
        self.data.check(self.task)?;
        self.checkpoint.check()?;
        self.logging.check()?;
        self.feedback.check()?;
        self.huggingface.check()?;
        self.cross_validation.check()?;
        self.augmentation.check()
    }

    /// This config with `--set key=value` overrides applied, validated again.
    pub fn with_overrides(&self, overrides: &[String]) -> Result<Config> {
        let mut value = serde_yaml::to_value(self).expect("a Config always serializes");
        for item in overrides {
            apply_override(&mut value, item)?;
        }
        Self::from_value(value)
    }

    /// This config with each `(key, value)` set (`key` a `--set` path), validated again.
    pub fn with_values(&self, values: &[(String, serde_yaml::Value)]) -> Result<Config> {
        let mut root = serde_yaml::to_value(self).expect("a Config always serializes");
        for (key, value) in values {
            set_path(&mut root, key, value.clone(), key)?;
        }
        Self::from_value(root)
    }

    /// The value at `key` (a `--set` path), if the config has one there.
    pub fn value_at(&self, key: &str) -> Option<serde_yaml::Value> {
        let root = serde_yaml::to_value(self).expect("a Config always serializes");
        key.split('.')
            .try_fold(&root, |node, part| node.get(part))
            .cloned()
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a Config always serializes")
    }

    /// Writes the resolved config as `config.yaml` into each folder, so every run's outputs
    /// say exactly what produced them.
    pub fn save_resolved(&self, dirs: &[&Path]) -> Result<()> {
        for dir in dirs {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let path = dir.join("config.yaml");
            std::fs::write(&path, self.to_yaml())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

/// `section.key=value` (any depth); the value is read as YAML, so `0.01`, `true`, `[64, 32]`
/// and `normal` all mean what they say.
fn apply_override(root: &mut serde_yaml::Value, item: &str) -> Result<()> {
    let Some((key, raw)) = item.split_once('=') else {
        bail_input!("--set {item}: expected section.key=value");
    };
    let new: serde_yaml::Value = serde_yaml::from_str(raw)
        .map_err(|e| bad_input(format!("--set {item}: the value is not valid YAML: {e}")))?;
    set_path(root, key, new, &format!("--set {item}"))
}

/// Sets `key` (`section.key`, any depth) to `new`; errors start with `what`.
fn set_path(
    root: &mut serde_yaml::Value,
    key: &str,
    new: serde_yaml::Value,
    what: &str,
) -> Result<()> {
    let path: Vec<&str> = key.trim().split('.').collect();
    if path.iter().any(|p| p.is_empty()) {
        bail_input!("{what}: expected section.key=value");
    }
    let mut node = root;
    for (i, part) in path.iter().enumerate() {
        let serde_yaml::Value::Mapping(map) = node else {
            bail_input!("{what}: {} is not a section", path[..i].join("."));
        };
        let k = serde_yaml::Value::String((*part).to_string());
        if i + 1 == path.len() {
            map.insert(k, new);
            return Ok(());
        }
        node = map
            .entry(k)
            .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
    }
    unreachable!("the loop returns at the last path element")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{EXIT_BAD_INPUT, exit_code, one_line};

    #[test]
    fn the_shipped_config_is_valid_and_equals_the_defaults() {
        assert_eq!(
            Config::from_yaml(DEFAULT_CONFIG_YAML, &[]).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn overrides_reach_nested_keys_and_parse_as_yaml() {
        let c = Config::from_yaml(
            "",
            &[
                "training.learning_rate=0.01".into(),
                "model.hidden_dims=[8, 4]".into(),
                "training.early_stopping.patience=3".into(),
                "training.threshold=max_f1".into(),
                "training.pos_weight=auto".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.training.learning_rate, 0.01);
        assert_eq!(c.model.hidden_dims, vec![8, 4]);
        assert_eq!(c.training.early_stopping.patience, 3);
        assert_eq!(
            c.training.threshold,
            ThresholdChoice::Rule(ThresholdRule::MaxF1)
        );
        assert_eq!(c.training.pos_weight, Some(PosWeight::Auto(AutoWord::Auto)));
    }

    #[test]
    fn label_values_may_be_yaml_numbers_and_booleans() {
        let c = Config::from_yaml(
            "data:\n  negative_labels: [0, false]\n  label_map: {1: attack, 2.5: x, normal: normal}\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.data.negative_labels, ["0", "false"]);
        assert_eq!(c.data.label_map["1"], "attack");
        assert_eq!(c.data.label_map["2.5"], "x");
        let c = Config::from_yaml("", &["data.positive_labels=[1]".into()]).unwrap();
        assert_eq!(c.data.positive_labels, ["1"]);
        let err = Config::from_yaml("data:\n  negative_labels: [[0]]\n", &[]).unwrap_err();
        assert!(
            one_line(&err).contains("data.negative_labels"),
            "{}",
            one_line(&err)
        );
    }

    #[test]
    fn rate_rules_are_one_key_maps_checked_for_range() {
        let c = Config::from_yaml("training:\n  threshold: {contamination: 0.1}\n", &[]).unwrap();
        assert_eq!(
            c.training.threshold,
            ThresholdChoice::Contamination { contamination: 0.1 }
        );
        let c = Config::from_yaml("", &["training.threshold={target_fpr: 0.01}".into()]).unwrap();
        assert_eq!(
            c.training.threshold,
            ThresholdChoice::TargetFpr { target_fpr: 0.01 }
        );
        // What train writes (config.yaml beside the checkpoints) reads back the same.
        assert_eq!(Config::from_yaml(&c.to_yaml(), &[]).unwrap(), c);
        for (bad, key) in [
            ("{contamination: 0.9}", "training.threshold.contamination"),
            (
                "{normal_quantile: 1.5}",
                "training.threshold.normal_quantile",
            ),
            ("{target_fpr: 0}", "training.threshold.target_fpr"),
            ("{contamination: 0.1, extra: 1}", "training.threshold"),
        ] {
            let err = Config::from_yaml("", &[format!("training.threshold={bad}")]).unwrap_err();
            assert!(one_line(&err).contains(key), "{bad}: {}", one_line(&err));
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = Config::from_yaml("model:\n  hiden_dims: [3]\n", &[]).unwrap_err();
        assert_eq!(exit_code(&err), EXIT_BAD_INPUT);
        assert!(one_line(&err).contains("hiden_dims"), "{}", one_line(&err));

        let err = Config::from_yaml("training:\n  learning_rate: fast\n", &[]).unwrap_err();
        assert!(
            one_line(&err).contains("training.learning_rate"),
            "{}",
            one_line(&err)
        );

        let err = Config::from_yaml("", &["training.learning_rate=-1".into()]).unwrap_err();
        assert!(one_line(&err).contains("training.learning_rate"));

        let err = Config::from_yaml("", &["data.test_size=1.5".into()]).unwrap_err();
        assert!(one_line(&err).contains("data.test_size"));

        let err = Config::from_yaml("", &["model.hidden_dims=[]".into()]).unwrap_err();
        assert!(one_line(&err).contains("model.hidden_dims"));

        let err = Config::from_yaml("", &["nokey".into()]).unwrap_err();
        assert!(one_line(&err).contains("--set nokey"));
    }
}
