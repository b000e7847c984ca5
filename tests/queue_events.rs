//! Queues in, events out, and the Lambda error contract, through `lambda::dispatch` with the
//! real embedded model: AWS's example SQS record (FIFO and standard), a Distributed Map batch,
//! events checked against `docs/events.schema.json`, and failures injected into the store and
//! the event sink by wrappers that fail on cue (the fault run, `tests/queue_fault_run.rs`,
//! does the same through moto and a fault proxy).

#[path = "support/events.rs"]
mod events;
#[path = "support/router.rs"]
mod router;
#[path = "support/schema.rs"]
mod schema;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Value};
use tagbeez::conversation::Conversation;
use tagbeez::events::{Event, EventError, EventSink, MemorySink};
use tagbeez::service::Tagger;
use tagbeez::store::{ConversationStore, MemoryStore, StoreError};

use events::{batch_item_failures, sqs_event};
use router::{config, invoke, CLASSIFIER, FIRST_TIME, HOT, WISHLIST};

// ---------------------------------------------------------------------------------------------
// Parts that fail on cue.

/// The memory store, failing every write that would add a message whose id is in `failing`
/// (as DynamoDB does when throttled), and every call while `down`.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    failing: Mutex<HashSet<String>>,
}

impl FlakyStore {
    fn fail_message(&self, id: &str) {
        self.failing.lock().unwrap().insert(id.to_owned());
    }
    fn heal(&self) {
        self.failing.lock().unwrap().clear();
    }
}

