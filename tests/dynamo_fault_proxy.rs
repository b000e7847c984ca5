//! The service behind a fault-injecting proxy (tests/support/fault_proxy.rs; its own tests in
//! tests/fault_proxy.rs) in front of moto: ~30% of DynamoDB calls faulted, 1,000 idempotent
//! conversation writes (plus deliberate re-sends, concurrent twins and invalid requests) from
//! 16 clients that retry on 503. Every answer is a 200, a 4xx or a 503 within the store
//! deadline (+ a margin for inference); once faults are off and every unanswered write
//! re-sent, each conversation's version equals the number of distinct message ids written to
//! it and its stored ids are exactly those ids: nothing lost, nothing doubled. Counts printed
//! with `--nocapture`.

#[path = "support/dynamo_app.rs"]
mod dynamo_app;
#[path = "support/dynamodb.rs"]
mod dynamodb;
#[path = "support/fault_proxy.rs"]
mod fault_proxy;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use axum::http::header::RETRY_AFTER;
use axum::http::StatusCode;
use axum::Router;
use dynamo_app::{call, ms, Reply, CLASSIFIER};
use dynamodb::Moto;
use fault_proxy::{FaultPlan, FaultProxy};
use serde_json::{json, Value};
use tagbeez::api;
use tagbeez::config::Config;
use tagbeez::service::Tagger;
use tagbeez::store::DynamoStore;

/// The main test's settings: `DYNAMODB_OPERATION_TIMEOUT_MS` (per SDK operation, its retries
/// included) short enough that the proxy's longer delays exceed it, and `STORE_DEADLINE_MS`
/// for a whole conversation write.
const OPERATION_TIMEOUT_MS: u64 = 300;
const STORE_DEADLINE_MS: u64 = 2_000;
/// Every answer must arrive within the store deadline plus this (inference and scheduling on
/// a busy 2-core machine): a bound against hangs, not a speed measurement.
const MARGIN: Duration = Duration::from_secs(3);
/// The whole faulted run must end within this.
const RUN_LIMIT: Duration = Duration::from_secs(240);

const CONVERSATIONS: usize = 20;
const WRITES: usize = 1_000;
const IN_FLIGHT: usize = 16;
/// Attempts per logical write while faults are on (the first + retries after a 503).
const ATTEMPTS: u32 = 6;
/// Attempts per write re-sent once faults are off.
const FINAL_ATTEMPTS: u32 = 5;
/// Write `i` is re-sent after its 200 when `i % RESEND_EVERY == 4` (must be duplicate:true).
const RESEND_EVERY: usize = 9;
/// Write `i` is first sent as two concurrent copies when `i % TWIN_EVERY == 11`.
const TWIN_EVERY: usize = 29;
/// An invalid request after every `INVALID_EVERY` writes.
const INVALID_EVERY: usize = 20;
/// `WINDOW_SIZE` of the main test.
const WINDOW: usize = 3;
const SEED: u64 = 0x7a67_6265_657a;

const SAMPLES: [&str; 8] = [
    "I want to buy this right now, send me the checkout link",
    "These shoes look nice, I'll save them for later",
    "Hi, I'm new to your website. What products do you sell?",
    "do you ship to Canada?",
    "add it to my cart please",
    "what's your return policy if it doesn't fit",
    "just looking around, thanks",
    "is there a discount code for first orders?",
];

// ---------------------------------------------------------------------------------------
// The service under faults
// ---------------------------------------------------------------------------------------

/// One logical conversation write: its own `message_id`, sent until it gets a 200.
struct Write {
    conversation: String,
    message_id: String,
    message: String,
}

fn conversation_id(c: usize) -> String {
    format!("fault-conv-{c:02}")
}

fn write_of(i: usize) -> Write {
    let n = i / CONVERSATIONS;
    let c = i % CONVERSATIONS;
    Write {
        conversation: conversation_id(c),
        message_id: format!("c{c:02}-m{n:03}"),
        message: format!("{} (message {n})", SAMPLES[i % SAMPLES.len()]),
    }
}

enum Job {
    Write(usize),
    Invalid(usize),
}

