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

    /// How many ids the tokenizer can produce (added tokens included).
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Encode messages and pad them to the longest one (no padding for a single message).
    pub fn encode_batch(&self, messages: &[&str]) -> Result<EncodedBatch, ClassifierError> {
        let rows = self.encode_rows(messages)?;
        Ok(EncodedBatch {
            tokens: pad(&rows.iter().collect::<Vec<_>>()),
            truncated: rows.iter().map(|r| r.truncated).collect(),
            lengths: rows.iter().map(|r| r.ids.len()).collect(),
        })
    }

    /// Encode each message on its own, unpadded (`classify_batch` groups them by length).
    pub fn encode_rows(&self, messages: &[&str]) -> Result<Vec<EncodedRow>, ClassifierError> {
        if messages.is_empty() {
            return Err(ClassifierError::Input("empty batch".into()));
        }
        messages
            .iter()
            .map(|m| {
                let enc = self.tokenizer.encode(*m, true).map_err(tokenizer_error)?;
                Ok(EncodedRow {
                    ids: enc.get_ids().iter().map(|&id| i64::from(id)).collect(),
                    truncated: !enc.get_overflowing().is_empty(),
                })
            })
            .collect()
    }
}

/// One message's token ids (special tokens included) and whether it lost tokens.
#[derive(Debug, Clone)]
pub struct EncodedRow {
    pub ids: Vec<i64>,
    pub truncated: bool,
}

/// Rows padded (id 0, mask 0) to the longest of them.
pub fn pad(rows: &[&EncodedRow]) -> TokenBatch {
    let sequence = rows.iter().map(|r| r.ids.len()).max().unwrap_or(0).max(1);
    let mut tokens = TokenBatch {
        batch: rows.len(),
        sequence,
        input_ids: Vec::with_capacity(rows.len() * sequence),
        attention_mask: Vec::with_capacity(rows.len() * sequence),
    };
    for row in rows {
        let pad = sequence - row.ids.len();
        tokens.input_ids.extend_from_slice(&row.ids);
        tokens.input_ids.extend(std::iter::repeat_n(0, pad));
        tokens
            .attention_mask
            .extend(std::iter::repeat_n(1, row.ids.len()));
        tokens.attention_mask.extend(std::iter::repeat_n(0, pad));
    }
    tokens
}

fn tokenizer_error(err: tokenizers::Error) -> ClassifierError {
    ClassifierError::Tokenizer(err.to_string())
}
