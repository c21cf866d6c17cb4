//! Zeek conn.log files, as Zeek writes them and as IoT-23 labels them, through the
//! `configs/zeek-conn.yaml` preset: train, test and predict read them like CSV.

use crate::serve::Server;
use crate::util::{Sandbox, uniform};

const FIELDS: &str = "ts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents";
const TYPES: &str = "time\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]";

/// A conn.log of `rows` connections: benign web and DNS with data both ways, and a telnet
/// scan (S0, nothing back, duration unset). With `labelled`, IoT-23's three space-separated
/// last columns.
fn conn_log(rows: usize, seed: u64, labelled: bool) -> String {
    let mut r = uniform(seed);
    let tail = if labelled {
        "   label   detailed-label"
    } else {
        ""
    };
    let tail_types = if labelled { "   string   string" } else { "" };
    let mut log = format!(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t2019-01-01-00-00-00\n#fields\t{FIELDS}{tail}\n#types\t{TYPES}{tail_types}\n"
    );
    for i in 0..rows {
        let ts = 1_525_879_831.0 + i as f64 * 0.37;
        let scan = r() < 0.3;
        let line = if scan {
            let label = if labelled {
                "   Malicious   PartOfAHorizontalPortScan"
            } else {
                ""
            };
            format!(
                "{ts:.6}\tC{i}\t192.168.100.103\t{}\t{}.{}.1.9\t23\ttcp\t-\t-\t-\t-\tS0\t-\t-\t0\tS\t{}\t{}\t0\t0\t(empty){label}",
                40000 + i,
                (r() * 200.0) as u32 + 20,
                (r() * 250.0) as u32,
                1 + (r() * 2.0) as u32,
                60 + (r() * 60.0) as u32
            )
        } else {
            let label = if labelled { "   Benign   -" } else { "" };
            let (service, port, proto) = if r() < 0.5 {
                ("http", 80, "tcp")
            } else {
                ("dns", 53, "udp")
            };
            let out = 60 + (r() * 900.0) as u32;
            let back = 200 + (r() * 9000.0) as u32;
            format!(
                "{ts:.6}\tC{i}\t192.168.100.{}\t{}\t10.0.0.{}\t{port}\t{proto}\t{service}\t{:.6}\t{out}\t{back}\tSF\t-\t-\t0\tShADadfF\t{}\t{}\t{}\t{}\t(empty){label}",
                2 + (r() * 50.0) as u32,
                30000 + i,
                1 + (r() * 9.0) as u32,
                0.01 + r() * 3.0,
                4 + (r() * 10.0) as u32,
                out + 200,
                4 + (r() * 10.0) as u32,
                back + 200
            )
        };
        log += &line;
        log.push('\n');
    }
    log + "#close\t2019-01-01-01-00-00\n"
}

/// A TSV conn.log as Zeek's JSON: one object per record, unset fields left out, numbers as
/// numbers.
fn as_json(tsv: &str) -> String {
    let names: Vec<&str> = FIELDS.split('\t').collect();
    let mut out = String::new();
    for line in tsv.lines().filter(|l| !l.starts_with('#')) {
        let mut object = serde_json::Map::new();
        for (name, value) in names.iter().zip(line.split('\t')) {
            let address = name.ends_with("_h");
            let v = match (value.parse::<i64>(), value.parse::<f64>()) {
                _ if value == "-" => continue,
                (Ok(n), _) if !address => serde_json::json!(n),
                (_, Ok(x)) if !address => serde_json::json!(x),
                _ => serde_json::json!(value),
            };
            object.insert(name.to_string(), v);
        }
        out += &serde_json::Value::Object(object).to_string();
        out.push('\n');
    }
    out
}

#[test]
fn an_iot23_conn_log_trains_tests_and_predicts_with_the_zeek_preset() {
    let s = Sandbox::new();
    s.write("conn.log.labeled", conn_log(1500, 7, true));
    s.write("other.log.labeled", conn_log(600, 8, true));
    s.write("plain.conn.log", conn_log(200, 9, false));
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/zeek-conn.yaml");
    let common = ["--config", config, "--set", "data.path=conn.log.labeled"];
    let mut train = vec!["train", "--quiet"];
    train.extend_from_slice(&common);
    s.run(&train).ok();
    let ck = "checkpoints/zeek-conn/best.mpk";
    let report = s.test_json(ck, &["--data", "other.log.labeled", "--no-write"]);
    let auc = report["metrics"]["roc_auc"].as_f64().unwrap();
    assert!(auc > 0.95, "ROC AUC {auc}");
    // An unlabelled log (Zeek's own layout) scores row by row; the ids stay beside the scores.
    let out = s
        .predict(ck, "plain.conn.log", &["--keep", "uid,id.resp_p", "-q"])
        .ok()
        .stdout;
    assert_eq!(out.lines().count(), 201);
    assert!(
        out.starts_with("row,uid,id.resp_p,score,is_anomaly"),
        "{out}"
    );
    // The same log as Zeek's JSON (unset fields left out) scores the same.
    s.write("plain.conn.json", as_json(&conn_log(200, 9, false)));
    let json_out = s
        .predict(ck, "plain.conn.json", &["--keep", "uid,id.resp_p", "-q"])
        .ok()
        .stdout;
    assert_eq!(json_out, out);
    // serve takes the same logs as bodies and scores them as predict does.
    let server = Server::start(&s, &["--checkpoint", ck]);
    let expected: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap())
        .collect();
    for (media, body) in [
        ("text/tab-separated-values", conn_log(200, 9, false)),
        ("application/x-ndjson", as_json(&conn_log(200, 9, false))),
    ] {
        let (status, response) = server.post("/api/v1/predict", media, &body);
        assert_eq!(status, 200, "{media}: {response}");
        let response: serde_json::Value = serde_json::from_str(&response).unwrap();
        let scores: Vec<String> = response["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["score"].to_string())
            .collect();
        assert_eq!(scores.len(), expected.len(), "{media}");
        for (got, want) in scores.iter().zip(&expected) {
            let (g, w): (f64, f64) = (got.parse().unwrap(), want.parse().unwrap());
            assert!((g - w).abs() < 1e-6, "{media}: {g} vs {w}");
        }
    }
    // The preset says `format: zeek`: a CSV file is refused, naming it.
    s.write("flows.csv", "duration,proto\n1,tcp\n");
    let mut csv = vec!["train", "--quiet", "--config", config];
    csv.extend_from_slice(&["--set", "data.path=flows.csv"]);
    s.run(&csv)
        .bad_input("flows.csv: data.format is zeek, but this is not a Zeek log");
    // inspect reads it as data like any other: the dotted names are its columns.
    let mut inspect = vec!["inspect", "--json"];
    inspect.extend_from_slice(&common);
    let json = s.run(&inspect).ok().stdout;
    assert!(
        json.contains("\"conn_state\"") && json.contains("orig_ip_bytes"),
        "{json}"
    );
    // A record of another width names its line.
    let mut bad = conn_log(5, 1, true);
    bad = bad
        .replacen("\tS0\t", "\tS0\t\t", 1)
        .replacen("\tSF\t", "\tSF\t\t", 1);
    s.write("bad.log", bad);
    s.predict(ck, "bad.log", &[])
        .bad_input("expected 23 fields");
}
