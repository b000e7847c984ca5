//! Text to token ids with the model's own `tokenizer.json`, truncated to the model's limit and
//! padded per batch (never to a fixed 128: padding costs attention time for nothing).

use tokenizers::{Tokenizer, TruncationParams};

use super::engine::TokenBatch;
use super::ClassifierError;

/// The model's tokenizer, with its stored padding turned off and truncation set to `max_tokens`.
#[derive(Debug, Clone)]
pub struct TextEncoder {
    tokenizer: Tokenizer,
}

/// One batch ready for the engine, and which messages lost tokens to truncation.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    pub tokens: TokenBatch,
    pub truncated: Vec<bool>,
    pub lengths: Vec<usize>,
}

impl TextEncoder {
    pub fn from_bytes(bytes: &[u8], max_tokens: usize) -> Result<Self, ClassifierError> {
        let mut tokenizer = Tokenizer::from_bytes(bytes).map_err(tokenizer_error)?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(tokenizer_error)?;
        Ok(Self { tokenizer })
    }

    /// Encode messages and pad them to the longest one (no padding for a single message).
    pub fn encode_batch(&self, messages: &[&str]) -> Result<EncodedBatch, ClassifierError> {
        if messages.is_empty() {
            return Err(ClassifierError::Input("empty batch".into()));
        }
        let encodings = messages
            .iter()
            .map(|m| self.tokenizer.encode(*m, true).map_err(tokenizer_error))
            .collect::<Result<Vec<_>, _>>()?;
        let sequence = encodings.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let mut tokens = TokenBatch {
            batch: encodings.len(),
            sequence,
            input_ids: Vec::with_capacity(encodings.len() * sequence),
            attention_mask: Vec::with_capacity(encodings.len() * sequence),
        };
        for enc in &encodings {
            let pad = sequence - enc.len();
            tokens
                .input_ids
                .extend(enc.get_ids().iter().map(|&id| i64::from(id)));
            tokens.input_ids.extend(std::iter::repeat_n(0, pad));
            tokens
                .attention_mask
                .extend(enc.get_attention_mask().iter().map(|&m| i64::from(m)));
            tokens.attention_mask.extend(std::iter::repeat_n(0, pad));
        }
        Ok(EncodedBatch {
            tokens,
            truncated: encodings
                .iter()
                .map(|e| !e.get_overflowing().is_empty())
                .collect(),
            lengths: encodings.iter().map(|e| e.len()).collect(),
        })
    }
}

fn tokenizer_error(err: tokenizers::Error) -> ClassifierError {
    ClassifierError::Tokenizer(err.to_string())
}
