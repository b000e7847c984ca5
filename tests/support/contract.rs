//! The `ConversationStore` contract every implementation keeps: absent conversations,
//! optimistic concurrency on `version`, expiry on read (through the caller's `now`), clear.
//! Shared by tests/store_contract.rs (the in-memory store) and tests/dynamo_store.rs
//! (DynamoDB, through a local moto server): `#[path = "support/contract.rs"] mod contract;`.

use tagbeez::conversation::{Conversation, Entry};
use tagbeez::store::{ConversationStore, StoreError};

pub fn conversation(version: u64, ats: &[u64], expires_at: u64) -> Conversation {
    Conversation {
        entries: ats
            .iter()
            .map(|&at| Entry {
                probabilities: vec![0.1, 0.9],
                top: vec![],
                snippet: format!("m{at}"),
                at,
                message_id: Some(format!("id-{at}")),
                truncated: false,
                previous_tag: None,
                switched: false,
            })
            .collect(),
        tag: None,
        version,
        updated_at: ats.last().copied().unwrap_or(0),
        expires_at,
        message_ids: ats.iter().map(|at| format!("id-{at}")).collect(),
        outbox: Vec::new(),
    }
}

pub async fn contract(store: &dyn ConversationStore) {
    // Absent conversations: load is None, delete is false, only an "absent" write succeeds.
    assert_eq!(store.load("c", 10).await.unwrap(), None);
    assert!(!store.delete("c", 10).await.unwrap());
    let first = conversation(1, &[10], 100);
    assert!(matches!(
        store.save("c", &first, Some(7), 10).await,
        Err(StoreError::Conflict)
    ));
    store.save("c", &first, None, 10).await.unwrap();
    assert_eq!(store.load("c", 10).await.unwrap(), Some(first.clone()));

    // Optimistic concurrency: only the version that was read may be replaced.
    let second = conversation(2, &[10, 11], 100);
    assert!(matches!(
        store.save("c", &second, None, 11).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store.save("c", &second, Some(0), 11).await,
        Err(StoreError::Conflict)
    ));
    store.save("c", &second, Some(1), 11).await.unwrap();
    let loaded = store.load("c", 11).await.unwrap().unwrap();
    let order: Vec<u64> = loaded.entries.iter().map(|e| e.at).collect();
    assert_eq!((loaded.version, order), (2, vec![10, 11]));

    // Expiry on read: past expires_at the conversation is absent, and may be started again.
    assert_eq!(store.load("c", 100).await.unwrap(), None);
    assert!(!store.delete("c", 100).await.unwrap());
    store
        .save("c", &conversation(1, &[100], 200), None, 100)
        .await
        .unwrap();

    // Clear.
    assert!(store.delete("c", 101).await.unwrap());
    assert_eq!(store.load("c", 101).await.unwrap(), None);
    store.ping().await.unwrap();
}