/// An invalid request (and the error code it must get): `k` picks the kind. Each would write
/// a new message id if wrongly accepted, which the final check would see.
fn invalid_request(k: usize) -> (Value, &'static str) {
    let c = conversation_id(k % CONVERSATIONS);
    let mid = format!("invalid-{k}");
    match k % 7 {
        0 => (
            json!({ "conversation_id": "bad id!", "message": "hello", "message_id": mid }),
            "invalid_conversation_id",
        ),
        1 => (
            json!({ "conversation_id": c, "message": "hello", "message_id": "has space" }),
            "invalid_message_id",
        ),
        2 => (
            json!({ "conversation_id": c, "message": "hello", "message_id": "x".repeat(129) }),
            "invalid_message_id",
        ),
        3 => (
            json!({ "conversation_id": c, "message": "   ", "message_id": mid }),
            "empty_message",
        ),
        4 => (
            json!({ "conversation_id": "", "message": "hello", "message_id": mid }),
            "invalid_conversation_id",
        ),
        5 => (
            json!({ "conversation_id": c, "message": "hello", "message_id": "a/b" }),
            "invalid_message_id",
        ),
        _ => (
            json!({ "conversation_id": c, "message_id": mid }),
            "invalid_request",
        ),
    }
}

/// What the clients saw.
#[derive(Debug, Default, Clone)]
struct Tally {
    requests: u64,
    ok: u64,
    /// 200 on a write's first attempt (both copies of a twin count).
    ok_first_try: u64,
    ok_after_retry: u64,
    /// Every 200 with `duplicate: true`.
    duplicate: u64,
    /// Of `duplicate`: deliberate re-sends of a write that already had its 200.
    duplicate_on_resend: u64,
    /// Of `duplicate`: a write's own attempt found its message already stored (an earlier
    /// attempt landed but its answer was lost or came too late, or its twin won).
    duplicate_on_write: u64,
    unavailable: u64,
    contention: u64,
    client_errors: u64,
    /// 503s followed by another attempt.
    retries: u64,
    twins: u64,
    resends: u64,
    /// Re-sends that got only 503s (allowed; nothing to check).
    resends_unanswered: u64,
    /// Writes with no 200 after `ATTEMPTS` (re-sent once faults are off).
    gave_up: u64,
    max_elapsed: Duration,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.requests += o.requests;
        self.ok += o.ok;
        self.ok_first_try += o.ok_first_try;
        self.ok_after_retry += o.ok_after_retry;
        self.duplicate += o.duplicate;
        self.duplicate_on_resend += o.duplicate_on_resend;
        self.duplicate_on_write += o.duplicate_on_write;
        self.unavailable += o.unavailable;
        self.contention += o.contention;
        self.client_errors += o.client_errors;
        self.retries += o.retries;
        self.twins += o.twins;
        self.resends += o.resends;
        self.resends_unanswered += o.resends_unanswered;
        self.gave_up += o.gave_up;
        self.max_elapsed = self.max_elapsed.max(o.max_elapsed);
    }
}

enum Answer {
    Ok { duplicate: bool },
    Busy,
    Refused,
}

/// The checks every answer passes: within the bound, and a 200, a 4xx or a 503 (with its
/// error code and `Retry-After`); nothing else.
fn classify(reply: &Reply, what: &str, tally: &mut Tally) -> Answer {
    let bound = Duration::from_millis(STORE_DEADLINE_MS) + MARGIN;
    tally.requests += 1;
    tally.max_elapsed = tally.max_elapsed.max(reply.elapsed);
    assert!(
        reply.elapsed <= bound,
        "{what}: answered in {:?}, past the bound {bound:?}: {} {}",
        reply.elapsed,
        reply.status,
        reply.json
    );
    match reply.status.as_u16() {
        200 => {
            tally.ok += 1;
            let duplicate = reply.json["duplicate"]
                .as_bool()
                .unwrap_or_else(|| panic!("{what}: no duplicate flag: {}", reply.json));
            if duplicate {
                tally.duplicate += 1;
            }
            Answer::Ok { duplicate }
        }
        503 => {
            match reply.json["error"]["code"].as_str() {
                Some("store_unavailable") => tally.unavailable += 1,
                Some("store_contention") => tally.contention += 1,
                _ => panic!("{what}: an unexpected 503: {}", reply.json),
            }
            let retry_after = reply.headers.get(RETRY_AFTER).map(|v| v.to_str().unwrap());
            assert!(
                retry_after.is_some_and(|v| v.parse::<u32>().is_ok_and(|s| s >= 1)),
                "{what}: 503 with Retry-After {retry_after:?}"
            );
            Answer::Busy
        }
        400..=499 => {
            tally.client_errors += 1;
            Answer::Refused
        }
        _ => panic!("{what}: {} {}", reply.status, reply.json),
    }
}

async fn send(app: &Router, w: &Write) -> Reply {
    call(
        app,
        "POST",
        "/classify-conversation",
        Some(json!({
            "conversation_id": w.conversation,
            "message": w.message,
            "message_id": w.message_id,
        })),
    )
    .await
}

