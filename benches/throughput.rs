//! Throughput and memory of anomaly's hot paths, with the protocol of the PyTorch/pandas
//! reference scripts in ../shared/peers, so `benches/compare.sh` can put them side by side.
//!
//!   cargo bench --bench throughput -- [--rows 1000000] [--reps 3] [--csv-rows 1000000]
//!                                     [--scaling-rows 100000,1000000,4000000]
//!                                     [--skip-csv] [--skip-scaling] [--json PATH] [--csv-out PATH]
//!                                     [--shards N] [--train-only] [--batches 64,256,1024,4096]
//!                                     [--device cpu|gpu|cuda]
//!
//! (a) training samples/s of the default MLP (17 → 128 → 64 → 32 → 1, ReLU, dropout 0.3, Adam,
//!     BCE-with-logits) on in-memory synthetic rows at batch 64, 256, 1024, 4096: 262,144 samples
//!     per repetition, median of `--reps`; (b) inference samples/s at batch 4096 over all rows,
//!     and the `test` path (read CSV, encode, predict, metrics) in rows/s; (c) CSV ingestion of a
//!     generated rows × 80 numeric CSV with a string label, plain and gzip; (d) peak RSS of
//!     loading it, measured in a child process, against the size of the f32 matrix + labels;
//! (e) how an epoch's cost grows with rows: one full training pass at the default batch size
//!     over each of `--scaling-rows` synthetic rows, as time per row against the middle size.
//!
//! `--device gpu` (wgpu; a software adapter with ANOMALY_ALLOW_SOFTWARE_GPU=1) or `cuda` times
//! (a) and (b) on that device, with the training rows resident there as `anomaly train` keeps
//! them, and reports the first pass's start-up overhead and the host reads per pass.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anomaly::config::{DataConfig, Task, TrainingConfig};
use anomaly::data::read::{TableSpec, read_table};
use anomaly::data::{Dataset, read_labeled};
use anomaly::device::{Backend, DeviceConfig};
use anomaly::eval::Metrics;
use anomaly::model::ModelConfig;
use anomaly::model::mlp::Mlp;
use anomaly::model::{ModelSpec, Network};
use anomaly::train::{Feed, Objective, optimizer, run_epoch};
use common::{median, peak_rss_kib};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use serde_json::json;

const FEATURES: usize = 17;
const SAMPLES_PER_REP: usize = 262_144;

struct Args {
    rows: usize,
    reps: usize,
    csv_rows: usize,
    skip_csv: bool,
    scaling_rows: Vec<usize>,
    json: Option<PathBuf>,
    csv_out: Option<PathBuf>,
    load_only: Option<PathBuf>,
    /// `training.shards` of the training loop.
    shards: usize,
    /// Skip the inference, test-path and CSV parts: training only.
    train_only: bool,
    /// The training batch sizes.
    batches: Vec<usize>,
    device: Backend,
}

