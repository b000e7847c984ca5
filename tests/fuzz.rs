//! Property-based fuzzing of the service's input boundaries, with the real embedded model, the
//! real router and the in-memory store (no stubs):
//!
//! 1. `lambda::dispatch` on arbitrary JSON events, on direct invocations with odd fields, and on
//!    AWS's example API Gateway events (REST v1, HTTP API v2, Function URL) with mutated
//!    fields, body, headers, path, method and stage;
//! 2. the JSON body extractor: arbitrary and near-JSON bytes POSTed to each POST route;
//! 3. the tokenizer path: odd Unicode through `Classifier::classify_batch` and
//!    `/classify-message`.
//!
//! The property everywhere: no panic and no 5xx (503 included: the store is in memory), every
//! HTTP body is JSON, and every error is `{"error": {"status", "code", "message"}}` with a 4xx.
//! A failure is shrunk by proptest to a minimal input before it is reported.
//!
//! Bounded and reproducible: `FUZZ_CASES` cases in all (default 80000: about two minutes on
//! two quiet cores), shared between the targets by a fixed share each (an inference
//! costs ~100 times an invalid event), on a fixed seed unless `FUZZ_SEED` is a number or
//! `random` (the seed is printed either way, so any run can be repeated). No failure file is
//! written. Each target prints its cases, time and how the cases were answered.
//!
//! ```text
//! cargo test --profile local --test fuzz -- --nocapture
//! FUZZ_CASES=800000 FUZZ_SEED=random cargo test --profile local --test fuzz -- --nocapture
//! ```
//!
//! The targets live in `fuzz/` (one binary: a `tests/fuzz_*.rs` file would be a test binary of
//! its own); `dispatch_regressions` replays the events they found.

#[path = "support/events.rs"]
mod events;
#[path = "support/router.rs"]
mod router;

#[path = "fuzz/strategies.rs"]
mod strategies;

#[path = "fuzz/dispatch.rs"]
mod dispatch;
#[path = "fuzz/extractor.rs"]
mod extractor;
#[path = "fuzz/tokenizer.rs"]
mod tokenizer;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use axum::Router;
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestRunner};
use serde_json::{json, Value};
use tagbeez::service::Tagger;
use tagbeez::store::MemoryStore;

use router::{assert_well_formed, keys, Reply, CLASSIFIER};

// ---------------------------------------------------------------------------------------------
// The runner: a budget of cases, a seed, a tokio runtime, and a line of timing per target.

/// Cases over all targets (`FUZZ_CASES`); each target takes its share.
fn total_cases() -> f64 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(DEFAULT_CASES)
        .into()
}

const DEFAULT_CASES: u32 = 80_000;

static SEED: LazyLock<u64> = LazyLock::new(|| match std::env::var("FUZZ_SEED") {
    Ok(v) if v.trim() == "random" => std::hash::BuildHasher::hash_one(
        &std::collections::hash_map::RandomState::new(),
        std::time::SystemTime::now(),
    ),
    Ok(v) => v.trim().parse().expect("FUZZ_SEED is a u64 or `random`"),
    Err(_) => 20_251_201,
});

