//! SQS events: each record a queued message (`service::Queued`), answered with
//! `ReportBatchItemFailures`' `{"batchItemFailures": [{"itemIdentifier": messageId}]}` so
//! that only the records that failed return to the queue.
//!
//! - A record that fails for a transient reason (store, bus or inference busy or down) is
//!   reported; on a FIFO queue so is every later record of its message group in the batch,
//!   unprocessed, so a conversation's messages are still tagged in the order sent. Not after
//!   `events_unavailable`: that message is written, in order, and only its events wait.
//! - A record that can never succeed (no body, not JSON, invalid fields) is reported too: the
//!   queue's redrive policy moves it to the dead-letter queue after `maxReceiveCount`
//!   receives. It does not hold back the rest of its group: it never succeeds, so nothing
//!   after it would ever be tagged.
//! - Every reported record is logged with its reason and counted in `tagbeez_queue_failures`.
//!
//! Message groups are processed side by side (at most `GROUPS_AT_ONCE`), each in order.

use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::FunctionError;
use crate::api::status_of;
use crate::service::{Queued, Tagger};
use crate::telemetry;

/// The failure of a record that was written but whose events were not all put.
const EVENTS_ONLY: &str = "events_unavailable";

/// Message groups (or records of a standard queue) tagged at once within one batch.
const GROUPS_AT_ONCE: usize = 4;

/// The reason logged and counted for a FIFO record not tried because one before it in its
/// group failed.
const HELD_BACK: &str = "earlier_in_group_failed";

/// `Records` whose first record comes from SQS.
pub(super) fn is_sqs_event(payload: &Value) -> bool {
    payload
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .and_then(|r| r.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:sqs")
}

/// One record, ready to process.
struct Record {
    index: usize,
    message_id: String,
    body: Option<String>,
}

/// Why a record was reported failed.
struct Failure {
    index: usize,
    message_id: String,
    reason: &'static str,
}

pub(super) async fn event(tagger: &Tagger, payload: Value) -> Result<Value, FunctionError> {
    let event: SqsEvent = serde_json::from_value(payload)
        .map_err(|e| FunctionError::invalid_event(format!("not a valid SQS event: {e}")))?;
    let fifo = event.records.iter().any(is_fifo);
    let groups = groups(event.records)?;
    let limit = Arc::new(Semaphore::new(GROUPS_AT_ONCE));
    let mut tasks = tokio::task::JoinSet::new();
    for group in groups {
        let (tagger, limit) = (tagger.clone(), Arc::clone(&limit));
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            process_group(&tagger, group, fifo).await
        });
    }
    let mut failures = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let group = done
            .map_err(|e| FunctionError::new("internal", format!("a record's task failed: {e}")))?;
        failures.extend(group);
    }
    failures.sort_by_key(|f| f.index);
    for f in &failures {
        telemetry::queue_failure(f.reason);
    }
    let items: Vec<Value> = failures
        .iter()
        .map(|f| json!({"itemIdentifier": f.message_id}))
        .collect();
    Ok(json!({ "batchItemFailures": items }))
}

fn is_fifo(record: &SqsMessage) -> bool {
    record.attributes.contains_key("MessageGroupId")
        || record
            .event_source_arn
            .as_deref()
            .is_some_and(|arn| arn.ends_with(".fifo"))
}

/// Records by message group, groups and records in batch order. A standard queue's records
/// have no group: each is one alone. A record without a `messageId` cannot be reported on its
/// own: the whole batch fails (and is retried) rather than lose it.
fn groups(records: Vec<SqsMessage>) -> Result<Vec<Vec<Record>>, FunctionError> {
    let mut groups: Vec<(Option<String>, Vec<Record>)> = Vec::new();
    for (index, r) in records.into_iter().enumerate() {
        let message_id = r.message_id.filter(|m| !m.is_empty()).ok_or_else(|| {
            FunctionError::invalid_event(format!("Records[{index}] has no messageId"))
        })?;
        let group = r.attributes.get("MessageGroupId").cloned();
        let record = Record {
            index,
            message_id,
            body: r.body,
        };
        match groups
            .iter_mut()
            .find(|(g, _)| group.is_some() && *g == group)
        {
            Some((_, members)) => members.push(record),
            None => groups.push((group, vec![record])),
        }
    }
    Ok(groups.into_iter().map(|(_, members)| members).collect())
}

/// A group's records in order; the failures to report.
async fn process_group(tagger: &Tagger, group: Vec<Record>, fifo: bool) -> Vec<Failure> {
    let mut failures = Vec::new();
    let mut held_back = false;
    for record in group {
        if held_back {
            tracing::warn!(message_id = %record.message_id, reason = HELD_BACK, "queue record returned");
            failures.push(Failure {
                index: record.index,
                message_id: record.message_id,
                reason: HELD_BACK,
            });
            continue;
        }
        if let Err((reason, transient)) = process(tagger, &record).await {
            // A message whose only failure is its events is already in its window, in order:
            // the messages after it need not wait (its events go out with the next write or
            // its redelivery).
            held_back = fifo && transient && reason != EVENTS_ONLY;
            failures.push(Failure {
                index: record.index,
                message_id: record.message_id,
                reason,
            });
        }
    }
    failures
}

/// One record; on failure its reason and whether a retry may succeed.
async fn process(tagger: &Tagger, record: &Record) -> Result<(), (&'static str, bool)> {
    let started = Instant::now();
    let queued = parse(record).map_err(|why| {
        tracing::warn!(message_id = %record.message_id, reason = "invalid_record", error = %why, "queue record refused: it never can succeed, so it goes to the dead-letter queue");
        ("invalid_record", false)
    })?;
    let (answer, timings) =
        telemetry::measured(tagger.classify_queued(queued, &record.message_id)).await;
    let status = answer
        .as_ref()
        .map_or_else(|e| status_of(e).as_u16(), |_| 200);
    telemetry::request("sqs", status, started.elapsed(), &timings);
    answer.map(|_| ()).map_err(|e| {
        let (reason, transient) = (e.code(), e.is_transient());
        tracing::warn!(
            message_id = %record.message_id,
            reason,
            transient,
            error = %e,
            "queue record failed"
        );
        (reason, transient)
    })
}

fn parse(record: &Record) -> Result<Queued, String> {
    let body = record.body.as_deref().ok_or("the record has no body")?;
    serde_json::from_str::<Queued>(body).map_err(|e| {
        format!(
            "the body is not a queued message ({{\"conversation_id\"?, \"message\", \
             \"message_id\"?, \"thresholds\"?, \"explain\"?}}): {e}"
        )
    })
}