/// A 200's body belongs to this write.
fn check_ok(reply: &Reply, w: &Write, what: &str) {
    assert_eq!(
        reply.json["conversation_id"],
        w.conversation.as_str(),
        "{what}"
    );
    assert_eq!(reply.json["message_id"], w.message_id.as_str(), "{what}");
    let window = reply.json["window_size"].as_u64().unwrap_or(0);
    assert!(
        (1..=WINDOW as u64).contains(&window),
        "{what}: {}",
        reply.json
    );
}

/// A short pause before a retry, spread so retries do not arrive in lockstep.
fn pause(i: usize, attempt: u32) -> Duration {
    let h = (i as u64 ^ (u64::from(attempt) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    Duration::from_millis(20 + (h >> 58))
}

/// Send write `i` until a 200, at most `attempts` times; its first attempt as two concurrent
/// copies if `twin`. Whether it got a 200.
async fn write(app: &Router, i: usize, twin: bool, attempts: u32, tally: &mut Tally) -> bool {
    let w = write_of(i);
    for attempt in 1..=attempts {
        let what = format!("write {i} ({}) attempt {attempt}", w.message_id);
        let replies = if twin && attempt == 1 {
            tally.twins += 1;
            let (a, b) = tokio::join!(send(app, &w), send(app, &w));
            vec![a, b]
        } else {
            vec![send(app, &w).await]
        };
        let mut landed = false;
        for reply in &replies {
            match classify(reply, &what, tally) {
                Answer::Ok { duplicate } => {
                    check_ok(reply, &w, &what);
                    landed = true;
                    if attempt == 1 {
                        tally.ok_first_try += 1;
                    } else {
                        tally.ok_after_retry += 1;
                    }
                    if duplicate {
                        tally.duplicate_on_write += 1;
                    }
                }
                Answer::Busy => {}
                Answer::Refused => panic!("{what}: a valid write refused: {}", reply.json),
            }
        }
        if landed {
            return true;
        }
        if attempt < attempts {
            tally.retries += 1;
            tokio::time::sleep(pause(i, attempt)).await;
        }
    }
    tally.gave_up += 1;
    false
}

/// Re-send write `i`, which already had its 200: any 200 must be `duplicate: true`.
async fn resend(app: &Router, i: usize, tally: &mut Tally) {
    let w = write_of(i);
    tally.resends += 1;
    for attempt in 1..=ATTEMPTS {
        let what = format!("re-send of write {i} ({}) attempt {attempt}", w.message_id);
        let reply = send(app, &w).await;
        match classify(&reply, &what, tally) {
            Answer::Ok { duplicate } => {
                check_ok(&reply, &w, &what);
                assert!(duplicate, "{what}: written again: {}", reply.json);
                tally.duplicate_on_resend += 1;
                return;
            }
            Answer::Busy => {}
            Answer::Refused => panic!("{what}: refused: {}", reply.json),
        }
        if attempt < ATTEMPTS {
            tally.retries += 1;
            tokio::time::sleep(pause(i, attempt + 100)).await;
        }
    }
    tally.resends_unanswered += 1;
}

async fn invalid(app: &Router, k: usize, tally: &mut Tally) {
    let (body, code) = invalid_request(k);
    let what = format!("invalid request {k}: {body}");
    let reply = call(app, "POST", "/classify-conversation", Some(body)).await;
    match classify(&reply, &what, tally) {
        Answer::Refused => {}
        _ => panic!("{what}: must be a 4xx: {} {}", reply.status, reply.json),
    }
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{what}");
    assert_eq!(reply.json["error"]["code"], code, "{what}: {}", reply.json);
}

async fn worker(
    app: Router,
    jobs: Arc<Vec<Job>>,
    next: Arc<AtomicUsize>,
    landed: Arc<Vec<AtomicBool>>,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        let Some(job) = jobs.get(next.fetch_add(1, Ordering::SeqCst)) else {
            return tally;
        };
        match *job {
            Job::Write(i) => {
                let twin = i % TWIN_EVERY == 11;
                if write(&app, i, twin, ATTEMPTS, &mut tally).await {
                    landed[i].store(true, Ordering::SeqCst);
                    if i % RESEND_EVERY == 4 {
                        resend(&app, i, &mut tally).await;
                    }
                }
            }
            Job::Invalid(k) => invalid(&app, k, &mut tally).await,
        }
    }
}

/// The stored item's `message_ids` (JSON list) and the window entries' ids, read from moto
/// directly (not through the proxy).
async fn stored_ids(client: &Client, table: &str, id: &str) -> (u64, Vec<String>, Vec<String>) {
    let item = dynamodb::raw_item(client, table, id)
        .await
        .unwrap_or_else(|| panic!("{id}: no item stored"));
    let version = item["version"].as_n().unwrap().parse().unwrap();
    let ids: Vec<String> = item
        .get("message_ids")
        .map(|v| serde_json::from_str(v.as_s().unwrap()).unwrap())
        .unwrap_or_default();
    let window: Vec<Value> = serde_json::from_str(item["window"].as_s().unwrap()).unwrap();
    let window_ids = window
        .iter()
        .map(|e| e["message_id"].as_str().unwrap_or("<none>").to_owned())
        .collect();
    (version, ids, window_ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_under_dynamodb_faults_are_neither_lost_nor_doubled() {
    const TABLE: &str = "faulty";
    let started = Instant::now();
    let mut moto = Moto::start();
    moto.create_table(TABLE).await;
    let proxy = FaultProxy::start(moto.port(), FaultPlan::MIXED, SEED).await;
    let endpoint = proxy.endpoint();
    let (operation, deadline) = (
        OPERATION_TIMEOUT_MS.to_string(),
        STORE_DEADLINE_MS.to_string(),
    );
    let window = WINDOW.to_string();
    let config = Config::from_pairs(&[
        ("TABLE_NAME", TABLE),
        ("DYNAMODB_ENDPOINT", endpoint.as_str()),
        ("DYNAMODB_CONNECT_TIMEOUT_MS", "500"),
        ("DYNAMODB_OPERATION_TIMEOUT_MS", operation.as_str()),
        ("STORE_DEADLINE_MS", deadline.as_str()),
        ("WINDOW_SIZE", window.as_str()),
        // A queue large enough that no `overloaded` 503 mixes in.
        ("INFERENCE_QUEUE", "1000"),
        ("INFERENCE_QUEUE_TIMEOUT_MS", "60000"),
    ])
    .expect("a valid configuration");
    let store = DynamoStore::connect(config.dynamodb.as_ref().expect("TABLE_NAME is set")).await;
    let app = api::router(Tagger::new(
        Arc::clone(&CLASSIFIER),
        Arc::new(store),
        config,
    ));

    let mut jobs = Vec::new();
    for i in 0..WRITES {
        jobs.push(Job::Write(i));
        if i % INVALID_EVERY == INVALID_EVERY - 1 {
            jobs.push(Job::Invalid(i / INVALID_EVERY));
        }
    }
    let invalid_requests = jobs.iter().filter(|j| matches!(j, Job::Invalid(_))).count();
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let landed: Arc<Vec<AtomicBool>> =
        Arc::new((0..WRITES).map(|_| AtomicBool::new(false)).collect());

    // Phase 1: faults on, 16 clients.
    let faulted_run = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            tokio::spawn(worker(
                app.clone(),
                jobs.clone(),
                next.clone(),
                landed.clone(),
            ))
        })
        .collect();
    let mut tally = Tally::default();
    let joined = tokio::time::timeout(RUN_LIMIT, async {
        let mut results = Vec::new();
        for w in workers {
            results.push(w.await);
        }
        results
    })
    .await
    .unwrap_or_else(|_| panic!("the faulted run did not end within {RUN_LIMIT:?}"));
    for result in joined {
        match result {
            Ok(t) => tally.add(&t),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a client task failed: {e}"),
        }
    }
    let faulted_elapsed = faulted_run.elapsed();
    let during = proxy.counts();

    // Phase 2: faults off; every write that never got a 200 is re-sent until it does.
    proxy.set_faults(false);
    let unanswered: Vec<usize> = (0..WRITES)
        .filter(|&i| !landed[i].load(Ordering::SeqCst))
        .collect();
    let mut after = Tally::default();
    for &i in &unanswered {
        assert!(
            write(&app, i, false, FINAL_ATTEMPTS, &mut after).await,
            "write {i} got no 200 with faults off"
        );
    }
    let landed_despite_503 = after.duplicate_on_write;

    // Phase 3: each conversation holds exactly its distinct message ids, once each.
    let direct = moto.client();
    let mut lines = Vec::new();
    let mut total_version = 0;
    for c in 0..CONVERSATIONS {
        let id = conversation_id(c);
        let written: BTreeSet<String> = (0..WRITES)
            .filter(|i| i % CONVERSATIONS == c)
            .map(|i| write_of(i).message_id)
            .collect();
        let view = call(&app, "GET", &format!("/conversation/{id}"), None).await;
        assert_eq!(view.status, StatusCode::OK, "{id}: {}", view.json);
        let version = view.json["version"].as_u64().expect("a version");
        let (item_version, ids, window_ids) = stored_ids(&direct, TABLE, &id).await;
        let distinct: BTreeSet<String> = ids.iter().cloned().collect();
        lines.push(format!(
            "  {id}: {} message ids written, version {version}, {} ids stored ({} distinct), \
             window {window_ids:?}",
            written.len(),
            ids.len(),
            distinct.len()
        ));
        assert_eq!(item_version, version, "{id}: the view and the item");
        assert_eq!(
            distinct.len(),
            ids.len(),
            "{id}: a message id stored twice: {ids:?}"
        );
        assert_eq!(
            distinct, written,
            "{id}: stored ids differ from those written"
        );
        assert_eq!(
            version,
            written.len() as u64,
            "{id}: version {version} after {} distinct writes (lost or doubled)",
            written.len()
        );
        // The window is the last WINDOW writes, in the same commit order as the ids.
        assert_eq!(window_ids, ids[ids.len() - WINDOW..], "{id}: window vs ids");
        total_version += version;
    }
    let total = started.elapsed();

    println!();
    println!(
        "fault run: {WRITES} logical writes into {CONVERSATIONS} conversations, {IN_FLIGHT} in \
         flight, {invalid_requests} invalid requests, DYNAMODB_OPERATION_TIMEOUT_MS=\
         {OPERATION_TIMEOUT_MS}, STORE_DEADLINE_MS={STORE_DEADLINE_MS}, seed {SEED:#x}"
    );
    println!(
        "  faults on ({}): {} requests: {} 200 ({} first try, {} after a retry), {} 200 \
         duplicate:true ({} on deliberate re-sends of {}, {} on a write's own attempt: an earlier \
         attempt or its twin had landed), {} 503 ({} store_unavailable, {} store_contention), \
         {} 4xx, {} retries, {} twin sends, {} re-sends left unanswered, {} writes without a \
         200; slowest answer {}",
        ms(faulted_elapsed),
        tally.requests,
        tally.ok,
        tally.ok_first_try,
        tally.ok_after_retry,
        tally.duplicate,
        tally.duplicate_on_resend,
        tally.resends,
        tally.duplicate_on_write,
        tally.unavailable + tally.contention,
        tally.unavailable,
        tally.contention,
        tally.client_errors,
        tally.retries,
        tally.twins,
        tally.resends_unanswered,
        tally.gave_up,
        ms(tally.max_elapsed),
    );
    println!("  proxy while faults were on: {}", during.summary());
    println!(
        "  faults off: {} writes re-sent, {} requests, {} 200 ({} duplicate:true: had landed \
         despite their 503s), {} 503",
        unanswered.len(),
        after.requests,
        after.ok,
        landed_despite_503,
        after.unavailable + after.contention,
    );
    println!("  per conversation (version == distinct message ids):");
    for line in &lines {
        println!("{line}");
    }
    println!(
        "  total version {total_version} == {WRITES} writes; whole test {}",
        ms(total)
    );

    // Every logical write and every invalid request was answered while faults were on.
    assert_eq!(tally.client_errors as usize, invalid_requests);
    assert_eq!(total_version, WRITES as u64);
    assert_eq!(after.gave_up, 0);
    // The faults were real: every kind was injected, at about the planned rate, and reached
    // the clients as 503s; writes landed with their answers lost.
    let rate = during.faulted() as f64 / during.requests.max(1) as f64;
    assert!(
        (0.2..=0.4).contains(&rate),
        "faulted {rate:.3} of DynamoDB calls"
    );
    for (kind, n) in [
        ("delay", during.delayed),
        (
            "delay past the client's timeout",
            during.delayed_past_client,
        ),
        ("drop before forwarding", during.dropped_before),
        ("drop after forwarding", during.dropped_after),
        ("write answer lost", during.write_answers_lost),
        ("InternalServerError", during.internal_errors),
        ("ProvisionedThroughputExceeded", during.throughput_exceeded),
        ("Throttling", during.throttled),
    ] {
        assert!(n > 0, "no {kind} injected: {during:?}");
    }
    assert!(tally.unavailable > 0, "no fault reached a client");
    assert_eq!(
        during.unreadable, 0,
        "the proxy could not read a request: {during:?}"
    );
    assert_eq!(
        tally.resends,
        tally.duplicate_on_resend + tally.resends_unanswered
    );
}
