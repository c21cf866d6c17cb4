//! Integration tests: the built `anomaly` binary, run in temporary folders.

mod augment;
mod cv;
mod datasets;
mod errors;
mod tensorboard;
mod training;
mod util;
