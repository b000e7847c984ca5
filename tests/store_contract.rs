//! The `ConversationStore` contract (tests/support/contract.rs) against the in-memory store,
//! plus the service's no-lost-update guarantee. tests/dynamo_store.rs runs the same contract
//! and guarantee against DynamoDB.

#[path = "support/contract.rs"]
mod contract;

use std::sync::{Arc, LazyLock};

use contract::contract;
use tagbeez::classifier::{embedded, Classifier};
use tagbeez::config::Config;
use tagbeez::service::Tagger;
use tagbeez::store::MemoryStore;

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
    // Room for every writer to wait for inference: this test is about the store, not overload.
    let config = Config::from_pairs(&[
        ("WINDOW_SIZE", "5"),
        ("INFERENCE_QUEUE", "1000"),
        ("INFERENCE_QUEUE_TIMEOUT_MS", "60000"),
    ])
    .unwrap();
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
                        .classify_conversation("busy", &message, None)
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
    let stored = tagger.conversation("busy", None).await.unwrap();
    assert_eq!(stored.version, 200);
    assert_eq!(stored.entries.len(), 5);
}
