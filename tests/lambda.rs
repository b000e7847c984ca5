//! `lambda::dispatch`, the function the Lambda binary runs for every event, with the real
//! embedded model: AWS's own example events (REST v1, HTTP API v2, Function URL) retargeted at
//! our routes, direct invocations by another Lambda, and events that are neither.
//!
//! The example events are read from the `aws_lambda_events` and `lambda_http` crates' sources
//! (located with `cargo metadata`), not copied into this repository.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use axum::Router;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use tagbeez::api;
use tagbeez::classifier::{embedded, Classifier};
use tagbeez::config::Config;
use tagbeez::lambda::dispatch;
use tagbeez::service::Tagger;
use tagbeez::store::MemoryStore;

const BUY: &str = "I want to buy this now, send me the checkout link";

static CLASSIFIER: LazyLock<Arc<Classifier>> = LazyLock::new(|| {
    Arc::new(Classifier::load(embedded::model_files()).expect("the embedded model loads"))
});

/// The router and tagger exactly as `lambda::run` builds them, over a fresh `MemoryStore`.
struct Function {
    router: Router,
    tagger: Tagger,
}

impl Function {
    fn new() -> Self {
        let config = Config::from_vars(HashMap::new()).expect("default config");
        let tagger = Tagger::new(
            Arc::clone(&CLASSIFIER),
            Arc::new(MemoryStore::new()),
            config,
        );
        Self {
            router: api::router(tagger.clone()),
            tagger,
        }
    }

    async fn invoke(&self, payload: Value) -> Value {
        let event = LambdaEvent::new(payload, Context::default());
        dispatch(&self.router, &self.tagger, event).await
    }
}

// ---------------------------------------------------------------------------------------------
// Example events from the crates' sources.

/// Manifest directories of `lambda_http` (our dependency) and of the `aws_lambda_events` that
/// `lambda_http` resolves to, from `cargo metadata`.
struct Sources {
    lambda_http: PathBuf,
    aws_lambda_events: PathBuf,
}

static SOURCES: LazyLock<Sources> = LazyLock::new(|| {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
    let root = meta["resolve"]["root"].as_str().expect("resolve.root");
    let lambda_http = resolved_dependency(&meta, root, "lambda_http");
    let aws_lambda_events = resolved_dependency(&meta, &lambda_http, "aws_lambda_events");
    Sources {
        lambda_http: manifest_dir(&meta, &lambda_http),
        aws_lambda_events: manifest_dir(&meta, &aws_lambda_events),
    }
});

/// The package id that `parent` resolves its dependency `name` to.
fn resolved_dependency(meta: &Value, parent: &str, name: &str) -> String {
    let node = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == parent)
        .unwrap_or_else(|| panic!("no resolve node for {parent}"));
    let deps: Vec<&str> = node["deps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["pkg"].as_str())
        .collect();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name && deps.contains(&p["id"].as_str().unwrap()))
        .and_then(|p| p["id"].as_str())
        .unwrap_or_else(|| panic!("{parent} does not depend on {name}"))
        .to_owned()
}

fn manifest_dir(meta: &Value, id: &str) -> PathBuf {
    let package = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap();
    Path::new(package["manifest_path"].as_str().unwrap())
        .parent()
        .unwrap()
        .to_owned()
}

