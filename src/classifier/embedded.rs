//! The model files compiled into the binary: one self-contained `bootstrap`, no model
//! download or file system access at cold start.

use super::ModelFiles;

// Statics, not consts: a const is copied into every crate that inlines `model_files`, and
// `release_onnx` must see the one copy the classifier was loaded from.
static ONNX: &[u8] = include_bytes!("../../model/tagger.onnx");
static TOKENIZER: &[u8] = include_bytes!("../../model/tokenizer.json");
static LABELS: &[u8] = include_bytes!("../../model/labels.json");
static DRIFT_BASELINE: &[u8] = include_bytes!("../../model/drift-baseline.json");

/// The shipped model, as `make model` wrote it into `model/`.
pub fn model_files() -> ModelFiles<'static> {
    ModelFiles {
        onnx: ONNX,
        tokenizer_json: TOKENIZER,
        labels_json: LABELS,
    }
}

/// The shipped model's probability distributions on its validation split, per tag in ten bins
/// (`model/drift-baseline.json`, written by `make drift-baseline`): what `drift::Baseline`
/// compares live traffic with.
pub fn drift_baseline() -> &'static [u8] {
    DRIFT_BASELINE
}

/// Give back the embedded ONNX file's resident pages once `Classifier::load` has decoded it
/// (`pages::release` says why it is safe): it is read only then, and would otherwise stay in
/// the resident set for the life of the instance. Returns the bytes released.
pub fn release_onnx() -> Result<usize, super::pages::ReleaseError> {
    super::pages::release(ONNX)
}
