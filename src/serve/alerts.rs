//! `/api/v1/alerts`: the alert store read back (filtered, keyset-paged, newest first), one
//! alert, an analyst's verdict (stored, and appended to the feedback file), counts per time
//! bucket and severity, and every new alert as a Server-Sent Event.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State as Shared};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::State;
use super::api::ApiError;
use crate::alerts::store::{Filter, Store, parse_cursor};
use crate::alerts::{Alert, Pipeline, Severity, parse_micros};
use crate::data::feedback::{Entry, Verdict, append};
use crate::log::utc_rfc3339;

/// Alerts per page unless `limit` says otherwise, and the most it may say.
const PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// Commits a request's alerts before its answer is sent (an answer whose alarms could not be
/// stored is a 503, so no client sees an alarm the store lacks).
pub async fn store(state: &State, alerts: Vec<Alert>) -> Result<(), ApiError> {
    let Some(pipeline) = state.alerts.as_ref().filter(|_| !alerts.is_empty()) else {
        return Ok(());
    };
    let unavailable = |e: String| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the alarms could not be stored, so no answer is given: {e}"),
        )
    };
    match pipeline.store(alerts).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(unavailable(crate::error::one_line(&e))),
        Err(_) => Err(unavailable("the alert store's writer has stopped".into())),
    }
}

/// The store, or why this server has none.
fn pipeline(state: &State) -> Result<&Pipeline, ApiError> {
    state.alerts.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "this server keeps no alerts (it was started with --alerts-db none)".into(),
        )
    })
}

/// Runs `f` on the store's read connection, off the async threads.
async fn read<T: Send + 'static>(
    state: Arc<State>,
    f: impl FnOnce(&mut Store) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    pipeline(&state)?;
    tokio::task::spawn_blocking(move || {
        let p = state.alerts.as_ref().expect("checked above");
        p.read(f)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(ApiError::from)
}

fn bad_param(name: &str, expected: &str, got: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("query parameter {name}: expected {expected}, got {got:?}"),
    )
}

/// The filter the query's parameters describe; any parameter not in `also` nor the filter's
/// own is refused, named.
fn filter(query: &HashMap<String, String>, also: &[&str]) -> Result<Filter, ApiError> {
    const OWN: [&str; 7] = [
        "since", "until", "severity", "model", "src", "dst", "verdict",
    ];
    if let Some(k) = query
        .keys()
        .find(|k| !OWN.contains(&k.as_str()) && !also.contains(&k.as_str()))
    {
        let known: Vec<&str> = OWN.iter().chain(also).copied().collect();
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown query parameter {k:?}; this route takes: {}",
                known.join(", ")
            ),
        ));
    }
    let time = |name: &str| -> Result<Option<i64>, ApiError> {
        query
            .get(name)
            .map(|t| {
                parse_micros(t).ok_or_else(|| {
                    bad_param(
                        name,
                        "a time such as 2026-12-06T09:30:00Z or seconds since 1970",
                        t,
                    )
                })
            })
            .transpose()
    };
    let severity = match query.get("severity") {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|s| {
                Severity::parse(s.trim()).ok_or_else(|| {
                    bad_param(
                        "severity",
                        "low, medium or high (or a comma-separated list)",
                        list,
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let verdict = match query.get("verdict").map(String::as_str) {
        None => None,
        Some("none") => Some(None),
        Some(v) => Some(Some(
            Verdict::ALL
                .into_iter()
                .find(|x| x.as_str() == v)
                .ok_or_else(|| {
                    bad_param(
                        "verdict",
                        "true_positive, false_positive, false_negative, normal or none",
                        v,
                    )
                })?,
        )),
    };
    Ok(Filter {
        since: time("since")?,
        until: time("until")?,
        severity,
        model: query.get("model").cloned(),
        src: query.get("src").cloned(),
        dst: query.get("dst").cloned(),
        verdict,
    })
}

/// `GET /api/v1/alerts`: `{"alerts": [...], "next": cursor or null}`.
pub async fn list(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let filter = filter(&query, &["limit", "cursor"])?;
    let limit = match query.get("limit") {
        None => PAGE,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| bad_param("limit", &format!("a count from 1 to {MAX_PAGE}"), l))?,
    };
    let cursor = match query.get("cursor") {
        None => None,
        Some(c) => Some(
            parse_cursor(c)
                .ok_or_else(|| bad_param("cursor", "the `next` of a previous page", c))?,
        ),
    };
    let page = read(state, move |s| s.list(&filter, limit, cursor)).await?;
    let alerts: Vec<Value> = page.alerts.iter().map(Alert::to_json).collect();
    Ok(axum::Json(json!({"alerts": alerts, "next": page.next})).into_response())
}

fn alert_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("alert id: expected a number, got {text:?}"),
        )
    })
}

