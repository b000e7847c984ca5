//! The DynamoDB store: one item per conversation, optimistic concurrency on `version`, TTL on
//! `expires_at`.
//!
//! Item: `conversation_id` (S, partition key), `window` (S: the entries as JSON; the service
//! reads and writes the window whole, so one attribute keeps the item one read and one
//! write), `tag` (S, JSON, absent when none), `message_ids` (S, JSON: the client ids of the
//! last messages, for idempotent retries; absent when none), `outbox` (S, JSON: events not yet
//! delivered, see `events`; absent when none), `version`, `updated_at`, `expires_at` (N, epoch
//! seconds; the table's TTL attribute). No full message text is ever stored: entries hold
//! only the configured snippet.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;

use super::{ConversationStore, StoreError};
use crate::conversation::Conversation;

/// Key of the item `/health` reads: a cheap GetItem the function's policy already allows.
const HEALTH_KEY: &str = "__tagbeez_health__";

/// How to reach the table.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamoSettings {
    pub table: String,
    /// `DYNAMODB_ENDPOINT`: a local DynamoDB-compatible server; `None` for AWS.
    pub endpoint: Option<String>,
    pub connect_timeout: Duration,
    pub operation_timeout: Duration,
}

/// Conversations in a DynamoDB table. Build once at start-up and share: the client holds the
/// connection pool.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub async fn connect(settings: &DynamoSettings) -> Self {
        Self {
            client: client(settings).await,
            table: settings.table.clone(),
        }
    }
}

/// A DynamoDB client with the settings' endpoint and timeouts (shared by both tables' stores).
pub(super) async fn client(settings: &DynamoSettings) -> Client {
    let config = crate::aws_sdk::config(
        settings.endpoint.as_deref(),
        settings.connect_timeout,
        settings.operation_timeout,
    )
    .await;
    Client::new(&config)
}

#[async_trait]
impl ConversationStore for DynamoStore {
    async fn load(&self, id: &str, now: u64) -> Result<Option<Conversation>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("conversation_id", AttributeValue::S(id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        match out.item() {
            Some(item) => Ok(Some(from_item(item)?).filter(|c| c.is_live(now))),
            None => Ok(None),
        }
    }

    async fn save(
        &self,
        id: &str,
        next: &Conversation,
        expected: Option<u64>,
        now: u64,
    ) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(id, next)?))
            .expression_attribute_values(":now", number(now));
        // An expired item counts as absent: it may be replaced by a fresh conversation.
        put = match expected {
            None => put.condition_expression(
                "attribute_not_exists(conversation_id) OR expires_at <= :now",
            ),
            Some(v) => put
                .condition_expression("version = :expected AND expires_at > :now")
                .expression_attribute_values(":expected", number(v)),
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(StoreError::Conflict),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn delete(&self, id: &str, now: u64) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("conversation_id", AttributeValue::S(id.to_owned()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        match out.attributes() {
            Some(item) => Ok(from_item(item)?.is_live(now)),
            None => Ok(false),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("conversation_id", AttributeValue::S(HEALTH_KEY.into()))
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}

pub(super) fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn to_item(id: &str, c: &Conversation) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut item = HashMap::from([
        (
            "conversation_id".to_owned(),
            AttributeValue::S(id.to_owned()),
        ),
        ("window".to_owned(), AttributeValue::S(json(&c.entries)?)),
        ("version".to_owned(), number(c.version)),
        ("updated_at".to_owned(), number(c.updated_at)),
        ("expires_at".to_owned(), number(c.expires_at)),
    ]);
    if let Some(tag) = &c.tag {
        item.insert("tag".to_owned(), AttributeValue::S(json(tag)?));
    }
    if !c.message_ids.is_empty() {
        item.insert(
            "message_ids".to_owned(),
            AttributeValue::S(json(&c.message_ids)?),
        );
    }
    if !c.outbox.is_empty() {
        item.insert("outbox".to_owned(), AttributeValue::S(json(&c.outbox)?));
    }
    Ok(item)
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Unavailable(format!("encode: {e}")))
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Conversation, StoreError> {
    let bad = |what: &str| StoreError::Unavailable(format!("stored conversation has a bad {what}"));
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok());
    let num = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| bad(k))
    };
    Ok(Conversation {
        entries: serde_json::from_str(text("window").ok_or_else(|| bad("window"))?)
            .map_err(|_| bad("window"))?,
        tag: text("tag")
            .map(|t| serde_json::from_str(t))
            .transpose()
            .map_err(|_| bad("tag"))?,
        version: num("version")?,
        updated_at: num("updated_at")?,
        expires_at: num("expires_at")?,
        message_ids: text("message_ids")
            .map(|t| serde_json::from_str::<Vec<String>>(t))
            .transpose()
            .map_err(|_| bad("message_ids"))?
            .unwrap_or_default(),
        outbox: text("outbox")
            .map(|t| serde_json::from_str(t))
            .transpose()
            .map_err(|_| bad("outbox"))?
            .unwrap_or_default(),
    })
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

pub(super) fn unavailable<E: std::error::Error + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> StoreError {
    StoreError::Unavailable(crate::aws_sdk::chain(&e))
}
