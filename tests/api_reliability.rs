//! Reliability through the real router and model (in-memory store):
//!
//! - idempotent conversation writes: a retried `message_id` is answered with its first result,
//!   appends nothing and says `duplicate: true`, over HTTP and direct invocation, also after
//!   the message has left the window; bad ids are 400s that write nothing;
//! - back-pressure: with one inference slot and a one-place queue, a burst gets 503
//!   `overloaded` with `Retry-After` at once instead of queueing; with the limit off, none.
//!
//! The same guarantees against DynamoDB: tests/dynamo_store.rs (50 concurrent copies) and
//! tests/dynamo_fault_proxy.rs (under injected faults).

#[path = "support/router.rs"]
mod router;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header::RETRY_AFTER;
use axum::http::StatusCode;
use router::*;
use serde_json::{json, Value};
use tagbeez::service::Tagger;
use tagbeez::store::MemoryStore;

async fn converse(app: &axum::Router, id: &str, message: &str, message_id: Option<&str>) -> Reply {
    let mut body = json!({ "conversation_id": id, "message": message });
    if let Some(mid) = message_id {
        body["message_id"] = json!(mid);
    }
    post(app, "/classify-conversation", &body).await
}

#[tokio::test]
async fn a_retried_message_id_is_answered_once_and_appends_nothing() {
    let app = app();
    let first = ok(converse(&app, "c1", FIRST_TIME, Some("m-1")).await);
    assert_eq!(
        (&first["duplicate"], &first["message_id"]),
        (&json!(false), &json!("m-1"))
    );
    let hot = ok(converse(&app, "c1", HOT, Some("m-2")).await);
    assert_eq!(
        (&hot["duplicate"], &hot["window_size"]),
        (&json!(false), &json!(2))
    );

    let retry = ok(converse(&app, "c1", HOT, Some("m-2")).await);
    assert_eq!(retry["duplicate"], true);
    assert_eq!(retry["message_id"], "m-2");
    assert_eq!(retry["message_result"], hot["message_result"]);
    assert_eq!(retry["conversation_tag"], hot["conversation_tag"]);
    assert_eq!(retry["window_size"], 2);
    // The first answer's view of the switch, replayed from the window entry.
    assert_eq!(retry["switched"], hot["switched"]);
    assert_eq!(retry["previous_tag"], hot["previous_tag"]);
    let view = ok(get(&app, "/conversation/c1").await);
    assert_eq!(
        (&view["version"], &view["window_size"]),
        (&json!(2), &json!(2))
    );
    let ids: Vec<&Value> = view["window"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["message_id"])
        .collect();
    assert_eq!(ids, [&json!("m-1"), &json!("m-2")]);

    // Without a message_id a repeat is a new message, as before: appended, no id echoed.
    let repeat = ok(converse(&app, "c1", HOT, None).await);
    assert_eq!(
        (&repeat["duplicate"], &repeat["window_size"]),
        (&json!(false), &json!(3))
    );
    assert!(repeat.get("message_id").is_none(), "{repeat}");
    assert_eq!(ok(get(&app, "/conversation/c1").await)["version"], 3);
}

/// A retry of a message that switched the conversation tag says so again: a client whose
/// first answer was lost still learns of the switch.
#[tokio::test]
async fn a_retry_replays_the_switch_its_first_answer_reported() {
    let app = app_with(&[("WINDOW_SIZE", "1")]);
    let first = ok(converse(&app, "c6", FIRST_TIME, Some("a")).await);
    assert_eq!(first["conversation_tag"]["tag"], "First-time-visitor");
    let hot = ok(converse(&app, "c6", HOT, Some("b")).await);
    assert_eq!(
        (&hot["switched"], &hot["conversation_tag"]["tag"]),
        (&json!(true), &json!("Hot-buyer"))
    );
    let retry = ok(converse(&app, "c6", HOT, Some("b")).await);
    assert_eq!(retry["duplicate"], true);
    assert_eq!(retry["switched"], true);
    assert_eq!(retry["previous_tag"], hot["previous_tag"]);
    assert_eq!(retry["previous_tag"]["tag"], "First-time-visitor");
    // Out of the window the switch is no longer known: this call changed nothing.
    let evicted = ok(converse(&app, "c6", HOT, Some("a")).await);
    assert_eq!(
        (&evicted["duplicate"], &evicted["switched"]),
        (&json!(true), &json!(false))
    );
    assert_eq!(evicted["previous_tag"], hot["conversation_tag"]);
}

#[tokio::test]
async fn a_message_id_is_remembered_after_it_leaves_the_window() {
    let app = app_with(&[("WINDOW_SIZE", "1")]);
    let first = ok(converse(&app, "c2", HOT, Some("a")).await);
    ok(converse(&app, "c2", WISHLIST, Some("b")).await);
    let retry = ok(converse(&app, "c2", HOT, Some("a")).await);
    assert_eq!(retry["duplicate"], true);
    // Its first result again: the same model on the same text.
    assert_eq!(retry["message_result"], first["message_result"]);
    let view = ok(get(&app, "/conversation/c2").await);
    assert_eq!(view["version"], 2);
    assert_eq!(view["window"][0]["message_id"], "b");
}

