//! The in-memory store: the local default and the tests' reference implementation.

use std::collections::HashMap;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{ConversationStore, StoreError};
use crate::conversation::Conversation;

const SWEEP_AT: usize = 10_000;

/// Conversations in a process-local map. Lost on restart; not shared between Lambda
/// instances (set `TABLE_NAME` for that).
#[derive(Debug, Default)]
pub struct MemoryStore {
    conversations: Mutex<HashMap<String, Conversation>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ConversationStore for MemoryStore {
    async fn load(&self, id: &str, now: u64) -> Result<Option<Conversation>, StoreError> {
        let map = self.conversations.lock().await;
        Ok(map.get(id).filter(|c| c.is_live(now)).cloned())
    }

    async fn save(
        &self,
        id: &str,
        next: &Conversation,
        expected: Option<u64>,
        now: u64,
    ) -> Result<(), StoreError> {
        let mut map = self.conversations.lock().await;
        let stored = map.get(id).filter(|c| c.is_live(now)).map(|c| c.version);
        if stored != expected {
            return Err(StoreError::Conflict);
        }
        map.insert(id.to_owned(), next.clone());
        // Expired conversations are invisible already; drop them in bulk now and then so a
        // long-running local server does not grow without bound.
        if map.len() >= SWEEP_AT {
            map.retain(|_, c| c.is_live(now));
        }
        Ok(())
    }

    async fn delete(&self, id: &str, now: u64) -> Result<bool, StoreError> {
        let mut map = self.conversations.lock().await;
        Ok(map.remove(id).is_some_and(|c| c.is_live(now)))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