fn load(path: PathBuf) -> Value {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An example event shipped in `aws_lambda_events/src/fixtures/`.
fn aws_fixture(name: &str) -> Value {
    load(SOURCES.aws_lambda_events.join("src/fixtures").join(name))
}

/// REST API (payload v1) example: `POST /hello/world`, stage `testStage`.
fn rest_v1_example() -> Value {
    aws_fixture("example-apigw-request.json")
}

/// HTTP API (payload v2) example: `GET /`, stage `$default`, no body.
fn http_v2_example() -> Value {
    aws_fixture("example-apigw-v2-request-no-authorizer.json")
}

/// Function URL example (`*.lambda-url.*.on.aws`, payload v2). `aws_lambda_events` ships none,
/// so this one comes from `lambda_http`'s own test data.
fn function_url_example() -> Value {
    load(
        SOURCES
            .lambda_http
            .join("tests/data/lambda_function_url_request.json"),
    )
}

/// Set a header, replacing any spelling of the same name (header names ignore case).
fn set_header(headers: &mut Value, name: &str, value: Value) {
    let map = headers.as_object_mut().expect("a header object");
    map.retain(|k, _| !k.eq_ignore_ascii_case(name));
    map.insert(name.to_owned(), value);
}

/// The JSON request body, its content-type, and a consistent content-length if the example
/// had one.
fn set_body(event: &mut Value, body: Option<&str>, multi_value: bool) {
    let mut header_sets = vec!["headers"];
    if multi_value {
        header_sets.push("multiValueHeaders");
    }
    for set in header_sets {
        let had_length = event[set]
            .as_object()
            .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("content-length")));
        let wrap = |v: String| {
            if multi_value && set == "multiValueHeaders" {
                json!([v])
            } else {
                json!(v)
            }
        };
        if body.is_some() {
            set_header(
                &mut event[set],
                "content-type",
                wrap("application/json".into()),
            );
        }
        if had_length {
            let len = body.map_or(0, str::len).to_string();
            set_header(&mut event[set], "content-length", wrap(len));
        }
    }
    event["body"] = body.map_or(Value::Null, |b| json!(b));
    event["isBase64Encoded"] = json!(false);
}

/// An HTTP API v2 / Function URL example retargeted at `method raw_path`.
fn v2_event(mut event: Value, method: &str, raw_path: &str, body: Option<&str>) -> Value {
    event["rawPath"] = json!(raw_path);
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(raw_path);
    set_body(&mut event, body, false);
    event
}

/// A REST API v1 example retargeted at `method path` (a resource without path parameters).
fn v1_event(mut event: Value, method: &str, path: &str, body: Option<&str>) -> Value {
    event["httpMethod"] = json!(method);
    event["path"] = json!(path);
    event["resource"] = json!(path);
    event["pathParameters"] = Value::Null;
    event["requestContext"]["httpMethod"] = json!(method);
    event["requestContext"]["path"] = json!(path);
    event["requestContext"]["resourcePath"] = json!(path);
    set_body(&mut event, body, true);
    event
}

fn buy_body() -> String {
    json!({ "message": BUY }).to_string()
}

#[derive(Clone, Copy, Debug)]
enum Origin {
    /// REST API: headers in `multiValueHeaders`.
    RestV1,
    /// HTTP API and Function URL: single-value `headers` and `cookies`.
    HttpV2,
}

/// Check the Lambda response shape API Gateway expects for `origin`; return the parsed body.
fn http_response(response: &Value, origin: Origin, status: u16) -> Value {
    assert_eq!(
        response["statusCode"],
        json!(status),
        "{origin:?}: {response:#}"
    );
    assert_eq!(response["isBase64Encoded"], json!(false), "{response:#}");
    match origin {
        Origin::RestV1 => {
            assert_eq!(
                response["multiValueHeaders"]["content-type"],
                json!(["application/json"]),
                "{response:#}"
            );
        }
        Origin::HttpV2 => {
            assert_eq!(
                response["headers"]["content-type"],
                json!("application/json"),
                "{response:#}"
            );
            assert!(response["cookies"].is_array(), "{response:#}");
        }
    }
    let body = response["body"].as_str().expect("a text body");
    serde_json::from_str(body).expect("a JSON body")
}

fn selected_tags(result: &Value) -> Vec<&str> {
    result["selected"]
        .as_array()
        .unwrap_or_else(|| panic!("no selected in {result:#}"))
        .iter()
        .map(|s| s["tag"].as_str().unwrap())
        .collect()
}

fn assert_hot_buyer(result: &Value) {
    assert!(
        selected_tags(result).contains(&"Hot-buyer"),
        "{BUY:?} -> {result:#}"
    );
    let all = result["all"].as_array().expect("all");
    assert_eq!(all.len(), CLASSIFIER.labels().tags.len());
    assert_eq!(result["truncated"], json!(false));
}

