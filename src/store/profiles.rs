//! Shop profiles by shop id: the trait the service sees, and the in-memory store (the local
//! default and the tests' reference). DynamoDB: `dynamo_profiles.rs`.

use std::collections::HashMap;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::StoreError;
use crate::shops::StoredProfile;

/// Shop profiles keyed by shop id. Last write wins: a profile is written by an operator, rarely.
#[async_trait]
pub trait ProfileStore: Send + Sync + 'static {
    async fn get(&self, shop_id: &str) -> Result<Option<StoredProfile>, StoreError>;
    async fn put(&self, shop_id: &str, profile: &StoredProfile) -> Result<(), StoreError>;
    /// `false` when the shop had no profile.
    async fn delete(&self, shop_id: &str) -> Result<bool, StoreError>;
}

/// Profiles in process memory: lost on restart, not shared between instances.
#[derive(Debug, Default)]
pub struct MemoryProfiles {
    profiles: Mutex<HashMap<String, StoredProfile>>,
}

#[async_trait]
impl ProfileStore for MemoryProfiles {
    async fn get(&self, shop_id: &str) -> Result<Option<StoredProfile>, StoreError> {
        Ok(self.profiles.lock().await.get(shop_id).cloned())
    }

    async fn put(&self, shop_id: &str, profile: &StoredProfile) -> Result<(), StoreError> {
        self.profiles
            .lock()
            .await
            .insert(shop_id.to_owned(), profile.clone());
        Ok(())
    }

    async fn delete(&self, shop_id: &str) -> Result<bool, StoreError> {
        Ok(self.profiles.lock().await.remove(shop_id).is_some())
    }
}
