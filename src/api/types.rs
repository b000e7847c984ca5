//! Request and response bodies of the routes (the reference service's field names, plus new
//! fields; none renamed).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::conversation::{Conversation, Entry, TagScore};
use crate::service::{ConversationOutcome, MessageResult, Options};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    #[schema(value_type = super::openapi::Message)]
    pub message: String,
    /// Add, per selected tag, the words that raised its probability most (occlusion: one
    /// more padded batch, of the message with each of its first `EXPLAIN_MAX_WORDS` words
    /// removed).
    #[serde(default)]
    pub explain: bool,
    /// This call's thresholds for some or all tags (tag -> probability in [0, 1]); the others
    /// keep the model's. Echoed, all of them, in the result's `thresholds`.
    #[serde(default)]
    #[schema(value_type = Option<super::openapi::Thresholds>)]
    pub thresholds: Option<BTreeMap<String, f64>>,
    /// The shop the message was written to (1-128 characters of `[A-Za-z0-9_.:@-]`): its
    /// profile's thresholds, enabled tags, window size and event tags apply, and in a
    /// conversation its experiment's variant. The answer's `profile` says where the profile
    /// came from, `threshold_sources` where each threshold did.
    #[serde(default)]
    #[schema(value_type = Option<super::openapi::Id>)]
    pub shop_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    #[schema(value_type = super::openapi::Messages)]
    pub messages: Vec<String>,
    /// As on `/classify-message`; only the first `MAX_EXPLAINED_BATCH` (8) messages are
    /// explained (each costs one more padded batch), and `explained` says how many were.
    #[serde(default)]
    pub explain: bool,
    #[serde(default)]
    #[schema(value_type = Option<super::openapi::Thresholds>)]
    pub thresholds: Option<BTreeMap<String, f64>>,
    /// As on `/classify-message`: the shop's profile applies to every message.
    #[serde(default)]
    #[schema(value_type = Option<super::openapi::Id>)]
    pub shop_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    /// One result per message, in input order.
    pub results: Vec<MessageResult>,
    /// With `explain: true`: how many results (the first ones) carry an explanation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explained: Option<usize>,
}

impl BatchResponse {
    pub fn new(results: Vec<MessageResult>) -> Self {
        let explained = results
            .iter()
            .any(|r| r.explanation.is_some())
            .then(|| results.iter().filter(|r| r.explanation.is_some()).count());
        Self { results, explained }
    }
}

