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

use crate::eval::drift::DriftReport;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Column {
    model: String,
    column: String,
}

type Ratio = Gauge<f64, AtomicU64>;

type HistogramMaker = fn() -> Histogram;

pub struct Metrics {
    registry: Registry,
    requests: Family<Request, Counter>,
    latency: Family<Route, Histogram, HistogramMaker>,
    rows: Family<Model, Counter>,
    load: Family<Model, Gauge<f64, AtomicU64>>,
    feature_psi: Family<Column, Ratio>,
    score_psi: Family<Model, Ratio>,
    alarm_rate: Family<Model, Ratio>,
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
        let (feature_psi, score_psi, alarm_rate) = Default::default();
        registry.register(
            "anomaly_feature_psi",
            "Population stability index of each input column over the drift window",
            Family::<Column, Ratio>::clone(&feature_psi),
        );
        registry.register(
            "anomaly_score_psi",
            "Population stability index of the score over the drift window",
            Family::<Model, Ratio>::clone(&score_psi),
        );
        registry.register(
            "anomaly_alarm_rate",
            "Share of the drift window's rows at or above the model's threshold",
            Family::<Model, Ratio>::clone(&alarm_rate),
        );
        Metrics {
            registry,
            requests,
            latency,
            rows,
            load,
            feature_psi,
            score_psi,
            alarm_rate,
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

    /// The drift gauges of `model`, from its window's report.
    pub fn drift(&self, model: &str, report: &DriftReport) {
        for c in &report.columns {
            let label = Column {
                model: model.to_string(),
                column: c.column.clone(),
            };
            self.feature_psi.get_or_create(&label).set(c.psi);
        }
        let m = Model {
            model: model.to_string(),
        };
        if let Some(s) = &report.score {
            self.score_psi.get_or_create(&m).set(s.psi);
        }
        self.alarm_rate.get_or_create(&m).set(report.alarm_rate);
    }

    /// Lets another part (the alert store) add its metrics.
    pub fn register(&mut self, add: impl FnOnce(&mut Registry)) {
        add(&mut self.registry);
    }

    pub fn render(&self) -> String {
        crate::stream::metrics_text(&self.registry)
    }
}
