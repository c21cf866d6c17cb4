//! `anomaly upload` against a local Hub stand-in on 127.0.0.1.

use crate::hub_server::HubServer;
use crate::util::{Run, Sandbox};

const TOKEN: &str = "hf_testtoken_5f2c9a";

fn upload(s: &Sandbox, hub: &HubServer, token: Option<&str>, args: &[&str]) -> Run {
    let mut all = vec!["upload", "--checkpoint", "checkpoints/best.mpk"];
    all.extend_from_slice(args);
    let mut cmd = s.command(&all);
    cmd.env("HF_ENDPOINT", &hub.url)
        .env("HOME", s.dir.path())
        .env_remove("HF_HOME")
        .env_remove("HF_TOKEN_PATH");
    match token {
        Some(t) => cmd.env("HF_TOKEN", t),
        None => cmd.env_remove("HF_TOKEN"),
    };
    Run::from_output(cmd.output().unwrap())
}

fn trained() -> Sandbox {
    let s = Sandbox::new();
    s.sample("d.csv", 500, 21);
    s.train("d.csv", &[]).ok();
    s.run(&[
        "test",
        "--checkpoint",
        "checkpoints/best.mpk",
        "--bootstrap",
        "100",
    ])
    .ok();
    s
}

#[test]
fn upload_creates_the_repo_and_commits_every_file_with_the_token_only_in_the_header() {
    let s = trained();
    let hub = HubServer::start();
    let r = upload(
        &s,
        &hub,
        Some(TOKEN),
        &["--repo-id", "alice/flow-detector", "--private"],
    )
    .ok();
    assert!(!r.stdout.contains(TOKEN) && !r.stderr.contains(TOKEN));

    let requests = hub.requests();
    let create = requests
        .iter()
        .find(|q| q.path == "/api/repos/create")
        .expect("repo created");
    let body: serde_json::Value = serde_json::from_slice(&create.body).unwrap();
    assert_eq!(body["name"], "flow-detector");
    assert_eq!(body["organization"], "alice");
    assert_eq!(body["private"], true);
    assert_eq!(body["type"], "model");
    for q in &requests {
        assert_eq!(q.method, "POST", "{}", q.path);
        assert_eq!(
            q.headers.get("authorization").map(String::as_str),
            Some(format!("Bearer {TOKEN}").as_str()),
            "{}",
            q.path
        );
    }
    assert!(
        requests
            .iter()
            .any(|q| q.path == "/api/models/alice/flow-detector/commit/main")
    );

    let files = hub.state.lock().unwrap().files.clone();
    let mut names: Vec<&str> = files.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "README.md",
            "best.mpk",
            "config.json",
            "metrics.json",
            "model.safetensors"
        ]
    );
    assert_eq!(
        files["best.mpk"],
        std::fs::read(s.path("checkpoints/best.mpk")).unwrap()
    );
    assert_eq!(
        files["metrics.json"],
        std::fs::read(s.path("checkpoints/metrics.json")).unwrap()
    );

    // safetensors: an 8-byte header length, a JSON header, then the data.
    let st = &files["model.safetensors"];
    let n = u64::from_le_bytes(st[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&st[8..8 + n]).unwrap();
    assert_eq!(
        header["layers.0.weight"]["shape"],
        serde_json::json!([16, 17])
    );
    assert_eq!(header["layers.2.bias"]["shape"], serde_json::json!([1]));
    assert_eq!(header["layers.0.weight"]["dtype"], "F32");

    let config: serde_json::Value = serde_json::from_slice(&files["config.json"]).unwrap();
    assert_eq!(
        config["architecture"]["hidden_dims"],
        serde_json::json!([16, 8])
    );
    assert_eq!(config["feature_names"].as_array().unwrap().len(), 17);

    let card = String::from_utf8(files["README.md"].clone()).unwrap();
    let front = card
        .strip_prefix("---\n")
        .unwrap()
        .split("\n---\n")
        .next()
        .unwrap();
    let yaml: serde_yaml::Value = serde_yaml::from_str(front).unwrap();
    assert_eq!(yaml["library_name"].as_str(), Some("anomaly"));
    let metrics = &yaml["model-index"][0]["results"][0]["metrics"];
    assert_eq!(metrics[0]["type"].as_str(), Some("accuracy"));
    let written: serde_json::Value = s.read_json("checkpoints/metrics.json");
    let accuracy = metrics[0]["value"].as_f64().unwrap();
    assert!((accuracy - written["metrics"]["accuracy"].as_f64().unwrap()).abs() < 1e-4);
    assert!(card.contains("anomaly predict --checkpoint best.mpk"));
}

#[test]
fn refused_tokens_name_the_repository_not_the_token() {
    let s = trained();
    for (status, culprit) in [
        (401, "refused the token for alice/x (401)"),
        (403, "no write access to alice/x (403)"),
    ] {
        let hub = HubServer::start();
        hub.fail("/api/repos/create", &[status]);
        let r = upload(&s, &hub, Some(TOKEN), &["--repo-id", "alice/x"]).bad_input(culprit);
        assert!(!r.stderr.contains(TOKEN) && !r.stdout.contains(TOKEN));
    }
}

