//! The YAML config: typed sections with defaults, `--set` overrides, and validation in one place.
//!
//! Every command reads its settings from [`Config`]; nothing else looks at raw YAML. A key the
//! structs do not know is an error that names it, so a typo never silently falls back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::bail_input;
use crate::error::bad_input;

/// The commented default config, also the template users copy.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../config.yaml");

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

/// Windows of consecutive flows, what a sequence family classifies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SequenceConfig {
    /// Flows per window (L).
    pub length: usize,
    /// Flows between the ends of consecutive training windows.
    pub stride: usize,
    /// The column that orders flows: numbers, or date-times (`2017-07-03 08:55:58`, ISO 8601,
    /// or CICFlowMeter's day-first `3/7/2017 8:55:58`); null: file order.
    pub order_by: Option<String>,
    /// The column whose value keeps windows apart (e.g. `Src IP`); null: one sequence.
    pub group_by: Option<String>,
    /// A window's label from its flows' labels.
    pub label: WindowLabel,
}

impl Default for SequenceConfig {
    fn default() -> Self {
        Self {
            length: 32,
            stride: 1,
            order_by: None,
            group_by: None,
            label: WindowLabel::Last,
        }
    }
}

/// How a window's flows' labels make the window's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowLabel {
    /// The last flow's label (what the window's score is written against).
    Last,
    /// Anomalous when any flow is (multiclass: the last anomalous flow's class).
    Any,
    /// The most common label among the flows (ties: the later flow's).
    Majority,
}

/// Retraining from analyst feedback (`train --resume-from F --feedback FILE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedbackConfig {
    /// The feedback file (`--feedback` overrides it).
    pub path: Option<PathBuf>,
    /// How many training rows each judged row counts as (it is repeated that many times).
    pub weight: u32,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            path: None,
            weight: 10,
        }
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Linear → activation → dropout per hidden layer.
    Mlp,
    /// Each hidden layer adds batch norm and a skip connection (projected when widths differ).
    Resmlp,
    /// Unsupervised: an isolation forest fitted on `training.fit_on` rows (`model.isolation_forest`).
    IsolationForest,
    /// Unsupervised: distance to the nearest k-means centroid (`model.kmeans`).
    Kmeans,
    /// Unsupervised: local outlier factor in novelty mode (`model.lof`).
    Lof,
    /// Unsupervised: distance to the nearest DBSCAN core point (`model.dbscan`).
    Dbscan,
    /// Unsupervised: an RBF one-class SVM's negated decision value (`model.one_class_svm`).
    OneClassSvm,
    /// Unsupervised: a network's reconstruction error (`model.autoencoder`), trained by the
    /// gradient trainer on `training.fit_on` rows.
    Autoencoder,
    /// Unsupervised families fitted side by side, voting and combined (`model.ensemble`).
    Ensemble,
    /// A random forest classifier (`model.random_forest`), binary or multiclass.
    RandomForest,
    /// Gradient-boosted trees (`model.gradient_boosting`), binary or multiclass.
    GradientBoosting,
    /// A 1-D CNN then an LSTM over windows of consecutive flows (`model.cnn_lstm`,
    /// `sequence`), binary or multiclass.
    CnnLstm,
}

/// What the rest of the program needs to know of a family, answered in one exhaustive
/// `match`: a new variant does not compile until it answers every fact.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The name `model.kind` spells.
    pub name: &'static str,
    /// A supervised classifier, which learns from labels (binary or multiclass).
    pub classifier: bool,
    /// Scores windows of consecutive flows (`sequence`), not single rows.
    pub sequence: bool,
    /// Trained by the gradient trainer (epochs, early stopping, exact resume).
    pub by_gradient: bool,
    /// Scores lie in (0, 1), so that a fixed threshold must too (probabilities and the
    /// isolation forest's 2^(−depth) score); distances, LOF ratios and SVM decision values
    /// do not.
    pub unit_scores: bool,
}

impl ModelKind {
    pub fn family(self) -> Family {
        match self {
            ModelKind::Mlp => Family {
                name: "mlp",
                classifier: true,
                sequence: false,
                by_gradient: true,
                unit_scores: true,
            },
            ModelKind::Resmlp => Family {
                name: "resmlp",
                classifier: true,
                sequence: false,
                by_gradient: true,
                unit_scores: true,
            },
            ModelKind::IsolationForest => Family {
                name: "isolation_forest",
                classifier: false,
                sequence: false,
                by_gradient: false,
                unit_scores: true,
            },
            ModelKind::Kmeans => Family {
                name: "kmeans",
                classifier: false,
                sequence: false,
                by_gradient: false,
                unit_scores: false,
            },
            ModelKind::Lof => Family {
                name: "lof",
                classifier: false,
                sequence: false,
                by_gradient: false,
                unit_scores: false,
            },
            ModelKind::Dbscan => Family {
                name: "dbscan",
                classifier: false,
                sequence: false,
                by_gradient: false,
                unit_scores: false,
            },
            ModelKind::OneClassSvm => Family {
                name: "one_class_svm",
                classifier: false,
                sequence: false,
                by_gradient: false,
                unit_scores: false,
            },
            ModelKind::Autoencoder => Family {
                name: "autoencoder",
                classifier: false,
                sequence: false,
                by_gradient: true,
                unit_scores: false,
            },
            ModelKind::Ensemble => Family {
                name: "ensemble",
                classifier: false,
                sequence: false,
                by_gradient: false,
                unit_scores: false,
            },
            ModelKind::RandomForest => Family {
                name: "random_forest",
                classifier: true,
                sequence: false,
                by_gradient: false,
                unit_scores: true,
            },
            ModelKind::GradientBoosting => Family {
                name: "gradient_boosting",
                classifier: true,
                sequence: false,
                by_gradient: false,
                unit_scores: true,
            },
            ModelKind::CnnLstm => Family {
                name: "cnn_lstm",
                classifier: true,
                sequence: true,
                by_gradient: true,
                unit_scores: true,
            },
        }
    }

