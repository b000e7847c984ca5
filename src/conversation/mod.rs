//! Conversation logic: pure functions over a window of the last messages' probabilities.
//!
//! No I/O and no clock: the caller passes `now`, so every rule here is unit-testable and the
//! store only persists what these functions return.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod event;

#[cfg(test)]
mod tests;

/// A tag and how confident the model (or the window) is in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TagScore {
    pub tag: String,
    /// A calibrated probability in [0, 1] (for a conversation tag, the window's weighted mean of
    /// them); compare it with the tag's threshold, which is on the same scale.
    pub confidence: f32,
}

/// One message as the window remembers it: never its full text, only a snippet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Entry {
    /// Probability per tag, in the model's tag order.
    pub probabilities: Vec<f32>,
    /// The message's selected tags, most confident first.
    pub top: Vec<TagScore>,
    /// The first characters of the message (the evidence shown to agents).
    pub snippet: String,
    /// When the message was classified, epoch seconds.
    pub at: u64,
    /// The client's id for the message (`message_id`), when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Whether the message was cut to the model's maximum tokens (kept so that a retried
    /// message is answered with exactly its first result).
    #[serde(default)]
    pub truncated: bool,
    /// The conversation tag before this message, and whether this message switched it: what
    /// its first answer said, replayed to a retry of it (`message_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_tag: Option<TagScore>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub switched: bool,
}

/// A conversation's stored state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Conversation {
    /// Oldest first; at most the window size.
    pub entries: Vec<Entry>,
    /// The conversation tag after the last message, if any cleared its threshold.
    pub tag: Option<TagScore>,
    /// Incremented on every write: the optimistic-concurrency token.
    pub version: u64,
    pub updated_at: u64,
    /// After this instant (epoch seconds) the conversation no longer exists.
    pub expires_at: u64,
    /// The `message_id`s of the last `REMEMBERED_IDS` messages, oldest first: a retried
    /// message is recognised even after it has left the window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message_ids: Vec<String>,
    /// Events written with the message that caused them and not yet delivered (the outbox of
    /// `events`): delivered and removed after the write, or with the next write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(ignore)]
    pub outbox: Vec<event::Event>,
}

/// How many message ids a conversation remembers for idempotent retries. A retry comes
/// seconds after its first attempt; 100 later messages in one conversation in between is far
/// past any real chat.
pub const REMEMBERED_IDS: usize = 100;

/// How the window is aggregated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowRules {
    /// Messages kept (the reference keeps 3).
    pub size: usize,
    /// Weight of a message one step older than the next, in (0, 1]; 1 is the plain mean.
    pub decay: f32,
    /// Lifetime of a conversation after its last write.
    pub ttl_seconds: u64,
}

/// What one new message did to a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub next: Conversation,
    pub previous_tag: Option<TagScore>,
    /// True when a previous conversation tag existed and the new one differs (also when the
    /// conversation lost its tag).
    pub switched: bool,
}

/// Cut a message to at most `max_chars` characters, marking the cut with "...".
pub fn snippet(message: &str, max_chars: usize) -> String {
    let mut chars = message.chars();
    let head: String = chars.by_ref().take(max_chars).collect();
    if chars.next().is_some() && max_chars > 0 {
        format!("{head}...")
    } else {
        head
    }
}

/// Weighted mean of the window's probability vectors: the newest message has weight 1, each
/// older one `decay` times the weight of the next. `None` for an empty window.
pub fn weighted_mean(entries: &[Entry], decay: f32) -> Option<Vec<f32>> {
    let width = entries.first()?.probabilities.len();
    let mut sum = vec![0f32; width];
    let mut total = 0f32;
    let mut weight = 1f32;
    for entry in entries.iter().rev() {
        for (s, p) in sum.iter_mut().zip(&entry.probabilities) {
            *s += weight * p;
        }
        total += weight;
        weight *= decay;
    }
    Some(sum.into_iter().map(|s| s / total).collect())
}

/// The top tag of the mean, if it clears that tag's own threshold. A tag whose threshold is
/// infinite (disabled by the shop's profile) is never the top tag: the top of the others is.
pub fn conversation_tag(mean: &[f32], tags: &[String], thresholds: &[f32]) -> Option<TagScore> {
    let (best, &confidence) = mean
        .iter()
        .enumerate()
        .filter(|(i, _)| thresholds.get(*i).is_some_and(|t| t.is_finite()))
        .max_by(|a, b| a.1.total_cmp(b.1))?;
    let tag = tags.get(best)?;
    (confidence >= *thresholds.get(best)?).then(|| TagScore {
        tag: tag.clone(),
        confidence,
    })
}

/// Add a message to a conversation (or start one) and recompute its tag.
pub fn advance(
    current: Option<&Conversation>,
    entry: Entry,
    rules: &WindowRules,
    tags: &[String],
    thresholds: &[f32],
) -> Step {
    let now = entry.at;
    let mut message_ids = current.map(|c| c.message_ids.clone()).unwrap_or_default();
    if let Some(id) = &entry.message_id {
        message_ids.push(id.clone());
        let excess = message_ids.len().saturating_sub(REMEMBERED_IDS);
        message_ids.drain(..excess);
    }
    let mut entries = current.map(|c| c.entries.clone()).unwrap_or_default();
    entries.push(entry);
    let excess = entries.len().saturating_sub(rules.size.max(1));
    entries.drain(..excess);
    let tag = weighted_mean(&entries, rules.decay)
        .and_then(|mean| conversation_tag(&mean, tags, thresholds));
    let previous_tag = current.and_then(|c| c.tag.clone());
    let switched = previous_tag
        .as_ref()
        .is_some_and(|p| tag.as_ref().map(|t| &t.tag) != Some(&p.tag));
    if let Some(newest) = entries.last_mut() {
        newest.previous_tag = previous_tag.clone();
        newest.switched = switched;
    }
    Step {
        next: Conversation {
            entries,
            tag,
            version: current.map_or(0, |c| c.version) + 1,
            updated_at: now,
            expires_at: now.saturating_add(rules.ttl_seconds),
            message_ids,
            outbox: current.map(|c| c.outbox.clone()).unwrap_or_default(),
        },
        previous_tag,
        switched,
    }
}

impl Conversation {
    /// Expired conversations count as absent everywhere (stores delete them only eventually).
    pub fn is_live(&self, now: u64) -> bool {
        now < self.expires_at
    }

    /// Whether a message with this client id was already folded in.
    pub fn has_message(&self, message_id: &str) -> bool {
        self.message_ids.iter().any(|m| m == message_id)
    }

    /// The window's entry for a client message id, while it is still in the window.
    pub fn entry_of(&self, message_id: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.message_id.as_deref() == Some(message_id))
    }
}
