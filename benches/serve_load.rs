//! A load client for `anomaly serve` (and the FastAPI reference, which answers the same
//! requests): keep-alive HTTP/1.1 connections driven by one event-loop thread (tokio), each
//! sending the same body again and again for a fixed time, as wrk does. `benches/serve.sh`
//! runs it.
//!
//!   cargo bench --bench serve_load -- --url http://127.0.0.1:8080/api/v1/predict \
//!       --body FILE --content-type application/json [--connections 64] [--seconds 30]
//!       [--rows 1] [--pid PID]     (or --bodies A,B,…: each connection sends them in turn)
//!   cargo bench --bench serve_load -- --url … --abuse 1000
//!
//! Prints requests/s, rows/s, latency percentiles, errors and (with --pid) the server's
//! resident set before and after. `--abuse N` sends N malformed requests instead and counts
//! their statuses; every one must be a 4xx and the server must still answer afterwards.

use std::sync::Arc;
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

/// A POST request's bytes.
fn post(host: &str, path: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    [head.as_bytes(), body].concat()
}

/// One request on a new connection; the response's status.
async fn once(host: &str, request: &[u8]) -> std::io::Result<u16> {
    let conn = tokio::net::TcpStream::connect(host).await?;
    write_all(&conn, request).await?;
    read_response(&conn, &mut Vec::new()).await
}

/// Sends `requests` in turn (from `first`) on one keep-alive connection until `stop`: each
/// response's latency (ms) when it was a 200, and the count of the others.
async fn drive(
    host: String,
    requests: Arc<Vec<Vec<u8>>>,
    first: usize,
    stop: Arc<AtomicBool>,
) -> (Vec<f64>, usize) {
    let (mut latencies, mut errors) = (Vec::new(), 0);
    let mut conn = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connecting");
    conn.set_nodelay(true).expect("TCP_NODELAY");
    let mut buf = Vec::with_capacity(1 << 16);
    let mut next = first;
    while !stop.load(Ordering::Relaxed) {
        let request = &requests[next % requests.len()];
        next += 1;
        let t = Instant::now();
        let answer = match write_all(&conn, request).await {
            Ok(()) => read_response(&conn, &mut buf).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(200) => latencies.push(t.elapsed().as_secs_f64() * 1e3),
            Ok(_) => errors += 1,
            Err(_) => {
                errors += 1;
                conn = tokio::net::TcpStream::connect(&host)
                    .await
                    .expect("reconnecting");
            }
        }
    }
    (latencies, errors)
}

async fn write_all(s: &tokio::net::TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        s.writable().await?;
        match s.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads one whole response (by its Content-Length) and returns its status.
async fn read_response(s: &tokio::net::TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 1 << 16];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok());
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return status.ok_or_else(|| std::io::Error::other("no status line"));
            }
        }
        s.readable().await?;
        match s.try_read(&mut chunk) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

fn rss_kib(pid: usize) -> u64 {
    status_kib(&pid.to_string(), "VmRSS:")
}

/// Malformed requests of every kind the server must refuse with a 4xx.
async fn abuse(host: &str, path: &str, n: usize) {
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
        match once(host, &post(host, path, ct, body)).await {
            Ok(s) => *statuses.entry(s).or_insert(0) += 1,
            Err(_) => failures += 1,
        }
    }
    let alive = once(host, &post(host, path, "application/json", b"{}"))
        .await
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
    // One event-loop thread drives every connection, as wrk does, so the client takes as
    // little of the cores it shares with the server as it can.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Some(n) = text_arg("--abuse") {
        runtime.block_on(abuse(&host, &path, n.parse().expect("a number")));
        return;
    }
    // `--body FILE`, or `--bodies A,B,…`, which each connection sends in turn.
    let files = text_arg("--bodies")
        .or_else(|| text_arg("--body"))
        .expect("--body FILE");
    let content_type = text_arg("--content-type").unwrap_or("application/json".into());
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(
        files
            .split(',')
            .map(|f| {
                post(
                    &host,
                    &path,
                    &content_type,
                    &std::fs::read(f).expect("a body file"),
                )
            })
            .collect(),
    );
    let (connections, seconds, rows) = (
        arg("--connections", 64),
        arg("--seconds", 30),
        arg("--rows", 1),
    );
    let pid = arg("--pid", 0);
    let rss_before = if pid > 0 { rss_kib(pid) } else { 0 };
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let results: Vec<(Vec<f64>, usize)> = runtime.block_on(async {
        let workers: Vec<_> = (0..connections)
            .map(|i| tokio::spawn(drive(host.clone(), requests.clone(), i, stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_secs(seconds as u64)).await;
        stop.store(true, Ordering::Relaxed);
        let mut results = Vec::new();
        for w in workers {
            results.push(w.await.expect("a connection task"));
        }
        results
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
