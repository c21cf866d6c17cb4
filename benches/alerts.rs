//! The alert store's write rate: alerts stored per second in batches, as the writer thread
//! commits them (one transaction per batch: a lookup of the open alerts for its keys, then
//! inserts and updates; one in ten repeats an earlier alert's key). SQLite in a temporary folder, and
//! PostgreSQL when `ANOMALY_BENCH_POSTGRES` (or `ANOMALY_TEST_POSTGRES`) names a server (in a
//! database `anomaly_bench`, made anew each run).
//! `benches/alerts.sh` runs it beside the serve throughput with and without the store.
//!
//!   cargo bench --bench alerts -- [--alerts 100000] [--batch 1000]

use std::time::Instant;

use anomaly::alerts::store::{Store, create_database};
use anomaly::alerts::{Alert, Severity};
use serde_json::json;

mod common;

use common::arg;

/// Alert `i`: its own source, except every tenth, which repeats alert i - 1's key.
fn alert(i: usize) -> Alert {
    let key = if i % 10 == 9 { i - 1 } else { i };
    let time = 1_780_000_000_000_000 + i as i64 * 1000;
    Alert {
        id: 0,
        time,
        last_seen: time,
        count: 1,
        received: time,
        model: "bench".into(),
        checkpoint: "0".repeat(64),
        score: 0.9,
        threshold: 0.5,
        severity: Severity::Medium,
        confidence: 0.6,
        class: None,
        flow_id: Some(format!("flow-{i}")),
        src: Some(format!(
            "10.{}.{}.{}",
            key >> 16 & 255,
            key >> 8 & 255,
            key & 255
        )),
        src_port: Some(40_000),
        dst: Some("192.168.1.5".into()),
        dst_port: Some(443),
        protocol: Some("6".into()),
        reasons: None,
        fields: json!({"Flow Duration": "1200", "Tot Fwd Pkts": "12", "Dst Port": "443"})
            .to_string(),
        verdict: None,
        verdict_time: None,
    }
}

fn rate(name: &str, url: &str, n: usize, batch: usize) {
    let mut store = Store::open(url).expect("opening the store");
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let alerts: Vec<Alert> = (i..(i + batch).min(n)).map(alert).collect();
        store.write(alerts, 60_000_000).expect("writing");
        i += batch;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{name}: {n} alerts in batches of {batch}: {secs:.2}s, {:.0} alerts/s",
        n as f64 / secs
    );
}

fn main() {
    let (n, batch) = (arg("--alerts", 100_000), arg("--batch", 1000));
    let dir = std::env::temp_dir().join(format!("anomaly-bench-alerts-{}", std::process::id()));
    let path = dir.join("alerts.sqlite");
    rate("SQLite", path.to_str().unwrap(), n, batch);
    let _ = std::fs::remove_dir_all(&dir);
    let server =
        std::env::var("ANOMALY_BENCH_POSTGRES").or_else(|_| std::env::var("ANOMALY_TEST_POSTGRES"));
    match server {
        Ok(server) => {
            // `anomaly_bench`, made anew each run (one database left behind, not one a run).
            let url = create_database(&server, "bench").expect("creating a database");
            rate("PostgreSQL", &url, n, batch);
        }
        Err(_) => println!(
            "PostgreSQL: skipped (set ANOMALY_BENCH_POSTGRES=postgres://USER@HOST:PORT/DB)"
        ),
    }
}
