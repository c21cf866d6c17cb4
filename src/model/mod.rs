//! The detector families, one module each, and the list that registers them. A family's
//! module owns its `model.<name>` config section (with its `check`), its fit, its stored
//! state and its [`Detector`] (`family.rs` says what a family answers); `detector.rs` is the
//! face they share, `network.rs` what the gradient-trained ones share. The rest are parts:
//! feature bins, neighbour search, the CPU inference path, host-drawn dropout masks.

pub mod autoencoder;
pub mod bins;
pub mod cnn_lstm;
pub mod cpu;
pub mod dbscan;
pub mod detector;
pub mod dropout;
pub mod ensemble;
pub mod family;
pub mod gates;
pub mod gradient_boosting;
pub mod hybrid;
pub mod isolation_forest;
pub mod kmeans;
pub mod lof;
#[cfg(feature = "flex")]
pub mod lstm;
pub mod mlp;
pub mod neighbors;
pub mod network;
#[cfg(feature = "flex")]
pub mod norm_pool;
pub mod one_class_svm;
pub mod random_forest;
pub mod rank;
pub mod zscore;

use anyhow::Result;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::bail_input;
use detector::Detector;
use family::{Facts, Family, Fit, FitData, Fitted, Section, Trainer, families, section};
pub use network::{
    Activation, ModelSpec, NamedTensor, Net, Network, NetworkState, activate, load_model,
    log_softmax_rows, model_bytes, probabilities, row_sums,
};

// The families. `ModelKind`, `ModelConfig` and `DetectorState` follow this list; checkpoints
// store the config's sections in its order, so a new family goes at the end.
families! {
    /// Linear → activation → dropout per hidden layer.
    Mlp "mlp" => mlp::MlpFamily,
    /// Each hidden layer adds batch norm and a skip connection (projected when widths differ).
    Resmlp "resmlp" => mlp::ResmlpFamily,
    /// Unsupervised: an isolation forest fitted on `training.fit_on` rows.
    IsolationForest "isolation_forest" { isolation_forest } => isolation_forest::IsolationForest,
    /// Unsupervised: distance to the nearest k-means centroid.
    Kmeans "kmeans" { kmeans } => kmeans::Kmeans,
    /// Unsupervised: local outlier factor in novelty mode.
    Lof "lof" { lof } => lof::Lof,
    /// Unsupervised: distance to the nearest DBSCAN core point.
    Dbscan "dbscan" { dbscan } => dbscan::Dbscan,
    /// Unsupervised: an RBF one-class SVM's negated decision value.
    OneClassSvm "one_class_svm" { one_class_svm } => one_class_svm::OneClassSvm,
    /// Unsupervised: a network's reconstruction error, trained by the gradient trainer on
    /// `training.fit_on` rows.
    Autoencoder "autoencoder" { autoencoder } => autoencoder::AutoencoderFamily,
    /// Unsupervised families fitted side by side, voting and combined.
    Ensemble "ensemble" { ensemble } => ensemble::Ensemble,
    /// A random forest classifier, binary or multiclass.
    RandomForest "random_forest" { random_forest } => random_forest::RandomForest,
    /// Gradient-boosted trees, binary or multiclass.
    GradientBoosting "gradient_boosting" { gradient_boosting } => gradient_boosting::GradientBoosting,
    /// A 1-D CNN then an LSTM over windows of consecutive flows (`sequence`), binary or
    /// multiclass.
    CnnLstm "cnn_lstm" { cnn_lstm } => cnn_lstm::CnnLstmFamily,
    /// Unsupervised: how many standard deviations a row's features stray from the fitted rows'.
    Zscore "zscore" { zscore } => zscore::Zscore,
    /// A classifier and an unsupervised detector fitted on normal rows, joined: attacks the
    /// labels know and traffic unlike normal.
    Hybrid "hybrid" { hybrid } => hybrid::Hybrid,
}

impl ModelKind {
    /// The supervised classifiers, which learn from labels (binary or multiclass).
    pub fn is_classifier(self) -> bool {
        self.facts().classifier
    }

    /// Families that score windows of consecutive flows (`sequence`), not single rows.
    pub fn is_sequence(self) -> bool {
        self.facts().sequence
    }

    /// Families trained by the gradient trainer.
    pub fn by_gradient(self) -> bool {
        self.trainer() == Trainer::Gradient
    }

    /// An unsupervised family fitted on its own: what an ensemble's members may be.
    pub fn can_be_member(self) -> bool {
        !self.is_classifier() && self.trainer() != Trainer::Members
    }

    /// Whether scores lie in (0, 1) (see [`Facts::unit_scores`]).
    pub fn scores_in_unit_interval(self) -> bool {
        self.facts().unit_scores
    }
}

impl ModelConfig {
    /// The MLPs' keys, then every family's section.
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
        self.check_sections()
    }
}

impl DetectorState {
    /// The family name, as `model.kind` spells it.
    pub fn family(&self) -> &'static str {
        self.kind().name()
    }

    /// An ensemble's member families, or a hybrid's classifier and detector, in order (empty
    /// for any other detector).
    pub fn members(&self) -> Vec<&'static str> {
        match self {
            DetectorState::Ensemble(e) => e.members.iter().map(|m| m.detector.family()).collect(),
            DetectorState::Hybrid(h) => vec![h.classifier.family(), h.detector.family()],
            _ => Vec::new(),
        }
    }
}

/// Runs `f` on a rayon pool of `threads` threads (tests of thread-count independence).
#[cfg(test)]
pub(crate) fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
        .install(f)
}

/// XOR on two uniform features (the class: whether their signs differ), with a third, noise:
/// what no single split, and no linear model, separates.
#[cfg(test)]
pub(crate) fn xor(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut x = Vec::new();
    let mut class = Vec::new();
    for _ in 0..n {
        let (a, b): (f32, f32) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
        x.extend([a, b, rng.random_range(-1.0..1.0)]);
        class.push(((a > 0.0) != (b > 0.0)) as u32);
    }
    (x, class)
}
