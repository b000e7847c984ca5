//! The fault-injecting proxy itself (tests/support/fault_proxy.rs), in front of moto
//! (tests/support/dynamodb.rs):
//!
//! - with faults off, the `ConversationStore` contract passes through the proxy unchanged;
//! - each fault kind reaches an SDK client as intended (error codes, a write that landed with
//!   its answer lost, a write that never landed, a timeout).
//!
//! The service under those faults: tests/dynamo_fault_proxy.rs.

#[path = "support/contract.rs"]
mod contract;
#[path = "support/dynamodb.rs"]
mod dynamodb;
#[path = "support/fault_proxy.rs"]
mod fault_proxy;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use dynamodb::Moto;
use fault_proxy::{Fault, FaultPlan, FaultProxy};
use tagbeez::store::DynamoStore;

const SEED: u64 = 0x7a67_6265_657a;

// ---------------------------------------------------------------------------------------
// The proxy itself
// ---------------------------------------------------------------------------------------

/// With faults off the proxy is transparent: the store contract passes through it, and every
/// request it saw passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_contract_passes_through_the_proxy_with_faults_off() {
    let mut moto = Moto::start();
    moto.create_table("through").await;
    let proxy = FaultProxy::start(moto.port(), FaultPlan::MIXED, SEED).await;
    proxy.set_faults(false);
    let store = DynamoStore::connect(&dynamodb::settings(
        "through",
        &proxy.endpoint(),
        Duration::from_secs(1),
        Duration::from_secs(3),
    ))
    .await;
    contract::contract(&store).await;
    let counts = proxy.counts();
    println!("proxy, faults off, store contract: {}", counts.summary());
    assert!(counts.requests >= 10, "{counts:?}");
    assert_eq!(counts.passed, counts.requests, "{counts:?}");
    assert_eq!(counts.faulted(), 0, "{counts:?}");
    assert_eq!(
        (counts.incomplete, counts.unreadable, counts.upstream_errors),
        (0, 0, 0),
        "{counts:?}"
    );
    assert_eq!(
        counts.connections, counts.requests,
        "one request per connection"
    );
}

/// A client of `endpoint` without SDK retries (each call is exactly one request through the
/// proxy) and with the given operation timeout.
fn single_shot_client(endpoint: &str, operation_timeout: Duration) -> Client {
    let config = dynamodb::config_for(endpoint)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(operation_timeout)
                .build(),
        )
        .build();
    Client::from_conf(config)
}

async fn put(client: &Client, table: &str, key: &str) -> Result<(), String> {
    client
        .put_item()
        .table_name(table)
        .item("conversation_id", AttributeValue::S(key.to_owned()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| match e.as_service_error().and_then(|s| s.code()) {
            Some(code) => format!("service error {code}"),
            None => format!("no answer: {e}"),
        })
}

async fn stored(client: &Client, table: &str, key: &str) -> bool {
    dynamodb::raw_item(client, table, key).await.is_some()
}

/// Each fault, alone, as a single-shot SDK client sees it: the injected error codes, a write
/// whose answer was lost (it landed), a write dropped before forwarding (it did not), a delay
/// past the client's timeout (the client gives up; the write still lands).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_reaches_the_client_as_intended() {
    let mut moto = Moto::start();
    moto.create_table("kinds").await;
    let direct = moto.client();
    let delay = Duration::from_millis(250);
    let cases: [(Fault, &str, Option<&str>, bool); 7] = [
        (Fault::Pass, "pass", None, true),
        (
            Fault::InternalError,
            "internal",
            Some("service error InternalServerError"),
            false,
        ),
        (
            Fault::ThroughputExceeded,
            "throughput",
            Some("service error ProvisionedThroughputExceededException"),
            false,
        ),
        (
            Fault::Throttling,
            "throttling",
            Some("service error ThrottlingException"),
            false,
        ),
        (Fault::DropBeforeForwarding, "drop-before", None, false),
        (Fault::DropAfterForwarding, "drop-after", None, true),
        (Fault::Delay(delay), "delay", None, true),
    ];
    for (fault, key, want_error, lands) in cases {
        let proxy = FaultProxy::start(moto.port(), FaultPlan::only(fault), SEED).await;
        let client = single_shot_client(&proxy.endpoint(), Duration::from_millis(100));
        let started = Instant::now();
        let result = put(&client, "kinds", key).await;
        let elapsed = started.elapsed();
        match (fault, want_error) {
            (Fault::Pass, _) => assert_eq!(result, Ok(()), "{fault:?}"),
            (_, Some(want)) => assert_eq!(result, Err(want.to_owned()), "{fault:?}"),
            (_, None) => {
                let error = result.as_ref().expect_err("the call must fail");
                assert!(error.starts_with("no answer"), "{fault:?}: {error}");
            }
        }
        if let Fault::Delay(_) = fault {
            // The client gave up at its 100 ms timeout; the proxy forwards at 250 ms.
            assert!(elapsed < delay, "{fault:?}: {elapsed:?}");
            tokio::time::sleep(delay + Duration::from_millis(300)).await;
        }
        assert_eq!(stored(&direct, "kinds", key).await, lands, "{fault:?}");
        let counts = proxy.counts();
        assert_eq!(counts.requests, 1, "{fault:?}: {counts:?}");
        println!(
            "{fault:?}: {result:?} in {:.0} ms; {}",
            elapsed.as_secs_f64() * 1e3,
            counts.summary()
        );
        match fault {
            Fault::Pass => assert_eq!(counts.passed, 1),
            Fault::Delay(_) => assert_eq!((counts.delayed, counts.delayed_past_client), (1, 1)),
            Fault::DropBeforeForwarding => assert_eq!(counts.dropped_before, 1),
            Fault::DropAfterForwarding => assert_eq!(counts.write_answers_lost, 1),
            Fault::InternalError => assert_eq!(counts.internal_errors, 1),
            Fault::ThroughputExceeded => assert_eq!(counts.throughput_exceeded, 1),
            Fault::Throttling => assert_eq!(counts.throttled, 1),
        }
        // Turned off at runtime, the same proxy passes everything.
        proxy.set_faults(false);
        assert_eq!(put(&client, "kinds", "after").await, Ok(()), "{fault:?}");
        assert_eq!(proxy.counts().passed, 1 + u64::from(fault == Fault::Pass));
    }
}
