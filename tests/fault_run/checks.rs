//! The run's checks, all read from moto directly (not through the proxies) once the run is
//! over: each message deleted as done exactly once (poison never), each conversation's stored
//! window and `message_ids` exactly its valid messages in send order, the dead-letter queue
//! exactly the poison records, every event the windows imply delivered (and nothing else, and
//! copies identical), no undelivered event left in an outbox; a valid message dead-lettered
//! is reported with its story. What is wrong is collected by check in `Problems`, so one run
//! reports every failure at once; `summary` prints the table of what the run did.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};

use crate::driver::{Rig, Run, Tally};
use crate::eventbridge::{self, Delivered};
use crate::fault_proxy::{Counts, EventsCounts};
use crate::traffic::{conversation_id, Item, Kind};
use crate::{dynamodb, logs, sqs, Plan, HOT_BUYER, MESSAGE_TAGGED, TABLE, TAG_CHANGED};

/// Everything the checks found, and what the summary and the final assertions need of it.
pub struct Findings {
    pub problems: Problems,
    pub expected: Expected,
    windows: Vec<Option<Stored>>,
    dead: DeadLetters,
    pub events: Events,
    outboxes: Outboxes,
    /// Why records were returned, counted by reason (from the library's log lines).
    pub reasons: BTreeMap<String, u64>,
    clear_failures: usize,
}

/// Runs every check, in this order (the dead-letter queue and `events-out` are drained).
pub async fn check(plan: &Plan, items: &[Item], run: &Run, rig: &Rig) -> Findings {
    let mut problems = Problems::default();
    let expected = Expected::new(plan, items, &run.sent);
    let stories = Stories::new(&run.sent, &run.tally);
    deletions(&expected, &run.tally, &stories, &mut problems);
    let windows = windows(&rig.moto.client(), &expected, &stories, &mut problems).await;
    let dead = dead_letters(&rig.direct_sqs, &rig.dlq, &expected, &mut problems).await;
    let events = events(&rig.direct_sqs, &rig.events_out, &windows, &mut problems).await;
    let outboxes = outboxes(&windows, &events, &mut problems);
    dead_valid(&expected, &windows, &events, &dead, &stories, &mut problems);
    let reasons = stories.reason_counts();
    let clear_failures = logs::clear_failures(plan.conversations);
    Findings {
        problems,
        expected,
        windows,
        dead,
        events,
        outboxes,
        reasons,
        clear_failures,
    }
}

/// What was sent: per conversation its valid messages' SQS ids in send order; the poison
/// records' ids, each with why it is poison and its body.
pub struct Expected {
    ids: Vec<Vec<String>>,
    pub poison: HashMap<String, (&'static str, String)>,
    valid: HashSet<String>,
}

impl Expected {
    fn new(plan: &Plan, items: &[Item], sent: &[String]) -> Self {
        let mut ids: Vec<Vec<String>> = vec![Vec::new(); plan.conversations];
        let mut poison: HashMap<String, (&'static str, String)> = HashMap::new();
        for (item, id) in items.iter().zip(sent) {
            match item.kind {
                Kind::Valid { conversation } => ids[conversation].push(id.clone()),
                Kind::Poison { why } => {
                    poison.insert(id.clone(), (why, item.out.body.clone()));
                }
            }
        }
        let valid: HashSet<String> = ids.iter().flatten().cloned().collect();
        Self { ids, poison, valid }
    }
}

/// A message's story: its receives, each with what became of it (and why it was returned,
/// from the library's own log lines: one per return, in order).
struct Stories<'a> {
    reasons: HashMap<String, Vec<String>>,
    tally: &'a Tally,
}

impl<'a> Stories<'a> {
    fn new(sent: &[String], tally: &'a Tally) -> Self {
        Self {
            reasons: logs::returns_of(sent),
            tally,
        }
    }

