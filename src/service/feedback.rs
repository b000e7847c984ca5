//! The feedback use case: validate a correction against the model's tags and store it.
//!
//! The message is stored redacted (`crate::redact`): feedback is the one place a customer's
//! text is kept (a year by default, `FEEDBACK_TTL_DAYS`, and exported for retraining), so
//! e-mail addresses, phone, card and IBAN numbers and street addresses become `[EMAIL]`,
//! `[PHONE]`, `[CARD]`, `[IBAN]` and `[ADDRESS]` before it is. Retraining then sees the tokens,
//! as it already does in the real pool (scrubbed to `[EMAIL]` and `[PHONE]` before the project
//! got it); docs/privacy.md measures what the tokens do to the model.

use std::collections::BTreeSet;

use super::options::unknown_tag;
use super::{invalid, now, valid_conversation_id, valid_message_id, ServiceError, Tagger};
use crate::classifier::Labels;
use crate::feedback::{valid_source, Feedback, FeedbackReceipt, FeedbackRecord};
use crate::redact::redact;

impl Tagger {
    /// Check a correction and store it durably; the receipt names its id.
    pub async fn feedback(&self, feedback: Feedback) -> Result<FeedbackReceipt, ServiceError> {
        let labels = self.classifier.labels();
        let message = self.valid_message(&feedback.message, "message")?;
        known_tags(&feedback.tags, "tags", labels)?;
        if let Some(predicted) = &feedback.predicted {
            known_tags(predicted, "predicted", labels)?;
        }
        if let Some(id) = &feedback.conversation_id {
            valid_conversation_id(id)?;
        }
        if let Some(id) = &feedback.message_id {
            valid_message_id(id)?;
        }
        if let Some(id) = &feedback.shop_id {
            super::shops::valid_shop_id(id)?;
        }
        if let Some(source) = feedback.source.as_deref().filter(|s| !valid_source(s)) {
            return Err(invalid(
                "invalid_source",
                format!(
                    "source {source:?} must be 1-64 characters of A-Z, a-z, 0-9, '_', '.', ':', '@', '-'"
                ),
            ));
        }
        let received_at = now();
        let record = FeedbackRecord {
            feedback_id: uuid::Uuid::new_v4().to_string(),
            message: redact(&message).text,
            tags: feedback.tags,
            predicted: feedback.predicted,
            model_version: labels.file.model_version.clone(),
            conversation_id: feedback.conversation_id,
            message_id: feedback.message_id,
            source: feedback.source,
            shop_id: feedback.shop_id,
            received_at,
        };
        let expires_at = received_at + self.config.feedback_ttl_days * 86_400;
        let put = async {
            self.feedback
                .put(&record, expires_at)
                .await
                .map_err(|e| ServiceError::FeedbackUnavailable(e.to_string()))
        };
        match tokio::time::timeout(self.config.store_deadline, put).await {
            Ok(stored) => stored?,
            Err(_) => {
                return Err(ServiceError::FeedbackUnavailable(
                    "the feedback store did not answer within STORE_DEADLINE_MS".into(),
                ))
            }
        }
        crate::telemetry::feedback_received();
        Ok(FeedbackReceipt::from(&record))
    }
}

/// Every entry a tag of the model, none twice.
fn known_tags(tags: &[String], field: &str, labels: &Labels) -> Result<(), ServiceError> {
    let mut seen = BTreeSet::new();
    for (i, tag) in tags.iter().enumerate() {
        if !labels.tags.contains(tag) {
            return Err(unknown_tag(&format!("{field}[{i}] is {tag:?}"), labels));
        }
        if !seen.insert(tag) {
            return Err(invalid(
                "repeated_tag",
                format!("{field}[{i}] repeats {tag:?}"),
            ));
        }
    }
    Ok(())
}
