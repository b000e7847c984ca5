//! Direct invocations by other Lambdas (and Step Functions tasks): `{"operation": ..., ...the
//! route's body fields}`, answered with the route's JSON body, or failed by the error contract
//! (`error.rs`).

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Deserialize;
use serde_json::Value;

use super::{to_value, FunctionError};
use crate::api::types::{options, BatchResponse, Cleared, ConversationResponse, ConversationView};
use crate::api::ApiError;
use crate::feedback::Feedback;
use crate::service::{OutcomeRequest, Tagger};
use crate::telemetry;

type Thresholds = Option<BTreeMap<String, f64>>;

/// A direct invocation, named by `operation`.
#[derive(Debug, Deserialize)]
#[serde(tag = "operation", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Operation {
    ClassifyMessage {
        message: String,
        #[serde(default)]
        explain: bool,
        #[serde(default)]
        thresholds: Thresholds,
        #[serde(default)]
        shop_id: Option<String>,
    },
    ClassifyBatch {
        messages: Vec<String>,
        #[serde(default)]
        explain: bool,
        #[serde(default)]
        thresholds: Thresholds,
        #[serde(default)]
        shop_id: Option<String>,
    },
    ClassifyConversation {
        conversation_id: String,
        message: String,
        #[serde(default)]
        message_id: Option<String>,
        #[serde(default)]
        explain: bool,
        #[serde(default)]
        thresholds: Thresholds,
        #[serde(default)]
        shop_id: Option<String>,
    },
    GetConversation {
        conversation_id: String,
        #[serde(default)]
        shop_id: Option<String>,
    },
    ClearConversation {
        conversation_id: String,
        #[serde(default)]
        shop_id: Option<String>,
    },
    Feedback {
        message: String,
        tags: Vec<String>,
        #[serde(default)]
        predicted: Option<Vec<String>>,
        #[serde(default)]
        conversation_id: Option<String>,
        #[serde(default)]
        message_id: Option<String>,
        #[serde(default)]
        source: Option<String>,
        #[serde(default)]
        shop_id: Option<String>,
    },
    /// `POST /outcome`'s body.
    Outcome(OutcomeRequest),
}

impl Operation {
    /// The `route` label of its metrics.
    fn route(&self) -> &'static str {
        match self {
            Self::ClassifyMessage { .. } => "direct:classify-message",
            Self::ClassifyBatch { .. } => "direct:classify-batch",
            Self::ClassifyConversation { .. } => "direct:classify-conversation",
            Self::GetConversation { .. } => "direct:get-conversation",
            Self::ClearConversation { .. } => "direct:clear-conversation",
            Self::Feedback { .. } => "direct:feedback",
            Self::Outcome(_) => "direct:outcome",
        }
    }
}

/// A direct invocation with the metrics and log line an HTTP request gets.
pub(super) async fn observed(tagger: &Tagger, op: Operation) -> Result<Value, FunctionError> {
    let started = Instant::now();
    let route = op.route();
    let (answer, timings) = telemetry::measured(direct(tagger, op)).await;
    let elapsed = started.elapsed();
    let status = answer.as_ref().map_or_else(|e| e.status.as_u16(), |_| 200);
    telemetry::request(route, status, elapsed, &timings);
    tracing::info!(
        route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1e3,
        tokenize_ms = timings.tokenize.as_secs_f64() * 1e3,
        inference_ms = timings.inference.as_secs_f64() * 1e3,
        store_ms = timings.store.as_secs_f64() * 1e3,
        "request"
    );
    answer.map_err(FunctionError::from)
}

async fn direct(tagger: &Tagger, op: Operation) -> Result<Value, ApiError> {
    let value = match op {
        Operation::ClassifyMessage {
            message,
            explain,
            thresholds,
            shop_id,
        } => to_value(
            tagger
                .classify_message_with(&message, &options(explain, thresholds, shop_id))
                .await?,
        ),
        Operation::ClassifyBatch {
            messages,
            explain,
            thresholds,
            shop_id,
        } => to_value(BatchResponse::new(
            tagger
                .classify_batch_with(&messages, &options(explain, thresholds, shop_id))
                .await?,
        )),
        Operation::ClassifyConversation {
            conversation_id,
            message,
            message_id,
            explain,
            thresholds,
            shop_id,
        } => {
            let outcome = tagger
                .classify_conversation_with(
                    &conversation_id,
                    &message,
                    message_id.as_deref(),
                    &options(explain, thresholds, shop_id),
                )
                .await?;
            to_value(ConversationResponse::new(
                &conversation_id,
                message_id,
                outcome,
            ))
        }
        Operation::GetConversation {
            conversation_id,
            shop_id,
        } => {
            let conversation = tagger
                .conversation(&conversation_id, shop_id.as_deref())
                .await?;
            to_value(ConversationView::new(&conversation_id, conversation))
        }
        Operation::ClearConversation {
            conversation_id,
            shop_id,
        } => {
            let cleared = tagger
                .clear_conversation(&conversation_id, shop_id.as_deref())
                .await?;
            to_value(Cleared::new(conversation_id, cleared))
        }
        Operation::Feedback {
            message,
            tags,
            predicted,
            conversation_id,
            message_id,
            source,
            shop_id,
        } => to_value(
            tagger
                .feedback(Feedback {
                    message,
                    tags,
                    predicted,
                    conversation_id,
                    message_id,
                    source,
                    shop_id,
                })
                .await?,
        ),
        Operation::Outcome(req) => to_value(tagger.record_outcome(req).await?),
    };
    Ok(value)
}
