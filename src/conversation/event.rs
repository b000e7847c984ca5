//! The events a conversation produces: domain values, written into its window's outbox in the
//! same conditional write as the message that caused them, then put by an `events::EventSink`
//! (the port, which knows EventBridge). Their `detail` is documented by
//! `docs/events.schema.json`.

use serde::{Deserialize, Serialize};

use super::TagScore;

/// The EventBridge `source` of every event tagbeez puts.
pub const SOURCE: &str = "tagbeez";
/// `detail-type` of a conversation's tag switch.
pub const TAG_CHANGED: &str = "Conversation tag changed";
/// `detail-type` of a message selected for an `EVENT_TAGS` tag.
pub const MESSAGE_TAGGED: &str = "Message tagged";

/// One event: its `detail-type` and `detail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "detail_type", content = "detail")]
pub enum Event {
    #[serde(rename = "Conversation tag changed")]
    TagChanged(TagChanged),
    #[serde(rename = "Message tagged")]
    MessageTagged(MessageTagged),
}

/// `Conversation tag changed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagChanged {
    /// `{conversation_id}/{message key}/tag-changed`: the same for every copy of this event.
    pub event_id: String,
    pub conversation_id: String,
    /// The message that switched it (its `message_id`, or the SQS `messageId`), if it had one.
    pub message_id: Option<String>,
    /// The tag before; `null` never happens for a switch (a first tag is not a switch).
    pub from: Option<String>,
    /// The tag after; `null` when the conversation lost its tag.
    pub to: Option<String>,
    /// The new tag's confidence (the window's weighted mean), `null` with `to`.
    pub confidence: Option<f32>,
    /// The shop the conversation belongs to, when its messages name one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop_id: Option<String>,
    pub model_version: String,
    /// Epoch seconds, when the message was classified.
    pub at: u64,
}

/// `Message tagged`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageTagged {
    /// `{conversation_id or "-"}/{message key}/tagged/{tag}`.
    pub event_id: String,
    /// The conversation, for a message in one.
    pub conversation_id: Option<String>,
    pub message_id: Option<String>,
    /// The tag this event is for (one of `EVENT_TAGS`).
    pub tag: String,
    pub confidence: f32,
    /// Every tag the message was selected for, most confident first.
    pub selected: Vec<TagScore>,
    /// The conversation's tag after this message, for a message in a conversation.
    pub conversation_tag: Option<TagScore>,
    /// The shop the message was written to, when it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop_id: Option<String>,
    pub model_version: String,
    pub at: u64,
}

impl Event {
    pub fn detail_type(&self) -> &'static str {
        match self {
            Self::TagChanged(_) => TAG_CHANGED,
            Self::MessageTagged(_) => MESSAGE_TAGGED,
        }
    }

    pub fn event_id(&self) -> &str {
        match self {
            Self::TagChanged(e) => &e.event_id,
            Self::MessageTagged(e) => &e.event_id,
        }
    }

    /// The `detail` as the JSON text EventBridge takes.
    pub fn detail_json(&self) -> String {
        let text = match self {
            Self::TagChanged(e) => serde_json::to_string(e),
            Self::MessageTagged(e) => serde_json::to_string(e),
        };
        text.expect("event details serialize")
    }

    /// The metric label of its kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TagChanged(_) => "tag_changed",
            Self::MessageTagged(_) => "message_tagged",
        }
    }
}
