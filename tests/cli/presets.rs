//! Each preset in configs/ on a small fixture written in that dataset's exact format.

use std::io::Write;

use anomaly::checkpoint::Checkpoint;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::util::{FAST, Run, Sandbox};

fn preset(name: &str) -> String {
    format!("{}/configs/{name}.yaml", env!("CARGO_MANIFEST_DIR"))
}

/// `train --config configs/<name>.yaml` on fixture files, with FAST settings, on the CPU.
fn train(sb: &Sandbox, name: &str, extra: &[&str]) -> Run {
    let config = preset(name);
    let mut args = vec![
        "train",
        "--quiet",
        "--device",
        "cpu",
        "--config",
        &config,
        "--set",
        "checkpoint.save_dir=ck",
        "--set",
        "logging.tensorboard_dir=runs",
        "--set",
        "logging.log_dir=logs",
    ];
    args.extend_from_slice(FAST);
    args.extend_from_slice(extra);
    sb.run(&args)
}

fn test(sb: &Sandbox, name: &str) -> serde_json::Value {
    let config = preset(name);
    sb.test_json(
        "ck/best.mpk",
        &["--config", &config, "--device", "cpu", "--no-write"],
    )
}

fn checkpoint(sb: &Sandbox) -> Checkpoint {
    Checkpoint::load(&sb.path("ck/best.mpk")).unwrap()
}

