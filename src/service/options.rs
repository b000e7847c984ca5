//! What a caller may choose per classify call: an explanation, and its own thresholds.

use std::collections::BTreeMap;

use serde::Deserialize;
use utoipa::ToSchema;

use super::{invalid, ServiceError};
use crate::classifier::Labels;

/// The optional fields of every classify request (HTTP body or direct invocation).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
pub struct Options {
    /// Add, per selected tag, the words that raised its probability most (occlusion: one
    /// extra padded batch of the message with each word removed).
    #[serde(default)]
    pub explain: bool,
    /// Per-tag thresholds for this call (tag -> probability in [0, 1]); tags not named keep
    /// the model's. The result's `thresholds` echoes the ones used.
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, f64>>)]
    pub thresholds: Option<BTreeMap<String, f64>>,
}

/// `Options` checked against the model's tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub explain: bool,
    /// One per tag, in the label file's order.
    pub thresholds: Vec<f32>,
}

impl Options {
    /// The thresholds this call uses, or a 400 naming the bad entry.
    pub fn resolve(&self, labels: &Labels) -> Result<Resolved, ServiceError> {
        let mut thresholds = labels.thresholds.clone();
        for (tag, &value) in self.thresholds.iter().flatten() {
            let Some(i) = labels.tags.iter().position(|t| t == tag) else {
                return Err(unknown_tag(&format!("thresholds names {tag:?}"), labels));
            };
            if !(0.0..=1.0).contains(&value) {
                return Err(invalid(
                    "invalid_threshold",
                    format!(
                        "thresholds[{tag:?}] is {value}; a threshold is a probability in [0, 1]"
                    ),
                ));
            }
            thresholds[i] = value as f32;
        }
        Ok(Resolved {
            explain: self.explain,
            thresholds,
        })
    }
}

/// A 400 for a tag the model does not have, listing the ones it has.
pub fn unknown_tag(what: &str, labels: &Labels) -> ServiceError {
    invalid(
        "unknown_tag",
        format!(
            "{what}, which is not a tag of this model; its tags are: {}",
            labels.tags.join(", ")
        ),
    )
}
