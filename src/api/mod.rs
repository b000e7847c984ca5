//! HTTP adapter: the axum router shared by Lambda (`lambda_http`) and the local server. It
//! knows requests and responses; the use cases live in `service`, tensors in `classifier`.

pub mod error;
mod extract;
mod openapi;
pub mod types;

use std::time::Instant;

use axum::extract::rejection::PathRejection;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::catch_panic::CatchPanicLayer;

pub use error::ApiError;
use extract::JsonBody;
use types::*;

use crate::service::{Health, MessageResult, Tagger};

/// The routes, as `GET /` lists them.
pub const ROUTES: &[&str] = &[
    "POST /classify-message",
    "POST /classify-batch",
    "POST /classify-conversation",
    "GET /conversation/{id}",
    "DELETE /conversation/{id}",
    "GET /health",
    "GET /",
    "GET /openapi.json",
];

/// The selected tags of a response, for the request log line (never the message text).
#[derive(Clone)]
struct SelectedTags(Vec<String>);

/// Build the router over a `Tagger`.
pub fn router(tagger: Tagger) -> Router {
    Router::new()
        .route("/", get(service_info))
        .route("/health", get(health))
        .route("/openapi.json", get(openapi::document))
        .route("/classify-message", post(classify_message))
        .route("/classify-batch", post(classify_batch))
        .route("/classify-conversation", post(classify_conversation))
        .route(
            "/conversation/{id}",
            get(get_conversation).delete(clear_conversation),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(tagger)
        .layer(middleware::from_fn(log_request))
        .layer(CatchPanicLayer::custom(panic_response))
}

#[utoipa::path(post, tag = "tagbeez", path = "/classify-message", request_body = MessageRequest,
    responses(
        (status = 200, description = "The message's tags.", body = MessageResult),
        (status = 400, body = error::ErrorBody, description = "Malformed JSON (`invalid_json`), \
            not a `MessageRequest` (`invalid_request`: a missing, unknown or mistyped field), or \
            a message outside the schema (`empty_message`, `message_too_long`)."),
        openapi::JsonBodyRefused,
        (status = 503, body = error::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying")),
            description = "Too many requests are waiting for inference (`overloaded`)."),
        openapi::Internal,
    ))]
async fn classify_message(
    State(t): State<Tagger>,
    JsonBody(req): JsonBody<MessageRequest>,
) -> Result<Response, ApiError> {
    let result = t.classify_message(&req.message).await?;
    let tags = result.selected.clone();
    Ok(with_tags(&tags, Json(result)))
}

#[utoipa::path(post, tag = "tagbeez", path = "/classify-batch", request_body = BatchRequest,
    responses(
        (status = 200, description = "One result per message, in input order.",
            body = BatchResponse),
        (status = 400, body = error::ErrorBody, description = "Malformed JSON (`invalid_json`), \
            not a `BatchRequest` (`invalid_request`), no or too many messages (`empty_batch`, \
            `batch_too_large`), or a message outside the schema (`empty_message`, \
            `message_too_long`, naming `messages[i]`)."),
        openapi::JsonBodyRefused,
        (status = 503, body = error::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying")),
            description = "Too many requests are waiting for inference (`overloaded`)."),
        openapi::Internal,
    ))]
async fn classify_batch(
    State(t): State<Tagger>,
    JsonBody(req): JsonBody<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    let results = t.classify_batch(&req.messages).await?;
    Ok(Json(BatchResponse { results }))
}

#[utoipa::path(post, tag = "tagbeez", path = "/classify-conversation", request_body = ConversationRequest,
    responses(
        (status = 200, description = "The message's tags and its conversation's, after it joined \
            the window (or, with `duplicate: true`, its first result).", body = ConversationResponse,
            links(
                ("GetConversation" = (operation_id = "get_conversation",
                    parameters(("id" = "$response.body#/conversation_id")),
                    description = "The conversation this message joined.")),
                ("ClearConversation" = (operation_id = "clear_conversation",
                    parameters(("id" = "$response.body#/conversation_id")),
                    description = "Forget the conversation this message joined.")),
            )),
        (status = 400, body = error::ErrorBody, description = "Malformed JSON (`invalid_json`), \
            not a `ConversationRequest` (`invalid_request`), or a value outside the schema \
            (`invalid_conversation_id`, `invalid_message_id`, `empty_message`, \
            `message_too_long`)."),
        openapi::JsonBodyRefused,
        (status = 503, body = error::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying")),
            description = "The conversation store is unavailable or too slow \
            (`store_unavailable`), too many writers are on this conversation \
            (`store_contention`), or too many requests are waiting for inference (`overloaded`)."),
        openapi::Internal,
    ))]
