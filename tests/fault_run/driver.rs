//! The run's machinery: moto with its queues, bus and the two fault proxies (`Rig`), the
//! producer sending the items within a backlog, and the pollers emulating Lambda's SQS poller
//! (one Lambda instance each: receive, `dispatch`, settle), all sharing one tally of what
//! happened to each message. `drive` runs them until the queue is empty or the time limit;
//! what it leaves behind (the tally, the SQS ids sent) is all the checks need from it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tagbeez::api;
use tagbeez::config::Config;
use tagbeez::events::EventBridgeSink;
use tagbeez::service::Tagger;
use tagbeez::store::DynamoStore;

use crate::dynamodb::Moto;
use crate::fault_proxy::{Counts, EventsCounts, FaultProxy};
use crate::router::CLASSIFIER;
use crate::traffic::{Item, Kind};
use crate::{eventbridge, events, sqs, Plan, BUS, DLQ, EVENTS_OUT, QUEUE, RULE, TABLE, VISIBILITY};

/// What one run runs against: moto (SQS, DynamoDB, EventBridge) with the FIFO queue and its
/// dead-letter queue, `events-out` behind the bus's rule, and the fault proxies the Lambda
/// instances reach DynamoDB and EventBridge through. The fields are in drop order: the
/// proxies first, moto last.
pub struct Rig {
    pub events_proxy: FaultProxy,
    pub dynamo_proxy: FaultProxy,
    dynamo_endpoint: String,
    events_endpoint: String,
    pub events_out: sqs::Queue,
    pub dlq: sqs::Queue,
    pub queue: sqs::Queue,
    /// SQS straight to moto, not through a proxy.
    pub direct_sqs: aws_sdk_sqs::Client,
    pub moto: Moto,
}

impl Rig {
    pub async fn start(plan: &Plan) -> Self {
        let mut moto = Moto::start_for_queues(plan.limit + Duration::from_secs(300));
        moto.create_table(TABLE).await;
        let direct_sqs = sqs::client_for(&moto.endpoint());
        let (queue, dlq) =
            sqs::fifo_with_dlq(&direct_sqs, QUEUE, DLQ, plan.max_receive_count, VISIBILITY).await;
        let events_out = sqs::standard_queue(&direct_sqs, EVENTS_OUT).await;
        let direct_events = eventbridge::client_for(&moto.endpoint());
        eventbridge::route_to_queue(
            &direct_events,
            BUS,
            RULE,
            &json!({"source": ["tagbeez"]}),
            &events_out.arn,
        )
        .await;
        let dynamo_proxy = FaultProxy::start(moto.port(), plan.dynamo, plan.seed).await;
        let events_proxy =
            FaultProxy::start_events(moto.port(), plan.events, plan.seed ^ 0xE7).await;
        let (dynamo_endpoint, events_endpoint) = (dynamo_proxy.endpoint(), events_proxy.endpoint());
        Self {
            events_proxy,
            dynamo_proxy,
            dynamo_endpoint,
            events_endpoint,
            events_out,
            dlq,
            queue,
            direct_sqs,
            moto,
        }
    }

    /// A Lambda instance's environment: the table and bus through the proxies.
    fn vars(&self) -> [(&str, &str); 12] {
        [
            ("TABLE_NAME", TABLE),
            ("DYNAMODB_ENDPOINT", self.dynamo_endpoint.as_str()),
            ("DYNAMODB_CONNECT_TIMEOUT_MS", "1000"),
            ("DYNAMODB_OPERATION_TIMEOUT_MS", "2000"),
            ("STORE_DEADLINE_MS", "5000"),
            ("EVENT_BUS_NAME", BUS),
            ("EVENTS_ENDPOINT", self.events_endpoint.as_str()),
            ("EVENTS_TIMEOUT_MS", "2000"),
            ("WINDOW_SIZE", "50"),
            // The newest message weighs most: the tag follows a conversation's phases.
            ("WINDOW_DECAY", "0.5"),
            // Inference waits its turn rather than failing records as `overloaded`.
            ("INFERENCE_QUEUE", "1000"),
            ("INFERENCE_QUEUE_TIMEOUT_MS", "60000"),
        ]
    }

    /// Turns the faults off (nothing more may be faulted once the run is over: the checks
    /// read moto directly) and returns what the proxies injected.
    pub fn quiet(&self) -> (Counts, EventsCounts) {
        self.dynamo_proxy.set_faults(false);
        self.events_proxy.set_faults(false);
        (
            self.dynamo_proxy.counts(),
            self.events_proxy.events_counts(),
        )
    }
}

/// What a run left behind: the pollers' tally, each item's SQS message id (in send order, as
/// `items`), and the run's wall time.
pub struct Run {
    pub tally: Tally,
    pub sent: Vec<String>,
    pub wall: Duration,
}

