//! Feedback: a person's correction of a message's tags, kept to retrain the model on.
//!
//! This is the one place where tagbeez keeps a customer's message text: retraining needs it.
//! Conversations keep only snippets. Records expire (`FEEDBACK_TTL_DAYS`), and
//! `tagbeez export-feedback` writes them as the JSON lines `make model FEEDBACK=...` reads.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::schema::MAX_SOURCE_CHARS;

/// A correction, as a caller sends it (`POST /feedback`, direct operation `feedback`).
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    /// The message, as it was classified.
    #[schema(value_type = crate::schema::Message)]
    pub message: String,
    /// The tags the message should have had: known tags, none repeated; `[]` when no tag
    /// applies.
    #[schema(value_type = crate::schema::Tags)]
    pub tags: Vec<String>,
    /// The tags the service gave it, when known.
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::Tags>)]
    pub predicted: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::Id>)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::Id>)]
    pub message_id: Option<String>,
    /// Who corrected it, e.g. `agent` or `demo`: 1-64 characters of `[A-Za-z0-9_.:@-]`.
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::Source>)]
    pub source: Option<String>,
    /// The shop the message was written to, when the classify call named one.
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::Id>)]
    pub shop_id: Option<String>,
}

/// A stored correction: one line of `tagbeez export-feedback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    pub feedback_id: String,
    /// Trimmed, as the model saw it, then redacted (`crate::redact`: e-mail addresses, phone,
    /// card and IBAN numbers and street addresses replaced by tokens).
    pub message: String,
    pub tags: Vec<String>,
    pub predicted: Option<Vec<String>>,
    /// The model that was serving when the correction arrived.
    pub model_version: String,
    pub conversation_id: Option<String>,
    pub message_id: Option<String>,
    pub source: Option<String>,
    /// The shop, when the correction named one (absent from older records and exports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop_id: Option<String>,
    /// Epoch seconds.
    pub received_at: u64,
}

/// The answer to a stored correction.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FeedbackReceipt {
    pub feedback_id: String,
    pub stored: bool,
    pub tags: Vec<String>,
    pub model_version: String,
    pub received_at: u64,
}

impl From<&FeedbackRecord> for FeedbackReceipt {
    fn from(r: &FeedbackRecord) -> Self {
        Self {
            feedback_id: r.feedback_id.clone(),
            stored: true,
            tags: r.tags.clone(),
            model_version: r.model_version.clone(),
            received_at: r.received_at,
        }
    }
}

/// `source`: 1-64 characters of `[A-Za-z0-9_.:@-]` (it is logged and exported as is).
pub fn valid_source(source: &str) -> bool {
    (1..=MAX_SOURCE_CHARS).contains(&source.len())
        && source
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:@-".contains(&b))
}
