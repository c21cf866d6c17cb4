//! The dashboard in a real browser: headless Chromium driven over WebDriver (chromedriver)
//! uploads data/sample.csv, runs detection, and must show the number of alarms `anomaly
//! predict` finds; a flagged row marked as a false positive lands in the feedback file; a
//! capture chosen instead shows its flows scored as `predict --pcap` scores them. Skips,
//! saying why, where Chromium or chromedriver is not installed (`.ci/run` installs them).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::flows::{generated, labelled_capture, train_on_flows};
use crate::serve::Server;
use crate::util::Sandbox;

/// The W3C WebDriver key under which an element reference is returned.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// chromedriver on a free port, and a session in headless Chromium.
struct Browser {
    driver: Child,
    url: String,
    agent: ureq::Agent,
}

impl Browser {
    fn start(chromium: &Path, chromedriver: &Path) -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while agent.get(format!("{base}/status")).call().is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut browser = Browser {
            driver,
            url: base,
            agent,
        };
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1800"],
        }}}});
        let session = browser.call("POST", "/session", Some(caps));
        browser.url = format!(
            "{}/session/{}",
            browser.url,
            session["sessionId"].as_str().unwrap()
        );
        browser
    }

    /// One WebDriver command; its `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.url);
        let response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or_else(|| json!({})).to_string()),
        };
        let mut response = response.unwrap();
        let status = response.status().as_u16();
        let answer: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer["value"].clone()
    }

    fn elements(&self, css: &str) -> Vec<String> {
        let found = self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[ELEMENT].as_str().unwrap().to_string())
            .collect()
    }

    /// The first element matching `css`, waiting up to 30 s for it to exist and be shown.
    fn wait_for(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(e) = self.elements(css).into_iter().next()
                && self.call("GET", &format!("/element/{e}/displayed"), None) == true
            {
                return e;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{css} never appeared"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn text(&self, element: &str) -> String {
        let t = self.call("GET", &format!("/element/{element}/text"), None);
        t.as_str().unwrap().to_string()
    }

    fn click(&self, element: &str) {
        self.call("POST", &format!("/element/{element}/click"), None);
    }

    /// Waits until the element at `css` is enabled, then clicks it.
    fn click_when_enabled(&self, css: &str) {
        let e = self.wait_for(css);
        let started = Instant::now();
        while self.call("GET", &format!("/element/{e}/enabled"), None) != true {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{css} stayed disabled"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.click(&e);
    }

    /// Waits until the element at `css` shows text matching `done`, and returns it.
    fn wait_text(&self, css: &str, done: impl Fn(&str) -> bool) -> String {
        let e = self.wait_for(css);
        let started = Instant::now();
        loop {
            let t = self.text(&e);
            if done(&t) {
                return t;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{css} shows {t:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.url).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Chromium and chromedriver, or None (and the reason printed) where they are not installed.
fn browser_binaries() -> Option<(PathBuf, PathBuf)> {
    let found = (
        find(&["chromium", "chromium-browser", "google-chrome"]),
        find(&["chromedriver"]),
    );
    if let (Some(chromium), Some(chromedriver)) = found {
        return Some((chromium, chromedriver));
    }
    eprintln!(
        "skipped: the dashboard tests need Chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)"
    );
    None
}

/// Opens the dashboard, chooses `path` in its file input and presses Detect.
fn detect(browser: &Browser, server: &Server, path: &str) {
    browser.call("POST", "/url", Some(json!({"url": server.base})));
    let file = browser.wait_for("#file");
    browser.call(
        "POST",
        &format!("/element/{file}/value"),
        Some(json!({"text": path})),
    );
    browser.click_when_enabled("#detect");
}

#[test]
fn dashboard_detects_in_a_browser_what_predict_flags_and_records_a_verdict() {
    let Some((chromium, chromedriver)) = browser_binaries() else {
        return;
    };
    let s = Sandbox::new();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample.csv");
    let sample = sample.to_str().unwrap();
    // Flag the top 5% of the training rows' scores: a few hundred alarms in the file.
    s.train(
        sample,
        &["--set", "training.threshold={contamination: 0.05}"],
    )
    .ok();
    let predicted = s.predict("checkpoints/best.mpk", sample, &[]).ok().stdout;
    let flagged = predicted
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(2) == Some("true"))
        .count();
    assert!(flagged > 0, "the model flags nothing on data/sample.csv");
    let server = Server::start(&s, &["--checkpoint", "checkpoints/best.mpk"]);
    let browser = Browser::start(&chromium, &chromedriver);
    detect(&browser, &server, sample);
    let shown = browser.wait_text("#summary-anomalies b", |t| !t.is_empty());
    assert_eq!(shown, flagged.to_string());
    let rows = browser.wait_text("#summary-rows b", |t| !t.is_empty());
    assert_eq!(rows, "5000");
    assert_eq!(browser.elements("#flagged tbody tr").len(), flagged);
    assert_eq!(browser.elements("#timeline circle").len(), 5000);
    // The drift panel reads the server's window, which now holds these 5000 rows.
    let verdict = browser.wait_text("#drift-verdict", |t| t.contains("5000 rows"));
    let drift = server.get_json("/api/v1/drift");
    let level = drift["level"].as_str().unwrap();
    let said = if level == "none" { "no drift" } else { level };
    assert!(verdict.starts_with(said), "{verdict} against {drift}");
    assert!(!browser.elements("#drift tbody tr").is_empty());

    let first = browser.elements("#flagged tbody tr")[0].clone();
    browser.click(&first);
    let title = browser.wait_text("#detail-title", |t| t.starts_with("Row "));
    let row: usize = title[4..].split(':').next().unwrap().parse().unwrap();
    // The row's top reasons, as `predict --explain 3` gives them.
    let explained = s
        .predict(
            "checkpoints/best.mpk",
            sample,
            &["--explain", "3", "--format", "jsonl"],
        )
        .ok()
        .stdout;
    let line: serde_json::Value =
        serde_json::from_str(explained.lines().nth(row - 1).unwrap()).unwrap();
    let top = line["reasons"][0]["feature"].as_str().unwrap().to_string();
    let first_reason = browser.wait_text("#reasons tbody tr td", |t| !t.is_empty());
    assert_eq!(first_reason, top);
    assert!(!browser.elements("#reasons-chart rect").is_empty());
    browser.click_when_enabled("#mark-fp");
    browser.wait_text("#feedback-status", |t| t.starts_with("saved to"));
    let feedback = std::fs::read_to_string(s.path("feedback/feedback.csv")).unwrap();
    let lines: Vec<&str> = feedback.lines().collect();
    assert_eq!(lines.len(), 2, "{feedback}");
    assert!(lines[1].contains(",false_positive,t,"), "{}", lines[1]);
    let sample_row = std::fs::read_to_string(sample).unwrap();
    let packet_size = sample_row
        .lines()
        .nth(row)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    assert!(
        lines[1].starts_with(packet_size),
        "{} vs row {row}",
        lines[1]
    );

    let png = browser.call("GET", "/screenshot", None);
    let png = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    std::fs::write(s.path("dashboard.png"), &png).unwrap();
    if let Some(copy) = std::env::var_os("ANOMALY_DASHBOARD_SCREENSHOT") {
        std::fs::write(copy, &png).unwrap();
    }
}

/// A capture chosen in the dashboard: the server extracts its flows (`/api/v1/flows`) and the
/// page shows them scored, with the alarms `predict --pcap` raises on the same capture.
#[test]
fn dashboard_scores_a_chosen_capture_as_predict_pcap_does() {
    let Some((chromium, chromedriver)) = browser_binaries() else {
        return;
    };
    let s = Sandbox::new();
    labelled_capture(&s, "train", "600", "3");
    generated(&s, "test.pcap", "300", "4");
    let checkpoint = train_on_flows(&s, "isolation_forest");
    let args = [
        "predict",
        "--checkpoint",
        &checkpoint,
        "--pcap",
        "test.pcap",
    ];
    let predicted = s.run(&args).ok().stdout;
    let flag = predicted
        .lines()
        .next()
        .unwrap()
        .split(',')
        .position(|h| h == "is_anomaly")
        .unwrap();
    let flows = predicted.lines().count() - 1;
    let flagged = predicted
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(flag) == Some("true"))
        .count();
    assert!(
        flows > 250 && flagged > 0,
        "{flows} flows, {flagged} flagged"
    );
    let server = Server::start(&s, &["--checkpoint", &checkpoint]);
    let browser = Browser::start(&chromium, &chromedriver);
    detect(&browser, &server, s.path("test.pcap").to_str().unwrap());
    let rows = browser.wait_text("#summary-rows b", |t| !t.is_empty());
    assert_eq!(rows, flows.to_string());
    let shown = browser.wait_text("#summary-anomalies b", |t| !t.is_empty());
    assert_eq!(shown, flagged.to_string());
    assert_eq!(browser.elements("#flagged tbody tr").len(), flagged);
    // The flagged table shows each flow's identifiers, as the capture's CSV carries them.
    let head = browser.elements("#flagged thead th");
    let content =
        |h: &String| browser.call("GET", &format!("/element/{h}/property/textContent"), None);
    let names: Vec<String> = head
        .iter()
        .map(|h| content(h).as_str().unwrap().to_string())
        .collect();
    assert!(names.iter().any(|n| n.starts_with("Flow ID")), "{names:?}");
}

/// The History view lists the alerts a scored file left in the store (a verdict button there
/// stores the verdict), and the Live view shows an alert produced after it opened.
#[test]
fn dashboard_history_and_live_views_show_stored_alerts() {
    let Some((chromium, chromedriver)) = browser_binaries() else {
        return;
    };
    let s = Sandbox::new();
    labelled_capture(&s, "train", "400", "11");
    labelled_capture(&s, "test", "200", "12");
    let checkpoint = train_on_flows(&s, "random_forest");
    let server = Server::start(&s, &["--checkpoint", &checkpoint]);
    let browser = Browser::start(&chromium, &chromedriver);
    detect(&browser, &server, s.path("test.csv").to_str().unwrap());
    browser.wait_text("#summary-anomalies b", |t| !t.is_empty());
    let stored = server.get_json("/api/v1/alerts?limit=50")["alerts"]
        .as_array()
        .unwrap()
        .len();
    assert!(stored > 0, "the scored file left no alerts");

    browser.click(&browser.wait_for("#tab-history"));
    browser.wait_for("#history-table tbody tr");
    assert_eq!(browser.elements("#history-table tbody tr").len(), stored);
    assert!(!browser.elements("#history-chart rect").is_empty());
    let row = browser.elements("#history-table tbody tr")[0].clone();
    let id = browser.call("GET", &format!("/element/{row}/attribute/data-id"), None);
    let id = id.as_str().unwrap().to_string();
    browser.click(&browser.elements("#history-table tbody tr .verdict-fp")[0]);
    browser.wait_text("#history-table tbody tr td.verdict", |t| {
        t == "false_positive"
    });
    let judged = server.get_json(&format!("/api/v1/alerts/{id}"));
    assert_eq!(judged["verdict"], "false_positive");

    browser.click(&browser.wait_for("#tab-live"));
    browser.wait_text("#live-status", |t| t.starts_with("connected"));
    let body = std::fs::read(s.path("test.csv")).unwrap();
    let (status, text) = server.post("/api/v1/predict", "text/csv", body);
    assert_eq!(status, 200, "{text}");
    browser.wait_for("#live-table tbody tr");
    browser.wait_text("#live-status", |t| t.contains("since this view opened"));
}
