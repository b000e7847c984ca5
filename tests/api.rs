//! The HTTP API end to end: the axum router over the real embedded model and the in-memory
//! store, driven through `tower::ServiceExt::oneshot` (no socket). Every route's happy path,
//! every refusal as a JSON error with its status and code, the reference system's
//! conversation demo, a panicking handler, and a failing or contended store.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tagbeez::api;
use tagbeez::classifier::{embedded, Classifier};
use tagbeez::config::Config;
use tagbeez::conversation::Conversation;
use tagbeez::service::Tagger;
use tagbeez::store::{ConversationStore, MemoryStore, StoreError};
use tower::ServiceExt;

static CLASSIFIER: LazyLock<Arc<Classifier>> = LazyLock::new(|| {
    Arc::new(Classifier::load(embedded::model_files()).expect("the embedded model loads"))
});

const HOT: &str = "I want to buy this right now, send me the checkout link";
const WISHLIST: &str = "These shoes look nice, I'll save them for later";
const FIRST_TIME: &str = "Hi, I'm new to your website. What products do you sell?";

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

fn config(vars: &[(&str, &str)]) -> Config {
    Config::from_pairs(vars).expect("a valid test configuration")
}

fn app_over(store: Arc<dyn ConversationStore>, vars: &[(&str, &str)]) -> Router {
    api::router(Tagger::new(Arc::clone(&CLASSIFIER), store, config(vars)))
}

fn app_with(vars: &[(&str, &str)]) -> Router {
    app_over(Arc::new(MemoryStore::new()), vars)
}

/// The defaults: `Config::from_vars(HashMap::new())`.
fn app() -> Router {
    app_with(&[])
}

/// A response whose body is, always, JSON sent as `application/json`.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

