//! The use cases every adapter shares: classify a message, a batch, a message in a
//! conversation; read and clear a conversation; report health. Validation lives here so the
//! HTTP routes and direct invocation refuse the same inputs with the same codes.

mod conversations;
mod events;
mod experiments;
mod feedback;
pub mod options;
mod queue;
pub mod shops;

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use thiserror::Error;
use utoipa::ToSchema;

use crate::classifier::{Classifier, ClassifierError, Prediction};
use crate::config::{Config, MAX_BATCH};
use crate::conversation::{Step, TagScore};
use crate::drift::{Baseline, Monitor};
use crate::events::EventError;
use crate::explain::{self, Explanation};
use crate::limit::{InferenceLimit, Overloaded};
use crate::store::{
    ConversationStore, ExperimentStore, FeedbackStore, MemoryExperiments, MemoryFeedback,
    MemoryProfiles, ProfileStore,
};
use crate::telemetry::{self, Phase};
pub use events::MAX_OUTBOX;
pub use experiments::{OutcomeReceipt, OutcomeRequest};
pub use options::{ExperimentUse, Options, Resolved, ThresholdSource};
pub use queue::{Queued, QueuedOutcome};
pub use shops::{ProfileSource, Profiles};

/// Messages of one `/classify-batch` call that are explained (the first ones): each costs one
/// more padded batch of its words.
pub const MAX_EXPLAINED_BATCH: usize = 8;

/// Attempts of read -> compute -> conditional write before giving up on a busy conversation.
/// Measured against a local DynamoDB-compatible server, 8 writers on one conversation needed
/// up to ~2 conflicts per write on average and 8 attempts left 3-6% of them short.
pub const SAVE_ATTEMPTS: u32 = 20;

/// Why a use case failed. `api::error` maps each to one HTTP status, in one place.
#[derive(Debug, Error)]
pub enum ServiceError {
    /// The caller sent something unusable; `code` is a stable machine-readable name.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("conversation {0:?} not found")]
    ConversationNotFound(String),
    #[error("conversation store unavailable: {0}")]
    StoreUnavailable(String),
    #[error("conversation {0:?} is being written by too many requests at once; retry")]
    StoreContention(String),
    #[error("inference failed: {0}")]
    Inference(#[from] ClassifierError),
    /// Too many requests are waiting for inference: refused at once, retry shortly.
    #[error("the service is overloaded: {0}; retry shortly")]
    Overloaded(#[from] Overloaded),
    #[error("feedback store unavailable: {0}")]
    FeedbackUnavailable(String),
    /// A queued message's events could not be put (only the queue path fails on this: the
    /// record is retried, and its events go out then).
    #[error("event bus unavailable: {0}")]
    EventsUnavailable(#[from] EventError),
    #[error("shop {0:?} has no profile")]
    ProfileNotFound(String),
    /// The profile store failed where nothing can stand in for it (an operator's call, or an
    /// outcome whose shop's experiment is unknown). Classify calls never fail on it.
    #[error("profile store unavailable: {0}")]
    ProfileUnavailable(String),
    #[error("{0}")]
    ExperimentNotFound(String),
    #[error("experiment store unavailable: {0}")]
    ExperimentsUnavailable(String),
}

impl ServiceError {
    /// The stable machine-readable name of the failure: the HTTP error body's `code`, a
    /// direct invocation's `errorType`, a queue record's failure reason.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { code, .. } => code,
            Self::ConversationNotFound(_) => "conversation_not_found",
            Self::StoreUnavailable(_) => "store_unavailable",
            Self::StoreContention(_) => "store_contention",
            Self::Inference(_) => "internal",
            Self::Overloaded(_) => "overloaded",
            Self::FeedbackUnavailable(_) => "feedback_unavailable",
            Self::EventsUnavailable(_) => "events_unavailable",
            Self::ProfileNotFound(_) => "profile_not_found",
            Self::ProfileUnavailable(_) => "profile_unavailable",
            Self::ExperimentNotFound(_) => "experiment_not_found",
            Self::ExperimentsUnavailable(_) => "experiments_unavailable",
        }
    }

    /// Whether the same request may succeed later (a dependency failed or was busy), as
    /// opposed to a request that never will (invalid, or naming nothing).
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            Self::Invalid { .. }
                | Self::ConversationNotFound(_)
                | Self::ProfileNotFound(_)
                | Self::ExperimentNotFound(_)
        )
    }
}

