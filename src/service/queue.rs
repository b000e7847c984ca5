//! The queued-message use case: a record from a queue, answered to nobody, so its only
//! outputs are its conversation's window and its events. Unlike a caller who waits, a queue
//! retries: here an event that could not be put fails the message (`events_unavailable`),
//! and the retry delivers it (at least once).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{now, ConversationOutcome, MessageResult, Options, ServiceError, Tagger};

/// A queued message: a classify-conversation request, or a classify-message request when it
/// names no conversation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Queued {
    #[serde(default)]
    pub conversation_id: Option<String>,
    pub message: String,
    /// Defaults to the queue's own id for the record (SQS `messageId`): a record delivered
    /// twice is then a duplicate, never a second window entry.
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub explain: bool,
    #[serde(default)]
    pub thresholds: Option<BTreeMap<String, f64>>,
    /// The shop the message was written to: its profile applies.
    #[serde(default)]
    pub shop_id: Option<String>,
}

/// What a queued message did.
#[derive(Debug, Clone, PartialEq)]
pub enum QueuedOutcome {
    Conversation(Box<ConversationOutcome>),
    Message(Box<MessageResult>),
}

impl Tagger {
    /// Tag a queued message and deliver its events; `queue_id` is the queue's id for it.
    pub async fn classify_queued(
        &self,
        queued: Queued,
        queue_id: &str,
    ) -> Result<QueuedOutcome, ServiceError> {
        let options = Options {
            explain: queued.explain,
            thresholds: queued.thresholds,
            shop_id: queued.shop_id,
        };
        let message_id = queued.message_id.as_deref().unwrap_or(queue_id);
        match queued.conversation_id.as_deref() {
            Some(id) => {
                let (outcome, undelivered) = self
                    .conversation_step(id, &queued.message, Some(message_id), &options)
                    .await?;
                match undelivered {
                    Some(e) => Err(ServiceError::EventsUnavailable(e)),
                    None => Ok(QueuedOutcome::Conversation(Box::new(outcome))),
                }
            }
            None => {
                super::valid_message_id(message_id)?;
                let (result, chosen) = self
                    .classify_message_resolved(&queued.message, &options)
                    .await?;
                let only = chosen.event_tags.as_deref();
                let events = self.tagged_events(None, message_id, &result, now(), only);
                self.put_events(&events).await?;
                Ok(QueuedOutcome::Message(Box::new(result)))
            }
        }
    }
}