    /// The name `model.kind` spells.
    pub fn name(self) -> &'static str {
        self.family().name
    }

    /// The supervised classifiers, which learn from labels (binary or multiclass).
    pub fn is_classifier(self) -> bool {
        self.family().classifier
    }

    /// Families that score windows of consecutive flows (`sequence`), not single rows.
    pub fn is_sequence(self) -> bool {
        self.family().sequence
    }

    /// Families trained by the gradient trainer (the `model` keys above `isolation_forest`
    /// are the classifiers').
    pub fn by_gradient(self) -> bool {
        self.family().by_gradient
    }

    /// Whether scores lie in (0, 1) (see [`Family::unit_scores`]).
    pub fn scores_in_unit_interval(self) -> bool {
        self.family().unit_scores
    }
}

/// Which training rows an unsupervised detector learns from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitOn {
    /// The normal rows only: the detector learns what normal traffic looks like.
    Normal,
    /// Every row, labels ignored.
    All,
}

/// `model.isolation_forest`: scikit-learn's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IsolationForestConfig {
    pub n_trees: usize,
    /// Rows drawn (without replacement) for each tree; depth is limited to log2 of it.
    pub sample_size: usize,
    /// The share of the features each tree may split on.
    pub max_features: f64,
}

/// `model.lof`: scikit-learn's `LocalOutlierFactor(novelty=True)` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LofConfig {
    pub n_neighbors: usize,
    /// Exact neighbours are searched among at most this many training rows (a seeded
    /// subsample above it): scoring costs this many distances per row.
    pub max_fit_rows: usize,
}

impl Default for LofConfig {
    fn default() -> Self {
        Self {
            n_neighbors: 20,
            max_fit_rows: 20_000,
        }
    }
}

/// `model.dbscan`: scikit-learn's `DBSCAN` defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbscanConfig {
    /// The neighbourhood radius (in scaled feature units).
    pub eps: f64,
    /// Rows within `eps` (the row itself included) that make a core point.
    pub min_samples: usize,
    /// The fit looks at most at this many training rows (a seeded subsample above it).
    pub max_fit_rows: usize,
}

impl Default for DbscanConfig {
    fn default() -> Self {
        Self {
            eps: 0.5,
            min_samples: 5,
            max_fit_rows: 20_000,
        }
    }
}

/// `model.one_class_svm`: scikit-learn's `OneClassSVM(kernel='rbf')` settings, fitted on at
/// most `max_fit_rows` rows (a seeded subsample above it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OneClassSvmConfig {
    /// An upper bound on the share of fitted rows left outside, and a lower bound on the
    /// share of support vectors.
    pub nu: f64,
    pub gamma: Gamma,
    pub max_fit_rows: usize,
    /// The solver stops when the largest optimality violation is below this.
    pub tol: f64,
    pub max_iter: usize,
}

impl Default for OneClassSvmConfig {
    fn default() -> Self {
        Self {
            nu: 0.1,
            gamma: Gamma::Scale(GammaScale::Scale),
            max_fit_rows: 10_000,
            tol: 1e-3,
            max_iter: 1_000_000,
        }
    }
}

/// The RBF kernel's width: a number, or `scale` (1 / (features × the fitted rows' variance)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Gamma {
    Value(f64),
    Scale(GammaScale),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GammaScale {
    Scale,
}

/// `model.autoencoder`: the encoder's widths (the decoder mirrors them), as the reference's
/// d-64-32-16-8-16-32-64-d network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoencoderConfig {
    pub hidden_dims: Vec<usize>,
    pub activation: Activation,
}

impl Default for AutoencoderConfig {
    fn default() -> Self {
        Self {
            hidden_dims: vec![64, 32, 16, 8],
            activation: Activation::Relu,
        }
    }
}

/// `model.random_forest`: scikit-learn's `RandomForestClassifier` settings, with 200 trees;
/// splits are searched over at most `max_bins` bins per feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomForestConfig {
    pub n_trees: usize,
    /// None: grow until leaves are pure or hold `min_samples_leaf` rows.
    pub max_depth: Option<usize>,
    pub min_samples_leaf: usize,
    pub max_features: MaxFeatures,
    /// Each tree on a bootstrap sample (and an out-of-bag accuracy), or on every row.
    pub bootstrap: bool,
    pub max_bins: usize,
}

impl Default for RandomForestConfig {
    fn default() -> Self {
        Self {
            n_trees: 200,
            max_depth: None,
            min_samples_leaf: 1,
            max_features: MaxFeatures::Named(FeatureShare::Sqrt),
            bootstrap: true,
            max_bins: 256,
        }
    }
}

/// `data.select_features`: rank the input columns by a random forest's impurity importance
/// (a one-hot column's categories summed) and keep the top `keep`, or those with at least
/// `min_importance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectFeatures {
    pub by: SelectBy,
    #[serde(default)]
    pub keep: Option<usize>,
    #[serde(default)]
    pub min_importance: Option<f64>,
    /// Trees of the ranking forest.
    #[serde(default = "ranking_trees")]
    pub n_trees: usize,
}

