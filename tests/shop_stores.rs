//! The shop stores' contract, run against the in-memory stores and against the DynamoDB
//! stores on moto (a DynamoDB-compatible server on a free loopback port, started and, if
//! missing, installed by tests/support/dynamodb.rs; the tables created as the templates
//! declare them):
//!
//! - `ProfileStore`: put/get/delete, a profile with every field round-trips exactly;
//! - `ExperimentStore`: exposures create then add (the first variant and time stay), outcomes
//!   are recorded once per id, records never mix shops (`shop-a`/`shop-ab`) or experiments,
//!   concurrent exposures of one conversation all count, concurrent copies of one outcome
//!   count once;
//! - DynamoDB only: the items as the schema says, every Query page read (moto's 1 MB pages
//!   and small test pages) with a bound on their number, an unreachable or silent server is
//!   `StoreError::Unavailable` within the timeouts, a malformed item is an error, not a panic.

#[path = "support/dynamodb.rs"]
mod dynamodb;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use dynamodb::{BlackHole, Moto};
use tagbeez::shops::{Experiment, Exposure, Outcome, OutcomeKind, Profile, StoredProfile, Variant};
use tagbeez::store::{
    DynamoExperiments, DynamoProfiles, ExperimentRecords, ExperimentStore, MemoryExperiments,
    MemoryProfiles, ProfileStore, StoreError,
};

const PROFILES: &str = "tagbeez-profiles";
const EXPERIMENTS: &str = "tagbeez-experiments";
const CONNECT: Duration = Duration::from_millis(500);
const OPERATION: Duration = Duration::from_secs(5);
/// 400 days: the experiment items' TTL after their last write.
const RETENTION: u64 = 400 * 86_400;

// ---------------------------------------------------------------------------------------
// The contract, for any store
// ---------------------------------------------------------------------------------------

fn thresholds(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|&(t, p)| (t.to_owned(), p)).collect()
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|&s| s.to_owned()).collect()
}

/// Every field set, thresholds with awkward binary fractions included.
fn full_profile() -> StoredProfile {
    StoredProfile {
        profile: Profile {
            thresholds: thresholds(&[("Hot-buyer", 0.1 + 0.2), ("Deal-seeker", 0.35)]),
            enabled_tags: Some(strings(&["Hot-buyer", "Deal-seeker", "Support"])),
            window_size: Some(12),
            event_tags: Some(strings(&["Hot-buyer"])),
            experiment: Some(Experiment {
                name: "hot-buyer-2024.q3".into(),
                variants: vec![
                    Variant {
                        name: "control".into(),
                        thresholds: BTreeMap::new(),
                        share: 0.5,
                    },
                    Variant {
                        name: "lower@hot:buyer".into(),
                        thresholds: thresholds(&[("Hot-buyer", 1.0 / 3.0), ("Support", 0.0)]),
                        share: 0.5,
                    },
                ],
            }),
        },
        updated_at: 1_720_000_000,
        version: 7,
    }
}

async fn profile_contract(store: &dyn ProfileStore) {
    assert_eq!(store.get("shop-a").await.unwrap(), None);
    assert!(!store.delete("shop-a").await.unwrap(), "nothing to delete");

    let full = full_profile();
    store.put("shop-a", &full).await.unwrap();
    assert_eq!(store.get("shop-a").await.unwrap(), Some(full.clone()));
    assert_eq!(store.get("shop-ab").await.unwrap(), None);
    assert_eq!(store.get("shop-").await.unwrap(), None);

    // Last write wins; other shops are untouched.
    let empty = StoredProfile {
        profile: Profile::default(),
        updated_at: 1_720_000_100,
        version: 8,
    };
    store.put("shop-ab", &full).await.unwrap();
    store.put("shop-a", &empty).await.unwrap();
    assert_eq!(store.get("shop-a").await.unwrap(), Some(empty));
    assert_eq!(store.get("shop-ab").await.unwrap(), Some(full.clone()));

    assert!(store.delete("shop-a").await.unwrap());
    assert_eq!(store.get("shop-a").await.unwrap(), None);
    assert!(!store.delete("shop-a").await.unwrap(), "already deleted");
    assert_eq!(store.get("shop-ab").await.unwrap(), Some(full));
}

