//! Where conversation windows live. The service sees only this trait: the in-memory store
//! serves local runs and tests, DynamoDB (issue 4) serves Lambda. Feedback (`feedback`) has
//! its own trait and table: append-only, with the message text. Shop profiles (`profiles`) and
//! experiment records (`experiments`) have theirs too, each with a DynamoDB table.

mod dynamo;
mod dynamo_experiments;
mod dynamo_profiles;
mod experiments;
mod feedback;
mod memory;
mod profiles;

use async_trait::async_trait;
use thiserror::Error;

pub use dynamo::{DynamoSettings, DynamoStore};
pub use dynamo_experiments::DynamoExperiments;
pub use dynamo_profiles::DynamoProfiles;
pub use experiments::{ExperimentRecords, ExperimentStore, MemoryExperiments};
pub use feedback::{DynamoFeedback, FeedbackStore, MemoryFeedback, Page};
pub use memory::MemoryStore;
pub use profiles::{MemoryProfiles, ProfileStore};

use crate::conversation::Conversation;

/// Why a store call failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Another writer changed the conversation since it was read: read again and retry.
    #[error("the conversation changed since it was read")]
    Conflict,
    /// The store could not be reached or did not answer in time.
    /// (Every store's: conversations, feedback, profiles, experiments; the caller names which.)
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// Conversation windows keyed by conversation id, with optimistic concurrency.
#[async_trait]
pub trait ConversationStore: Send + Sync + 'static {
    /// The live conversation, or `None` when absent or expired at `now`.
    async fn load(&self, id: &str, now: u64) -> Result<Option<Conversation>, StoreError>;

    /// Write `next` only if the stored version is still `expected` (`None`: only if absent
    /// or expired); otherwise `StoreError::Conflict`, and nothing is written.
    async fn save(
        &self,
        id: &str,
        next: &Conversation,
        expected: Option<u64>,
        now: u64,
    ) -> Result<(), StoreError>;

    /// Remove a conversation; `false` when there was no live one.
    async fn delete(&self, id: &str, now: u64) -> Result<bool, StoreError>;

    /// Whether the store answers (for `/health`).
    async fn ping(&self) -> Result<(), StoreError>;
}