/// `{"error": {"status", "code", "message"}}` with the given status and code.
fn assert_error(value: &Value, status: u16, code: &str) {
    let error = &value["error"];
    assert_eq!(
        (&error["status"], &error["code"]),
        (&json!(status), &json!(code)),
        "{value:#}"
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{value:#}"
    );
    assert_eq!(value.as_object().unwrap().len(), 1, "{value:#}");
}

// ---------------------------------------------------------------------------------------------
// 1. API Gateway and Function URL events.

#[tokio::test]
async fn rest_api_v1_example_event_reaches_classify_message() {
    let f = Function::new();
    let example = rest_v1_example();
    // The example's stage ("testStage") is not in its path: lambda_http adds it, we strip it.
    assert_eq!(example["requestContext"]["stage"], json!("testStage"));
    let event = v1_event(example, "POST", "/classify-message", Some(&buy_body()));
    let response = f.invoke(event).await;
    assert_eq!(response["headers"], json!({}), "{response:#}");
    let body = http_response(&response, Origin::RestV1, 200);
    assert_hot_buyer(&body);
}

#[tokio::test]
async fn http_api_v2_example_event_reaches_classify_message() {
    let f = Function::new();
    let event = v2_event(
        http_v2_example(),
        "POST",
        "/classify-message",
        Some(&buy_body()),
    );
    let response = f.invoke(event).await;
    assert_eq!(response["cookies"], json!([]), "{response:#}");
    let body = http_response(&response, Origin::HttpV2, 200);
    assert_hot_buyer(&body);
}

#[tokio::test]
async fn function_url_example_event_reaches_classify_message() {
    let f = Function::new();
    let example = function_url_example();
    assert!(example["requestContext"]["domainName"]
        .as_str()
        .unwrap()
        .contains(".lambda-url."));
    let event = v2_event(example, "POST", "/classify-message", Some(&buy_body()));
    let response = f.invoke(event).await;
    let body = http_response(&response, Origin::HttpV2, 200);
    assert_hot_buyer(&body);
}

#[tokio::test]
async fn the_http_body_equals_the_direct_invocation_result() {
    let f = Function::new();
    let event = v2_event(
        http_v2_example(),
        "POST",
        "/classify-message",
        Some(&buy_body()),
    );
    let via_http = http_response(&f.invoke(event).await, Origin::HttpV2, 200);
    let direct = f
        .invoke(json!({"operation": "classify-message", "message": BUY}))
        .await;
    assert_eq!(via_http, direct);
}

#[tokio::test]
async fn rest_api_v1_path_with_the_stage_reaches_the_route() {
    let f = Function::new();
    let mut event = v1_event(
        rest_v1_example(),
        "POST",
        "/prod/classify-message",
        Some(&buy_body()),
    );
    event["requestContext"]["stage"] = json!("prod");
    event["resource"] = json!("/classify-message");
    event["requestContext"]["resourcePath"] = json!("/classify-message");
    let body = http_response(&f.invoke(event).await, Origin::RestV1, 200);
    assert_hot_buyer(&body);
}

#[tokio::test]
async fn http_api_v2_raw_path_with_the_stage_reaches_the_route() {
    let f = Function::new();
    let mut event = v2_event(
        http_v2_example(),
        "POST",
        "/prod/classify-message",
        Some(&buy_body()),
    );
    event["requestContext"]["stage"] = json!("prod");
    let body = http_response(&f.invoke(event).await, Origin::HttpV2, 200);
    assert_hot_buyer(&body);
}

#[tokio::test]
async fn a_stage_prefixed_get_reaches_a_parameterised_route() {
    // GET /prod/conversation/{id} with stage "prod": the route matches (404 for an unknown
    // conversation, not the router's "no route" 404).
    let f = Function::new();
    let mut event = v2_event(
        http_v2_example(),
        "GET",
        "/prod/conversation/nobody-here",
        None,
    );
    event["requestContext"]["stage"] = json!("prod");
    let body = http_response(&f.invoke(event).await, Origin::HttpV2, 404);
    assert_error(&body, 404, "conversation_not_found");
}

#[tokio::test]
async fn an_empty_message_over_http_is_a_400_with_the_json_error() {
    let f = Function::new();
    let empty = json!({"message": ""}).to_string();
    let v2 = v2_event(http_v2_example(), "POST", "/classify-message", Some(&empty));
    let body = http_response(&f.invoke(v2).await, Origin::HttpV2, 400);
    assert_error(&body, 400, "empty_message");

    let v1 = v1_event(rest_v1_example(), "POST", "/classify-message", Some(&empty));
    let body = http_response(&f.invoke(v1).await, Origin::RestV1, 400);
    assert_error(&body, 400, "empty_message");
}

#[tokio::test]
async fn an_unknown_path_over_http_is_a_404_with_the_json_error() {
    let f = Function::new();
    let v2 = v2_event(http_v2_example(), "GET", "/no-such-route", None);
    let body = http_response(&f.invoke(v2).await, Origin::HttpV2, 404);
    assert_error(&body, 404, "not_found");

    let url = v2_event(function_url_example(), "GET", "/no-such-route", None);
    let body = http_response(&f.invoke(url).await, Origin::HttpV2, 404);
    assert_error(&body, 404, "not_found");

    let v1 = v1_event(rest_v1_example(), "GET", "/no-such-route", None);
    let body = http_response(&f.invoke(v1).await, Origin::RestV1, 404);
    assert_error(&body, 404, "not_found");
}

#[tokio::test]
async fn the_unmodified_examples_are_http_events_not_direct_invocations() {
    // As AWS sends them (GET /, POST /hello/world with a non-matching body): answered by the
    // router, never as an `invalid_event` direct invocation.
    let f = Function::new();
    let info = http_response(&f.invoke(http_v2_example()).await, Origin::HttpV2, 200);
    assert_eq!(info["service"], json!("tagbeez"));
    let body = http_response(&f.invoke(rest_v1_example()).await, Origin::RestV1, 404);
    assert_error(&body, 404, "not_found");
    let body = http_response(&f.invoke(function_url_example()).await, Origin::HttpV2, 404);
    assert_error(&body, 404, "not_found");
}

// ---------------------------------------------------------------------------------------------
// 2. Direct invocation.

#[tokio::test]
async fn direct_classify_message_returns_the_routes_body() {
    let f = Function::new();
    let result = f
        .invoke(json!({"operation": "classify-message", "message": BUY}))
        .await;
    assert_hot_buyer(&result);
    assert_eq!(
        result["model_version"],
        json!(CLASSIFIER.labels().file.model_version)
    );
    // The thresholds as the HTTP route writes them (0.72, not the f64 widening 0.7200000286...).
    let labels = CLASSIFIER.labels();
    let thresholds: std::collections::BTreeMap<&str, f32> = labels
        .tags
        .iter()
        .map(String::as_str)
        .zip(labels.thresholds.iter().copied())
        .collect();
    assert_eq!(
        result["thresholds"].to_string(),
        serde_json::to_string(&thresholds).unwrap()
    );
}

#[tokio::test]
async fn direct_classify_batch_returns_one_result_per_message_in_order() {
    let f = Function::new();
    let result = f
        .invoke(json!({
            "operation": "classify-batch",
            "messages": [BUY, "just browsing, thanks", BUY],
        }))
        .await;
    let results = result["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{result:#}"));
    assert_eq!(results.len(), 3);
    assert_hot_buyer(&results[0]);
    assert_eq!(selected_tags(&results[0]), selected_tags(&results[2]));
    assert!(
        !selected_tags(&results[1]).contains(&"Hot-buyer"),
        "{result:#}"
    );
}

