//! What every request leaves behind: one JSON log line (route, status, latency, selected
//! tags: never the text), its metrics, and a `Server-Timing` header with the time split into
//! tokenize / inference / store.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::telemetry;

/// The selected tags of a response, for the request log line.
#[derive(Clone)]
pub struct SelectedTags(pub Vec<String>);

pub async fn observe(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let (mut response, timings) = telemetry::measured(next.run(req)).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    telemetry::request(&route, status, elapsed, &timings);
    if let Ok(value) = HeaderValue::from_str(&telemetry::server_timing(&timings, elapsed)) {
        response.headers_mut().insert("server-timing", value);
    }
    let tags = response
        .extensions()
        .get::<SelectedTags>()
        .map(|t| t.0.join(","));
    tracing::info!(
        method = %method,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1e3,
        tokenize_ms = timings.tokenize.as_secs_f64() * 1e3,
        inference_ms = timings.inference.as_secs_f64() * 1e3,
        store_ms = timings.store.as_secs_f64() * 1e3,
        selected = tags.as_deref().unwrap_or(""),
        "request"
    );
    response
}
