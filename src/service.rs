//! The use cases every adapter shares: classify a message, a batch, a message in a
//! conversation; read and clear a conversation; report health. Validation lives here so the
//! HTTP routes and direct invocation refuse the same inputs with the same codes.

mod events;
mod feedback;
pub mod options;
mod queue;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use thiserror::Error;
use utoipa::ToSchema;

use crate::classifier::{Classifier, ClassifierError, Prediction};
use crate::config::{Config, MAX_BATCH};
use crate::conversation::{self, Conversation, Entry, Step, TagScore};
use crate::events::EventError;
use crate::explain::{self, Explanation};
use crate::limit::{InferenceLimit, Overloaded};
use crate::store::{ConversationStore, FeedbackStore, MemoryFeedback, StoreError};
use crate::telemetry::{self, Phase};
pub use events::MAX_OUTBOX;
pub use options::{Options, Resolved};
pub use queue::{Queued, QueuedOutcome};

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
        }
    }

    /// Whether the same request may succeed later (a dependency failed or was busy), as
    /// opposed to a request that never will (invalid, or naming nothing).
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Invalid { .. } | Self::ConversationNotFound(_))
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

/// What one attempt at folding a message into its window did.
enum Folded {
    Written(Step),
    /// The message id was already there (a retry, or a concurrent copy that won).
    Duplicate(Conversation),
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
}