fn ranking_trees() -> usize {
    100
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectBy {
    ForestImportance,
}

/// `model.gradient_boosting`: histogram-based boosted trees (XGBoost's `hist` settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GradientBoostingConfig {
    pub n_rounds: usize,
    pub learning_rate: f64,
    pub max_depth: usize,
    /// Grow each tree leaf-wise (best gain first, as LightGBM does) up to this many leaves,
    /// still no deeper than `max_depth`; none grows level by level to `max_depth`.
    pub max_leaves: Option<usize>,
    /// The least Hessian (about rows × p(1 − p)) a child may hold.
    pub min_child_weight: f64,
    /// L2 penalty on leaf values (λ).
    pub l2: f64,
    /// The share of training rows each round sees (seeded).
    pub subsample: f64,
    /// Stop when the validation log-loss has not improved for this many rounds; the best
    /// round's model is kept.
    pub early_stopping_rounds: usize,
    pub max_bins: usize,
}

impl Default for GradientBoostingConfig {
    fn default() -> Self {
        Self {
            n_rounds: 200,
            learning_rate: 0.1,
            max_depth: 6,
            max_leaves: None,
            min_child_weight: 1.0,
            l2: 1.0,
            // Friedman's stochastic gradient boosting: on NSL-KDD, 0.8 ranked KDDTest+ better
            // than every row each round (ROC AUC 0.962 against 0.959).
            subsample: 0.8,
            early_stopping_rounds: 20,
            max_bins: 256,
        }
    }
}

/// How many features a tree's split tries: `sqrt`, `log2` or `all` of them, or a fraction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MaxFeatures {
    Fraction(f64),
    Named(FeatureShare),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureShare {
    Sqrt,
    Log2,
    All,
}

/// `model.ensemble`: the members (each configured by its own section) and how they combine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnsembleConfig {
    pub members: Vec<ModelKind>,
    pub combine: Combine,
    /// Members that must flag a row for `combine: vote` to call it anomalous.
    pub min_votes: usize,
    /// The votes from which a row is low, medium and high severity; default: `min_votes`,
    /// halfway, and every member.
    pub severity: Option<[usize; 3]>,
}

impl Default for EnsembleConfig {
    fn default() -> Self {
        Self {
            members: vec![
                ModelKind::IsolationForest,
                ModelKind::OneClassSvm,
                ModelKind::Lof,
                ModelKind::Autoencoder,
            ],
            combine: Combine::MedianZ,
            min_votes: 2,
            severity: None,
        }
    }
}

impl EnsembleConfig {
    fn validate(&self) -> Result<()> {
        let n = self.members.len();
        if n == 0 {
            bail_input!("model.ensemble.members: expected at least one unsupervised family");
        }
        for (i, m) in self.members.iter().enumerate() {
            if m.is_classifier() || *m == ModelKind::Ensemble {
                bail_input!(
                    "model.ensemble.members: {} cannot be a member (members are the unsupervised families: isolation_forest, lof, one_class_svm, autoencoder, kmeans, dbscan)",
                    m.name()
                );
            }
            if self.members[..i].contains(m) {
                bail_input!(
                    "model.ensemble.members: {} is listed twice (each family has one section)",
                    m.name()
                );
            }
        }
        if self.min_votes == 0 || self.min_votes > n {
            bail_input!(
                "model.ensemble.min_votes: expected 1 to {n} (the number of members), got {}",
                self.min_votes
            );
        }
        let [low, medium, high] = self.severity_cutoffs();
        if low == 0 || low > medium || medium > high || high > n {
            bail_input!(
                "model.ensemble.severity: expected votes [low, medium, high] with 1 <= low <= medium <= high <= {n} (the number of members), got [{low}, {medium}, {high}]"
            );
        }
        Ok(())
    }

    /// The severity cut-offs in use.
    pub fn severity_cutoffs(&self) -> [usize; 3] {
        let n = self.members.len();
        self.severity
            .unwrap_or([self.min_votes, (self.min_votes + n).div_ceil(2), n])
    }
}

/// How an ensemble's members make one score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// The share of members that flag the row; anomalous from `min_votes`.
    Vote,
    /// The mean of the members' z-scores (standardised on their fitted rows).
    MeanZ,
    MaxZ,
    /// The median: what most members say, whatever one member's tail does.
    MedianZ,
}

/// `model.kmeans`: scikit-learn's `KMeans` settings, k = 8 with 10 seeded k-means++ runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KmeansConfig {
    pub k: usize,
    /// Runs from different seeds; the one with the lowest inertia is kept.
    pub n_init: usize,
    pub max_iter: usize,
    /// Stop when the centroids move less than this times the features' mean variance.
    pub tol: f64,
}

impl Default for KmeansConfig {
    fn default() -> Self {
        Self {
            k: 8,
            n_init: 10,
            max_iter: 300,
            tol: 1e-4,
        }
    }
}

