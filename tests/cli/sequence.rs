//! The CNN+LSTM sequence family end to end: generated time-ordered flows, blocked splits,
//! training, test, cv and windowed predict.

use std::io::Write;
use std::process::Stdio;

use anomaly::checkpoint::Checkpoint;

use crate::util::Sandbox;

/// A small CNN+LSTM over windows of 16 flows of each host.
pub(crate) const SEQUENCE: &[&str] = &[
    "--set",
    "model.kind=cnn_lstm",
    "--set",
    "model.cnn_lstm.conv_channels=[32, 64]",
    "--set",
    "model.cnn_lstm.lstm_hidden=32",
    "--set",
    "sequence.length=16",
    "--set",
    "sequence.order_by=timestamp",
    "--set",
    "sequence.group_by=src_host",
    "--set",
    "training.batch_size=64",
    "--set",
    "training.scheduler=plateau",
    "--set",
    "training.grad_clip=5.0",
    "--set",
    "logging.run_name=seq",
];

/// `generate --sequences`: `rows` flows of `hosts` hosts, about a fifth of them in attacks.
pub(crate) fn generate(s: &Sandbox, rel: &str, (rows, hosts): (&str, &str), seed: &str) {
    s.run(&[
        "generate",
        "--sequences",
        "--anomaly-ratio",
        "0.2",
        "--rows",
        rows,
        "--hosts",
        hosts,
        "--seed",
        seed,
        "--out",
        rel,
    ])
    .ok();
}

fn train_sequence(s: &Sandbox, data: &str, dir: &str, extra: &[&str]) {
    let data = format!("data.path={data}");
    let dir = format!("checkpoint.save_dir={dir}");
    let mut args = vec!["train", "--quiet", "--set", &data, "--set", &dir];
    args.extend_from_slice(SEQUENCE);
    args.extend_from_slice(extra);
    s.run(&args).ok();
}

fn roc_auc(s: &Sandbox, checkpoint: &str, data: &str) -> f64 {
    let json = s.test_json(checkpoint, &["--data", data, "--no-write"]);
    json["metrics"]["roc_auc"].as_f64().unwrap()
}

/// Attacks that only order and timing give away: the CNN+LSTM finds them on another
/// capture; an MLP on the same flows, one at a time, stays near chance.
#[test]
fn the_cnn_lstm_finds_sequence_only_attacks_that_a_per_flow_mlp_cannot() {
    let s = Sandbox::new();
    generate(&s, "train.csv", ("12000", "12"), "1");
    generate(&s, "other.csv", ("6000", "12"), "2");
    train_sequence(&s, "train.csv", "seq", &["--set", "training.epochs=5"]);
    let sequence = roc_auc(&s, "seq/best.mpk", "other.csv");
    s.run(&[
        "train",
        "--quiet",
        "--set",
        "data.path=train.csv",
        "--set",
        "data.drop_columns=[timestamp, src_host]",
        "--set",
        "training.epochs=10",
        "--set",
        "checkpoint.save_dir=mlp",
    ])
    .ok();
    let per_flow = roc_auc(&s, "mlp/best.mpk", "other.csv");
    eprintln!("ROC AUC on other.csv: cnn_lstm {sequence:.4}, per-flow mlp {per_flow:.4}");
    assert!(sequence >= 0.9, "cnn_lstm ROC AUC {sequence}");
    assert!(per_flow <= 0.65, "per-flow mlp ROC AUC {per_flow}");
}

/// The same seed gives the same bytes on 1 and 2 threads, and a run cut after 2 epochs and
/// resumed to 4 ends where a 4-epoch run ends (batch norm, the plateau schedule and the
/// attention head included).
#[test]
fn sequence_training_is_reproducible_and_resumes_exactly() {
    let s = Sandbox::new();
    generate(&s, "flows.csv", ("3000", "4"), "3");
    let args = |dir: &str, epochs: &str| {
        let mut a: Vec<String> = [
            "train",
            "--quiet",
            "--set",
            "data.path=flows.csv",
            "--set",
            "model.cnn_lstm.head=attention",
        ]
        .iter()
        .map(|v| v.to_string())
        .collect();
        a.extend(SEQUENCE.iter().map(|v| v.to_string()));
        a.extend([
            "--set".into(),
            format!("checkpoint.save_dir={dir}"),
            "--set".into(),
            format!("training.epochs={epochs}"),
        ]);
        a
    };
    let run = |a: Vec<String>, threads: &str| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        s.run_on_threads(&a, threads).ok();
    };
    run(args("one", "4"), "1");
    run(args("two", "4"), "2");
    run(args("cut", "2"), "2");
    s.run(&[
        "train",
        "--quiet",
        "--resume",
        "cut/last.mpk",
        "--set",
        "training.epochs=4",
    ])
    .ok();
    let load = |dir: &str| Checkpoint::load(&s.path(&format!("{dir}/last.mpk"))).unwrap();
    let one = load("one");
    assert_eq!(one.history.len(), 4);
    for other in ["two", "cut"] {
        let o = load(other);
        assert!(one.detector == o.detector, "{other}: other weights");
        assert_eq!(one.history, o.history, "{other}: other history");
    }
}

