//! The alert store with real parts: `serve` storing every alarm it answers in SQLite and
//! reading it back through the API; `predict --alerts-db`; delivery to a webhook receiver that
//! fails its first requests and to syslog receivers on loopback UDP and TCP (CEF parsed back),
//! and to an ECS file; `kill -9` while a client streams alarm-producing requests; two replicas
//! sharing a PostgreSQL history (the one `.ci/run` starts; skipped, saying why, without it).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::flows::{labelled_capture, train_on_flows};
use crate::serve::Server;
use crate::util::Sandbox;

/// A random forest trained on a generated capture's labelled flows, and `test.csv`: another
/// capture's flows (identifiers included), some of them attacks.
fn flows_model() -> (Sandbox, String) {
    let s = Sandbox::new();
    labelled_capture(&s, "train", "400", "11");
    labelled_capture(&s, "test", "200", "12");
    let model = train_on_flows(&s, "random_forest");
    (s, model)
}

/// Flagged rows in a predict answer.
fn flagged(answer: &Value) -> usize {
    answer["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["is_anomaly"] == true)
        .count()
}

fn post_csv(server: &Server, path: &str, body: &[u8]) -> Value {
    let (status, text) = server.post(path, "text/csv", body);
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Every alert the server has, following the pages.
fn all_alerts(server: &Server, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut path = format!("/api/v1/alerts?limit=7{query}");
    loop {
        let page = server.get_json(&path);
        out.extend(page["alerts"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => path = format!("/api/v1/alerts?limit=7{query}&cursor={next}"),
            None => return out,
        }
    }
}

fn alarms(alerts: &[Value]) -> usize {
    alerts
        .iter()
        .map(|a| a["count"].as_u64().unwrap() as usize)
        .sum()
}

fn error_of(server: &Server, path: &str, status: u16) -> String {
    let (got, body) = server.get(path);
    assert_eq!(got, status, "{path}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["error"].as_str().unwrap().to_string()
}

#[test]
fn serve_keeps_every_alarm_it_answers_and_the_api_reads_them_back() {
    let (s, model) = flows_model();
    let server = Server::start(
        &s,
        &[
            "--checkpoint",
            &model,
            "--alerts-db",
            "db/alerts.sqlite",
            "--dedup-window",
            "0",
        ],
    );
    let answer = post_csv(
        &server,
        "/api/v1/predict",
        &std::fs::read(s.path("test.csv")).unwrap(),
    );
    let n = flagged(&answer);
    assert!(n >= 5, "the test capture should hold attacks: {n} flagged");
    let alerts = all_alerts(&server, "");
    assert_eq!(alarms(&alerts), n, "every alarm answered is stored");
    let ids: std::collections::HashSet<i64> =
        alerts.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), alerts.len(), "pages neither repeat nor skip");
    let a = &alerts[0];
    for key in [
        "src",
        "dst",
        "dst_port",
        "flow_id",
        "time",
        "severity",
        "checkpoint_sha256",
    ] {
        assert!(!a[key].is_null(), "{key} missing in {a}");
    }
    assert_eq!(a["fields"]["Flow ID"], a["flow_id"]);
    // Times are the rows' own (the capture's), newest first.
    let times: Vec<&str> = alerts.iter().map(|a| a["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    assert!(alerts.iter().all(|a| a["time"] != a["received"]), "{a}");

    // One alert, a verdict on it (stored, and in the feedback file), and the filters.
    let id = a["id"].as_i64().unwrap();
    assert_eq!(server.get_json(&format!("/api/v1/alerts/{id}"))["id"], id);
    let (status, body) = server.post(
        &format!("/api/v1/alerts/{id}/verdict"),
        "application/json",
        r#"{"verdict": "false_positive"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let judged = server.get_json(&format!("/api/v1/alerts/{id}"));
    assert_eq!(judged["verdict"], "false_positive");
    let feedback = std::fs::read_to_string(s.path("feedback/feedback.csv")).unwrap();
    assert!(
        feedback.lines().nth(1).unwrap().contains("false_positive"),
        "{feedback}"
    );
    assert_eq!(all_alerts(&server, "&verdict=false_positive").len(), 1);
    assert_eq!(all_alerts(&server, "&verdict=none").len(), alerts.len() - 1);
    let src = a["src"].as_str().unwrap();
    let from_src = all_alerts(&server, &format!("&src={src}"));
    assert!(from_src.iter().all(|x| x["src"] == src) && !from_src.is_empty());
    let stats = server.get_json("/api/v1/alerts/stats?bucket=1d");
    let counted: i64 = stats["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            b["low"].as_i64().unwrap() + b["medium"].as_i64().unwrap() + b["high"].as_i64().unwrap()
        })
        .sum();
    assert_eq!(counted as usize, alerts.len());

    // Bad parameters are 400 naming the parameter; every error has the same JSON body.
    assert!(error_of(&server, "/api/v1/alerts?severity=urgent", 400).contains("severity"));
    assert!(error_of(&server, "/api/v1/alerts?limit=0", 400).contains("limit"));
    assert!(error_of(&server, "/api/v1/alerts?until=someday", 400).contains("until"));
    assert!(error_of(&server, "/api/v1/alerts?cursor=x", 400).contains("cursor"));
    assert!(error_of(&server, "/api/v1/alerts?sevrity=high", 400).contains("sevrity"));
    assert!(error_of(&server, "/api/v1/alerts/stats?bucket=1y", 400).contains("bucket"));
    assert!(error_of(&server, "/api/v1/alerts/123456", 404).contains("123456"));
    let (status, body) = server.post(
        &format!("/api/v1/alerts/{id}/verdict"),
        "application/json",
        r#"{"verdict": "maybe"}"#,
    );
    assert_eq!(status, 422, "{body}");
    let (status, body) = server.post("/api/v1/alerts", "application/json", "{}");
    assert_eq!(status, 405);
    assert!(
        serde_json::from_str::<Value>(&body).unwrap()["error"].is_string(),
        "{body}"
    );

    let metrics = server.get("/metrics").1;
    assert!(
        metrics.contains(&format!("anomaly_alerts_stored_total {n}")),
        "{metrics}"
    );
}

/// `GET /api/v1/alerts/stream` gives an alert stored after the listener connected.
#[test]
fn the_event_stream_carries_each_new_alert() {
    let (s, model) = flows_model();
    let server = Server::start(&s, &["--checkpoint", &model, "--alerts-db", "a.sqlite"]);
    let url = format!("{}/api/v1/alerts/stream", server.base);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = ureq::get(&url).call().unwrap();
        let reader = BufReader::new(r.body_mut().as_reader());
        for line in reader.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let answer = post_csv(
        &server,
        "/api/v1/predict",
        &std::fs::read(s.path("test.csv")).unwrap(),
    );
    assert!(flagged(&answer) > 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let data = loop {
        let line = rx
            .recv_timeout(deadline - Instant::now())
            .expect("no event within 20 s");
        if let Some(data) = line.strip_prefix("data: ") {
            break data.to_string();
        }
    };
    let alert: Value = serde_json::from_str(&data).unwrap();
    let stored = server.get_json(&format!("/api/v1/alerts/{}", alert["id"]));
    assert_eq!(stored["flow_id"], alert["flow_id"]);
}

#[test]
fn predict_alerts_db_stores_each_flagged_row() {
    let (s, model) = flows_model();
    let run = s
        .run(&[
            "predict",
            "--checkpoint",
            &model,
            "--data",
            "test.csv",
            "--alerts-db",
            "p.sqlite",
            "--dedup-window",
            "0",
            "--format",
            "jsonl",
        ])
        .ok();
    let flagged = run
        .stdout
        .lines()
        .filter(|l| l.contains("\"is_anomaly\":true"))
        .count();
    assert!(flagged > 0);
    // Read back through a server on the same file.
    let server = Server::start(&s, &["--checkpoint", &model, "--alerts-db", "p.sqlite"]);
    assert_eq!(alarms(&all_alerts(&server, "")), flagged);
    // A sink without a store, a bad syslog URL, and a store that cannot be created are exit 2.
    s.write("notes.txt", "x");
    let base = ["predict", "--checkpoint", &model, "--data", "test.csv"];
    s.run(&[&base[..], &["--alert-webhook", "http://127.0.0.1:9/"]].concat())
        .bad_input("--alerts-db");
    s.run(
        &[
            &base[..],
            &["--alerts-db", "q.sqlite", "--alert-syslog", "http://h:1"],
        ]
        .concat(),
    )
    .bad_input("--alert-syslog http://h:1");
    s.run(&[&base[..], &["--alerts-db", "notes.txt/a.sqlite"]].concat())
        .bad_input("notes.txt/a.sqlite");
}

/// A one-thread HTTP receiver: answers 503 to its first `fail` requests, then 200; keeps the
/// alerts of the bodies it accepted.
fn webhook(fail: usize) -> (String, Arc<Mutex<Vec<Value>>>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (got, requests) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(AtomicUsize::new(0)),
    );
    let (kept, seen) = (got.clone(), requests.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let status = if n < fail {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            if n >= fail {
                let v: Value = serde_json::from_slice(&body).unwrap();
                kept.lock()
                    .unwrap()
                    .extend(v["alerts"].as_array().unwrap().iter().cloned());
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, got, requests)
}

/// CEF extension fields of a syslog message (`k=v` pairs after the seventh `|`).
fn cef_fields(message: &str) -> HashMap<String, String> {
    let cef = &message[message.find("CEF:0|").expect(message)..];
    let ext = cef.splitn(8, '|').nth(7).unwrap();
    let mut out = HashMap::new();
    let mut key = String::new();
    for word in ext.split(' ') {
        match word.split_once('=') {
            Some((k, v)) if !k.contains('\\') => {
                key = k.to_string();
                out.insert(key.clone(), v.to_string());
            }
            _ => {
                let v = out.get_mut(&key).unwrap();
                v.push(' ');
                v.push_str(word);
            }
        }
    }
    out
}

#[test]
fn alerts_reach_a_failing_webhook_syslog_over_udp_and_tcp_and_an_ecs_file() {
    let (s, model) = flows_model();
    let (hook, hooked, requests) = webhook(2);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let (udp_url, tcp_url) = (
        format!("udp://{}", udp.local_addr().unwrap()),
        format!("tcp://{}", tcp.local_addr().unwrap()),
    );
    let server = Server::start(
        &s,
        &[
            "--checkpoint",
            &model,
            "--alerts-db",
            "a.sqlite",
            "--alert-webhook",
            &hook,
            "--alert-syslog",
            &udp_url,
            "--alert-syslog",
            &tcp_url,
            "--alert-file",
            "ecs.ndjson",
        ],
    );
    post_csv(
        &server,
        "/api/v1/predict",
        &std::fs::read(s.path("test.csv")).unwrap(),
    );
    let stored = all_alerts(&server, "");
    let by_id: HashMap<String, &Value> = stored.iter().map(|a| (a["id"].to_string(), a)).collect();
    // UDP: one datagram per alert.
    let mut buf = vec![0; 65536];
    for _ in 0..stored.len() {
        let n = udp.recv(&mut buf).unwrap();
        let message = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(
            message.starts_with("<13"),
            "RFC 5424 PRI of local0: {message}"
        );
        let f = cef_fields(&message);
        let a = by_id[&f["externalId"]];
        assert_eq!(f["src"], a["src"].as_str().unwrap());
        assert_eq!(f["dpt"], a["dst_port"].to_string());
        assert_eq!(f["cs1"], a["flow_id"].as_str().unwrap());
    }
    // TCP: octet-counted frames.
    let (conn, _) = tcp.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(conn);
    for _ in 0..stored.len() {
        let mut len = Vec::new();
        reader.read_until(b' ', &mut len).unwrap();
        let len: usize = String::from_utf8_lossy(&len).trim().parse().unwrap();
        let mut frame = vec![0; len];
        reader.read_exact(&mut frame).unwrap();
        let f = cef_fields(&String::from_utf8_lossy(&frame));
        assert!(by_id.contains_key(&f["externalId"]));
    }
    // The webhook: refused twice, retried with backoff, nothing lost.
    let deadline = Instant::now() + Duration::from_secs(30);
    while hooked.lock().unwrap().len() < stored.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut got: Vec<String> = hooked
        .lock()
        .unwrap()
        .iter()
        .map(|a| a["id"].to_string())
        .collect();
    got.sort();
    let mut want: Vec<String> = by_id.keys().cloned().collect();
    want.sort();
    assert_eq!(got, want);
    assert!(requests.load(Ordering::SeqCst) >= 3);
    let metrics = server.get("/metrics").1;
    assert!(
        metrics.contains("anomaly_alert_delivery_retries_total{sink=\"webhook\"} 2"),
        "{metrics}"
    );
    // The ECS file: a line per alert.
    let ecs = std::fs::read_to_string(s.path("ecs.ndjson")).unwrap();
    let lines: Vec<Value> = ecs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), stored.len());
    assert_eq!(lines[0]["event"]["kind"], "alert");
    assert!(["tcp", "udp"].contains(&lines[0]["network"]["transport"].as_str().unwrap()));
    assert!(lines[0]["source"]["ip"].is_string());
}

/// The promise: an alarm in a response that was sent is in the store, even when the server
/// is killed (SIGKILL) right after.
#[test]
fn an_alarm_answered_before_kill_9_is_in_the_store_after_restart() {
    let (s, model) = flows_model();
    let server = Server::start(&s, &["--checkpoint", &model, "--alerts-db", "k.sqlite"]);
    let csv = std::fs::read_to_string(s.path("test.csv")).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap().to_string();
    let rows: Vec<String> = lines.map(str::to_string).collect();
    let answered = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (base, rows, header) = (server.base.clone(), rows.clone(), header.clone());
            let (answered, stop) = (answered.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(5)))
                    .build()
                    .into();
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let chunk = rows
                        .iter()
                        .cycle()
                        .skip((i * 4 + c) * 10 % rows.len())
                        .take(10);
                    let body = std::iter::once(&header)
                        .chain(chunk)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n");
                    let sent = agent
                        .post(format!("{base}/api/v1/predict"))
                        .header("Content-Type", "text/csv")
                        .send(body.as_bytes());
                    // Only a complete answer counts; the kill cuts the others off.
                    let Ok(mut r) = sent else { return };
                    let Ok(text) = r.body_mut().read_to_string() else {
                        return;
                    };
                    let v: Value = serde_json::from_str(&text).unwrap();
                    answered.fetch_add(flagged(&v), Ordering::SeqCst);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    server.kill();
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let answered = answered.load(Ordering::SeqCst);
    assert!(answered > 0, "no alarm was answered before the kill");
    let again = Server::start(&s, &["--checkpoint", &model, "--alerts-db", "k.sqlite"]);
    let stored = alarms(&all_alerts(&again, ""));
    assert!(
        stored >= answered,
        "{answered} alarms answered, {stored} stored"
    );
}

/// Two replicas write to one PostgreSQL database; either reads the other's alerts.
#[test]
fn two_replicas_share_one_postgresql_history() {
    let Ok(server_url) = std::env::var("ANOMALY_TEST_POSTGRES") else {
        eprintln!(
            "skipped: ANOMALY_TEST_POSTGRES is not set (`.ci/run` starts a PostgreSQL and sets it)"
        );
        return;
    };
    let name = format!("replicas_{}", std::process::id());
    let url = anomaly::alerts::store::create_database(&server_url, &name).unwrap();
    let (s, model) = flows_model();
    let args = [
        "--checkpoint",
        &model,
        "--alerts-db",
        &url,
        "--dedup-window",
        "0",
    ];
    let (a, b) = (Server::start(&s, &args), Server::start(&s, &args));
    let csv = std::fs::read_to_string(s.path("test.csv")).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let body = |odd: usize| {
        let part: Vec<&str> = rows.iter().skip(odd).step_by(2).copied().collect();
        format!("{header}\n{}", part.join("\n"))
    };
    let n_a = flagged(&post_csv(&a, "/api/v1/predict", body(0).as_bytes()));
    let n_b = flagged(&post_csv(&b, "/api/v1/predict", body(1).as_bytes()));
    assert!(n_a > 0 && n_b > 0, "{n_a} and {n_b} flagged");
    assert_eq!(alarms(&all_alerts(&a, "")), n_a + n_b);
    assert_eq!(all_alerts(&a, ""), all_alerts(&b, ""));
}

/// Every `/api/v1` route the router has is described in the OpenAPI document.
#[test]
fn every_api_route_is_in_the_openapi_document() {
    let router = include_str!("../../src/serve/api.rs");
    let spec: Value = serde_json::from_str(include_str!("../../src/serve/openapi.json")).unwrap();
    let routes: Vec<&str> = router
        .split(".route(\"")
        .skip(1)
        .map(|r| &r[..r.find('"').unwrap()])
        .filter(|r| r.starts_with("/api/v1/"))
        .collect();
    assert!(routes.len() >= 14, "{routes:?}");
    for route in routes {
        assert!(
            spec["paths"][route].is_object(),
            "{route} is not in openapi.json"
        );
    }
}
