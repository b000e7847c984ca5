//! Configuration: environment variables, read and validated once at start-up.
//!
//! A bad value stops start-up with a message naming the variable: a Lambda that starts with
//! a silently defaulted setting is worse than one that does not start.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use thiserror::Error;

use crate::classifier::{FormChoice, InferenceForm};
use crate::conversation::WindowRules;
use crate::events::EventBridgeSettings;
use crate::limit::{default_concurrency, LimitSettings};
use crate::store::DynamoSettings;
use crate::telemetry::MetricsMode;

/// `DEMO_PAGE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoPage {
    /// On for the local server, off in Lambda.
    Auto,
    On,
    Off,
}

/// `LOG_FORMAT`: whether `tagbeez serve` greets a person before its JSON logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// A greeting on a terminal (stderr), then JSON lines; JSON lines only when stderr is not a
    /// terminal.
    Auto,
    /// JSON lines only, terminal or not: for a developer who pipes or greps the logs.
    Json,
}

/// Every setting of the service (docs/deploy.md's settings table lists them; tests/deploy_files.rs holds the two together).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `HOST`: the local server's listen address.
    pub host: IpAddr,
    /// `PORT`: the local server's port.
    pub port: u16,
    /// `WINDOW_SIZE`, `WINDOW_DECAY`, `CONVERSATION_TTL_SECONDS`.
    pub window: WindowRules,
    /// `MAX_MESSAGE_CHARS`: longer messages are refused with a 400 that names the limit.
    pub max_message_chars: usize,
    /// `SNIPPET_CHARS`: characters of each message kept as evidence (0 keeps none).
    pub snippet_chars: usize,
    /// `LOG_LEVEL`: tracing filter, e.g. `info` or `tagbeez=debug`.
    pub log_level: String,
    /// `LOG_FORMAT`: a greeting on a terminal (`auto`) or JSON lines only (`json`).
    pub log_format: LogFormat,
    /// `TABLE_NAME` (+ `DYNAMODB_ENDPOINT`, `DYNAMODB_CONNECT_TIMEOUT_MS`,
    /// `DYNAMODB_OPERATION_TIMEOUT_MS`): conversations in DynamoDB; `None` keeps them in memory.
    pub dynamodb: Option<DynamoSettings>,
    /// `INFERENCE_CONCURRENCY`, `INFERENCE_QUEUE`, `INFERENCE_QUEUE_TIMEOUT_MS`: back-pressure.
    pub limit: LimitSettings,
    /// `STORE_DEADLINE_MS`: the longest one conversation write spends on the store, all reads,
    /// writes and retries included; past it the answer is a 503.
    pub store_deadline: Duration,
    /// `FEEDBACK_TABLE_NAME` (with the `DYNAMODB_*` endpoint and timeouts): feedback in
    /// DynamoDB; `None` keeps it in memory.
    pub feedback: Option<DynamoSettings>,
    /// `FEEDBACK_TTL_DAYS`: how long a correction is kept.
    pub feedback_ttl_days: u64,
    /// `METRICS`: where metrics go.
    pub metrics: MetricsMode,
    /// `METRICS_NAMESPACE`: the CloudWatch namespace of the EMF metrics.
    pub metrics_namespace: String,
    /// `DEMO_PAGE`: whether `GET /demo` serves the page.
    pub demo_page: DemoPage,
    /// `EXPLAIN_MAX_WORDS`: words of a message explained by occlusion (the rest are not).
    pub explain_max_words: usize,
    /// `INFERENCE_THREADS`: cores one inference spreads over (tract's multithreaded matmul).
    pub inference_threads: usize,
    /// `INFERENCE_FORM`: `auto` (by the CPU), `f32` or `int8` (classifier::int8::form).
    pub inference_form: FormChoice,
    /// `EVENT_BUS_NAME` (+ `EVENTS_ENDPOINT`, `EVENTS_TIMEOUT_MS`): events to EventBridge;
    /// `None` puts none.
    pub events: Option<EventBridgeSettings>,
    /// `EVENT_TAGS`: the tags whose selection puts a `Message tagged` event (comma-separated;
    /// empty for none); `None` (unset) takes the service's default.
    pub event_tags: Option<Vec<String>>,
    /// `PROFILE_TABLE_NAME` (with the `DYNAMODB_*` endpoint and timeouts): shop profiles in
    /// DynamoDB; `None` keeps them in memory.
    pub profiles: Option<DynamoSettings>,
    /// `EXPERIMENT_TABLE_NAME`: experiment exposures and outcomes in DynamoDB; `None` keeps
    /// them in memory.
    pub experiments: Option<DynamoSettings>,
    /// `PROFILE_CACHE_SECONDS`: how long a shop's profile is used without reading it again
    /// (0: read on every request).
    pub profile_cache: Duration,
    /// `PROFILE_TIMEOUT_MS`: the longest a request waits for its shop's profile; past it, the
    /// last known profile (or the model's defaults) is used.
    pub profile_timeout: Duration,
    /// `DRIFT_WINDOW`: messages in the sliding window the population stability index is
    /// computed over.
    pub drift_window: usize,
    /// `DRIFT_BY_SHOP`: whether drift metrics also carry a `shop_id` dimension when a request
    /// names one (one more series per shop and metric: see docs/drift.md for the cost).
    pub drift_by_shop: bool,
}

