//! The router harness shared by the HTTP API tests: the real embedded model and the in-memory
//! store behind `api::router`, driven through `tower::ServiceExt::oneshot` (no socket).
//! Use from a test file with `#[path = "support/router.rs"] mod router;`.

#![allow(dead_code)] // each test file uses the part it needs

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tagbeez::api;
use tagbeez::classifier::{embedded, Classifier};
use tagbeez::config::Config;
use tagbeez::service::Tagger;
use tagbeez::store::{ConversationStore, MemoryStore};
use tower::ServiceExt;

pub static CLASSIFIER: LazyLock<Arc<Classifier>> = LazyLock::new(|| {
    Arc::new(Classifier::load(embedded::model_files()).expect("the embedded model loads"))
});

pub const HOT: &str = "I want to buy this right now, send me the checkout link";
pub const WISHLIST: &str = "These shoes look nice, I'll save them for later";
pub const FIRST_TIME: &str = "Hi, I'm new to your website. What products do you sell?";

pub fn config(vars: &[(&str, &str)]) -> Config {
    Config::from_pairs(vars).expect("a valid test configuration")
}

pub fn app_over(store: Arc<dyn ConversationStore>, vars: &[(&str, &str)]) -> Router {
    api::router(Tagger::new(Arc::clone(&CLASSIFIER), store, config(vars)))
}

pub fn app_with(vars: &[(&str, &str)]) -> Router {
    app_over(Arc::new(MemoryStore::new()), vars)
}

/// The defaults: `Config::from_vars(HashMap::new())`.
pub fn app() -> Router {
    app_with(&[])
}

/// A direct invocation of `tagger` (a payload with an `operation`), through
/// `lambda::dispatch` with the router `lambda::run` builds over it: its answer, or its
/// function error as `{"errorType", "errorMessage"}`.
pub async fn invoke(tagger: &Tagger, payload: Value) -> Value {
    let event = lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default());
    tagbeez::lambda::dispatch(&api::router(tagger.clone()), tagger, event)
        .await
        .unwrap_or_else(|d| json!({"errorType": d.error_type, "errorMessage": d.error_message}))
}

/// A response whose body is, always, JSON sent as `application/json`.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
}

pub fn request(
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(content_type) = content_type {
        builder = builder.header(CONTENT_TYPE, content_type);
    }
    builder.body(body.into()).expect("a valid request")
}

pub async fn call(app: &Router, req: Request<Body>) -> Reply {
    let what = format!("{} {}", req.method(), req.uri());
    let response = app
        .clone()
        .oneshot(req)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(
        headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{what} -> {status} without a JSON content type: {text}"
    );
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{what} -> {status}, body is not JSON ({e}): {text}"));
    Reply {
        status,
        headers,
        json,
    }
}

pub async fn post(app: &Router, uri: &str, body: &Value) -> Reply {
    post_raw(app, uri, Some("application/json"), body.to_string()).await
}

pub async fn post_raw(
    app: &Router,
    uri: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Reply {
    call(app, request("POST", uri, content_type, body)).await
}

pub async fn get(app: &Router, uri: &str) -> Reply {
    call(app, request("GET", uri, None, Body::empty())).await
}

pub async fn delete(app: &Router, uri: &str) -> Reply {
    call(app, request("DELETE", uri, None, Body::empty())).await
}

/// A 200 reply's body.
pub fn ok(reply: Reply) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    reply.json
}

/// Assert `{"error": {"status", "code", "message"}}` (nothing else) and return the message.
#[track_caller]
pub fn error_of(reply: &Reply, status: StatusCode, code: &str) -> String {
    assert_eq!(reply.status, status, "{}", reply.json);
    assert_eq!(keys(&reply.json), ["error"], "{}", reply.json);
    let error = &reply.json["error"];
    assert_eq!(keys(error), ["code", "message", "status"], "{}", reply.json);
    assert_eq!(error["status"], status.as_u16(), "{}", reply.json);
    assert_eq!(error["code"], code, "{}", reply.json);
    let message = error["message"].as_str().expect("a string message");
    assert!(!message.is_empty());
    message.to_owned()
}

pub fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

pub fn num(v: &Value) -> f32 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) as f32
}

