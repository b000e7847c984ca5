//! `DynamoStore` against a real DynamoDB-compatible server: moto on a free loopback port,
//! started (and installed into .tools/moto, if missing) by tests/support/dynamodb.rs, one
//! server per test, the table created as template.yaml declares it.
//!
//! - the `ConversationStore` contract (tests/support/contract.rs, shared with the in-memory
//!   store), expiry on read included;
//! - 8 writers x 25 messages into one conversation through the service: no write lost, the
//!   window holds the last five commits in commit order;
//! - a conversation survives a restart of the `tagbeez` process;
//! - store faults (server killed mid-run, nothing listening, a server that never answers) give
//!   503 `store_unavailable` within the operation timeout, while single messages still work;
//! - stored items hold only snippets, never a message's full text;
//! - calls per request, retries and the store's added latency, printed (`--nocapture`).

#[path = "support/contract.rs"]
mod contract;
#[path = "support/dynamodb.rs"]
mod dynamodb;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use axum::body::Body;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use dynamodb::{BlackHole, Moto};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tagbeez::api;
use tagbeez::classifier::{embedded, Classifier};
use tagbeez::config::Config;
use tagbeez::conversation::Conversation;
use tagbeez::service::{ServiceError, Tagger};
use tagbeez::store::{ConversationStore, MemoryStore, StoreError};
use tower::ServiceExt;

static CLASSIFIER: LazyLock<Arc<Classifier>> = LazyLock::new(|| {
    Arc::new(Classifier::load(embedded::model_files()).expect("the embedded model loads"))
});

/// The store settings of the happy-path tests (the service's defaults).
const CONNECT: Duration = Duration::from_secs(1);
const OPERATION: Duration = Duration::from_secs(3);
/// The fault tests' short timeouts (`DYNAMODB_CONNECT_TIMEOUT_MS=500`,
/// `DYNAMODB_OPERATION_TIMEOUT_MS=1500`), and the slack allowed on top of the operation
/// timeout for inference and scheduling on a busy machine.
const FAULT_CONNECT: Duration = Duration::from_millis(500);
const FAULT_OPERATION: Duration = Duration::from_millis(1500);
const SLACK: Duration = Duration::from_secs(2);
/// No router call of these tests may take longer than this: a hang fails, it does not wait.
const HANG: Duration = Duration::from_secs(15);

fn config(vars: &[(&str, &str)]) -> Config {
    Config::from_pairs(vars).expect("a valid test configuration")
}

fn tagger(store: Arc<dyn ConversationStore>, vars: &[(&str, &str)]) -> Tagger {
    Tagger::new(Arc::clone(&CLASSIFIER), store, config(vars))
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------------------
// A store wrapper that counts calls, conflicts and time spent in the store
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Counts {
    loads: AtomicU64,
    saves: AtomicU64,
    conflicts: AtomicU64,
    deletes: AtomicU64,
    pings: AtomicU64,
    /// Time inside load + save + delete + ping, summed.
    nanos: AtomicU64,
}

impl Counts {
    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }

    fn calls(&self) -> u64 {
        [&self.loads, &self.saves, &self.deletes, &self.pings]
            .iter()
            .map(|c| Self::get(c))
            .sum()
    }

    fn store_time(&self) -> Duration {
        Duration::from_nanos(Self::get(&self.nanos))
    }
}

struct Counting {
    inner: Arc<dyn ConversationStore>,
    counts: Counts,
}

impl Counting {
    fn over(inner: Arc<dyn ConversationStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            counts: Counts::default(),
        })
    }

    fn timed(&self, started: Instant) {
        self.counts
            .nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::SeqCst);
    }
}

#[async_trait]
impl ConversationStore for Counting {
    async fn load(&self, id: &str, now: u64) -> Result<Option<Conversation>, StoreError> {
        let started = Instant::now();
        self.counts.loads.fetch_add(1, Ordering::SeqCst);
        let result = self.inner.load(id, now).await;
        self.timed(started);
        result
    }

    async fn save(
        &self,
        id: &str,
        next: &Conversation,
        expected: Option<u64>,
        now: u64,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        self.counts.saves.fetch_add(1, Ordering::SeqCst);
        let result = self.inner.save(id, next, expected, now).await;
        self.timed(started);
        if matches!(result, Err(StoreError::Conflict)) {
            self.counts.conflicts.fetch_add(1, Ordering::SeqCst);
        }
        result
    }

