//! The HTTP API end to end: the axum router over the real embedded model and the in-memory
//! store, driven through `tower::ServiceExt::oneshot` (no socket). Every route's happy path,
//! a panicking handler, and a failing or contended store. Refusals are in `api_errors.rs`,
//! the reference system's conversation demo in `conversation_demo.rs`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::http::header::RETRY_AFTER;
use axum::http::StatusCode;
use serde_json::{json, Value};
use tagbeez::api;
use tagbeez::classifier::{Cpu, FormChoice, Selection};
use tagbeez::conversation::Conversation;
use tagbeez::store::{ConversationStore, StoreError};

#[path = "support/router.rs"]
mod router;
use router::*;

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
    // The lowest of the label file's thresholds (the reference system's single `threshold`).
    assert_eq!(num(&result["threshold"]), lowest_threshold());
    assert_eq!(result["thresholds"].as_object().unwrap().len(), 5);
    assert_eq!(
        num(&result["thresholds"]["Deal-seeker"]),
        threshold_of("Deal-seeker")
    );
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
                "duplicate",
                "evidence",
                "message_result",
                "previous_tag",
                "switched",
                "threshold",
                "window_size"
            ]
        );
        assert_eq!(reply["conversation_id"], id);
        assert_eq!(num(&reply["threshold"]), lowest_threshold());
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
    assert_eq!(
        ok(delete(&app, "/conversation/never-seen").await)["cleared"],
        false
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
        json!({ "conversation_id": "c-1", "cleared": true, "message": "Conversation c-1 cleared" })
    );
    // Clearing again is not an error (the reference service answers 200 too).
    let again = ok(delete(&app, "/conversation/c-1").await);
    assert_eq!(
        again,
        json!({ "conversation_id": "c-1", "cleared": false, "message": "Conversation c-1 not found" })
    );
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
        json!({ "model_loaded": true, "store_reachable": true, "status": "healthy" })
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
    assert_eq!(api::ROUTES.len(), 16);
    // The reference service's fields, beside the new ones.
    assert_eq!(info["model_loaded"], true);
    let endpoints = tags_of_strings(&info["endpoints"]);
    for path in ["/classify-message", "/classify-conversation", "/health"] {
        assert!(endpoints.iter().any(|e| e == path), "{endpoints:?}");
    }
    assert_eq!(endpoints.len(), 13, "each path once: {endpoints:?}");
    // The execution form this CPU calls for, and why.
    let chosen = Selection::choose(FormChoice::Auto, Cpu::detect());
    assert_eq!(info["inference"]["form"], chosen.form.as_str());
    assert_eq!(info["inference"]["reason"], chosen.reason.as_str());
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
    assert_eq!(ok(get(&app, "/health").await)["status"], "healthy");
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
