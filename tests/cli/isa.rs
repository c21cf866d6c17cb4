//! Same bytes on every x86-64 CPU: each family trained by gradient (and by boosting, and the
//! unsupervised ensemble) writes the same checkpoint on this CPU's widest vector path
//! (AVX-512) and on AVX2 alone. The AVX2 run is this binary under QEMU's user-mode emulator
//! as its `max` CPU, which reports AVX2 and FMA but no AVX-512, so the crates' runtime
//! dispatch (macerator's in burn's flex backend, gemm's, pulp's) takes its narrower path.

use std::process::Command;

use crate::sequence::{SEQUENCE, generate};
use crate::util::{FAST, Run, Sandbox};

/// Why this machine cannot run both paths, if it cannot.
fn one_path_only() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    if !std::arch::is_x86_feature_detected!("avx512f") {
        return Some("this CPU has no AVX-512, so AVX2 is the only path it has");
    }
    #[cfg(not(target_arch = "x86_64"))]
    return Some("not an x86-64 CPU");
    if Command::new("qemu-x86_64")
        .arg("-version")
        .output()
        .is_err()
    {
        return Some("qemu-x86_64 (Debian's qemu-user) is not installed; .ci/run installs it");
    }
    None
}

/// `train` with `args` natively and as an AVX2-only CPU, each from a folder of its own (the
/// data one level up, the same relative paths in both configs); the two `best.mpk` files
/// must be the same bytes.
fn same_checkpoint_on_both_paths(s: &Sandbox, case: &str, args: &[&str]) {
    let run = |path: &str, emulated: bool| {
        let dir = s.path(&format!("{case}/{path}"));
        std::fs::create_dir_all(&dir).unwrap();
        // A fixed run name: the default is the time of day, which two runs need not share.
        let mut all = vec!["train", "--quiet", "--device", "cpu"];
        all.extend_from_slice(&["--set", "logging.run_name=isa"]);
        all.extend_from_slice(args);
        let mut c = if emulated {
            let mut c = Command::new("qemu-x86_64");
            c.args(["-cpu", "max", env!("CARGO_BIN_EXE_anomaly")]);
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_anomaly"))
        };
        Run::from_output(c.current_dir(&dir).args(&all).output().unwrap()).ok();
        std::fs::read(dir.join("ck/best.mpk")).unwrap()
    };
    let (wide, narrow) = (run("avx512", false), run("avx2", true));
    assert!(
        wide == narrow,
        "{case}: AVX-512 and AVX2 wrote other checkpoints"
    );
}

/// 1,000 rows of ten classes told apart by `bytes`: more classes than an AVX2 register holds
/// floats, where flex's row sums (softmax's normaliser) would take another order.
fn ten_classes(s: &Sandbox, rel: &str) {
    let mut body = String::from("bytes,duration,label\n");
    for i in 0..1000 {
        let c = i % 10;
        let label = if c == 0 {
            "normal".into()
        } else {
            format!("c{c}")
        };
        body += &format!("{},{},{label}\n", c * 40 + i % 17, i * 7 % 23);
    }
    s.write(rel, body);
}

#[test]
fn every_trained_family_writes_the_same_bytes_on_avx2_and_avx512() {
    if let Some(why) = one_path_only() {
        println!("skipped: {why}");
        return;
    }
    let s = Sandbox::new();
    s.sample("d.csv", 2000, 3);
    ten_classes(&s, "ten.csv");
    s.sample("small.csv", 600, 4);
    generate(&s, "seq.csv", ("1500", "4"), "3");
    let d = [
        "--set",
        "data.path=../../d.csv",
        "--set",
        "checkpoint.save_dir=ck",
    ];
    // The ensemble's neighbour and kernel members run slowly under emulation: fewer rows.
    let small = [
        "--set",
        "data.path=../../small.csv",
        "--set",
        "checkpoint.save_dir=ck",
    ];
    let cases: [(&str, Vec<&str>); 7] = [
        (
            "mlp",
            [&d[..], FAST, &["--set", "model.dropout=0.2"]].concat(),
        ),
        (
            "resmlp",
            [&d[..], FAST, &["--set", "model.kind=resmlp"]].concat(),
        ),
        (
            "multiclass",
            [
                &[
                    "--set",
                    "data.path=../../ten.csv",
                    "--set",
                    "task=multiclass",
                ][..],
                &["--set", "checkpoint.save_dir=ck"],
                &["--set", "data.negative_labels=[normal]"],
                FAST,
            ]
            .concat(),
        ),
        (
            "autoencoder",
            [&d[..], FAST, &["--set", "model.kind=autoencoder"]].concat(),
        ),
        (
            "boosting",
            [&d[..], &["--set", "model.kind=gradient_boosting"]].concat(),
        ),
        (
            "ensemble",
            [
                &small[..],
                &["--set", "model.kind=ensemble", "--set", "training.epochs=2"],
            ]
            .concat(),
        ),
        (
            "cnn_lstm",
            [
                &[
                    "--set",
                    "data.path=../../seq.csv",
                    "--set",
                    "checkpoint.save_dir=ck",
                ][..],
                SEQUENCE,
                &[
                    "--set",
                    "training.epochs=1",
                    "--set",
                    "model.cnn_lstm.lstm_hidden=8",
                ],
                &["--set", "model.cnn_lstm.conv_channels=[8, 16]"],
            ]
            .concat(),
        ),
    ];
    for (case, args) in &cases {
        same_checkpoint_on_both_paths(&s, case, args);
    }
}
