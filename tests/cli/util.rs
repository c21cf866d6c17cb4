//! A small harness: a temp folder per test, the binary run inside it, fixtures built in code.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics with the output when the run did not succeed.
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts a bad-input failure: exit 2, one `error:` line naming `culprit`, no panic.
    pub fn bad_input(self, culprit: &str) -> Run {
        assert_eq!(
            self.code, 2,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one line, got:\n{}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{}", self.stderr);
        assert!(
            self.stderr.contains(culprit),
            "{:?} does not name {culprit:?}",
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// Settings that keep a test run small and fast.
pub const FAST: &[&str] = &[
    "--set",
    "model.hidden_dims=[16, 8]",
    "--set",
    "training.epochs=4",
    "--set",
    "training.batch_size=32",
    "--set",
    "logging.run_name=t",
];

/// Settings that train a multiclass MLP on [`Sandbox::three_classes`] rows well.
pub const MULTICLASS: &[&str] = &[
    "--set",
    "task=multiclass",
    "--set",
    "data.negative_labels=[normal]",
    "--set",
    "training.epochs=30",
];

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, body: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, body).unwrap();
        p
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_anomaly"));
        c.current_dir(self.dir.path()).args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from_output(self.command(args).output().unwrap())
    }

    /// [`Sandbox::run`] with rayon's pool limited to `threads` threads.
    pub fn run_on_threads(&self, args: &[&str], threads: &str) -> Run {
        let mut c = self.command(args);
        Run::from_output(c.env("RAYON_NUM_THREADS", threads).output().unwrap())
    }

    /// `anomaly generate` into `rel` (the project's synthetic embedded-traffic schema).
    pub fn sample(&self, rel: &str, rows: usize, seed: u64) -> PathBuf {
        let (r, s) = (rows.to_string(), seed.to_string());
        self.run(&["generate", "--rows", &r, "--seed", &s, "--out", rel])
            .ok();
        self.path(rel)
    }

    /// `train` on `data` with [`FAST`] settings plus `extra`.
    pub fn train(&self, data: &str, extra: &[&str]) -> Run {
        let set = format!("data.path={data}");
        let mut args = vec!["train", "--quiet", "--set", &set];
        args.extend_from_slice(FAST);
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `cv` on `data` with [`FAST`] settings plus `extra`.
    pub fn cv(&self, data: &str, extra: &[&str]) -> Run {
        let set = format!("data.path={data}");
        let mut args = vec!["cv", "--quiet", "--set", &set];
        args.extend_from_slice(FAST);
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `predict --checkpoint <checkpoint> --data <data>` plus `extra`.
    pub fn predict(&self, checkpoint: &str, data: &str, extra: &[&str]) -> Run {
        let mut args = vec!["predict", "--checkpoint", checkpoint, "--data", data];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// Writes 600 rows of three classes (normal, dos, probe) told apart by `bytes` into `rel`,
    /// and returns the text.
    pub fn three_classes(&self, rel: &str) -> String {
        let mut body = String::from("bytes,duration,label\n");
        for i in 0..600 {
            let (label, base) = [("normal", 0.0), ("dos", 50.0), ("probe", 100.0)][i % 3];
            body += &format!(
                "{},{},{label}\n",
                base + (i % 17) as f64,
                (i * 7 % 23) as f64
            );
        }
        self.write(rel, &body);
        body
    }

    /// The `score` column of `predict`'s CSV output (run without `--keep`).
    pub fn scores(predict_stdout: &str) -> Vec<f64> {
        predict_stdout
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
            .collect()
    }

    pub fn read_json(&self, rel: &str) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.path(rel)).unwrap()).unwrap()
    }

    pub fn test_json(&self, checkpoint: &str, extra: &[&str]) -> serde_json::Value {
        let mut args = vec!["test", "--checkpoint", checkpoint, "--json"];
        args.extend_from_slice(extra);
        self.run(&args).ok().json()
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }
}

/// `../shared/datasets/<name>` beside the repository, or `None` (with the reason printed).
pub fn shared_dataset(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/datasets")
        .join(name);
    if p.exists() {
        Some(p)
    } else {
        println!(
            "skipped: {} is absent (the shared datasets folder is not beside the repo)",
            p.display()
        );
        None
    }
}

/// A seeded stream of uniform numbers in [0, 1) (a 64-bit LCG's top 24 bits), for hand-made
/// CSV files.
pub fn uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f64 / (1u64 << 24) as f64
    }
}
