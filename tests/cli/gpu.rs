//! The wgpu backend, on whatever adapter the machine has. CI installs Mesa's lavapipe (a
//! software Vulkan device) and allows it with ANOMALY_ALLOW_SOFTWARE_GPU=1; where no adapter can
//! run burn's kernels at all, these tests say why and skip.

use crate::util::{Run, Sandbox};

const ALLOW: &str = "ANOMALY_ALLOW_SOFTWARE_GPU";

fn run(s: &Sandbox, allow_software: bool, args: &[&str]) -> Run {
    let mut cmd = s.command(args);
    if allow_software {
        cmd.env(ALLOW, "1");
    } else {
        cmd.env_remove(ALLOW);
    }
    Run::from_output(cmd.output().unwrap())
}

/// `predict` of `checkpoints/best.mpk` on `data` on `device`: its CSV output.
fn predict_on(s: &Sandbox, device: &str, data: &str) -> String {
    let args = [
        "predict",
        "--device",
        device,
        "--checkpoint",
        "checkpoints/best.mpk",
        "--data",
        data,
    ];
    run(s, true, &args).ok().stdout
}

/// [`predict_on`] `d.csv`: the scores.
fn predict_scores(s: &Sandbox, device: &str) -> Vec<f64> {
    Sandbox::scores(&predict_on(s, device, "d.csv"))
}

/// `anomaly info`'s line for what `--device auto` picks.
fn auto_choice(s: &Sandbox, allow_software: bool) -> String {
    let out = run(s, allow_software, &["info"]).ok().stdout;
    out.lines()
        .find(|l| l.starts_with("--device auto"))
        .unwrap_or_default()
        .to_string()
}

/// A sandbox where `--device auto` picks a GPU (a software one allowed), or `None` with the
/// reason printed.
fn with_gpu() -> Option<Sandbox> {
    let s = Sandbox::new();
    let choice = auto_choice(&s, true);
    if !choice.contains("uses: gpu") {
        println!("skipped: no wgpu adapter can run burn's kernels here ({choice})");
        return None;
    }
    Some(s)
}

#[test]
fn gpu_without_a_usable_adapter_is_an_error_that_lists_the_adapters() {
    let s = Sandbox::new();
    if auto_choice(&s, false).contains("uses: gpu") {
        println!("skipped: this machine has a real GPU adapter, so --device gpu cannot fail here");
        return;
    }
    s.sample("d.csv", 300, 41);
    let r = run(
        &s,
        false,
        &["train", "--device", "gpu", "--set", "data.path=d.csv"],
    )
    .bad_input("--device gpu: no usable GPU adapter (adapters found: ");
    assert!(
        r.stderr.contains(ALLOW),
        "the error says how to allow a software adapter"
    );
    assert!(
        !s.exists("checkpoints"),
        "nothing is written when the device cannot be had"
    );
    // auto falls back to the CPU and says why.
    let out = run(
        &s,
        false,
        &[
            "train",
            "--device",
            "auto",
            "--set",
            "data.path=d.csv",
            "--set",
            "training.epochs=1",
        ],
    )
    .ok();
    assert!(
        out.stdout.contains("backend): no usable GPU adapter"),
        "{}",
        out.stdout
    );
}