/// The options of a request's `explain`, `thresholds` and `shop_id` fields.
pub fn options(
    explain: bool,
    thresholds: Option<BTreeMap<String, f64>>,
    shop_id: Option<String>,
) -> Options {
    Options {
        explain,
        thresholds,
        shop_id,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationRequest {
    /// 1-128 characters of `[A-Za-z0-9_.:@-]`.
    #[schema(value_type = super::openapi::Id)]
    pub conversation_id: String,
    #[schema(value_type = super::openapi::Message)]
    pub message: String,
    /// Optional (absent or null), chosen by the client, unique within the conversation (1-128
    /// characters of `[A-Za-z0-9_.:@-]`). A retry with the same id is answered with the first
    /// result and appends nothing (`duplicate: true`).
    #[serde(default)]
    #[schema(value_type = Option<super::openapi::Id>)]
    pub message_id: Option<String>,
    /// As on `/classify-message`.
    #[serde(default)]
    pub explain: bool,
    /// As on `/classify-message`; they also decide this step's conversation tag.
    #[serde(default)]
    #[schema(value_type = Option<super::openapi::Thresholds>)]
    pub thresholds: Option<BTreeMap<String, f64>>,
    /// As on `/classify-message`; the conversation is also placed in the shop's experiment,
    /// if it runs one (`message_result.experiment`).
    #[serde(default)]
    #[schema(value_type = Option<super::openapi::Id>)]
    pub shop_id: Option<String>,
}

/// `GET` and `DELETE /conversation/{id}`: the shop the conversation was written for, if it was
/// (a shop's conversations are its own: another shop's `42` is another conversation).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShopQuery {
    /// The `shop_id` the conversation's messages were sent with.
    #[param(value_type = Option<super::openapi::Id>)]
    pub shop_id: Option<String>,
}

/// A recent message as evidence for the conversation tag.
#[derive(Debug, Serialize, ToSchema)]
pub struct Evidence {
    /// The message's stored snippet (at most `SNIPPET_CHARS` characters, then "...").
    pub message: String,
    /// The message's selected tags.
    pub top: Vec<TagScore>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationResponse {
    #[schema(value_type = super::openapi::Id)]
    pub conversation_id: String,
    /// The lowest per-tag threshold (the reference's single threshold).
    pub threshold: f32,
    /// The top tag of the window's (weighted) mean, if it clears its threshold; else null.
    #[schema(required = true)]
    pub conversation_tag: Option<TagScore>,
    /// The conversation tag before this message (null if there was none).
    #[schema(required = true)]
    pub previous_tag: Option<TagScore>,
    /// True when a previous conversation tag existed and the new one differs.
    pub switched: bool,
    /// The last two messages of the window.
    pub evidence: Vec<Evidence>,
    /// This message's own result.
    pub message_result: MessageResult,
    /// Messages now in the window.
    pub window_size: usize,
    /// The request's `message_id`, when it had one (absent otherwise, never null).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = super::openapi::Id)]
    pub message_id: Option<String>,
    /// True when the `message_id` was already in the conversation when this request checked
    /// (a retry, a concurrent copy, or this request's own earlier attempt whose answer was
    /// lost): nothing was written, and `message_result`, `previous_tag` and `switched` are the
    /// first answer's, while the message is still in the window (after it has left: the same
    /// model on the same text, the current tag, and `switched` false).
    pub duplicate: bool,
}

impl ConversationResponse {
    pub fn new(id: &str, message_id: Option<String>, outcome: ConversationOutcome) -> Self {
        let next = outcome.step.next;
        let skip = next.entries.len().saturating_sub(2);
        Self {
            conversation_id: id.to_owned(),
            threshold: outcome.message.threshold,
            conversation_tag: next.tag.clone(),
            previous_tag: outcome.step.previous_tag,
            switched: outcome.step.switched,
            evidence: next.entries[skip..]
                .iter()
                .map(|e| Evidence {
                    message: e.snippet.clone(),
                    top: e.top.clone(),
                })
                .collect(),
            message_result: outcome.message,
            window_size: next.entries.len(),
            message_id,
            duplicate: outcome.duplicate,
        }
    }
}

/// `GET /conversation/{id}`: the stored window.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    #[schema(value_type = super::openapi::Id)]
    pub conversation_id: String,
    /// The conversation tag after the last message (null if none cleared its threshold).
    #[schema(required = true)]
    pub conversation_tag: Option<TagScore>,
    /// Oldest first.
    pub window: Vec<Entry>,
    pub window_size: usize,
    pub version: u64,
    pub updated_at: u64,
    pub expires_at: u64,
}

impl ConversationView {
    pub fn new(id: &str, c: Conversation) -> Self {
        Self {
            conversation_id: id.to_owned(),
            conversation_tag: c.tag,
            window_size: c.entries.len(),
            window: c.entries,
            version: c.version,
            updated_at: c.updated_at,
            expires_at: c.expires_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Cleared {
    #[schema(value_type = super::openapi::Id)]
    pub conversation_id: String,
    /// False when there was no live conversation to clear (still a 200, as in the
    /// reference service).
    pub cleared: bool,
    /// The reference service's answer: "Conversation <id> cleared" or "... not found".
    pub message: String,
}

impl Cleared {
    pub fn new(conversation_id: String, cleared: bool) -> Self {
        let what = if cleared { "cleared" } else { "not found" };
        Self {
            message: format!("Conversation {conversation_id} {what}"),
            conversation_id,
            cleared,
        }
    }
}

/// `GET /`: what this service is and serves.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceInfo {
    pub service: String,
    pub version: String,
    pub model_version: String,
    pub base_encoder: String,
    pub tags: Vec<String>,
    pub thresholds: BTreeMap<String, f32>,
    /// Method and path of every route.
    pub routes: Vec<String>,
    /// The reference service's list: the paths, without methods.
    pub endpoints: Vec<String>,
    /// The reference service's field: always true (the model is embedded).
    pub model_loaded: bool,
    /// How the model runs on this instance's CPU.
    pub inference: InferenceInfo,
}

/// The execution form chosen at load (`INFERENCE_FORM`, docs/performance.md).
#[derive(Debug, Serialize, ToSchema)]
pub struct InferenceInfo {
    /// `int8` (int8 weights, activations quantized per token) or `f32` (weights widened).
    #[schema(example = "int8")]
    pub form: String,
    /// Why: the setting, or the CPU feature found or missing.
    #[schema(example = "auto: this x86_64 CPU has avx512vnni (fast int8 dot products)")]
    pub reason: String,
}