fn request(
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

async fn call(app: &Router, req: Request<Body>) -> Reply {
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

async fn post(app: &Router, uri: &str, body: &Value) -> Reply {
    post_raw(app, uri, Some("application/json"), body.to_string()).await
}

async fn post_raw(
    app: &Router,
    uri: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Reply {
    call(app, request("POST", uri, content_type, body)).await
}

async fn get(app: &Router, uri: &str) -> Reply {
    call(app, request("GET", uri, None, Body::empty())).await
}

async fn delete(app: &Router, uri: &str) -> Reply {
    call(app, request("DELETE", uri, None, Body::empty())).await
}

/// A 200 reply's body.
fn ok(reply: Reply) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    reply.json
}

/// Assert `{"error": {"status", "code", "message"}}` (nothing else) and return the message.
#[track_caller]
fn error_of(reply: &Reply, status: StatusCode, code: &str) -> String {
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

fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn num(v: &Value) -> f32 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) as f32
}

/// Tag names of a `[{"tag", "confidence"}]` array, in order.
fn tags(scores: &Value) -> Vec<String> {
    scores
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {scores}"))
        .iter()
        .map(|s| s["tag"].as_str().expect("a tag name").to_owned())
        .collect()
}

/// A result's probabilities in the label file's tag order, read from its `all` field.
fn probabilities(result: &Value) -> Vec<f32> {
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

fn threshold_of(tag: &str) -> f32 {
    let labels = CLASSIFIER.labels();
    let i = labels
        .tags
        .iter()
        .position(|t| t == tag)
        .expect("a known tag");
    labels.thresholds[i]
}

async fn classify(app: &Router, message: &str) -> Value {
    ok(post(app, "/classify-message", &json!({ "message": message })).await)
}

async fn converse(app: &Router, id: &str, message: &str) -> Value {
    ok(post(
        app,
        "/classify-conversation",
        &json!({ "conversation_id": id, "message": message }),
    )
    .await)
}

/// Everything a `MessageResult` must be, whatever the message.
#[track_caller]
fn assert_well_formed(result: &Value) {
    let labels = CLASSIFIER.labels();
    assert_eq!(
        keys(result),
        [
            "all",
            "model_version",
            "selected",
            "threshold",
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
}

// ---------------------------------------------------------------------------------------
// Happy paths
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn classify_message_selects_hot_buyer_and_reports_every_field() {
    let result = classify(&app(), HOT).await;
    assert_well_formed(&result);
    let labels = CLASSIFIER.labels();
    assert_eq!(tags(&result["selected"])[0], "Hot-buyer", "{result}");
    assert!(num(&result["selected"][0]["confidence"]) > 0.9, "{result}");
    assert_eq!(num(&result["threshold"]), 0.5);
    assert_eq!(result["thresholds"].as_object().unwrap().len(), 5);
    assert_eq!(num(&result["thresholds"]["Deal-seeker"]), 0.72);
    assert_eq!(result["all"].as_array().unwrap().len(), 5);
    assert_eq!(result["all"][0]["tag"], "Hot-buyer");
    assert_eq!(result["truncated"], false);
    assert_eq!(result["model_version"], labels.file.model_version.as_str());

    // The route reports the classifier's own probabilities, unchanged.
    let direct = &CLASSIFIER.classify_batch(&[HOT]).unwrap()[0];
    for (got, want) in probabilities(&result).iter().zip(&direct.probabilities) {
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
}

#[tokio::test]
async fn classify_message_trims_and_accepts_json_content_type_variants() {
    let app = app();
    let plain = classify(&app, HOT).await;
    for content_type in [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.api+json",
    ] {
        let body = json!({ "message": format!("  \n{HOT}\t ") }).to_string();
        let reply = ok(post_raw(&app, "/classify-message", Some(content_type), body).await);
        assert_eq!(reply, plain, "{content_type}");
    }
}

#[tokio::test]
async fn classify_batch_returns_results_in_input_order_matching_single_messages() {
    let app = app();
    let messages = [HOT, WISHLIST, FIRST_TIME];
    let reply = ok(post(&app, "/classify-batch", &json!({ "messages": messages })).await);
    assert_eq!(keys(&reply), ["results"]);
    let results = reply["results"].as_array().expect("results is an array");
    assert_eq!(results.len(), 3);
    for (message, batched) in messages.iter().zip(results) {
        assert_well_formed(batched);
        let single = classify(&app, message).await;
        assert_eq!(
            tags(&batched["selected"]),
            tags(&single["selected"]),
            "{message}"
        );
        for (b, s) in probabilities(batched).iter().zip(probabilities(&single)) {
            assert!((b - s).abs() < 1e-4, "{message}: batched {b} vs single {s}");
        }
    }
    let first = |r: &Value| tags(&r["selected"])[0].clone();
    let order: Vec<String> = results.iter().map(first).collect();
    assert_eq!(order, ["Hot-buyer", "Wishlist-user", "First-time-visitor"]);
}

#[tokio::test]
async fn classify_batch_accepts_exactly_the_limit() {
    let messages: Vec<String> = (0..64)
        .map(|i| format!("message number {i}, do you ship?"))
        .collect();
    let reply = ok(post(&app(), "/classify-batch", &json!({ "messages": messages })).await);
    assert_eq!(reply["results"].as_array().unwrap().len(), 64);
}

#[tokio::test]
async fn classify_conversation_reports_every_field_and_evicts_beyond_the_window() {
    let app = app();
    let id = "shop-42:user@example.com";
    let messages = [
        FIRST_TIME,
        WISHLIST,
        "Do you have any discount codes for first-time buyers?",
        "ok",
    ];
    let mut replies = Vec::new();
    for (n, message) in messages.iter().enumerate() {
        let reply = converse(&app, id, message).await;
        assert_eq!(
            keys(&reply),
            [
                "conversation_id",
                "conversation_tag",
                "evidence",
                "message_result",
                "previous_tag",
                "switched",
                "threshold",
                "window_size"
            ]
        );
        assert_eq!(reply["conversation_id"], id);
        assert_eq!(num(&reply["threshold"]), 0.5);
        assert_eq!(reply["window_size"], (n + 1).min(3), "after message {n}");
        assert_well_formed(&reply["message_result"]);
        // The message's own result is what `/classify-message` says of it.
        let single = classify(&app, message).await;
        assert_eq!(reply["message_result"], single, "{message}");
        // previous_tag is the conversation tag the last reply reported.
        let previous = replies
            .last()
            .map_or(Value::Null, |r: &Value| r["conversation_tag"].clone());
        assert_eq!(reply["previous_tag"], previous);
        // The evidence: the window's last two messages, each snippet cut to 50 characters.
        let evidence = reply["evidence"].as_array().unwrap();
        let window = &messages[(n + 1).saturating_sub(3)..=n];
        let last_two = &window[window.len().saturating_sub(2)..];
        assert_eq!(evidence.len(), last_two.len());
        for (e, m) in evidence.iter().zip(last_two) {
            assert_eq!(keys(e), ["message", "top"]);
            let want = if m.chars().count() > 50 {
                format!("{}...", m.chars().take(50).collect::<String>())
            } else {
                m.to_string()
            };
            assert_eq!(e["message"], want);
            assert_eq!(e["top"], classify(&app, m).await["selected"]);
        }
        replies.push(reply);
    }
    assert_eq!(
        replies[0]["evidence"][0]["message"],
        "Hi, I'm new to your website. What products do you ..."
    );
    // The short last message is not cut and has no "...".
    assert_eq!(replies[3]["evidence"][1]["message"], "ok");

    // The stored window: the last three messages, oldest first; four writes.
    let view = ok(get(&app, &format!("/conversation/{id}")).await);
    assert_eq!(
        keys(&view),
        [
            "conversation_id",
            "conversation_tag",
            "expires_at",
            "updated_at",
            "version",
            "window",
            "window_size"
        ]
    );
    assert_eq!(view["conversation_id"], id);
    assert_eq!(view["version"], 4);
    assert_eq!(view["window_size"], 3);
    assert_eq!(view["conversation_tag"], replies[3]["conversation_tag"]);
    let window = view["window"].as_array().unwrap();
    let snippets: Vec<&str> = window
        .iter()
        .map(|e| e["snippet"].as_str().unwrap())
        .collect();
    assert_eq!(
        snippets,
        [
            "These shoes look nice, I'll save them for later",
            "Do you have any discount codes for first-time buye...",
            "ok"
        ]
    );
    for (entry, reply) in window.iter().zip(&replies[1..]) {
        let stored: Vec<f32> = entry["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(num)
            .collect();
        assert_eq!(stored, probabilities(&reply["message_result"]));
        assert_eq!(entry["top"], reply["message_result"]["selected"]);
    }
    let updated = view["updated_at"].as_u64().unwrap();
    assert_eq!(view["expires_at"].as_u64().unwrap(), updated + 86_400);
    assert!(
        updated > 1_700_000_000,
        "updated_at is epoch seconds: {updated}"
    );
}

#[tokio::test]
async fn window_settings_are_honoured() {
    // One message per window: the conversation tag is the message's own top tag.
    let app = app_with(&[("WINDOW_SIZE", "1"), ("SNIPPET_CHARS", "0")]);
    for (message, tag) in [(WISHLIST, "Wishlist-user"), (HOT, "Hot-buyer")] {
        let reply = converse(&app, "one", message).await;
        assert_eq!(reply["window_size"], 1);
        assert_eq!(reply["conversation_tag"]["tag"], tag);
        assert_eq!(
            reply["conversation_tag"],
            reply["message_result"]["selected"][0]
        );
        assert_eq!(
            reply["evidence"][0]["message"], "",
            "SNIPPET_CHARS=0 keeps no text"
        );
    }
    let view = ok(get(&app, "/conversation/one").await);
    assert_eq!(
        (view["window_size"].as_u64(), view["version"].as_u64()),
        (Some(1), Some(2))
    );

    let app = app_with(&[
        ("WINDOW_SIZE", "2"),
        ("CONVERSATION_TTL_SECONDS", "600"),
        ("SNIPPET_CHARS", "5"),
    ]);
    for message in [FIRST_TIME, WISHLIST, HOT] {
        converse(&app, "two", message).await;
    }
    let view = ok(get(&app, "/conversation/two").await);
    let snippets: Vec<&str> = view["window"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["snippet"].as_str().unwrap())
        .collect();
    assert_eq!(snippets, ["These...", "I wan..."]);
    assert_eq!(
        view["expires_at"].as_u64().unwrap(),
        view["updated_at"].as_u64().unwrap() + 600
    );
}

#[tokio::test]
async fn get_and_delete_conversation() {
    let app = app();
    error_of(
        &get(&app, "/conversation/never-seen").await,
        StatusCode::NOT_FOUND,
        "conversation_not_found",
    );
    error_of(
        &delete(&app, "/conversation/never-seen").await,
        StatusCode::NOT_FOUND,
        "conversation_not_found",
    );

    converse(&app, "c-1", FIRST_TIME).await;
    converse(&app, "c-1", WISHLIST).await;
    converse(&app, "other", HOT).await;
    let view = ok(get(&app, "/conversation/c-1").await);
    assert_eq!(
        (view["version"].as_u64(), view["window_size"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        view["window"][0]["snippet"],
        "Hi, I'm new to your website. What products do you ..."
    );

    let cleared = ok(delete(&app, "/conversation/c-1").await);
    assert_eq!(
        cleared,
        json!({ "conversation_id": "c-1", "cleared": true })
    );
    let again = delete(&app, "/conversation/c-1").await;
    let message = error_of(&again, StatusCode::NOT_FOUND, "conversation_not_found");
    assert!(message.contains("c-1"), "{message}");
    error_of(
        &get(&app, "/conversation/c-1").await,
        StatusCode::NOT_FOUND,
        "conversation_not_found",
    );

    // Other conversations are untouched, and a cleared one starts afresh.
    assert_eq!(ok(get(&app, "/conversation/other").await)["version"], 1);
    let fresh = converse(&app, "c-1", HOT).await;
    assert_eq!(
        (fresh["previous_tag"].clone(), fresh["switched"].clone()),
        (Value::Null, json!(false))
    );
    assert_eq!(fresh["window_size"], 1);
    assert_eq!(ok(get(&app, "/conversation/c-1").await)["version"], 1);
}

#[tokio::test]
async fn health_reports_model_and_store() {
    let health = ok(get(&app(), "/health").await);
    assert_eq!(
        health,
        json!({ "model_loaded": true, "store_reachable": true, "status": "ok" })
    );
}

#[tokio::test]
async fn service_info_describes_the_model_and_routes() {
    let info = ok(get(&app(), "/").await);
    let labels = CLASSIFIER.labels();
    assert_eq!(info["service"], "tagbeez");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["model_version"], labels.file.model_version.as_str());
    assert_eq!(info["base_encoder"], "all-MiniLM-L6-v2");
    assert_eq!(tags_of_strings(&info["tags"]), labels.tags);
    assert_eq!(
        tags_of_strings(&info["tags"]),
        [
            "First-time-visitor",
            "Wishlist-user",
            "Deal-seeker",
            "Window-shopper",
            "Hot-buyer"
        ]
    );
    for (tag, threshold) in labels.tags.iter().zip(&labels.thresholds) {
        assert_eq!(num(&info["thresholds"][tag]), *threshold, "{tag}");
    }
    assert_eq!(info["thresholds"].as_object().unwrap().len(), 5);
    assert_eq!(tags_of_strings(&info["routes"]), api::ROUTES);
    assert_eq!(api::ROUTES.len(), 8);
}

fn tags_of_strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_schema() {
    let doc = ok(get(&app(), "/openapi.json").await);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "tagbeez");
    let paths = &doc["paths"];
    for (path, method) in [
        ("/classify-message", "post"),
        ("/classify-batch", "post"),
        ("/classify-conversation", "post"),
        ("/conversation/{id}", "get"),
        ("/conversation/{id}", "delete"),
        ("/health", "get"),
        ("/", "get"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} missing from {paths}"
        );
    }
    // Every route `GET /` lists, except the document itself, is in the document.
    for route in api::ROUTES.iter().filter(|r| **r != "GET /openapi.json") {
        let (method, path) = route.split_once(' ').unwrap();
        assert!(
            paths[path][method.to_ascii_lowercase()].is_object(),
            "{route}"
        );
    }
    let schemas = doc["components"]["schemas"]
        .as_object()
        .expect("components.schemas");
    for schema in [
        "MessageResult",
        "MessageRequest",
        "BatchRequest",
        "ConversationRequest",
        "ErrorBody",
        "TagScore",
    ] {
        assert!(
            schemas.contains_key(schema),
            "{schema} missing from {:?}",
            schemas.keys()
        );
    }
    let required = &schemas["MessageResult"]["required"];
    for field in [
        "threshold",
        "thresholds",
        "selected",
        "all",
        "truncated",
        "model_version",
    ] {
        assert!(
            required.as_array().unwrap().iter().any(|f| f == field),
            "{field} not required: {required}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Refusals: 4xx JSON errors
// ---------------------------------------------------------------------------------------

/// A valid body for each POST route.
fn valid_bodies() -> [(&'static str, Value); 3] {
    [
        ("/classify-message", json!({ "message": "hello" })),
        ("/classify-batch", json!({ "messages": ["hello"] })),
        (
            "/classify-conversation",
            json!({ "conversation_id": "c1", "message": "hello" }),
        ),
    ]
}

#[tokio::test]
async fn malformed_json_is_400_invalid_json() {
    let app = app();
    for (route, valid) in valid_bodies() {
        let valid = valid.to_string();
        let truncated = valid[..valid.len() - 1].to_owned();
        let trailing = format!("{valid} trailing");
        // A lone UTF-16 surrogate is not a character.
        let surrogate = valid.replace("hello", "\\ud800");
        for body in [
            "",
            "{",
            "{message: hi}",
            "[",
            "nul",
            truncated.as_str(),
            trailing.as_str(),
            surrogate.as_str(),
        ] {
            let reply = post_raw(&app, route, Some("application/json"), body.to_owned()).await;
            let message = error_of(&reply, StatusCode::BAD_REQUEST, "invalid_json");
            assert!(
                message.starts_with("malformed JSON"),
                "{route} {body:?}: {message}"
            );
        }
    }
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let app = app();
    for (route, body) in valid_bodies() {
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("json"),
            None,
        ] {
            let reply = post_raw(&app, route, content_type, body.to_string()).await;
            let message = error_of(
                &reply,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            );
            assert!(message.contains("application/json"), "{message}");
        }
        // The same body with the right content type is accepted.
        ok(post(&app, route, &body).await);
    }
}

#[tokio::test]
async fn wrong_shapes_are_400_invalid_request() {
    let app = app();
    let cases = [
        ("/classify-message", json!({}), "`message`"),
        ("/classify-message", json!({ "text": "hi" }), "`text`"),
        (
            "/classify-message",
            json!({ "message": "hi", "extra": 1 }),
            "`extra`",
        ),
        ("/classify-message", json!({ "message": 5 }), "invalid type"),
        (
            "/classify-message",
            json!({ "message": null }),
            "invalid type",
        ),
        (
            "/classify-message",
            json!({ "message": ["hi"] }),
            "invalid type",
        ),
        ("/classify-message", json!("hi"), "invalid type"),
        ("/classify-message", json!(5), "invalid type"),
        // serde would read an array as the fields in order: the body must be an object.
        ("/classify-message", json!(["hi"]), "must be a JSON object"),
        ("/classify-batch", json!([["hi"]]), "must be a JSON object"),
        (
            "/classify-conversation",
            json!(["c1", "hi"]),
            "must be a JSON object",
        ),
        ("/classify-batch", json!({}), "`messages`"),
        (
            "/classify-batch",
            json!({ "messages": "hi" }),
            "invalid type",
        ),
        (
            "/classify-batch",
            json!({ "messages": ["hi", 5] }),
            "invalid type",
        ),
        (
            "/classify-batch",
            json!({ "messages": ["hi"], "extra": true }),
            "`extra`",
        ),
        ("/classify-batch", json!({ "message": "hi" }), "`message`"),
        (
            "/classify-conversation",
            json!({ "message": "hi" }),
            "`conversation_id`",
        ),
        (
            "/classify-conversation",
            json!({ "conversation_id": "c" }),
            "`message`",
        ),
        (
            "/classify-conversation",
            json!({ "conversation_id": 7, "message": "hi" }),
            "invalid type",
        ),
        (
            "/classify-conversation",
            json!({ "conversation_id": "c", "message": "hi", "x": 1 }),
            "`x`",
        ),
    ];
    for (route, body, mentions) in cases {
        let reply = post(&app, route, &body).await;
        let message = error_of(&reply, StatusCode::BAD_REQUEST, "invalid_request");
        assert!(message.starts_with("invalid request"), "{message}");
        assert!(
            message.contains(mentions),
            "{route} {body}: {message:?} does not mention {mentions}"
        );
    }
}

#[tokio::test]
async fn empty_and_whitespace_messages_are_400_empty_message() {
    let app = app();
    for empty in ["", " ", "\n\t  \r\n", "\u{3000}\u{a0}"] {
        let reply = post(&app, "/classify-message", &json!({ "message": empty })).await;
        assert_eq!(
            error_of(&reply, StatusCode::BAD_REQUEST, "empty_message"),
            "message is empty"
        );
        let reply = post(
            &app,
            "/classify-conversation",
            &json!({ "conversation_id": "c", "message": empty }),
        )
        .await;
        assert_eq!(
            error_of(&reply, StatusCode::BAD_REQUEST, "empty_message"),
            "message is empty"
        );
    }
    // A refused message never starts a conversation.
    error_of(
        &get(&app, "/conversation/c").await,
        StatusCode::NOT_FOUND,
        "conversation_not_found",
    );
}

#[tokio::test]
async fn messages_over_the_limit_are_400_message_too_long() {
    let app = app_with(&[("MAX_MESSAGE_CHARS", "20")]);
    let at_limit = "é".repeat(20); // 20 characters, 40 bytes: the limit counts characters
    ok(post(&app, "/classify-message", &json!({ "message": at_limit })).await);
    ok(post(
        &app,
        "/classify-message",
        &json!({ "message": format!("   {at_limit}\n") }),
    )
    .await);
    let over = "a".repeat(21);
    for (route, body) in [
        ("/classify-message", json!({ "message": over })),
        (
            "/classify-conversation",
            json!({ "conversation_id": "c", "message": over }),
        ),
    ] {
        let message = error_of(
            &post(&app, route, &body).await,
            StatusCode::BAD_REQUEST,
            "message_too_long",
        );
        assert_eq!(message, "message has 21 characters; the limit is 20");
    }

    // The default limit is 5,000 characters.
    let reply = post(
        &self::app(),
        "/classify-message",
        &json!({ "message": "a".repeat(5_001) }),
    )
    .await;
    let message = error_of(&reply, StatusCode::BAD_REQUEST, "message_too_long");
    assert!(
        message.contains("5001") && message.contains("5000"),
        "{message}"
    );
}

#[tokio::test]
async fn bad_batches_are_refused_with_their_code() {
    let app = app_with(&[("MAX_MESSAGE_CHARS", "30")]);
    let reply = post(&app, "/classify-batch", &json!({ "messages": [] })).await;
    error_of(&reply, StatusCode::BAD_REQUEST, "empty_batch");

    let sixty_five = vec!["hello"; 65];
    let reply = post(&app, "/classify-batch", &json!({ "messages": sixty_five })).await;
    let message = error_of(&reply, StatusCode::BAD_REQUEST, "batch_too_large");
    assert_eq!(message, "messages holds 65 messages; the limit is 64");

    let reply = post(
        &app,
        "/classify-batch",
        &json!({ "messages": ["hello", "  ", "bye"] }),
    )
    .await;
    assert_eq!(
        error_of(&reply, StatusCode::BAD_REQUEST, "empty_message"),
        "messages[1] is empty"
    );

    let long = "b".repeat(31);
    let reply = post(
        &app,
        "/classify-batch",
        &json!({ "messages": ["hello", "hi", long] }),
    )
    .await;
    let message = error_of(&reply, StatusCode::BAD_REQUEST, "message_too_long");
    assert_eq!(message, "messages[2] has 31 characters; the limit is 30");
}

const BAD_IDS: &[&str] = &[
    "",
    "a b",
    "a/b",
    "café",
    "ü",
    "line\nbreak",
    "tab\t",
    "percent%",
    "hash#",
];

#[tokio::test]
async fn bad_conversation_ids_are_400_in_the_body() {
    let app = app();
    let too_long = "a".repeat(129);
    for id in BAD_IDS.iter().copied().chain([too_long.as_str()]) {
        let reply = post(
            &app,
            "/classify-conversation",
            &json!({ "conversation_id": id, "message": HOT }),
        )
        .await;
        let message = error_of(&reply, StatusCode::BAD_REQUEST, "invalid_conversation_id");
        assert!(message.contains("1-128 characters"), "{id:?}: {message}");
    }
    // The longest id, and every allowed punctuation character, are accepted.
    let longest = "A".repeat(128);
    for id in [longest.as_str(), "Az09_.:@-"] {
        let reply = converse(&app, id, HOT).await;
        assert_eq!(reply["conversation_id"], id);
        assert_eq!(
            ok(get(&app, &format!("/conversation/{id}")).await)["conversation_id"],
            id
        );
    }
}

#[tokio::test]
async fn bad_conversation_ids_are_400_in_the_path() {
    let app = app();
    let too_long = "a".repeat(129);
    // Percent-encoded: a space, '/', 'é', '\n', '%', and bytes that are not UTF-8.
    for segment in [
        too_long.as_str(),
        "a%20b",
        "a%2Fb",
        "caf%C3%A9",
        "line%0Abreak",
        "50%25",
        "%FF",
        "%C3",
    ] {
        for reply in [
            get(&app, &format!("/conversation/{segment}")).await,
            delete(&app, &format!("/conversation/{segment}")).await,
        ] {
            error_of(&reply, StatusCode::BAD_REQUEST, "invalid_conversation_id");
        }
    }
    // An empty id does not match the route at all.
    for reply in [
        get(&app, "/conversation/").await,
        delete(&app, "/conversation/").await,
    ] {
        error_of(&reply, StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn bodies_over_256_kib_are_413() {
    let app = app();
    let prefix = "{\"message\":\"";
    let suffix = "\"}";
    let exactly = |bytes: usize| {
        format!(
            "{prefix}{}{suffix}",
            "a".repeat(bytes - prefix.len() - suffix.len())
        )
    };
    // At the limit the body is read, and the message itself is refused as too long.
    let body = exactly(256 * 1024);
    let reply = post_raw(&app, "/classify-message", Some("application/json"), body).await;
    error_of(&reply, StatusCode::BAD_REQUEST, "message_too_long");
    // One byte over, the body is refused before parsing.
    for (route, _) in valid_bodies() {
        let reply = post_raw(
            &app,
            route,
            Some("application/json"),
            exactly(256 * 1024 + 1),
        )
        .await;
        let message = error_of(&reply, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
        assert_eq!(message, "the body is over 256 KiB");
    }
    let reply = post_raw(
        &app,
        "/classify-batch",
        Some("application/json"),
        exactly(1024 * 1024),
    )
    .await;
    error_of(&reply, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let app = app();
    for (method, uri) in [
        ("GET", "/nope"),
        ("POST", "/classify"),
        ("GET", "/conversation"),
        ("GET", "/conversation/a/b"),
        ("GET", "/classify-message/extra"),
        ("DELETE", "/conversations/abc"),
    ] {
        let reply = call(&app, request(method, uri, None, Body::empty())).await;
        let message = error_of(&reply, StatusCode::NOT_FOUND, "not_found");
        assert_eq!(message, format!("no route for {method} {uri}"));
    }
    for (method, uri) in [
        ("GET", "/classify-message"),
        ("GET", "/classify-batch"),
        ("PUT", "/classify-conversation"),
        ("PUT", "/health"),
        ("POST", "/health"),
        ("DELETE", "/"),
        ("POST", "/openapi.json"),
        ("POST", "/conversation/abc"),
        ("PATCH", "/conversation/abc"),
    ] {
        let reply = call(&app, request(method, uri, Some("application/json"), "{}")).await;
        let message = error_of(&reply, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        assert_eq!(message, format!("{method} is not allowed on {uri}"));
    }
}

#[tokio::test]
async fn long_messages_are_accepted_and_marked_truncated() {
    let app = app();
    let long = "I really love this jacket and I want to buy it now please ".repeat(34); // ~400 words
    assert!(long.split_whitespace().count() >= 400);
    let result = classify(&app, &long).await;
    assert_well_formed(&result);
    assert_eq!(result["truncated"], true);
    assert_eq!(classify(&app, HOT).await["truncated"], false);

    let batch = ok(post(&app, "/classify-batch", &json!({ "messages": [HOT, long] })).await);
    assert_eq!(batch["results"][0]["truncated"], false);
    assert_eq!(batch["results"][1]["truncated"], true);
    let reply = converse(&app, "long", &long).await;
    assert_eq!(reply["message_result"]["truncated"], true);
    assert_eq!(
        reply["evidence"][0]["message"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        53
    );
}

#[tokio::test]
async fn emoji_control_characters_and_non_ascii_never_fail() {
    let app = app();
    let messages = [
        "🔥🔥🔥",
        "😀 buy now!!! 💳👟",
        "\u{0}\u{7}hello\u{1b}[31m world\u{7f}",
        "\u{0}\u{1}\u{2}",
        "\u{200b}\u{feff}\u{200d}",
        "私はこの靴を今すぐ買いたいです",
        "Привет, есть ли скидки для новых покупателей?",
        "مرحبا، هل لديكم خصومات؟",
        "e\u{301}\u{301}\u{301} ñ ß ﬁ Ω",
        "\u{202e}reversed\u{202c} text",
        "a\u{fffd}b \u{10ffff}",
        "👨‍👩‍👧‍👦🏳️‍🌈",
        "\\n\\t not real escapes \" ' ` <script>",
    ];
    for message in messages {
        let result = classify(&app, message).await;
        assert_well_formed(&result);
        let reply = converse(&app, "unicode", message).await;
        assert_well_formed(&reply["message_result"]);
    }
    let batch = ok(post(&app, "/classify-batch", &json!({ "messages": messages })).await);
    assert_eq!(batch["results"].as_array().unwrap().len(), messages.len());

    // Snippets are cut by character, never inside a multi-byte one.
    let emoji = "🔥".repeat(60);
    let reply = converse(&app, "emoji", &emoji).await;
    assert_eq!(
        reply["evidence"][0]["message"],
        format!("{}...", "🔥".repeat(50))
    );
}

// ---------------------------------------------------------------------------------------
// The reference system's conversation demo
// ---------------------------------------------------------------------------------------

const DEMO: [&str; 4] = [
    "Hi, I'm new to your website. What products do you sell?",
    "These shoes look nice, I'll save them for later",
    "Do you have any discount codes for first-time buyers?",
    "I will buy immediately if you can give me 15% off",
];

/// One demo step as the API reported it.
#[derive(Debug)]
struct DemoStep {
    selected: Vec<String>,
    /// The message's probabilities, in tag order.
    probabilities: Vec<f32>,
    tag: Option<(String, f32)>,
    previous: Option<String>,
    switched: bool,
}

/// Run the demo through `/classify-conversation`, printing what happened (`--nocapture`), and
/// check each conversation tag against the window arithmetic recomputed here.
async fn run_demo(vars: &[(&str, &str)]) -> Vec<DemoStep> {
    let config = config(vars);
    let (size, decay) = (config.window.size, config.window.decay);
    let app = app_with(vars);
    let labels = CLASSIFIER.labels();
    println!("demo with WINDOW_SIZE={size} WINDOW_DECAY={decay}");
    let mut steps: Vec<DemoStep> = Vec::new();
    for (n, message) in DEMO.iter().enumerate() {
        let reply = converse(&app, "demo", message).await;
        let tag_of = |v: &Value| {
            v.as_object()
                .map(|_| (v["tag"].as_str().unwrap().to_owned(), num(&v["confidence"])))
        };
        let step = DemoStep {
            selected: tags(&reply["message_result"]["selected"]),
            probabilities: probabilities(&reply["message_result"]),
            tag: tag_of(&reply["conversation_tag"]),
            previous: tag_of(&reply["previous_tag"]).map(|(t, _)| t),
            switched: reply["switched"].as_bool().unwrap(),
        };
        steps.push(step);
        // The weighted mean of the window, newest weight 1, each older one `decay` times less.
        let window = &steps[(n + 1).saturating_sub(size)..];
        let mut mean = vec![0f32; labels.tags.len()];
        let (mut weight, mut total) = (1f32, 0f32);
        for s in window.iter().rev() {
            for (m, p) in mean.iter_mut().zip(&s.probabilities) {
                *m += weight * p;
            }
            total += weight;
            weight *= decay;
        }
        mean.iter_mut().for_each(|m| *m /= total);
        let step = &steps[n];
        println!("({}) {message}", (b'a' + n as u8) as char);
        println!(
            "    selected {:?}  probabilities {:?}",
            step.selected, step.probabilities
        );
        println!("    window mean {mean:?}");
        println!(
            "    conversation tag {:?}  previous {:?}  switched {}",
            step.tag, step.previous, step.switched
        );
        let top = (0..mean.len())
            .max_by(|&a, &b| mean[a].total_cmp(&mean[b]))
            .unwrap();
        let want = (mean[top] >= labels.thresholds[top]).then(|| labels.tags[top].clone());
        assert_eq!(
            step.tag.as_ref().map(|(t, _)| t.clone()),
            want,
            "step {n}: mean {mean:?}"
        );
        if let Some((_, confidence)) = &step.tag {
            assert!(
                (confidence - mean[top]).abs() < 1e-5,
                "{confidence} vs {}",
                mean[top]
            );
        }
    }
    steps
}

fn demo_tags(steps: &[DemoStep]) -> Vec<Option<&str>> {
    steps
        .iter()
        .map(|s| s.tag.as_ref().map(|(t, _)| t.as_str()))
        .collect()
}

fn demo_switched(steps: &[DemoStep]) -> Vec<bool> {
    steps.iter().map(|s| s.switched).collect()
}

/// Each demo message on its own selects what the reference expects, except that (c) also
/// reads as a first visit ("for first-time buyers") and (d) reads as a deal even more than as
/// a purchase ("15% off"). Probabilities in tag order [First-time-visitor, Wishlist-user,
/// Deal-seeker, Window-shopper, Hot-buyer]; thresholds from model/labels.json
/// [0.51, 0.50, 0.72, 0.54, 0.52]:
///
/// ```text
/// (a) [0.99999, 0.00058, 0.00066, 0.00715, 0.00017]  selects First-time-visitor
/// (b) [0.00061, 0.99993, 0.00003, 0.02264, 0.00004]  selects Wishlist-user
/// (c) [0.99143, 0.00016, 0.99998, 0.00140, 0.00004]  selects Deal-seeker 0.99998, First-time-visitor 0.99143
/// (d) [0.00061, 0.00039, 0.99999, 0.00010, 0.99736]  selects Deal-seeker 0.99999, Hot-buyer 0.99736
/// ```
#[tokio::test]
async fn demo_messages_on_their_own() {
    let steps = run_demo(&[("WINDOW_SIZE", "1")]).await;
    let selected: Vec<Vec<String>> = steps.iter().map(|s| s.selected.clone()).collect();
    assert_eq!(
        selected,
        [
            vec!["First-time-visitor".to_owned()],
            vec!["Wishlist-user".to_owned()],
            vec!["Deal-seeker".to_owned(), "First-time-visitor".to_owned()],
            vec!["Deal-seeker".to_owned(), "Hot-buyer".to_owned()],
        ]
    );
    // A one-message window follows each message's top tag: (d) stays Deal-seeker, so even the
    // most reactive window never reaches Hot-buyer; switched is false at (d).
    assert_eq!(
        demo_tags(&steps),
        [
            Some("First-time-visitor"),
            Some("Wishlist-user"),
            Some("Deal-seeker"),
            Some("Deal-seeker")
        ]
    );
    assert_eq!(demo_switched(&steps), [false, true, true, false]);
}

/// The reference demo with the defaults (WINDOW_SIZE=3, WINDOW_DECAY=1: the plain mean of the
/// last three probability vectors, top tag kept only if it clears *its own* threshold). It
/// does NOT go First-time-visitor -> Wishlist-user -> Deal-seeker -> Hot-buyer:
///
/// - (a) mean = (a): First-time-visitor 0.99999 >= 0.51: tag First-time-visitor; nothing
///   before it, so switched false.
/// - (b) mean(a, b): First-time-visitor (0.99999 + 0.00061) / 2 = 0.50031, Wishlist-user
///   (0.00058 + 0.99993) / 2 = 0.50026. The top tag is First-time-visitor, under its 0.51:
///   no tag (Wishlist-user clears its own 0.50 but is not the top). Losing the tag counts as
///   a switch: switched true.
/// - (c) mean(a, b, c): First-time-visitor (0.99999 + 0.00061 + 0.99143) / 3 = 0.66401 >=
///   0.51 (message (c) itself is 0.99 first-time), Deal-seeker 0.33356: tag
///   First-time-visitor again; the previous tag was none, so switched false.
/// - (d) mean(b, c, d), (a) evicted: Deal-seeker (0.00003 + 0.99998 + 0.99999) / 3 = 0.66667
///   is the top but under its 0.72; Wishlist-user 0.33349, Hot-buyer 0.33248: no tag,
///   switched true.
#[tokio::test]
async fn demo_with_the_plain_mean() {
    let steps = run_demo(&[]).await;
    assert_eq!(
        demo_tags(&steps),
        [
            Some("First-time-visitor"),
            None,
            Some("First-time-visitor"),
            None
        ]
    );
    assert_eq!(demo_switched(&steps), [false, true, false, true]);
    let previous: Vec<Option<&str>> = steps.iter().map(|s| s.previous.as_deref()).collect();
    assert_eq!(
        previous,
        [
            None,
            Some("First-time-visitor"),
            None,
            Some("First-time-visitor")
        ]
    );
    let confidence = |n: usize| steps[n].tag.as_ref().unwrap().1;
    assert!((confidence(2) - 0.66401).abs() < 1e-3, "{}", confidence(2));
    // Step (b): the top of the mean misses its threshold by less than 0.01, and a tag that
    // clears its own threshold is not chosen because it is not the top.
    let mean_b = |i: usize| (steps[0].probabilities[i] + steps[1].probabilities[i]) / 2.0;
    assert!(
        mean_b(0) > mean_b(1) && mean_b(0) < 0.51 && mean_b(0) > 0.50,
        "{}",
        mean_b(0)
    );
    assert!(mean_b(1) >= threshold_of("Wishlist-user"), "{}", mean_b(1));
    // Step (d): Deal-seeker is the top at two thirds, short of its 0.72.
    let mean_d =
        (steps[1].probabilities[2] + steps[2].probabilities[2] + steps[3].probabilities[2]) / 3.0;
    assert!((mean_d - 2.0 / 3.0).abs() < 1e-3 && mean_d < threshold_of("Deal-seeker"));
}

/// The demo with WINDOW_DECAY=0.3 (weights 1, 0.3, 0.09 from the newest message: the newest
/// leads). The tag moves at every step, but along First-time-visitor -> Wishlist-user ->
/// First-time-visitor -> Deal-seeker, with switched true at (b), (c) and (d):
///
/// - (a) First-time-visitor 0.99999.
/// - (b) (1 * b + 0.3 * a) / 1.3: Wishlist-user (0.99993 + 0.3 * 0.00058) / 1.3 = 0.76931 >=
///   0.50.
/// - (c) (1 * c + 0.3 * b + 0.09 * a) / 1.39: First-time-visitor (0.99143 + 0.3 * 0.00061 +
///   0.09 * 0.99999) / 1.39 = 0.77814 beats Deal-seeker (0.99998 + 0.3 * 0.00003 + 0.09 *
///   0.00066) / 1.39 = 0.71946 (which would miss its 0.72 anyway): message (c) is itself
///   0.99 first-time, and (a) still adds 0.09 of a first visit.
/// - (d) (1 * d + 0.3 * c + 0.09 * b) / 1.39: Deal-seeker (0.99999 + 0.3 * 0.99998 + 0.09 *
///   0.00003) / 1.39 = 0.93525 >= 0.72; Hot-buyer is only (0.99736 + ...) / 1.39 = 0.71754.
///   Hot-buyer cannot lead at (d) with any decay: even (d) alone ranks Deal-seeker first.
#[tokio::test]
async fn demo_with_the_newest_message_leading() {
    let steps = run_demo(&[("WINDOW_DECAY", "0.3")]).await;
    assert_eq!(
        demo_tags(&steps),
        [
            Some("First-time-visitor"),
            Some("Wishlist-user"),
            Some("First-time-visitor"),
            Some("Deal-seeker")
        ]
    );
    assert_eq!(demo_switched(&steps), [false, true, true, true]);
    let confidences: Vec<f32> = steps.iter().map(|s| s.tag.as_ref().unwrap().1).collect();
    for (got, want) in confidences.iter().zip([0.99999, 0.76931, 0.77814, 0.93525]) {
        assert!((got - want).abs() < 1e-3, "{confidences:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Panics, failing stores, logs
// ---------------------------------------------------------------------------------------

/// A store whose every call panics: the panic happens inside the route handler.
struct PanickingStore;

#[async_trait]
impl ConversationStore for PanickingStore {
    async fn load(&self, _: &str, _: u64) -> Result<Option<Conversation>, StoreError> {
        panic!("store exploded");
    }
    async fn save(
        &self,
        _: &str,
        _: &Conversation,
        _: Option<u64>,
        _: u64,
    ) -> Result<(), StoreError> {
        panic!("store exploded");
    }
    async fn delete(&self, _: &str, _: u64) -> Result<bool, StoreError> {
        panic!("store exploded: {}", 42);
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A store that cannot be reached.
struct DownStore;

#[async_trait]
impl ConversationStore for DownStore {
    async fn load(&self, _: &str, _: u64) -> Result<Option<Conversation>, StoreError> {
        Err(StoreError::Unavailable("timed out".into()))
    }
    async fn save(
        &self,
        _: &str,
        _: &Conversation,
        _: Option<u64>,
        _: u64,
    ) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("timed out".into()))
    }
    async fn delete(&self, _: &str, _: u64) -> Result<bool, StoreError> {
        Err(StoreError::Unavailable("timed out".into()))
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("timed out".into()))
    }
}

/// A store where another writer always got there first.
#[derive(Default)]
struct BusyStore {
    saves: Mutex<u32>,
}

#[async_trait]
impl ConversationStore for BusyStore {
    async fn load(&self, _: &str, _: u64) -> Result<Option<Conversation>, StoreError> {
        Ok(None)
    }
    async fn save(
        &self,
        _: &str,
        _: &Conversation,
        _: Option<u64>,
        _: u64,
    ) -> Result<(), StoreError> {
        *self.saves.lock().unwrap() += 1;
        Err(StoreError::Conflict)
    }
    async fn delete(&self, _: &str, _: u64) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// JSON log lines written while the returned guard lives (on this thread: `#[tokio::test]`
/// runs on one thread).
fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buffer);
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || Sink(Arc::clone(&sink)))
        .finish();
    (buffer, tracing::subscriber::set_default(subscriber))
}

fn log_lines(buffer: &Mutex<Vec<u8>>) -> Vec<Value> {
    String::from_utf8(buffer.lock().unwrap().clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect()
}

#[tokio::test]
async fn a_panicking_handler_becomes_a_logged_500() {
    let (logs, _guard) = capture_logs();
    let app = app_over(Arc::new(PanickingStore), &[]);
    for reply in [
        get(&app, "/conversation/abc").await,
        delete(&app, "/conversation/abc").await,
        post(
            &app,
            "/classify-conversation",
            &json!({ "conversation_id": "abc", "message": HOT }),
        )
        .await,
    ] {
        assert_eq!(
            error_of(&reply, StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            "internal error"
        );
    }
    // The router still serves after the panics.
    assert_eq!(ok(get(&app, "/health").await)["status"], "ok");
    assert_eq!(tags(&classify(&app, HOT).await["selected"])[0], "Hot-buyer");

    let panics: Vec<String> = log_lines(&logs)
        .iter()
        .filter(|l| l["level"] == "ERROR" && l["fields"]["message"] == "handler panicked")
        .map(|l| l["fields"]["panic"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        panics,
        ["store exploded", "store exploded: 42", "store exploded"]
    );
}

#[tokio::test]
async fn each_request_is_logged_without_its_text() {
    let (logs, _guard) = capture_logs();
    let app = app();
    let secret = "I want to buy this right now, my card ends 4242, send me the checkout link";
    classify(&app, secret).await;
    get(&app, "/nowhere").await;
    let lines = log_lines(&logs);
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        !text.contains("4242"),
        "the message text was logged: {text}"
    );
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 2, "{text}");
    let fields = &requests[0]["fields"];
    assert_eq!(
        (
            &fields["method"],
            &fields["route"],
            &fields["status"],
            &fields["selected"]
        ),
        (
            &json!("POST"),
            &json!("/classify-message"),
            &json!(200),
            &json!("Hot-buyer")
        )
    );
    assert!(fields["latency_ms"].as_f64().unwrap() > 0.0);
    let fields = &requests[1]["fields"];
    assert_eq!(
        (&fields["route"], &fields["status"]),
        (&json!("unmatched"), &json!(404))
    );
}

#[tokio::test]
async fn an_unreachable_store_is_503_with_retry_after_and_single_messages_still_work() {
    let app = app_over(Arc::new(DownStore), &[]);
    let health = get(&app, "/health").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        health.json,
        json!({ "model_loaded": true, "store_reachable": false, "status": "degraded" })
    );
    for reply in [
        post(
            &app,
            "/classify-conversation",
            &json!({ "conversation_id": "c", "message": HOT }),
        )
        .await,
        get(&app, "/conversation/c").await,
        delete(&app, "/conversation/c").await,
    ] {
        let message = error_of(&reply, StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");
        assert!(message.contains("timed out"), "{message}");
        assert_eq!(reply.headers.get(RETRY_AFTER).unwrap(), "1");
    }
    assert_eq!(tags(&classify(&app, HOT).await["selected"])[0], "Hot-buyer");
    let batch = ok(post(&app, "/classify-batch", &json!({ "messages": [HOT] })).await);
    assert_eq!(batch["results"].as_array().unwrap().len(), 1);
    // Validation still comes first: a bad id is the caller's fault, not the store's.
    let reply = post(
        &app,
        "/classify-conversation",
        &json!({ "conversation_id": "", "message": HOT }),
    )
    .await;
    error_of(&reply, StatusCode::BAD_REQUEST, "invalid_conversation_id");
}

#[tokio::test]
async fn a_conversation_that_never_stops_changing_is_503_store_contention() {
    let store = Arc::new(BusyStore::default());
    let app = app_over(Arc::clone(&store) as Arc<dyn ConversationStore>, &[]);
    let reply = post(
        &app,
        "/classify-conversation",
        &json!({ "conversation_id": "busy", "message": HOT }),
    )
    .await;
    let message = error_of(&reply, StatusCode::SERVICE_UNAVAILABLE, "store_contention");
    assert!(message.contains("\"busy\""), "{message}");
    assert_eq!(reply.headers.get(RETRY_AFTER).unwrap(), "1");
    assert_eq!(
        *store.saves.lock().unwrap(),
        tagbeez::service::SAVE_ATTEMPTS,
        "every attempt tried to write"
    );
}
