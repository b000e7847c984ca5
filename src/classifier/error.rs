//! Errors of the inference core. They carry no HTTP meaning: the API layer maps them.

use thiserror::Error;

/// Why the classifier could not load or could not classify.
#[derive(Debug, Error)]
pub enum ClassifierError {
    /// `labels.json` is missing a field, has a bad value, or disagrees with the model.
    #[error("invalid label file: {0}")]
    Labels(String),
    /// The tokenizer file could not be parsed or could not encode the input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// tract could not load, optimise or run the ONNX model.
    #[error("inference engine: {0}")]
    Engine(String),
    /// The caller asked for something the classifier cannot do (e.g. an empty batch).
    #[error("invalid input: {0}")]
    Input(String),
}

impl From<tract_onnx::prelude::TractError> for ClassifierError {
    fn from(err: tract_onnx::prelude::TractError) -> Self {
        // `{:#}` keeps anyhow's context chain: tract's top-level message alone rarely says why.
        ClassifierError::Engine(format!("{err:#}"))
    }
}