    async fn delete(&self, id: &str, now: u64) -> Result<bool, StoreError> {
        let started = Instant::now();
        self.counts.deletes.fetch_add(1, Ordering::SeqCst);
        let result = self.inner.delete(id, now).await;
        self.timed(started);
        result
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        self.counts.pings.fetch_add(1, Ordering::SeqCst);
        let result = self.inner.ping().await;
        self.timed(started);
        result
    }
}

// ---------------------------------------------------------------------------------------
// The router, in process
// ---------------------------------------------------------------------------------------

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
    elapsed: Duration,
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> Reply {
    let what = format!("{method} {uri}");
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header(CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let started = Instant::now();
    let response = tokio::time::timeout(HANG, app.clone().oneshot(request))
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {HANG:?}"))
        .expect("the router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let elapsed = started.elapsed();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{what} -> {status}: not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Reply {
        status,
        headers,
        json,
        elapsed,
    }
}

async fn converse(app: &Router, id: &str, message: &str) -> Reply {
    call(
        app,
        "POST",
        "/classify-conversation",
        Some(json!({ "conversation_id": id, "message": message })),
    )
    .await
}

// ---------------------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn dynamo_store_keeps_the_contract() {
    let mut moto = Moto::start();
    moto.create_table("contract").await;
    let store = moto.store("contract", CONNECT, OPERATION).await;
    contract::contract(&store).await;
}

// ---------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------