impl Default for IsolationForestConfig {
    fn default() -> Self {
        Self {
            n_trees: 100,
            sample_size: 256,
            max_features: 1.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    Gelu,
    LeakyRelu,
    Tanh,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    pub kind: ModelKind,
    pub hidden_dims: Vec<usize>,
    pub dropout: f64,
    pub activation: Activation,
    pub isolation_forest: IsolationForestConfig,
    pub kmeans: KmeansConfig,
    pub lof: LofConfig,
    pub dbscan: DbscanConfig,
    pub one_class_svm: OneClassSvmConfig,
    pub autoencoder: AutoencoderConfig,
    pub ensemble: EnsembleConfig,
    pub random_forest: RandomForestConfig,
    pub gradient_boosting: GradientBoostingConfig,
    pub cnn_lstm: CnnLstmConfig,
}

/// The sequence classifier: 1-D convolution blocks (conv, batch norm, ReLU, max-pool) over the
/// window's time axis, dropout, an LSTM, and a linear head on its last hidden state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CnnLstmConfig {
    /// Output channels of each convolution block.
    pub conv_channels: Vec<usize>,
    pub kernel_size: usize,
    /// Max-pool width (and stride) after each block.
    pub pool: usize,
    pub dropout: f64,
    pub lstm_hidden: usize,
    pub lstm_layers: usize,
    pub bidirectional: bool,
}

impl Default for CnnLstmConfig {
    fn default() -> Self {
        Self {
            conv_channels: vec![128, 256],
            kernel_size: 3,
            pool: 2,
            dropout: 0.3,
            lstm_hidden: 128,
            lstm_layers: 1,
            bidirectional: false,
        }
    }
}

impl CnnLstmConfig {
    /// The time steps left after the convolution blocks, for windows of `length` flows (none
    /// when a block would have nothing to convolve or pool).
    pub fn steps_after_conv(&self, length: usize) -> Option<usize> {
        self.conv_channels.iter().try_fold(length, |l, _| {
            let convolved = l.checked_sub(self.kernel_size - 1)?;
            Some(convolved / self.pool).filter(|&s| s > 0)
        })
    }

