//! What a detector family is to the rest of the program: a [`Family`] answers its facts, its
//! config section, its stored state, how it is fitted and how it loads. The [`families!`]
//! macro turns the list in `model/mod.rs` into the three types that name every family —
//! `ModelKind`, `ModelConfig` and `DetectorState` — so that a new family is its module plus
//! one line there, and the compiler asks it for everything else.

use std::fmt::Debug;

use anyhow::Result;
use burn::tensor::Device;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::detector::Detector;
use super::gradient_boosting::Validation;
use super::network::NetworkState;
use super::random_forest::Labelled;
use crate::bail_input;

/// What the rest of the program needs to know of a family, beyond its name.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// A supervised classifier, which learns from labels (binary or multiclass).
    pub classifier: bool,
    /// Scores windows of consecutive flows (`sequence`), not single rows.
    pub sequence: bool,
    /// Scores lie in (0, 1), so that a fixed threshold must too (probabilities and the
    /// isolation forest's 2^(−depth) score); distances, LOF ratios and SVM decision values
    /// do not.
    pub unit_scores: bool,
}

/// Who fits a family.
pub enum Fit<Section, State> {
    /// The gradient trainer (epochs, early stopping, exact resume): a network.
    Gradient,
    /// Each member as a run of its own (the ensemble).
    Members,
    /// One pass over the training rows.
    OnePass(fn(&Section, &FitData) -> Result<Fitted<State>>),
}

/// [`Fit`] without the function, to dispatch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trainer {
    Gradient,
    Members,
    OnePass,
}

impl<Section, State> Fit<Section, State> {
    pub const fn trainer(&self) -> Trainer {
        match self {
            Fit::Gradient => Trainer::Gradient,
            Fit::Members => Trainer::Members,
            Fit::OnePass(_) => Trainer::OnePass,
        }
    }
}

/// What a one-pass fit learns from: the training split's encoded rows.
pub struct FitData<'a> {
    /// Row-major, `d` values per row.
    pub x: &'a [f32],
    pub d: usize,
    /// Each row's 0/1 label (all 0 when the file has none): a clustering family tells which
    /// clusters hold mostly anomalies.
    pub y: &'a [f32],
    /// The rows to learn from: `training.fit_on`'s for the unsupervised families.
    pub rows: &'a [usize],
    /// The classifiers': classes and their weights over every training row.
    pub labelled: Option<Labelled<'a>>,
    /// The classifiers': validation rows, for early stopping.
    pub validation: Option<Validation<'a>>,
    pub seed: u64,
}

impl<'a> FitData<'a> {
    /// The labelled rows a classifier learns from.
    pub fn labelled(&self, family: &str) -> Result<&Labelled<'a>> {
        match &self.labelled {
            Some(l) => Ok(l),
            None => bail_input!("model.kind {family} learns from labels; the data has none"),
        }
    }
}

/// A fitted state, with what to say about it.
pub struct Fitted<State> {
    pub state: State,
    /// One line for the log (`100 trees, 256 rows each`).
    pub said: String,
    /// A classifier's importance per feature, summing to 1.
    pub importance: Option<Vec<f32>>,
}

impl<State> Fitted<State> {
    pub fn new(state: State, said: String) -> Self {
        Fitted {
            state,
            said,
            importance: None,
        }
    }

    pub fn map<T>(self, f: impl FnOnce(State) -> T) -> Fitted<T> {
        Fitted {
            state: f(self.state),
            said: self.said,
            importance: self.importance,
        }
    }
}

/// A family's `model.<name>` section: typed, with defaults, checking its own keys.
pub trait Section: Default + Clone + PartialEq + Debug + Serialize + DeserializeOwned {
    fn check(&self) -> Result<()>;
}

/// The MLPs have no section of their own (they read `model.hidden_dims`, `dropout` and
/// `activation`).
impl Section for () {
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

/// A detector family.
pub trait Family {
    type Section: Section;
    /// What a checkpoint stores of a fitted detector.
    type State: Clone + PartialEq + Debug + Serialize + DeserializeOwned;
    const FACTS: Facts;
    const FIT: Fit<Self::Section, Self::State>;
    /// The detector, ready to score on `device`.
    fn load(state: &Self::State, device: &Device) -> Result<Box<dyn Detector>>;
    /// A gradient family's network, which is its state.
    fn as_network(_state: &Self::State) -> Option<&NetworkState> {
        None
    }
    /// A trained network as this family's state (`None`: not a network family).
    fn from_network(_network: NetworkState) -> Option<Self::State> {
        None
    }
}

/// A family the gradient trainer fits: its state is its network.
pub trait NetworkFamily {
    type Section: Section;
    const FACTS: Facts;
}

impl<T: NetworkFamily> Family for T {
    type Section = T::Section;
    type State = NetworkState;
    const FACTS: Facts = T::FACTS;
    const FIT: Fit<T::Section, NetworkState> = Fit::Gradient;

