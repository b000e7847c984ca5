//! Shops: per-shop profiles (thresholds, enabled tags, window size, event tags) and threshold
//! experiments. Pure domain: no I/O, no clock, no HTTP. The use cases are in
//! `service::shops` and `service::experiments`; the stores in `store::profiles` and
//! `store::experiments`.
//!
//! A profile is checked against the model's labels when it is written (`Profile::check`),
//! and again when it is used (a model with other tags may have shipped since): a tag the
//! model does not have is refused on write and ignored on use, never a failed request.

pub mod assign;
pub mod report;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

pub use assign::{assign, bucket};

/// The most variants one experiment may hold.
pub const MAX_VARIANTS: usize = 8;

/// Why a profile cannot be stored.
#[derive(Debug, Error, PartialEq)]
#[error("{message}")]
pub struct ProfileError {
    /// A stable machine-readable name (`unknown_tag`, `invalid_threshold`, ...).
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> ProfileError {
    ProfileError {
        code,
        message: message.into(),
    }
}

/// A shop's settings. Every field is optional: what is absent is the model's (or the
/// service's) default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Per-tag thresholds (tag -> probability in [0, 1]); tags not named keep the model's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = BTreeMap<String, f64>)]
    pub thresholds: BTreeMap<String, f64>,
    /// The tags this shop uses; absent: all of the model's. A tag not listed is never
    /// selected and never becomes the conversation tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_tags: Option<Vec<String>>,
    /// Messages in this shop's conversation windows (1-50); absent: `WINDOW_SIZE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 50)]
    pub window_size: Option<usize>,
    /// The tags whose selection puts a `Message tagged` event; absent: `EVENT_TAGS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_tags: Option<Vec<String>>,
    /// A threshold experiment over this shop's conversations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<Experiment>,
}

/// Named variants, each a set of thresholds, sharing a shop's conversations. The first
/// variant is the control the others are compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// 1-128 characters of `[A-Za-z0-9_.:@-]`.
    #[schema(pattern = "^[A-Za-z0-9_.:@-]{1,128}$")]
    pub name: String,
    /// 2-8 variants; the first is the control.
    #[schema(min_items = 2, max_items = 8)]
    pub variants: Vec<Variant>,
}

/// One arm of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// 1-128 characters of `[A-Za-z0-9_.:@-]`, unique within the experiment.
    #[schema(pattern = "^[A-Za-z0-9_.:@-]{1,128}$")]
    pub name: String,
    /// Thresholds over the profile's (tag -> probability in [0, 1]).
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, f64>)]
    pub thresholds: BTreeMap<String, f64>,
    /// Its share of the conversations, in (0, 1]; the shares sum to 1.
    #[schema(exclusive_minimum = 0.0, maximum = 1.0)]
    pub share: f64,
}

/// A profile as stored: with when and how often it was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StoredProfile {
    pub profile: Profile,
    /// Epoch seconds of the last write.
    pub updated_at: u64,
    /// Incremented on every write.
    pub version: u64,
}

/// Experiment and variant names: 1-128 characters of `[A-Za-z0-9_.:@-]`, like every id.
pub fn is_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:@-".contains(&b))
}

impl Profile {
    /// Every field against the model's `tags`, or the first problem, named.
    pub fn check(&self, tags: &[String]) -> Result<(), ProfileError> {
        check_thresholds("thresholds", &self.thresholds, tags)?;
        for (field, list) in [
            ("enabled_tags", &self.enabled_tags),
            ("event_tags", &self.event_tags),
        ] {
            for tag in list.iter().flatten() {
                known(tag, field, tags)?;
            }
        }
        if let Some(on) = &self.enabled_tags {
            if on.is_empty() {
                return Err(refuse(
                    "invalid_enabled_tags",
                    "enabled_tags is empty: a shop that uses no tag needs no tagger (leave the \
                     field out to use all of the model's)",
                ));
            }
            if let Some(off) = self.event_tags.iter().flatten().find(|t| !on.contains(t)) {
                return Err(refuse(
                    "invalid_event_tags",
                    format!("event_tags names {off:?}, which enabled_tags leaves out: it could never emit"),
                ));
            }
        }
        if let Some(size) = self.window_size {
            if !(1..=50).contains(&size) {
                return Err(refuse(
                    "invalid_window_size",
                    format!("window_size is {size}; it must be 1 to 50"),
                ));
            }
        }
        if let Some(e) = &self.experiment {
            e.check(tags)?;
        }
        Ok(())
    }
}

