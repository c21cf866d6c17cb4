//! `anomaly serve`: the real server on a free loopback port, driven over HTTP. Scores match
//! `anomaly predict` on the same rows whichever way they are sent; bad input gets its 4xx and
//! a message naming the row and field; the token guards the API and never shows; SIGTERM
//! drains and exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{MULTICLASS, Sandbox};

/// A running `anomaly serve` and every line it has written.
pub struct Server {
    child: Child,
    pub base: String,
    /// Locked only to read: a `Receiver` cannot be shared between the test's threads.
    lines: Mutex<Receiver<String>>,
    agent: ureq::Agent,
    token: Option<String>,
}

impl Server {
    /// Starts `anomaly serve --port 0 <args>` and waits for its address.
    pub fn start(s: &Sandbox, args: &[&str]) -> Server {
        let mut command = s.command(&[&["serve", "--port", "0"], args].concat());
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = channel();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut seen = String::new();
        let base = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no address from serve; it wrote:\n{seen}"));
            seen += &line;
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest.split_whitespace().next().unwrap();
                break format!("http://{}", addr.replace("0.0.0.0", "127.0.0.1"));
            }
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Server {
            child,
            base,
            lines: Mutex::new(lines),
            agent,
            token: None,
        }
    }

    pub fn with_token(mut self, token: &str) -> Server {
        self.token = Some(token.to_string());
        self
    }

    fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, String) {
        let mut r = r.unwrap();
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().unwrap())
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        Self::answer(req.call())
    }

    pub fn post(&self, path: &str, content_type: &str, body: impl AsRef<[u8]>) -> (u16, String) {
        let mut req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", content_type);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        Self::answer(req.send(body.as_ref()))
    }

    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    pub fn predict(&self, path: &str, body: &Value) -> Value {
        let (status, text) = self.post(path, "application/json", body.to_string());
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    /// SIGKILL: the server gets no chance to finish anything.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit code and everything the server wrote.
    pub fn stop(mut self) -> (i32, String) {
        // SAFETY: signalling our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = self.child.wait().unwrap();
        // Everything it wrote: the reader threads end (and the channel closes) at the pipes'
        // end, which may come a moment after the exit.
        let lines = self.lines.lock().unwrap();
        let output: Vec<String> =
            std::iter::from_fn(|| lines.recv_timeout(Duration::from_secs(10)).ok()).collect();
        (status.code().unwrap_or(-1), output.join("\n"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `d.csv` (600 generated rows), a binary MLP at `checkpoints/best.mpk` (run `t`) and a
/// multiclass one at `multi/best.mpk`.
fn trained() -> Sandbox {
    let s = Sandbox::new();
    s.sample("d.csv", 600, 3);
    s.train("d.csv", &[]).ok();
    s.three_classes("m.csv");
    let named = [
        "--set",
        "checkpoint.save_dir=multi",
        "--set",
        "logging.run_name=multi",
    ];
    s.train("m.csv", &[MULTICLASS, &named].concat()).ok();
    s
}

/// The first `n` rows of `file` as a CSV text, and as records of column → cell.
fn rows(s: &Sandbox, file: &str, n: usize) -> (String, Vec<serde_json::Map<String, Value>>) {
    let text = std::fs::read_to_string(s.path(file)).unwrap();
    let head: Vec<&str> = text.lines().take(n + 1).collect();
    let names: Vec<&str> = head[0].split(',').collect();
    let records = head[1..]
        .iter()
        .map(|l| {
            names
                .iter()
                .zip(l.split(','))
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .collect()
        })
        .collect();
    (head.join("\n") + "\n", records)
}

fn scores(response: &Value) -> Vec<f64> {
    response["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["score"].as_f64().unwrap())
        .collect()
}

#[test]
fn serve_scores_csv_positional_and_named_rows_exactly_as_predict_does() {
    let s = trained();
    let (csv, records) = rows(&s, "d.csv", 40);
    s.write("head.csv", &csv);
    let expected = Sandbox::scores(
        &s.predict("checkpoints/best.mpk", "head.csv", &[])
            .ok()
            .stdout,
    );
    let server = Server::start(
        &s,
        &[
            "--checkpoint",
            "checkpoints/best.mpk",
            "--checkpoint",
            "multi=multi/best.mpk",
        ],
    );
    assert_eq!(server.get_json("/api/v1/health")["status"], "ok");
    assert_eq!(server.get_json("/api/v1/ready")["models"], 2);
    let models = server.get_json("/api/v1/models");
    assert_eq!(models["default"], "t");
    let model = &models["models"][0];
    assert_eq!(model["family"], "mlp");
    assert_eq!(
        models["models"][1]["classes"],
        json!(["dos", "normal", "probe"])
    );
    let columns: Vec<String> = model["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    assert!(columns.contains(&"packet_size".to_string()), "{columns:?}");

    let (status, body) = server.post("/api/v1/predict", "text/csv", &csv);
    assert_eq!(status, 200, "{body}");
    let by_csv: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(by_csv["model"], "t");
    assert_eq!(scores(&by_csv), expected);
    let by_name = server.predict("/api/v1/predict", &json!({"records": records}));
    assert_eq!(scores(&by_name), expected);
    let instances: Vec<Vec<Value>> = records
        .iter()
        .map(|r| columns.iter().map(|c| r[c].clone()).collect())
        .collect();
    let by_position = server.predict("/api/v1/predict", &json!({"instances": instances}));
    assert_eq!(scores(&by_position), expected);
    assert_eq!(by_position["predictions"][3]["row"], 4);

    // Single rows sent at once share batches and still score as alone.
    let singles: Vec<f64> = std::thread::scope(|scope| {
        let jobs: Vec<_> = instances
            .iter()
            .map(|row| {
                let server = &server;
                scope.spawn(move || {
                    scores(&server.predict("/api/v1/predict", &json!({"instances": [row]})))[0]
                })
            })
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    });
    assert_eq!(singles, expected);

    let all = server.predict("/api/v1/predict?threshold=0", &json!({"records": records}));
    assert_eq!(all["threshold"], 0.0);
    // ?explain=K gives flagged rows the reasons `predict --explain K` writes.
    assert_eq!(model["explainable"], true);
    let explained = server.predict(
        "/api/v1/predict?threshold=0&explain=2",
        &json!({"records": records}),
    );
    let cli = s
        .predict(
            "checkpoints/best.mpk",
            "head.csv",
            &["--threshold", "0", "--explain", "2", "--format", "jsonl"],
        )
        .ok()
        .stdout;
    for (served, line) in explained["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(cli.lines())
    {
        let written: Value = serde_json::from_str(line).unwrap();
        assert_eq!(served["reasons"], written["reasons"], "{line}");
        assert!(
            !served["reasons"].as_array().unwrap().is_empty(),
            "{served}"
        );
    }
    assert!(all["predictions"][0].get("reasons").is_none());
    let (_, text) = server.post(
        "/api/v1/predict?threshold=0.2",
        "application/json",
        json!({"records": &records[..1]}).to_string(),
    );
    assert!(text.contains("\"threshold\":0.2,"), "{text}");
    assert!(
        all["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["is_anomaly"] == true)
    );

    let multi = server.predict(
        "/api/v1/predict",
        &json!({"model": "multi", "records": [{"bytes": 52, "duration": 3}]}),
    );
    assert_eq!(multi["predictions"][0]["class"], "dos");
    assert!(
        multi["predictions"][0]["class_probability"]
            .as_f64()
            .unwrap()
            > 0.5
    );

    let metrics = server.get("/metrics").1;
    for line in [
        "anomaly_http_requests_total{route=\"/api/v1/predict\",status=\"200\"} 47",
        "anomaly_rows_scored_total{model=\"t\"} 241",
        "anomaly_rows_scored_total{model=\"multi\"} 1",
        "anomaly_http_request_duration_seconds_count{route=\"/api/v1/predict\"} 47",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    assert!(metrics.contains("anomaly_model_load_seconds{model=\"multi\"}"));

    let spec: Value = serde_json::from_str(&server.get("/api/v1/openapi.json").1).unwrap();
    assert_eq!(spec["openapi"], "3.0.3");
    assert!(spec["paths"]["/api/v1/predict"]["post"].is_object());
    let (status, docs) = server.get("/docs");
    assert_eq!(status, 200);
    assert!(docs.contains("/api/v1/openapi.json") && !docs.contains("https://"));
    let (status, page) = server.get("/");
    assert_eq!(status, 200);
    assert!(page.contains("<title>anomaly: dashboard</title>") && !page.contains("https://"));

    let (code, output) = server.stop();
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("anomaly serve: stopped"), "{output}");
}

#[test]
fn serve_answers_bad_input_with_a_4xx_that_names_the_row_and_field() {
    let s = trained();
    let (_, records) = rows(&s, "d.csv", 3);
    let server = Server::start(
        &s,
        &["--checkpoint", "checkpoints/best.mpk", "--max-body", "4096"],
    );
    let width = server.get_json("/api/v1/models")["models"][0]["features"]
        .as_array()
        .unwrap()
        .len();
    let mut bad = records.clone();
    bad[1].insert("packet_size".into(), json!("abc"));
    let mut unknown = records.clone();
    unknown.iter_mut().for_each(|r| {
        r.insert("bogus".into(), json!(1));
    });
    let cases: Vec<(&str, String, u16, String)> = vec![
        (
            "application/json",
            json!({"instances": [vec![1.0; width], vec![1.0; width - 1]]}).to_string(),
            422,
            format!("row 2: expected {width} values, found {}", width - 1),
        ),
        (
            "application/json",
            json!({"records": bad}).to_string(),
            422,
            "row 2: column 'packet_size': expected a number, found \"abc\"".into(),
        ),
        (
            "application/json",
            json!({"records": unknown}).to_string(),
            422,
            "unknown column 'bogus'".into(),
        ),
        (
            "application/json",
            json!({"model": "nope", "instances": [vec![1.0; width]]}).to_string(),
            404,
            "unknown model 'nope'; this server has: t".into(),
        ),
        (
            "application/json",
            json!({"instances": [[{"a": 1}]]}).to_string(),
            422,
            "row 1, value 1: expected a number, string, boolean or null".into(),
        ),
        (
            "application/json",
            "{\"instances\": [[1, 2".into(),
            400,
            "not JSON".into(),
        ),
        (
            "application/json",
            json!({"instances": []}).to_string(),
            422,
            "no rows".into(),
        ),
        (
            "application/json",
            json!({"rows": []}).to_string(),
            422,
            "unknown key 'rows'".into(),
        ),
        (
            "application/octet-stream",
            "\u{1}\u{2}garbage".into(),
            400,
            "not JSON".into(),
        ),
        (
            "text/csv",
            "packet_size\n1\n".into(),
            422,
            "missing column".into(),
        ),
        (
            "application/json",
            "x".repeat(5000),
            413,
            "length limit".into(),
        ),
    ];
    for (content_type, body, status, message) in cases {
        let (got, text) = server.post("/api/v1/predict", content_type, &body);
        assert_eq!(got, status, "{body:.80}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"));
        let error = error["error"].as_str().unwrap();
        assert!(error.contains(&message), "{error:?} lacks {message:?}");
    }
    let (status, _) = server.get("/api/v1/predict?threshold=x");
    assert_eq!(status, 405);
    let (status, text) = server.post(
        "/api/v1/predict?threshold=high",
        "application/json",
        json!({"records": records}).to_string(),
    );
    assert_eq!((status, text.contains("threshold")), (400, true), "{text}");
    let (status, text) = server.post(
        "/api/v1/predict?explain=many",
        "application/json",
        json!({"records": records}).to_string(),
    );
    assert_eq!((status, text.contains("explain")), (400, true), "{text}");
    assert_eq!(server.get("/no/such/route").0, 404);
    assert_eq!(server.get_json("/api/v1/health")["status"], "ok");
}

#[test]
fn serve_needs_a_token_off_loopback_and_never_shows_it() {
    let s = trained();
    s.run(&[
        "serve",
        "--host",
        "0.0.0.0",
        "--checkpoint",
        "checkpoints/best.mpk",
    ])
    .bad_input("--token-file");
    let secret = "s3cret-Token-8842";
    s.write("token.txt", format!("{secret}\n"));
    let server = Server::start(
        &s,
        &[
            "--host",
            "0.0.0.0",
            "--token-file",
            "token.txt",
            "--checkpoint",
            "checkpoints/best.mpk",
        ],
    );
    let (status, body) = server.get("/api/v1/models");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("Authorization: Bearer"));
    assert_eq!(server.get("/metrics").0, 401);
    assert_eq!(server.get("/api/v1/health").0, 200);
    let server = server.with_token("wrong");
    assert_eq!(server.get("/api/v1/models").0, 401);
    let server = server.with_token(secret);
    let models = server.get("/api/v1/models").1;
    let metrics = server.get("/metrics").1;
    assert!(!models.contains(secret) && !metrics.contains(secret));
    let (code, output) = server.stop();
    assert_eq!(code, 0);
    assert!(!output.contains(secret), "{output}");
}

#[test]
fn serve_appends_analyst_verdicts_and_offers_data_dir_files() {
    let s = trained();
    let (csv, records) = rows(&s, "d.csv", 5);
    s.write("traffic/live.csv", &csv);
    s.write("traffic/notes.txt", "not a CSV");
    let server = Server::start(
        &s,
        &[
            "--checkpoint",
            "checkpoints/best.mpk",
            "--data-dir",
            "traffic",
            "--feedback-file",
            "fb/verdicts.csv",
        ],
    );
    assert_eq!(
        server.get_json("/api/v1/files")["files"],
        json!(["live.csv"])
    );
    assert_eq!(server.get("/api/v1/files/live.csv"), (200, csv.clone()));
    assert_eq!(server.get("/api/v1/files/notes.txt").0, 404);
    assert_eq!(server.get("/api/v1/files/..%2Fd.csv").0, 404);
    let verdict = |record: &serde_json::Map<String, Value>, verdict: &str| {
        let body = json!({"record": record, "score": 0.9, "verdict": verdict});
        server.post("/api/v1/feedback", "application/json", body.to_string())
    };
    let (status, body) = verdict(&records[2], "false_positive");
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["rows"], 1);
    assert_eq!(verdict(&records[3], "true_positive").0, 200);
    let (status, body) = verdict(&records[3], "maybe");
    assert_eq!(status, 422);
    assert!(body.contains("unknown variant `maybe`"), "{body}");
    let text = std::fs::read_to_string(s.path("fb/verdicts.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].ends_with(",score,verdict,model,time"),
        "{}",
        lines[0]
    );
    let packet_size = &records[2]["packet_size"];
    assert!(
        lines[1].starts_with(packet_size.as_str().unwrap()),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains(",0.9,false_positive,t,20"),
        "{}",
        lines[1]
    );
}