#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub batches: u64,
    pub records: u64,
    pub returned: u64,
    /// Records received with ApproximateReceiveCount > 1.
    pub redelivered: u64,
    pub invocation_errors: u64,
    /// Times each message was deleted.
    pub deleted: HashMap<String, u32>,
    /// The highest ApproximateReceiveCount each message was received with.
    pub receives: HashMap<String, u32>,
    /// Each message's receives, in order.
    pub history: HashMap<String, Vec<Receipt>>,
    /// Time the pollers spent receiving (non-empty receives), in `dispatch`, and settling.
    pub receiving: Duration,
    pub dispatching: Duration,
    pub settling: Duration,
    pub slowest_dispatch: Duration,
    /// Time the producer spent in SendMessageBatch.
    pub sending: Duration,
}

/// One receive of a message: its ApproximateReceiveCount, whether it was returned, and the
/// batch it came in (poller, batch number, place in the batch, when the batch was received
/// and settled, in ms since the run started).
#[derive(Debug, Clone)]
pub struct Receipt {
    pub count: u32,
    pub returned: bool,
    pub poller: usize,
    pub batch: u64,
    pub place: usize,
    pub received_ms: u128,
    pub settled_ms: u128,
}

struct Shared {
    started: Instant,
    stop: AtomicBool,
    producer_done: AtomicBool,
    sent: Mutex<Vec<Option<String>>>,
    tally: Mutex<Tally>,
}

/// Runs the plan's traffic through the queue: the producer, and one poller per Lambda instance,
/// until the queue is empty (three looks in a row) once everything was sent; fails past the
/// plan's time limit. `started` is when the test started (for the set-up time printed).
pub async fn drive(plan: &Plan, rig: &Rig, items: Arc<Vec<Item>>, started: Instant) -> Run {
    let shared = Arc::new(Shared {
        started: Instant::now(),
        stop: AtomicBool::new(false),
        producer_done: AtomicBool::new(false),
        sent: Mutex::new(vec![None; items.len()]),
        tally: Mutex::new(Tally::default()),
    });
    println!(
        "\nqueue fault run {:?}: {} conversations x {} valid messages + {} poison = {} records, \
         {} pollers, set up in {:.1} s",
        plan.name,
        plan.conversations,
        plan.messages,
        plan.poison,
        items.len(),
        plan.pollers,
        started.elapsed().as_secs_f64()
    );
    let run_started = Instant::now();
    let producing = tokio::spawn(producer(
        rig.direct_sqs.clone(),
        rig.queue.clone(),
        Arc::clone(&items),
        plan.backlog,
        Arc::clone(&shared),
    ));
    // `dispatch`'s future is not `Send` (its HTTP branch holds a body across an await), as
    // `lambda_runtime::run` allows: the pollers run on a `LocalSet` (the records' groups are
    // still tagged on the runtime's workers, and inference on its blocking threads).
    let local = tokio::task::LocalSet::new();
    let mut polling = Vec::new();
    for n in 0..plan.pollers {
        let tagger = instance(&rig.vars()).await;
        polling.push(local.spawn_local(poller(
            n,
            tagger,
            sqs::client_for(&rig.moto.endpoint()),
            rig.queue.clone(),
            Arc::clone(&shared),
        )));
    }

    // Until the queue is empty (three looks in a row), or the time limit.
    let timed_out = local
        .run_until(async {
            let mut timed_out = false;
            let mut empty_looks = 0;
            let mut last_progress = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let depth = sqs::depth(&rig.direct_sqs, &rig.queue).await;
                let done = shared.producer_done.load(Ordering::SeqCst);
                if done && depth.total() == 0 {
                    empty_looks += 1;
                    if empty_looks >= 3 {
                        break;
                    }
                } else {
                    empty_looks = 0;
                }
                if last_progress.elapsed() >= plan.progress_every {
                    last_progress = Instant::now();
                    let sent = shared
                        .sent
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|s| s.is_some())
                        .count();
                    let t = shared.tally.lock().unwrap().clone();
                    println!(
                        "  {:>6.1} s: sent {sent}/{}, {} batches, {} records ({} returned, {} \
                 redelivered), {} deleted; queue {} visible, {} in flight; dynamodb faults {}, \
                 eventbridge faults {}",
                        run_started.elapsed().as_secs_f64(),
                        items.len(),
                        t.batches,
                        t.records,
                        t.returned,
                        t.redelivered,
                        t.deleted.len(),
                        depth.visible,
                        depth.in_flight,
                        rig.dynamo_proxy.counts().faulted(),
                        rig.events_proxy.events_counts().whole_call_faults()
                            + rig.events_proxy.events_counts().partial,
                    );
                }
                if run_started.elapsed() > plan.limit {
                    timed_out = true;
                    break;
                }
            }
            shared.stop.store(true, Ordering::SeqCst);
            for p in polling {
                if let Err(e) = p.await {
                    if e.is_panic() {
                        std::panic::resume_unwind(e.into_panic());
                    }
                    panic!("a poller failed: {e}");
                }
            }
            timed_out
        })
        .await;
    producing.await.expect("the producer");
    let wall = run_started.elapsed();
    let tally = shared.tally.lock().unwrap().clone();
    if timed_out {
        let depth = sqs::depth(&rig.direct_sqs, &rig.queue).await;
        panic!(
            "the run did not end within {:?}: queue {depth:?}, {} batches, {} records, {} \
             returned, {} deleted",
            plan.limit,
            tally.batches,
            tally.records,
            tally.returned,
            tally.deleted.len()
        );
    }
    let sent: Vec<String> = shared
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.clone().expect("every item was sent"))
        .collect();
    Run { tally, sent, wall }
}