impl Experiment {
    fn check(&self, tags: &[String]) -> Result<(), ProfileError> {
        if !is_name(&self.name) {
            return Err(refuse(
                "invalid_experiment",
                "experiment.name must be 1-128 characters of A-Z, a-z, 0-9, '_', '.', ':', '@', '-'",
            ));
        }
        if !(2..=MAX_VARIANTS).contains(&self.variants.len()) {
            return Err(refuse(
                "invalid_experiment",
                format!(
                    "experiment.variants holds {}; an experiment has 2 to {MAX_VARIANTS}",
                    self.variants.len()
                ),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, v) in self.variants.iter().enumerate() {
            if !is_name(&v.name) || !names.insert(v.name.as_str()) {
                return Err(refuse(
                    "invalid_experiment",
                    format!("experiment.variants[{i}].name must be a unique name of 1-128 characters of A-Z, a-z, 0-9, '_', '.', ':', '@', '-'"),
                ));
            }
            if !(v.share > 0.0 && v.share <= 1.0) {
                return Err(refuse(
                    "invalid_experiment",
                    format!(
                        "experiment.variants[{i}].share is {}; a share is in (0, 1]",
                        v.share
                    ),
                ));
            }
            check_thresholds(
                &format!("experiment.variants[{i}].thresholds"),
                &v.thresholds,
                tags,
            )?;
        }
        let total: f64 = self.variants.iter().map(|v| v.share).sum();
        if (total - 1.0).abs() > 1e-6 {
            return Err(refuse(
                "invalid_experiment",
                format!("the variants' shares sum to {total}; they must sum to 1"),
            ));
        }
        Ok(())
    }

    /// The control: the first variant (`None` only for a stored experiment without variants,
    /// which `check` refuses but a table edited by hand may hold).
    pub fn control(&self) -> Option<&Variant> {
        self.variants.first()
    }
}

fn known(tag: &str, field: &str, tags: &[String]) -> Result<(), ProfileError> {
    if tags.iter().any(|t| t == tag) {
        Ok(())
    } else {
        Err(refuse(
            "unknown_tag",
            format!(
                "{field} names {tag:?}, which is not a tag of this model; its tags are: {}",
                tags.join(", ")
            ),
        ))
    }
}

fn check_thresholds(
    field: &str,
    thresholds: &BTreeMap<String, f64>,
    tags: &[String],
) -> Result<(), ProfileError> {
    for (tag, &value) in thresholds {
        known(tag, field, tags)?;
        if !(0.0..=1.0).contains(&value) {
            return Err(refuse(
                "invalid_threshold",
                format!("{field}[{tag:?}] is {value}; a threshold is a probability in [0, 1]"),
            ));
        }
    }
    Ok(())
}

/// What a conversation's outcome was, as the shop reports it (`POST /outcome`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeKind {
    Purchase,
    Handoff,
    Abandoned,
}

/// One recorded outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Makes recording idempotent: a second outcome with the same id is not counted again.
    pub outcome_id: String,
    pub shop_id: String,
    pub conversation_id: String,
    /// The experiment running when it was recorded, and the conversation's variant in it.
    pub experiment: Option<String>,
    pub variant: Option<String>,
    pub outcome: OutcomeKind,
    /// The purchase's value, in `currency`.
    pub value: Option<f64>,
    /// ISO 4217 code, upper case (`EUR`).
    pub currency: Option<String>,
    /// Epoch seconds.
    pub at: u64,
}

/// A conversation's exposure to an experiment: its variant and what it was shown (summed
/// over its messages).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    pub conversation_id: String,
    pub variant: String,
    /// Messages classified in the experiment.
    pub messages: u64,
    /// Tags selected over those messages.
    pub tags_selected: u64,
    /// Epoch seconds of the first message.
    pub first_at: u64,
}

#[cfg(test)]
mod tests;
