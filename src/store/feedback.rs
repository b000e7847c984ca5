//! Where feedback lives: append-only records. The service only ever puts (in Lambda its
//! policy on the feedback table allows `PutItem` and nothing else); `export-feedback`, run by
//! an operator with read access, pages through them.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use tokio::sync::Mutex;

use super::dynamo::{client, number, unavailable};
use super::{DynamoSettings, StoreError};
use crate::feedback::FeedbackRecord;

/// One page of an export, and where the next starts (`None`: the last page).
pub type Page = (Vec<FeedbackRecord>, Option<String>);

#[async_trait]
pub trait FeedbackStore: Send + Sync + 'static {
    /// Store a record durably, to be deleted after `expires_at` (epoch seconds).
    async fn put(&self, record: &FeedbackRecord, expires_at: u64) -> Result<(), StoreError>;

    /// Records after the key `after` (`None`: from the start), in no particular order.
    async fn page(&self, after: Option<String>) -> Result<Page, StoreError>;
}

/// Feedback in process memory: the local server's default. Lost on exit.
#[derive(Debug, Default)]
pub struct MemoryFeedback {
    records: Mutex<Vec<FeedbackRecord>>,
}

#[async_trait]
impl FeedbackStore for MemoryFeedback {
    async fn put(&self, record: &FeedbackRecord, _expires_at: u64) -> Result<(), StoreError> {
        self.records.lock().await.push(record.clone());
        Ok(())
    }

    async fn page(&self, _after: Option<String>) -> Result<Page, StoreError> {
        Ok((self.records.lock().await.clone(), None))
    }
}

/// Feedback in its own DynamoDB table (`FEEDBACK_TABLE_NAME`): partition key `feedback_id`,
/// native attributes (tags as lists of strings), TTL on `expires_at`.
#[derive(Debug, Clone)]
pub struct DynamoFeedback {
    client: Client,
    table: String,
}

impl DynamoFeedback {
    pub async fn connect(settings: &DynamoSettings) -> Self {
        Self {
            client: client(settings).await,
            table: settings.table.clone(),
        }
    }
}

#[async_trait]
impl FeedbackStore for DynamoFeedback {
    async fn put(&self, record: &FeedbackRecord, expires_at: u64) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record, expires_at)))
            // A record is written once: never overwrite one (ids are random UUIDs).
            .condition_expression("attribute_not_exists(feedback_id)")
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn page(&self, after: Option<String>) -> Result<Page, StoreError> {
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .set_exclusive_start_key(
                after.map(|k| HashMap::from([("feedback_id".to_owned(), AttributeValue::S(k))])),
            )
            .send()
            .await
            .map_err(unavailable)?;
        let records = out
            .items()
            .iter()
            .map(from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = out
            .last_evaluated_key()
            .and_then(|k| k.get("feedback_id"))
            .and_then(|v| v.as_s().ok())
            .cloned();
        Ok((records, next))
    }
}

fn strings(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().cloned().map(AttributeValue::S).collect())
}

fn to_item(r: &FeedbackRecord, expires_at: u64) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        (
            "feedback_id".to_owned(),
            AttributeValue::S(r.feedback_id.clone()),
        ),
        ("message".to_owned(), AttributeValue::S(r.message.clone())),
        ("tags".to_owned(), strings(&r.tags)),
        (
            "model_version".to_owned(),
            AttributeValue::S(r.model_version.clone()),
        ),
        ("received_at".to_owned(), number(r.received_at)),
        ("expires_at".to_owned(), number(expires_at)),
    ]);
    if let Some(p) = &r.predicted {
        item.insert("predicted".to_owned(), strings(p));
    }
    for (name, value) in [
        ("conversation_id", &r.conversation_id),
        ("message_id", &r.message_id),
        ("source", &r.source),
        ("shop_id", &r.shop_id),
    ] {
        if let Some(v) = value {
            item.insert(name.to_owned(), AttributeValue::S(v.clone()));
        }
    }
    item
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Result<FeedbackRecord, StoreError> {
    let bad = |what: &str| StoreError::Unavailable(format!("stored feedback has a bad {what}"));
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let list = |k: &str| -> Result<Option<Vec<String>>, StoreError> {
        let Some(v) = item.get(k) else {
            return Ok(None);
        };
        let l = v.as_l().map_err(|_| bad(k))?;
        l.iter()
            .map(|s| s.as_s().cloned().map_err(|_| bad(k)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    };
    Ok(FeedbackRecord {
        feedback_id: text("feedback_id").ok_or_else(|| bad("feedback_id"))?,
        message: text("message").ok_or_else(|| bad("message"))?,
        tags: list("tags")?.ok_or_else(|| bad("tags"))?,
        predicted: list("predicted")?,
        model_version: text("model_version").ok_or_else(|| bad("model_version"))?,
        conversation_id: text("conversation_id"),
        message_id: text("message_id"),
        source: text("source"),
        shop_id: text("shop_id"),
        received_at: item
            .get("received_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("received_at"))?,
    })
}
