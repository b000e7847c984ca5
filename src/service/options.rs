//! What a caller may choose per classify call (an explanation, its own thresholds, its shop),
//! and what the call then uses: each tag's threshold, where it came from, which tags are on.
//!
//! Thresholds are layered, each layer overriding the one before for the tags it names: the
//! model's (`labels.json`), the shop's profile, the conversation's experiment variant, and the
//! call's own `thresholds`. The answer echoes every value and its layer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::shops::{ProfileSource, Shop};
use super::{invalid, ServiceError};
use crate::classifier::Labels;
use crate::shops;

/// The optional fields of every classify request (HTTP body or direct invocation).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
pub struct Options {
    /// Add, per selected tag, the words that raised its probability most (occlusion: one
    /// extra padded batch of the message with each word removed).
    #[serde(default)]
    pub explain: bool,
    /// Per-tag thresholds for this call (tag -> probability in [0, 1]); they win over the
    /// shop's profile and experiment. The result's `thresholds` echoes the ones used.
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, f64>>)]
    pub thresholds: Option<BTreeMap<String, f64>>,
    /// The shop the message was written to: its profile applies.
    #[serde(default)]
    pub shop_id: Option<String>,
}

/// Which layer a tag's threshold came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdSource {
    /// The model's label file.
    Model,
    /// The shop's profile.
    Profile,
    /// The variant of the shop's experiment this conversation is in.
    Variant,
    /// The call's own `thresholds`.
    Request,
}

/// A conversation's place in its shop's experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ExperimentUse {
    /// The experiment's name.
    pub name: String,
    /// The variant this conversation is in, for its whole life.
    pub variant: String,
}

/// `Options` checked against the model's tags, with the shop's profile applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub explain: bool,
    /// One per tag, in the label file's order (disabled tags keep theirs, unused).
    pub thresholds: Vec<f32>,
    /// Where each threshold came from, in the same order.
    pub sources: Vec<ThresholdSource>,
    /// Whether each tag may be selected (the profile's `enabled_tags`).
    pub enabled: Vec<bool>,
    /// The profile's window size, if it sets one.
    pub window_size: Option<usize>,
    /// The profile's event tags (indices into the model's tags), if it sets them.
    pub event_tags: Option<Vec<usize>>,
    /// The request's shop, where it named one.
    pub shop_id: Option<String>,
    pub profile: ProfileSource,
    /// Why the shop's stored profile could not be read, when it could not.
    pub profile_error: Option<String>,
    /// The conversation's experiment and variant, when its shop runs one.
    pub experiment: Option<ExperimentUse>,
}

impl Resolved {
    /// The thresholds selection compares with: a disabled tag's is infinite (never reached).
    pub fn effective(&self) -> Vec<f32> {
        self.thresholds
            .iter()
            .zip(&self.enabled)
            .map(|(&t, &on)| if on { t } else { f32::INFINITY })
            .collect()
    }
}

impl Options {
    /// The model's thresholds only (no shop): what a call without `shop_id` uses.
    pub fn resolve(&self, labels: &Labels) -> Result<Resolved, ServiceError> {
        self.resolve_for(labels, None, None)
    }

    /// The thresholds this call uses, in layers (module doc), or a 400 naming the bad entry.
    /// `conversation_id` places the call in the shop's experiment, if it runs one. Profile
    /// entries for tags the model does not have (a profile written for an older model) are
    /// ignored; the call's own are refused.
    pub fn resolve_for(
        &self,
        labels: &Labels,
        shop: Option<&Shop>,
        conversation_id: Option<&str>,
    ) -> Result<Resolved, ServiceError> {
        let tags = &labels.tags;
        let mut resolved = Resolved {
            explain: self.explain,
            thresholds: labels.thresholds.clone(),
            sources: vec![ThresholdSource::Model; tags.len()],
            enabled: vec![true; tags.len()],
            window_size: None,
            event_tags: None,
            shop_id: shop.map(|s| s.shop_id.clone()),
            profile: shop.map_or(ProfileSource::Default, |s| s.source),
            profile_error: shop.and_then(|s| s.error.clone()),
            experiment: None,
        };
        if let Some((shop, profile)) = shop.and_then(|s| Some((s, s.profile.as_ref()?))) {
            resolved.apply_profile(profile, tags);
            let experiment = profile.experiment.as_ref().zip(conversation_id);
            if let Some((e, variant)) = experiment.and_then(|(e, conversation)| {
                Some((e, shops::assign(&shop.shop_id, e, conversation)?))
            }) {
                resolved.layer(&variant.thresholds, tags, ThresholdSource::Variant);
                resolved.experiment = Some(ExperimentUse {
                    name: e.name.clone(),
                    variant: variant.name.clone(),
                });
            }
        }
        for (tag, &value) in self.thresholds.iter().flatten() {
            let Some(i) = tags.iter().position(|t| t == tag) else {
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
            resolved.thresholds[i] = value as f32;
            resolved.sources[i] = ThresholdSource::Request;
        }
        Ok(resolved)
    }
}

impl Resolved {
    fn apply_profile(&mut self, profile: &shops::Profile, tags: &[String]) {
        self.layer(&profile.thresholds, tags, ThresholdSource::Profile);
        if let Some(on) = &profile.enabled_tags {
            self.enabled = tags.iter().map(|t| on.contains(t)).collect();
        }
        self.window_size = profile.window_size.filter(|n| (1..=50).contains(n));
        self.event_tags = profile.event_tags.as_ref().map(|named| {
            named
                .iter()
                .filter_map(|t| tags.iter().position(|k| k == t))
                .collect()
        });
    }

    /// Thresholds of one layer, valid ones only (stored layers were checked when written).
    fn layer(&mut self, values: &BTreeMap<String, f64>, tags: &[String], source: ThresholdSource) {
        for (tag, &value) in values {
            match tags.iter().position(|t| t == tag) {
                Some(i) if (0.0..=1.0).contains(&value) => {
                    self.thresholds[i] = value as f32;
                    self.sources[i] = source;
                }
                _ => tracing::debug!(tag, "a stored threshold for a tag this model lacks"),
            }
        }
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
