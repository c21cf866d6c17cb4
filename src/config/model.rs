//! `model`: which family (`kind`) and each family's section. A family's facts (`Family`) are
//! answered in one exhaustive match, and each section checks its own keys.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::bail_input;

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

impl Default for IsolationForestConfig {
    fn default() -> Self {
        Self {
            n_trees: 100,
            sample_size: 256,
            max_features: 1.0,
        }
    }
}

impl IsolationForestConfig {
    fn check(&self) -> Result<()> {
        if self.n_trees == 0 || self.sample_size < 2 {
            bail_input!(
                "model.isolation_forest: expected n_trees >= 1 and sample_size >= 2, got {} and {}",
                self.n_trees,
                self.sample_size
            );
        }
        if !(self.max_features > 0.0 && self.max_features <= 1.0) {
            bail_input!(
                "model.isolation_forest.max_features: expected a share in (0, 1], got {}",
                self.max_features
            );
        }
        Ok(())
    }
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

impl LofConfig {
    fn check(&self) -> Result<()> {
        if self.n_neighbors == 0 || self.max_fit_rows < 2 {
            bail_input!(
                "model.lof: expected n_neighbors >= 1 and max_fit_rows >= 2, got {} and {}",
                self.n_neighbors,
                self.max_fit_rows
            );
        }
        Ok(())
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

impl DbscanConfig {
    fn check(&self) -> Result<()> {
        let db = self;
        if !(db.eps > 0.0 && db.eps.is_finite()) || db.min_samples == 0 || db.max_fit_rows < 2 {
            bail_input!(
                "model.dbscan: expected eps > 0, min_samples >= 1 and max_fit_rows >= 2, got {}, {} and {}",
                db.eps,
                db.min_samples,
                db.max_fit_rows
            );
        }
        Ok(())
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

impl OneClassSvmConfig {
    fn check(&self) -> Result<()> {
        let svm = self;
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
        Ok(())
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

impl AutoencoderConfig {
    fn check(&self) -> Result<()> {
        if self.hidden_dims.is_empty() || self.hidden_dims.contains(&0) {
            bail_input!(
                "model.autoencoder.hidden_dims: expected a non-empty list of positive sizes"
            );
        }
        Ok(())
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

impl RandomForestConfig {
    fn check(&self) -> Result<()> {
        let rf = self;
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
        if !(2..=256).contains(&rf.max_bins) {
            bail_input!(
                "model.random_forest.max_bins: expected 2 to 256, got {}",
                rf.max_bins
            );
        }
        Ok(())
    }
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

impl GradientBoostingConfig {
    fn check(&self) -> Result<()> {
        let gb = self;
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
        Ok(())
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
    fn check(&self) -> Result<()> {
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

impl KmeansConfig {
    fn check(&self) -> Result<()> {
        let k = self;
        if k.k == 0 || k.n_init == 0 || k.max_iter == 0 || k.tol.is_nan() || k.tol < 0.0 {
            bail_input!(
                "model.kmeans: expected k, n_init and max_iter >= 1 and tol >= 0, got {}, {}, {} and {}",
                k.k,
                k.n_init,
                k.max_iter,
                k.tol
            );
        }
        Ok(())
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

    pub fn check(&self, length: usize) -> Result<()> {
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

impl ModelConfig {
    /// Every family's section is checked, whichever family `kind` names, so a bad key in a
    /// section not used yet is caught before it is.
    pub fn check(&self) -> Result<()> {
        if self.hidden_dims.is_empty() || self.hidden_dims.contains(&0) {
            bail_input!("model.hidden_dims: expected a non-empty list of positive sizes");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail_input!(
                "model.dropout: expected a value in [0, 1), got {}",
                self.dropout
            );
        }
        self.isolation_forest.check()?;
        self.kmeans.check()?;
        self.lof.check()?;
        self.dbscan.check()?;
        self.one_class_svm.check()?;
        self.autoencoder.check()?;
        self.ensemble.check()?;
        self.random_forest.check()?;
        self.gradient_boosting.check()
    }
}