fn exposure(
    conversation_id: &str,
    variant: &str,
    messages: u64,
    tags: u64,
    first_at: u64,
) -> Exposure {
    Exposure {
        conversation_id: conversation_id.into(),
        variant: variant.into(),
        messages,
        tags_selected: tags,
        first_at,
    }
}

fn purchase(outcome_id: &str, shop_id: &str, experiment: Option<&str>) -> Outcome {
    Outcome {
        outcome_id: outcome_id.into(),
        shop_id: shop_id.into(),
        conversation_id: "c1".into(),
        experiment: experiment.map(str::to_owned),
        variant: experiment.map(|_| "control".to_owned()),
        outcome: OutcomeKind::Purchase,
        value: Some(49.9),
        currency: Some("EUR".into()),
        at: 1_720_000_500,
    }
}

async fn experiment_contract(store: Arc<dyn ExperimentStore>) {
    let none = ExperimentRecords::default();
    assert_eq!(store.records("shop-a", "e1").await.unwrap(), none);

    // Exposures: the first call creates, later ones add; variant and first_at stay the first.
    store
        .expose("shop-a", "e1", "c1", "control", 2, 100)
        .await
        .unwrap();
    store
        .expose("shop-a", "e1", "c1", "treatment", 3, 200)
        .await
        .unwrap();
    store
        .expose("shop-a", "e1", "c1", "control", 0, 50)
        .await
        .unwrap();
    store
        .expose("shop-a", "e1", "c2", "treatment", 0, 150)
        .await
        .unwrap();
    // Same conversation ids elsewhere: other shops (one a prefix of the other), experiments.
    store
        .expose("shop-ab", "e1", "c1", "treatment", 9, 300)
        .await
        .unwrap();
    store
        .expose("shop-", "ae1", "c1", "treatment", 9, 300)
        .await
        .unwrap();
    store
        .expose("shop-a", "e", "c1", "treatment", 4, 400)
        .await
        .unwrap();
    store
        .expose("shop-a", "e10", "c1", "treatment", 5, 500)
        .await
        .unwrap();
    store
        .expose("shop-a", "", "c1", "treatment", 6, 600)
        .await
        .unwrap();

    // Outcomes: once per id per shop and experiment; with and without value, currency and
    // experiment.
    let bought = purchase("o-1", "shop-a", Some("e1"));
    assert!(store.record_outcome(&bought).await.unwrap());
    let retried = Outcome {
        value: Some(1.0),
        outcome: OutcomeKind::Abandoned,
        ..bought.clone()
    };
    assert!(
        !store.record_outcome(&retried).await.unwrap(),
        "already recorded"
    );
    assert!(
        !store.record_outcome(&bought).await.unwrap(),
        "already recorded"
    );
    let handed_off = Outcome {
        outcome_id: "o-2".into(),
        conversation_id: "c2".into(),
        variant: Some("treatment".into()),
        outcome: OutcomeKind::Handoff,
        value: None,
        currency: None,
        ..bought.clone()
    };
    assert!(store.record_outcome(&handed_off).await.unwrap());
    let no_experiment = Outcome {
        conversation_id: "c9".into(),
        outcome: OutcomeKind::Abandoned,
        value: None,
        currency: None,
        ..purchase("o-1", "shop-a", None)
    };
    assert!(
        store.record_outcome(&no_experiment).await.unwrap(),
        "another experiment"
    );
    assert!(!store.record_outcome(&no_experiment).await.unwrap());
    let elsewhere = purchase("o-1", "shop-ab", Some("e1"));
    assert!(
        store.record_outcome(&elsewhere).await.unwrap(),
        "another shop"
    );
    let no_currency = Outcome {
        outcome_id: "o-3".into(),
        value: Some(0.1 + 0.2),
        currency: None,
        ..bought.clone()
    };
    assert!(store.record_outcome(&no_currency).await.unwrap());

    assert_eq!(
        store.records("shop-a", "e1").await.unwrap(),
        ExperimentRecords {
            exposures: vec![
                exposure("c1", "control", 3, 5, 100),
                exposure("c2", "treatment", 1, 0, 150),
            ],
            outcomes: vec![bought.clone(), handed_off, no_currency],
        }
    );
    assert_eq!(
        store.records("shop-ab", "e1").await.unwrap(),
        ExperimentRecords {
            exposures: vec![exposure("c1", "treatment", 1, 9, 300)],
            outcomes: vec![elsewhere],
        }
    );
    assert_eq!(
        store.records("shop-", "ae1").await.unwrap().exposures,
        vec![exposure("c1", "treatment", 1, 9, 300)]
    );
    assert_eq!(store.records("shop-", "e1").await.unwrap(), none);
    assert_eq!(store.records("shop-a", "ae1").await.unwrap(), none);
    for (experiment, tags, at) in [("e", 4, 400), ("e10", 5, 500)] {
        assert_eq!(
            store.records("shop-a", experiment).await.unwrap(),
            ExperimentRecords {
                exposures: vec![exposure("c1", "treatment", 1, tags, at)],
                outcomes: vec![],
            },
            "experiment {experiment}"
        );
    }
    assert_eq!(
        store.records("shop-a", "").await.unwrap(),
        ExperimentRecords {
            exposures: vec![exposure("c1", "treatment", 1, 6, 600)],
            outcomes: vec![no_experiment],
        }
    );
    assert_eq!(store.records("shop-b", "e1").await.unwrap(), none);

    concurrent_exposures_all_count(store.clone()).await;
    concurrent_copies_of_an_outcome_count_once(store).await;
}

