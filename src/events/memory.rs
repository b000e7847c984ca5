//! Events kept in process memory: the sink of local runs without `EVENT_BUS_NAME` set only
//! when a test asks for it (with no bus, no sink is installed and nothing is built).

use std::sync::Mutex;

use async_trait::async_trait;

use super::{Event, EventError, EventSink};

/// Every event put, in order.
#[derive(Debug, Default)]
pub struct MemorySink {
    events: Mutex<Vec<Event>>,
}

impl MemorySink {
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait]
impl EventSink for MemorySink {
    async fn put(&self, events: &[Event]) -> Result<(), EventError> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(events);
        Ok(())
    }
}