#[tokio::test]
async fn direct_conversation_lifecycle() {
    let f = Function::new();
    let id = "chat-42";
    let first = f
        .invoke(json!({"operation": "classify-conversation", "conversation_id": id, "message": "hi, just looking around"}))
        .await;
    assert_eq!(first["conversation_id"], json!(id), "{first:#}");
    assert_eq!(first["window_size"], json!(1));
    assert_eq!(first["previous_tag"], Value::Null);

    let second = f
        .invoke(
            json!({"operation": "classify-conversation", "conversation_id": id, "message": BUY}),
        )
        .await;
    assert_eq!(second["window_size"], json!(2), "{second:#}");
    assert_eq!(second["evidence"].as_array().unwrap().len(), 2);
    assert_hot_buyer(&second["message_result"]);

    let view = f
        .invoke(json!({"operation": "get-conversation", "conversation_id": id}))
        .await;
    assert_eq!(view["conversation_id"], json!(id), "{view:#}");
    assert_eq!(view["window_size"], json!(2));
    assert_eq!(view["window"].as_array().unwrap().len(), 2);
    assert_eq!(view["version"], json!(2));
    assert_eq!(view["conversation_tag"], second["conversation_tag"]);

    let cleared = f
        .invoke(json!({"operation": "clear-conversation", "conversation_id": id}))
        .await;
    assert_eq!(cleared, json!({"conversation_id": id, "cleared": true}));

    let gone = f
        .invoke(json!({"operation": "get-conversation", "conversation_id": id}))
        .await;
    assert_error(&gone, 404, "conversation_not_found");
    let cleared_again = f
        .invoke(json!({"operation": "clear-conversation", "conversation_id": id}))
        .await;
    assert_error(&cleared_again, 404, "conversation_not_found");
}