#[tokio::test]
async fn message_ids_are_per_conversation() {
    let app = app();
    for id in ["c3", "c4"] {
        let reply = ok(converse(&app, id, HOT, Some("same")).await);
        assert_eq!(
            (&reply["duplicate"], &reply["window_size"]),
            (&json!(false), &json!(1))
        );
    }
}

#[tokio::test]
async fn bad_message_ids_are_400s_that_write_nothing() {
    let app = app();
    let long = "x".repeat(129);
    for bad in ["", "a b", "é", "a/b", long.as_str()] {
        let reply = converse(&app, "c5", HOT, Some(bad)).await;
        let message = error_of(&reply, StatusCode::BAD_REQUEST, "invalid_message_id");
        assert!(message.contains("message_id"), "{message}");
    }
    let reply = post(
        &app,
        "/classify-conversation",
        &json!({"conversation_id": "c5", "message": HOT, "message_id": 7}),
    )
    .await;
    error_of(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    error_of(
        &get(&app, "/conversation/c5").await,
        StatusCode::NOT_FOUND,
        "conversation_not_found",
    );
    // The longest valid id is accepted.
    let ok_id = "y".repeat(128);
    assert_eq!(
        ok(converse(&app, "c5", HOT, Some(&ok_id)).await)["duplicate"],
        false
    );
}

#[tokio::test]
async fn direct_invocation_is_idempotent_too() {
    let tagger = Tagger::new(
        Arc::clone(&CLASSIFIER),
        Arc::new(MemoryStore::new()),
        config(&[]),
    );
    let invoke = |payload: Value| invoke(&tagger, payload);
    let op = json!({"operation": "classify-conversation", "conversation_id": "d1",
                    "message": HOT, "message_id": "m-1"});
    let first = invoke(op.clone()).await;
    let again = invoke(op).await;
    assert_eq!(
        (&first["duplicate"], &again["duplicate"]),
        (&json!(false), &json!(true))
    );
    assert_eq!(first["message_result"], again["message_result"]);
    assert_eq!(again["window_size"], 1);
    let bad = invoke(
        json!({"operation": "classify-conversation", "conversation_id": "d1",
                            "message": HOT, "message_id": "no spaces"}),
    )
    .await;
    assert_eq!(bad["errorType"], "invalid_message_id", "{bad}");
}

/// A burst of `n` batches of 64 messages at once; each reply with how long it took.
async fn burst(app: &axum::Router, n: usize) -> Vec<(Reply, Duration)> {
    let batch = json!({ "messages": vec![WISHLIST; 64] });
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (app, batch) = (app.clone(), batch.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let reply = post(&app, "/classify-batch", &batch).await;
                (reply, started.elapsed())
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    replies
}

/// One slot and one place in the queue: of 8 batches sent at once, one runs, one waits and
/// the others are refused on arrival, faster than any inference could have answered them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_past_the_queue_gets_503_overloaded_at_once() {
    let app = app_with(&[
        ("INFERENCE_CONCURRENCY", "1"),
        ("INFERENCE_QUEUE", "1"),
        ("INFERENCE_QUEUE_TIMEOUT_MS", "30000"),
    ]);
    let replies = burst(&app, 8).await;
    let (mut answered, mut refused) = (vec![], vec![]);
    for (reply, elapsed) in &replies {
        if reply.status == StatusCode::OK {
            assert_eq!(reply.json["results"].as_array().unwrap().len(), 64);
            answered.push(*elapsed);
            continue;
        }
        let message = error_of(reply, StatusCode::SERVICE_UNAVAILABLE, "overloaded");
        assert!(message.contains("retry"), "{message}");
        let retry_after = reply.headers.get(RETRY_AFTER).map(|v| v.to_str().unwrap());
        assert_eq!(retry_after, Some("1"));
        refused.push(*elapsed);
    }
    assert!(
        answered.len() >= 2,
        "the running and the queued batch are answered"
    );
    assert!(!refused.is_empty(), "a burst past the queue is refused");
    let slowest_refusal = refused.iter().max().unwrap();
    let fastest_answer = answered.iter().min().unwrap();
    assert!(
        slowest_refusal < fastest_answer,
        "refusals ({refused:?}) come before any inference ends ({answered:?})"
    );
    println!(
        "burst of 8: {} answered, {} refused; slowest refusal {slowest_refusal:?}, fastest answer {fastest_answer:?}",
        answered.len(),
        refused.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_limit_off_a_burst_is_all_answered() {
    let app = app_with(&[("INFERENCE_CONCURRENCY", "0"), ("INFERENCE_QUEUE", "0")]);
    for (reply, _) in burst(&app, 8).await {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    }
}
