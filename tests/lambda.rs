//! `lambda::dispatch`, the function the Lambda binary runs for every event, with the real
//! embedded model: AWS's own example events (REST v1, HTTP API v2, Function URL) retargeted at
//! our routes, direct invocations by another Lambda, and events that are neither.
//!
//! The example events are read from the `aws_lambda_events` and `lambda_http` crates' sources
//! (located with `cargo metadata`, see `support/events.rs`), not copied into this repository.

#[path = "support/events.rs"]
mod events;

use std::collections::HashMap;
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

use events::*;

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

    /// The answer, or the function error as `{"errorType", "errorMessage"}`.
    async fn invoke(&self, payload: Value) -> Value {
        let event = LambdaEvent::new(payload, Context::default());
        dispatch(&self.router, &self.tagger, event)
            .await
            .unwrap_or_else(|d| function_error(&d))
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers over the example events (`support/events.rs`).

fn buy_body() -> String {
    json!({ "message": BUY }).to_string()
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
async fn explain_and_thresholds_are_the_same_over_http_and_direct_invocation() {
    let f = Function::new();
    let options = json!({"explain": true, "thresholds": {"Hot-buyer": 0.99, "Deal-seeker": 0}});
    let mut body = options.clone();
    body["message"] = json!(BUY);
    for (route, operation) in [
        ("/classify-message", "classify-message"),
        ("/classify-conversation", "classify-conversation"),
    ] {
        let mut body = body.clone();
        if operation == "classify-conversation" {
            body["conversation_id"] = json!(format!("options-{}", route.len()));
        }
        let event = v2_event(http_v2_example(), "POST", route, Some(&body.to_string()));
        let via_http = http_response(&f.invoke(event).await, Origin::HttpV2, 200);
        let mut direct_body = body.clone();
        direct_body["operation"] = json!(operation);
        if let Some(id) = direct_body.get_mut("conversation_id") {
            *id = json!(format!("{}-direct", id.as_str().unwrap()));
        }
        let direct = f.invoke(direct_body).await;
        let (h, d) = match operation {
            "classify-message" => (via_http, direct),
            _ => (
                via_http["message_result"].clone(),
                direct["message_result"].clone(),
            ),
        };
        assert_eq!(h, d, "{operation}");
        assert_eq!(h["thresholds"]["Deal-seeker"], json!(0.0), "{h:#}");
        assert!(
            selected_tags(&h).contains(&"Deal-seeker"),
            "a threshold of 0 selects: {h:#}"
        );
        assert!(h["explanation"]["tags"].is_array(), "{h:#}");
    }
    let refused = f
        .invoke(
            json!({"operation": "classify-batch", "messages": [BUY], "thresholds": {"Nope": 0.5}}),
        )
        .await;
    assert_function_error(&refused, "unknown_tag");
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
    assert_eq!(
        cleared,
        json!({"conversation_id": id, "cleared": true, "message": format!("Conversation {id} cleared")})
    );

    let gone = f
        .invoke(json!({"operation": "get-conversation", "conversation_id": id}))
        .await;
    assert_function_error(&gone, "conversation_not_found");
    let cleared_again = f
        .invoke(json!({"operation": "clear-conversation", "conversation_id": id}))
        .await;
    assert_eq!(cleared_again["cleared"], json!(false), "{cleared_again}");
}

#[tokio::test]
async fn bad_direct_invocations_are_function_errors_named_by_their_code() {
    let f = Function::new();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"operation": "explode", "message": BUY}),
            "invalid_event",
        ),
        (json!({"message": BUY}), "invalid_event"),
        (
            json!({"operation": "classify-message", "message": BUY, "urgent": true}),
            "invalid_event",
        ),
        (
            json!({"operation": "get-conversation", "conversation_id": "c1", "message": BUY}),
            "invalid_event",
        ),
        (json!({"operation": "classify-message"}), "invalid_event"),
        (
            json!({"operation": "classify-message", "message": 5}),
            "invalid_event",
        ),
        (
            json!({"operation": "Classify-Message", "message": BUY}),
            "invalid_event",
        ),
        (
            json!({"operation": "classify-message", "message": ""}),
            "empty_message",
        ),
        (
            json!({"operation": "classify-message", "message": " \n\t "}),
            "empty_message",
        ),
        (
            json!({"operation": "classify-message", "message": "x".repeat(5_001)}),
            "message_too_long",
        ),
        (
            json!({"operation": "classify-conversation", "conversation_id": "not ok!", "message": BUY}),
            "invalid_conversation_id",
        ),
        (
            json!({"operation": "get-conversation", "conversation_id": ""}),
            "invalid_conversation_id",
        ),
        (
            json!({"operation": "clear-conversation", "conversation_id": "a/b"}),
            "invalid_conversation_id",
        ),
        (
            json!({"operation": "classify-batch", "messages": vec![BUY; 65]}),
            "batch_too_large",
        ),
        (
            json!({"operation": "classify-batch", "messages": []}),
            "empty_batch",
        ),
        (
            json!({"operation": "classify-batch", "messages": [BUY, ""]}),
            "empty_message",
        ),
    ];
    for (event, code) in cases {
        let response = f.invoke(event.clone()).await;
        assert!(
            response.get("errorType").is_some(),
            "{event} -> {response:#}"
        );
        assert_function_error(&response, code);
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
        assert_function_error(&response, "invalid_event");
        let message = response["errorMessage"].as_str().unwrap();
        assert!(message.starts_with("not a valid"), "{event} -> {message}");
    }
}
