//! `predict --kafka-brokers … --metrics-port P`: what a consumer replica did, in the Prometheus
//! text format, on `http://HOST:P/metrics`: messages in and out, bad messages, each partition's
//! lag (from librdkafka's statistics), commit latency and batch sizes.

use std::sync::Arc;

use anyhow::{Context, Result};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::bad_input;
use crate::stream::METRICS_CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Partition {
    topic: String,
    partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Output {
    /// `scores`, `dead_letter` or `stdout`.
    to: String,
}

pub struct Metrics {
    registry: Registry,
    pub messages_in: Counter,
    outputs: Family<Output, Counter>,
    pub bad_messages: Counter,
    lag: Family<Partition, Gauge<i64, std::sync::atomic::AtomicI64>>,
    pub commit_seconds: Histogram,
    pub batch_rows: Histogram,
    pub in_flight: Gauge<i64, std::sync::atomic::AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut m = Metrics {
            messages_in: Counter::default(),
            outputs: Family::default(),
            bad_messages: Counter::default(),
            lag: Family::default(),
            // 0.25 ms to about 8 s.
            commit_seconds: Histogram::new(exponential_buckets(0.00025, 2.0, 16)),
            batch_rows: Histogram::new(exponential_buckets(1.0, 2.0, 17)),
            in_flight: Gauge::default(),
            registry: Registry::default(),
        };
        m.registry.register(
            "anomaly_kafka_messages_in",
            "Messages consumed from the input topic",
            m.messages_in.clone(),
        );
        m.registry.register(
            "anomaly_kafka_messages_out",
            "Outputs written, by where to (scores, dead_letter, stdout)",
            m.outputs.clone(),
        );
        m.registry.register(
            "anomaly_kafka_bad_messages",
            "Messages that could not be scored (an error output or a dead letter each)",
            m.bad_messages.clone(),
        );
        m.registry.register(
            "anomaly_kafka_consumer_lag",
            "Messages in each owned partition after this replica's position",
            m.lag.clone(),
        );
        m.registry.register(
            "anomaly_kafka_commit_seconds",
            "Time from an offset commit's request to the broker's answer",
            m.commit_seconds.clone(),
        );
        m.registry.register(
            "anomaly_kafka_batch_rows",
            "Messages scored together",
            m.batch_rows.clone(),
        );
        m.registry.register(
            "anomaly_kafka_outputs_in_flight",
            "Outputs sent and not yet acknowledged by the broker",
            m.in_flight.clone(),
        );
        m
    }
}

impl Metrics {
    pub fn output(&self, to: &str) {
        self.outputs.get_or_create(&Output { to: to.into() }).inc();
    }

    /// librdkafka's statistics: each partition's lag, as the consumer sees it.
    pub fn statistics(&self, stats: &rdkafka::Statistics) {
        for (name, topic) in &stats.topics {
            for (&partition, p) in &topic.partitions {
                if partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                let label = Partition {
                    topic: name.clone(),
                    partition,
                };
                self.lag.get_or_create(&label).set(p.consumer_lag);
            }
        }
    }

    /// Lets another part (the alert store) add its metrics.
    pub fn register(&mut self, add: impl FnOnce(&mut Registry)) {
        add(&mut self.registry);
    }

    pub fn render(&self) -> String {
        super::super::metrics_text(&self.registry)
    }
}

/// Serves `/metrics` on `port` (all interfaces) from a thread of its own, for as long as the
/// process runs; an address in use is a clear error before anything is consumed.
pub fn serve(metrics: Arc<Metrics>, port: u16) -> Result<()> {
    let listener = std::net::TcpListener::bind(("0.0.0.0", port))
        .map_err(|e| bad_input(format!("--metrics-port {port}: cannot listen: {e}")))?;
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the metrics server")?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let route = axum::routing::get(move || {
                let text = metrics.render();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
                        text,
                    )
                }
            });
            let app = axum::Router::new().route("/metrics", route);
            if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                let _ = axum::serve(listener, app).await;
            }
        })
    });
    Ok(())
}