    fn load(state: &NetworkState, device: &Device) -> Result<Box<dyn Detector>> {
        Ok(Box::new(state.network(device)?))
    }

    fn as_network(state: &NetworkState) -> Option<&NetworkState> {
        Some(state)
    }

    fn from_network(network: NetworkState) -> Option<NetworkState> {
        Some(network)
    }
}

/// A family's section in `ModelConfig`, or `()` for a family without one.
macro_rules! section {
    ($config:ident) => {
        &()
    };
    ($config:ident, $section:ident) => {
        &$config.$section
    };
}

/// Declares the families, each as `Variant "name" { section } => FamilyType,` (`{ section }`
/// when it has a `model.<section>` of its own), and from them:
/// - `ModelKind`, what `model.kind` names, with each family's name, facts and trainer;
/// - `ModelConfig`, the `model` section: `kind`, the MLPs' shared keys, then each family's
///   section in the order listed (checkpoints store the config in this order);
/// - `DetectorState`, what a checkpoint stores: the family's name and its state.
macro_rules! families {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident $name:literal $({ $section:ident })? => $family:ty,
    )*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum ModelKind {
            $( $(#[doc = $doc])* #[serde(rename = $name)] $variant, )*
        }

        impl ModelKind {
            /// Every family, in the order listed.
            pub const ALL: &[ModelKind] = &[$( ModelKind::$variant, )*];

            /// The name `model.kind` spells.
            pub fn name(self) -> &'static str {
                match self { $( ModelKind::$variant => $name, )* }
            }

            pub fn facts(self) -> Facts {
                match self { $( ModelKind::$variant => <$family as Family>::FACTS, )* }
            }

            pub fn trainer(self) -> Trainer {
                match self { $( ModelKind::$variant => <$family as Family>::FIT.trainer(), )* }
            }
        }

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct ModelConfig {
            pub kind: ModelKind,
            /// The MLPs' (`mlp`, `resmlp`) hidden layer widths, dropout and activation.
            pub hidden_dims: Vec<usize>,
            pub dropout: f64,
            pub activation: Activation,
            $( $( pub $section: <$family as Family>::Section, )? )*
        }

        impl Default for ModelConfig {
            fn default() -> Self {
                Self {
                    kind: ModelKind::Mlp,
                    hidden_dims: vec![128, 64, 32],
                    dropout: 0.3,
                    activation: Activation::Relu,
                    $( $( $section: Default::default(), )? )*
                }
            }
        }

        impl ModelConfig {
            /// Every family's section, whichever family `kind` names, so that a bad key in a
            /// section not used yet is caught before it is.
            fn check_sections(&self) -> anyhow::Result<()> {
                $( $( Section::check(&self.$section)?; )? )*
                Ok(())
            }

            /// Fits the one-pass family `kind` names on `data`.
            pub fn fit(&self, data: &FitData) -> anyhow::Result<Fitted<DetectorState>> {
                let config = self;
                match self.kind {
                    $( ModelKind::$variant => match <$family as Family>::FIT {
                        Fit::OnePass(fit) => Ok(fit(section!(config $(, $section)?), data)?
                            .map(DetectorState::$variant)),
                        Fit::Gradient | Fit::Members => {
                            anyhow::bail!("{} is not fitted in one pass", $name)
                        }
                    }, )*
                }
            }
        }

        /// A fitted detector as checkpoints store it: the family's name and its state.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "family", content = "payload")]
        pub enum DetectorState {
            $( #[serde(rename = $name)] $variant(<$family as Family>::State), )*
        }

        impl DetectorState {
            pub fn kind(&self) -> ModelKind {
                match self { $( DetectorState::$variant(_) => ModelKind::$variant, )* }
            }

            /// Builds the detector on `device`.
            pub fn load(&self, device: &Device) -> anyhow::Result<Box<dyn Detector>> {
                match self { $( DetectorState::$variant(s) => <$family as Family>::load(s, device), )* }
            }

            /// The neural payload, for families trained by gradient descent.
            pub fn as_network(&self) -> Option<&NetworkState> {
                match self { $( DetectorState::$variant(s) => <$family as Family>::as_network(s), )* }
            }

            /// A trained network's state (`spec.kind` names the family).
            pub fn from_network(network: NetworkState) -> anyhow::Result<DetectorState> {
                let kind = network.spec.kind;
                let state = match kind {
                    $( ModelKind::$variant => <$family as Family>::from_network(network)
                        .map(DetectorState::$variant), )*
                };
                state.ok_or_else(|| crate::error::bad_input(format!(
                    "a network stored as model kind {}, which is not a neural family",
                    kind.name()
                )))
            }
        }
    };
}

pub(crate) use {families, section};