/// 8 tasks x 25 messages into one conversation at once, through the service on DynamoDB:
/// every write lands exactly once (versions 1..=200, stored version 200) and each write's
/// window is exactly the five commits up to it, in commit order; the stored window is the
/// commits 196..=200.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_lose_no_message_in_dynamodb() {
    const TASKS: usize = 8;
    const EACH: usize = 25;
    let mut moto = Moto::start();
    moto.create_table("busy").await;
    let store = Counting::over(Arc::new(moto.store("busy", CONNECT, OPERATION).await));
    let tagger = tagger(
        store.clone(),
        &[("WINDOW_SIZE", "5"), ("SNIPPET_CHARS", "100")],
    );
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let tagger = tagger.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut contended = 0u32;
                for i in 0..EACH {
                    let message = format!("task {t} message {i}: ok add it to my cart");
                    // A contended request (503 store_contention: nothing written) is retried
                    // as a client would; bounded.
                    let mut attempts = 0;
                    let outcome = loop {
                        match tagger.classify_conversation("busy", &message, None).await {
                            Ok(outcome) => break outcome,
                            Err(ServiceError::StoreContention(_)) if attempts < 5 => {
                                attempts += 1;
                                contended += 1;
                            }
                            Err(e) => panic!("{message}: {e}"),
                        }
                    };
                    outcomes.push((message, outcome.step.next));
                }
                (outcomes, contended)
            })
        })
        .collect();
    let mut by_version: BTreeMap<u64, (String, Conversation)> = BTreeMap::new();
    let mut contended = 0;
    let mut returned = 0;
    for task in tasks {
        let (outcomes, c) = task.await.unwrap();
        contended += c;
        for (message, next) in outcomes {
            returned += 1;
            let version = next.version;
            assert!(
                by_version.insert(version, (message, next)).is_none(),
                "version {version} returned twice"
            );
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(returned, TASKS * EACH);
    assert_eq!(
        by_version.keys().copied().collect::<Vec<u64>>(),
        (1..=200).collect::<Vec<u64>>(),
        "each write got its own version"
    );
    // Each write's window: the entries committed as versions v-4..=v, oldest first, each
    // exactly as its own write made it (snippet, probabilities, `at`). `at` is when the
    // message was classified, not when it committed: under contention a message classified
    // earlier may commit later, so `at` need not increase along the window.
    let message_of = |v: u64| by_version[&v].0.clone();
    let entry_of = |v: u64| by_version[&v].1.entries.last().cloned().unwrap();
    for (&v, (message, next)) in &by_version {
        let snippets: Vec<String> = next.entries.iter().map(|e| e.snippet.clone()).collect();
        let committed = v.saturating_sub(4).max(1)..=v;
        let want: Vec<String> = committed.clone().map(message_of).collect();
        assert_eq!(snippets, want, "window written as version {v}");
        assert_eq!(snippets.last(), Some(message));
        assert_eq!(next.entries, committed.map(entry_of).collect::<Vec<_>>());
    }
    let out_of_order = (2..=200u64)
        .filter(|&v| entry_of(v).at < entry_of(v - 1).at)
        .count();
    let stored = tagger.conversation("busy").await.unwrap();
    assert_eq!(stored.version, 200);
    let snippets: Vec<String> = stored.entries.iter().map(|e| e.snippet.clone()).collect();
    assert_eq!(snippets, (196..=200).map(message_of).collect::<Vec<_>>());
    // The stored item is exactly what the version-200 write computed (entries with their
    // probabilities and `at`, tag, timestamps): a lossless round trip through the item.
    assert_eq!(stored, by_version[&200].1);
    assert_eq!(
        stored.entries,
        (196..=200).map(entry_of).collect::<Vec<_>>()
    );
    let counts = &store.counts;
    println!(
        "dynamodb 8x25 contention: {} writes in {:.2?}; {} GetItem, {} PutItem, {} conditional-write \
         conflicts retried by the service ({:.2} per write); {} requests gave up as contended and \
         were retried by the client; {} commits carry an earlier `at` than the commit before",
        TASKS * EACH,
        elapsed,
        Counts::get(&counts.loads),
        Counts::get(&counts.saves),
        Counts::get(&counts.conflicts),
        Counts::get(&counts.conflicts) as f64 / (TASKS * EACH) as f64,
        contended,
        out_of_order,
    );
    // Every PutItem was either a commit or a conflict; every conflict led to one more read.
    assert_eq!(
        Counts::get(&counts.saves),
        200 + Counts::get(&counts.conflicts)
    );
    // The service's own retries absorb 8 concurrent writers (0 give-ups in every run measured
    // with SAVE_ATTEMPTS = 20); a couple are tolerated for a heavily loaded CI machine.
    assert!(contended <= 2, "{contended} requests gave up as contended");
}

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

// ---------------------------------------------------------------------------------------
// What an item holds; expiry on read
// ---------------------------------------------------------------------------------------

async fn raw_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    id: &str,
) -> Option<HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(table)
        .key("conversation_id", AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// A 200-character message, classified with SNIPPET_CHARS=50 and 0: the item holds the
/// snippet (50 characters + "...", or nothing) and no attribute holds more of the text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_hold_only_snippets_never_full_text() {
    let mut moto = Moto::start();
    moto.create_table("snippets").await;
    let client = moto.client();
    let message: String = "I want to buy this right now, send me the checkout link. "
        .repeat(4)
        .chars()
        .take(200)
        .collect();
    assert_eq!(message.chars().count(), 200);
    assert_eq!(
        message.trim(),
        message,
        "the service keeps the message whole"
    );
    for chars in [50usize, 0] {
        let store = Arc::new(moto.store("snippets", CONNECT, OPERATION).await);
        let snippet_chars = chars.to_string();
        let tagger = tagger(store, &[("SNIPPET_CHARS", snippet_chars.as_str())]);
        let id = format!("snippets-{chars}");
        tagger.classify_conversation(&id, &message, None).await.unwrap();
        let item = raw_item(&client, "snippets", &id).await.expect("the item");
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "conversation_id",
                "expires_at",
                "tag",
                "updated_at",
                "version",
                "window"
            ]
        );
        // No attribute holds the text beyond the snippet (with SNIPPET_CHARS=0: not even its
        // first ten characters).
        let beyond: String = message.chars().take(chars.max(10) + 1).collect();
        for (name, value) in &item {
            let text = match value {
                AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
                other => panic!("{name}: unexpected attribute type {other:?}"),
            };
            assert!(!text.contains(&message), "{name} holds the full message");
            assert!(
                !text.contains(&beyond),
                "{name} holds more than the snippet"
            );
        }
        let window: Value = serde_json::from_str(item["window"].as_s().unwrap()).unwrap();
        let want = if chars == 0 {
            String::new()
        } else {
            format!("{}...", message.chars().take(chars).collect::<String>())
        };
        assert_eq!(window[0]["snippet"], want.as_str(), "SNIPPET_CHARS={chars}");
        let number = |k: &str| item[k].as_n().unwrap().parse::<u64>().unwrap();
        assert_eq!(number("version"), 1);
        assert_eq!(
            number("expires_at") - number("updated_at"),
            86_400,
            "the TTL"
        );
    }
}