fn invalid(code: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid {
        code,
        message: message.into(),
    }
}

/// One message's tags: the reference service's fields plus `thresholds`, `truncated` and
/// `model_version`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MessageResult {
    /// The lowest per-tag threshold (the reference service's single threshold field).
    pub threshold: f32,
    /// Each tag's own threshold.
    pub thresholds: std::collections::BTreeMap<String, f32>,
    /// Tags at or above their threshold, most confident first.
    pub selected: Vec<TagScore>,
    /// Every tag with its probability, most confident first.
    pub all: Vec<TagScore>,
    /// Whether the message was cut to the model's maximum tokens.
    pub truncated: bool,
    pub model_version: String,
    /// Personal data found in the message (e-mail addresses, phone, card and IBAN numbers,
    /// street addresses): replaced before anything about the message is stored or logged.
    pub redactions: usize,
    /// With `explain: true`: per selected tag, the words that raised it most.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
    /// Where each tag's threshold came from: `model`, `profile` (the shop's), `variant` (its
    /// experiment's) or `request` (this call's `thresholds`, which win).
    pub threshold_sources: std::collections::BTreeMap<String, ThresholdSource>,
    /// Tags the shop's profile leaves out (`enabled_tags`): never selected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled_tags: Vec<String>,
    /// The request's `shop_id`, when it sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shop_id: Option<String>,
    /// Where the shop's profile came from: `stored` (read now), `cached` (this instance's
    /// copy) or `default` (no shop, no profile, or none readable: the model's settings).
    pub profile: ProfileSource,
    /// Why the shop's stored profile could not be read, when it could not (the answer then
    /// used the last known profile, or the defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_error: Option<String>,
    /// The conversation's experiment and variant, when its shop runs one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentUse>,
}

/// The outcome of a message within a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationOutcome {
    pub step: Step,
    pub message: MessageResult,
    /// The message's `message_id` was already in the conversation: nothing was written, and
    /// `message` is its first result.
    pub duplicate: bool,
}

/// Whether the service can serve.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Health {
    pub model_loaded: bool,
    pub store_reachable: bool,
    /// `"healthy"` (the reference service's word) or `"degraded"` (the store is down:
    /// conversations fail, single messages work).
    pub status: String,
}

/// The application: the model, the conversation store and the settings.
#[derive(Clone)]
pub struct Tagger {
    classifier: Arc<Classifier>,
    store: Arc<dyn ConversationStore>,
    config: Arc<Config>,
    limit: Arc<InferenceLimit>,
    feedback: Arc<dyn FeedbackStore>,
    events: Option<events::Events>,
    profiles: Arc<Profiles>,
    experiments: Arc<dyn ExperimentStore>,
    /// The model's output distribution against its validation baseline (`None` only if the
    /// embedded baseline does not parse, which the model's tests rule out).
    drift: Option<Arc<Monitor>>,
}

impl Tagger {
    pub fn new(
        classifier: Arc<Classifier>,
        store: Arc<dyn ConversationStore>,
        config: Config,
    ) -> Self {
        let profiles = Profiles::new(
            Arc::new(MemoryProfiles::default()),
            config.profile_cache,
            config.profile_timeout,
        );
        let drift = match Baseline::embedded() {
            Ok(b) => Some(Arc::new(Monitor::new(
                &classifier.labels().tags,
                b,
                config.drift_window,
                config.drift_by_shop,
            ))),
            Err(e) => {
                tracing::error!(error = %e, "no drift metrics: the embedded baseline is unusable");
                None
            }
        };
        Self {
            drift,
            limit: InferenceLimit::new(config.limit),
            classifier,
            store,
            config: Arc::new(config),
            feedback: Arc::new(MemoryFeedback::default()),
            events: None,
            profiles: Arc::new(profiles),
            experiments: Arc::new(MemoryExperiments::default()),
        }
    }