fn no_alert(id: i64) -> ApiError {
    ApiError::not_found(format!("no alert {id}"))
}

/// `GET /api/v1/alerts/{id}`.
pub async fn one(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = alert_id(&id)?;
    let alert = read(state, move |s| s.get(id))
        .await?
        .ok_or_else(|| no_alert(id))?;
    Ok(axum::Json(alert.to_json()).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerdictBody {
    verdict: Verdict,
}

/// `POST /api/v1/alerts/{id}/verdict` with `{"verdict": …}`: stored on the alert and appended
/// to the feedback file (the row's input columns, score and verdict), so
/// `train --resume-from … --feedback` learns from it.
pub async fn verdict(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = alert_id(&id)?;
    let body = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let VerdictBody { verdict } = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("verdict: {e}; expected {{\"verdict\": true_positive | false_positive | false_negative | normal}}"),
        )
    })?;
    let alert = read(state.clone(), move |s| s.set_verdict(id, verdict))
        .await?
        .ok_or_else(|| no_alert(id))?;
    let entry = feedback_entry(&state, &alert, verdict);
    let shared = state.clone();
    let (file, rows) = tokio::task::spawn_blocking(move || {
        let path = shared.feedback.lock().unwrap_or_else(|e| e.into_inner());
        append(&path, &entry).map(|rows| (path.clone(), rows))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let body = json!({"alert": alert.to_json(), "feedback": {"file": file, "rows": rows}});
    Ok(axum::Json(body).into_response())
}

/// The feedback row of a judged alert: the served model's input columns (every stored
/// column when the model is not served here), read from the alert's row.
fn feedback_entry(state: &State, alert: &Alert, verdict: Verdict) -> Entry {
    let fields: serde_json::Map<String, Value> =
        serde_json::from_str(&alert.fields).unwrap_or_default();
    let columns: Vec<String> = match state.models.iter().find(|m| m.name == alert.model) {
        Some(m) => m
            .scorer
            .pre
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect(),
        None => fields.keys().cloned().collect(),
    };
    let values = columns
        .iter()
        .map(|c| {
            fields
                .get(c)
                .and_then(crate::data::records::json_cell)
                .unwrap_or_default()
        })
        .collect();
    Entry {
        columns,
        values,
        score: alert.score as f32,
        verdict,
        model: alert.model.clone(),
        time: utc_rfc3339(),
    }
}

/// `30s`, `5m`, `1h`, `1d` or plain seconds, in microseconds.
fn bucket(text: &str) -> Option<i64> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    let n: i64 = number.parse().ok().filter(|&n| n > 0)?;
    Some(n * seconds * 1_000_000)
}

/// `GET /api/v1/alerts/stats?bucket=1h`: per bucket (by the alerts' first time), the alerts of
/// each severity and the alarms they hold.
pub async fn stats(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let filter = filter(&query, &["bucket"])?;
    let text = query.get("bucket").map_or("1h", String::as_str);
    let width = bucket(text)
        .ok_or_else(|| bad_param("bucket", "a width such as 30s, 5m, 1h or 1d", text))?;
    let rows = read(state, move |s| s.stats(&filter, width)).await?;
    let mut buckets: Vec<Value> = Vec::new();
    for r in rows {
        let start = crate::alerts::rfc3339_micros(r.start);
        if buckets.last().is_none_or(|b| b["start"] != start.as_str()) {
            buckets.push(json!({"start": start, "low": 0, "medium": 0, "high": 0, "alarms": 0}));
        }
        let b = buckets.last_mut().expect("pushed above");
        b[r.severity.as_str()] = json!(r.alerts);
        b["alarms"] = json!(b["alarms"].as_i64().unwrap_or(0) + r.alarms);
    }
    let body = json!({"bucket_seconds": width / 1_000_000, "buckets": buckets});
    Ok(axum::Json(body).into_response())
}

/// `GET /api/v1/alerts/stream`: each alert as it is stored (event `alert`, data its JSON); a
/// listener too slow to keep up gets a `lagged` event with the number it missed.
pub async fn stream(Shared(state): Shared<Arc<State>>) -> Result<Response, ApiError> {
    pipeline(&state)?;
    let rx = state.events.subscribe();
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(data) => Event::default().event("alert").data(data.as_str()),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                Event::default().event("lagged").data(n.to_string())
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok::<Event, Infallible>(event), rx))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