#[tokio::test]
async fn bad_direct_invocations_are_error_objects() {
    let f = Function::new();
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"operation": "explode", "message": BUY}),
            400,
            "invalid_event",
        ),
        (json!({"message": BUY}), 400, "invalid_event"),
        (
            json!({"operation": "classify-message", "message": BUY, "urgent": true}),
            400,
            "invalid_event",
        ),
        (
            json!({"operation": "get-conversation", "conversation_id": "c1", "message": BUY}),
            400,
            "invalid_event",
        ),
        (
            json!({"operation": "classify-message"}),
            400,
            "invalid_event",
        ),
        (
            json!({"operation": "classify-message", "message": 5}),
            400,
            "invalid_event",
        ),
        (
            json!({"operation": "Classify-Message", "message": BUY}),
            400,
            "invalid_event",
        ),
        (
            json!({"operation": "classify-message", "message": ""}),
            400,
            "empty_message",
        ),
        (
            json!({"operation": "classify-message", "message": " \n\t "}),
            400,
            "empty_message",
        ),
        (
            json!({"operation": "classify-message", "message": "x".repeat(5_001)}),
            400,
            "message_too_long",
        ),
        (
            json!({"operation": "classify-conversation", "conversation_id": "not ok!", "message": BUY}),
            400,
            "invalid_conversation_id",
        ),
        (
            json!({"operation": "get-conversation", "conversation_id": ""}),
            400,
            "invalid_conversation_id",
        ),
        (
            json!({"operation": "clear-conversation", "conversation_id": "a/b"}),
            400,
            "invalid_conversation_id",
        ),
        (
            json!({"operation": "classify-batch", "messages": vec![BUY; 65]}),
            400,
            "batch_too_large",
        ),
        (
            json!({"operation": "classify-batch", "messages": []}),
            400,
            "empty_batch",
        ),
        (
            json!({"operation": "classify-batch", "messages": [BUY, ""]}),
            400,
            "empty_message",
        ),
    ];
    for (event, status, code) in cases {
        let response = f.invoke(event.clone()).await;
        assert!(response.get("error").is_some(), "{event} -> {response:#}");
        assert_error(&response, status, code);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Events that are neither.

#[tokio::test]
async fn malformed_events_are_invalid_event_errors() {
    let f = Function::new();
    let events = [
        json!([]),
        json!([{"operation": "classify-message", "message": BUY}]),
        json!("classify-message"),
        json!(null),
        json!(42),
        json!(true),
        json!({}),
        json!({"requestContext": 5}),
        json!({"requestContext": {}}),
        json!({"requestContext": null}),
        json!({"httpMethod": 5}),
    ];
    for event in events {
        let response = f.invoke(event.clone()).await;
        assert_error(&response, 400, "invalid_event");
        let message = response["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("not a valid"), "{event} -> {message}");
    }
}