    fn of(&self, id: &str) -> String {
        let mut reasons = self.reasons.get(id).into_iter().flatten();
        let receives: Vec<String> = self
            .tally
            .history
            .get(id)
            .into_iter()
            .flatten()
            .map(|r| {
                let outcome = match r.returned {
                    true => format!(
                        "returned ({})",
                        reasons.next().map_or("no reason logged", String::as_str)
                    ),
                    false => "done".to_owned(),
                };
                format!(
                    "receive {}: {outcome} [poller {} batch {} #{}, {}-{} ms]",
                    r.count, r.poller, r.batch, r.place, r.received_ms, r.settled_ms
                )
            })
            .collect();
        receives.join(", ")
    }

    /// Why records were returned, counted by reason.
    fn reason_counts(&self) -> BTreeMap<String, u64> {
        let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
        for reason in self.reasons.values().flatten() {
            *reasons.entry(reason.clone()).or_default() += 1;
        }
        reasons
    }
}

/// Every valid message deleted once (processed), no poison record deleted.
fn deletions(expected: &Expected, tally: &Tally, stories: &Stories, problems: &mut Problems) {
    for id in &expected.valid {
        match tally.deleted.get(id) {
            Some(1) => {}
            n => problems.add(
                "valid message deleted exactly once",
                format!("{id}: deleted {n:?}; {}", stories.of(id)),
            ),
        }
    }
    for id in expected.poison.keys() {
        if let Some(n) = tally.deleted.get(id) {
            problems.add(
                "poison never deleted as done",
                format!("{id}: deleted {n} times"),
            );
        }
    }
}

/// Order: each window is exactly its valid messages, each once, in send order. Returns each
/// conversation's stored item (`None`: no item).
async fn windows(
    client: &aws_sdk_dynamodb::Client,
    expected: &Expected,
    stories: &Stories<'_>,
    problems: &mut Problems,
) -> Vec<Option<Stored>> {
    let window_size = 50;
    let mut windows = Vec::new();
    for (c, want) in expected.ids.iter().enumerate() {
        let id = conversation_id(c);
        let Some(s) = stored(client, &id).await else {
            problems.add("conversation stored", format!("{id}: no item"));
            windows.push(None);
            continue;
        };
        let got: Vec<String> = s
            .window
            .iter()
            .map(|e| e["message_id"].as_str().unwrap_or("<none>").to_owned())
            .collect();
        let want_window = &want[want.len().saturating_sub(window_size)..];
        if got != want_window {
            let missing: Vec<&String> = want_window.iter().filter(|w| !got.contains(w)).collect();
            let doubled: Vec<&String> = got
                .iter()
                .filter(|g| got.iter().filter(|x| x == g).count() > 1)
                .collect();
            let foreign: Vec<&String> = got.iter().filter(|g| !want.contains(g)).collect();
            // Each stored entry as its place in the send order, and the story of every
            // message stored out of its place.
            let places: Vec<String> = got
                .iter()
                .map(|g| {
                    want_window
                        .iter()
                        .position(|w| w == g)
                        .map_or("?".into(), |p| p.to_string())
                })
                .collect();
            let misplaced: Vec<String> = got
                .iter()
                .zip(want_window)
                .filter(|(g, w)| g != w)
                .map(|(g, _)| format!("{g}: {}", stories.of(g)))
                .collect();
            problems.add(
                "window == valid messages in send order",
                format!(
                    "{id}: {} stored, {} sent; missing {missing:?}, doubled {doubled:?}, not \
                     sent to it {foreign:?}; stored in send places [{}]; misplaced: \
                     {misplaced:#?}",
                    got.len(),
                    want_window.len(),
                    places.join(" "),
                ),
            );
        }
        let want_ids = &want[want
            .len()
            .saturating_sub(tagbeez::conversation::REMEMBERED_IDS)..];
        if s.message_ids != want_ids {
            problems.add(
                "message_ids == valid messages in send order",
                format!(
                    "{id}: {} stored, {} sent; missing {:?}, not sent to it {:?}",
                    s.message_ids.len(),
                    want_ids.len(),
                    want_ids
                        .iter()
                        .filter(|w| !s.message_ids.contains(w))
                        .collect::<Vec<_>>(),
                    s.message_ids
                        .iter()
                        .filter(|g| !want.contains(g))
                        .collect::<Vec<_>>(),
                ),
            );
        }
        windows.push(Some(s));
    }
    windows
}

/// What the dead-letter queue held: how many messages, and the valid ones among them.
struct DeadLetters {
    count: usize,
    valid: Vec<String>,
}

/// The dead-letter queue (drained): exactly the poison records, each once.
async fn dead_letters(
    client: &aws_sdk_sqs::Client,
    dlq: &sqs::Queue,
    expected: &Expected,
    problems: &mut Problems,
) -> DeadLetters {
    let dead = sqs::drain(client, dlq).await;
    let mut dead_seen: HashMap<String, u32> = HashMap::new();
    let mut dead_valid: Vec<String> = Vec::new();
    for m in &dead {
        let id = m.message_id().unwrap().to_owned();
        match expected.poison.get(&id) {
            Some((_, body)) if Some(body.as_str()) == m.body() => {}
            Some(_) => problems.add("DLQ == poison", format!("{id}: body changed")),
            None if expected.valid.contains(&id) => dead_valid.push(id.clone()),
            None => problems.add("DLQ == poison", format!("{id}: never sent")),
        }
        *dead_seen.entry(id).or_default() += 1;
    }
    for (id, (why, _)) in &expected.poison {
        match dead_seen.get(id) {
            Some(1) => {}
            n => problems.add(
                "DLQ == poison",
                format!("{id} ({why}): in the DLQ {n:?} times"),
            ),
        }
    }
    DeadLetters {
        count: dead.len(),
        valid: dead_valid,
    }
}

/// The events delivered to `events-out`, and those the stored windows imply (by event id:
/// the kind and the fields each must carry).
pub struct Events {
    delivered: Vec<Delivered>,
    implied: HashMap<String, (&'static str, Value)>,
    /// `switched` entries in the windows, and entries whose `top` has Hot-buyer.
    pub switches: usize,
    hot: usize,
}

impl Events {
    /// The copies delivered of each event, by event id.
    fn copies(&self) -> HashMap<&str, Vec<&Delivered>> {
        let mut copies: HashMap<&str, Vec<&Delivered>> = HashMap::new();
        for d in &self.delivered {
            copies.entry(d.event_id()).or_default().push(d);
        }
        copies
    }
}

/// Events (`events-out` drained): every `Conversation tag changed` the stored windows imply
/// (entries with `switched`: from their `previous_tag`, to the next entry's `previous_tag` or
/// the stored tag) and every `Message tagged` (entries whose `top` has Hot-buyer) delivered at
/// least once with the right fields, nothing else, and copies of one event identical.
async fn events(
    client: &aws_sdk_sqs::Client,
    events_out: &sqs::Queue,
    windows: &[Option<Stored>],
    problems: &mut Problems,
) -> Events {
    let delivered: Vec<Delivered> = sqs::drain(client, events_out)
        .await
        .iter()
        .map(|m| eventbridge::delivered(m.body().unwrap()))
        .collect();
    for d in &delivered {
        if d.source != "tagbeez" {
            problems.add("events", format!("source {:?}", d.source));
        }
    }
    let mut expected_events: HashMap<String, (&'static str, Value)> = HashMap::new();
    let (mut switches, mut hot) = (0usize, 0usize);
    for (c, s) in windows.iter().enumerate() {
        let Some(s) = s else { continue };
        let id = conversation_id(c);
        for (i, e) in s.window.iter().enumerate() {
            let mid = e["message_id"].as_str().unwrap_or("<none>");
            if e["switched"] == json!(true) {
                switches += 1;
                let from = e.get("previous_tag").and_then(tag_of);
                let to = match s.window.get(i + 1) {
                    Some(next) => next.get("previous_tag").and_then(tag_of),
                    None => s.tag.clone(),
                };
                expected_events.insert(
                    format!("{id}/{mid}/tag-changed"),
                    (
                        TAG_CHANGED,
                        json!({"conversation_id": id, "message_id": mid, "from": from, "to": to}),
                    ),
                );
            }
            let tops: Vec<&str> = e["top"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["tag"].as_str())
                .collect();
            if tops.contains(&HOT_BUYER) {
                hot += 1;
                expected_events.insert(
                    format!("{id}/{mid}/tagged/{HOT_BUYER}"),
                    (
                        MESSAGE_TAGGED,
                        json!({"conversation_id": id, "message_id": mid, "tag": HOT_BUYER}),
                    ),
                );
            }
        }
    }
    let events = Events {
        delivered,
        implied: expected_events,
        switches,
        hot,
    };
    {
        let copies = events.copies();
        for (event_id, (kind, want)) in &events.implied {
            let Some(got) = copies.get(event_id.as_str()) else {
                problems.add(
                    "every implied event delivered at least once",
                    format!("{kind} {event_id}: never delivered"),
                );
                continue;
            };
            for d in got {
                let fields_match = want
                    .as_object()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| d.detail.get(k).unwrap_or(&Value::Null) == v);
                if d.detail_type != *kind || !fields_match {
                    problems.add(
                        "delivered events match the windows",
                        format!(
                            "{event_id}: delivered {} {}, the window implies {kind} {want}",
                            d.detail_type, d.detail
                        ),
                    );
                }
            }
        }
        for event_id in copies.keys() {
            if !events.implied.contains_key(*event_id) {
                problems.add("no event the windows do not imply", event_id.to_string());
            }
        }
        // Every copy of an event is the same event: the outbox keeps it whole, `at` included.
        for (event_id, got) in &copies {
            if got
                .iter()
                .any(|d| d.detail != got[0].detail || d.detail_type != got[0].detail_type)
            {
                problems.add("copies of an event are identical", event_id.to_string());
            }
        }
    }
    events
}

/// Outboxes left non-empty: how many conversations, and how many (delivered) events in them.
struct Outboxes {
    conversations: usize,
    delivered: usize,
}

/// Outboxes left behind: allowed only for events that were delivered.
fn outboxes(windows: &[Option<Stored>], events: &Events, problems: &mut Problems) -> Outboxes {
    let copies = events.copies();
    let (mut left_delivered, mut left_conversations) = (0usize, 0usize);
    for (c, s) in windows.iter().enumerate() {
        let Some(s) = s else { continue };
        if s.outbox.is_empty() {
            continue;
        }
        left_conversations += 1;
        for e in &s.outbox {
            let event_id = e["detail"]["event_id"].as_str().unwrap_or("<none>");
            if copies.contains_key(event_id) {
                left_delivered += 1;
            } else {
                problems.add(
                    "no undelivered event left in an outbox",
                    format!("{}: {event_id} never delivered", conversation_id(c)),
                );
            }
        }
    }
    Outboxes {
        conversations: left_conversations,
        delivered: left_delivered,
    }
}

/// A valid message in the dead-letter queue: its story, whether it is in its window, and
/// what became of the events its window entry implies.
fn dead_valid(
    expected: &Expected,
    windows: &[Option<Stored>],
    events: &Events,
    dead: &DeadLetters,
    stories: &Stories,
    problems: &mut Problems,
) {
    let copies = events.copies();
    for id in &dead.valid {
        let c = expected
            .ids
            .iter()
            .position(|ids| ids.contains(id))
            .unwrap();
        let place = windows[c].as_ref().and_then(|s| {
            s.window
                .iter()
                .position(|e| e["message_id"] == id.as_str())
                .map(|i| format!("in its window at {} of {}", i + 1, s.window.len()))
        });
        let prefix = format!("{}/{id}/", conversation_id(c));
        let implied: Vec<String> = events
            .implied
            .keys()
            .filter(|e| e.starts_with(&prefix))
            .map(|e| {
                let n = copies.get(e.as_str()).map_or(0, Vec::len);
                let left = windows[c].as_ref().is_some_and(|s| {
                    s.outbox
                        .iter()
                        .any(|o| o["detail"]["event_id"] == e.as_str())
                });
                format!("{e}: delivered {n} times, still in the outbox: {left}")
            })
            .collect();
        problems.add(
            "no valid message in the DLQ",
            format!(
                "{id} ({}): {}; {}; events: {implied:?}",
                conversation_id(c),
                stories.of(id),
                place.unwrap_or_else(|| "NOT in its window".into()),
            ),
        );
    }
}

/// Prints the table of what the run did: traffic, batches, returns and why, time per batch,
/// redeliveries, the faults injected, events, outboxes and the dead-letter queue.
pub fn summary(
    plan: &Plan,
    run: &Run,
    (dynamo_counts, events_counts): &(Counts, EventsCounts),
    f: &Findings,
    started: Instant,
) {
    let tally = &run.tally;
    let max_valid_receives = f
        .expected
        .valid
        .iter()
        .filter_map(|id| tally.receives.get(id))
        .copied()
        .max()
        .unwrap_or(0);
    // How many valid messages were received 1, 2, 3... times (the last receive is the one
    // that succeeded): one received `max_receive_count` times was one failure away from the
    // dead-letter queue.
    let mut receive_histogram: BTreeMap<u32, usize> = BTreeMap::new();
    for id in &f.expected.valid {
        *receive_histogram
            .entry(tally.receives.get(id).copied().unwrap_or(0))
            .or_default() += 1;
    }
    let copies = f.events.copies();
    let duplicated: Vec<(&&str, usize)> = copies
        .iter()
        .filter(|(_, c)| c.len() > 1)
        .map(|(id, c)| (id, c.len()))
        .collect();
    let extra_copies: usize = duplicated.iter().map(|(_, n)| n - 1).sum();
    let by_type = |kind: &str| {
        f.events
            .delivered
            .iter()
            .filter(|d| d.detail_type == kind)
            .count()
    };
    let unique_by_type = |kind: &str| {
        copies
            .values()
            .filter(|c| c.first().is_some_and(|d| d.detail_type == kind))
            .count()
    };
    let poison_kinds = {
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for (why, _) in f.expected.poison.values() {
            *kinds.entry(why).or_default() += 1;
        }
        kinds
    };
    let row = |name: &str, value: String| println!("  {name:<34} {value}");
    println!("\nqueue fault run {:?}: summary", plan.name);
    row("messages sent", format!("{}", run.sent.len()));
    row(
        "valid",
        format!(
            "{} ({} conversations x {})",
            f.expected.valid.len(),
            plan.conversations,
            plan.messages
        ),
    );
    row(
        "poison",
        format!("{} {poison_kinds:?}", f.expected.poison.len()),
    );
    row("pollers (Lambda instances)", format!("{}", plan.pollers));
    row(
        "batches invoked",
        format!(
            "{} (mean {:.1} records)",
            tally.batches,
            tally.records as f64 / tally.batches.max(1) as f64
        ),
    );
    row("records delivered to Lambda", format!("{}", tally.records));
    row(
        "records returned",
        format!("{} {:?}", tally.returned, f.reasons),
    );
    row("invocation errors", format!("{}", tally.invocation_errors));
    let per_batch = |d: Duration| d.as_secs_f64() * 1000.0 / tally.batches.max(1) as f64;
    row(
        "time per batch (mean)",
        format!(
            "receive {:.0} ms, dispatch {:.0} ms (slowest {:.0} ms), settle {:.0} ms; \
             SendMessageBatch {:.0} ms",
            per_batch(tally.receiving),
            per_batch(tally.dispatching),
            tally.slowest_dispatch.as_secs_f64() * 1000.0,
            per_batch(tally.settling),
            tally.sending.as_secs_f64() * 1000.0 / (run.sent.len() as f64 / 10.0).ceil(),
        ),
    );
    row(
        "redeliveries (ReceiveCount > 1)",
        format!(
            "{} (highest receive count of a valid message: {max_valid_receives}; valid messages by receive count: {receive_histogram:?})",
            tally.redelivered
        ),
    );
    row("DynamoDB", dynamo_counts.summary());
    row("EventBridge", events_counts.summary());
    row(
        "switches in the windows",
        format!(
            "{} ({:.1} per conversation)",
            f.events.switches,
            f.events.switches as f64 / plan.conversations as f64
        ),
    );
    row(
        "Hot-buyer messages in the windows",
        format!("{}", f.events.hot),
    );
    row(
        "events delivered",
        format!(
            "{} in all: {TAG_CHANGED} {} ({} distinct), {MESSAGE_TAGGED} {} ({} distinct)",
            f.events.delivered.len(),
            by_type(TAG_CHANGED),
            unique_by_type(TAG_CHANGED),
            by_type(MESSAGE_TAGGED),
            unique_by_type(MESSAGE_TAGGED)
        ),
    );
    row(
        "duplicate events",
        format!(
            "{} event ids delivered more than once ({extra_copies} extra copies)",
            duplicated.len()
        ),
    );
    row(
        "outboxes left non-empty",
        format!(
            "{} conversations, {} events, all delivered unless listed below; {} clearing writes failed",
            f.outboxes.conversations, f.outboxes.delivered, f.clear_failures
        ),
    );
    let dead_unwritten = f
        .dead
        .valid
        .iter()
        .filter(|id| {
            !f.windows
                .iter()
                .flatten()
                .any(|s| s.message_ids.contains(id))
        })
        .count();
    row(
        "DLQ",
        format!(
            "{} messages (maxReceiveCount {}): {} poison, {} valid ({} of them never written to \
             their window)",
            f.dead.count,
            plan.max_receive_count,
            f.dead.count - f.dead.valid.len(),
            f.dead.valid.len(),
            dead_unwritten
        ),
    );
    row(
        "wall time",
        format!(
            "{:.1} s (run), {:.1} s (whole test)",
            run.wall.as_secs_f64(),
            started.elapsed().as_secs_f64()
        ),
    );
}

/// A conversation's stored item, read from moto directly.
pub struct Stored {
    pub window: Vec<Value>,
    pub message_ids: Vec<String>,
    pub tag: Option<String>,
    pub outbox: Vec<Value>,
}

async fn stored(client: &aws_sdk_dynamodb::Client, id: &str) -> Option<Stored> {
    let item = dynamodb::raw_item(client, TABLE, id).await?;
    let json_of = |k: &str| -> Option<Value> {
        item.get(k)
            .and_then(|v: &AttributeValue| v.as_s().ok())
            .map(|s| serde_json::from_str(s).unwrap_or_else(|e| panic!("{id}.{k}: {e}")))
    };
    let list = |k: &str| -> Vec<Value> {
        json_of(k)
            .map(|v| v.as_array().cloned().unwrap_or_default())
            .unwrap_or_default()
    };
    Some(Stored {
        window: list("window"),
        message_ids: list("message_ids")
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect(),
        tag: json_of("tag").and_then(|t| t["tag"].as_str().map(str::to_owned)),
        outbox: list("outbox"),
    })
}

fn tag_of(v: &Value) -> Option<String> {
    v.get("tag").and_then(Value::as_str).map(str::to_owned)
}

/// What a run found wrong, by check.
#[derive(Default)]
pub struct Problems(BTreeMap<&'static str, Vec<String>>);

impl Problems {
    pub fn add(&mut self, check: &'static str, what: String) {
        self.0.entry(check).or_default().push(what);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn report(&self) -> String {
        let mut out = String::new();
        for (check, list) in &self.0 {
            let _ = writeln!(out, "  {check}: {} problem(s)", list.len());
            for p in list.iter().take(15) {
                let _ = writeln!(out, "    - {p}");
            }
            if list.len() > 15 {
                let _ = writeln!(out, "    ... and {} more", list.len() - 15);
            }
        }
        out
    }
}
