//! Events out, the use-case side: which events a message causes, and their delivery through
//! the conversation's outbox (see `crate::events` for the guarantee).
//!
//! A conversation's events are added to its stored window by the same conditional write as
//! the message (`outbox_for`), put after the write (`deliver`), and removed by one more
//! conditional write once put. A put that fails leaves them in the window: they go out with
//! the conversation's next write, or when the message is retried (a duplicate delivers what
//! its conversation still holds, and nothing when that is empty).

use std::sync::Arc;

use super::{now, timed_store, MessageResult, Tagger};
use crate::conversation::{Conversation, Step};
use crate::events::{Event, EventError, EventSink, MessageTagged, TagChanged};
use crate::store::StoreError;
use crate::telemetry;

/// Undelivered events one conversation keeps at most; older ones are dropped (and counted
/// lost) so a bus that stays down cannot grow a window item towards DynamoDB's 400 KB.
pub const MAX_OUTBOX: usize = 50;

/// The tags whose selection emits `Message tagged` when `EVENT_TAGS` is unset: those of them
/// the model has (a model without them emits only tag switches).
pub const DEFAULT_EVENT_TAGS: &[&str] = &["Hot-buyer"];

/// Attempts at removing delivered events from a window that other writers are changing.
const CLEAR_ATTEMPTS: u32 = 3;

/// The bus and the tags that emit `Message tagged`.
#[derive(Clone)]
pub struct Events {
    sink: Arc<dyn EventSink>,
    /// Indices into the model's tags.
    tagged: Vec<usize>,
}

impl Tagger {
    /// Put events on `sink`: `Conversation tag changed` on every switch, `Message tagged` for
    /// each tag of `tags` (`None`: `DEFAULT_EVENT_TAGS`) a message is selected for. A tag
    /// named in `tags` that the model does not have is an error naming it.
    pub fn with_events(
        mut self,
        sink: Arc<dyn EventSink>,
        tags: Option<&[String]>,
    ) -> Result<Self, String> {
        let known = &self.classifier.labels().tags;
        let defaults: Vec<String> = DEFAULT_EVENT_TAGS
            .iter()
            .filter(|t| known.iter().any(|k| k == *t))
            .map(|t| (*t).to_owned())
            .collect();
        let tagged = tags
            .unwrap_or(&defaults)
            .iter()
            .map(|t| {
                known.iter().position(|k| k == t).ok_or_else(|| {
                    format!("EVENT_TAGS names {t:?}, which is not a tag of the model {known:?}")
                })
            })
            .collect::<Result<_, _>>()?;
        self.events = Some(Events { sink, tagged });
        Ok(self)
    }

    /// `Message tagged` events for a message's selected tags that `EVENT_TAGS` names.
    pub(super) fn tagged_events(
        &self,
        conversation: Option<(&str, &Conversation)>,
        message_key: &str,
        result: &MessageResult,
        at: u64,
        only: Option<&[usize]>,
    ) -> Vec<Event> {
        let Some(events) = &self.events else {
            return Vec::new();
        };
        // The shop's profile may name its own event tags; else `EVENT_TAGS`'.
        let tagged = only.unwrap_or(&events.tagged);
        let tags = &self.classifier.labels().tags;
        let scope = scope(result, conversation.map_or("-", |(id, _)| id));
        result
            .selected
            .iter()
            .filter(|s| tagged.iter().any(|&i| tags[i] == s.tag))
            .map(|s| {
                Event::MessageTagged(MessageTagged {
                    event_id: format!("{scope}/{message_key}/tagged/{}", s.tag),
                    conversation_id: conversation.map(|(id, _)| id.to_owned()),
                    message_id: Some(message_key.to_owned()),
                    tag: s.tag.clone(),
                    confidence: s.confidence,
                    selected: result.selected.clone(),
                    conversation_tag: conversation.and_then(|(_, c)| c.tag.clone()),
                    shop_id: result.shop_id.clone(),
                    model_version: result.model_version.clone(),
                    at,
                })
            })
            .collect()
    }

