//! The Lambda error contract: a failed direct, asynchronous or batch invocation is a Lambda
//! function error whose `errorType` is the failure's code (`empty_message`,
//! `store_unavailable`, `overloaded`, ...) and whose `errorMessage` says what was wrong. Lambda
//! then retries an asynchronous event and sends it to its on-failure destination, and a Step
//! Functions task can `Retry` the transient codes and `Catch` the rest by name.

use lambda_runtime::Diagnostic;
use thiserror::Error;

use crate::api::ApiError;

/// A failed invocation, as Lambda reports it.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{code}: {message}")]
pub struct FunctionError {
    /// The `errorType`: the same code an HTTP error body carries.
    pub code: String,
    /// The `errorMessage`.
    pub message: String,
}

impl FunctionError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// An event that is none of the shapes this function takes, or a malformed one.
    pub fn invalid_event(message: impl Into<String>) -> Self {
        Self::new("invalid_event", message)
    }
}

impl From<ApiError> for FunctionError {
    fn from(e: ApiError) -> Self {
        Self::new(e.code, e.message)
    }
}

impl From<FunctionError> for Diagnostic {
    fn from(e: FunctionError) -> Self {
        Diagnostic {
            error_type: e.code,
            error_message: e.message,
        }
    }
}