/// A setting that could not be used.
#[derive(Debug, Error, PartialEq)]
#[error("invalid {name}={value:?}: {why}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub why: String,
}

/// Largest accepted batch (`/classify-batch`).
pub const MAX_BATCH: usize = 64;
/// Largest accepted request body: room for the largest valid batch at the default limits, 64
/// messages of 5,000 characters each written as a JSON surrogate-pair escape (12 bytes a
/// character: 3.84 MB), so that no request the OpenAPI document allows is refused as too
/// large. Under Lambda's 6 MB synchronous payload limit.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars().collect())
    }

    /// From name/value pairs, as tests and embedders set them.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Self, ConfigError> {
        Self::from_vars(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    pub fn from_vars(vars: HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| vars.get(name).map(|v| (name, v.trim()));
        let size = parse(
            get("WINDOW_SIZE"),
            3usize,
            |v| (1..=50).contains(v),
            "1 to 50",
        )?;
        let decay = parse(
            get("WINDOW_DECAY"),
            1.0f32,
            |v| *v > 0.0 && *v <= 1.0,
            "0 < d <= 1",
        )?;
        let ttl = parse(
            get("CONVERSATION_TTL_SECONDS"),
            86_400u64,
            |v| *v >= 60,
            ">= 60",
        )?;
        let concurrency = parse(
            get("INFERENCE_CONCURRENCY"),
            default_concurrency(),
            |v| *v <= 1024,
            "0 (no limit) to 1024",
        )?;
        let limit = LimitSettings {
            concurrency,
            queue: parse(
                get("INFERENCE_QUEUE"),
                8 * concurrency.max(1),
                |v| *v <= 100_000,
                "0 to 100000",
            )?,
            queue_timeout: millis(get("INFERENCE_QUEUE_TIMEOUT_MS"), 100)?,
        };
        let dynamo = |table: &str| -> Result<DynamoSettings, ConfigError> {
            Ok(DynamoSettings {
                table: table.to_owned(),
                endpoint: get("DYNAMODB_ENDPOINT")
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(_, v)| v.to_owned()),
                connect_timeout: millis(get("DYNAMODB_CONNECT_TIMEOUT_MS"), 1_000)?,
                operation_timeout: millis(get("DYNAMODB_OPERATION_TIMEOUT_MS"), 3_000)?,
            })
        };
        Ok(Self {
            events: non_empty(get("EVENT_BUS_NAME"))
                .map(|(_, bus)| -> Result<_, ConfigError> {
                    Ok(EventBridgeSettings {
                        bus: bus.to_owned(),
                        endpoint: non_empty(get("EVENTS_ENDPOINT")).map(|(_, v)| v.to_owned()),
                        operation_timeout: millis(get("EVENTS_TIMEOUT_MS"), 2_000)?,
                    })
                })
                .transpose()?,
            event_tags: get("EVENT_TAGS").map(|(_, v)| {
                v.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
            profiles: non_empty(get("PROFILE_TABLE_NAME"))
                .map(|(_, t)| dynamo(t))
                .transpose()?,
            experiments: non_empty(get("EXPERIMENT_TABLE_NAME"))
                .map(|(_, t)| dynamo(t))
                .transpose()?,
            profile_cache: Duration::from_secs(parse(
                get("PROFILE_CACHE_SECONDS"),
                60u64,
                |v| *v <= 3_600,
                "0 to 3600",
            )?),
            profile_timeout: millis(get("PROFILE_TIMEOUT_MS"), 300)?,
            drift_window: parse(
                get("DRIFT_WINDOW"),
                1_000usize,
                |v| (100..=100_000).contains(v),
                "100 to 100000",
            )?,
            drift_by_shop: choice(get("DRIFT_BY_SHOP"), true, &[("on", true), ("off", false)])?,
            feedback: non_empty(get("FEEDBACK_TABLE_NAME"))
                .map(|(_, t)| dynamo(t))
                .transpose()?,
            feedback_ttl_days: parse(
                get("FEEDBACK_TTL_DAYS"),
                365u64,
                |v| (1..=3650).contains(v),
                "1 to 3650",
            )?,
            metrics: choice(
                get("METRICS"),
                MetricsMode::Auto,
                &[
                    ("auto", MetricsMode::Auto),
                    ("emf", MetricsMode::Emf),
                    ("prometheus", MetricsMode::Prometheus),
                    ("off", MetricsMode::Off),
                ],
            )?,
            metrics_namespace: match get("METRICS_NAMESPACE") {
                None => "tagbeez".into(),
                Some((_, v)) if valid_namespace(v) => v.to_owned(),
                Some((name, v)) => return Err(ConfigError {
                    name,
                    value: v.to_owned(),
                    why: "must be 1-255 characters of A-Z, a-z, 0-9, '.', '-', '_', '/', '#', ':'"
                        .into(),
                }),
            },
            demo_page: choice(
                get("DEMO_PAGE"),
                DemoPage::Auto,
                &[
                    ("auto", DemoPage::Auto),
                    ("on", DemoPage::On),
                    ("off", DemoPage::Off),
                ],
            )?,
            explain_max_words: parse(
                get("EXPLAIN_MAX_WORDS"),
                32usize,
                |v| (1..=128).contains(v),
                "1 to 128",
            )?,
            inference_threads: parse(
                get("INFERENCE_THREADS"),
                1usize,
                |v| (1..=16).contains(v),
                "1 to 16",
            )?,
            inference_form: choice(
                get("INFERENCE_FORM"),
                FormChoice::Auto,
                &[
                    ("auto", FormChoice::Auto),
                    ("f32", FormChoice::Forced(InferenceForm::F32)),
                    ("int8", FormChoice::Forced(InferenceForm::Int8)),
                ],
            )?,
            limit,
            store_deadline: millis(get("STORE_DEADLINE_MS"), 5_000)?,
            host: parse(get("HOST"), IpAddr::from([127, 0, 0, 1]), |_| true, "")?,
            port: parse(get("PORT"), 8080u16, |_| true, "")?,
            window: WindowRules {
                size,
                decay,
                ttl_seconds: ttl,
            },
            max_message_chars: parse(
                get("MAX_MESSAGE_CHARS"),
                5_000usize,
                |v| (1..=100_000).contains(v),
                "1 to 100000",
            )?,
            snippet_chars: parse(get("SNIPPET_CHARS"), 50usize, |v| *v <= 500, "0 to 500")?,
            log_level: get("LOG_LEVEL").map_or("info".into(), |(_, v)| v.to_owned()),
            log_format: choice(
                get("LOG_FORMAT"),
                LogFormat::Auto,
                &[("auto", LogFormat::Auto), ("json", LogFormat::Json)],
            )?,
            dynamodb: non_empty(get("TABLE_NAME"))
                .map(|(_, t)| dynamo(t))
                .transpose()?,
        })
    }
}

/// A table name, unless it is set but empty.
fn non_empty<'a>(found: Option<(&'static str, &'a str)>) -> Option<(&'static str, &'a str)> {
    found.filter(|(_, v)| !v.is_empty())
}