    /// Keep shop profiles in `store` (the default is process memory).
    pub fn with_profiles(mut self, store: Arc<dyn ProfileStore>) -> Self {
        let c = &self.config;
        self.profiles = Arc::new(Profiles::new(store, c.profile_cache, c.profile_timeout));
        self
    }

    /// Keep experiment exposures and outcomes in `store` (the default is process memory).
    pub fn with_experiments(mut self, store: Arc<dyn ExperimentStore>) -> Self {
        self.experiments = store;
        self
    }

    /// Keep feedback in `store` (the default is process memory).
    pub fn with_feedback(mut self, store: Arc<dyn FeedbackStore>) -> Self {
        self.feedback = store;
        self
    }

    /// The feedback store, for `export-feedback`.
    pub fn feedback_store(&self) -> &dyn FeedbackStore {
        self.feedback.as_ref()
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Tag one message with the model's thresholds.
    pub async fn classify_message(&self, message: &str) -> Result<MessageResult, ServiceError> {
        self.classify_message_with(message, &Options::default())
            .await
    }

    /// Tag one message, with the caller's options.
    pub async fn classify_message_with(
        &self,
        message: &str,
        options: &Options,
    ) -> Result<MessageResult, ServiceError> {
        Ok(self.classify_message_resolved(message, options).await?.0)
    }

    /// A message's result, and what it was chosen under.
    async fn classify_message_resolved(
        &self,
        message: &str,
        options: &Options,
    ) -> Result<(MessageResult, Resolved), ServiceError> {
        let chosen = self.choose(options, None).await?;
        let trimmed = self.valid_message(message, "message")?;
        let prediction = self.predict(vec![trimmed]).await?.remove(0);
        let result = self.answer(message, &prediction, &chosen).await?;
        Ok((result, chosen))
    }

    /// Tag up to `MAX_BATCH` messages in one padded inference; results in input order.
    pub async fn classify_batch(
        &self,
        messages: &[String],
    ) -> Result<Vec<MessageResult>, ServiceError> {
        self.classify_batch_with(messages, &Options::default())
            .await
    }

    /// As `classify_batch`, with the caller's options (the same for every message).
    pub async fn classify_batch_with(
        &self,
        messages: &[String],
        options: &Options,
    ) -> Result<Vec<MessageResult>, ServiceError> {
        let chosen = self.choose(options, None).await?;
        if messages.is_empty() {
            return Err(invalid(
                "empty_batch",
                "messages must hold at least one message",
            ));
        }
        if messages.len() > MAX_BATCH {
            return Err(invalid(
                "batch_too_large",
                format!(
                    "messages holds {} messages; the limit is {MAX_BATCH}",
                    messages.len()
                ),
            ));
        }
        let checked = messages
            .iter()
            .enumerate()
            .map(|(i, m)| self.valid_message(m, &format!("messages[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let predictions = self.predict(checked).await?;
        let mut results = Vec::with_capacity(predictions.len());
        // Each explanation is one more padded batch: only the first few messages get one.
        let unexplained = Resolved {
            explain: false,
            ..chosen.clone()
        };
        for (i, (message, prediction)) in messages.iter().zip(&predictions).enumerate() {
            let these = if i < MAX_EXPLAINED_BATCH {
                &chosen
            } else {
                &unexplained
            };
            results.push(self.answer(message, prediction, these).await?);
        }
        Ok(results)
    }

    /// What a call uses: `options` over its shop's profile (and, in a conversation, the
    /// variant of the shop's experiment). The call's own options are checked first, so a bad
    /// one costs no profile read.
    async fn choose(
        &self,
        options: &Options,
        conversation_id: Option<&str>,
    ) -> Result<Resolved, ServiceError> {
        let labels = self.classifier.labels();
        options.resolve(labels)?;
        let shop = self.shop(options.shop_id.as_deref()).await?;
        options.resolve_for(labels, shop.as_ref(), conversation_id)
    }

    /// A message's result under `chosen`, explained when asked (`message` as sent).
    async fn answer(
        &self,
        message: &str,
        prediction: &Prediction,
        chosen: &Resolved,
    ) -> Result<MessageResult, ServiceError> {
        let mut result = self.result_of(prediction, chosen);
        let counts = crate::redact::redact(message).counts;
        telemetry::redacted(&[
            ("email", counts.email),
            ("phone", counts.phone),
            ("card", counts.card),
            ("iban", counts.iban),
            ("address", counts.address),
        ]);
        result.redactions = counts.total();
        if chosen.explain {
            result.explanation = Some(self.explain(message, prediction, chosen).await?);
        }
        telemetry::tags_selected(&result.selected);
        if let Some(drift) = &self.drift {
            let effective = chosen.effective();
            let selected: Vec<bool> = (prediction.probabilities.iter().zip(&effective))
                .map(|(p, t)| p >= t)
                .collect();
            // Per-shop series only for shops with a profile: any caller can make up a shop id,
            // and each new one would be new series (and, in CloudWatch, new custom metrics).
            let shop = chosen
                .shop_id
                .as_deref()
                .filter(|_| chosen.profile != ProfileSource::Default);
            drift.observe(shop, &prediction.probabilities, &selected);
        }
        Ok(result)
    }

    /// Occlusion over the first `EXPLAIN_MAX_WORDS` words: one padded batch, through the
    /// same inference limit as every other.
    async fn explain(
        &self,
        message: &str,
        prediction: &Prediction,
        chosen: &Resolved,
    ) -> Result<Explanation, ServiceError> {
        let classifier = Arc::clone(&self.classifier);
        let text = message.to_owned();
        let max_words = self.config.explain_max_words;
        let words = crate::classifier::words(message).len().min(max_words);
        let occlusion = self
            .run_inference(words.max(1), move || classifier.occlude(&text, max_words))
            .await?;
        let selected = self
            .classifier
            .selected_with(prediction, &chosen.effective());
        Ok(explain::explain(
            message,
            &prediction.probabilities,
            &occlusion,
            &selected,
            &self.classifier.labels().tags,
        ))
    }

    pub async fn health(&self) -> Health {
        let store_reachable = self.store.ping().await.is_ok();
        Health {
            model_loaded: true,
            store_reachable,
            status: if store_reachable {
                "healthy"
            } else {
                "degraded"
            }
            .into(),
        }
    }

    async fn predict(&self, messages: Vec<String>) -> Result<Vec<Prediction>, ServiceError> {
        let classifier = Arc::clone(&self.classifier);
        telemetry::batch_size(messages.len());
        self.run_inference(messages.len(), move || {
            let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
            let (predictions, split) = classifier.classify_batch_timed(&refs)?;
            Ok((predictions, split))
        })
        .await
    }

    /// Run one padded batch of `messages` on a blocking thread, within the inference limit,
    /// and charge its split to the request's timings.
    async fn run_inference<T: Send + 'static>(
        &self,
        messages: usize,
        work: impl FnOnce() -> Result<(T, crate::classifier::Split), ClassifierError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let mut slot = self.limit.acquire().await.inspect_err(|_| {
            telemetry::overloaded();
        })?;
        slot.set_messages(messages);
        // tract is CPU-bound and synchronous: keep it off the async workers. The slot is held
        // until the inference ends, even if the request is dropped meanwhile.
        let (value, split) = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await
        .map_err(|e| ClassifierError::Engine(format!("inference task failed: {e}")))??;
        telemetry::add(Phase::Tokenize, split.tokenize);
        telemetry::add(Phase::Inference, split.inference);
        Ok(value)
    }

    fn result_of(&self, prediction: &Prediction, chosen: &Resolved) -> MessageResult {
        let labels = self.classifier.labels();
        let tags = &labels.tags;
        let score = |i: usize| TagScore {
            tag: tags[i].clone(),
            confidence: prediction.probabilities[i],
        };
        let mut all: Vec<TagScore> = (0..tags.len()).map(score).collect();
        all.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        let on = |i: &usize| chosen.enabled[*i];
        // The lowest threshold a tag can be selected at (all tags', when none can be).
        let lowest = (0..tags.len())
            .filter(on)
            .map(|i| chosen.thresholds[i])
            .reduce(f32::min)
            .or_else(|| chosen.thresholds.iter().copied().reduce(f32::min))
            .unwrap_or(1.0);
        MessageResult {
            threshold: lowest,
            thresholds: tags
                .iter()
                .cloned()
                .zip(chosen.thresholds.clone())
                .collect(),
            selected: self
                .classifier
                .selected_with(prediction, &chosen.effective())
                .into_iter()
                .map(score)
                .collect(),
            all,
            truncated: prediction.truncated,
            model_version: labels.file.model_version.clone(),
            redactions: 0,
            explanation: None,
            threshold_sources: tags.iter().cloned().zip(chosen.sources.clone()).collect(),
            disabled_tags: (0..tags.len())
                .filter(|i| !on(i))
                .map(|i| tags[i].clone())
                .collect(),
            shop_id: chosen.shop_id.clone(),
            profile: chosen.profile,
            profile_error: chosen.profile_error.clone(),
            experiment: chosen.experiment.clone(),
        }
    }

    /// Whether `message` would be accepted (`field` names it in the error).
    pub fn check_message(&self, message: &str, field: &str) -> Result<(), ServiceError> {
        self.valid_message(message, field).map(|_| ())
    }

    /// A message holds a character that is not whitespace (`char::is_whitespace`) and at most
    /// `max_message_chars` characters as sent, surrounding whitespace included: exactly the
    /// OpenAPI document's `Message` (`pattern` and `maxLength`, which count the raw string).
    /// It is classified trimmed.
    fn valid_message(&self, message: &str, field: &str) -> Result<String, ServiceError> {
        let trimmed = message.trim();
        if trimmed.is_empty() {
            return Err(invalid("empty_message", format!("{field} is empty")));
        }
        let chars = message.chars().count();
        if chars > self.config.max_message_chars {
            return Err(invalid(
                "message_too_long",
                format!(
                    "{field} has {chars} characters; the limit is {}",
                    self.config.max_message_chars
                ),
            ));
        }
        Ok(trimmed.to_owned())
    }
}

/// Conversation ids: 1-128 characters of `[A-Za-z0-9_.:@-]` (safe as a DynamoDB key, a URL
/// path segment and a log field).
pub fn valid_conversation_id(id: &str) -> Result<(), ServiceError> {
    if is_safe_id(id) {
        Ok(())
    } else {
        Err(invalid(
            "invalid_conversation_id",
            "conversation_id must be 1-128 characters of A-Z, a-z, 0-9, '_', '.', ':', '@', '-'",
        ))
    }
}

/// Message ids: 1-128 characters of `[A-Za-z0-9_.:@-]`, like conversation ids (they are
/// stored and logged the same way).
pub fn valid_message_id(id: &str) -> Result<(), ServiceError> {
    if is_safe_id(id) {
        Ok(())
    } else {
        Err(invalid(
            "invalid_message_id",
            "message_id must be 1-128 characters of A-Z, a-z, 0-9, '_', '.', ':', '@', '-'",
        ))
    }
}

/// 1-128 characters of `[A-Za-z0-9_.:@-]`: the id pattern the OpenAPI document states.
pub use crate::schema::ID_PATTERN;

fn is_safe_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:@-".contains(&b))
}

/// A conversation-store call, its time charged to the request's `store` phase.
async fn timed_store<T>(call: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = call.await;
    telemetry::add(Phase::Store, started.elapsed());
    out
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
