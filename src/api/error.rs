//! The one place where failures become HTTP statuses and JSON error bodies.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::service::ServiceError;

/// Seconds a client should wait before retrying after a store failure.
const RETRY_AFTER_SECONDS: &str = "1";

/// An error as the API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// `{"error": {"status", "code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                status: self.status.as_u16(),
                code: self.code.to_owned(),
                message: self.message.clone(),
            },
        }
    }
}

/// The HTTP status of a use case's failure (also the `status` of queue records' metrics).
pub fn status_of(err: &ServiceError) -> StatusCode {
    match err {
        ServiceError::Invalid { .. } => StatusCode::BAD_REQUEST,
        ServiceError::ConversationNotFound(_)
        | ServiceError::ProfileNotFound(_)
        | ServiceError::ExperimentNotFound(_) => StatusCode::NOT_FOUND,
        ServiceError::StoreUnavailable(_)
        | ServiceError::Overloaded(_)
        | ServiceError::FeedbackUnavailable(_)
        | ServiceError::StoreContention(_)
        | ServiceError::EventsUnavailable(_)
        | ServiceError::ProfileUnavailable(_)
        | ServiceError::ExperimentsUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ServiceError::Inference(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        let (status, code) = (status_of(&err), err.code());
        if let ServiceError::Inference(_) = err {
            // The cause is logged, not shown: it is ours, not the caller's.
            tracing::error!(error = %err, "inference failed");
            return Self::new(status, code, "inference failed");
        }
        Self::new(status, code, err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}
