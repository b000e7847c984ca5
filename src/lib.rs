//! tagbeez: tags customer chat messages with behavioural intent.
//!
//! `classifier` is the inference core (tokenizer + tract + thresholds); it knows nothing of
//! HTTP or storage.

pub mod classifier;