/// Run `test` on `share` of the cases drawn from `strategy`, then print the cases, the time
/// and how the cases were answered (`test` names the answer); panic with the shrunk input.
fn fuzz<S>(name: &str, share: f64, strategy: S, test: impl Fn(S::Value) -> String)
where
    S: Strategy,
    S::Value: fmt::Debug,
{
    let cases = ((total_cases() * share).round() as u32).max(1);
    // One stream per target, so a target's cases do not change when another's share does.
    let seed = name.bytes().fold(*SEED, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let config = Config {
        cases,
        failure_persistence: None,
        source_file: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(seed),
        max_shrink_iters: 2_000,
        max_shrink_time: 120_000,
        ..Config::default()
    };
    let outcomes = Mutex::new(BTreeMap::<String, u32>::new());
    let started = Instant::now();
    let result = TestRunner::new(config).run(&strategy, |value| {
        let outcome = test(value);
        *outcomes.lock().unwrap().entry(outcome).or_default() += 1;
        Ok(())
    });
    let outcomes = outcomes.into_inner().unwrap();
    let runs: u32 = outcomes.values().sum();
    let mut common: Vec<_> = outcomes.into_iter().collect();
    common.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let common: Vec<String> = common
        .iter()
        .take(8)
        .map(|(k, n)| format!("{k} {:.0}%", f64::from(*n) * 100.0 / f64::from(runs.max(1))))
        .collect();
    let ran = match result {
        Ok(()) => format!("{cases} cases"),
        Err(_) => format!("FAILED, {runs} passing runs (shrinking included) of {cases} cases"),
    };
    println!(
        "fuzz {name}: {ran} in {:.1} s (FUZZ_SEED={}); answers: {}",
        started.elapsed().as_secs_f64(),
        *SEED,
        common.join(", ")
    );
    if let Err(e) = result {
        panic!("fuzz {name} (FUZZ_SEED={}): {e}", *SEED);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The router and tagger as `lambda::run` builds them, over a fresh in-memory store.
fn function() -> (Router, Tagger) {
    let tagger = Tagger::new(
        CLASSIFIER.clone(),
        Arc::new(MemoryStore::new()),
        router::config(&[]),
    );
    (tagbeez::api::router(tagger.clone()), tagger)
}

// ---------------------------------------------------------------------------------------------
// Checks. Each returns a name for the answer, e.g. "400 invalid_json".

/// `{"error": {"status", "code", "message"}}` with a 4xx status (and `status` if given).
#[track_caller]
fn assert_client_error(value: &Value, status: Option<u64>) -> String {
    assert_eq!(keys(value), ["error"], "{value}");
    let error = &value["error"];
    assert_eq!(keys(error), ["code", "message", "status"], "{value}");
    let got = error["status"].as_u64().expect("a numeric status");
    assert!((400..500).contains(&got), "a {got} error: {value}");
    if let Some(status) = status {
        assert_eq!(got, status, "{value}");
    }
    let code = error["code"].as_str().unwrap_or_default();
    assert!(!code.is_empty(), "{value}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{value}"
    );
    format!("{got} {code}")
}

/// A function error (`{"errorType", "errorMessage"}`) for a request that can never succeed:
/// never a transient or internal code (the store is in memory and never fails here).
#[track_caller]
fn assert_function_client_error(value: &Value) -> String {
    assert_eq!(keys(value), ["errorMessage", "errorType"], "{value}");
    let code = value["errorType"].as_str().unwrap_or_default();
    assert!(!code.is_empty(), "{value}");
    assert!(
        ![
            "internal",
            "store_unavailable",
            "store_contention",
            "overloaded",
            "events_unavailable"
        ]
        .contains(&code),
        "{value}"
    );
    assert!(
        value["errorMessage"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{value}"
    );
    format!("function error {code}")
}

/// A direct invocation's result: its operation's body, or a function error.
#[track_caller]
fn assert_direct_result(event: &Value, out: &Value) -> String {
    if out.get("errorType").is_some() {
        return assert_function_client_error(out);
    }
    let operation = event["operation"].as_str().unwrap_or_default();
    match operation {
        "classify-message" => assert_well_formed(out),
        "classify-batch" => {
            let results = out["results"].as_array().expect("results");
            assert_eq!(
                Some(results.len()),
                event["messages"].as_array().map(Vec::len)
            );
            results.iter().for_each(assert_well_formed);
        }
        "classify-conversation" => assert_well_formed(&out["message_result"]),
        "get-conversation" => assert_eq!(out["conversation_id"], event["conversation_id"]),
        "clear-conversation" => assert!(out["cleared"].is_boolean(), "{out}"),
        _ => panic!("a result, not an error, for an event without an operation: {out}"),
    }
    format!("ok {operation}")
}

/// What `dispatch` answers, whatever the event.
#[track_caller]
fn assert_dispatch_answer(event: &Value, out: &Value) -> String {
    let is_http = event.get("requestContext").is_some() || event.get("httpMethod").is_some();
    if is_http && out.get("errorType").is_some() {
        // An HTTP-looking event that does not convert to a request.
        assert_eq!(out["errorType"], json!("invalid_event"), "{out:#}");
        return assert_function_client_error(out);
    }
    let Some(status) = out.get("statusCode") else {
        return assert_direct_result(event, out);
    };
    assert!(is_http, "an HTTP response to a direct invocation: {out}");
    let status = status.as_u64().expect("a numeric statusCode");
    assert!((200..500).contains(&status), "HTTP {status}: {out:#}");
    assert_eq!(out["isBase64Encoded"], json!(false), "{out:#}");
    let method = event["httpMethod"]
        .as_str()
        .or(event["requestContext"]["http"]["method"].as_str());
    let body = out["body"].as_str().unwrap_or_default();
    if body.is_empty() && method.is_some_and(|m| m.eq_ignore_ascii_case("HEAD")) {
        return format!("HTTP {status} HEAD"); // a HEAD response has no body
    }
    let body: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("HTTP {status} body is not JSON ({e}): {out:#}"));
    if status >= 400 {
        return format!("HTTP {}", assert_client_error(&body, Some(status)));
    }
    format!("HTTP {status}")
}

/// What the router answers to a POST: JSON (checked by `router::call`), never a 5xx.
#[track_caller]
fn assert_route_answer(path: &str, reply: &Reply) -> String {
    let status = reply.status.as_u16();
    assert!(status < 500, "{path} -> {status}: {}", reply.json);
    if status >= 400 {
        return assert_client_error(&reply.json, Some(status.into()));
    }
    assert_eq!(status, 200, "{}", reply.json);
    match path {
        "/classify-message" => assert_well_formed(&reply.json),
        "/classify-batch" => reply.json["results"]
            .as_array()
            .expect("results")
            .iter()
            .for_each(assert_well_formed),
        _ => assert_well_formed(&reply.json["message_result"]),
    }
    "200".into()
}
