//! Metric names: the same in CloudWatch (EMF, namespace `METRICS_NAMESPACE`) and Prometheus
//! (`GET /metrics`). The deployment files' alarms and dashboards name them too, and
//! `tests/deploy_monitoring.rs` checks that every name they use is one of these.

pub const REQUESTS: &str = "tagbeez_requests";
pub const SERVER_ERRORS: &str = "tagbeez_server_errors";
pub const REQUEST_LATENCY_MS: &str = "tagbeez_request_latency_ms";
pub const TOKENIZE_MS: &str = "tagbeez_tokenize_ms";
pub const INFERENCE_MS: &str = "tagbeez_inference_ms";
pub const STORE_MS: &str = "tagbeez_store_ms";
pub const BATCH_SIZE: &str = "tagbeez_batch_size";
pub const TAGS_SELECTED: &str = "tagbeez_tags_selected";
pub const CONVERSATION_SWITCHES: &str = "tagbeez_conversation_switches";
pub const STORE_ERRORS: &str = "tagbeez_store_errors";
pub const STORE_RETRIES: &str = "tagbeez_store_retries";
pub const OVERLOAD_REJECTIONS: &str = "tagbeez_overload_rejections";
pub const COLD_STARTS: &str = "tagbeez_cold_starts";
pub const INIT_MS: &str = "tagbeez_init_ms";
pub const FEEDBACK: &str = "tagbeez_feedback";
/// Events put on the bus, by `kind` (`tag_changed`, `message_tagged`).
pub const EVENTS_PUBLISHED: &str = "tagbeez_events_published";
/// Events not delivered when their message was answered over HTTP or a direct invocation
/// (they stay in the conversation's outbox), or dropped from a full outbox.
pub const EVENTS_LOST: &str = "tagbeez_events_lost";
/// Queue records reported failed (`batchItemFailures`), by `reason` (the error code).
pub const QUEUE_FAILURES: &str = "tagbeez_queue_failures";
/// Personal data replaced in messages, by `kind` (`email`, `phone`, `card`, `iban`, `address`).
pub const REDACTIONS: &str = "tagbeez_redactions";

/// Every metric the service records.
pub const ALL: &[&str] = &[
    REQUESTS,
    SERVER_ERRORS,
    REQUEST_LATENCY_MS,
    TOKENIZE_MS,
    INFERENCE_MS,
    STORE_MS,
    BATCH_SIZE,
    TAGS_SELECTED,
    CONVERSATION_SWITCHES,
    STORE_ERRORS,
    STORE_RETRIES,
    OVERLOAD_REJECTIONS,
    COLD_STARTS,
    INIT_MS,
    FEEDBACK,
    EVENTS_PUBLISHED,
    EVENTS_LOST,
    QUEUE_FAILURES,
    REDACTIONS,
];

/// Also recorded in EMF with no dimensions at all: the series alarms watch, whatever the
/// route or model version (an alarm names exact dimensions; these have none).
pub const ROLLUPS: &[&str] = &[
    REQUESTS,
    SERVER_ERRORS,
    REQUEST_LATENCY_MS,
    STORE_ERRORS,
    OVERLOAD_REJECTIONS,
    EVENTS_LOST,
    QUEUE_FAILURES,
];
