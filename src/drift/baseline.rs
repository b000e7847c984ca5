//! The baseline: per tag, the share of the shipped model's calibrated probabilities in each of
//! the ten bins on the model card's validation split. Written by `make drift-baseline`
//! (`model/pipeline/drift.py`) into `model/drift-baseline.json` and compiled into the binary
//! next to the model (`classifier::embedded::drift_baseline`).

use std::collections::BTreeSet;

use serde::Deserialize;

use super::{DriftError, BINS};

/// How far a tag's proportions may sum from 1 (the file keeps them to double precision; this
/// allows for a hand-edited or rounded file, not for a wrong one).
const SUM_TOLERANCE: f64 = 1e-3;

#[derive(Deserialize)]
struct File {
    model_version: String,
    split: String,
    messages: usize,
    tags: Vec<TagFile>,
}

#[derive(Deserialize)]
struct TagFile {
    tag: String,
    proportions: Vec<f64>,
}

/// A validated baseline: tags in the file's order, ten proportions each, every one in
/// [0, 1], each tag's summing to 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    model_version: String,
    split: String,
    messages: usize,
    tags: Vec<(String, [f64; BINS])>,
}

impl Baseline {
    /// Parse and check `model/drift-baseline.json`'s format.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DriftError> {
        let file: File = serde_json::from_slice(bytes)
            .map_err(|e| DriftError::Baseline(format!("not a drift baseline file: {e}")))?;
        let mut tags = Vec::with_capacity(file.tags.len());
        for t in file.tags {
            let proportions: [f64; BINS] = t.proportions.as_slice().try_into().map_err(|_| {
                DriftError::Baseline(format!(
                    "{} has {} proportions, not {BINS}",
                    t.tag,
                    t.proportions.len()
                ))
            })?;
            tags.push((t.tag, proportions));
        }
        Self::new(file.model_version, file.split, file.messages, tags)
    }

    /// The baseline compiled into the binary, made for the embedded model.
    pub fn embedded() -> Result<Self, DriftError> {
        Self::from_json(crate::classifier::embedded::drift_baseline())
    }

    /// A baseline from its parts, checked as `from_json` checks a file.
    pub fn new(
        model_version: String,
        split: String,
        messages: usize,
        tags: Vec<(String, [f64; BINS])>,
    ) -> Result<Self, DriftError> {
        let bad = |msg: String| Err(DriftError::Baseline(msg));
        if tags.is_empty() {
            return bad("no tags".into());
        }
        let mut seen = BTreeSet::new();
        for (tag, proportions) in &tags {
            if tag.trim().is_empty() || !seen.insert(tag.as_str()) {
                return bad(format!("empty or repeated tag {tag:?}"));
            }
            if let Some(p) = proportions
                .iter()
                .find(|p| !p.is_finite() || !(0.0..=1.0).contains(*p))
            {
                return bad(format!("{tag}: proportion {p} is not in [0, 1]"));
            }
            let sum: f64 = proportions.iter().sum();
            if (sum - 1.0).abs() > SUM_TOLERANCE {
                return bad(format!("{tag}: proportions sum to {sum}, not 1"));
            }
        }
        Ok(Self {
            model_version,
            split,
            messages,
            tags,
        })
    }

    /// The model the baseline was measured on (`labels.json`'s `model_version`).
    pub fn model_version(&self) -> &str {
        &self.model_version
    }

    /// The labelled set it was measured on (`validation`).
    pub fn split(&self) -> &str {
        &self.split
    }

    /// Messages it was measured on.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// Its tags, in the file's order.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.tags.iter().map(|(t, _)| t.as_str())
    }

    /// A tag's share of probabilities in each bin.
    pub fn proportions(&self, tag: &str) -> Option<&[f64; BINS]> {
        self.tags.iter().find(|(t, _)| t == tag).map(|(_, p)| p)
    }
}
