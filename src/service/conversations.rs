//! The conversation use cases: a message folded into its conversation's window (read,
//! compute, conditional write, retried on conflict, idempotent by `message_id`), a window
//! read and cleared. Its events and experiment exposure go out after the write.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{
    now, timed_store, valid_conversation_id, valid_message_id, ConversationOutcome, Options,
    Resolved, ServiceError, Tagger, SAVE_ATTEMPTS,
};
use crate::classifier::Prediction;
use crate::conversation::{self, Conversation, Entry, Step, WindowRules};
use crate::events::EventError;
use crate::store::StoreError;
use crate::telemetry;

/// What one attempt at folding a message into its window did.
enum Folded {
    Written(Step),
    /// The message id was already there (a retry, or a concurrent copy that won).
    Duplicate(Conversation),
}

impl Tagger {
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
    pub(super) async fn conversation_step(
        &self,
        id: &str,
        sent: &str,
        message_id: Option<&str>,
        options: &Options,
    ) -> Result<(ConversationOutcome, Option<EventError>), ServiceError> {
        valid_conversation_id(id)?;
        let chosen = self.choose(options, Some(id)).await?;
        // Shops choose their own conversation ids: one shop's "42" is not another's.
        let key = storage_key(chosen.shop_id.as_deref(), id);
        let key = key.as_str();
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
                timed_store(self.store.load(key, now()))
                    .await
                    .map_err(store_error(id))
            };
            let current = within(&mut budget, id, read).await?;
            if let Some(c) = current.as_ref().filter(|c| c.has_message(mid)) {
                return self.duplicate(key, c.clone(), mid, sent, &chosen).await;
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
        let only = chosen.event_tags.as_deref();
        let events = |step: &mut Step| self.outbox_for(id, step, message_id, &result, at, only);
        let fold = self.fold_into_window(key, entry, preloaded, &chosen, events);
        match within(&mut budget, id, fold).await? {
            Folded::Written(step) => {
                if step.switched {
                    telemetry::conversation_switched();
                }
                let (delivered, ()) = tokio::join!(
                    self.deliver(key, &step.next),
                    self.expose(id, &chosen, result.selected.len())
                );
                let undelivered = delivered.err();
                let outcome = ConversationOutcome {
                    step,
                    message: result,
                    duplicate: false,
                };
                Ok((outcome, undelivered))
            }
            Folded::Duplicate(c) => {
                let mid = message_id.unwrap_or_default();
                self.duplicate(key, c, mid, sent, &chosen).await
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

    /// The stored window, if the conversation is live (`shop_id`: the shop it was written
    /// for, if it was).
    pub async fn conversation(
        &self,
        id: &str,
        shop_id: Option<&str>,
    ) -> Result<Conversation, ServiceError> {
        valid_conversation_id(id)?;
        let key = scoped(id, shop_id)?;
        timed_store(self.store.load(&key, now()))
            .await
            .map_err(store_error(id))?
            .ok_or_else(|| ServiceError::ConversationNotFound(id.to_owned()))
    }

    /// Forget a conversation; `false` when there was no live one (not an error: as in the
    /// reference service, clearing is idempotent).
    pub async fn clear_conversation(
        &self,
        id: &str,
        shop_id: Option<&str>,
    ) -> Result<bool, ServiceError> {
        valid_conversation_id(id)?;
        let key = scoped(id, shop_id)?;
        timed_store(self.store.delete(&key, now()))
            .await
            .map_err(store_error(id))
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
        chosen: &Resolved,
        events: impl Fn(&mut Step),
    ) -> Result<Folded, ServiceError> {
        let labels = self.classifier.labels();
        let thresholds = chosen.effective();
        let rules = WindowRules {
            size: chosen.window_size.unwrap_or(self.config.window.size),
            ..self.config.window
        };
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
                &rules,
                &labels.tags,
                &thresholds,
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

/// Exponential backoff with full jitter: 0..(5 ms * 2^attempt), capped at 100 ms.
fn backoff(attempt: u32) -> Duration {
    let cap = (5u64 << attempt.min(5)).min(100);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Duration::from_millis(u64::from(nanos) % (cap + 1))
}

/// Where a conversation's window is stored: under its id, or `{shop_id}#{id}` when a shop
/// names it (ids cannot hold `#`, so the two never collide).
pub(super) fn storage_key(shop_id: Option<&str>, id: &str) -> String {
    match shop_id {
        Some(shop) => format!("{shop}#{id}"),
        None => id.to_owned(),
    }
}

/// `storage_key` for a shop id still to be checked.
fn scoped(id: &str, shop_id: Option<&str>) -> Result<String, ServiceError> {
    if let Some(shop) = shop_id {
        super::shops::valid_shop_id(shop)?;
    }
    Ok(storage_key(shop_id, id))
}