#[test]
fn wgpu_training_matches_cpu_and_its_checkpoint_evaluates_on_cpu() {
    let Some(s) = with_gpu() else { return };
    s.sample("d.csv", 2000, 42);
    let train = |device: &str, dir: &str| {
        let d = format!("checkpoint.save_dir={dir}");
        run(
            &s,
            true,
            &[
                "train",
                "--quiet",
                "--device",
                device,
                "--set",
                "data.path=d.csv",
                "--set",
                &d,
                "--set",
                "model.hidden_dims=[32, 16]",
                "--set",
                "training.epochs=15",
                "--set",
                "training.batch_size=32",
                "--set",
                "logging.run_name=g",
            ],
        )
        .ok();
    };
    train("cpu", "on_cpu");
    train("gpu", "on_gpu");
    let metrics = |ck: &str, device: &str| {
        let r = run(
            &s,
            true,
            &[
                "test",
                "--checkpoint",
                ck,
                "--device",
                device,
                "--json",
                "--no-write",
                "--bootstrap",
                "10",
            ],
        )
        .ok();
        r.json()["metrics"].clone()
    };
    let cpu = metrics("on_cpu/best.mpk", "cpu");
    let gpu = metrics("on_gpu/best.mpk", "gpu");
    // Same data, seed and schedule; the backends differ in RNG streams and float summation order,
    // so the two models differ slightly but must be as good as each other.
    for key in ["accuracy", "roc_auc"] {
        let (a, b) = (cpu[key].as_f64().unwrap(), gpu[key].as_f64().unwrap());
        assert!((a - b).abs() <= 0.03, "{key}: cpu {a} vs gpu {b}");
    }
    // Both actually learned: the comparison is between working models.
    assert!(gpu["roc_auc"].as_f64().unwrap() > 0.7, "gpu model: {gpu}");
    // The GPU-trained checkpoint scores the same rows the same way on the CPU.
    let on_cpu = metrics("on_gpu/best.mpk", "cpu");
    assert_eq!(on_cpu["confusion"], gpu["confusion"]);
    let (a, b) = (
        on_cpu["roc_auc"].as_f64().unwrap(),
        gpu["roc_auc"].as_f64().unwrap(),
    );
    assert!((a - b).abs() <= 1e-4, "roc_auc cpu {a} vs gpu {b}");
}

#[test]
fn predict_scores_the_same_on_gpu_as_on_cpu() {
    let Some(s) = with_gpu() else { return };
    s.sample("d.csv", 600, 43);
    run(
        &s,
        true,
        &[
            "train",
            "--quiet",
            "--device",
            "cpu",
            "--set",
            "data.path=d.csv",
            "--set",
            "training.epochs=3",
        ],
    )
    .ok();
    let (cpu, gpu) = (predict_scores(&s, "cpu"), predict_scores(&s, "gpu"));
    assert_eq!(cpu.len(), 600);
    for (a, b) in cpu.iter().zip(&gpu) {
        assert!((a - b).abs() < 1e-4, "cpu {a} vs gpu {b}");
    }
}

/// The autoencoder trains on the GPU through the same trainer, and its checkpoint scores the
/// same rows the same way on either device.
#[test]
fn the_autoencoder_trains_on_the_gpu_and_scores_alike_on_both() {
    let Some(s) = with_gpu() else { return };
    s.sample("d.csv", 1000, 44);
    run(
        &s,
        true,
        &[
            "train",
            "--quiet",
            "--device",
            "gpu",
            "--set",
            "data.path=d.csv",
            "--set",
            "model.kind=autoencoder",
            "--set",
            "model.autoencoder.hidden_dims=[8, 4]",
            "--set",
            "training.epochs=5",
        ],
    )
    .ok();
    let (cpu, gpu) = (predict_scores(&s, "cpu"), predict_scores(&s, "gpu"));
    assert_eq!(cpu.len(), 1000);
    for (a, b) in cpu.iter().zip(&gpu) {
        assert!(
            (a - b).abs() <= 1e-4 * a.abs().max(1.0),
            "cpu {a} vs gpu {b}"
        );
    }
}

/// The CNN+LSTM (with the attention head) trains on the GPU through the same trainer, and
/// its windows score alike on either device (the CPU through its own inference path).
#[test]
fn the_cnn_lstm_trains_on_the_gpu_and_scores_alike_on_both() {
    let Some(s) = with_gpu() else { return };
    crate::sequence::generate(&s, "flows.csv", ("1500", "3"), "45");
    let mut args = vec![
        "train",
        "--quiet",
        "--device",
        "gpu",
        "--set",
        "data.path=flows.csv",
        "--set",
        "training.epochs=1",
        "--set",
        "model.cnn_lstm.head=attention",
    ];
    args.extend_from_slice(crate::sequence::SEQUENCE);
    run(&s, true, &args).ok();
    let scores = |device: &str| -> Vec<String> {
        let out = predict_on(&s, device, "flows.csv");
        out.lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().to_string())
            .collect()
    };
    let (cpu, gpu) = (scores("cpu"), scores("gpu"));
    assert_eq!(cpu.len(), 1500);
    assert_eq!(cpu.iter().filter(|v| v.is_empty()).count(), 3 * 15);
    for (a, b) in cpu.iter().zip(&gpu) {
        if a.is_empty() {
            assert!(b.is_empty());
            continue;
        }
        let (a, b): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
        assert!((a - b).abs() <= 1e-4, "cpu {a} vs gpu {b}");
    }
}