/// Tag names of a `[{"tag", "confidence"}]` array, in order.
pub fn tags(scores: &Value) -> Vec<String> {
    scores
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {scores}"))
        .iter()
        .map(|s| s["tag"].as_str().expect("a tag name").to_owned())
        .collect()
}

/// A result's probabilities in the label file's tag order, read from its `all` field.
pub fn probabilities(result: &Value) -> Vec<f32> {
    let all = result["all"].as_array().expect("all is an array");
    CLASSIFIER
        .labels()
        .tags
        .iter()
        .map(|tag| {
            let score = all
                .iter()
                .find(|s| s["tag"] == tag.as_str())
                .unwrap_or_else(|| panic!("{tag} missing from {result}"));
            num(&score["confidence"])
        })
        .collect()
}

/// The lowest per-tag threshold of the shipped label file.
pub fn lowest_threshold() -> f32 {
    CLASSIFIER
        .labels()
        .thresholds
        .iter()
        .copied()
        .fold(f32::INFINITY, f32::min)
}

pub fn threshold_of(tag: &str) -> f32 {
    let labels = CLASSIFIER.labels();
    let i = labels
        .tags
        .iter()
        .position(|t| t == tag)
        .expect("a known tag");
    labels.thresholds[i]
}

pub async fn classify(app: &Router, message: &str) -> Value {
    ok(post(app, "/classify-message", &json!({ "message": message })).await)
}

pub async fn converse(app: &Router, id: &str, message: &str) -> Value {
    ok(post(
        app,
        "/classify-conversation",
        &json!({ "conversation_id": id, "message": message }),
    )
    .await)
}

/// Everything a `MessageResult` must be, whatever the message.
#[track_caller]
pub fn assert_well_formed(result: &Value) {
    let labels = CLASSIFIER.labels();
    assert_eq!(
        keys(result),
        [
            "all",
            "model_version",
            "profile",
            "redactions",
            "selected",
            "threshold",
            "threshold_sources",
            "thresholds",
            "truncated"
        ],
        "{result}"
    );
    assert_eq!(result["model_version"], labels.file.model_version.as_str());
    let min = labels
        .thresholds
        .iter()
        .copied()
        .fold(f32::INFINITY, f32::min);
    assert_eq!(num(&result["threshold"]), min);
    let thresholds: BTreeMap<String, f32> = result["thresholds"]
        .as_object()
        .expect("thresholds is an object")
        .iter()
        .map(|(k, v)| (k.clone(), num(v)))
        .collect();
    let want: BTreeMap<String, f32> = labels
        .tags
        .iter()
        .cloned()
        .zip(labels.thresholds.iter().copied())
        .collect();
    assert_eq!(thresholds, want);

    let all = result["all"].as_array().expect("all is an array");
    assert_eq!(all.len(), labels.tags.len());
    let all_tags: BTreeSet<String> = tags(&result["all"]).into_iter().collect();
    assert_eq!(
        all_tags,
        labels.tags.iter().cloned().collect::<BTreeSet<_>>()
    );
    let confidences: Vec<f32> = all.iter().map(|s| num(&s["confidence"])).collect();
    assert!(
        confidences
            .iter()
            .all(|p| p.is_finite() && (0.0..=1.0).contains(p)),
        "{result}"
    );
    assert!(
        confidences.windows(2).all(|w| w[0] >= w[1]),
        "all is not sorted: {result}"
    );

    // `selected` is exactly the tags at or above their own threshold, most confident first.
    let want_selected: Vec<String> = all
        .iter()
        .filter(|s| num(&s["confidence"]) >= threshold_of(s["tag"].as_str().unwrap()))
        .map(|s| s["tag"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tags(&result["selected"]), want_selected, "{result}");
    assert!(result["truncated"].is_boolean());
    assert!(result["redactions"].is_u64(), "{result}");
    // Without a shop: the model's thresholds, each said to be the model's.
    assert_eq!(result["profile"], "default", "{result}");
    let sources = result["threshold_sources"].as_object().expect("an object");
    assert_eq!(sources.len(), labels.tags.len());
    assert!(sources.values().all(|s| s == "model"), "{result}");
}
