//! Request bodies: JSON only, at most `MAX_BODY_BYTES`, with errors that say what was wrong
//! (axum's own rejections are plain text and 422s).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::config::MAX_BODY_BYTES;

/// A JSON request body of type `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON, sent with Content-Type: application/json",
            ));
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| too_large())?;
        parse(&bytes).map(JsonBody)
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the body is over {} KiB", MAX_BODY_BYTES / 1024),
    )
}

/// Parse a JSON object, telling malformed JSON apart from well-formed JSON of the wrong shape.
pub(super) fn parse<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let value: T = serde_json::from_slice(bytes).map_err(|e| {
        let (code, what) = match e.classify() {
            serde_json::error::Category::Data => ("invalid_request", "invalid request"),
            _ => ("invalid_json", "malformed JSON"),
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, format!("{what}: {e}"))
    })?;
    // serde's derived structs also accept a JSON array of the fields in order (`["hi"]` as
    // `{"message": "hi"}`): every request body is an object, so refuse the positional form.
    let first = bytes.iter().find(|b| !b" \t\n\r".contains(b));
    if first != Some(&b'{') {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "invalid request: the body must be a JSON object",
        ));
    }
    Ok(value)
}
