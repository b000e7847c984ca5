//! The `ConversationStore` contract, run against every implementation (the in-memory store
//! here; the DynamoDB store joins with issue 4), plus the service's no-lost-update guarantee.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use tagbeez::classifier::{embedded, Classifier};
use tagbeez::config::Config;
use tagbeez::conversation::{Conversation, Entry};
use tagbeez::service::Tagger;
use tagbeez::store::{ConversationStore, MemoryStore, StoreError};

fn conversation(version: u64, ats: &[u64], expires_at: u64) -> Conversation {
    Conversation {
        entries: ats
            .iter()
            .map(|&at| Entry {
                probabilities: vec![0.1, 0.9],
                top: vec![],
                snippet: format!("m{at}"),
                at,
            })
            .collect(),
        tag: None,
        version,
        updated_at: ats.last().copied().unwrap_or(0),
        expires_at,
    }
}

async fn contract(store: &dyn ConversationStore) {
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

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    contract(&MemoryStore::new()).await;
}

static CLASSIFIER: LazyLock<Arc<Classifier>> =
    LazyLock::new(|| Arc::new(Classifier::load(embedded::model_files()).unwrap()));

/// 8 tasks x 25 messages into one conversation at once: every write lands exactly once
/// (version 200) and the window holds the last WINDOW_SIZE writes in commit order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_lose_no_message() {
    let config = Config::from_vars(HashMap::from([("WINDOW_SIZE".into(), "5".into())])).unwrap();
    let store = Arc::new(MemoryStore::new());
    let tagger = Tagger::new(CLASSIFIER.clone(), store.clone(), config);
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let tagger = tagger.clone();
            tokio::spawn(async move {
                let mut versions = vec![];
                for i in 0..25 {
                    let message = format!("task {t} message {i}: ok add it to my cart");
                    let outcome = tagger
                        .classify_conversation("busy", &message)
                        .await
                        .unwrap();
                    versions.push(outcome.step.next.version);
                }
                versions
            })
        })
        .collect();
    let mut versions = vec![];
    for task in tasks {
        versions.extend(task.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(
        versions,
        (1..=200).collect::<Vec<u64>>(),
        "each write got its own version"
    );
    let stored = tagger.conversation("busy").await.unwrap();
    assert_eq!(stored.version, 200);
    assert_eq!(stored.entries.len(), 5);
}
