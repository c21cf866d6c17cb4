//! `/metrics`: what the server did, in the Prometheus exposition format (OpenMetrics text),
//! kept by the Prometheus project's client library.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Model {
    model: String,
}

type HistogramMaker = fn() -> Histogram;

pub struct Metrics {
    registry: Registry,
    requests: Family<Request, Counter>,
    latency: Family<Route, Histogram, HistogramMaker>,
    rows: Family<Model, Counter>,
    load: Family<Model, Gauge<f64, AtomicU64>>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<Request, Counter>::default();
        // 0.25 ms to about 8 s.
        let latency = Family::<Route, Histogram, HistogramMaker>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.00025, 2.0, 16))
        });
        let rows = Family::<Model, Counter>::default();
        let load = Family::<Model, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "anomaly_http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "anomaly_http_request_duration_seconds",
            "Time from request to response, by route",
            latency.clone(),
        );
        registry.register(
            "anomaly_rows_scored",
            "Rows scored by /api/v1/predict, by model",
            rows.clone(),
        );
        registry.register(
            "anomaly_model_load_seconds",
            "Time to load each model's checkpoint",
            load.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            rows,
            load,
        }
    }

    pub fn request(&self, route: &str, status: u16, took: Duration) {
        let r = Request {
            route: route.to_string(),
            status: status.to_string(),
        };
        self.requests.get_or_create(&r).inc();
        let route = Route {
            route: route.to_string(),
        };
        self.latency
            .get_or_create(&route)
            .observe(took.as_secs_f64());
    }

    pub fn scored(&self, model: &str, rows: usize) {
        let m = Model {
            model: model.to_string(),
        };
        self.rows.get_or_create(&m).inc_by(rows as u64);
    }

    pub fn loaded(&self, model: &str, seconds: f64) {
        let m = Model {
            model: model.to_string(),
        };
        self.load.get_or_create(&m).set(seconds);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
