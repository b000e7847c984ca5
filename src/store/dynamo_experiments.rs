//! Experiment records in DynamoDB: one partition per shop and experiment, one item per exposed
//! conversation and one per outcome, so a report is one Query.
//!
//! Keys: `pk` (S, partition) = `{shop_id}#{experiment}` (`{shop_id}#` for outcomes recorded
//! while no experiment ran; names never hold a `#`, so `shop-a#x` and `shop-ab#x` never
//! mix), `sk` (S, sort) = `c#{conversation_id}` for an exposure, `o#{outcome_id}` for an
//! outcome. Every item has `expires_at` (N, epoch seconds; the table's TTL attribute): 400
//! days after its last write, long enough for a year-on-year comparison.
//!
//! Exposure: `conversation_id` (S), `variant` (S), `messages`, `tags_selected`, `first_at`
//! (N). Outcome: `outcome_id`, `shop_id`, `conversation_id` (S), `outcome` (S:
//! `purchase`, `handoff` or `abandoned`), `at` (N), and when known `value` (N), `currency`,
//! `experiment`, `variant` (S). Plain attributes, not JSON: an operator can read and filter
//! them in the console.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::dynamo::{client, number, unavailable};
use super::{DynamoSettings, ExperimentRecords, ExperimentStore, StoreError};
use crate::shops::{Exposure, Outcome, OutcomeKind};

/// How long an item is kept after its last write (the TTL), in seconds: 400 days.
pub const RETENTION_SECONDS: u64 = 400 * 86_400;

/// The most Query pages `records` reads (at most 1 MB each): far beyond any real experiment,
/// and a bound if a server kept handing back a next page.
const MAX_PAGES: usize = 10_000;

const EXPOSURE: &str = "c#";
const OUTCOME: &str = "o#";

/// Experiment records in a DynamoDB table. Build once at start-up and share: the client holds
/// the connection pool.
#[derive(Debug, Clone)]
pub struct DynamoExperiments {
    client: Client,
    table: String,
    /// Items per Query page; `None`: DynamoDB's own (1 MB).
    page_limit: Option<i32>,
    max_pages: usize,
}

impl DynamoExperiments {
    pub async fn connect(settings: &DynamoSettings) -> Self {
        Self {
            client: client(settings).await,
            table: settings.table.clone(),
            page_limit: None,
            max_pages: MAX_PAGES,
        }
    }

    /// Read `records` in pages of at most `items` items (tests: pagination without a
    /// megabyte of data).
    pub fn with_page_limit(mut self, items: i32) -> Self {
        self.page_limit = Some(items.max(1));
        self
    }

    /// Fail `records` past `pages` pages instead of the default 10,000 (tests: the bound).
    pub fn with_max_pages(mut self, pages: usize) -> Self {
        self.max_pages = pages;
        self
    }
}

/// The partition of a shop's experiment.
fn partition(shop_id: &str, experiment: &str) -> AttributeValue {
    AttributeValue::S(format!("{shop_id}#{experiment}"))
}

fn text(s: &str) -> AttributeValue {
    AttributeValue::S(s.to_owned())
}

#[async_trait]
impl ExperimentStore for DynamoExperiments {
    async fn expose(
        &self,
        shop_id: &str,
        experiment: &str,
        conversation_id: &str,
        variant: &str,
        tags_selected: u64,
        at: u64,
    ) -> Result<(), StoreError> {
        // One UpdateItem: ADD is atomic, so concurrent messages of a conversation all count,
        // and if_not_exists keeps the variant and time of the first.
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", partition(shop_id, experiment))
            .key("sk", text(&format!("{EXPOSURE}{conversation_id}")))
            .update_expression(
                "ADD messages :one, tags_selected :n \
                 SET variant = if_not_exists(variant, :v), \
                 first_at = if_not_exists(first_at, :at), \
                 conversation_id = :c, expires_at = :exp",
            )
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":n", number(tags_selected))
            .expression_attribute_values(":v", text(variant))
            .expression_attribute_values(":at", number(at))
            .expression_attribute_values(":c", text(conversation_id))
            .expression_attribute_values(":exp", number(at.saturating_add(RETENTION_SECONDS)))
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn record_outcome(&self, outcome: &Outcome) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(outcome_item(outcome)?))
            // Idempotent by outcome id: a retried report is not counted twice.
            .condition_expression("attribute_not_exists(sk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn records(
        &self,
        shop_id: &str,
        experiment: &str,
    ) -> Result<ExperimentRecords, StoreError> {
        let mut records = ExperimentRecords::default();
        let mut start = None;
        for _ in 0..self.max_pages {
            // Consistent: a report right after an outcome is recorded counts it.
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", partition(shop_id, experiment))
                .consistent_read(true)
                .set_limit(self.page_limit)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items() {
                add(&mut records, item)?;
            }
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                // The same order as the memory store (DynamoDB's sort key order already is,
                // for UTF-8 ids; sorting makes it so whatever the server).
                records
                    .exposures
                    .sort_by(|a, b| a.conversation_id.cmp(&b.conversation_id));
                records
                    .outcomes
                    .sort_by(|a, b| a.outcome_id.cmp(&b.outcome_id));
                return Ok(records);
            }
        }
        Err(StoreError::Unavailable(format!(
            "experiment records run past {} pages",
            self.max_pages
        )))
    }
}

