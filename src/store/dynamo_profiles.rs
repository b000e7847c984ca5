//! Shop profiles in DynamoDB: one item per shop.
//!
//! Item: `shop_id` (S, partition key), `profile` (S: the `Profile` as JSON; the service reads
//! and writes it whole, and JSON keeps the nested thresholds and experiment as the API shows
//! them), `updated_at` and `version` (N). No TTL: a profile lives until it is deleted.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;

use super::dynamo::{client, number, unavailable};
use super::{DynamoSettings, ProfileStore, StoreError};
use crate::shops::StoredProfile;

/// Profiles in a DynamoDB table. Build once at start-up and share: the client holds the
/// connection pool.
#[derive(Debug, Clone)]
pub struct DynamoProfiles {
    client: Client,
    table: String,
}

impl DynamoProfiles {
    pub async fn connect(settings: &DynamoSettings) -> Self {
        Self {
            client: client(settings).await,
            table: settings.table.clone(),
        }
    }

    fn key(shop_id: &str) -> AttributeValue {
        AttributeValue::S(shop_id.to_owned())
    }
}

#[async_trait]
impl ProfileStore for DynamoProfiles {
    async fn get(&self, shop_id: &str) -> Result<Option<StoredProfile>, StoreError> {
        // Consistent: an operator who just wrote a profile reads back what they wrote.
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("shop_id", Self::key(shop_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item().map(from_item).transpose()
    }

    async fn put(&self, shop_id: &str, profile: &StoredProfile) -> Result<(), StoreError> {
        // Unconditional: last write wins (profiles are written rarely, by an operator).
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(shop_id, profile)?))
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn delete(&self, shop_id: &str) -> Result<bool, StoreError> {
        // The old item tells whether there was one, in the same call.
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("shop_id", Self::key(shop_id))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.attributes().is_some_and(|old| !old.is_empty()))
    }
}

fn to_item(
    shop_id: &str,
    p: &StoredProfile,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let profile = serde_json::to_string(&p.profile)
        .map_err(|e| StoreError::Unavailable(format!("encode profile: {e}")))?;
    Ok(HashMap::from([
        ("shop_id".to_owned(), DynamoProfiles::key(shop_id)),
        ("profile".to_owned(), AttributeValue::S(profile)),
        ("updated_at".to_owned(), number(p.updated_at)),
        ("version".to_owned(), number(p.version)),
    ]))
}

/// The stored profile, or which attribute is missing or malformed (never a panic: the item
/// may have been written by hand or by another version).
fn from_item(item: &HashMap<String, AttributeValue>) -> Result<StoredProfile, StoreError> {
    let bad =
        |what: &str| StoreError::Unavailable(format!("stored profile has a missing or bad {what}"));
    let num = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| bad(k))
    };
    let json = item
        .get("profile")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| bad("profile"))?;
    let profile = serde_json::from_str(json)
        .map_err(|e| StoreError::Unavailable(format!("stored profile has a bad profile: {e}")))?;
    Ok(StoredProfile {
        profile,
        updated_at: num("updated_at")?,
        version: num("version")?,
    })
}