    fn validate(&self, length: usize) -> Result<()> {
        let sizes = [
            self.kernel_size,
            self.pool,
            self.lstm_hidden,
            self.lstm_layers,
        ];
        if self.conv_channels.contains(&0) || sizes.contains(&0) {
            bail_input!(
                "model.cnn_lstm: expected conv_channels, kernel_size, pool, lstm_hidden and \
                 lstm_layers >= 1"
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail_input!(
                "model.cnn_lstm.dropout: expected a value in [0, 1), got {}",
                self.dropout
            );
        }
        if self.steps_after_conv(length).is_none() {
            bail_input!(
                "sequence.length: {length} flows are too few for {} convolution blocks of \
                 kernel {} and pool {} (each needs kernel_size - 1 + pool more)",
                self.conv_channels.len(),
                self.kernel_size,
                self.pool
            );
        }
        Ok(())
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            kind: ModelKind::Mlp,
            hidden_dims: vec![128, 64, 32],
            dropout: 0.3,
            activation: Activation::Relu,
            isolation_forest: IsolationForestConfig::default(),
            kmeans: KmeansConfig::default(),
            lof: LofConfig::default(),
            dbscan: DbscanConfig::default(),
            one_class_svm: OneClassSvmConfig::default(),
            autoencoder: AutoencoderConfig::default(),
            ensemble: EnsembleConfig::default(),
            random_forest: RandomForestConfig::default(),
            gradient_boosting: GradientBoostingConfig::default(),
            cnn_lstm: CnnLstmConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    Adam,
    Adamw,
    Sgd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerKind {
    None,
    /// Multiply by `gamma` every `step_size` epochs.
    Step,
    /// Cosine annealing from `learning_rate` to `min_learning_rate` over `epochs`.
    Cosine,
    /// Triangular cycles between `min_learning_rate` and `max_learning_rate`, `cycle_steps`
    /// batches up and as many down (PyTorch's CyclicLR).
    Cyclic,
    /// Multiply by `gamma` after `plateau_patience` epochs without a better validation loss.
    Plateau,
}

/// `auto` weighs each class by n_rows / (n_classes · n_class_rows), as scikit-learn's
/// `class_weight="balanced"`; a list gives one weight per class in class order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClassWeights {
    Auto(AutoWord),
    Values(Vec<f64>),
}

/// `auto` weighs positives by negatives/positives of the training split, like the reference
/// pipeline's class weights; a number is used as is (PyTorch's `pos_weight`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PosWeight {
    Auto(AutoWord),
    Value(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoWord {
    Auto,
}

/// How the decision threshold is chosen: a fixed score, a rule applied to the validation
/// split's scores, or a rate written as a one-key map (`{contamination: r}`,
/// `{normal_quantile: q}`, `{target_fpr: f}`). `src/eval/decision.rs` says what each computes.
/// The rates are struct variants so that they read and write the same one-key map in YAML
/// (resolved configs) and MessagePack (checkpoints).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum ThresholdChoice {
    Fixed(f64),
    Rule(ThresholdRule),
    /// Flag this share of the training rows (the top scores), as PyOD's `contamination`.
    Contamination {
        contamination: f64,
    },
    /// The q-quantile of the normal validation rows' scores.
    NormalQuantile {
        normal_quantile: f64,
    },
    /// The lowest threshold whose false positive rate on the validation split is at most f.
    TargetFpr {
        target_fpr: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdRule {
    MaxF1,
    Youden,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EarlyStoppingConfig {
    pub enabled: bool,
    pub patience: usize,
    pub min_delta: f64,
}

impl Default for EarlyStoppingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            patience: 10,
            min_delta: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub optimizer: OptimizerKind,
    pub weight_decay: f64,
    /// SGD momentum (ignored by Adam/AdamW).
    pub momentum: f64,
    pub scheduler: SchedulerKind,
    pub step_size: usize,
    pub gamma: f64,
    pub min_learning_rate: f64,
    pub max_learning_rate: f64,
    pub cycle_steps: usize,
    pub plateau_patience: usize,
    /// Clip each parameter's gradient to this L2 norm (none when null).
    pub grad_clip: Option<f64>,
    pub early_stopping: EarlyStoppingConfig,
    pub pos_weight: Option<PosWeight>,
    pub class_weights: Option<ClassWeights>,
    pub threshold: ThresholdChoice,
    /// Unsupervised families: learn from the normal training rows, or from all of them.
    pub fit_on: FitOn,
    /// Seeds weight init, shuffling and dropout (and each tree of a forest).
    pub seed: u64,
    /// CPU: each batch is split into this many parts (of at least 1024 rows) whose gradients
    /// are computed on parallel threads and summed in order. Fixed here, not by the core
    /// count, so the same seed gives the same bytes on any machine.
    pub shards: usize,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 64,
            learning_rate: 1e-3,
            optimizer: OptimizerKind::Adam,
            weight_decay: 1e-4,
            momentum: 0.9,
            scheduler: SchedulerKind::Step,
            step_size: 30,
            gamma: 0.1,
            min_learning_rate: 1e-5,
            max_learning_rate: 1e-2,
            cycle_steps: 2000,
            plateau_patience: 5,
            grad_clip: None,
            early_stopping: EarlyStoppingConfig::default(),
            pos_weight: None,
            class_weights: None,
            threshold: ThresholdChoice::Fixed(0.5),
            fit_on: FitOn::Normal,
            seed: 42,
            shards: 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingPolicy {
    DropRows,
    ImputeMedian,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalerKind {
    Standard,
    Minmax,
    /// scikit-learn's QuantileTransformer: each feature through its training CDF.
    Quantile,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantileOutput {
    Uniform,
    Normal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    None,
    /// `ln(1 + x)` on heavy-tailed non-negative columns (`transform_columns`, or detected).
    Log1p,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateColumns {
    Error,
    /// Keep the first column of a repeated name and skip the others (CIC-IDS2017).
    KeepFirst,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// The training CSV (`.csv`, `.csv.gz`, `.txt.gz`, …), or with `format: npy` the windows.
    pub path: PathBuf,
    /// `csv` (a Zeek log is recognised and read as CSV too), `zeek` (only Zeek logs, TSV or
    /// JSON, are accepted), or `npy`: NumPy arrays of windows, `path` of shape (N, C, L) and
    /// `labels_path` of shape (N,) (sequence families only).
    pub format: DataFormat,
    /// With `format: npy`: the labels, one per window.
    pub labels_path: Option<PathBuf>,
    /// A separate test file (NSL-KDD ships KDDTest+); when set, `test_size` is not used.
    pub test_path: Option<PathBuf>,
    pub header: bool,
    /// Column names for headerless files.
    pub columns: Vec<String>,
    pub label_column: String,
    pub drop_columns: Vec<String>,
    /// Like `drop_columns`, but a column that is not in the file is no error (identifiers that
    /// some exports of a dataset carry and others do not).
    pub drop_if_present: Vec<String>,
    pub duplicate_columns: DuplicateColumns,
    /// Columns to one-hot encode even though their values look numeric.
    pub categorical_columns: Vec<String>,
    /// Raw label → class name (e.g. NSL-KDD attack → category), applied before anything else.
    #[serde(deserialize_with = "label_map")]
    pub label_map: BTreeMap<String, String>,
    #[serde(deserialize_with = "label_list")]
    pub negative_labels: Vec<String>,
    #[serde(deserialize_with = "label_list")]
    pub positive_labels: Vec<String>,
    pub missing: MissingPolicy,
    pub transform: Transform,
    /// Columns for `transform`; empty: every numeric column that is non-negative and heavy-tailed
    /// (skewness above 2) on the training rows.
    pub transform_columns: Vec<String>,
    pub scaler: ScalerKind,
    pub quantile_output: QuantileOutput,
    pub n_quantiles: usize,
    /// Cut the largest class to at most this many times the other classes' rows together,
    /// in the training split only (null: keep every row).
    pub undersample: Option<f64>,
    /// Keep only the input columns a forest finds important, fitted on each run's (or cv
    /// fold's) training rows (null: keep every column).
    pub select_features: Option<SelectFeatures>,
    pub test_size: f64,
    pub val_size: f64,
    pub random_state: u64,
    pub use_augmented_data: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/sample.csv"),
            format: DataFormat::Csv,
            labels_path: None,
            test_path: None,
            header: true,
            columns: Vec::new(),
            label_column: "label".into(),
            drop_columns: Vec::new(),
            drop_if_present: Vec::new(),
            duplicate_columns: DuplicateColumns::Error,
            categorical_columns: Vec::new(),
            label_map: BTreeMap::new(),
            negative_labels: Vec::new(),
            positive_labels: Vec::new(),
            missing: MissingPolicy::ImputeMedian,
            transform: Transform::None,
            transform_columns: Vec::new(),
            scaler: ScalerKind::Standard,
            quantile_output: QuantileOutput::Uniform,
            n_quantiles: 1000,
            undersample: None,
            select_features: None,
            test_size: 0.2,
            val_size: 0.1,
            random_state: 42,
            use_augmented_data: false,
        }
    }
}

/// How the data files are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    Csv,
    Zeek,
    Npy,
}

/// A label value as a config may write it: text, or a YAML number or boolean
/// (`negative_labels: [0]`, `label_map: {1: attack}`), kept as its text; `data/labels.rs`
/// matches numbers by value, so `0` also matches a `0.0` cell.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct LabelText(String);

impl<'de> Deserialize<'de> for LabelText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a label value (text, number or boolean)")]
        enum Scalar {
            Text(String),
            Int(i64),
            Float(f64),
            Bool(bool),
        }
        Ok(LabelText(match Scalar::deserialize(d)? {
            Scalar::Text(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }))
    }
}

fn label_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    let values = Vec::<LabelText>::deserialize(d)?;
    Ok(values.into_iter().map(|v| v.0).collect())
}

fn label_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, String>, D::Error> {
    let map = BTreeMap::<LabelText, LabelText>::deserialize(d)?;
    Ok(map.into_iter().map(|(k, v)| (k.0, v.0)).collect())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointConfig {
    pub save_dir: PathBuf,
    /// Also keep `checkpoint_epoch_N.mpk` every N epochs (0: never).
    pub save_frequency: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            save_dir: PathBuf::from("checkpoints"),
            save_frequency: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// TensorBoard runs go to `<tensorboard_dir>/<run_name>`; default name: `run-<UTC time>`.
    pub run_name: Option<String>,
    pub tensorboard_dir: PathBuf,
    pub log_dir: PathBuf,
    /// Write Train/BatchLoss every N batches (0: never).
    pub batch_log_every: usize,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            run_name: None,
            tensorboard_dir: PathBuf::from("runs"),
            log_dir: PathBuf::from("logs"),
            batch_log_every: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The first GPU adapter, else the CPU.
    Auto,
    Cpu,
    /// burn's wgpu backend (Vulkan, Metal, DX12, OpenGL).
    Gpu,
    /// burn's CUDA backend (a build with the `cuda` feature).
    Cuda,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceConfig {
    pub backend: Backend,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Auto,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrossValidationConfig {
    pub n_splits: usize,
    pub shuffle: bool,
    pub random_state: u64,
    pub stratify: bool,
    pub final_model: bool,
}

impl Default for CrossValidationConfig {
    fn default() -> Self {
        Self {
            n_splits: 5,
            shuffle: true,
            random_state: 42,
            stratify: true,
            final_model: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HuggingFaceConfig {
    pub repo_id: Option<String>,
    pub private: bool,
    pub push_to_hub: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResampleStrategy {
    Oversample,
    Undersample,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentationConfig {
    pub enabled: bool,
    pub noise_scale: f64,
    pub target_positive_ratio: f64,
    pub strategy: ResampleStrategy,
    pub clip: bool,
    pub output_dir: PathBuf,
}

impl Default for AugmentationConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            noise_scale: 0.1,
            target_positive_ratio: 0.3,
            strategy: ResampleStrategy::Oversample,
            clip: true,
            output_dir: PathBuf::from("data/augmented"),
        }
    }
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
        self.model.cnn_lstm.validate(s.length)
    }

    /// Every range and cross-key check, once; code past this point trusts the config.
    pub fn validate(&self) -> Result<()> {
        let m = &self.model;
        if m.hidden_dims.is_empty() || m.hidden_dims.contains(&0) {
            bail_input!("model.hidden_dims: expected a non-empty list of positive sizes");
        }
        if !(0.0..1.0).contains(&m.dropout) {
            bail_input!(
                "model.dropout: expected a value in [0, 1), got {}",
                m.dropout
            );
        }
        let f = &m.isolation_forest;
        if f.n_trees == 0 || f.sample_size < 2 {
            bail_input!(
                "model.isolation_forest: expected n_trees >= 1 and sample_size >= 2, got {} and {}",
                f.n_trees,
                f.sample_size
            );
        }
        if !(f.max_features > 0.0 && f.max_features <= 1.0) {
            bail_input!(
                "model.isolation_forest.max_features: expected a share in (0, 1], got {}",
                f.max_features
            );
        }
        let k = &m.kmeans;
        if k.k == 0 || k.n_init == 0 || k.max_iter == 0 || k.tol.is_nan() || k.tol < 0.0 {
            bail_input!(
                "model.kmeans: expected k, n_init and max_iter >= 1 and tol >= 0, got {}, {}, {} and {}",
                k.k,
                k.n_init,
                k.max_iter,
                k.tol
            );
        }
        if m.lof.n_neighbors == 0 || m.lof.max_fit_rows < 2 {
            bail_input!(
                "model.lof: expected n_neighbors >= 1 and max_fit_rows >= 2, got {} and {}",
                m.lof.n_neighbors,
                m.lof.max_fit_rows
            );
        }
        let db = &m.dbscan;
        if !(db.eps > 0.0 && db.eps.is_finite()) || db.min_samples == 0 || db.max_fit_rows < 2 {
            bail_input!(
                "model.dbscan: expected eps > 0, min_samples >= 1 and max_fit_rows >= 2, got {}, {} and {}",
                db.eps,
                db.min_samples,
                db.max_fit_rows
            );
        }
        let svm = &m.one_class_svm;
        let gamma_ok = match svm.gamma {
            Gamma::Value(g) => g > 0.0 && g.is_finite(),
            Gamma::Scale(_) => true,
        };
        if !(svm.nu > 0.0 && svm.nu <= 1.0 && gamma_ok) || svm.max_fit_rows < 2 {
            bail_input!(
                "model.one_class_svm: expected nu in (0, 1], gamma `scale` or a number > 0 and max_fit_rows >= 2, got {}, {:?} and {}",
                svm.nu,
                svm.gamma,
                svm.max_fit_rows
            );
        }
        if svm.tol.is_nan() || svm.tol <= 0.0 || svm.max_iter == 0 {
            bail_input!(
                "model.one_class_svm: expected tol > 0 and max_iter >= 1, got {} and {}",
                svm.tol,
                svm.max_iter
            );
        }
        let ae = &m.autoencoder.hidden_dims;
        if ae.is_empty() || ae.contains(&0) {
            bail_input!(
                "model.autoencoder.hidden_dims: expected a non-empty list of positive sizes"
            );
        }
        m.ensemble.validate()?;
        self.validate_sequence()?;
        let rf = &m.random_forest;
        let share_ok = match rf.max_features {
            MaxFeatures::Fraction(f) => f > 0.0 && f <= 1.0,
            MaxFeatures::Named(_) => true,
        };
        if rf.n_trees == 0 || rf.min_samples_leaf == 0 || rf.max_depth == Some(0) || !share_ok {
            bail_input!(
                "model.random_forest: expected n_trees, min_samples_leaf and max_depth >= 1 and max_features sqrt, log2, all or a fraction in (0, 1], got {}, {}, {:?} and {:?}",
                rf.n_trees,
                rf.min_samples_leaf,
                rf.max_depth,
                rf.max_features
            );
        }
        let gb = &m.gradient_boosting;
        let rates_ok = gb.learning_rate > 0.0
            && gb.learning_rate <= 1.0
            && gb.subsample > 0.0
            && gb.subsample <= 1.0
            && gb.l2 >= 0.0
            && gb.min_child_weight >= 0.0;
        if gb.n_rounds == 0 || gb.max_depth == 0 || gb.early_stopping_rounds == 0 || !rates_ok {
            bail_input!(
                "model.gradient_boosting: expected n_rounds, max_depth and early_stopping_rounds >= 1, learning_rate and subsample in (0, 1], l2 and min_child_weight >= 0"
            );
        }
        if gb.max_leaves.is_some_and(|l| l < 2) {
            bail_input!("model.gradient_boosting.max_leaves: expected 2 or more (or null)");
        }
        if !(2..=256).contains(&gb.max_bins) {
            bail_input!(
                "model.gradient_boosting.max_bins: expected 2 to 256, got {}",
                gb.max_bins
            );
        }
        if !(2..=256).contains(&rf.max_bins) {
            bail_input!(
                "model.random_forest.max_bins: expected 2 to 256, got {}",
                rf.max_bins
            );
        }
        if !m.kind.is_classifier() && self.task == Task::Multiclass {
            bail_input!(
                "task: multiclass needs a classifier; model.kind {:?} is an unsupervised detector (use task: binary)",
                m.kind
            );
        }
        let t = &self.training;
        if t.epochs == 0 {
            bail_input!("training.epochs: expected at least 1");
        }
        if t.batch_size == 0 {
            bail_input!("training.batch_size: expected at least 1");
        }
        if !(t.learning_rate > 0.0 && t.learning_rate.is_finite()) {
            bail_input!(
                "training.learning_rate: expected a positive number, got {}",
                t.learning_rate
            );
        }
        if t.weight_decay.is_nan() || t.weight_decay < 0.0 {
            bail_input!(
                "training.weight_decay: expected >= 0, got {}",
                t.weight_decay
            );
        }
        if !(0.0..1.0).contains(&t.momentum) {
            bail_input!(
                "training.momentum: expected a value in [0, 1), got {}",
                t.momentum
            );
        }
        if t.scheduler == SchedulerKind::Step
            && (t.step_size == 0 || t.gamma.is_nan() || t.gamma <= 0.0)
        {
            bail_input!(
                "training.step_size/gamma: the step scheduler needs step_size >= 1 and gamma > 0"
            );
        }
        let rates_ok = t.min_learning_rate >= 0.0 && t.max_learning_rate > t.min_learning_rate;
        match t.scheduler {
            SchedulerKind::Cosine if t.min_learning_rate.is_nan() || t.min_learning_rate < 0.0 => {
                bail_input!("training.min_learning_rate: expected >= 0")
            }
            SchedulerKind::Cyclic if !rates_ok || t.cycle_steps == 0 => bail_input!(
                "training.min_learning_rate/max_learning_rate/cycle_steps: the cyclic scheduler \
                 needs 0 <= min_learning_rate < max_learning_rate and cycle_steps >= 1"
            ),
            SchedulerKind::Plateau if !(t.gamma > 0.0 && t.gamma < 1.0) => bail_input!(
                "training.gamma: the plateau scheduler needs a factor in (0, 1), got {}",
                t.gamma
            ),
            _ => {}
        }
        if let Some(c) = t.grad_clip
            && !(c > 0.0 && c.is_finite())
        {
            bail_input!("training.grad_clip: expected a positive number, got {c}");
        }
        if let Some(ClassWeights::Values(w)) = &t.class_weights
            && w.iter().any(|v| !(*v > 0.0 && v.is_finite()))
        {
            bail_input!("training.class_weights: expected `auto` or a list of positive numbers");
        }
        if self.task == Task::Multiclass && t.pos_weight.is_some() {
            bail_input!(
                "training.pos_weight: binary only; multiclass weighs classes with training.class_weights"
            );
        }
        if self.task == Task::Binary && t.class_weights.is_some() {
            bail_input!(
                "training.class_weights: multiclass only; binary weighs positives with training.pos_weight"
            );
        }
        if t.early_stopping.min_delta.is_nan() || t.early_stopping.min_delta < 0.0 {
            bail_input!("training.early_stopping.min_delta: expected >= 0");
        }
        if let Some(PosWeight::Value(w)) = t.pos_weight
            && !(w > 0.0 && w.is_finite())
        {
            bail_input!("training.pos_weight: expected `auto` or a positive number, got {w}");
        }
        match t.threshold {
            ThresholdChoice::Fixed(p) if !p.is_finite() => {
                bail_input!("training.threshold: expected a number, got {p}")
            }
            ThresholdChoice::Fixed(p)
                if m.kind.scores_in_unit_interval() && !(p > 0.0 && p < 1.0) =>
            {
                bail_input!(
                    "training.threshold: expected a probability in (0, 1), `max_f1`, `youden`, \
                 {{contamination: r}}, {{normal_quantile: q}} or {{target_fpr: f}}, got {p}"
                )
            }
            ThresholdChoice::Contamination { contamination: r } if !(r > 0.0 && r <= 0.5) => {
                bail_input!(
                    "training.threshold.contamination: expected a share in (0, 0.5], got {r}"
                )
            }
            ThresholdChoice::NormalQuantile { normal_quantile: q } if !(q > 0.0 && q < 1.0) => {
                bail_input!(
                    "training.threshold.normal_quantile: expected a value in (0, 1), got {q}"
                )
            }
            ThresholdChoice::TargetFpr { target_fpr: f } if !(f > 0.0 && f < 1.0) => {
                bail_input!("training.threshold.target_fpr: expected a rate in (0, 1), got {f}")
            }
            _ => {}
        }
        let d = &self.data;
        if d.test_path.is_none() && !(d.test_size > 0.0 && d.test_size < 1.0) {
            bail_input!(
                "data.test_size: expected a value in (0, 1), got {}",
                d.test_size
            );
        }
        if !(d.val_size > 0.0 && d.val_size < 1.0) {
            bail_input!(
                "data.val_size: expected a value in (0, 1), got {}",
                d.val_size
            );
        }
        if d.test_path.is_none() && d.test_size + d.val_size >= 1.0 {
            bail_input!(
                "data.test_size + data.val_size: expected a sum below 1, got {}",
                d.test_size + d.val_size
            );
        }
        if !d.header && d.columns.is_empty() {
            bail_input!(
                "data.columns: a headerless file (data.header: false) needs the column names"
            );
        }
        if d.label_column.trim().is_empty() {
            bail_input!("data.label_column: expected a column name");
        }
        if !d.negative_labels.is_empty() && !d.positive_labels.is_empty() {
            bail_input!("data.negative_labels and data.positive_labels: set one of them, not both");
        }
        if self.task == Task::Multiclass
            && d.negative_labels.is_empty()
            && d.positive_labels.is_empty()
        {
            bail_input!(
                "data.negative_labels: task multiclass needs the normal classes (or \
                 data.positive_labels, the anomalous ones) for its normal-vs-anomaly view"
            );
        }
        if d.n_quantiles < 2 {
            bail_input!(
                "data.n_quantiles: expected at least 2, got {}",
                d.n_quantiles
            );
        }
        if let Some(r) = d.undersample
            && !(r > 0.0 && r.is_finite())
        {
            bail_input!("data.undersample: expected a positive ratio (e.g. 1.0), got {r}");
        }
        if let Some(s) = &d.select_features {
            let ok = match (s.keep, s.min_importance) {
                (Some(k), None) => k >= 1,
                (None, Some(m)) => m > 0.0 && m < 1.0,
                _ => false,
            };
            if !ok || s.n_trees == 0 {
                bail_input!(
                    "data.select_features: expected `keep: K` (K >= 1) or `min_importance: x` (x in (0, 1)), one of them, and n_trees >= 1"
                );
            }
        }
        if self.checkpoint.save_dir.as_os_str().is_empty() {
            bail_input!("checkpoint.save_dir: expected a folder");
        }
        if let Some(name) = &self.logging.run_name
            && (name.is_empty() || name.contains(['/', '\\']))
        {
            bail_input!("logging.run_name: expected a plain name without slashes, got {name:?}");
        }
        if !(1..=64).contains(&self.training.shards) {
            bail_input!(
                "training.shards: expected 1 to 64 parts per batch, got {}",
                self.training.shards
            );
        }
        if !(1..=1000).contains(&self.feedback.weight) {
            bail_input!(
                "feedback.weight: expected a whole number from 1 to 1000 (each judged row counts as that many training rows), got {}",
                self.feedback.weight
            );
        }
        let hf = &self.huggingface;
        if hf.push_to_hub && hf.repo_id.is_none() {
            bail_input!("huggingface.repo_id: needed when huggingface.push_to_hub is true");
        }
        let cv = &self.cross_validation;
        if cv.n_splits < 2 {
            bail_input!(
                "cross_validation.n_splits: expected at least 2, got {}",
                cv.n_splits
            );
        }
        let a = &self.augmentation;
        if !(a.noise_scale >= 0.0 && a.noise_scale.is_finite()) {
            bail_input!(
                "augmentation.noise_scale: expected >= 0, got {}",
                a.noise_scale
            );
        }
        if !(a.target_positive_ratio > 0.0 && a.target_positive_ratio < 1.0) {
            bail_input!(
                "augmentation.target_positive_ratio: expected a value in (0, 1), got {}",
                a.target_positive_ratio
            );
        }
        Ok(())
    }

    /// This config with `--set key=value` overrides applied, validated again.
    pub fn with_overrides(&self, overrides: &[String]) -> Result<Config> {
        let mut value = serde_yaml::to_value(self).expect("a Config always serializes");
        for item in overrides {
            apply_override(&mut value, item)?;
        }
        Self::from_value(value)
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
    let path: Vec<&str> = key.trim().split('.').collect();
    if path.iter().any(|p| p.is_empty()) {
        bail_input!("--set {item}: expected section.key=value");
    }
    let new: serde_yaml::Value = serde_yaml::from_str(raw)
        .map_err(|e| bad_input(format!("--set {item}: the value is not valid YAML: {e}")))?;
    let mut node = root;
    for (i, part) in path.iter().enumerate() {
        let serde_yaml::Value::Mapping(map) = node else {
            bail_input!("--set {item}: {} is not a section", path[..i].join("."));
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
