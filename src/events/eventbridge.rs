//! The EventBridge sink: `PutEvents` on one bus, ten entries a call (the API's limit).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use super::{Event, EventError, EventSink, SOURCE};

/// `PutEvents` takes at most ten entries.
const MAX_ENTRIES: usize = 10;

/// How to reach the bus (`EVENT_BUS_NAME`, `EVENTS_ENDPOINT`, `EVENTS_TIMEOUT_MS`).
#[derive(Debug, Clone, PartialEq)]
pub struct EventBridgeSettings {
    /// A bus name or ARN.
    pub bus: String,
    /// A local EventBridge-compatible server; `None` for AWS.
    pub endpoint: Option<String>,
    /// Per call, the SDK's own retries included: a put never holds an answer longer.
    pub operation_timeout: Duration,
}

/// Events to one EventBridge bus. Build once at start-up: the client holds the connections.
#[derive(Debug, Clone)]
pub struct EventBridgeSink {
    client: Client,
    bus: String,
}

impl EventBridgeSink {
    pub async fn connect(settings: &EventBridgeSettings) -> Self {
        let config = crate::aws_sdk::config(
            settings.endpoint.as_deref(),
            Duration::from_secs(1),
            settings.operation_timeout,
        )
        .await;
        Self {
            client: Client::new(&config),
            bus: settings.bus.clone(),
        }
    }

    fn entry(&self, event: &Event) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(event.detail_type())
            .detail(event.detail_json())
            .build()
    }

    /// One call of at most ten events; the ids of those refused.
    async fn put_chunk(&self, chunk: &[Event]) -> Result<Vec<String>, String> {
        let out = self
            .client
            .put_events()
            .set_entries(Some(chunk.iter().map(|e| self.entry(e)).collect()))
            .send()
            .await
            .map_err(|e| crate::aws_sdk::chain(&e))?;
        if out.failed_entry_count() == 0 {
            return Ok(Vec::new());
        }
        // Result entries are in request order; a refused one has an error code.
        let failed = chunk
            .iter()
            .zip(
                out.entries()
                    .iter()
                    .map(Some)
                    .chain(std::iter::repeat(None)),
            )
            .filter(|(_, r)| r.is_none_or(|r| r.error_code().is_some()))
            .map(|(e, _)| e.event_id().to_owned())
            .collect();
        Ok(failed)
    }
}

/// Puts of the entries a call refused (the SDK retries whole calls, not refused entries).
const ENTRY_ATTEMPTS: u32 = 3;

#[async_trait]
impl EventSink for EventBridgeSink {
    /// Put `events`; entries the bus refuses are put again, up to `ENTRY_ATTEMPTS` in all.
    async fn put(&self, events: &[Event]) -> Result<(), EventError> {
        let mut pending: Vec<Event> = events.to_vec();
        for attempt in 1..=ENTRY_ATTEMPTS {
            match self.put_once(&pending).await {
                Err(EventError::Partial { failed, .. }) if attempt < ENTRY_ATTEMPTS => {
                    pending.retain(|e| failed.iter().any(|f| f == e.event_id()));
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                }
                Err(EventError::Partial { failed, reason, .. }) => {
                    return Err(EventError::Partial {
                        failed,
                        total: events.len(),
                        reason,
                    })
                }
                // After a first round, only what was still pending is undelivered.
                Err(EventError::Unavailable(reason)) if attempt > 1 => {
                    return Err(EventError::Partial {
                        failed: pending.iter().map(|e| e.event_id().to_owned()).collect(),
                        total: events.len(),
                        reason,
                    })
                }
                other => return other,
            }
        }
        Ok(())
    }
}

impl EventBridgeSink {
    /// One round of calls over `events`, ten at a time.
    async fn put_once(&self, events: &[Event]) -> Result<(), EventError> {
        let mut failed = Vec::new();
        let mut reason = None;
        for chunk in events.chunks(MAX_ENTRIES) {
            match self.put_chunk(chunk).await {
                Ok(refused) if refused.is_empty() => {}
                Ok(refused) => {
                    reason.get_or_insert_with(|| "entries refused by the bus".to_owned());
                    failed.extend(refused);
                }
                Err(why) if events.len() <= MAX_ENTRIES => {
                    return Err(EventError::Unavailable(why));
                }
                Err(why) => {
                    reason.get_or_insert(why);
                    failed.extend(chunk.iter().map(|e| e.event_id().to_owned()));
                }
            }
        }
        match reason {
            None => Ok(()),
            Some(reason) => Err(EventError::Partial {
                failed,
                total: events.len(),
                reason,
            }),
        }
    }
}
