//! tagbeez: tags customer chat messages with behavioural intent.
//!
//! - `classifier`: the inference core (tokenizer + tract + thresholds); no HTTP, no storage.
//! - `conversation`: pure window logic over probability vectors.
//! - `store`: the `ConversationStore` trait and its implementations.
//! - `events`: events out (tag switches, tagged messages) and the `EventSink` trait.
//! - `service`: the use cases every adapter shares, with input validation.
//! - `api`: the axum router (HTTP adapter) and the one error-to-status mapping.
//! - `lambda`: event dispatch for API Gateway, SQS, Distributed Map batches and direct
//!   invocation, and the Lambda error contract.
//! - `limit`: back-pressure, a bounded wait for an inference slot.
//! - `config`: environment variables, read once.
//! - `explain`: occlusion explanations of a message's tags (pure).
//! - `feedback`: corrections kept for retraining (the only place message text is stored).
//! - `aws_sdk`: the AWS SDK configuration and error text every AWS client shares.
//! - `telemetry`: metrics (EMF in Lambda, Prometheus locally) and per-request timings.
//! - `shops`: per-shop profiles, threshold experiments and their report (pure).
//! - `drift`: the distribution of the model's probabilities against its validation baseline
//!   (binned, population stability index), recorded as metrics.
//! - `schema`: the value schemas (`Message`, `Id`, `Tag`, `Tags`, `Source`) the OpenAPI
//!   document shares between HTTP bodies and domain types, below both.
//! - `redact`: PII (e-mail, phone, card, IBAN, street address) replaced by tokens before any
//!   text is stored or logged (pure).

pub mod api;
pub mod aws_sdk;
pub mod classifier;
pub mod cli;
pub mod config;
pub mod conversation;
pub mod drift;
pub mod events;
pub mod explain;
pub mod feedback;
pub mod lambda;
pub mod limit;
pub mod redact;
pub mod schema;
pub mod service;
pub mod shops;
pub mod store;
pub mod telemetry;