/// 8 tasks x 25 messages of one conversation at once: every message and tag counts.
async fn concurrent_exposures_all_count(store: Arc<dyn ExperimentStore>) {
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..25u64 {
                    store
                        .expose("busy", "e1", "c", "control", t % 3, 1_000 + t * 100 + i)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let records = store.records("busy", "e1").await.unwrap();
    let [e] = &records.exposures[..] else {
        panic!("one exposure: {records:?}");
    };
    let tags: u64 = (0..8u64).map(|t| t % 3 * 25).sum();
    assert_eq!((e.messages, e.tags_selected), (200, tags), "{e:?}");
    assert!((1_000..1_800).contains(&e.first_at), "{e:?}");
}

/// 8 tasks record the same outcome at once: exactly one records it.
async fn concurrent_copies_of_an_outcome_count_once(store: Arc<dyn ExperimentStore>) {
    let outcome = purchase("o-dup", "busy", Some("e1"));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, outcome) = (store.clone(), outcome.clone());
            tokio::spawn(async move { store.record_outcome(&outcome).await.unwrap() })
        })
        .collect();
    let mut recorded = 0;
    for task in tasks {
        recorded += usize::from(task.await.unwrap());
    }
    assert_eq!(recorded, 1);
    assert_eq!(
        store.records("busy", "e1").await.unwrap().outcomes,
        vec![outcome]
    );
}