/// An item past `expires_at` that TTL has not deleted yet (DynamoDB deletes within days;
/// moto never) is absent to the service, and a new message starts the conversation afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_items_are_absent_until_ttl_deletes_them() {
    let mut moto = Moto::start();
    moto.create_table("expiry").await;
    let client = moto.client();
    let store = Arc::new(moto.store("expiry", CONNECT, OPERATION).await);
    let now = epoch_seconds();
    let old = contract::conversation(41, &[now - 200, now - 100], now - 1);
    store.save("old", &old, None, now - 100).await.unwrap();
    assert!(
        raw_item(&client, "expiry", "old").await.is_some(),
        "still stored"
    );

    let tagger = tagger(store, &[]);
    assert!(matches!(
        tagger.conversation("old").await,
        Err(ServiceError::ConversationNotFound(_))
    ));
    let outcome = tagger
        .classify_conversation("old", "add it to my cart please", None)
        .await
        .unwrap();
    assert_eq!(outcome.step.next.version, 1, "a fresh conversation");
    assert_eq!(outcome.step.next.entries.len(), 1);
    assert_eq!(outcome.step.previous_tag, None);
    let item = raw_item(&client, "expiry", "old").await.unwrap();
    assert_eq!(item["version"].as_n().unwrap(), "1");
}

// ---------------------------------------------------------------------------------------
// Measurements (printed, not asserted)
// ---------------------------------------------------------------------------------------

struct Measured {
    calls_per_request: f64,
    loads_per_request: f64,
    saves_per_request: f64,
    store_p50: Duration,
    store_p90: Duration,
    request_p50: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `n` sequential `/classify-conversation` writes into one conversation: calls per request
/// and the time spent in the store per request (load + save).
async fn sequential_writes(store: Arc<Counting>, n: usize) -> Measured {
    let tagger = tagger(store.clone(), &[]);
    let mut store_times = Vec::with_capacity(n);
    let mut request_times = Vec::with_capacity(n);
    for i in 0..n {
        let before = store.counts.store_time();
        let started = Instant::now();
        tagger
            .classify_conversation("measure", &format!("message {i}: do you ship to Canada?"), None)
            .await
            .unwrap();
        request_times.push(started.elapsed());
        store_times.push(store.counts.store_time() - before);
    }
    store_times.sort_unstable();
    request_times.sort_unstable();
    let counts = &store.counts;
    Measured {
        calls_per_request: counts.calls() as f64 / n as f64,
        loads_per_request: Counts::get(&counts.loads) as f64 / n as f64,
        saves_per_request: Counts::get(&counts.saves) as f64 / n as f64,
        store_p50: percentile(&store_times, 0.5),
        store_p90: percentile(&store_times, 0.9),
        request_p50: percentile(&request_times, 0.5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measure_calls_and_added_latency() {
    const N: usize = 50;
    let mut moto = Moto::start();
    moto.create_table("measure").await;
    let dynamo = Counting::over(Arc::new(moto.store("measure", CONNECT, OPERATION).await));
    // One warm-up request: the connection pool and credentials, as after a cold start.
    tagger(dynamo.clone(), &[])
        .classify_conversation("warm-up", "hello", None)
        .await
        .unwrap();
    let dynamo = Counting::over(dynamo.inner.clone());
    let on_dynamo = sequential_writes(dynamo.clone(), N).await;
    let on_memory = sequential_writes(Counting::over(Arc::new(MemoryStore::new())), N).await;

    // The other routes' calls: GET /conversation, DELETE /conversation, GET /health.
    let other = Counting::over(dynamo.inner.clone());
    let t = tagger(other.clone(), &[]);
    t.conversation("measure").await.unwrap();
    let reads = other.counts.calls();
    t.clear_conversation("measure").await.unwrap();
    let deletes = other.counts.calls() - reads;
    t.health().await;
    let pings = other.counts.calls() - reads - deletes;

    println!();
    println!(
        "store calls and latency, {N} sequential /classify-conversation writes (moto on loopback)"
    );
    println!("| store    | calls/request | GetItem/req | PutItem/req | p50 load+save | p90 load+save | p50 request |");
    println!("|----------|---------------|-------------|-------------|---------------|---------------|-------------|");
    for (name, m) in [("dynamodb", &on_dynamo), ("memory", &on_memory)] {
        println!(
            "| {name:<8} | {:>13.2} | {:>11.2} | {:>11.2} | {:>13.2?} | {:>13.2?} | {:>11.2?} |",
            m.calls_per_request,
            m.loads_per_request,
            m.saves_per_request,
            m.store_p50,
            m.store_p90,
            m.request_p50
        );
    }
    println!(
        "p50 added latency of the DynamoDB store per conversation write: {:.2?}",
        on_dynamo.store_p50.saturating_sub(on_memory.store_p50)
    );
    println!(
        "calls: GET /conversation {reads} (GetItem), DELETE /conversation {deletes} (DeleteItem), \
         GET /health {pings} (GetItem)"
    );
    assert_eq!((reads, deletes, pings), (1, 1, 1));
    assert_eq!(
        on_dynamo.calls_per_request, 2.0,
        "GetItem + PutItem, no retry when alone"
    );
}