fn args() -> Args {
    let mut a = Args {
        rows: 1_000_000,
        reps: 3,
        csv_rows: 1_000_000,
        skip_csv: false,
        scaling_rows: vec![100_000, 1_000_000, 4_000_000],
        json: None,
        csv_out: None,
        load_only: None,
        shards: TrainingConfig::default().shards,
        train_only: false,
        batches: vec![64, 256, 1024, 4096],
        device: Backend::Cpu,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--rows" => a.rows = value().parse().expect("--rows N"),
            "--reps" => a.reps = value().parse().expect("--reps N"),
            "--csv-rows" => a.csv_rows = value().parse().expect("--csv-rows N"),
            "--skip-csv" => a.skip_csv = true,
            "--skip-scaling" => a.scaling_rows.clear(),
            "--scaling-rows" => {
                a.scaling_rows = value()
                    .split(',')
                    .map(|n| n.parse().expect("--scaling-rows N,N,..."))
                    .collect()
            }
            "--json" => a.json = Some(value().into()),
            "--csv-out" => a.csv_out = Some(value().into()),
            "--load-only" => a.load_only = Some(value().into()),
            "--shards" => a.shards = value().parse().expect("--shards N"),
            "--train-only" => a.train_only = true,
            "--batches" => {
                a.batches = value()
                    .split(',')
                    .map(|n| n.parse().expect("--batches N,N,..."))
                    .collect()
            }
            "--device" => {
                a.device = match value().as_str() {
                    "cpu" => Backend::Cpu,
                    "gpu" => Backend::Gpu,
                    "cuda" => Backend::Cuda,
                    other => panic!("--device cpu|gpu|cuda, not {other}"),
                }
            }
            "--bench" => {} // cargo bench passes this
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// Standard-normal features; labels from a noisy linear rule, about 10% positive.
fn synthetic(rows: usize, seed: u64) -> Dataset {
    let mut rng = StdRng::seed_from_u64(seed);
    let w: Vec<f32> = (0..FEATURES)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let mut x = Vec::with_capacity(rows * FEATURES);
    let mut score = Vec::with_capacity(rows);
    for _ in 0..rows {
        let row: Vec<f32> = (0..FEATURES)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        let noise: f32 = StandardNormal.sample(&mut rng);
        score.push(row.iter().zip(&w).map(|(a, b)| a * b).sum::<f32>() + noise);
        x.extend(row);
    }
    let mut sorted = score.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let cut = sorted[rows * 9 / 10];
    let y = score.iter().map(|&s| (s > cut) as u8 as f32).collect();
    Dataset {
        x,
        y,
        n_features: FEATURES,
        ..Default::default()
    }
}

fn flow_spec() -> TableSpec {
    TableSpec {
        header: true,
        label_column: "Label".into(),
        ..Default::default()
    }
}

/// rows × 80 numeric columns and a string label (BENIGN or an attack name).
fn write_flow_csv(path: &Path, rows: usize) {
    let mut rng = StdRng::seed_from_u64(7);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let header: Vec<String> = (0..80)
        .map(|i| format!("f{i}"))
        .chain(["Label".to_string()])
        .collect();
    writeln!(out, "{}", header.join(",")).unwrap();
    let mut line = String::new();
    for _ in 0..rows {
        line.clear();
        for j in 0..80 {
            use std::fmt::Write as _;
            match j % 4 {
                0 => write!(line, "{},", rng.random_range(0..65536)).unwrap(),
                1 => write!(line, "{:.6},", rng.random::<f64>()).unwrap(),
                2 => write!(line, "{:.2},", rng.random::<f64>() * 1e6).unwrap(),
                _ => write!(line, "{},", rng.random_range(0..10)).unwrap(),
            }
        }
        line.push_str(if rng.random_bool(0.8) {
            "BENIGN"
        } else {
            "DDoS"
        });
        writeln!(out, "{line}").unwrap();
    }
}

fn main() -> anyhow::Result<()> {
    anomaly::keep_freed_memory();
    let a = args();
    if let Some(path) = &a.load_only {
        // Child mode for (d): load, touch the result, report the peak.
        let t = read_table(path, &flow_spec())?;
        println!("{} {}", t.n_rows(), peak_rss_kib());
        return Ok(());
    }
    let selected = anomaly::device::select(&DeviceConfig { backend: a.device })?;
    let device = selected.device;
    let mut results = json!({ "rows": a.rows, "reps": a.reps, "device": selected.note, "train": [], "infer": [], "scaling": [] });
    println!(
        "anomaly {} benchmark on {} ({} CPUs)",
        env!("CARGO_PKG_VERSION"),
        selected.note,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // (a) training throughput
    let data = synthetic(a.rows, 1);
    let training = TrainingConfig::default();
    let spec = ModelSpec::new(FEATURES, 1, &ModelConfig::default());
    let ad = device.clone().autodiff();
    ad.seed(1);
    let mut rng = StdRng::seed_from_u64(2);
    let objective = Objective::Binary { pos_weight: 1.0 };
    let started = Instant::now();
    let feed = Feed::new(&data, &objective, &ad);
    let mut first_pass = true;
    for &batch in &a.batches {
        let mut model = spec.init(&ad);
        let mut optim = optimizer(&training);
        let mut rates = Vec::new();
        for rep in 0..=a.reps {
            let mut order: Vec<usize> = (0..a.rows).collect();
            order.shuffle(&mut rng);
            // The first repetition warms up (allocations, caches) and is not counted.
            let take = if rep == 0 {
                (batch * 20).min(a.rows)
            } else {
                SAMPLES_PER_REP.min(a.rows)
            };
            let t = Instant::now();
            let reads = anomaly::device::host_reads();
            let (m, _) = run_epoch(
                model,
                &mut optim,
                &feed,
                &order[..take],
                batch,
                &objective,
                &|_| 1e-3,
                rep as u64,
                &ad,
                a.shards,
                &mut |_| {},
            )?;
            model = m;
            let secs = t.elapsed().as_secs_f64();
            if rep > 0 {
                rates.push(take as f64 / secs);
            } else if first_pass {
                // From the upload of the rows to the end of the first pass: kernel compilation,
                // autotuning and allocation, on top of the pass's own steady cost (below).
                first_pass = false;
                results["first_pass"] =
                    json!({ "rows": take, "batch": batch, "s": started.elapsed().as_secs_f64() });
            }
            if rep == a.reps {
                let steps = take.div_ceil(batch);
                let reads = anomaly::device::host_reads() - reads;
                println!("  batch {batch}: {steps} steps per pass, {reads} host reads");
            }
        }
        let r = median(rates.clone());
        println!(
            "train batch {batch:5}: {r:>12.0} samples/s  (reps {:?})",
            rates.iter().map(|v| v.round()).collect::<Vec<_>>()
        );
        if let Some(first) = results["first_pass"]
            .as_object_mut()
            .filter(|f| f["batch"] == batch)
        {
            let (rows, s) = (
                first["rows"].as_f64().unwrap(),
                first["s"].as_f64().unwrap(),
            );
            let overhead = s - rows / r;
            first.insert("overhead_s".into(), json!(overhead));
            println!(
                "first pass ({rows} rows, from the upload): {s:.2} s, {overhead:.2} s over a steady pass"
            );
        }
        results["train"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "batch": batch, "samples_per_s": r, "all": rates }));
    }
    if a.train_only {
        return Ok(());
    }

    // (b) inference and the test path
    let model = spec.init(&device);
    let mut rates = Vec::new();
    let reads = anomaly::device::host_reads();
    for _ in 0..a.reps {
        let t = Instant::now();
        let p = Network::new(&model, &device)?.probabilities(&data.x)?;
        assert_eq!(p.len(), a.rows);
        rates.push(a.rows as f64 / t.elapsed().as_secs_f64());
    }
    if !anomaly::device::is_cpu(&device) {
        let reads = (anomaly::device::host_reads() - reads) / a.reps as u64;
        println!("  inference over {} rows: {reads} host reads", a.rows);
    }
    let infer = median(rates);
    // The scorer's own batches: 512 rows per rayon task on the CPU, 65,536 on a GPU.
    let infer_batch = if anomaly::device::is_cpu(&device) {
        512
    } else {
        65_536
    };
    println!("inference batch {infer_batch}: {infer:>10.0} samples/s");
    results["infer"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "batch": infer_batch, "samples_per_s": infer }));

    let dir = tempfile::tempdir()?;
    let test_csv = dir.path().join("test.csv");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&test_csv)?);
        let names: Vec<String> = (0..FEATURES).map(|i| format!("x{i}")).collect();
        writeln!(out, "{},label", names.join(","))?;
        for r in 0..a.rows {
            let row: Vec<String> = data.x[r * FEATURES..(r + 1) * FEATURES]
                .iter()
                .map(|v| v.to_string())
                .collect();
            writeln!(out, "{},{}", row.join(","), data.y[r])?;
        }
    }
    let cfg = DataConfig {
        path: test_csv.clone(),
        ..Default::default()
    };
    let fitted = read_labeled(&test_csv, &cfg, Task::Binary, None)?;
    let rows: Vec<usize> = (0..fitted.y.len()).collect();
    let (pre, _) = anomaly::data::preprocess::Preprocessor::fit(
        &fitted.table,
        &rows,
        &cfg,
        Default::default(),
    )?;
    drop(fitted);
    let mut rates = Vec::new();
    for _ in 0..a.reps {
        let t = Instant::now();
        let (ds, _) = anomaly::data::prepare_evaluation(
            &anomaly::config::Config {
                data: cfg.clone(),
                ..Default::default()
            },
            &pre,
            Some(&test_csv),
        )?;
        let probs = Network::new(&model, &device)?.probabilities(&ds.x)?;
        let m = Metrics::compute(&probs, &ds.y, 0.5);
        assert_eq!(m.rows, a.rows);
        rates.push(a.rows as f64 / t.elapsed().as_secs_f64());
    }
    let test_path = median(rates);
    println!("test path (read, encode, predict, metrics): {test_path:>10.0} rows/s");
    results["test_path_rows_per_s"] = json!(test_path);

    // (c, d) CSV ingestion and peak memory
    if !a.skip_csv {
        let plain = a
            .csv_out
            .clone()
            .unwrap_or_else(|| dir.path().join("flows.csv"));
        write_flow_csv(&plain, a.csv_rows);
        let gz = dir.path().join("flows.csv.gz");
        {
            let mut enc = flate2::write::GzEncoder::new(
                std::fs::File::create(&gz)?,
                flate2::Compression::default(),
            );
            std::io::copy(&mut std::fs::File::open(&plain)?, &mut enc)?;
            enc.finish()?;
        }
        for (name, path) in [("plain", &plain), ("gzip", &gz)] {
            let size = std::fs::metadata(path)?.len() as f64;
            let mut times = Vec::new();
            for _ in 0..a.reps {
                let t = Instant::now();
                let table = read_table(path, &flow_spec())?;
                let y = anomaly::data::labels::binarize(
                    &table.labels,
                    &DataConfig {
                        negative_labels: vec!["BENIGN".into()],
                        ..Default::default()
                    },
                )?;
                assert_eq!(y.len(), a.csv_rows);
                times.push(t.elapsed().as_secs_f64());
            }
            let t = median(times);
            println!(
                "csv {name:5}: {:>10.0} rows/s, {:>7.1} MB/s ({:.0} MB as stored)",
                a.csv_rows as f64 / t,
                size / t / 1e6,
                size / 1e6
            );
            results[format!("csv_{name}")] = json!({ "rows_per_s": a.csv_rows as f64 / t, "mb_per_s": size / t / 1e6, "bytes": size });
        }
        let out = std::process::Command::new(std::env::current_exe()?)
            .args(["--load-only", plain.to_str().unwrap()])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let peak_kib: f64 = text
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN);
        let matrix_mib = (a.csv_rows * 80 * 4 + a.csv_rows * 4) as f64 / 1048576.0;
        let peak_mib = peak_kib / 1024.0;
        println!(
            "peak RSS loading it: {peak_mib:.0} MiB = {:.2} × the f32 matrix + labels ({matrix_mib:.0} MiB)",
            peak_mib / matrix_mib
        );
        results["load_peak_rss_mib"] = json!(peak_mib);
        results["load_matrix_mib"] = json!(matrix_mib);
    }
    // (e) epoch time against rows
    if !a.scaling_rows.is_empty() {
        let batch = training.batch_size;
        let mut points = Vec::new();
        for &n in &a.scaling_rows {
            let data = synthetic(n, 3);
            let mut model = spec.init(&ad);
            let mut optim = optimizer(&training);
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rng);
            let feed = Feed::new(&data, &objective, &ad);
            let mut epoch = |model: Mlp, rows: &[usize], seed: u64| -> anyhow::Result<_> {
                let t = Instant::now();
                let (m, _) = run_epoch(
                    model,
                    &mut optim,
                    &feed,
                    rows,
                    batch,
                    &objective,
                    &|_| 1e-3,
                    seed,
                    &ad,
                    a.shards,
                    &mut |_| {},
                )?;
                Ok((m, t.elapsed().as_secs_f64()))
            };
            (model, _) = epoch(model, &order[..(batch * 20).min(n)], 0)?; // warm-up
            let (_, secs) = epoch(model, &order, 1)?;
            points.push((n, secs));
        }
        let mid = points[points.len() / 2];
        let per_row = |(n, s): (usize, f64)| s / n as f64;
        for &p in &points {
            let off = per_row(p) / per_row(mid) - 1.0;
            println!(
                "epoch at {:>9} rows (batch {batch}): {:>8.2} s, {:.3} µs/row, {:+.1}% from linear through {} rows",
                p.0,
                p.1,
                per_row(p) * 1e6,
                off * 100.0,
                mid.0
            );
            results["scaling"]
                .as_array_mut()
                .unwrap()
                .push(json!({ "rows": p.0, "batch": batch, "epoch_s": p.1, "off_linear": off }));
        }
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)?)?;
    }
    Ok(())
}
