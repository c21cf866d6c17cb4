//! `anomaly`: network-traffic anomaly detectors from flow-feature CSV files.
//!
//! The binary is a thin shell over these modules, a one-way stack (ARCHITECTURE.md; the test
//! `layers` keeps it so): `config` (typed YAML), `data` and `flows` (read, label, split,
//! preprocess, encode records; packets to flows), `model` (the families), `eval` (metrics),
//! `checkpoint`, `score` (the one scorer), `explain`, `stream` (predict's pipeline), `train`,
//! `log`, `report` and `hub`, `tune` (hyperparameter search), `serve`, `cli` (one module per subcommand).

pub mod alerts;
pub mod checkpoint;
pub mod cli;
pub mod clock;
pub mod config;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod explain;
pub mod flows;
pub mod hub;
pub mod log;
pub mod model;
pub mod report;
pub mod score;
pub mod serve;
pub mod stream;
pub mod train;
pub mod tune;

/// Keeps freed memory in the process for the next allocation. Training allocates and frees
/// tensors of tens of MiB per step; glibc hands blocks above its mmap threshold back to the
/// kernel on every free, and each new one then faults its pages in again (an eighth of a
/// CNN+LSTM step's time). Call once, before threads start.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 1 << 28);
    }
}
