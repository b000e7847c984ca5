//! `DynamoStore` against a real DynamoDB-compatible server: moto on a free loopback port,
//! started (and installed into .tools/moto, if missing) by tests/support/dynamodb.rs, one
//! server per test, the table created as template.yaml declares it.
//!
//! - the `ConversationStore` contract (tests/support/contract.rs, shared with the in-memory
//!   store), expiry on read included;
//! - 8 writers x 25 messages into one conversation through the service: no write lost, the
//!   window holds the last five commits in commit order;
//! - 50 concurrent copies of one message (one `message_id`) grow the window by exactly one;
//! - stored items hold only snippets, never a message's full text;
//! - calls per request, retries and the store's added latency, printed (`--nocapture`).
//!
//! Restarts and outages: tests/dynamo_outages.rs; injected faults: tests/dynamo_fault_proxy.rs.

#[path = "support/contract.rs"]
mod contract;
#[path = "support/dynamo_app.rs"]
mod dynamo_app;
#[path = "support/dynamodb.rs"]
mod dynamodb;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_app::{call, epoch_seconds, tagger, CONNECT, OPERATION, ROOMY};
use dynamodb::Moto;
use serde_json::{json, Value};
use tagbeez::api;
use tagbeez::conversation::Conversation;
use tagbeez::service::ServiceError;
use tagbeez::store::{ConversationStore, MemoryStore, StoreError};

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
        &[
            ("WINDOW_SIZE", "5"),
            ("SNIPPET_CHARS", "100"),
            ROOMY[0],
            ROOMY[1],
        ],
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
    let stored = tagger.conversation("busy", None).await.unwrap();
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

/// 50 concurrent copies of one message (the same `message_id`, as from a client or an
/// upstream Lambda retrying after a timeout) into one conversation that already holds a
/// message: the window grows by exactly one, the stored version by one, one copy is the write
/// and 49 are answered `duplicate: true` with the same result. The stored item remembers the
/// id, so a later copy is still a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_copies_of_one_message_are_written_once() {
    const COPIES: usize = 50;
    let mut moto = Moto::start();
    moto.create_table("copies").await;
    let store = Arc::new(moto.store("copies", CONNECT, OPERATION).await);
    // Room for every copy to wait for inference: this test is about the store, not overload.
    let app = api::router(tagger(store, &ROOMY));
    let first =
        json!({"conversation_id": "copies", "message": "hi, just looking", "message_id": "m-1"});
    let reply = call(&app, "POST", "/classify-conversation", Some(first)).await;
    assert_eq!(
        (reply.status.as_u16(), &reply.json["duplicate"]),
        (200, &json!(false))
    );

    let copy = json!({"conversation_id": "copies", "message": "add it to my cart please", "message_id": "m-2"});
    let tasks: Vec<_> = (0..COPIES)
        .map(|_| {
            let (app, copy) = (app.clone(), copy.clone());
            tokio::spawn(
                async move { call(&app, "POST", "/classify-conversation", Some(copy)).await },
            )
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.json);
        replies.push(reply.json);
    }
    let written: Vec<&Value> = replies.iter().filter(|r| r["duplicate"] == false).collect();
    assert_eq!(written.len(), 1, "exactly one copy is the write");
    for r in &replies {
        assert_eq!(r["message_id"], "m-2");
        assert_eq!(r["message_result"], written[0]["message_result"]);
        assert_eq!(r["window_size"], 2);
        assert_eq!(r["conversation_tag"], written[0]["conversation_tag"]);
    }
    let view = call(&app, "GET", "/conversation/copies", None).await.json;
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

    let again = call(&app, "POST", "/classify-conversation", Some(copy))
        .await
        .json;
    assert_eq!(
        (&again["duplicate"], &again["window_size"]),
        (&json!(true), &json!(2))
    );
    let view = call(&app, "GET", "/conversation/copies", None).await.json;
    assert_eq!(view["version"], 2);
    println!(
        "{COPIES} concurrent copies: 1 write, {} duplicates, version 2",
        COPIES - 1
    );
}

// ---------------------------------------------------------------------------------------
// What an item holds; expiry on read
// ---------------------------------------------------------------------------------------

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
        tagger
            .classify_conversation(&id, &message, None)
            .await
            .unwrap();
        let item = dynamodb::raw_item(&client, "snippets", &id)
            .await
            .expect("the item");
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
        dynamodb::raw_item(&client, "expiry", "old").await.is_some(),
        "still stored"
    );

    let tagger = tagger(store, &[]);
    assert!(matches!(
        tagger.conversation("old", None).await,
        Err(ServiceError::ConversationNotFound(_))
    ));
    let outcome = tagger
        .classify_conversation("old", "add it to my cart please", None)
        .await
        .unwrap();
    assert_eq!(outcome.step.next.version, 1, "a fresh conversation");
    assert_eq!(outcome.step.next.entries.len(), 1);
    assert_eq!(outcome.step.previous_tag, None);
    let item = dynamodb::raw_item(&client, "expiry", "old").await.unwrap();
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
            .classify_conversation(
                "measure",
                &format!("message {i}: do you ship to Canada?"),
                None,
            )
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
    t.conversation("measure", None).await.unwrap();
    let reads = other.counts.calls();
    t.clear_conversation("measure", None).await.unwrap();
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