/// A CloudWatch namespace: 1-255 of the characters CloudWatch allows.
fn valid_namespace(v: &str) -> bool {
    (1..=255).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_/#:".contains(&b))
}

/// One of a fixed set of words.
fn choice<T: Copy>(
    found: Option<(&'static str, &str)>,
    default: T,
    words: &[(&str, T)],
) -> Result<T, ConfigError> {
    let Some((name, raw)) = found else {
        return Ok(default);
    };
    words
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(raw))
        .map(|(_, v)| *v)
        .ok_or_else(|| ConfigError {
            name,
            value: raw.to_owned(),
            why: format!(
                "must be one of {}",
                words.iter().map(|(w, _)| *w).collect::<Vec<_>>().join(", ")
            ),
        })
}

fn millis(found: Option<(&'static str, &str)>, default: u64) -> Result<Duration, ConfigError> {
    parse(
        found,
        default,
        |v| (10..=60_000).contains(v),
        "10 to 60000 (milliseconds)",
    )
    .map(Duration::from_millis)
}

fn parse<T: std::str::FromStr>(
    found: Option<(&'static str, &str)>,
    default: T,
    valid: impl Fn(&T) -> bool,
    range: &str,
) -> Result<T, ConfigError> {
    let Some((name, raw)) = found else {
        return Ok(default);
    };
    let error = |why: String| ConfigError {
        name,
        value: raw.to_owned(),
        why,
    };
    let value: T = raw.parse().map_err(|_| error("not a valid value".into()))?;
    if valid(&value) {
        Ok(value)
    } else {
        Err(error(format!("must be {range}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_pairs(pairs)
    }

    #[test]
    fn defaults_match_the_settings_table() {
        let c = with(&[]).unwrap();
        assert_eq!((c.host.to_string(), c.port), ("127.0.0.1".into(), 8080));
        assert_eq!(
            (c.window.size, c.window.decay, c.window.ttl_seconds),
            (3, 1.0, 86_400)
        );
        assert_eq!((c.max_message_chars, c.snippet_chars), (5_000, 50));
        let cores = default_concurrency();
        assert_eq!(
            c.limit,
            LimitSettings {
                concurrency: cores,
                queue: 8 * cores,
                queue_timeout: Duration::from_millis(100)
            }
        );
        assert_eq!(c.store_deadline, Duration::from_secs(5));
        assert_eq!((c.feedback.clone(), c.feedback_ttl_days), (None, 365));
        assert_eq!(
            (c.metrics, c.metrics_namespace.as_str()),
            (MetricsMode::Auto, "tagbeez")
        );
        assert_eq!((c.demo_page, c.explain_max_words), (DemoPage::Auto, 32));
        assert_eq!(c.inference_threads, 1);
        assert_eq!(c.inference_form, FormChoice::Auto);
    }

    #[test]
    fn the_inference_form_is_read_and_checked() {
        let forced = with(&[("INFERENCE_FORM", "int8")]).unwrap();
        assert_eq!(
            forced.inference_form,
            FormChoice::Forced(InferenceForm::Int8)
        );
        let bad = with(&[("INFERENCE_FORM", "fp16")]).unwrap_err();
        assert_eq!((bad.name, bad.value.as_str()), ("INFERENCE_FORM", "fp16"));
    }

    #[test]
    fn issue_11_settings_are_read_and_checked() {
        let c = with(&[
            ("FEEDBACK_TABLE_NAME", "fb"),
            ("DYNAMODB_ENDPOINT", "http://127.0.0.1:9"),
            ("METRICS", "OFF"),
            ("DEMO_PAGE", "on"),
            ("EXPLAIN_MAX_WORDS", "8"),
            ("METRICS_NAMESPACE", "shop/tagbeez"),
        ])
        .unwrap();
        let f = c.feedback.unwrap();
        assert_eq!(
            (f.table.as_str(), f.endpoint.as_deref()),
            ("fb", Some("http://127.0.0.1:9"))
        );
        assert_eq!(
            (c.metrics, c.demo_page, c.explain_max_words),
            (MetricsMode::Off, DemoPage::On, 8)
        );
        assert_eq!(c.metrics_namespace, "shop/tagbeez");
        for (name, value) in [
            ("METRICS", "statsd"),
            ("DEMO_PAGE", "yes"),
            ("EXPLAIN_MAX_WORDS", "0"),
            ("INFERENCE_THREADS", "0"),
            ("INFERENCE_THREADS", "17"),
            ("FEEDBACK_TTL_DAYS", "0"),
            ("METRICS_NAMESPACE", "a b"),
        ] {
            assert_eq!(with(&[(name, value)]).unwrap_err().name, name);
        }
        assert!(with(&[("METRICS", "x")])
            .unwrap_err()
            .why
            .contains("auto, emf, prometheus, off"));
    }

    #[test]
    fn the_limit_can_be_set_or_turned_off() {
        let c = with(&[
            ("INFERENCE_CONCURRENCY", "0"),
            ("INFERENCE_QUEUE", "3"),
            ("INFERENCE_QUEUE_TIMEOUT_MS", "250"),
        ])
        .unwrap();
        assert_eq!(
            (c.limit.concurrency, c.limit.queue, c.limit.queue_timeout),
            (0, 3, Duration::from_millis(250))
        );
        assert_eq!(
            with(&[("INFERENCE_CONCURRENCY", "-1")]).unwrap_err().name,
            "INFERENCE_CONCURRENCY"
        );
        assert_eq!(
            with(&[("INFERENCE_QUEUE_TIMEOUT_MS", "5")])
                .unwrap_err()
                .name,
            "INFERENCE_QUEUE_TIMEOUT_MS"
        );
        assert_eq!(
            with(&[("STORE_DEADLINE_MS", "x")]).unwrap_err().name,
            "STORE_DEADLINE_MS"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = with(&[("WINDOW_DECAY", "0")]).unwrap_err();
        assert_eq!(
            (e.name, e.why.as_str()),
            ("WINDOW_DECAY", "must be 0 < d <= 1")
        );
        assert_eq!(with(&[("PORT", "http")]).unwrap_err().name, "PORT");
        assert_eq!(
            with(&[("WINDOW_SIZE", "0")]).unwrap_err().name,
            "WINDOW_SIZE"
        );
        assert_eq!(with(&[("HOST", "localhost:1")]).unwrap_err().name, "HOST");
        let ok = with(&[("WINDOW_DECAY", "0.5"), ("SNIPPET_CHARS", "0")]).unwrap();
        assert_eq!((ok.window.decay, ok.snippet_chars), (0.5, 0));
        let e = with(&[("TABLE_NAME", "t"), ("DYNAMODB_OPERATION_TIMEOUT_MS", "0")]).unwrap_err();
        assert_eq!(e.name, "DYNAMODB_OPERATION_TIMEOUT_MS");
    }

    #[test]
    fn table_name_selects_dynamodb_with_timeouts() {
        assert_eq!(with(&[]).unwrap().dynamodb, None);
        let d = with(&[
            ("TABLE_NAME", "conv"),
            ("DYNAMODB_ENDPOINT", "http://127.0.0.1:9"),
        ])
        .unwrap()
        .dynamodb
        .unwrap();
        assert_eq!(d.table, "conv");
        assert_eq!(d.endpoint.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(
            (d.connect_timeout, d.operation_timeout),
            (Duration::from_secs(1), Duration::from_secs(3))
        );
    }
}
