//! `labels.json`: the model's tags in output order, per-tag thresholds and provenance.
//!
//! Tag names live in this file, written by the training pipeline, never in code: a sixth tag
//! needs a retrain and a new file, not a code change.

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::ClassifierError;

/// The label file as the training pipeline writes it (fields the service does not use, such
/// as the metrics, are kept as raw JSON for `GET /` and the model card).
#[derive(Debug, Clone, Deserialize)]
pub struct LabelFile {
    pub model_version: String,
    pub base_encoder: String,
    pub tags: Vec<String>,
    pub thresholds: BTreeMap<String, f32>,
    pub max_tokens: usize,
    pub onnx_sha256: String,
    #[serde(default)]
    pub metrics: serde_json::Value,
}

/// The validated label set: tags in model output order with their thresholds.
#[derive(Debug, Clone)]
pub struct Labels {
    pub tags: Vec<String>,
    pub thresholds: Vec<f32>,
    pub file: LabelFile,
}

impl Labels {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ClassifierError> {
        let file: LabelFile = serde_json::from_slice(bytes)
            .map_err(|e| ClassifierError::Labels(format!("not a label file: {e}")))?;
        Self::validate(file)
    }

    fn validate(file: LabelFile) -> Result<Self, ClassifierError> {
        let bad = |msg: String| Err(ClassifierError::Labels(msg));
        if file.tags.is_empty() {
            return bad("no tags".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut thresholds = Vec::with_capacity(file.tags.len());
        for tag in &file.tags {
            if tag.trim().is_empty() || !seen.insert(tag) {
                return bad(format!("empty or repeated tag {tag:?}"));
            }
            match file.thresholds.get(tag) {
                Some(t) if *t > 0.0 && *t < 1.0 => thresholds.push(*t),
                Some(t) => return bad(format!("threshold {t} of {tag} is not in (0, 1)")),
                None => return bad(format!("no threshold for {tag}")),
            }
        }
        if file.thresholds.len() != file.tags.len() {
            return bad("thresholds name a tag that is not in tags".into());
        }
        if !(2..=512).contains(&file.max_tokens) {
            return bad(format!("max_tokens {} is not in 2..=512", file.max_tokens));
        }
        Ok(Self {
            tags: file.tags.clone(),
            thresholds,
            file,
        })
    }

    /// Each tag's threshold, by name.
    pub fn thresholds_by_tag(&self) -> BTreeMap<String, f32> {
        self.tags
            .iter()
            .cloned()
            .zip(self.thresholds.iter().copied())
            .collect()
    }

    /// The lowest per-tag threshold: the reference service's single `threshold` field.
    pub fn lowest_threshold(&self) -> f32 {
        self.thresholds
            .iter()
            .copied()
            .fold(f32::INFINITY, f32::min)
    }

    /// Whether `onnx` is the file this label set was written for (its SHA-256 matches).
    ///
    /// Checked by the tests and the build rather than at every cold start: hashing the
    /// embedded model would add tens of milliseconds to each Lambda start for a fact that
    /// cannot change after compilation.
    pub fn matches_onnx(&self, onnx: &[u8]) -> bool {
        let digest = Sha256::digest(onnx);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        hex.eq_ignore_ascii_case(&self.file.onnx_sha256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(tags: &str, thresholds: &str, max_tokens: usize) -> String {
        format!(
            r#"{{"model_version": "v", "base_encoder": "b", "tags": {tags},
                "thresholds": {thresholds}, "max_tokens": {max_tokens}, "onnx_sha256": "00"}}"#
        )
    }

    fn error_of(json: &str) -> String {
        Labels::from_json(json.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn thresholds_follow_the_tag_order_of_the_file() {
        let json = file(r#"["B", "A"]"#, r#"{"A": 0.3, "B": 0.6}"#, 128);
        let labels = Labels::from_json(json.as_bytes()).unwrap();
        assert_eq!(labels.tags, ["B", "A"]);
        assert_eq!(labels.thresholds, [0.6, 0.3]);
    }

    #[test]
    fn bad_label_files_are_refused_with_the_reason() {
        assert!(error_of("{").contains("not a label file"));
        assert!(error_of(&file("[]", "{}", 128)).contains("no tags"));
        assert!(error_of(&file(r#"["A", "A"]"#, r#"{"A": 0.5}"#, 128)).contains("repeated"));
        assert!(error_of(&file(r#"["A"]"#, r#"{"B": 0.5}"#, 128)).contains("no threshold for"));
        assert!(error_of(&file(r#"["A"]"#, r#"{"A": 1.0}"#, 128)).contains("not in (0, 1)"));
        assert!(error_of(&file(r#"["A"]"#, r#"{"A": 0.5, "B": 0.5}"#, 128)).contains("not in tags"));
        assert!(error_of(&file(r#"["A"]"#, r#"{"A": 0.5}"#, 1)).contains("max_tokens"));
    }
}
