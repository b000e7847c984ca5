//! The model files compiled into the binary: one self-contained `bootstrap`, no model
//! download or file system access at cold start.

use super::ModelFiles;

const ONNX: &[u8] = include_bytes!("../../model/tagger.onnx");
const TOKENIZER: &[u8] = include_bytes!("../../model/tokenizer.json");
const LABELS: &[u8] = include_bytes!("../../model/labels.json");

/// The shipped model, as `make model` wrote it into `model/`.
pub fn model_files() -> ModelFiles<'static> {
    ModelFiles {
        onnx: ONNX,
        tokenizer_json: TOKENIZER,
        labels_json: LABELS,
    }
}