/// `predict` writes a score against each window's last flow, and none (saying why) for the
/// first 15 flows of each host; streamed through stdin in small batches, each host's window
/// rolls across batches to the same scores.
#[test]
fn predict_scores_windows_per_host_alike_from_a_file_and_a_stream() {
    let s = Sandbox::new();
    generate(&s, "flows.csv", ("3000", "4"), "4");
    train_sequence(&s, "flows.csv", "seq", &["--set", "training.epochs=1"]);
    let file = s
        .predict("seq/best.mpk", "flows.csv", &["--keep", "src_host"])
        .ok();
    let lines: Vec<&str> = file.stdout.lines().collect();
    assert_eq!(lines[0], "row,src_host,score,is_anomaly,error");
    assert_eq!(lines.len(), 3001);
    let waiting = lines.iter().filter(|l| l.contains("no window yet")).count();
    assert_eq!(waiting, 4 * 15, "15 flows of each of 4 hosts");
    assert!(
        file.stderr
            .contains("60 rows came before their group's first full window")
    );
    let first_h00 = lines
        .iter()
        .filter(|l| l.contains(",h00,"))
        .nth(15)
        .unwrap();
    assert!(
        first_h00.ends_with(','),
        "the 16th flow of h00 has a score: {first_h00}"
    );

    let mut child = s
        .command(&[
            "predict",
            "--checkpoint",
            "seq/best.mpk",
            "--data",
            "-",
            "--keep",
            "src_host",
            "--batch-rows",
            "7",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let body = std::fs::read(s.path("flows.csv")).unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let streamed = child.wait_with_output().unwrap();
    assert!(streamed.status.success());
    assert_eq!(String::from_utf8(streamed.stdout).unwrap(), file.stdout);

    // This head reads the last step: no step carries the score, so there is none to name.
    s.predict("seq/best.mpk", "flows.csv", &["--explain", "2"])
        .bad_input("head: attention");
}

/// `step U of 2 (flows A-B of 16: rows R1-R2, T1 to T2) weight W`: U, [A, B, R1, R2],
/// [T1, T2] and W.
fn step_reason(reason: &str) -> Option<(usize, [usize; 4], [&str; 2], f64)> {
    let rest = reason.strip_prefix("step ")?;
    let (step, rest) = rest.split_once(" of 2 (flows ")?;
    let (flows, rest) = rest.split_once(" of 16: rows ")?;
    let (rows, rest) = rest.split_once(", ")?;
    let (from, rest) = rest.split_once(" to ")?;
    let (to, weight) = rest.split_once(") weight ")?;
    let pair = |s: &str| -> Option<[usize; 2]> {
        let (a, b) = s.split_once('-')?;
        Some([a.parse().ok()?, b.parse().ok()?])
    };
    let ([a, b], [first, last]) = (pair(flows)?, pair(rows)?);
    let parts = [a, b, first, last];
    Some((step.parse().ok()?, parts, [from, to], weight.parse().ok()?))
}

/// With the attention head, `predict --explain K` names each flagged window's K heaviest
/// steps: the flows each covers (of this host, by row number in the input, ending at or
/// before the window's own last flow) and their first and last timestamps, as the file
/// writes them; the weights are shares of 1, heaviest first.
#[test]
fn predict_explain_names_the_flows_an_attention_head_weighs() {
    let s = Sandbox::new();
    generate(&s, "flows.csv", ("1600", "2"), "6");
    let head = [
        "--set",
        "model.cnn_lstm.head=attention",
        "--set",
        "training.epochs=1",
    ];
    train_sequence(&s, "flows.csv", "att", &head);
    let args = ["--keep", "src_host", "--threshold", "0", "--explain", "2"];
    let out = s.predict("att/best.mpk", "flows.csv", &args).ok();
    let input = std::fs::read_to_string(s.path("flows.csv")).unwrap();
    // Row N of the output is line N of the input after its header.
    let cells: Vec<Vec<&str>> = input.lines().map(|l| l.split(',').collect()).collect();
    let mut reader = csv::Reader::from_reader(out.stdout.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(
        header.iter().collect::<Vec<_>>(),
        [
            "row",
            "src_host",
            "score",
            "is_anomaly",
            "reason_1",
            "reason_2",
            "error"
        ]
    );
    let mut explained = 0;
    for record in reader.records() {
        let record = record.unwrap();
        if record[3].is_empty() {
            continue;
        }
        let row: usize = record[0].parse().unwrap();
        let mut weights = Vec::new();
        for reason in [&record[4], &record[5]] {
            let (step, [a, b, first, last], stamps, weight) =
                step_reason(reason).unwrap_or_else(|| panic!("{reason}"));
            // Step 1 covers flows 1-10 of the window, step 2 flows 5-14 (kernel 3, pool 2).
            assert_eq!((a, b), [(1, 10), (5, 14)][step - 1], "{reason}");
            assert!(first < last && last < row, "{reason} in row {row}");
            for (r, stamp) in [(first, stamps[0]), (last, stamps[1])] {
                assert_eq!(cells[r][0], stamp, "row {r}'s timestamp");
                assert_eq!(cells[r][1], &record[1], "row {r}'s host");
            }
            weights.push(weight);
        }
        assert!(weights[0] >= weights[1] && weights[0] + weights[1] <= 1.0001);
        explained += 1;
    }
    assert_eq!(
        explained,
        1600 - 2 * 15,
        "every window is flagged at threshold 0"
    );
}

/// Blocked folds: `cv` trains and scores each fold on contiguous blocks of every host.
#[test]
fn cv_runs_blocked_folds_for_a_sequence_model() {
    let s = Sandbox::new();
    generate(&s, "flows.csv", ("3000", "4"), "5");
    let mut args = vec![
        "cv",
        "--quiet",
        "--folds",
        "2",
        "--set",
        "data.path=flows.csv",
        "--set",
        "training.epochs=1",
    ];
    args.extend_from_slice(SEQUENCE);
    s.run(&args).ok();
    let plan = s.read_json("checkpoints/folds.json");
    assert_eq!(plan["shuffle"], false);
    let folds = plan["folds"].as_array().unwrap();
    let sizes: Vec<usize> = folds.iter().map(|f| f.as_array().unwrap().len()).collect();
    // Each host's 80% before its test block, halved.
    assert_eq!(
        sizes.iter().sum::<usize>() + plan["test_rows"].as_array().unwrap().len(),
        3000
    );
    assert!(s.exists("checkpoints/fold_2/best.mpk"));
}

#[test]
fn sequence_settings_are_checked() {
    let s = Sandbox::new();
    generate(&s, "flows.csv", ("600", "2"), "6");
    let run = |extra: &[&str]| {
        let mut args = vec!["train", "--quiet", "--set", "data.path=flows.csv"];
        args.extend_from_slice(SEQUENCE);
        args.extend_from_slice(extra);
        s.run(&args)
    };
    run(&["--set", "sequence.length=4"]).bad_input("sequence.length: 4 flows are too few");
    run(&["--set", "sequence.group_by=host"]).bad_input("sequence.group_by: no column 'host'");
    run(&["--set", "data.undersample=1.0"]).bad_input("data.undersample: not available");
    let bad = "timestamp,src_host,a,label\n1,h,1,0\nsoon,h,2,1\n";
    s.write("bad.csv", bad);
    let args = ["--set", "data.path=bad.csv"];
    run(&args).bad_input("row 2 of column 'timestamp' holds 'soon'");
}

/// `numpy.save`'s bytes for a little-endian array (`<f4` or `<i8`) of `shape`.
fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    header.push_str(&" ".repeat(63 - (10 + header.len()) % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// The original project's layout: windows X (N, C, L) and labels y (N,) as .npy files. The
/// anomalous windows ramp up over time in channel 0; the model learns that, the held-out
/// windows are the file's last 20%, and an X of the wrong rank is refused naming its shape.
#[test]
fn npy_windows_train_and_a_wrong_shape_is_named() {
    let s = Sandbox::new();
    let (n, c, l) = (400, 3, 16);
    let mut noise = crate::util::uniform(9);
    let mut x = Vec::new();
    let y: Vec<i64> = (0..n).map(|i| (i % 3 == 0) as i64).collect();
    for &label in &y {
        for ch in 0..c {
            for t in 0..l {
                let ramp = if label == 1 && ch == 0 {
                    t as f64 / l as f64
                } else {
                    0.0
                };
                x.push((ramp + noise()) as f32);
            }
        }
    }
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    s.write("X.npy", npy("<f4", "(400, 3, 16)", &bytes));
    let labels: Vec<u8> = y.iter().flat_map(|v| v.to_le_bytes()).collect();
    s.write("y.npy", npy("<i8", "(400,)", &labels));
    let mut args = vec![
        "train",
        "--quiet",
        "--set",
        "data.format=npy",
        "--set",
        "data.path=X.npy",
        "--set",
        "data.labels_path=y.npy",
        "--set",
        "training.epochs=8",
    ];
    args.extend_from_slice(&SEQUENCE[..8]);
    args.extend_from_slice(&SEQUENCE[12..]);
    s.run(&args).ok();
    let json = s.test_json("checkpoints/best.mpk", &["--no-write"]);
    assert_eq!(json["metrics"]["rows"], 80, "the last 20% of 400 windows");
    let auc = json["metrics"]["roc_auc"].as_f64().unwrap();
    assert!(auc >= 0.9, "ROC AUC {auc}");

    s.write("X.npy", npy("<f4", "(400, 48)", &bytes));
    s.run(&args)
        .bad_input("X.npy: shape (400, 48), expected (N, C, L)");
}