/// File one item of the partition by its sort key. An item of another kind is skipped: a
/// later version may add kinds, and an earlier one must still be able to report.
fn add(
    records: &mut ExperimentRecords,
    item: &HashMap<String, AttributeValue>,
) -> Result<(), StoreError> {
    let sk = item
        .get("sk")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Unavailable("stored experiment item has no sk".into()))?;
    if sk.starts_with(EXPOSURE) {
        records.exposures.push(exposure(item)?);
    } else if sk.starts_with(OUTCOME) {
        records.outcomes.push(outcome(item)?);
    }
    Ok(())
}

/// Typed reads of one stored item, each failure naming the attribute.
struct Fields<'a> {
    item: &'a HashMap<String, AttributeValue>,
    kind: &'static str,
}

impl Fields<'_> {
    fn bad(&self, what: &str) -> StoreError {
        StoreError::Unavailable(format!("stored {} has a missing or bad {what}", self.kind))
    }

    /// An optional string: absent is `None`, another type is an error.
    fn opt_text(&self, k: &str) -> Result<Option<String>, StoreError> {
        self.item
            .get(k)
            .map(|v| v.as_s().cloned().map_err(|_| self.bad(k)))
            .transpose()
    }

    fn text(&self, k: &str) -> Result<String, StoreError> {
        self.opt_text(k)?.ok_or_else(|| self.bad(k))
    }

    fn opt_number<T: std::str::FromStr>(&self, k: &str) -> Result<Option<T>, StoreError> {
        self.item
            .get(k)
            .map(|v| {
                v.as_n()
                    .ok()
                    .and_then(|n| n.parse::<T>().ok())
                    .ok_or_else(|| self.bad(k))
            })
            .transpose()
    }

    fn count(&self, k: &str) -> Result<u64, StoreError> {
        self.opt_number(k)?.ok_or_else(|| self.bad(k))
    }
}

fn exposure(item: &HashMap<String, AttributeValue>) -> Result<Exposure, StoreError> {
    let f = Fields {
        item,
        kind: "exposure",
    };
    Ok(Exposure {
        conversation_id: f.text("conversation_id")?,
        variant: f.text("variant")?,
        messages: f.count("messages")?,
        tags_selected: f.count("tags_selected")?,
        first_at: f.count("first_at")?,
    })
}

fn outcome(item: &HashMap<String, AttributeValue>) -> Result<Outcome, StoreError> {
    let f = Fields {
        item,
        kind: "outcome",
    };
    let kind = f.text("outcome")?;
    Ok(Outcome {
        outcome_id: f.text("outcome_id")?,
        shop_id: f.text("shop_id")?,
        conversation_id: f.text("conversation_id")?,
        experiment: f.opt_text("experiment")?,
        variant: f.opt_text("variant")?,
        outcome: kind_of(&kind).ok_or_else(|| f.bad("outcome"))?,
        value: f
            .opt_number::<f64>("value")?
            .map(|v| {
                Some(v)
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| f.bad("value"))
            })
            .transpose()?,
        currency: f.opt_text("currency")?,
        at: f.count("at")?,
    })
}

fn word(kind: OutcomeKind) -> &'static str {
    match kind {
        OutcomeKind::Purchase => "purchase",
        OutcomeKind::Handoff => "handoff",
        OutcomeKind::Abandoned => "abandoned",
    }
}

fn kind_of(word: &str) -> Option<OutcomeKind> {
    match word {
        "purchase" => Some(OutcomeKind::Purchase),
        "handoff" => Some(OutcomeKind::Handoff),
        "abandoned" => Some(OutcomeKind::Abandoned),
        _ => None,
    }
}

fn outcome_item(o: &Outcome) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let experiment = o.experiment.as_deref().unwrap_or_default();
    let mut item = HashMap::from([
        ("pk".to_owned(), partition(&o.shop_id, experiment)),
        ("sk".to_owned(), text(&format!("{OUTCOME}{}", o.outcome_id))),
        ("outcome_id".to_owned(), text(&o.outcome_id)),
        ("shop_id".to_owned(), text(&o.shop_id)),
        ("conversation_id".to_owned(), text(&o.conversation_id)),
        ("outcome".to_owned(), text(word(o.outcome))),
        ("at".to_owned(), number(o.at)),
        (
            "expires_at".to_owned(),
            number(o.at.saturating_add(RETENTION_SECONDS)),
        ),
    ]);
    if let Some(value) = o.value {
        // DynamoDB numbers are decimal: NaN and infinities have no form there.
        if !value.is_finite() {
            return Err(StoreError::Unavailable(format!(
                "outcome value {value} cannot be stored: not a finite number"
            )));
        }
        item.insert("value".to_owned(), AttributeValue::N(value.to_string()));
    }
    for (name, v) in [
        ("currency", &o.currency),
        ("experiment", &o.experiment),
        ("variant", &o.variant),
    ] {
        if let Some(v) = v {
            item.insert(name.to_owned(), text(v));
        }
    }
    Ok(item)
}