/// A class drawn from `classes` (the first one `normal_share` of the time) and a value that
/// depends on it, so the fixtures carry some signal.
fn draw(rng: &mut StdRng, classes: &[&'static str], normal_share: f64) -> (usize, f64) {
    let c = if rng.random_bool(normal_share) {
        0
    } else {
        rng.random_range(1..classes.len())
    };
    (c, c as f64 * 10.0 + rng.random_range(0.0..8.0))
}

#[test]
fn embedded_preset_reads_crlf_float_labels_in_the_middle_and_true_false_one_hots() {
    let sb = Sandbox::new();
    let mut rng = StdRng::seed_from_u64(1);
    let mut body = String::from(
        "packet_size,inter_arrival_time,label,protocol_type_TCP,protocol_type_UDP\r\n",
    );
    for _ in 0..300 {
        let (c, v) = draw(&mut rng, &["0.0", "1.0"], 0.8);
        let tcp = rng.random_bool(0.5);
        body += &format!(
            "{:.4},{:.4},{}.0,{},{}\r\n",
            v / 20.0,
            rng.random_range(0.0..1.0),
            c,
            if tcp { "True" } else { "False" },
            if tcp { "False" } else { "True" }
        );
    }
    sb.write("embedded.csv", body);
    train(&sb, "embedded", &["--set", "data.path=embedded.csv"]).ok();
    let ck = checkpoint(&sb);
    assert_eq!(
        ck.preprocessor.feature_names,
        [
            "packet_size",
            "inter_arrival_time",
            "protocol_type_TCP",
            "protocol_type_UDP"
        ]
    );
    let report = test(&sb, "embedded");
    assert_eq!(report["metrics"]["rows"], 60);
}

const KDD_ATTACKS: [&str; 5] = ["normal", "neptune", "satan", "guess_passwd", "rootkit"];

/// Headerless NSL-KDD records: 41 features, the label, the difficulty.
fn kdd_records(rng: &mut StdRng, n: usize, labels: &[&'static str]) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (c, v) = draw(rng, labels, 0.5);
        let mut fields = vec![
            format!("{}", rng.random_range(0..5)),
            ["tcp", "udp", "icmp"][c % 3].to_string(),
            ["http", "private", "ftp_data"][rng.random_range(0..3)].to_string(),
            ["SF", "S0", "REJ"][c % 3].to_string(),
            format!("{}", (v * 1000.0) as u64),
        ];
        for k in 5..41 {
            fields.push(format!("{:.2}", (v + k as f64) / 50.0));
        }
        fields.push(labels[c].to_string());
        fields.push(format!("{}", rng.random_range(0..22)));
        writeln!(out, "{}", fields.join(",")).unwrap();
    }
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[test]
fn nsl_kdd_preset_reads_headerless_gzip_and_maps_attacks_to_five_categories() {
    let sb = Sandbox::new();
    let mut rng = StdRng::seed_from_u64(2);
    sb.write(
        "KDDTrain+.txt.gz",
        gzip(&kdd_records(&mut rng, 400, &KDD_ATTACKS)),
    );
    // The test file holds attacks training never saw: `mscan` (mapped to Probe) and a name the
    // map does not know.
    let mut test_file = kdd_records(&mut rng, 100, &KDD_ATTACKS);
    test_file.extend(kdd_records(&mut rng, 30, &["normal", "mscan", "zeroday"]));
    sb.write("KDDTest+.txt", &test_file);
    let files = [
        "--set",
        "data.path=KDDTrain+.txt.gz",
        "--set",
        "data.test_path=KDDTest+.txt",
    ];

    let binary = [
        &files[..],
        &[
            "--set",
            "task=binary",
            "--set",
            "training.class_weights=null",
        ],
    ]
    .concat();
    train(&sb, "nsl-kdd", &binary).ok();
    let ck = checkpoint(&sb);
    assert!(ck.preprocessor.classes.is_empty());
    assert!(
        !ck.preprocessor
            .feature_names
            .iter()
            .any(|f| f == "difficulty")
    );
    let binary = test(&sb, "nsl-kdd");
    assert_eq!(binary["metrics"]["rows"], 130);

    // The preset's own task: the five categories.
    train(&sb, "nsl-kdd", &files).ok();
    let ck = checkpoint(&sb);
    assert_eq!(
        ck.preprocessor.classes,
        ["DoS", "Probe", "R2L", "U2R", "normal"]
    );
    assert_eq!(ck.preprocessor.anomalous, [true, true, true, true, false]);
    assert_eq!(ck.network().unwrap().spec.outputs, 5);
    let report = test(&sb, "nsl-kdd");
    let classes = &report["classes"];
    let confusion = classes["confusion"].as_array().unwrap();
    assert_eq!(confusion.len(), 5);
    let counted: u64 = confusion
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    let unseen = &classes["unseen"][0];
    assert_eq!(unseen["class"], "zeroday");
    let unseen_rows = unseen["rows"].as_u64().unwrap();
    assert!(unseen_rows > 0);
    // Every test row is either in the confusion matrix or counted as unseen; the binary view
    // keeps them all.
    assert_eq!(counted + unseen_rows, 130);
    assert_eq!(classes["rows"].as_u64().unwrap(), counted);
    assert_eq!(report["metrics"]["rows"], 130);
    assert!(report["notices"].to_string().contains("zeroday"));
    for m in classes["per_class"].as_array().unwrap() {
        assert!(m["f1"].as_f64().unwrap() >= 0.0 && m["support"].as_u64().is_some());
    }
}

#[test]
fn unsw_nb15_preset_reads_a_bom_crlf_dash_categories_and_the_attack_category() {
    let sb = Sandbox::new();
    let cats = ["Normal", "Generic", "Exploits", "Fuzzers"];
    let mut rng = StdRng::seed_from_u64(3);
    let mut train_body =
        String::from("\u{feff}id,dur,proto,service,state,sbytes,dbytes,attack_cat,label\r\n");
    for i in 0..400 {
        let (c, v) = draw(&mut rng, &cats, 0.5);
        train_body += &format!(
            "{},{:.6},{},{},{},{},{},{},{}\r\n",
            i + 1,
            v / 100.0,
            ["tcp", "udp"][c % 2],
            ["-", "http", "dns"][rng.random_range(0..3)],
            ["FIN", "INT", "CON"][c % 3],
            (v * 100.0) as u64,
            rng.random_range(0..5000),
            cats[c],
            (c > 0) as u8
        );
    }
    sb.write("UNSW_NB15_training-set.csv", &train_body);
    let test_body: String = train_body
        .trim_start_matches('\u{feff}')
        .split_inclusive("\r\n")
        .take(101)
        .collect();
    sb.write("UNSW_NB15_testing-set.csv", test_body);
    let files = [
        "--set",
        "data.path=UNSW_NB15_training-set.csv",
        "--set",
        "data.test_path=UNSW_NB15_testing-set.csv",
    ];
    train(&sb, "unsw-nb15", &files).ok();
    let ck = checkpoint(&sb);
    assert_eq!(
        ck.preprocessor.classes,
        ["Exploits", "Fuzzers", "Generic", "Normal"]
    );
    let names = &ck.preprocessor.feature_names;
    assert!(names.contains(&"service=-".to_string()), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n == "id" || n == "label" || n.starts_with("attack_cat"))
    );
    let report = test(&sb, "unsw-nb15");
    assert_eq!(report["metrics"]["rows"], 100);
    assert_eq!(report["classes"]["classes"].as_array().unwrap().len(), 4);
    assert!(report["metrics"]["roc_auc"].as_f64().is_some());
}

/// CICFlowMeter output with CIC-IDS2017's quirks.
fn cic_flows(rng: &mut StdRng, n: usize) -> String {
    let labels = ["BENIGN", "DDoS", "PortScan"];
    let mut out = String::from(
        "Flow ID, Source IP, Source Port, Destination IP, Destination Port, Timestamp, Flow Duration, Fwd Header Length, Flow Bytes/s, Flow Packets/s, Fwd Header Length, Label\n",
    );
    for i in 0..n {
        let (c, v) = draw(rng, &labels, 0.7);
        let (bytes, packets) = match i % 50 {
            0 => ("Infinity".to_string(), "Infinity".to_string()),
            1 => ("NaN".to_string(), format!("{:.3}", v * 3.0)),
            _ => (format!("{:.3}", v * 1000.0), format!("{:.3}", v * 3.0)),
        };
        out += &format!(
            "10.0.0.{c}-{i},10.0.0.{c},{},192.168.10.50,{},3/7/2017 8:{:02},{},{},{bytes},{packets},{},{}\n",
            40000 + i,
            [80, 443, 22][rng.random_range(0..3)],
            i % 60,
            (v * 1000.0) as u64,
            (v * 20.0) as u64,
            (v * 20.0) as u64,
            labels[c]
        );
    }
    out
}

#[test]
fn cic_ids2017_preset_handles_spaces_the_duplicate_column_infinity_and_identifiers() {
    let sb = Sandbox::new();
    let mut rng = StdRng::seed_from_u64(4);
    sb.write("flows.csv", cic_flows(&mut rng, 600));
    // The default refuses the repeated column and says how to accept it.
    let config = preset("cic-ids2017");
    sb.run(&[
        "train",
        "--config",
        &config,
        "--set",
        "data.path=flows.csv",
        "--set",
        "data.duplicate_columns=error",
    ])
    .bad_input("duplicate column name 'Fwd Header Length' at positions 8 and 11");

    train(&sb, "cic-ids2017", &["--set", "data.path=flows.csv"]).ok();
    let ck = checkpoint(&sb);
    let names = &ck.preprocessor.feature_names;
    assert_eq!(
        names,
        &[
            "Destination Port",
            "Flow Duration",
            "Fwd Header Length",
            "Flow Bytes/s",
            "Flow Packets/s"
        ]
    );
    assert_eq!(ck.detector.family(), "resmlp");
    // Undersampling cut BENIGN in the training split to the attack rows' count.
    assert!(ck.data.train_rows < 600 * 7 / 10);
    assert!((ck.data.train_positives as f64 / ck.data.train_rows as f64 - 0.5).abs() < 0.01);
    let report = test(&sb, "cic-ids2017");
    // A stratified 20%, rounded per class.
    let rows = report["metrics"]["rows"].as_u64().unwrap();
    assert!((118..=122).contains(&rows), "{rows}");
    let notices = report["notices"].to_string();
    assert!(notices.contains("infinite"), "{notices}");
}

/// The corrected CIC-IDS2017 release (Engelen et al. 2021): other identifier names, an `id`
/// column, `Attempted Category` derived from the label, and "- Attempted" labels.
fn improved_cic_flows(rng: &mut StdRng, n: usize) -> String {
    let labels = ["BENIGN", "DDoS", "Portscan - Attempted"];
    let mut out = String::from(
        "id,Flow ID,Src IP,Src Port,Dst IP,Dst Port,Protocol,Timestamp,Flow Duration,Fwd Header Length,Flow Bytes/s,Flow Packets/s,Label,Attempted Category\n",
    );
    for i in 0..n {
        let (c, v) = draw(rng, &labels, 0.7);
        out += &format!(
            "{i},10.0.0.{c}-{i},10.0.0.{c},{},192.168.10.50,{},6,2017-07-03 08:{:02}:00,{},{},{:.3},{:.3},{},{}\n",
            40000 + i,
            [80, 443, 22][rng.random_range(0..3)],
            i % 60,
            (v * 1000.0) as u64,
            (v * 20.0) as u64,
            v * 1000.0,
            v * 3.0,
            labels[c],
            if c == 2 { 1 } else { -1 }
        );
    }
    out
}

#[test]
fn cic_ids2017_preset_handles_the_improved_release_too() {
    let sb = Sandbox::new();
    let mut rng = StdRng::seed_from_u64(6);
    sb.write("flows.csv", improved_cic_flows(&mut rng, 600));
    let config = preset("cic-ids2017");
    let inspect = |extra: &[&str]| {
        let mut args = vec![
            "inspect",
            "--config",
            &config,
            "--set",
            "data.path=flows.csv",
        ];
        args.extend_from_slice(extra);
        sb.run(&args).ok().stdout
    };
    let leaks = [
        "id",
        "Flow ID",
        "Src IP",
        "Src Port",
        "Dst IP",
        "Timestamp",
        "Attempted Category",
    ];
    // No identifier (or the label-derived column) is left to separate the classes...
    let out = inspect(&[]);
    for c in leaks {
        assert!(
            !out.contains(&format!("column '{c}' alone separates")),
            "{out}"
        );
    }
    // ...as they would with the original export's names alone.
    let out = inspect(&[
        "--set",
        "data.drop_if_present=[Flow ID, Source IP, Timestamp]",
    ]);
    assert!(out.contains("column 'Src IP' alone separates"), "{out}");
    train(&sb, "cic-ids2017", &["--set", "data.path=flows.csv"]).ok();
    assert_eq!(
        checkpoint(&sb).preprocessor.feature_names,
        [
            "Dst Port",
            "Flow Duration",
            "Fwd Header Length",
            "Flow Bytes/s",
            "Flow Packets/s"
        ]
    );
}

#[test]
fn inspect_reports_the_data_and_warns_about_identifier_leaks() {
    let sb = Sandbox::new();
    let mut rng = StdRng::seed_from_u64(5);
    sb.write("flows.csv", cic_flows(&mut rng, 300));
    let config = preset("cic-ids2017");
    let run = sb
        .run(&[
            "inspect",
            "--config",
            &config,
            "--set",
            "data.path=flows.csv",
            "--set",
            "data.drop_if_present=[]",
        ])
        .ok();
    let out = &run.stdout;
    assert!(
        out.contains("flows.csv: 300 rows, 10 feature columns"),
        "{out}"
    );
    assert!(
        out.contains("repeated column name 'Fwd Header Length' at position 11"),
        "{out}"
    );
    assert!(
        out.contains("warning: column 'Source IP' alone separates"),
        "{out}"
    );
    assert!(out.contains("BENIGN (normal)"), "{out}");
    // `train --dry-run` checks the same way and trains nothing.
    let dry = sb
        .run(&[
            "train",
            "--dry-run",
            "--config",
            &config,
            "--set",
            "data.path=flows.csv",
        ])
        .ok();
    assert!(
        dry.stdout.contains("300 rows, 5 feature columns"),
        "{}",
        dry.stdout
    );
    assert!(!sb.exists("checkpoints") && !sb.exists("checkpoints/cic-ids2017"));
    let json = sb
        .run(&[
            "inspect",
            "--json",
            "--config",
            &config,
            "--set",
            "data.path=flows.csv",
        ])
        .ok()
        .json();
    assert_eq!(json["select_features"], serde_json::Value::Null);
    let flow_bytes = json["files"][0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Flow Bytes/s")
        .unwrap();
    assert_eq!(flow_bytes["missing"]["infinite"], 6);
    assert_eq!(flow_bytes["missing"]["nan"], 6);
}

#[test]
fn tii_ssrc_23_preset_targets_the_traffic_type_with_a_benign_malicious_view() {
    let sb = Sandbox::new();
    let types = [
        "Audio",
        "Background",
        "Text",
        "Video",
        "Bruteforce",
        "DoS",
        "Information Gathering",
        "Mirai",
    ];
    let mut rng = StdRng::seed_from_u64(6);
    let mut body = String::from(
        "Flow ID,Src IP,Src Port,Dst IP,Dst Port,Protocol,Timestamp,Flow Duration,Total Fwd Packet,Flow Bytes/s,Label,Traffic Type,Traffic Subtype\n",
    );
    for i in 0..600 {
        let c = rng.random_range(0..types.len());
        let v = c as f64 * 10.0 + rng.random_range(0.0..8.0);
        body += &format!(
            "f{i},192.168.1.{c},{},10.0.0.1,{},6,2022-11-01 10:{:02},{},{},{:.2},{},{},{}-sub\n",
            50000 + i,
            [80, 1883, 23][c % 3],
            i % 60,
            (v * 1000.0) as u64,
            (v * 2.0) as u64 + 1,
            v * 77.0,
            if c < 4 { "Benign" } else { "Malicious" },
            types[c],
            types[c]
        );
    }
    sb.write("data.csv", body);
    train(&sb, "tii-ssrc-23", &["--set", "data.path=data.csv"]).ok();
    let ck = checkpoint(&sb);
    let mut sorted = types.map(String::from).to_vec();
    sorted.sort();
    assert_eq!(ck.preprocessor.classes, sorted);
    // `Protocol` is constant (all TCP) in the fixture, so dropped.
    assert_eq!(
        ck.preprocessor.feature_names,
        [
            "Dst Port",
            "Flow Duration",
            "Total Fwd Packet",
            "Flow Bytes/s"
        ]
    );
    let report = test(&sb, "tii-ssrc-23");
    assert_eq!(report["classes"]["per_class"].as_array().unwrap().len(), 8);
    assert!(report["metrics"]["positives"].as_u64().unwrap() > 0);
}

#[test]
fn multiclass_cv_and_assess_carry_the_class_reports() {
    let sb = Sandbox::new();
    let mut rng = StdRng::seed_from_u64(7);
    sb.write(
        "KDDTrain+.txt",
        kdd_records(&mut rng, 300, &KDD_ATTACKS[..3]),
    );
    let config = preset("nsl-kdd");
    let mut args = vec![
        "cv",
        "--quiet",
        "--device",
        "cpu",
        "--folds",
        "3",
        "--config",
        &config,
        "--set",
        "data.path=KDDTrain+.txt",
        "--set",
        "data.test_path=null",
        "--set",
        "checkpoint.save_dir=ck",
    ];
    args.extend_from_slice(FAST);
    sb.run(&args).ok();
    let fold = sb.read_json("ck/fold_2/metrics.json");
    assert_eq!(
        fold["classes"]["classes"],
        serde_json::json!(["DoS", "Probe", "normal"])
    );
    let summary = sb.read_json("ck/cv_summary.json");
    let names: Vec<&str> = summary["class_spread"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["accuracy", "macro_f1", "weighted_f1", "macro_roc_auc"]
    );

    sb.run(&[
        "assess",
        "--device",
        "cpu",
        "--checkpoint",
        "ck/fold_1/best.mpk",
        "--out",
        "rep",
        "--bootstrap",
        "50",
    ])
    .ok();
    let metrics = sb.read_json("rep/metrics.json");
    let sets: Vec<&str> = metrics["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    assert_eq!(sets, ["train", "validation", "test"]);
    let html = std::fs::read_to_string(sb.path("rep/report.html")).unwrap();
    assert!(html.contains("test per class") && html.contains("actual \\ predicted"));
}
