//! A load client for `anomaly serve` (and the FastAPI reference, which answers the same
//! requests): keep-alive HTTP/1.1 connections on threads of their own, each sending the same
//! body again and again for a fixed time, as wrk does. `benches/serve.sh` runs it.
//!
//!   cargo bench --bench serve_load -- --url http://127.0.0.1:8080/api/v1/predict \
//!       --body FILE --content-type application/json [--connections 64] [--seconds 30]
//!       [--rows 1] [--pid PID]
//!   cargo bench --bench serve_load -- --url … --abuse 1000
//!
//! Prints requests/s, rows/s, latency percentiles, errors and (with --pid) the server's
//! resident set before and after. `--abuse N` sends N malformed requests instead and counts
//! their statuses; every one must be a 4xx and the server must still answer afterwards.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::{arg, status_kib};

fn text_arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

/// `host:port` and the path of an `http://` URL.
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    }
}

/// One keep-alive connection.
struct Connection {
    reader: BufReader<TcpStream>,
    host: String,
}

impl Connection {
    fn open(host: &str) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(host)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Connection {
            reader: BufReader::new(stream),
            host: host.to_string(),
        })
    }

    /// Sends one request and reads the whole response; its status.
    fn request(&mut self, path: &str, content_type: &str, body: &[u8]) -> std::io::Result<u16> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut sink = vec![0u8; length];
        self.reader.read_exact(&mut sink)?;
        Ok(status)
    }
}

fn rss_kib(pid: usize) -> u64 {
    status_kib(&pid.to_string(), "VmRSS:")
}

/// Malformed requests of every kind the server must refuse with a 4xx.
fn abuse(host: &str, path: &str, n: usize) {
    let big_row = format!("{{\"instances\": [[{}]]}}", "1,".repeat(5_000_000));
    let kinds: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", b"{\"instances\": [[1, 2".to_vec()),
        ("application/json", b"{\"instances\": \"no\"}".to_vec()),
        (
            "application/json",
            b"{\"instances\": [[\"x\", true, null]]}".to_vec(),
        ),
        (
            "application/json",
            b"{\"instances\": [[1e999999]]}".to_vec(),
        ),
        ("application/json", b"{\"records\": [{\"a\": 1}]}".to_vec()),
        ("application/json", b"[]".to_vec()),
        ("application/json", big_row.into_bytes()),
        (
            "application/octet-stream",
            (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        ("text/csv", b"a,b\n1,2,3\n\xff\xfe".to_vec()),
        ("text/plain", b"hello".to_vec()),
    ];
    let mut statuses = std::collections::BTreeMap::new();
    let mut failures = 0;
    for i in 0..n {
        let (ct, body) = &kinds[i % kinds.len()];
        let got = Connection::open(host).and_then(|mut c| c.request(path, ct, body));
        match got {
            Ok(s) => *statuses.entry(s).or_insert(0) += 1,
            Err(_) => failures += 1,
        }
    }
    let alive = Connection::open(host)
        .and_then(|mut c| c.request(path, "application/json", b"{}"))
        .is_ok();
    let not_4xx: usize = statuses
        .iter()
        .filter(|(s, _)| !(400..500).contains(*s))
        .map(|(_, n)| n)
        .sum();
    println!(
        "abuse: {n} malformed requests, statuses {statuses:?}, not 4xx {not_4xx}, connection failures {failures}, answering afterwards: {alive}"
    );
}

fn main() {
    let url = text_arg("--url").expect("--url");
    let (host, path) = split_url(&url);
    if let Some(n) = text_arg("--abuse") {
        abuse(&host, &path, n.parse().expect("a number"));
        return;
    }
    let body = std::fs::read(text_arg("--body").expect("--body FILE")).expect("the body file");
    let content_type = text_arg("--content-type").unwrap_or("application/json".into());
    let (connections, seconds, rows) = (
        arg("--connections", 64),
        arg("--seconds", 30),
        arg("--rows", 1),
    );
    let pid = arg("--pid", 0);
    let rss_before = if pid > 0 { rss_kib(pid) } else { 0 };
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let results: Vec<(Vec<f64>, usize)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..connections)
            .map(|_| {
                let (host, path, body, ct, stop) = (&host, &path, &body, &content_type, &stop);
                scope.spawn(move || {
                    let mut latencies = Vec::new();
                    let mut errors = 0;
                    let mut conn = Connection::open(host).expect("connecting");
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        match conn.request(path, ct, body) {
                            Ok(200) => latencies.push(t.elapsed().as_secs_f64() * 1e3),
                            Ok(_) => errors += 1,
                            Err(_) => {
                                errors += 1;
                                conn = Connection::open(host).expect("reconnecting");
                            }
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(seconds as u64));
        stop.store(true, Ordering::Relaxed);
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let errors: usize = results.iter().map(|r| r.1).sum();
    let mut latencies: Vec<f64> = results.into_iter().flat_map(|r| r.0).collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let requests = latencies.len() as f64 / elapsed;
    let rss = if pid > 0 {
        format!(
            ", server RSS {} -> {} MiB",
            rss_before / 1024,
            rss_kib(pid) / 1024
        )
    } else {
        String::new()
    };
    println!(
        "{connections} connections, {seconds} s, {rows} rows per request: {requests:.0} requests/s, {:.0} rows/s, p50 {:.2} ms, p99 {:.2} ms, errors {errors}{rss}",
        requests * rows as f64,
        pct(0.5),
        pct(0.99),
    );
}