#[async_trait]
impl ConversationStore for FlakyStore {
    async fn load(&self, id: &str, now: u64) -> Result<Option<Conversation>, StoreError> {
        self.inner.load(id, now).await
    }
    async fn save(
        &self,
        id: &str,
        next: &Conversation,
        expected: Option<u64>,
        now: u64,
    ) -> Result<(), StoreError> {
        let failing = self.failing.lock().unwrap().clone();
        let newest = next.entries.last().and_then(|e| e.message_id.clone());
        if newest.is_some_and(|m| failing.contains(&m)) {
            return Err(StoreError::Unavailable("throttled (injected)".into()));
        }
        self.inner.save(id, next, expected, now).await
    }
    async fn delete(&self, id: &str, now: u64) -> Result<bool, StoreError> {
        self.inner.delete(id, now).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A sink that refuses the next `refuse_calls` puts whole, and then, `refuse_first` times, the
/// first event of a put (a partial failure), delivering the rest to `delivered`.
#[derive(Default)]
struct FlakySink {
    delivered: MemorySink,
    refuse_calls: AtomicUsize,
    refuse_first: AtomicUsize,
}

#[async_trait]
impl EventSink for FlakySink {
    async fn put(&self, events: &[Event]) -> Result<(), EventError> {
        let take = |n: &AtomicUsize| {
            n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                .is_ok()
        };
        if take(&self.refuse_calls) {
            return Err(EventError::Unavailable("bus down (injected)".into()));
        }
        if events.len() > 1 && take(&self.refuse_first) {
            self.delivered.put(&events[1..]).await?;
            return Err(EventError::Partial {
                failed: vec![events[0].event_id().to_owned()],
                total: events.len(),
                reason: "InternalFailure (injected)".into(),
            });
        }
        self.delivered.put(events).await
    }
}

struct Setup {
    tagger: Tagger,
    store: Arc<FlakyStore>,
    sink: Arc<FlakySink>,
}

fn setup() -> Setup {
    let store = Arc::new(FlakyStore::default());
    let sink = Arc::new(FlakySink::default());
    let tagger = Tagger::new(Arc::clone(&CLASSIFIER), store.clone(), config(&[]))
        .with_events(sink.clone(), None)
        .expect("the default event tags are the model's");
    Setup {
        tagger,
        store,
        sink,
    }
}

fn record(conversation: &str, message: &str) -> String {
    json!({"conversation_id": conversation, "message": message}).to_string()
}

fn fifo(records: &[(&str, &str, String)]) -> Value {
    let records: Vec<_> = records
        .iter()
        .map(|(id, group, body)| (id.to_string(), Some(group.to_string()), body.clone()))
        .collect();
    sqs_event(&records)
}

fn standard(records: &[(&str, String)]) -> Value {
    let records: Vec<_> = records
        .iter()
        .map(|(id, body)| (id.to_string(), None, body.clone()))
        .collect();
    sqs_event(&records)
}

async fn window_ids(tagger: &Tagger, conversation: &str) -> Vec<String> {
    let view = invoke(
        tagger,
        json!({"operation": "get-conversation", "conversation_id": conversation}),
    )
    .await;
    view["window"]
        .as_array()
        .unwrap_or_else(|| panic!("{view:#}"))
        .iter()
        .map(|e| e["message_id"].as_str().unwrap().to_owned())
        .collect()
}

fn details(events: &[Event]) -> Vec<(String, Value)> {
    events
        .iter()
        .map(|e| {
            let detail: Value = serde_json::from_str(&e.detail_json()).unwrap();
            (e.detail_type().to_owned(), detail)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// SQS in.

#[tokio::test]
async fn aws_example_sqs_record_is_tagged_and_its_message_id_is_the_sqs_message_id() {
    let s = setup();
    let mut event = events::sqs_example();
    event["Records"][0]["body"] = json!(record("ex-1", HOT));
    let answer = invoke(&s.tagger, event).await;
    assert!(batch_item_failures(&answer).is_empty(), "{answer:#}");
    assert_eq!(window_ids(&s.tagger, "ex-1").await, ["MessageID_1"]);
}

#[tokio::test]
async fn a_redelivered_record_is_a_duplicate_not_a_second_entry_and_emits_nothing_again() {
    let s = setup();
    let batch = fifo(&[("m-1", "c-1", record("c-1", HOT))]);
    for _ in 0..3 {
        let answer = invoke(&s.tagger, batch.clone()).await;
        assert!(batch_item_failures(&answer).is_empty(), "{answer:#}");
    }
    assert_eq!(window_ids(&s.tagger, "c-1").await, ["m-1"]);
    let put = s.sink.delivered.events();
    assert_eq!(
        put.len(),
        1,
        "one Message tagged (Hot-buyer), once: {put:#?}"
    );
    // A message_id in the body wins over the SQS messageId.
    let own = json!({"conversation_id": "c-1", "message": WISHLIST, "message_id": "client-7"});
    invoke(&s.tagger, fifo(&[("m-2", "c-1", own.to_string())])).await;
    assert_eq!(window_ids(&s.tagger, "c-1").await, ["m-1", "client-7"]);
}

#[tokio::test]
async fn fifo_a_transient_failure_returns_the_rest_of_its_group_and_poison_blocks_nothing() {
    let s = setup();
    s.store.fail_message("b-2");
    let batch = fifo(&[
        ("a-1", "A", record("A", HOT)),
        ("b-1", "B", record("B", FIRST_TIME)),
        ("b-2", "B", record("B", WISHLIST)),
        ("a-2", "A", "{not json".into()),
        ("b-3", "B", record("B", HOT)),
        (
            "a-3",
            "A",
            json!({"conversation_id": "A", "message": " "}).to_string(),
        ),
        ("a-4", "A", record("A", WISHLIST)),
    ]);
    let answer = invoke(&s.tagger, batch.clone()).await;
    assert_eq!(batch_item_failures(&answer), ["b-2", "a-2", "b-3", "a-3"]);
    assert_eq!(window_ids(&s.tagger, "A").await, ["a-1", "a-4"]);
    assert_eq!(window_ids(&s.tagger, "B").await, ["b-1"]);
    // The queue sends the returned records again, in order: B catches up, in order.
    s.store.heal();
    let again = fifo(&[
        ("b-2", "B", record("B", WISHLIST)),
        ("b-3", "B", record("B", HOT)),
    ]);
    assert!(batch_item_failures(&invoke(&s.tagger, again).await).is_empty());
    assert_eq!(window_ids(&s.tagger, "B").await, ["b-1", "b-2", "b-3"]);
}

#[tokio::test]
async fn a_standard_queue_tries_every_record() {
    let s = setup();
    s.store.fail_message("s-1");
    let batch = standard(&[("s-1", record("S", HOT)), ("s-2", record("S", WISHLIST))]);
    assert_eq!(
        batch_item_failures(&invoke(&s.tagger, batch).await),
        ["s-1"]
    );
    assert_eq!(window_ids(&s.tagger, "S").await, ["s-2"]);
}

#[tokio::test]
async fn a_record_without_a_conversation_is_a_message_and_puts_its_events() {
    let s = setup();
    let body = json!({"message": HOT}).to_string();
    let answer = invoke(&s.tagger, standard(&[("q-1", body)])).await;
    assert!(batch_item_failures(&answer).is_empty(), "{answer:#}");
    let put = details(&s.sink.delivered.events());
    assert_eq!(put.len(), 1, "{put:#?}");
    assert_eq!(put[0].0, "Message tagged");
    assert_eq!(put[0].1["message_id"], "q-1");
    assert_eq!(put[0].1["conversation_id"], Value::Null);
}

#[tokio::test]
async fn records_that_can_never_succeed_are_returned_for_the_dead_letter_queue() {
    let s = setup();
    let bodies = [
        "{not json".to_owned(),
        "[]".into(),
        json!({"message": HOT, "shop": "x"}).to_string(),
        json!({"conversation_id": "bad id!", "message": HOT}).to_string(),
        json!({"conversation_id": "c", "message": ""}).to_string(),
        json!({"conversation_id": "c", "message": HOT, "thresholds": {"Nope": 0.1}}).to_string(),
        json!({"conversation_id": "c", "message": HOT, "message_id": "has space"}).to_string(),
    ];
    let records: Vec<(String, String)> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("p-{i}"), b.clone()))
        .collect();
    let refs: Vec<(&str, String)> = records
        .iter()
        .map(|(i, b)| (i.as_str(), b.clone()))
        .collect();
    let failed = batch_item_failures(&invoke(&s.tagger, standard(&refs)).await);
    assert_eq!(failed.len(), bodies.len(), "{failed:?}");
    // A record without a body, or a batch with a record without a messageId.
    let mut no_body = standard(&[("nb", String::new())]);
    no_body["Records"][0]
        .as_object_mut()
        .unwrap()
        .remove("body");
    assert_eq!(
        batch_item_failures(&invoke(&s.tagger, no_body).await),
        ["nb"]
    );
    let mut no_id = standard(&[("x", record("c", HOT))]);
    no_id["Records"][0]
        .as_object_mut()
        .unwrap()
        .remove("messageId");
    let answer = invoke(&s.tagger, no_id).await;
    assert_eq!(answer["errorType"], "invalid_event", "{answer:#}");
}

// ---------------------------------------------------------------------------------------------
// Events out.

#[tokio::test]
async fn switches_and_hot_buyers_put_events_that_match_the_documented_schema() {
    let s = setup();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/events.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut answers = Vec::new();
    for (i, message) in [HOT, HOT, WISHLIST, WISHLIST, WISHLIST, HOT]
        .iter()
        .enumerate()
    {
        let body = json!({"operation": "classify-conversation", "conversation_id": "ev",
                          "message": message, "message_id": format!("e-{i}")});
        answers.push(invoke(&s.tagger, body).await);
    }
    let put = details(&s.sink.delivered.events());
    for (kind, detail) in &put {
        let problems = schema::errors(&schema, &schema["$defs"][kind], detail, kind);
        assert!(problems.is_empty(), "{problems:#?}\n{detail:#}");
        assert!(schema::errors(&schema, &schema, detail, "detail").is_empty());
    }
    let switches: Vec<&Value> = answers
        .iter()
        .filter(|a| a["switched"] == json!(true))
        .collect();
    assert!(
        !switches.is_empty(),
        "the test needs a switch: {answers:#?}"
    );
    let changed: Vec<&Value> = put
        .iter()
        .filter(|(k, _)| k == "Conversation tag changed")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(changed.len(), switches.len(), "{put:#?}");
    for (event, answer) in changed.iter().zip(&switches) {
        assert_eq!(event["from"], answer["previous_tag"]["tag"]);
        assert_eq!(event["to"], answer["conversation_tag"]["tag"]);
        assert_eq!(event["message_id"], answer["message_id"]);
    }
    let hot: Vec<&Value> = answers
        .iter()
        .filter(|a| {
            a["message_result"]["selected"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["tag"] == "Hot-buyer")
        })
        .collect();
    let tagged = put.iter().filter(|(k, _)| k == "Message tagged").count();
    assert_eq!(tagged, hot.len(), "{put:#?}");
    // Nothing is left in the window's outbox once delivered.
    let stored = s.store.inner.load("ev", 0).await.unwrap().unwrap();
    assert!(stored.outbox.is_empty(), "{:#?}", stored.outbox);
}

#[tokio::test]
async fn on_the_queue_an_undelivered_event_fails_the_record_and_the_retry_delivers_it_once() {
    let s = setup();
    s.sink.refuse_calls.store(1, Ordering::SeqCst);
    let batch = fifo(&[("h-1", "H", record("H", HOT))]);
    let answer = invoke(&s.tagger, batch.clone()).await;
    assert_eq!(batch_item_failures(&answer), ["h-1"]);
    assert_eq!(
        window_ids(&s.tagger, "H").await,
        ["h-1"],
        "the message is written"
    );
    assert!(s.sink.delivered.events().is_empty());
    // SQS delivers it again: a duplicate, whose pending event now goes out.
    assert!(batch_item_failures(&invoke(&s.tagger, batch.clone()).await).is_empty());
    assert_eq!(s.sink.delivered.events().len(), 1);
    assert!(batch_item_failures(&invoke(&s.tagger, batch).await).is_empty());
    assert_eq!(s.sink.delivered.events().len(), 1, "delivered once only");
    assert_eq!(window_ids(&s.tagger, "H").await, ["h-1"]);
}

#[tokio::test]
async fn a_partial_failure_puts_only_the_refused_event_again() {
    let s = setup();
    // A first tag, then a switch to Wishlist carried by a Hot-buyer-free message: to get two
    // events from one message, switch *to* Hot-buyer.
    for (i, m) in [WISHLIST, WISHLIST, WISHLIST].iter().enumerate() {
        invoke(&s.tagger, fifo(&[(&format!("w-{i}"), "P", record("P", m))])).await;
    }
    s.sink.refuse_first.store(1, Ordering::SeqCst);
    let mut failed_once = false;
    for i in 0..3 {
        let id = format!("h-{i}");
        let batch = fifo(&[(&id, "P", record("P", HOT))]);
        let answer = invoke(&s.tagger, batch.clone()).await;
        if !batch_item_failures(&answer).is_empty() {
            failed_once = true;
            assert!(batch_item_failures(&invoke(&s.tagger, batch).await).is_empty());
        }
    }
    assert!(failed_once, "a put of two events was refused in part");
    let ids: Vec<String> = s
        .sink
        .delivered
        .events()
        .iter()
        .map(|e| e.event_id().to_owned())
        .collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "no event delivered twice: {ids:#?}"
    );
    assert!(ids.iter().any(|i| i.ends_with("/tag-changed")), "{ids:#?}");
}

#[tokio::test]
async fn over_direct_invocation_the_answer_succeeds_and_the_event_goes_with_the_next_message() {
    let s = setup();
    s.sink.refuse_calls.store(1, Ordering::SeqCst);
    let op = |m: &str, id: &str| {
        json!({"operation": "classify-conversation", "conversation_id": "D",
               "message": m, "message_id": id})
    };
    let first = invoke(&s.tagger, op(HOT, "d-1")).await;
    assert_eq!(first["duplicate"], json!(false), "{first:#}");
    assert!(s.sink.delivered.events().is_empty());
    let stored = s.store.inner.load("D", 0).await.unwrap().unwrap();
    assert_eq!(stored.outbox.len(), 1, "kept in the outbox");
    invoke(&s.tagger, op(FIRST_TIME, "d-2")).await;
    let put = s.sink.delivered.events();
    assert!(
        put.iter().any(|e| e.event_id() == "D/d-1/tagged/Hot-buyer"),
        "{put:#?}"
    );
    let stored = s.store.inner.load("D", 0).await.unwrap().unwrap();
    assert!(stored.outbox.is_empty());
}

#[tokio::test]
async fn event_tags_must_be_tags_of_the_model() {
    let tagger = Tagger::new(
        Arc::clone(&CLASSIFIER),
        Arc::new(MemoryStore::new()),
        config(&[]),
    );
    let err = tagger
        .with_events(
            Arc::new(MemorySink::default()),
            Some(&["Big-spender".to_owned()]),
        )
        .err()
        .expect("refused");
    assert!(err.contains("Big-spender"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The error contract and the Distributed Map batch.

#[tokio::test]
async fn failures_are_function_errors_named_by_their_code() {
    let s = setup();
    s.store.fail_message("x-1");
    let down = invoke(
        &s.tagger,
        json!({"operation": "classify-conversation", "conversation_id": "X",
               "message": HOT, "message_id": "x-1"}),
    )
    .await;
    assert_eq!(down["errorType"], "store_unavailable", "{down:#}");
    for event in [
        json!({"Records": [{"eventSource": "aws:sns", "Sns": {}}]}),
        json!({"Records": []}),
        json!({"Items": 5}),
        json!({"Items": [], "BatchInput": {"thresholds": {"Deal-seeker": 2}}, "Extra": 1}),
        json!({"detail-type": "Scheduled Event", "source": "aws.events"}),
    ] {
        let answer = invoke(&s.tagger, event.clone()).await;
        assert_eq!(
            answer["errorType"], "invalid_event",
            "{event} -> {answer:#}"
        );
    }
}

#[tokio::test]
async fn a_distributed_map_batch_is_tagged_in_order_with_per_item_errors() {
    let s = setup();
    let mut items: Vec<Value> = (0..130)
        .map(|i| json!({"id": i, "message": if i % 2 == 0 { HOT } else { WISHLIST }, "author": "customer"}))
        .collect();
    items[3] = json!({"id": 3, "message": "   "});
    items[4] = json!({"id": 4, "text": "no message field"});
    let event = json!({"Items": items, "BatchInput": {"thresholds": {"Deal-seeker": 0.0}}});
    let answer = invoke(&s.tagger, event).await;
    assert_eq!(
        (&answer["count"], &answer["failed"]),
        (&json!(130), &json!(2)),
        "{answer:#}"
    );
    let results = answer["results"].as_array().unwrap();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], json!(i));
        match i {
            3 => assert_eq!(r["error"]["code"], "empty_message", "{r:#}"),
            4 => assert_eq!(r["error"]["code"], "invalid_item", "{r:#}"),
            _ => {
                assert_eq!(r["id"], json!(i));
                assert!(r.get("author").is_none(), "unknown fields are not echoed");
                let selected: Vec<&str> = r["selected"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["tag"].as_str().unwrap())
                    .collect();
                assert!(
                    selected.contains(&"Deal-seeker"),
                    "BatchInput's thresholds: {r:#}"
                );
                assert_eq!(selected.contains(&"Hot-buyer"), i % 2 == 0, "{r:#}");
            }
        }
    }
    assert!(s.sink.delivered.events().is_empty(), "bulk puts no events");
}

#[tokio::test]
async fn a_record_whose_only_failure_is_its_events_holds_back_nothing() {
    let s = setup();
    s.sink.refuse_calls.store(1, Ordering::SeqCst);
    let batch = fifo(&[
        ("g-1", "G", record("G", HOT)),
        ("g-2", "G", record("G", FIRST_TIME)),
    ]);
    assert_eq!(
        batch_item_failures(&invoke(&s.tagger, batch).await),
        ["g-1"]
    );
    assert_eq!(window_ids(&s.tagger, "G").await, ["g-1", "g-2"]);
    // g-2's write carried g-1's pending event out; g-1's redelivery puts nothing again.
    let put = s.sink.delivered.events();
    assert!(
        put.iter().any(|e| e.event_id() == "G/g-1/tagged/Hot-buyer"),
        "{put:#?}"
    );
    let retry = fifo(&[("g-1", "G", record("G", HOT))]);
    assert!(batch_item_failures(&invoke(&s.tagger, retry).await).is_empty());
    assert_eq!(s.sink.delivered.events().len(), put.len());
}
