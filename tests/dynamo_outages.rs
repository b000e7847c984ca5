//! The conversation store through restarts and outages, against moto on loopback:
//!
//! - a conversation survives a restart of the `tagbeez` process;
//! - store faults (server killed mid-run, nothing listening, a server that never answers) give
//!   503 `store_unavailable` within the operation timeout, while single messages still work.

#[path = "support/dynamo_app.rs"]
mod dynamo_app;
#[path = "support/dynamodb.rs"]
mod dynamodb;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header::RETRY_AFTER;
use axum::http::StatusCode;
use axum::Router;
use dynamo_app::{call, converse, ms, tagger};
use dynamodb::{BlackHole, Moto};
use serde_json::{json, Value};
use tagbeez::api;
use tagbeez::store::MemoryStore;

/// The fault tests' short timeouts (`DYNAMODB_CONNECT_TIMEOUT_MS=500`,
/// `DYNAMODB_OPERATION_TIMEOUT_MS=1500`), and the slack allowed on top of the operation
/// timeout for inference and scheduling on a busy machine.
const FAULT_CONNECT: Duration = Duration::from_millis(500);
const FAULT_OPERATION: Duration = Duration::from_millis(1500);
const SLACK: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------
// Persistence across a process restart
// ---------------------------------------------------------------------------------------

/// A `tagbeez serve` process, killed on drop.
struct Served {
    child: std::process::Child,
    port: u16,
}

