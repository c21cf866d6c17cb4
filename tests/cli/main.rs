//! Integration tests: the built `anomaly` binary, run in temporary folders.

mod assess;
mod augment;
mod checkpoints;
mod cv;
mod dashboard;
mod datasets;
mod drift;
mod errors;
mod explain;
mod feedback;
mod flows;
mod gpu;
mod hub_server;
mod isa;
mod layers;
mod predict;
mod presets;
mod sequence;
mod serve;
mod tensorboard;
mod training;
mod trees;
mod unsupervised;
mod upload;
mod util;
mod zeek;
