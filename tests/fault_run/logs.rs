//! Why records were returned, read from the library's own log lines: `lambda::dispatch` logs
//! each record it reports failed with its reason, and each conversation whose delivered events
//! stayed in the outbox; a `tracing` layer collects them by SQS message id and conversation.
//! The checks use them to tell a failed message's story and the summary to count the reasons.
//! Kept apart because it is the only global state of the run (one subscriber per binary).

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex, Once};

use crate::traffic::conversation_id;

#[derive(Default)]
struct Logged {
    /// (message id, reason) of every record reported failed.
    returns: Vec<(String, String)>,
    /// Conversations whose delivered events stayed in the outbox (the clearing write failed).
    clear_failed: Vec<String>,
}

static LOGGED: LazyLock<Mutex<Logged>> = LazyLock::new(Mutex::default);

#[derive(Default)]
struct Fields {
    message: Option<String>,
    message_id: Option<String>,
    reason: Option<String>,
    conversation_id: Option<String>,
    error: Option<String>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.set(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.set(field.name(), format!("{value:?}"));
    }
}

impl Fields {
    fn set(&mut self, name: &str, value: String) {
        match name {
            "message" => self.message = Some(value),
            "message_id" => self.message_id = Some(value),
            "reason" => self.reason = Some(value),
            "conversation_id" => self.conversation_id = Some(value),
            "error" => self.error = Some(value),
            _ => {}
        }
    }
}

struct Capture;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = fields.message.unwrap_or_default();
        let mut logged = LOGGED.lock().unwrap();
        if let (Some(id), Some(mut reason)) = (fields.message_id, fields.reason) {
            if message.starts_with("queue record") {
                // An event put refused in part ("n of m events not delivered") or whole.
                if reason == "events_unavailable" {
                    let partial = fields
                        .error
                        .is_some_and(|e| e.contains("events not delivered"));
                    reason.push_str(if partial {
                        " (partial)"
                    } else {
                        " (whole call)"
                    });
                }
                logged.returns.push((id, reason));
            }
        }
        if message.starts_with("delivered events stay in the window's outbox") {
            logged.clear_failed.extend(fields.conversation_id);
        }
    }
}

/// Installs the capturing layer as the global subscriber (once per test binary).
pub fn capture() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::Layer;
        let subscriber = tracing_subscriber::registry()
            .with(Capture.with_filter(tracing_subscriber::filter::LevelFilter::WARN));
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    });
}

/// Why each of ours (`sent`: this run's SQS ids) was returned, one reason per return, in
/// order.
pub fn returns_of(sent: &[String]) -> HashMap<String, Vec<String>> {
    let logged = LOGGED.lock().unwrap();
    let ours: HashSet<&String> = sent.iter().collect();
    let mut by_id: HashMap<String, Vec<String>> = HashMap::new();
    for (id, reason) in &logged.returns {
        if ours.contains(id) {
            by_id.entry(id.clone()).or_default().push(reason.clone());
        }
    }
    by_id
}

/// How many writes clearing a conversation's outbox failed, among this run's `conversations`.
pub fn clear_failures(conversations: usize) -> usize {
    let logged = LOGGED.lock().unwrap();
    let ours: HashSet<String> = (0..conversations).map(conversation_id).collect();
    logged
        .clear_failed
        .iter()
        .filter(|c| ours.contains(*c))
        .count()
}