async fn classify_conversation(
    State(t): State<Tagger>,
    JsonBody(req): JsonBody<ConversationRequest>,
) -> Result<Response, ApiError> {
    let outcome = t
        .classify_conversation(
            &req.conversation_id,
            &req.message,
            req.message_id.as_deref(),
        )
        .await?;
    let body = ConversationResponse::new(&req.conversation_id, req.message_id, outcome);
    let tags = body.message_result.selected.clone();
    Ok(with_tags(&tags, Json(body)))
}

#[utoipa::path(get, tag = "tagbeez", path = "/conversation/{id}",
    params(("id" = openapi::Id, Path, description = "The conversation's id.")),
    responses(
        (status = 200, description = "The conversation's stored window.", body = ConversationView,
            links(("ClearConversation" = (operation_id = "clear_conversation",
                parameters(("id" = "$response.body#/conversation_id")),
                description = "Forget this conversation.")))),
        openapi::ConversationIdErrors,
        openapi::Internal,
    ))]
async fn get_conversation(
    State(t): State<Tagger>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ConversationView>, ApiError> {
    let id = path_id(id)?;
    let conversation = t.conversation(&id).await?;
    Ok(Json(ConversationView::new(&id, conversation)))
}

#[utoipa::path(delete, tag = "tagbeez", path = "/conversation/{id}",
    params(("id" = openapi::Id, Path, description = "The conversation's id.")),
    responses(
        (status = 200, description = "The conversation is forgotten.", body = Cleared,
            links(("GetConversation" = (operation_id = "get_conversation",
                parameters(("id" = "$response.body#/conversation_id")),
                description = "The conversation, now gone (404).")))),
        openapi::ConversationIdErrors,
        openapi::Internal,
    ))]
async fn clear_conversation(
    State(t): State<Tagger>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Cleared>, ApiError> {
    let id = path_id(id)?;
    t.clear_conversation(&id).await?;
    Ok(Json(Cleared {
        conversation_id: id,
        cleared: true,
    }))
}

/// The `{id}` path segment. axum's own rejection (e.g. `%FF`, not UTF-8 once percent-decoded)
/// is a plain-text 400; answer with the JSON error every other bad id gets.
fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    id.map(|Path(id)| id).map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_conversation_id",
            format!(
                "conversation_id is not a valid path segment: {}",
                rejection.body_text()
            ),
        )
    })
}

#[utoipa::path(get, tag = "tagbeez", path = "/health",
    responses(
        (status = 200, description = "The service can serve (`status: ok`).", body = Health),
        (status = 503, body = Health, description = "The conversation store is unreachable \
            (`status: degraded`): conversations fail, single messages work."),
        openapi::Internal,
    ))]
async fn health(State(t): State<Tagger>) -> (StatusCode, Json<Health>) {
    let health = t.health().await;
    let status = if health.store_reachable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health))
}

#[utoipa::path(get, tag = "tagbeez", path = "/",
    responses(
        (status = 200, description = "What this service is and serves.", body = ServiceInfo),
        openapi::Internal,
    ))]
async fn service_info(State(t): State<Tagger>) -> Json<ServiceInfo> {
    let labels = t.classifier().labels();
    Json(ServiceInfo {
        service: "tagbeez".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        model_version: labels.file.model_version.clone(),
        base_encoder: labels.file.base_encoder.clone(),
        tags: labels.tags.clone(),
        thresholds: labels.thresholds_by_tag(),
        routes: ROUTES.iter().map(|r| r.to_string()).collect(),
    })
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

fn with_tags(selected: &[crate::conversation::TagScore], body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    let tags = selected.iter().map(|s| s.tag.clone()).collect();
    response.extensions_mut().insert(SelectedTags(tags));
    response
}

/// One JSON log line per request: route, status, latency, selected tags. Never the text.
async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let tags = response
        .extensions()
        .get::<SelectedTags>()
        .map(|t| t.0.join(","));
    tracing::info!(
        method = %method,
        route = %route,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1e3,
        selected = tags.as_deref().unwrap_or(""),
        "request"
    );
    response
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = what, "handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
    .into_response()
}
