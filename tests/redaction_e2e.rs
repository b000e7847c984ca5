//! No personal data survives into the store or the logs: generated messages holding a valid
//! card number (Luhn), an e-mail address or a phone number go through the real router and
//! the Lambda dispatch with the real model, and the stored window snippets, the stored
//! feedback and every log line are searched for them. The redaction functions' own
//! properties are in `tests/redact.rs`; their generators are shared (`support/pii.rs`).

#[path = "support/pii.rs"]
mod pii;
#[path = "support/router.rs"]
mod router;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use proptest::prelude::*;
use serde_json::{json, Value};
use tagbeez::api;
use tagbeez::service::Tagger;
use tagbeez::store::{ConversationStore, FeedbackStore, MemoryFeedback, MemoryStore};

use router::{config, invoke, post, CLASSIFIER};

/// Every log line the process writes, through the subscriber `main` installs.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Captured;

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn install_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let subscriber = tagbeez::telemetry::logging::subscriber("debug", || Captured);
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    });
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// Whether `text` still holds `pii` (as written, or its digits run together in `digits`).
fn leaks(text: &str, written: &str, pii_digits: &str) -> bool {
    text.contains(written) || (!pii_digits.is_empty() && digits(text).contains(pii_digits))
}

/// One piece of personal data as written, and the digits that must not survive (empty for
/// an e-mail address, which must not survive as written).
fn any_pii() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        pii::card(),
        pii::phone(),
        pii::email().prop_map(|e| (e, String::new())),
    ]
}

/// Words around it: letters only, so no digit joins the number and changes what it is.
fn words() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-zA-Z]{1,8}", 0..6).prop_map(|w| w.join(" "))
}

#[test]
fn no_card_email_or_phone_reaches_the_store_or_the_logs() {
    install_logs();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(MemoryStore::new());
    let feedback = Arc::new(MemoryFeedback::default());
    let tagger = Tagger::new(
        Arc::clone(&CLASSIFIER),
        store.clone(),
        config(&[("SNIPPET_CHARS", "500")]),
    )
    .with_feedback(feedback.clone());
    let app = api::router(tagger.clone());
    let cases = std::env::var("PII_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
    let n = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(
            &(words(), any_pii(), words()),
            |(before, (written, pii_digits), after)| {
                let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let message = format!("{before} {written} {after}");
                let id = format!("pii-{n}");
                LOGS.lock().unwrap().clear();
                let (window, stored_feedback, logs, redactions) = rt.block_on(async {
                    let reply = post(
                        &app,
                        "/classify-conversation",
                        &json!({"conversation_id": id, "message": message}),
                    )
                    .await;
                    assert_eq!(reply.status, 200, "{}", reply.json);
                    post(&app, "/feedback", &json!({"message": message, "tags": []})).await;
                    // An error message that quotes the customer's text: an unknown tag named by it.
                    let refused = invoke(
                        &tagger,
                        json!({"operation": "classify-message", "message": message,
                           "thresholds": {written.clone(): 0.5}}),
                    )
                    .await;
                    assert_eq!(refused["errorType"], "unknown_tag", "{refused}");
                    let window = store.load(&id, 0).await.unwrap().expect("stored");
                    let records = feedback.page(None).await.unwrap().0;
                    let logs = String::from_utf8(LOGS.lock().unwrap().clone()).unwrap();
                    (
                        window,
                        records,
                        logs,
                        reply.json["message_result"]["redactions"].clone(),
                    )
                });
                prop_assert!(redactions.as_u64() >= Some(1), "{message:?}: {redactions}");
                for entry in &window.entries {
                    prop_assert!(
                        !leaks(&entry.snippet, &written, &pii_digits),
                        "snippet {:?} of {message:?}",
                        entry.snippet
                    );
                }
                for record in &stored_feedback {
                    prop_assert!(
                        !leaks(&record.message, &written, &pii_digits),
                        "feedback {:?}",
                        record.message
                    );
                }
                prop_assert!(
                    logs.contains("unknown_tag"),
                    "the refusal is logged: {logs}"
                );
                for line in logs.lines() {
                    prop_assert!(
                        serde_json::from_str::<Value>(line).is_ok(),
                        "not JSON: {line}"
                    );
                    prop_assert!(
                        !line.contains(&written)
                            && (pii_digits.is_empty() || !line.contains(&pii_digits)),
                        "log line {line}"
                    );
                }
                Ok(())
            },
        )
        .unwrap();
}