#[tokio::test]
async fn memory_profiles_keep_the_contract() {
    profile_contract(&MemoryProfiles::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_experiments_keep_the_contract() {
    experiment_contract(Arc::new(MemoryExperiments::default())).await;
}

// ---------------------------------------------------------------------------------------
// DynamoDB
// ---------------------------------------------------------------------------------------

/// A moto server with both tables, its UpdateItem atomic as DynamoDB's (see
/// `Moto::start_with_atomic_updates`: without it, concurrent exposures lose counts on moto).
async fn moto() -> Moto {
    let moto = Moto::start_with_atomic_updates();
    let client = moto.client();
    dynamodb::create_profile_table(&client, PROFILES).await;
    dynamodb::create_experiment_table(&client, EXPERIMENTS).await;
    moto
}

fn settings(
    table: &str,
    endpoint: &str,
    connect: Duration,
    operation: Duration,
) -> tagbeez::store::DynamoSettings {
    dynamodb::settings(table, endpoint, connect, operation)
}

async fn profiles_at(endpoint: &str, connect: Duration, operation: Duration) -> DynamoProfiles {
    DynamoProfiles::connect(&settings(PROFILES, endpoint, connect, operation)).await
}

async fn experiments_at(
    endpoint: &str,
    connect: Duration,
    operation: Duration,
) -> DynamoExperiments {
    DynamoExperiments::connect(&settings(EXPERIMENTS, endpoint, connect, operation)).await
}

#[tokio::test]
async fn dynamodb_profiles_keep_the_contract() {
    let moto = moto().await;
    profile_contract(&profiles_at(&moto.endpoint(), CONNECT, OPERATION).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_experiments_keep_the_contract() {
    let moto = moto().await;
    let store = experiments_at(&moto.endpoint(), CONNECT, OPERATION).await;
    experiment_contract(Arc::new(store)).await;
}

type Item = HashMap<String, AttributeValue>;
type Attributes = Vec<(&'static str, AttributeValue)>;

async fn raw_get(client: &Client, table: &str, key: &[(&str, &str)]) -> Item {
    let mut get = client.get_item().table_name(table).consistent_read(true);
    for &(name, value) in key {
        get = get.key(name, AttributeValue::S(value.into()));
    }
    get.send().await.unwrap().item.expect("the item")
}

async fn raw_put(client: &Client, table: &str, item: &[(&str, AttributeValue)]) {
    let item = item
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn names(item: &Item) -> Vec<&str> {
    let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn dynamodb_items_are_as_the_schema_says() {
    let moto = moto().await;
    let client = moto.client();
    let profiles = profiles_at(&moto.endpoint(), CONNECT, OPERATION).await;
    let experiments = experiments_at(&moto.endpoint(), CONNECT, OPERATION).await;

    let full = full_profile();
    profiles.put("shop-a", &full).await.unwrap();
    let item = raw_get(&client, PROFILES, &[("shop_id", "shop-a")]).await;
    assert_eq!(
        names(&item),
        ["profile", "shop_id", "updated_at", "version"]
    );
    assert_eq!(item["shop_id"], s("shop-a"));
    assert_eq!(item["updated_at"], n(1_720_000_000));
    assert_eq!(item["version"], n(7));
    let profile: Profile = serde_json::from_str(item["profile"].as_s().unwrap()).unwrap();
    assert_eq!(profile, full.profile);

    experiments
        .expose("shop-a", "e1", "c1", "control", 2, 100)
        .await
        .unwrap();
    experiments
        .expose("shop-a", "e1", "c1", "other", 3, 200)
        .await
        .unwrap();
    let item = raw_get(&client, EXPERIMENTS, &[("pk", "shop-a#e1"), ("sk", "c#c1")]).await;
    assert_eq!(
        names(&item),
        [
            "conversation_id",
            "expires_at",
            "first_at",
            "messages",
            "pk",
            "sk",
            "tags_selected",
            "variant"
        ]
    );
    assert_eq!(item["conversation_id"], s("c1"));
    assert_eq!(item["variant"], s("control"));
    assert_eq!(item["messages"], n(2));
    assert_eq!(item["tags_selected"], n(5));
    assert_eq!(item["first_at"], n(100));
    assert_eq!(
        item["expires_at"],
        n(200 + RETENTION),
        "400 days after the last write"
    );

    experiments
        .expose("shop-a", "", "c1", "control", 0, 100)
        .await
        .unwrap();
    raw_get(&client, EXPERIMENTS, &[("pk", "shop-a#"), ("sk", "c#c1")]).await;

    assert!(experiments
        .record_outcome(&purchase("o-1", "shop-a", Some("e1")))
        .await
        .unwrap());
    let item = raw_get(
        &client,
        EXPERIMENTS,
        &[("pk", "shop-a#e1"), ("sk", "o#o-1")],
    )
    .await;
    assert_eq!(
        names(&item),
        [
            "at",
            "conversation_id",
            "currency",
            "experiment",
            "expires_at",
            "outcome",
            "outcome_id",
            "pk",
            "shop_id",
            "sk",
            "value",
            "variant"
        ]
    );
    assert_eq!(item["outcome"], s("purchase"));
    assert_eq!(item["value"], AttributeValue::N("49.9".into()));
    assert_eq!(item["currency"], s("EUR"));
    assert_eq!(item["experiment"], s("e1"));
    assert_eq!(item["variant"], s("control"));
    assert_eq!(item["at"], n(1_720_000_500));
    assert_eq!(item["expires_at"], n(1_720_000_500 + RETENTION));

    let bare = Outcome {
        outcome: OutcomeKind::Handoff,
        value: None,
        currency: None,
        ..purchase("o-2", "shop-a", None)
    };
    assert!(experiments.record_outcome(&bare).await.unwrap());
    let item = raw_get(&client, EXPERIMENTS, &[("pk", "shop-a#"), ("sk", "o#o-2")]).await;
    assert_eq!(
        names(&item),
        [
            "at",
            "conversation_id",
            "expires_at",
            "outcome",
            "outcome_id",
            "pk",
            "shop_id",
            "sk"
        ]
    );
    assert_eq!(item["outcome"], s("handoff"));

    // A value DynamoDB cannot hold is refused before anything is sent.
    let infinite = Outcome {
        value: Some(f64::INFINITY),
        ..purchase("o-3", "shop-a", Some("e1"))
    };
    assert!(matches!(
        experiments.record_outcome(&infinite).await,
        Err(StoreError::Unavailable(_))
    ));
}

/// Exposures of `count` conversations with ids of ~900 bytes (so ~1.9 KB items), 8 at once.
async fn expose_many(store: &Arc<DynamoExperiments>, shop: &str, count: usize) -> Vec<String> {
    let ids: Vec<String> = (0..count)
        .map(|i| format!("{i:05}-{}", "x".repeat(900)))
        .collect();
    let chunks: Vec<Vec<String>> = ids
        .chunks(count.div_ceil(8))
        .map(<[String]>::to_vec)
        .collect();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let (store, shop) = (store.clone(), shop.to_owned());
            tokio::spawn(async move {
                for id in chunk {
                    store
                        .expose(&shop, "e1", &id, "control", 1, 100)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_reads_every_page() {
    let moto = moto().await;
    let client = moto.client();
    let store = Arc::new(experiments_at(&moto.endpoint(), CONNECT, OPERATION).await);
    let ids = expose_many(&store, "big", 1_200).await;
    // Outcomes sort after the exposures: the last page holds them.
    for i in 0..3 {
        assert!(store
            .record_outcome(&purchase(&format!("o-{i}"), "big", Some("e1")))
            .await
            .unwrap());
    }

    // The server really pages: ~2.3 MB of items do not fit one 1 MB page.
    let first = client
        .query()
        .table_name(EXPERIMENTS)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s("big#e1"))
        .send()
        .await
        .unwrap();
    assert!(
        first.last_evaluated_key().is_some(),
        "moto returned one page"
    );
    assert!(
        first.items().len() < 1_000,
        "{} items in the first page",
        first.items().len()
    );

    let check = |records: ExperimentRecords| {
        let found: Vec<&str> = records
            .exposures
            .iter()
            .map(|e| e.conversation_id.as_str())
            .collect();
        assert_eq!(found, ids.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(records
            .exposures
            .iter()
            .all(|e| (e.messages, e.tags_selected) == (1, 1)));
        let outcomes: Vec<&str> = records
            .outcomes
            .iter()
            .map(|o| o.outcome_id.as_str())
            .collect();
        assert_eq!(outcomes, ["o-0", "o-1", "o-2"]);
    };
    check(store.records("big", "e1").await.unwrap());
    // Small pages: 13 of them.
    let paged = store.as_ref().clone().with_page_limit(100);
    check(paged.records("big", "e1").await.unwrap());
    check(
        paged
            .clone()
            .with_max_pages(13)
            .records("big", "e1")
            .await
            .unwrap(),
    );

    // Past the bound: an error that says so, not an endless loop or a partial report.
    match paged.with_max_pages(5).records("big", "e1").await {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("5 pages"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// Every call of both stores fails with `Unavailable`, each within `within`.
async fn every_call_is_unavailable(
    profiles: &DynamoProfiles,
    experiments: &DynamoExperiments,
    within: Duration,
) {
    let outcome = purchase("o-1", "shop-a", Some("e1"));
    let mut results: Vec<(&str, Result<(), StoreError>, Duration)> = Vec::new();
    macro_rules! timed {
        ($name:expr, $call:expr) => {{
            let started = Instant::now();
            let result = $call.await.map(|_| ());
            results.push(($name, result, started.elapsed()));
        }};
    }
    timed!("get", profiles.get("shop-a"));
    timed!("put", profiles.put("shop-a", &full_profile()));
    timed!("delete", profiles.delete("shop-a"));
    timed!(
        "expose",
        experiments.expose("shop-a", "e1", "c1", "control", 1, 100)
    );
    timed!("record_outcome", experiments.record_outcome(&outcome));
    timed!("records", experiments.records("shop-a", "e1"));
    for (name, result, took) in results {
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{name}: {result:?}"
        );
        assert!(took < within, "{name} took {took:?}");
    }
}

#[tokio::test]
async fn an_unreachable_store_is_unavailable_within_its_timeouts() {
    dynamodb::use_test_credentials();
    let (connect, operation) = (Duration::from_millis(200), Duration::from_millis(300));

    // Nothing listens: refused, retried, and given up by the operation timeout.
    let nobody = format!("http://127.0.0.1:{}", dynamodb::free_port());
    let profiles = profiles_at(&nobody, connect, operation).await;
    let experiments = experiments_at(&nobody, connect, operation).await;
    every_call_is_unavailable(&profiles, &experiments, Duration::from_secs(2)).await;

    // A server that accepts and never answers: the operation timeout ends each call.
    let silent = BlackHole::start(Duration::from_secs(30));
    let endpoint = format!("http://127.0.0.1:{}", silent.port);
    let profiles = profiles_at(&endpoint, connect, operation).await;
    let experiments = experiments_at(&endpoint, connect, operation).await;
    every_call_is_unavailable(&profiles, &experiments, Duration::from_secs(2)).await;
    assert!(silent.close() > 0, "the calls reached the silent server");

    // A server that worked (its connections pooled), then died. Room for the calls that
    // work on a busy machine.
    let mut moto = moto().await;
    let operation = Duration::from_secs(1);
    let profiles = profiles_at(&moto.endpoint(), connect, operation).await;
    let experiments = experiments_at(&moto.endpoint(), connect, operation).await;
    profiles.put("shop-a", &full_profile()).await.unwrap();
    experiments
        .expose("shop-a", "e1", "c1", "control", 1, 100)
        .await
        .unwrap();
    moto.stop();
    every_call_is_unavailable(&profiles, &experiments, Duration::from_secs(3)).await;
}

fn unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) -> String {
    match result {
        Err(StoreError::Unavailable(m)) => {
            assert!(m.contains(what), "{m:?} does not name {what:?}");
            m
        }
        other => panic!("expected Unavailable naming {what:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_malformed_item_is_an_error_not_a_panic() {
    let moto = moto().await;
    let client = moto.client();
    let profiles = profiles_at(&moto.endpoint(), CONNECT, OPERATION).await;
    let experiments = experiments_at(&moto.endpoint(), CONNECT, OPERATION).await;

    let good_json = serde_json::to_string(&full_profile().profile).unwrap();
    // (shop, the item's attributes but its key, what the error names)
    let cases: [(&str, Attributes, &str); 6] = [
        (
            "not-json",
            vec![
                ("profile", s("{not json")),
                ("updated_at", n(1)),
                ("version", n(1)),
            ],
            "profile",
        ),
        (
            "unknown-field",
            vec![
                ("profile", s(r#"{"colour":"red"}"#)),
                ("updated_at", n(1)),
                ("version", n(1)),
            ],
            "profile",
        ),
        (
            "number-profile",
            vec![("profile", n(3)), ("updated_at", n(1)), ("version", n(1))],
            "profile",
        ),
        (
            "no-profile",
            vec![("updated_at", n(1)), ("version", n(1))],
            "profile",
        ),
        (
            "text-version",
            vec![
                ("profile", s(&good_json)),
                ("updated_at", n(1)),
                ("version", s("7")),
            ],
            "version",
        ),
        (
            "negative-time",
            vec![
                ("profile", s(&good_json)),
                ("updated_at", AttributeValue::N("-1".into())),
                ("version", n(1)),
            ],
            "updated_at",
        ),
    ];
    for (shop, mut item, what) in cases {
        item.push(("shop_id", s(shop)));
        raw_put(&client, PROFILES, &item).await;
        unavailable(profiles.get(shop).await, what);
        // Deleting does not read the profile: a broken one can still be removed.
        assert!(profiles.delete(shop).await.unwrap(), "{shop}");
    }

    let exposure_item = |shop: &str| {
        vec![
            ("pk", s(&format!("{shop}#e1"))),
            ("sk", s("c#c1")),
            ("conversation_id", s("c1")),
            ("variant", s("control")),
            ("messages", n(1)),
            ("tags_selected", n(1)),
            ("first_at", n(1)),
        ]
    };
    let outcome_item = |shop: &str| {
        vec![
            ("pk", s(&format!("{shop}#e1"))),
            ("sk", s("o#o1")),
            ("outcome_id", s("o1")),
            ("shop_id", s(shop)),
            ("conversation_id", s("c1")),
            ("outcome", s("purchase")),
            ("at", n(1)),
        ]
    };
    // The well-formed items read back; each broken copy names what is wrong.
    raw_put(&client, EXPERIMENTS, &exposure_item("ok")).await;
    raw_put(&client, EXPERIMENTS, &outcome_item("ok")).await;
    let ok = experiments.records("ok", "e1").await.unwrap();
    assert_eq!((ok.exposures.len(), ok.outcomes.len()), (1, 1));

    let set = |item: &mut Attributes, name: &'static str, value: Option<AttributeValue>| {
        item.retain(|(k, _)| *k != name);
        if let Some(v) = value {
            item.push((name, v));
        }
    };
    let exposure_breaks: [(&str, &str, Option<AttributeValue>); 5] = [
        ("x1", "messages", Some(s("1"))),
        ("x2", "messages", Some(AttributeValue::N("1.5".into()))),
        ("x3", "variant", None),
        ("x4", "first_at", None),
        ("x5", "conversation_id", Some(n(1))),
    ];
    let outcome_breaks: [(&str, &str, Option<AttributeValue>); 6] = [
        ("y1", "outcome", Some(s("refund"))),
        ("y2", "outcome", None),
        ("y3", "value", Some(s("49.9"))),
        ("y4", "currency", Some(n(978))),
        ("y5", "at", Some(s("yesterday"))),
        ("y6", "experiment", Some(AttributeValue::Bool(true))),
    ];
    for (shop, name, value) in exposure_breaks {
        let mut item = exposure_item(shop);
        set(&mut item, name, value);
        raw_put(&client, EXPERIMENTS, &item).await;
        let m = unavailable(experiments.records(shop, "e1").await, name);
        assert!(m.contains("exposure"), "{m}");
    }
    for (shop, name, value) in outcome_breaks {
        let mut item = outcome_item(shop);
        set(&mut item, name, value);
        raw_put(&client, EXPERIMENTS, &item).await;
        let m = unavailable(experiments.records(shop, "e1").await, name);
        assert!(m.contains("outcome"), "{m}");
    }

    // An item of a kind this version does not know (a later version's) is skipped.
    raw_put(
        &client,
        EXPERIMENTS,
        &[("pk", s("ok#e1")), ("sk", s("m#meta")), ("anything", n(1))],
    )
    .await;
    assert_eq!(experiments.records("ok", "e1").await.unwrap(), ok);
}