/// One Lambda instance: its own store and sink clients, as `main.rs` builds them.
async fn instance(vars: &[(&str, &str)]) -> Tagger {
    let config = Config::from_pairs(vars).expect("a valid configuration");
    let store = DynamoStore::connect(config.dynamodb.as_ref().expect("TABLE_NAME")).await;
    let sink = EventBridgeSink::connect(config.events.as_ref().expect("EVENT_BUS_NAME")).await;
    let tags = config.event_tags.clone();
    Tagger::new(Arc::clone(&CLASSIFIER), Arc::new(store), config)
        .with_events(Arc::new(sink), tags.as_deref())
        .expect("the default event tags")
}

async fn producer(
    client: aws_sdk_sqs::Client,
    queue: sqs::Queue,
    items: Arc<Vec<Item>>,
    backlog: usize,
    shared: Arc<Shared>,
) {
    let mut poison_sent = 0;
    for (k, chunk) in items.chunks(10).enumerate() {
        // Records in the queue, about: sent, less those processed, less the poison ones
        // (which leave through the dead-letter queue).
        loop {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            let deleted = shared.tally.lock().unwrap().deleted.len();
            if (k * 10).saturating_sub(deleted + poison_sent) < backlog {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        poison_sent += chunk
            .iter()
            .filter(|i| matches!(i.kind, Kind::Poison { .. }))
            .count();
        let outgoing: Vec<sqs::Outgoing> = chunk.iter().map(|i| i.out.clone()).collect();
        let t0 = Instant::now();
        let ids = sqs::send_batch(&client, &queue, &outgoing).await;
        shared.tally.lock().unwrap().sending += t0.elapsed();
        let mut sent = shared.sent.lock().unwrap();
        for (i, id) in ids.into_iter().enumerate() {
            sent[k * 10 + i] = Some(id);
        }
    }
    shared.producer_done.store(true, Ordering::SeqCst);
}

/// Lambda's SQS poller for one instance: receive up to ten, invoke, settle, until stopped.
async fn poller(
    n: usize,
    tagger: Tagger,
    client: aws_sdk_sqs::Client,
    queue: sqs::Queue,
    shared: Arc<Shared>,
) {
    let router = api::router(tagger.clone());
    let mut batch = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        let t0 = Instant::now();
        let messages = sqs::receive(&client, &queue, 10).await;
        let received = t0.elapsed();
        if messages.is_empty() {
            // No long polling (see `Moto::start_for_queues`): a short pause instead.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        batch += 1;
        let event = sqs::lambda_event(&messages, &queue);
        let mut context = lambda_runtime::Context::default();
        context.request_id = format!("poller-{n}-batch-{batch}");
        let ids: Vec<String> = messages
            .iter()
            .map(|m| m.message_id().unwrap().to_owned())
            .collect();
        let t1 = Instant::now();
        let answer = tagbeez::lambda::dispatch(
            &router,
            &tagger,
            lambda_runtime::LambdaEvent::new(event, context),
        )
        .await;
        let dispatched = t1.elapsed();
        let (failed, invocation_error) = match answer {
            Ok(answer) => (events::batch_item_failures(&answer), false),
            Err(d) => {
                eprintln!(
                    "poller {n}: the invocation failed: {} {}",
                    d.error_type, d.error_message
                );
                (ids.clone(), true)
            }
        };
        for f in &failed {
            assert!(
                ids.contains(f),
                "batchItemFailures names {f}, not in the batch {ids:?}"
            );
        }
        let t2 = Instant::now();
        let deleted = sqs::settle(&client, &queue, &messages, &failed).await;
        let settled = t2.elapsed();
        let mut t = shared.tally.lock().unwrap();
        t.receiving += received;
        t.dispatching += dispatched;
        t.settling += settled;
        t.slowest_dispatch = t.slowest_dispatch.max(dispatched);
        t.batches += 1;
        t.records += messages.len() as u64;
        t.returned += failed.len() as u64;
        t.invocation_errors += u64::from(invocation_error);
        let received_ms = (t0 - shared.started).as_millis();
        let settled_ms = shared.started.elapsed().as_millis();
        for (place, m) in messages.iter().enumerate() {
            let count = sqs::receive_count(m);
            if count > 1 {
                t.redelivered += 1;
            }
            let seen = t
                .receives
                .entry(m.message_id().unwrap().to_owned())
                .or_default();
            *seen = (*seen).max(count);
            let id = m.message_id().unwrap();
            let returned = failed.iter().any(|f| f == id);
            t.history.entry(id.to_owned()).or_default().push(Receipt {
                count,
                returned,
                poller: n,
                batch,
                place,
                received_ms,
                settled_ms,
            });
        }
        for id in deleted {
            *t.deleted.entry(id).or_default() += 1;
        }
    }
}
