//! A small Hugging Face Hub stand-in on 127.0.0.1: the endpoints `anomaly upload` uses, a record
//! of every request, and failures injected on demand. It serves until the test drops it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

#[derive(Default)]
pub struct State {
    pub requests: Vec<Request>,
    /// Path suffix → statuses to answer with, one per request, before answering normally.
    pub failures: HashMap<String, Vec<u16>>,
    /// The files of the last commit: path → bytes.
    pub files: HashMap<String, Vec<u8>>,
}

pub struct HubServer {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

impl HubServer {
    pub fn start() -> HubServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let base = url.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                handle(stream, &shared, &base);
            }
        });
        HubServer { url, state }
    }

    /// Answers the next requests to a path ending in `suffix` with these statuses.
    pub fn fail(&self, suffix: &str, statuses: &[u16]) {
        self.state
            .lock()
            .unwrap()
            .failures
            .insert(suffix.into(), statuses.to_vec());
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn handle(stream: TcpStream, state: &Mutex<State>, base: &str) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).unwrap();
    let req = Request {
        method,
        path: path.clone(),
        headers,
        body,
    };

    let (status, reply) = {
        let mut s = state.lock().unwrap();
        s.requests.push(req.clone());
        let injected = s
            .failures
            .iter_mut()
            .find(|(suffix, left)| {
                path.split('?').next().unwrap().ends_with(suffix.as_str()) && !left.is_empty()
            })
            .map(|(_, left)| left.remove(0));
        match injected {
            Some(code) => (code, format!("{{\"error\":\"injected {code}\"}}")),
            None => answer(&req, &mut s, base),
        }
    };
    let mut out = stream;
    let _ = write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

fn answer(req: &Request, s: &mut State, base: &str) -> (u16, String) {
    let path = req.path.split('?').next().unwrap();
    if path == "/api/repos/create" {
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        let id = format!(
            "{}/{}",
            body["organization"].as_str().unwrap_or(""),
            body["name"].as_str().unwrap()
        );
        return (
            200,
            serde_json::json!({ "url": format!("{base}/{id}") }).to_string(),
        );
    }
    if path.contains("/preupload/") {
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        let files: Vec<serde_json::Value> = body["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| serde_json::json!({ "path": f["path"], "uploadMode": "regular" }))
            .collect();
        return (200, serde_json::json!({ "files": files }).to_string());
    }
    if path.contains("/commit/") {
        use base64::Engine;
        s.files.clear();
        for line in req.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            if v["key"] == "file" {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v["value"]["content"].as_str().unwrap())
                    .unwrap();
                s.files
                    .insert(v["value"]["path"].as_str().unwrap().to_string(), bytes);
            }
        }
        return (
            200,
            serde_json::json!({ "commitUrl": format!("{base}/commit/1"), "commitOid": "0123abcd" })
                .to_string(),
        );
    }
    (404, "{\"error\":\"not found\"}".into())
}