impl Served {
    fn start(env: &[(&str, String)]) -> Self {
        let port = dynamodb::free_port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_tagbeez"))
            .arg("serve")
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(dynamodb::AWS_ENV.iter().copied())
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("LOG_LEVEL", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the binary starts");
        let mut served = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = served.child.try_wait().unwrap() {
                panic!("tagbeez serve exited at start: {status}");
            }
            let health = dynamodb::http(port, "GET", "/health", None, Duration::from_secs(2));
            if let Some(reply) = health {
                assert_eq!(reply.status, 200, "{}", reply.body);
                return served;
            }
            assert!(
                Instant::now() < deadline,
                "tagbeez serve did not answer on port {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn converse(&self, id: &str, message: &str) -> Value {
        let body = json!({ "conversation_id": id, "message": message }).to_string();
        let reply = dynamodb::http(
            self.port,
            "POST",
            "/classify-conversation",
            Some(&body),
            Duration::from_secs(10),
        )
        .expect("tagbeez answers");
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }

    fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Two messages, kill the process, start a new one, a third message: the window remembers
/// all three and the switch is computed against the tag the second reply reported.
///
/// (1) is a first visit, (2) a first visit and a deal: the window's top is First-time-visitor
/// (mean ~0.95 >= its 0.77). (3) reads as a deal and a purchase ("15% off"): over the three,
/// Deal-seeker (~0.68) overtakes First-time-visitor (~0.64), so the tag switches and
/// `switched` is true. A process that forgot the window would answer window_size 1,
/// previous_tag null, switched false.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_survives_a_process_restart() {
    const MESSAGES: [&str; 3] = [
        "Hi, I'm new to your website. What products do you sell?",
        "Do you have any discount codes for first-time buyers?",
        "I will buy immediately if you can give me 15% off",
    ];
    let mut moto = Moto::start();
    moto.create_table("restart").await;
    let env = [
        ("TABLE_NAME", "restart".to_owned()),
        ("DYNAMODB_ENDPOINT", moto.endpoint()),
    ];
    let id = "restart-1";

    let first = Served::start(&env);
    let r1 = first.converse(id, MESSAGES[0]);
    let r2 = first.converse(id, MESSAGES[1]);
    first.kill();
    let second = Served::start(&env);
    let r3 = second.converse(id, MESSAGES[2]);
    let view = dynamodb::http(
        second.port,
        "GET",
        &format!("/conversation/{id}"),
        None,
        Duration::from_secs(10),
    )
    .expect("tagbeez answers")
    .json();
    drop(second);

    let tag = |r: &Value| r["conversation_tag"]["tag"].as_str().map(str::to_owned);
    println!(
        "restart: tags {:?} -> {:?} -> (restart) -> {:?}; third reply previous_tag {} switched {}",
        tag(&r1),
        tag(&r2),
        tag(&r3),
        r3["previous_tag"],
        r3["switched"]
    );
    assert_eq!(
        (r1["window_size"].clone(), r2["window_size"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(r3["window_size"], 3, "the window survived the restart");
    assert_eq!(r3["previous_tag"], r2["conversation_tag"]);
    assert_eq!(tag(&r2).as_deref(), Some("First-time-visitor"));
    assert_eq!(tag(&r3).as_deref(), Some("Deal-seeker"));
    assert_eq!(r3["switched"], true);
    let evidence: Vec<&str> = r3["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        evidence,
        [
            "Do you have any discount codes for first-time buye...",
            "I will buy immediately if you can give me 15% off"
        ]
    );
    assert_eq!(
        (view["version"].clone(), view["window_size"].clone()),
        (json!(3), json!(3))
    );

    // The same three messages in one process on the in-memory store answer the same.
    let app = api::router(tagger(Arc::new(MemoryStore::new()), &[]));
    let mut control = Vec::new();
    for message in MESSAGES {
        let reply = converse(&app, id, message).await;
        assert_eq!(reply.status, StatusCode::OK);
        control.push(reply.json);
    }
    for (n, (got, want)) in [&r1, &r2, &r3].into_iter().zip(&control).enumerate() {
        for field in [
            "conversation_tag",
            "previous_tag",
            "switched",
            "window_size",
        ] {
            assert_eq!(got[field], want[field], "message {}: {field}", n + 1);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------

/// The router over a `DynamoStore` on `endpoint` with the fault tests' short timeouts.
async fn fault_app(table: &str, endpoint: &str) -> Router {
    dynamodb::use_test_credentials();
    let store = tagbeez::store::DynamoStore::connect(&dynamodb::settings(
        table,
        endpoint,
        FAULT_CONNECT,
        FAULT_OPERATION,
    ))
    .await;
    api::router(tagger(Arc::new(store), &[]))
}

/// With the store unreachable: `/classify-conversation` (and `GET /conversation/{id}`) give
/// 503 `store_unavailable` with `Retry-After` within the operation timeout (+ slack),
/// `/classify-message` still 200, `/health` 503 with `store_reachable: false`. Returns the
/// elapsed times of the conversation request and of `/health`.
async fn assert_store_unavailable(app: &Router, what: &str) -> (Duration, Duration) {
    let limit = FAULT_OPERATION + SLACK;
    let reply = converse(app, "fault-1", "add it to my cart please").await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        reply.json
    );
    assert_eq!(reply.json["error"]["code"], "store_unavailable", "{what}");
    assert_eq!(reply.json["error"]["status"], 503, "{what}");
    let retry_after = reply.headers.get(RETRY_AFTER).map(|v| v.to_str().unwrap());
    assert!(
        retry_after.is_some_and(|v| v.parse::<u32>().is_ok_and(|s| s >= 1)),
        "{what}: Retry-After {retry_after:?}"
    );
    assert!(reply.elapsed < limit, "{what}: {:?}", reply.elapsed);
    let conversation_elapsed = reply.elapsed;

    let view = call(app, "GET", "/conversation/fault-1", None).await;
    assert_eq!(
        view.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        view.json
    );
    assert_eq!(view.json["error"]["code"], "store_unavailable");
    assert!(view.elapsed < limit, "{what}: {:?}", view.elapsed);

    let single = call(
        app,
        "POST",
        "/classify-message",
        Some(json!({ "message": "add it to my cart please" })),
    )
    .await;
    assert_eq!(single.status, StatusCode::OK, "{what}: {}", single.json);
    assert_eq!(single.json["selected"][0]["tag"], "Hot-buyer");

    let health = call(app, "GET", "/health", None).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
    assert_eq!(
        health.json,
        json!({ "model_loaded": true, "store_reachable": false, "status": "degraded" })
    );
    assert!(health.elapsed < limit, "{what}: {:?}", health.elapsed);
    println!("fault {what}: message {}", reply.json["error"]["message"]);
    println!(
        "fault {what}: /classify-conversation 503 in {}, GET /conversation 503 in {}, \
         /health 503 in {}, /classify-message 200 in {} (operation timeout {})",
        ms(conversation_elapsed),
        ms(view.elapsed),
        ms(health.elapsed),
        ms(single.elapsed),
        ms(FAULT_OPERATION)
    );
    (conversation_elapsed, health.elapsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_killed_mid_run_gives_503_then_recovers() {
    let mut moto = Moto::start();
    moto.create_table("faults").await;
    let app = fault_app("faults", &moto.endpoint()).await;
    let before = converse(&app, "fault-1", "hello, just looking around").await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.json);
    assert_eq!(
        call(&app, "GET", "/health", None).await.status,
        StatusCode::OK
    );

    moto.stop();
    assert_store_unavailable(&app, "moto killed mid-run").await;

    // Same port, table re-created (moto keeps nothing across a restart): the same router and
    // client recover on the next request.
    moto.restart().await;
    let after = converse(&app, "fault-1", "add it to my cart please").await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.json);
    assert_eq!(after.json["window_size"], 1);
    let health = call(&app, "GET", "/health", None).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.json);
    assert_eq!(health.json["store_reachable"], true);
    println!(
        "fault moto killed mid-run: after restart /classify-conversation 200 in {}",
        ms(after.elapsed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_gives_503_within_the_timeout() {
    let port = dynamodb::free_port();
    let app = fault_app("faults", &format!("http://127.0.0.1:{port}")).await;
    assert_store_unavailable(&app, "nothing listening").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_gives_503_within_the_timeout() {
    let hole = BlackHole::start(Duration::from_secs(30));
    let app = fault_app("faults", &format!("http://127.0.0.1:{}", hole.port)).await;
    let (conversation, health) = assert_store_unavailable(&app, "server never answers").await;
    // Nothing answered: only the operation timeout ended these requests.
    assert!(conversation >= FAULT_OPERATION, "{conversation:?}");
    assert!(health >= FAULT_OPERATION, "{health:?}");
    assert!(
        hole.close() >= 1,
        "the store connected to the silent server"
    );
}
