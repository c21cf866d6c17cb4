//! `anomaly`: network-traffic anomaly detectors from flow-feature CSV files.
//!
//! The binary is a thin shell over these modules: `config` (typed YAML), `data` (read, label,
//! split, preprocess, generate), `model`, `train` (loop and checkpoints), `eval` (metrics),
//! `report` and `log` (what people and TensorBoard see), `cli` (one module per subcommand).

pub mod cli;
pub mod config;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod explain;
pub mod hub;
pub mod log;
pub mod model;
pub mod report;
pub mod score;
pub mod serve;
pub mod train;
