//! Step Functions Distributed Map batches: `{"Items": [...], "BatchInput": {...}}`, the shape
//! an `ItemBatcher` hands a task, for tagging a shop's chat logs in bulk (statemachine/).
//!
//! Each item is one JSON line of the input file: an object with `message` and, optionally,
//! `id`, `conversation_id` and `message_id`, echoed in its result so the output joins back
//! to the input (other fields are ignored, never echoed). `BatchInput` may hold `thresholds`.
//! Items are tagged as single messages: a bulk run writes no conversation windows and puts
//! no events (last year's chats need neither routing nor a live window).
//!
//! An item whose message is unusable (missing, empty, too long) gets an `error` in its result
//! and the rest of the batch goes on: one bad line never costs its 63 neighbours. A batch
//! that cannot be read (`invalid_event`, `unknown_tag` in `BatchInput`) or whose inference
//! fails (`overloaded`, which the map's `Retry` retries; `internal`, which it does not) is a
//! function error by the contract, counted against the map's tolerated failure percentage.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{to_value, FunctionError};
use crate::api::ApiError;
use crate::config::MAX_BATCH;
use crate::service::{MessageResult, Options, Tagger};

/// An `ItemBatcher` batch.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Batch {
    items: Vec<Value>,
    #[serde(default)]
    batch_input: Option<BatchInput>,
}

/// What the state machine passes every batch (`ItemBatcher.BatchInput`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchInput {
    #[serde(default)]
    thresholds: Option<BTreeMap<String, f64>>,
    /// The shop whose logs these are: its profile applies to every item.
    #[serde(default)]
    shop_id: Option<String>,
}

/// One line of the input file; unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct Item {
    message: String,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    message_id: Option<String>,
}

/// An item's result: its ids and either its tags or why it has none.
#[derive(Debug, Serialize)]
struct ItemResult {
    /// The item's position in its batch.
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    result: Option<MessageResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ItemError>,
}

#[derive(Debug, Serialize)]
struct ItemError {
    code: String,
    message: String,
}

/// `Items` is what marks a Distributed Map batch.
pub(super) fn is_batch(payload: &Value) -> bool {
    payload.get("Items").is_some() && payload.get("operation").is_none()
}

pub(super) async fn event(tagger: &Tagger, payload: Value) -> Result<Value, FunctionError> {
    let batch: Batch = serde_json::from_value(payload).map_err(|e| {
        FunctionError::invalid_event(format!(
            "not a valid Distributed Map batch ({{\"Items\": [...], \"BatchInput\"?: \
             {{\"thresholds\"?, \"shop_id\"?}}}}): {e}"
        ))
    })?;
    let input = batch.batch_input.unwrap_or_default();
    let options = Options {
        explain: false,
        thresholds: input.thresholds,
        shop_id: input.shop_id,
    };
    let mut results = Vec::with_capacity(batch.items.len());
    let mut usable = Vec::new();
    for (index, raw) in batch.items.into_iter().enumerate() {
        let (result, message) = read_item(tagger, index, raw);
        if let Some(message) = message {
            usable.push((index, message));
        }
        results.push(result);
    }
    for chunk in usable.chunks(MAX_BATCH) {
        let messages: Vec<String> = chunk.iter().map(|(_, m)| m.clone()).collect();
        let tagged = tagger
            .classify_batch_with(&messages, &options)
            .await
            .map_err(|e| FunctionError::from(ApiError::from(e)))?;
        for ((index, _), result) in chunk.iter().zip(tagged) {
            results[*index].result = Some(result);
        }
    }
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    Ok(to_value(serde_json::json!({
        "count": results.len(),
        "failed": failed,
        "results": results,
    })))
}

/// An item's result so far (its ids, or its error) and its message when usable.
fn read_item(tagger: &Tagger, index: usize, raw: Value) -> (ItemResult, Option<String>) {
    let mut out = ItemResult {
        index,
        id: None,
        conversation_id: None,
        message_id: None,
        result: None,
        error: None,
    };
    let item = match serde_json::from_value::<Item>(raw) {
        Ok(item) => item,
        Err(e) => {
            out.error = Some(ItemError {
                code: "invalid_item".into(),
                message: format!("Items[{index}] is not an object with a `message` string: {e}"),
            });
            return (out, None);
        }
    };
    out.id = item.id;
    out.conversation_id = item.conversation_id;
    out.message_id = item.message_id;
    match tagger.check_message(&item.message, &format!("Items[{index}].message")) {
        Ok(()) => (out, Some(item.message)),
        Err(e) => {
            out.error = Some(ItemError {
                code: e.code().into(),
                message: e.to_string(),
            });
            (out, None)
        }
    }
}