impl Tagger {
    pub fn new(
        classifier: Arc<Classifier>,
        store: Arc<dyn ConversationStore>,
        config: Config,
    ) -> Self {
        Self {
            limit: InferenceLimit::new(config.limit),
            classifier,
            store,
            config: Arc::new(config),
            feedback: Arc::new(MemoryFeedback::default()),
            events: None,
        }
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
        let chosen = options.resolve(self.classifier.labels())?;
        let trimmed = self.valid_message(message, "message")?;
        let prediction = self.predict(vec![trimmed]).await?.remove(0);
        self.answer(message, &prediction, &chosen).await
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
        let chosen = options.resolve(self.classifier.labels())?;
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

    /// A message's result under `chosen`, explained when asked (`message` as sent).
    async fn answer(
        &self,
        message: &str,
        prediction: &Prediction,
        chosen: &Resolved,
    ) -> Result<MessageResult, ServiceError> {
        let mut result = self.result_of(prediction, &chosen.thresholds);
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
            .selected_with(prediction, &chosen.thresholds);
        Ok(explain::explain(
            message,
            &prediction.probabilities,
            &occlusion,
            &selected,
            &self.classifier.labels().tags,
        ))
    }

    /// Tag a message and fold it into its conversation's window. With a `message_id` the write
    /// is idempotent: a message whose id the conversation already holds is answered with its
    /// first result, and nothing is written (`duplicate`).
    pub async fn classify_conversation(
        &self,
        id: &str,
        message: &str,
        message_id: Option<&str>,
    ) -> Result<ConversationOutcome, ServiceError> {
        self.classify_conversation_with(id, message, message_id, &Options::default())
            .await
    }

    /// As `classify_conversation`, with the caller's options: its thresholds select the
    /// message's tags and the conversation tag of this step. Events that could not be put
    /// are counted lost (`tagbeez_events_lost`) and stay in the conversation's outbox: the
    /// caller's answer does not wait on the bus.
    pub async fn classify_conversation_with(
        &self,
        id: &str,
        sent: &str,
        message_id: Option<&str>,
        options: &Options,
    ) -> Result<ConversationOutcome, ServiceError> {
        let (outcome, undelivered) = self
            .conversation_step(id, sent, message_id, options)
            .await?;
        if let Some(e) = undelivered {
            let n = match &e {
                EventError::Partial { failed, .. } => failed.len(),
                EventError::Unavailable(_) => outcome.step.next.outbox.len().max(1),
            };
            telemetry::events_lost(n);
            tracing::warn!(
                conversation_id = id,
                error = %e,
                "events not delivered; they stay in the conversation's outbox"
            );
        }
        Ok(outcome)
    }

    /// A message folded into its conversation, and what its events' delivery left undone.
    async fn conversation_step(
        &self,
        id: &str,
        sent: &str,
        message_id: Option<&str>,
        options: &Options,
    ) -> Result<(ConversationOutcome, Option<EventError>), ServiceError> {
        let chosen = options.resolve(self.classifier.labels())?;
        valid_conversation_id(id)?;
        let message = self.valid_message(sent, "message")?;
        if let Some(mid) = message_id {
            valid_message_id(mid)?;
        }
        let mut budget = self.config.store_deadline;
        // With a message id, read first: a retry then costs one read, not an inference, and
        // the read serves the write's first attempt (still two store calls per write).
        let mut preloaded = None;
        if let Some(mid) = message_id {
            let read = async {
                timed_store(self.store.load(id, now()))
                    .await
                    .map_err(store_error(id))
            };
            let current = within(&mut budget, id, read).await?;
            if let Some(c) = current.as_ref().filter(|c| c.has_message(mid)) {
                return self.duplicate(id, c.clone(), mid, sent, &chosen).await;
            }
            preloaded = Some(current);
        }
        // Personal data never reaches the store: the snippet is cut from the redacted text.
        let redacted = crate::redact::redact(&message).text;
        let snippet = conversation::snippet(&redacted, self.config.snippet_chars);
        let prediction = self.predict(vec![message.clone()]).await?.remove(0);
        let result = self.answer(sent, &prediction, &chosen).await?;
        let entry = Entry {
            probabilities: prediction.probabilities,
            top: result.selected.clone(),
            snippet,
            at: now(),
            message_id: message_id.map(str::to_owned),
            truncated: prediction.truncated,
            // Set by `conversation::advance` against the window the write replaces.
            previous_tag: None,
            switched: false,
        };
        let at = entry.at;
        let events = |step: &mut Step| self.outbox_for(id, step, message_id, &result, at);
        let fold = self.fold_into_window(id, entry, preloaded, &chosen.thresholds, events);
        match within(&mut budget, id, fold).await? {
            Folded::Written(step) => {
                if step.switched {
                    telemetry::conversation_switched();
                }
                let undelivered = self.deliver(id, &step.next).await.err();
                let outcome = ConversationOutcome {
                    step,
                    message: result,
                    duplicate: false,
                };
                Ok((outcome, undelivered))
            }
            Folded::Duplicate(c) => {
                let mid = message_id.unwrap_or_default();
                self.duplicate(id, c, mid, sent, &chosen).await
            }
        }
    }

    /// The answer to a message the conversation already holds: its first answer (its result,
    /// the tag before it and whether it switched, all kept in its window entry) with the
    /// conversation as it stands now. Once the message has left the window, or if the entry
    /// was written by a model with other tags, the same model runs again on the same text, and
    /// `previous_tag` is the current tag, `switched` false: this call changed nothing.
    ///
    /// Events the conversation still holds undelivered go out now: a retried message whose
    /// events failed delivers them, and one whose events went out delivers nothing again.
    async fn duplicate(
        &self,
        id: &str,
        current: Conversation,
        message_id: &str,
        sent: &str,
        chosen: &Resolved,
    ) -> Result<(ConversationOutcome, Option<EventError>), ServiceError> {
        let width = self.classifier.labels().tags.len();
        let stored = current
            .entry_of(message_id)
            .filter(|e| e.probabilities.len() == width);
        let (prediction, previous_tag, switched) = match stored {
            Some(e) => (
                Prediction {
                    probabilities: e.probabilities.clone(),
                    truncated: e.truncated,
                    tokens: 0,
                },
                e.previous_tag.clone(),
                e.switched,
            ),
            None => {
                let message = self.valid_message(sent, "message")?;
                let p = self.predict(vec![message]).await?.remove(0);
                (p, current.tag.clone(), false)
            }
        };
        let result = self.answer(sent, &prediction, chosen).await?;
        let undelivered = self.deliver(id, &current).await.err();
        let outcome = ConversationOutcome {
            step: Step {
                previous_tag,
                switched,
                next: current,
            },
            message: result,
            duplicate: true,
        };
        Ok((outcome, undelivered))
    }

    /// The stored window, if the conversation is live.
    pub async fn conversation(&self, id: &str) -> Result<Conversation, ServiceError> {
        valid_conversation_id(id)?;
        timed_store(self.store.load(id, now()))
            .await
            .map_err(store_error(id))?
            .ok_or_else(|| ServiceError::ConversationNotFound(id.to_owned()))
    }

    /// Forget a conversation; `false` when there was no live one (not an error: as in the
    /// reference service, clearing is idempotent).
    pub async fn clear_conversation(&self, id: &str) -> Result<bool, ServiceError> {
        valid_conversation_id(id)?;
        timed_store(self.store.delete(id, now()))
            .await
            .map_err(store_error(id))
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

    /// Read -> compute -> conditional write, retried with jittered backoff when another
    /// writer got there first, so no concurrent message is lost from the window and
    /// `switched` is computed against the window the write actually replaced.
    /// `preloaded` is a read already made for this write, used for its first attempt;
    /// `events` adds the step's events to the window it writes.
    async fn fold_into_window(
        &self,
        id: &str,
        entry: Entry,
        mut preloaded: Option<Option<Conversation>>,
        thresholds: &[f32],
        events: impl Fn(&mut Step),
    ) -> Result<Folded, ServiceError> {
        let labels = self.classifier.labels();
        for attempt in 0..SAVE_ATTEMPTS {
            let now = entry.at;
            // A pre-read made before the inference is used only while still live: a
            // conversation that expired meanwhile may have been started afresh, at version 1
            // again, by another writer.
            let fresh = preloaded
                .take()
                .filter(|c| c.as_ref().is_none_or(|c| c.is_live(now)));
            let current = match fresh {
                Some(read) => read,
                None => timed_store(self.store.load(id, now))
                    .await
                    .map_err(store_error(id))?,
            };
            let seen =
                |c: &Conversation| entry.message_id.as_ref().is_some_and(|m| c.has_message(m));
            if let Some(c) = current.as_ref().filter(|c| seen(c)) {
                return Ok(Folded::Duplicate(c.clone()));
            }
            let mut step = conversation::advance(
                current.as_ref(),
                entry.clone(),
                &self.config.window,
                &labels.tags,
                thresholds,
            );
            events(&mut step);
            let expected = current.as_ref().map(|c| c.version);
            match timed_store(self.store.save(id, &step.next, expected, now)).await {
                Ok(()) => return Ok(Folded::Written(step)),
                Err(StoreError::Conflict) => {
                    telemetry::store_retried();
                    tokio::time::sleep(backoff(attempt)).await
                }
                Err(e) => return Err(store_error(id)(e)),
            }
        }
        telemetry::store_error("contention");
        Err(ServiceError::StoreContention(id.to_owned()))
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

    fn result_of(&self, prediction: &Prediction, thresholds: &[f32]) -> MessageResult {
        let labels = self.classifier.labels();
        let score = |i: usize| TagScore {
            tag: labels.tags[i].clone(),
            confidence: prediction.probabilities[i],
        };
        let mut all: Vec<TagScore> = (0..labels.tags.len()).map(score).collect();
        all.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        MessageResult {
            threshold: thresholds.iter().copied().fold(f32::INFINITY, f32::min),
            thresholds: labels
                .tags
                .iter()
                .cloned()
                .zip(thresholds.iter().copied())
                .collect(),
            selected: self
                .classifier
                .selected_with(prediction, thresholds)
                .into_iter()
                .map(score)
                .collect(),
            all,
            truncated: prediction.truncated,
            model_version: labels.file.model_version.clone(),
            redactions: 0,
            explanation: None,
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
pub const ID_PATTERN: &str = "^[A-Za-z0-9_.:@-]{1,128}$";

fn is_safe_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:@-".contains(&b))
}

/// Run a store step within what is left of a write's `STORE_DEADLINE_MS`, and charge it the
/// time taken. Only store steps count (inference does not): a slow store gets a 503 within
/// the deadline, never a hang. A write cut off here may have landed; a retry with the same
/// `message_id` then finds it instead of writing it twice.
async fn within<T>(
    budget: &mut Duration,
    id: &str,
    work: impl std::future::Future<Output = Result<T, ServiceError>>,
) -> Result<T, ServiceError> {
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(*budget, work).await;
    *budget = budget.saturating_sub(started.elapsed());
    result.unwrap_or_else(|_| {
        telemetry::store_error("timeout");
        Err(ServiceError::StoreUnavailable(format!(
            "conversation {id:?}: the store did not answer within STORE_DEADLINE_MS"
        )))
    })
}

fn store_error(id: &str) -> impl Fn(StoreError) -> ServiceError + '_ {
    move |e| match e {
        StoreError::Conflict => {
            telemetry::store_error("contention");
            ServiceError::StoreContention(id.to_owned())
        }
        StoreError::Unavailable(why) => {
            telemetry::store_error("unavailable");
            ServiceError::StoreUnavailable(why)
        }
    }
}

/// A conversation-store call, its time charged to the request's `store` phase.
async fn timed_store<T>(call: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = call.await;
    telemetry::add(Phase::Store, started.elapsed());
    out
}

/// Exponential backoff with full jitter: 0..(5 ms * 2^attempt), capped at 100 ms.
fn backoff(attempt: u32) -> Duration {
    let cap = (5u64 << attempt.min(5)).min(100);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Duration::from_millis(u64::from(nanos) % (cap + 1))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
