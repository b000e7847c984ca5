//! `POST /feedback` and the `feedback` direct operation: validation against the model's tags,
//! the in-memory store, the DynamoDB feedback table on a real DynamoDB-compatible server
//! (moto, on loopback), and `tagbeez export-feedback`'s JSON lines.

#[path = "support/dynamodb.rs"]
mod dynamodb;
#[path = "support/router.rs"]
mod router;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::http::StatusCode;
use serde_json::{json, Value};
use tagbeez::api;
use tagbeez::cli::export_to;
use tagbeez::feedback::FeedbackRecord;
use tagbeez::service::Tagger;
use tagbeez::store::{DynamoFeedback, FeedbackStore, MemoryStore};

use dynamodb::Moto;
use router::*;

const TABLE: &str = "tagbeez-feedback";

fn tagger_with(feedback: Arc<dyn FeedbackStore>, vars: &[(&str, &str)]) -> Tagger {
    Tagger::new(
        Arc::clone(&CLASSIFIER),
        Arc::new(MemoryStore::new()),
        config(vars),
    )
    .with_feedback(feedback)
}

async fn exported(store: &dyn FeedbackStore) -> Vec<Value> {
    let mut out = Vec::new();
    export_to(store, &mut out).await.expect("export");
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[tokio::test]
async fn a_correction_is_stored_and_exported_as_the_pipeline_reads_it() {
    let tagger = tagger_with(Arc::new(tagbeez::store::MemoryFeedback::default()), &[]);
    let app = api::router(tagger.clone());
    let reply = post(
        &app,
        "/feedback",
        &json!({
            "message": "  any coupon for these boots?  ",
            "tags": ["Deal-seeker"],
            "predicted": ["Window-shopper"],
            "conversation_id": "c-9",
            "message_id": "m-1",
            "source": "agent",
        }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    let receipt = reply.json;
    let id = receipt["feedback_id"].as_str().unwrap().to_owned();
    assert_eq!(uuid_version(&id), Some(4), "{id}");
    assert_eq!(receipt["stored"], json!(true));
    assert_eq!(receipt["tags"], json!(["Deal-seeker"]));
    let version = CLASSIFIER.labels().file.model_version.clone();
    assert_eq!(receipt["model_version"], json!(version));
    // No tag applies: an empty list is a valid correction; the optional fields may be absent.
    let none = post(
        &app,
        "/feedback",
        &json!({"message": "where is my parcel", "tags": []}),
    )
    .await;
    assert_eq!(none.status, StatusCode::CREATED, "{}", none.json);

    let lines = exported(tagger.feedback_store()).await;
    assert_eq!(lines.len(), 2);
    let first = lines
        .iter()
        .find(|l| l["feedback_id"] == json!(id))
        .unwrap();
    assert_eq!(
        first,
        &json!({
            "feedback_id": id,
            "message": "any coupon for these boots?",
            "tags": ["Deal-seeker"],
            "predicted": ["Window-shopper"],
            "model_version": version,
            "conversation_id": "c-9",
            "message_id": "m-1",
            "source": "agent",
            "received_at": receipt["received_at"],
        })
    );
    let second = lines
        .iter()
        .find(|l| l["feedback_id"] != json!(id))
        .unwrap();
    assert_eq!(second["predicted"], Value::Null);
    assert_eq!(second["tags"], json!([]));
}

fn uuid_version(id: &str) -> Option<u8> {
    let parts: Vec<&str> = id.split('-').collect();
    (parts.len() == 5 && id.len() == 36)
        .then(|| parts[2].chars().next()?.to_digit(16).map(|d| d as u8))
        .flatten()
}

#[tokio::test]
async fn bad_corrections_are_400s_that_say_what_was_wrong() {
    let feedback = Arc::new(tagbeez::store::MemoryFeedback::default());
    let tagger = tagger_with(feedback.clone(), &[("MAX_MESSAGE_CHARS", "50")]);
    let app = api::router(tagger.clone());
    let good = json!({"message": "cheap?", "tags": ["Deal-seeker"]});
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    let unknown = post(
        &app,
        "/feedback",
        &with("tags", json!(["Deal-seeker", "Bargain-hunter"])),
    )
    .await;
    let message = error_of(&unknown, StatusCode::BAD_REQUEST, "unknown_tag");
    assert!(
        message.contains("tags[1]") && message.contains("Bargain-hunter"),
        "{message}"
    );
    for tag in &CLASSIFIER.labels().tags {
        assert!(
            message.contains(tag.as_str()),
            "lists the known tags: {message}"
        );
    }
    let predicted = post(&app, "/feedback", &with("predicted", json!(["hot-buyer"]))).await;
    assert!(error_of(&predicted, StatusCode::BAD_REQUEST, "unknown_tag").contains("predicted[0]"));
    for (body, code) in [
        (
            with("tags", json!(["Deal-seeker", "Deal-seeker"])),
            "repeated_tag",
        ),
        (with("message", json!("   ")), "empty_message"),
        (with("message", json!("x".repeat(51))), "message_too_long"),
        (
            with("conversation_id", json!("has space")),
            "invalid_conversation_id",
        ),
        (with("message_id", json!("")), "invalid_message_id"),
        (with("source", json!("agent smith")), "invalid_source"),
        (with("source", json!("a".repeat(65))), "invalid_source"),
        (with("tags", json!("Deal-seeker")), "invalid_request"),
        (with("rating", json!(5)), "invalid_request"),
        (json!({"message": "no tags"}), "invalid_request"),
    ] {
        let reply = post(&app, "/feedback", &body).await;
        error_of(&reply, StatusCode::BAD_REQUEST, code);
    }
    let raw = post_raw(
        &app,
        "/feedback",
        Some("application/json"),
        "{\"message\": ",
    )
    .await;
    error_of(&raw, StatusCode::BAD_REQUEST, "invalid_json");
    assert!(
        exported(feedback.as_ref()).await.is_empty(),
        "nothing refused is stored"
    );
}

#[tokio::test]
async fn direct_invocation_takes_the_same_feedback_with_the_same_refusals() {
    let tagger = tagger_with(Arc::new(tagbeez::store::MemoryFeedback::default()), &[]);
    let invoke = |payload: Value| invoke(&tagger, payload);
    let receipt = invoke(json!({"operation": "feedback", "message": "is this on sale", "tags": ["Deal-seeker"], "source": "bot"})).await;
    assert_eq!(receipt["stored"], json!(true), "{receipt}");
    let refused = invoke(json!({"operation": "feedback", "message": "hi", "tags": ["Nope"]})).await;
    assert_eq!(refused["errorType"], "unknown_tag", "{refused}");
    assert_eq!(exported(tagger.feedback_store()).await.len(), 1);
}

#[tokio::test]
async fn the_dynamodb_feedback_table_keeps_every_field_with_a_ttl() {
    let mut moto = Moto::start();
    dynamodb::create_keyed_table(&moto.client(), TABLE, "feedback_id").await;
    let settings = dynamodb::settings(
        TABLE,
        &moto.endpoint(),
        Duration::from_secs(1),
        Duration::from_secs(3),
    );
    let store = Arc::new(DynamoFeedback::connect(&settings).await);
    let tagger = tagger_with(store.clone(), &[("FEEDBACK_TTL_DAYS", "30")]);
    let app = api::router(tagger);
    let mut ids = Vec::new();
    for i in 0..25 {
        let body = json!({
            "message": format!("do you have a discount code {i}"),
            "tags": if i % 2 == 0 { json!(["Deal-seeker"]) } else { json!([]) },
            "predicted": if i % 3 == 0 { json!(["Deal-seeker", "Hot-buyer"]) } else { Value::Null },
            "source": "agent",
        });
        let reply = post(&app, "/feedback", &body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
        ids.push(reply.json["feedback_id"].as_str().unwrap().to_owned());
    }
    // The raw item: native attributes, and the TTL attribute FEEDBACK_TTL_DAYS after receipt.
    let item = moto
        .client()
        .get_item()
        .table_name(TABLE)
        .key("feedback_id", AttributeValue::S(ids[0].clone()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the item");
    let n = |k: &str| item[k].as_n().unwrap().parse::<u64>().unwrap();
    assert_eq!(n("expires_at") - n("received_at"), 30 * 86_400);
    assert_eq!(
        item["tags"],
        AttributeValue::L(vec![AttributeValue::S("Deal-seeker".into())])
    );
    assert_eq!(
        item["message"],
        AttributeValue::S("do you have a discount code 0".into())
    );
    assert!(!item.contains_key("conversation_id"));

    // Everything comes back out, through the store and through the binary.
    let lines = exported(store.as_ref()).await;
    let mut found: Vec<String> = lines
        .iter()
        .map(|l| l["feedback_id"].as_str().unwrap().to_owned())
        .collect();
    found.sort();
    ids.sort();
    assert_eq!(found, ids);
    let records: Vec<FeedbackRecord> = lines
        .into_iter()
        .map(|l| serde_json::from_value(l).unwrap())
        .collect();
    assert!(records
        .iter()
        .any(|r| r.predicted.as_deref()
            == Some(&["Deal-seeker".to_owned(), "Hot-buyer".to_owned()][..])));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tagbeez"))
        .arg("export-feedback")
        .envs(dynamodb::AWS_ENV.iter().copied())
        .env("FEEDBACK_TABLE_NAME", TABLE)
        .env("DYNAMODB_ENDPOINT", moto.endpoint())
        .env("METRICS", "off")
        .output()
        .expect("run tagbeez export-feedback");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 25);
    for line in stdout.lines() {
        let record: FeedbackRecord = serde_json::from_str(line).expect("an export line");
        assert!(ids.contains(&record.feedback_id));
    }
    moto.stop();
}

#[tokio::test]
async fn export_without_a_table_says_what_to_set() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tagbeez"))
        .arg("export-feedback")
        .env_remove("FEEDBACK_TABLE_NAME")
        .env("METRICS", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FEEDBACK_TABLE_NAME"));
}

#[tokio::test]
async fn a_down_feedback_table_is_a_503_within_the_deadline_not_a_hang() {
    // Nothing listens on this port: every call fails at once with a connection error.
    let port = dynamodb::free_port();
    let settings = dynamodb::settings(
        TABLE,
        &format!("http://127.0.0.1:{port}"),
        Duration::from_millis(200),
        Duration::from_millis(500),
    );
    dynamodb::use_test_credentials();
    let store = Arc::new(DynamoFeedback::connect(&settings).await);
    let app = api::router(tagger_with(store, &[("STORE_DEADLINE_MS", "1000")]));
    let started = std::time::Instant::now();
    let reply = post(
        &app,
        "/feedback",
        &json!({"message": "cheap?", "tags": ["Deal-seeker"]}),
    )
    .await;
    error_of(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "feedback_unavailable",
    );
    assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Classification does not depend on the feedback table.
    ok(post(&app, "/classify-message", &json!({ "message": HOT })).await);
}
