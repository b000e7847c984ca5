//! Events out: what tagbeez tells systems that react to tags, and where it sends them.
//!
//! Two kinds, both on the `tagbeez` source:
//! - `Conversation tag changed`: a message switched its conversation's tag;
//! - `Message tagged`: a message was selected for one of the tags `EVENT_TAGS` names
//!   (by default `Hot-buyer`), one event per such tag.
//!
//! The `detail` of each is documented by `docs/events.schema.json` (a test checks every event
//! built here against it). Events are domain values: the sink (`EventSink`) is the one place
//! that knows EventBridge, as `store` is for DynamoDB.
//!
//! Delivery is at least once, by an outbox: a conversation's events are written into its
//! stored window in the same conditional write as the message that caused them, then put,
//! then removed from the window. An event that could not be put stays and goes out with the
//! conversation's next write or the retry of its message. Each carries a stable `event_id`
//! for consumers to drop the rare second copy.

mod eventbridge;
mod memory;

use async_trait::async_trait;
use thiserror::Error;

pub use eventbridge::{EventBridgeSettings, EventBridgeSink};
pub use memory::MemorySink;

// The events themselves are domain values, kept in the conversation's outbox: they live in
// `conversation::event`, so that the domain never names this port.
pub use crate::conversation::event::{
    Event, MessageTagged, TagChanged, MESSAGE_TAGGED, SOURCE, TAG_CHANGED,
};

/// What a put did not deliver.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EventError {
    /// Nothing was delivered: the bus could not be reached or refused the call.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    /// Some entries were refused; `failed` holds their `event_id`s.
    #[error("{} of {total} events not delivered: {reason}", failed.len())]
    Partial {
        failed: Vec<String>,
        total: usize,
        reason: String,
    },
}

impl EventError {
    /// The `event_id`s not delivered out of `events`.
    pub fn undelivered<'a>(&self, events: &'a [Event]) -> Vec<&'a Event> {
        match self {
            Self::Unavailable(_) => events.iter().collect(),
            Self::Partial { failed, .. } => events
                .iter()
                .filter(|e| failed.iter().any(|f| f == e.event_id()))
                .collect(),
        }
    }
}

/// Where events go. Implementations retry what their client retries; a call that returns
/// `Ok` delivered every event.
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    async fn put(&self, events: &[Event]) -> Result<(), EventError>;
}