#[test]
fn server_errors_are_retried_a_bounded_number_of_times() {
    let s = trained();
    let hub = HubServer::start();
    hub.fail("/commit/main", &[500, 503]);
    upload(&s, &hub, Some(TOKEN), &["--repo-id", "alice/x"]).ok();
    let commits = hub
        .requests()
        .iter()
        .filter(|q| q.path.ends_with("/commit/main"))
        .count();
    assert_eq!(commits, 3, "two failures, then success");

    let hub = HubServer::start();
    hub.fail("/commit/main", &[500; 20]);
    let r = upload(&s, &hub, Some(TOKEN), &["--repo-id", "alice/x"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("alice/x") && !r.stderr.contains(TOKEN),
        "{}",
        r.stderr
    );
    let commits = hub
        .requests()
        .iter()
        .filter(|q| q.path.ends_with("/commit/main"))
        .count();
    assert!((2..=4).contains(&commits), "{commits} attempts");
}

#[test]
fn missing_token_bad_repo_id_and_foreign_files_are_refused_before_any_request() {
    let s = trained();
    let hub = HubServer::start();
    upload(&s, &hub, None, &["--repo-id", "alice/x"]).bad_input("no Hugging Face token");
    upload(&s, &hub, Some(TOKEN), &["--repo-id", "no-slash"]).bad_input("expected owner/name");
    s.write("checkpoints/best.mpk", b"not a checkpoint");
    upload(&s, &hub, Some(TOKEN), &["--repo-id", "alice/x"]).bad_input("not an anomaly checkpoint");
    assert!(hub.requests().is_empty());
}

/// `model.safetensors` and `config.json` alone are enough to reproduce `predict`'s scores: an
/// independent preprocessing and forward pass, as a Python user would write them from the two
/// files, agree to 1e-5.
#[test]
fn the_published_weights_and_config_alone_reproduce_predicts_scores() {
    let s = trained();
    let hub = HubServer::start();
    upload(&s, &hub, Some(TOKEN), &["--repo-id", "alice/x"]).ok();
    let files = hub.state.lock().unwrap().files.clone();
    let config: serde_json::Value = serde_json::from_slice(&files["config.json"]).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&files["model.safetensors"]).unwrap();
    let tensor = |name: &str| -> (Vec<f64>, Vec<usize>) {
        let t = tensors.tensor(name).unwrap();
        let values = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect();
        (values, t.shape().to_vec())
    };
    let numbers = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let pre = &config["preprocessing"];
    assert_eq!(pre["scaler"]["kind"], "standard");
    assert_eq!(config["architecture"]["activation"], "relu");
    let (offset, scale) = (
        numbers(&pre["scaler"]["offset"]),
        numbers(&pre["scaler"]["scale"]),
    );
    let layers = config["architecture"]["hidden_dims"]
        .as_array()
        .unwrap()
        .len()
        + 1;

    let scores = s.predict("checkpoints/best.mpk", "d.csv", &[]).ok().stdout;
    let mut data = csv::Reader::from_path(s.path("d.csv")).unwrap();
    let header: Vec<String> = data.headers().unwrap().iter().map(String::from).collect();
    for (record, line) in data.records().zip(scores.lines().skip(1)).take(25) {
        let record = record.unwrap();
        let cell = |name: &str| {
            record[header.iter().position(|h| h == name).unwrap()]
                .trim()
                .to_string()
        };
        let mut x = Vec::new();
        for col in pre["columns"].as_array().unwrap() {
            let (name, enc) = (col["name"].as_str().unwrap(), &col["encoding"]);
            let raw = cell(name);
            match enc["type"].as_str().unwrap() {
                "numeric" => {
                    let v = raw.parse::<f64>().ok().filter(|v| v.is_finite());
                    let v = v.unwrap_or(enc["fill"].as_f64().unwrap());
                    x.push(if enc["log1p"] == true {
                        v.max(0.0).ln_1p()
                    } else {
                        v
                    });
                }
                "boolean" => x.push(if raw.eq_ignore_ascii_case("true") {
                    1.0
                } else {
                    0.0
                }),
                other => panic!("encoding {other} is not used by this data"),
            }
        }
        let mut h: Vec<f64> = x
            .iter()
            .zip(offset.iter().zip(&scale))
            .map(|(v, (o, s))| (v - o) * s)
            .collect();
        for k in 0..layers {
            let (w, shape) = tensor(&format!("layers.{k}.weight"));
            let (b, _) = tensor(&format!("layers.{k}.bias"));
            let (outs, ins) = (shape[0], shape[1]);
            assert_eq!(ins, h.len());
            h = (0..outs)
                .map(|o| {
                    let z = b[o] + (0..ins).map(|i| w[o * ins + i] * h[i]).sum::<f64>();
                    if k + 1 < layers { z.max(0.0) } else { z }
                })
                .collect();
        }
        let ours = 1.0 / (1.0 + (-h[0]).exp());
        let theirs: f64 = line.split(',').nth(1).unwrap().parse().unwrap();
        assert!((ours - theirs).abs() < 1e-5, "{ours} vs predict's {theirs}");
    }
}