    /// Add the events of `step` (a message folded into conversation `id`) to the window it
    /// writes. `message_id` keys them; without one, the window's version does. `only`: the
    /// shop's event tags, when its profile names them.
    pub(super) fn outbox_for(
        &self,
        id: &str,
        step: &mut Step,
        message_id: Option<&str>,
        result: &MessageResult,
        at: u64,
        only: Option<&[usize]>,
    ) {
        if self.events.is_none() {
            return;
        }
        let key = message_id.map_or_else(|| format!("v{}", step.next.version), str::to_owned);
        let mut new = Vec::new();
        if step.switched {
            let scoped = scope(result, id);
            new.push(Event::TagChanged(TagChanged {
                event_id: format!("{scoped}/{key}/tag-changed"),
                conversation_id: id.to_owned(),
                message_id: message_id.map(str::to_owned),
                from: step.previous_tag.as_ref().map(|t| t.tag.clone()),
                to: step.next.tag.as_ref().map(|t| t.tag.clone()),
                confidence: step.next.tag.as_ref().map(|t| t.confidence),
                shop_id: result.shop_id.clone(),
                model_version: result.model_version.clone(),
                at,
            }));
        }
        new.extend(self.tagged_events(Some((id, &step.next)), &key, result, at, only));
        let outbox = &mut step.next.outbox;
        outbox.extend(new);
        let excess = outbox.len().saturating_sub(MAX_OUTBOX);
        if excess > 0 {
            outbox.drain(..excess);
            telemetry::events_lost(excess);
            tracing::error!(
                conversation_id = id,
                dropped = excess,
                "the conversation's undelivered events passed MAX_OUTBOX: the oldest were dropped"
            );
        }
    }

    /// Put `events` (not kept anywhere: a queued message without a conversation).
    pub(super) async fn put_events(&self, events: &[Event]) -> Result<(), EventError> {
        match &self.events {
            Some(e) if !events.is_empty() => {
                let put = e.sink.put(events).await;
                count_put(events, put.as_ref().err());
                put
            }
            _ => Ok(()),
        }
    }

    /// Deliver what conversation `id`'s window `written` holds in its outbox, then remove what
    /// was delivered from the stored window. `Err` names what was not delivered (it stays).
    pub(super) async fn deliver(&self, id: &str, written: &Conversation) -> Result<(), EventError> {
        if written.outbox.is_empty() {
            return Ok(());
        }
        let put = self.put_events(&written.outbox).await;
        let undelivered: Vec<String> = match &put {
            Ok(()) => Vec::new(),
            Err(e) => e
                .undelivered(&written.outbox)
                .into_iter()
                .map(|e| e.event_id().to_owned())
                .collect(),
        };
        let delivered: Vec<String> = written
            .outbox
            .iter()
            .map(|e| e.event_id().to_owned())
            .filter(|i| !undelivered.contains(i))
            .collect();
        if !delivered.is_empty() {
            self.clear_delivered(id, written.clone(), &delivered).await;
        }
        put
    }

    /// Remove `delivered` from the stored outbox. A failure here only means those events may
    /// be put once more later (at least once): it is logged, never an error of the message.
    async fn clear_delivered(&self, id: &str, mut current: Conversation, delivered: &[String]) {
        for _ in 0..CLEAR_ATTEMPTS {
            let before = current.outbox.len();
            let mut next = current.clone();
            next.outbox
                .retain(|e| !delivered.iter().any(|d| d == e.event_id()));
            if next.outbox.len() == before {
                return;
            }
            next.version += 1;
            let at = now();
            match timed_store(self.store.save(id, &next, Some(current.version), at)).await {
                Ok(()) => return,
                Err(StoreError::Conflict) => match timed_store(self.store.load(id, at)).await {
                    Ok(Some(c)) => current = c,
                    _ => break,
                },
                Err(StoreError::Unavailable(_)) => break,
            }
        }
        tracing::warn!(
            conversation_id = id,
            "delivered events stay in the window's outbox; they may be put once more"
        );
    }
}

fn count_put(events: &[Event], failed: Option<&EventError>) {
    for event in events {
        let lost = failed.is_some_and(|e| e.undelivered(std::slice::from_ref(event)).len() == 1);
        if !lost {
            telemetry::event_published(event.kind());
        }
    }
}

/// The first part of an event id: the conversation's storage key (`{shop_id}#{conversation}`
/// when the message named a shop), so two shops' conversation `42` never share ids.
fn scope(result: &MessageResult, conversation: &str) -> String {
    super::conversations::storage_key(result.shop_id.as_deref(), conversation)
}
