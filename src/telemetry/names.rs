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
/// Calibrated probabilities counted in ten fixed bins (`bin` "0" for [0, 0.1) ... "9" for
/// [0.9, 1.0]), by `tag` (and `shop_id` where a request names one and `DRIFT_BY_SHOP` is on).
/// A counter: the share of each bin over any period is the tag's probability distribution.
pub const PROBABILITY_BIN: &str = "tagbeez_probability_bin";
/// 1 when a message got the `tag`, 0 when not: one value per message and tag, so the mean
/// (CloudWatch's `Average`, Prometheus' `_sum / _count`) is the tag's selection rate. By `tag`
/// (and `shop_id`); in EMF also with exactly the dimension set `[tag]`, which the anomaly
/// alarms watch.
pub const SELECTION_RATE: &str = "tagbeez_selection_rate";
/// 1 when a message got no tag at all, 0 when it got one or more: the mean is the no-tag
/// rate. No labels (and a `shop_id` variant); in EMF also with no dimensions (its alarm).
pub const NO_TAG_RATE: &str = "tagbeez_no_tag_rate";
/// Population stability index of a `tag`'s probabilities over the sliding window of recent
/// messages against the validation baseline shipped with the model (`src/drift/`): < 0.1
/// stable, 0.1-0.25 a moderate shift, > 0.25 a significant one. A gauge, per process.
pub const PSI: &str = "tagbeez_psi";

/// Shop profile reads, by `how`: `cached`, `stored`, `fallback` (the store failed or was slow;
/// the last known profile or the defaults were used).
pub const PROFILE_READS: &str = "tagbeez_profile_reads";
/// Conversation messages not counted in their experiment (the experiment store failed).
pub const EXPOSURES_LOST: &str = "tagbeez_exposures_lost";
/// Outcomes recorded (`POST /outcome`), by `outcome`, `experiment` and `variant`.
pub const OUTCOMES: &str = "tagbeez_outcomes";
/// Conversation messages in an experiment, by `experiment` and `variant`.
pub const EXPERIMENT_MESSAGES: &str = "tagbeez_experiment_messages";
/// Tags selected on those messages, by `experiment` and `variant`.
pub const EXPERIMENT_TAGS_SELECTED: &str = "tagbeez_experiment_tags_selected";

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
    PROBABILITY_BIN,
    SELECTION_RATE,
    NO_TAG_RATE,
    PSI,
    PROFILE_READS,
    EXPOSURES_LOST,
    OUTCOMES,
    EXPERIMENT_MESSAGES,
    EXPERIMENT_TAGS_SELECTED,
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
    NO_TAG_RATE,
];

/// Also recorded in EMF with exactly the dimension set `[tag]` (no model version, no shop):
/// the per-tag series the anomaly alarms and the drift dashboard row watch.
pub const TAG_ROLLUPS: &[&str] = &[SELECTION_RATE, PSI];
