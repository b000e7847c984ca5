//! EventBridge for tests: moto's EventBridge (the server of tests/support/dynamodb.rs), a
//! custom bus with a rule whose target is an SQS queue, and what reached that queue read back
//! as events. moto delivers a `PutEvents` entry that matches a rule to the rule's SQS target
//! before it answers, as the whole event (`id`, `detail-type`, `source`, `detail`, ...).
//! Use from a test file with `#[path = "support/eventbridge.rs"] mod eventbridge;`.
//!
//! Only 127.0.0.1 is ever contacted.

#![allow(dead_code)] // each test file uses the part it needs

use aws_sdk_eventbridge::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_eventbridge::types::{RuleState, Target};
use aws_sdk_eventbridge::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use serde_json::Value;

/// A client of a local endpoint (region `us-east-1`, static test credentials, rustls/ring).
pub fn client_for(endpoint: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let config = aws_sdk_eventbridge::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "tagbeez-tests",
        ))
        .build();
    Client::from_conf(config)
}

/// Create the custom bus `bus` and a rule `rule` on it matching `pattern` (an EventBridge
/// event pattern) whose one target is the SQS queue `queue_arn`.
pub async fn route_to_queue(
    client: &Client,
    bus: &str,
    rule: &str,
    pattern: &Value,
    queue_arn: &str,
) {
    client
        .create_event_bus()
        .name(bus)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateEventBus {bus}: {e:?}"));
    client
        .put_rule()
        .name(rule)
        .event_bus_name(bus)
        .event_pattern(pattern.to_string())
        .state(RuleState::Enabled)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutRule {rule}: {e:?}"));
    let target = Target::builder()
        .id("queue")
        .arn(queue_arn)
        .build()
        .expect("a target");
    let out = client
        .put_targets()
        .rule(rule)
        .event_bus_name(bus)
        .targets(target)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutTargets {rule}: {e:?}"));
    assert_eq!(out.failed_entry_count(), 0, "{:?}", out.failed_entries());
}

/// One event as the rule's SQS target received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    /// EventBridge's own id for this copy (a new one for every put).
    pub id: String,
    pub source: String,
    pub detail_type: String,
    pub detail: Value,
}

impl Delivered {
    /// The event's own `detail.event_id` (the same for every copy of one event).
    pub fn event_id(&self) -> &str {
        self.detail["event_id"].as_str().unwrap_or("")
    }
}

/// An SQS message body written by an EventBridge SQS target.
pub fn delivered(body: &str) -> Delivered {
    let event: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not an event ({e}): {body}"));
    let text = |k: &str| {
        event[k]
            .as_str()
            .unwrap_or_else(|| panic!("no {k} in {event}"))
            .to_owned()
    };
    Delivered {
        id: text("id"),
        source: text("source"),
        detail_type: text("detail-type"),
        detail: event["detail"].clone(),
    }
}
