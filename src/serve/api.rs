//! The routes: `/api/v1/{health,ready,models,predict,openapi.json}`, `/metrics`, `/docs` and
//! the dashboard at `/`, behind one middleware that checks the bearer token and counts every
//! request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State as Shared};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use csv::ByteRecord;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::models::{Model, Table};
use super::{State, alerts};
use crate::data::feedback::{Entry, Verdict, append};
use crate::data::read::{column_name, maybe_gz};
use crate::data::records::{encode_records, json_cell};
use crate::error::{EXIT_BAD_INPUT, exit_code, one_line};
use crate::flows::output::{Writer, identifiers, schema_for};
use crate::flows::{self, Limits};
use crate::log::utc_rfc3339;
use crate::stream::METRICS_CONTENT_TYPE;

const OPENAPI: &str = include_str!("openapi.json");
const DOCS: &str = include_str!("docs.html");
const DASHBOARD: &str = include_str!("dashboard.html");

/// Routes anyone may read: liveness, the static pages and the API's description.
const OPEN_ROUTES: [&str; 5] = [
    "/",
    "/docs",
    "/api/v1/health",
    "/api/v1/ready",
    "/api/v1/openapi.json",
];

pub fn router(state: Arc<State>, max_body: usize) -> Router {
    Router::new()
        .route("/", get(|| async { Html(DASHBOARD) }))
        .route("/docs", get(|| async { Html(DOCS) }))
        .route(
            "/api/v1/health",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route("/api/v1/ready", get(ready))
        .route("/api/v1/models", get(models))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/predict", post(predict))
        .route("/api/v1/flows", post(capture_csv))
        .route("/api/v1/feedback", post(feedback))
        .route("/api/v1/files", get(files))
        .route("/api/v1/files/{name}", get(file))
        .route("/api/v1/drift", get(drift))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/alerts/stats", get(alerts::stats))
        .route("/api/v1/alerts/stream", get(alerts::stream))
        .route("/api/v1/alerts/{id}", get(alerts::one))
        .route("/api/v1/alerts/{id}/verdict", post(alerts::verdict))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::not_found("no such route; see /docs".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// An error answer: a status and `{"error": message}`.
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: String) -> ApiError {
        ApiError { status, message }
    }

    pub fn not_found(message: String) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    fn bad(message: String) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
}

/// The user's input is at fault (422), or the server is (500).
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        let status = if exit_code(&e) == EXIT_BAD_INPUT {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        ApiError::new(status, one_line(&e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(json!({"error": self.message}))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// Checks the bearer token (except on [`OPEN_ROUTES`]) and counts the request by route and
/// status with its latency.
async fn guard(Shared(state): Shared<Arc<State>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let open = OPEN_ROUTES.contains(&route.as_str());
    let asked = format!("{} {}", req.method(), req.uri().path());
    let response = if open || authorized(state.token.as_deref(), req.headers()) {
        json_error(next.run(req).await, &asked).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "expected the header `Authorization: Bearer <token>` with the server's token".into(),
        )
        .into_response()
    };
    let status = response.status().as_u16();
    state.metrics.request(&route, status, started.elapsed());
    response
}

/// An error answer that is not yet JSON (the router's own: a wrong method, an extractor's
/// rejection) rewritten as `{"error": …}`, so every error has the same body.
async fn json_error(response: Response, asked: &str) -> Response {
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10)
        .await
        .unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    let mut message = format!("{asked}: {reason}");
    let detail = String::from_utf8_lossy(&text);
    if !detail.trim().is_empty() {
        message = format!("{message}: {}", detail.trim());
    }
    let mut r = ApiError::new(status, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            r.headers_mut().insert(name, value.clone());
        }
    }
    r
}

/// Whether the request carries the token, compared in constant time.
fn authorized(token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(token) = token else { return true };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    given.as_bytes().ct_eq(token.as_bytes()).into()
}

async fn ready(Shared(state): Shared<Arc<State>>) -> Response {
    let mut stopped: Vec<&str> = state
        .models
        .iter()
        .filter(|m| !m.is_ready())
        .map(|m| m.name.as_str())
        .collect();
    if state.alerts.as_ref().is_some_and(|p| !p.is_running()) {
        stopped.push("alert store");
    }
    if stopped.is_empty() {
        Json(json!({"status": "ready", "models": state.models.len()})).into_response()
    } else {
        let body = json!({"status": "not ready", "stopped": stopped});
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

async fn models(Shared(state): Shared<Arc<State>>) -> Json<Value> {
    let list: Vec<&Value> = state.models.iter().map(|m| &m.info).collect();
    Json(json!({"default": state.models[0].name, "models": list}))
}

async fn openapi() -> Response {
    let spec = OPENAPI.replace("{{version}}", env!("CARGO_PKG_VERSION"));
    ([(header::CONTENT_TYPE, "application/json")], spec).into_response()
}

async fn metrics(Shared(state): Shared<Arc<State>>) -> Response {
    for model in &state.models {
        if let Some(report) = model.drift_report() {
            state.metrics.drift(&model.name, &report);
        }
    }
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET /api/v1/drift?model=NAME`: the model's latest rows against its training profile, as
/// `anomaly drift --json` reports a file.
async fn drift(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<crate::eval::drift::DriftReport>, ApiError> {
    let model = state.model(query.get("model").map(String::as_str))?;
    if model.drift.is_none() {
        return Err(ApiError::bad(format!(
            "model '{}' keeps no drift window: its checkpoint holds no profile of its training \
             rows (train it again), or the server runs with --drift-window 0",
            model.name
        )));
    }
    match model.drift_report() {
        Some(report) => Ok(Json(report)),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("model '{}' has scored no rows yet", model.name),
        )),
    }
}

/// `POST /api/v1/predict`: rows in, one prediction per row out.
async fn predict(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let csv = TABLES.iter().any(|t| content_type.starts_with(t));
    let capture = content_type.starts_with(PCAP);
    let threshold = match query.get("threshold") {
        None => None,
        Some(t) => match t.parse::<f32>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                let msg = format!("query parameter threshold: expected a number, got {t:?}");
                return Err(ApiError::new(StatusCode::BAD_REQUEST, msg));
            }
        },
    };
    let explain = match query.get("explain") {
        None => 0,
        Some(k) => match k.parse::<usize>() {
            Ok(k) if k <= MAX_REASONS => k,
            _ => {
                let msg = format!(
                    "query parameter explain: expected a count of reasons from 0 to {MAX_REASONS}, got {k:?}"
                );
                return Err(ApiError::new(StatusCode::BAD_REQUEST, msg));
            }
        },
    };
    let model_query = query.get("model").cloned();
    // A capture's flows become a CSV body, and their identifiers go beside the predictions.
    let (body, csv, flows) = if capture {
        let (model, extracting) = (model_query.clone(), state.clone());
        let (flows_csv, ids) = tokio::task::spawn_blocking(move || {
            capture_flows(&extracting, &body, model.as_deref())
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
        (Bytes::from(flows_csv), true, Some(ids))
    } else {
        (body, csv, None)
    };
    let parsed = if body.len() <= INLINE_BODY {
        parse(&state, &body, csv, model_query, explain > 0)?
    } else {
        let parsing = state.clone();
        tokio::task::spawn_blocking(move || parse(&parsing, &body, csv, model_query, explain > 0))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??
    };
    let model = state.model(Some(&parsed.model))?;
    let threshold = threshold.unwrap_or(model.scorer.threshold);
    let rows = parsed.rows;
    let encoded = (parsed.x, parsed.raw, rows);
    let (predictions, alerts) = model
        .predict(encoded, threshold, explain, parsed.table)
        .await?;
    // The answer goes out only once its alarms are committed to the store.
    super::alerts::store(&state, alerts).await?;
    state.metrics.scored(&model.name, rows);
    // The predictions arrive as JSON text: spliced in, not parsed and written again. The
    // threshold is written as the f32 it is (0.2, not 0.20000000298023224).
    let flows = flows.map_or(String::new(), |ids| format!(",\"flows\":{ids}"));
    let body = format!(
        "{{\"model\":{},\"threshold\":{},\"predictions\":{predictions}{flows}}}",
        Value::from(model.name.as_str()),
        serde_json::to_string(&threshold).map_err(anyhow::Error::from)?,
    );
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The media type of a pcap or pcapng capture body.
const PCAP: &str = "application/vnd.tcpdump.pcap";

/// Media types of bodies read as a file is: CSV, a Zeek TSV log, JSON lines (Zeek's JSON
/// logs, `anomaly flows --format jsonl`); any of them may be gzipped.
const TABLES: [&str; 3] = [
    "text/csv",
    "text/tab-separated-values",
    "application/x-ndjson",
];

/// `POST /api/v1/flows`: a capture body's flows as CSV, in the schema of the model
/// `?model=` names (the dashboard shows a capture's flows as it shows a CSV file's rows).
async fn capture_csv(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<HashMap<String, String>>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let model = query.get("model").cloned();
    let (flows_csv, _) =
        tokio::task::spawn_blocking(move || capture_flows(&state, &body, model.as_deref()))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(([(header::CONTENT_TYPE, "text/csv")], flows_csv).into_response())
}

/// A capture body's flows as CSV in the schema whose columns the model was trained on, and
/// each flow's identifiers (Flow ID, both ends, the time) as a JSON array, in flow order.
fn capture_flows(
    state: &State,
    body: &[u8],
    model: Option<&str>,
) -> Result<(Vec<u8>, Value), ApiError> {
    let model = state.model(model)?;
    let wanted: Vec<&str> = model
        .scorer
        .pre
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let schema = schema_for(&wanted).map_err(|missing| {
        ApiError::bad(format!(
            "model '{}' was trained on columns that flows from a capture do not have: {}",
            model.name,
            missing.join(", ")
        ))
    })?;
    let limits = Limits {
        flow_timeout: 120_000_000,
        activity_timeout: 5_000_000,
        max_flows: 1_000_000,
    };
    let mut writer = Writer::new(Vec::new(), schema, false, None).map_err(ApiError::from)?;
    let names = identifiers(schema);
    let mut ids = Vec::new();
    flows::extract("the capture body", body, limits, false, &mut |flow| {
        let values = flows::output::values(flow);
        let id: serde_json::Map<String, Value> = names
            .iter()
            .zip([0, 1, 2, 3, 4, 6])
            .map(|(name, i)| (name.clone(), Value::from(values[i].as_str())))
            .collect();
        ids.push(Value::Object(id));
        writer.write(flow)
    })
    .map_err(|e| ApiError::bad(crate::error::one_line(&e)))?;
    Ok((writer.into_inner(), Value::Array(ids)))
}

/// The most reasons `?explain=` may ask for per row.
const MAX_REASONS: usize = 64;

/// Bodies up to this size are parsed on the async thread (microseconds); larger ones on the
/// blocking pool, so a big upload never stalls other requests.
const INLINE_BODY: usize = 64 << 10;

/// A predict body's rows encoded for its model.
struct Parsed {
    model: String,
    /// The features (with `explain` or a drift window, also before scaling).
    x: Vec<f32>,
    raw: Vec<f32>,
    rows: usize,
    /// When alerts are kept: the rows as they came.
    table: Option<Table>,
}

fn parse(
    state: &State,
    body: &Bytes,
    csv: bool,
    model: Option<String>,
    explain: bool,
) -> Result<Parsed, ApiError> {
    let request = if csv {
        from_csv(body, model)?
    } else {
        from_json(body)?
    };
    let model = state.model(request.model.as_deref())?;
    let names = request.names.clone().unwrap_or_else(|| input_names(model));
    request.check(model)?;
    if explain && !model.explainable {
        return Err(ApiError::bad(format!(
            "model '{}' cannot explain its scores: its checkpoint holds no profile of its \
             training rows (it was written before explanations); train it again",
            model.name
        )));
    }
    let pre = &model.scorer.pre;
    let keep_raw = explain || model.drift.is_some();
    let (x, raw) = encode_records(pre, &model.data, &names, &request.records, keep_raw)?;
    let rows = request.records.len();
    let table = state.alerts.as_ref().map(|_| Table {
        names,
        records: request.records,
        received: crate::alerts::now_micros(),
    });
    Ok(Parsed {
        model: model.name.clone(),
        x,
        raw,
        rows,
        table,
    })
}

/// A request's rows as CSV records, with their column names (none: the model's input columns
/// in order, for `instances`).
struct Rows {
    model: Option<String>,
    names: Option<Vec<String>>,
    records: Vec<ByteRecord>,
    /// `records`: every name must be one the model knows (a CSV body may carry any columns).
    strict: bool,
}

impl Rows {
    /// Refuses rows that cannot be meant for `model`: `instances` of the wrong length, and
    /// `records` naming a column that is neither an input, the label, a dropped column nor
    /// one of the columns a headerless training file was given.
    fn check(&self, model: &Model) -> Result<(), ApiError> {
        let inputs = input_names(model);
        let expected = || format!("the model's input columns are: {}", inputs.join(", "));
        match &self.names {
            None => match self.records.iter().position(|r| r.len() != inputs.len()) {
                Some(i) => Err(ApiError::bad(format!(
                    "row {}: expected {} values, found {} ({})",
                    i + 1,
                    inputs.len(),
                    self.records[i].len(),
                    expected()
                ))),
                None => Ok(()),
            },
            Some(names) if self.strict => {
                let data = &model.data;
                let raw = [&data.drop_columns, &data.drop_if_present, &data.columns];
                let known = |n: &String| {
                    inputs.contains(n)
                        || n == data.label_column.trim()
                        || raw.iter().any(|list| list.iter().any(|d| d.trim() == n))
                };
                match names.iter().find(|n| !known(n)) {
                    Some(n) => Err(ApiError::bad(format!(
                        "unknown column '{n}'; {}",
                        expected()
                    ))),
                    None => Ok(()),
                }
            }
            Some(_) => Ok(()),
        }
    }
}

/// A table body (see [`TABLES`]): a header row, then records (`?model=` picks the model).
/// It goes through the reader files go through, so a Zeek log or a gzipped body reads as CSV.
fn from_csv(body: &Bytes, model: Option<String>) -> Result<Rows, ApiError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(maybe_gz(std::io::Cursor::new(body.clone()))?);
    let mut records = reader.byte_records();
    let header = match records.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(ApiError::bad(format!("the body: {e}"))),
        None => {
            return Err(ApiError::bad(
                "the body is empty: expected a header row".into(),
            ));
        }
    };
    let names = header.iter().map(column_name).collect();
    let records = records
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::bad(format!("the body: {e}")))?;
    non_empty(Rows {
        model,
        names: Some(names),
        records,
        strict: false,
    })
}

/// A JSON predict body: `{"model": …, "instances": [[…], …]}` (positional rows) or
/// `{"model": …, "records": [{…}, …]}` (rows by column name).
#[derive(Deserialize)]
#[serde(expecting = "a JSON object with `instances` or `records`")]
struct PredictBody {
    model: Option<String>,
    instances: Option<Vec<Value>>,
    records: Option<Vec<Value>>,
    /// Any other key, refused by name.
    #[serde(flatten)]
    unknown: serde_json::Map<String, Value>,
}

fn from_json(body: &[u8]) -> Result<Rows, ApiError> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let request: PredictBody = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let (path, inner) = (e.path().to_string(), e.into_inner());
        if inner.is_data() {
            let at = if path == "." {
                String::new()
            } else {
                format!("{path}: ")
            };
            ApiError::bad(format!("{at}{inner}"))
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON ({inner}); send JSON or a text/csv body"),
            )
        }
    })?;
    if let Some(key) = request.unknown.keys().next() {
        return Err(ApiError::bad(format!(
            "unknown key '{key}': expected `model` and one of `instances` or `records`"
        )));
    }
    let model = request.model;
    let rows = match (request.instances, request.records) {
        (Some(rows), None) => Rows {
            model,
            names: None,
            strict: false,
            records: rows
                .iter()
                .enumerate()
                .map(|(i, r)| instance(i + 1, r))
                .collect::<Result<_, _>>()?,
        },
        (None, Some(rows)) => records(model, &rows)?,
        _ => {
            return Err(ApiError::bad(
                "expected exactly one of `instances` (a list of lists) or `records` (a list of objects)".into(),
            ));
        }
    };
    non_empty(rows)
}

fn non_empty(rows: Rows) -> Result<Rows, ApiError> {
    if rows.records.is_empty() {
        return Err(ApiError::bad(
            "no rows to score: expected at least one".into(),
        ));
    }
    Ok(rows)
}

/// One positional row, as cells; its length is checked against the model's columns later.
fn instance(row: usize, value: &Value) -> Result<ByteRecord, ApiError> {
    let Value::Array(values) = value else {
        return Err(ApiError::bad(format!(
            "row {row}: expected a list of values, got {value}"
        )));
    };
    let mut record = ByteRecord::new();
    for (i, v) in values.iter().enumerate() {
        record.push_field(cell(v, || format!("row {row}, value {}", i + 1))?.as_bytes());
    }
    Ok(record)
}

/// Rows by column name: the names of the first record, each record holding exactly those.
fn records(model: Option<String>, rows: &[Value]) -> Result<Rows, ApiError> {
    let mut names: Vec<String> = Vec::new();
    let mut records = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let Value::Object(fields) = row else {
            return Err(ApiError::bad(format!(
                "row {}: expected an object of column: value, got {row}",
                i + 1
            )));
        };
        if i == 0 {
            names = fields.keys().cloned().collect();
        }
        let mut record = ByteRecord::new();
        for name in &names {
            let v = fields
                .get(name)
                .ok_or_else(|| ApiError::bad(format!("row {}: missing column '{name}'", i + 1)))?;
            record.push_field(cell(v, || format!("row {}, column '{name}'", i + 1))?.as_bytes());
        }
        if let Some(extra) = fields.keys().find(|k| !names.contains(k)) {
            return Err(ApiError::bad(format!(
                "row {}: unknown column '{extra}' (not in row 1)",
                i + 1
            )));
        }
        records.push(record);
    }
    Ok(Rows {
        model,
        names: Some(names),
        records,
        strict: true,
    })
}

/// A JSON value as a CSV cell (see [`json_cell`]); a list or an object is refused.
fn cell(v: &Value, at: impl Fn() -> String) -> Result<String, ApiError> {
    json_cell(v).ok_or_else(|| {
        ApiError::bad(format!(
            "{}: expected a number, string, boolean or null, got {v}",
            at()
        ))
    })
}

/// The model's input columns, in the order `instances` gives their values.
fn input_names(model: &Model) -> Vec<String> {
    model
        .scorer
        .pre
        .columns
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

/// `POST /api/v1/feedback`: an analyst's verdict on a row, appended to the feedback file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Feedback {
    model: Option<String>,
    record: serde_json::Map<String, Value>,
    score: f32,
    verdict: Verdict,
}

async fn feedback(
    Shared(state): Shared<Arc<State>>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let fb: Feedback = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(format!(
            "feedback: {e}; expected {{\"model\", \"record\": {{column: value}}, \"score\", \"verdict\": true_positive | false_positive | false_negative | normal}}"
        ))
    })?;
    let model = state.model(fb.model.as_deref())?;
    let columns = input_names(model);
    let values = columns
        .iter()
        .map(|c| match fb.record.get(c) {
            Some(v) => cell(v, || format!("record, column '{c}'")),
            None => Err(ApiError::bad(format!("record: missing column '{c}'"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let entry = Entry {
        columns,
        values,
        score: fb.score,
        verdict: fb.verdict,
        model: model.name.clone(),
        time: utc_rfc3339(),
    };
    let shared = state.clone();
    let (path, rows) = tokio::task::spawn_blocking(move || {
        let path = shared.feedback.lock().unwrap_or_else(|e| e.into_inner());
        append(&path, &entry).map(|rows| (path.clone(), rows))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(json!({"file": path, "rows": rows})))
}

/// The `.csv` files directly in `--data-dir`, by name.
fn data_files(state: &State) -> Vec<String> {
    let Some(dir) = &state.data_dir else {
        return Vec::new();
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".csv"))
        .collect();
    names.sort();
    names
}

async fn files(Shared(state): Shared<Arc<State>>) -> Json<Value> {
    Json(json!({"files": data_files(&state)}))
}

async fn file(Shared(state): Shared<Arc<State>>, Path(name): Path<String>) -> Response {
    let dir = state.data_dir.as_deref();
    match dir.filter(|_| data_files(&state).contains(&name)) {
        Some(dir) => {
            let path = dir.join(&name);
            match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
                Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, "text/csv")], bytes).into_response(),
                Ok(Err(e)) => {
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{name}: {e}"))
                        .into_response()
                }
                Err(e) => {
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
                }
            }
        }
        None => ApiError::not_found(format!("no file '{name}' in the server's --data-dir"))
            .into_response(),
    }
}
