//! HTTP adapter: the axum router shared by Lambda (`lambda_http`) and the local server. It
//! knows requests and responses; the use cases live in `service`, tensors in `classifier`.

pub mod demo;
pub mod error;
mod extract;
mod observe;
pub(crate) mod openapi;
pub mod shops;
pub mod types;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use tower_http::catch_panic::CatchPanicLayer;

pub use error::{status_of, ApiError};
use extract::JsonBody;
pub use observe::SelectedTags;
use types::*;

use crate::config::DemoPage;
use crate::feedback::{Feedback, FeedbackReceipt};
use crate::service::{Health, MessageResult, Tagger};

/// The routes, as `GET /` lists them.
pub const ROUTES: &[&str] = &[
    "POST /classify-message",
    "POST /classify-batch",
    "POST /classify-conversation",
    "GET /conversation/{id}",
    "DELETE /conversation/{id}",
    "POST /feedback",
    "POST /outcome",
    "PUT /shops/{shop_id}/profile",
    "GET /shops/{shop_id}/profile",
    "DELETE /shops/{shop_id}/profile",
    "GET /shops/{shop_id}/experiments/{name}",
    "GET /health",
    "GET /metrics",
    "GET /demo",
    "GET /",
    "GET /openapi.json",
];

/// Build the router over a `Tagger`.
pub fn router(tagger: Tagger) -> Router {
    Router::new()
        .route("/", get(service_info))
        .route("/health", get(health))
        .route("/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics))
        .route("/demo", get(demo_page))
        .route("/classify-message", post(classify_message))
        .route("/classify-batch", post(classify_batch))
        .route("/classify-conversation", post(classify_conversation))
        .route("/feedback", post(feedback))
        .route("/outcome", post(shops::outcome))
        .route(
            "/shops/{shop_id}/profile",
            put(shops::put_profile)
                .get(shops::get_profile)
                .delete(shops::delete_profile),
        )
        .route(
            "/shops/{shop_id}/experiments/{name}",
            get(shops::experiment_report),
        )
        .route(
            "/conversation/{id}",
            get(get_conversation).delete(clear_conversation),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(tagger)
        .layer(middleware::from_fn(shops::guard_admin))
        .layer(middleware::from_fn(observe::observe))
        .layer(CatchPanicLayer::custom(panic_response))
}

#[utoipa::path(post, tag = "tagbeez", path = "/classify-message", request_body = MessageRequest,
    responses(
        (status = 200, description = "The message's tags.", body = MessageResult),
        (status = 400, body = error::ErrorBody, description = "Malformed JSON (`invalid_json`), \
            not a `MessageRequest` (`invalid_request`: a missing, unknown or mistyped field), \
            a message outside the schema (`empty_message`, `message_too_long`), or a bad \
            threshold (`unknown_tag`, `invalid_threshold`)."),
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
    let options = options(req.explain, req.thresholds, req.shop_id);
    let result = t.classify_message_with(&req.message, &options).await?;
    let tags = result.selected.clone();
    Ok(with_tags(&tags, Json(result)))
}

#[utoipa::path(post, tag = "tagbeez", path = "/classify-batch", request_body = BatchRequest,
    responses(
        (status = 200, description = "One result per message, in input order.",
            body = BatchResponse),
        (status = 400, body = error::ErrorBody, description = "Malformed JSON (`invalid_json`), \
            not a `BatchRequest` (`invalid_request`), no or too many messages (`empty_batch`, \
            `batch_too_large`), a message outside the schema (`empty_message`, \
            `message_too_long`, naming `messages[i]`), or a bad threshold (`unknown_tag`, \
            `invalid_threshold`)."),
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
    let options = options(req.explain, req.thresholds, req.shop_id);
    let results = t.classify_batch_with(&req.messages, &options).await?;
    Ok(Json(BatchResponse::new(results)))
}

#[utoipa::path(post, tag = "tagbeez", path = "/classify-conversation", request_body = ConversationRequest,
    responses(
        (status = 200, description = "The message's tags and its conversation's, after it joined \
            the window (or, with `duplicate: true`, its first result).", body = ConversationResponse,
            links(
                ("GetConversation" = (operation_id = "get_conversation",
                    parameters(("id" = "$response.body#/conversation_id"),
                        ("shop_id" = "$request.body#/shop_id")),
                    description = "The conversation this message joined.")),
                ("ClearConversation" = (operation_id = "clear_conversation",
                    parameters(("id" = "$response.body#/conversation_id"),
                        ("shop_id" = "$request.body#/shop_id")),
                    description = "Forget the conversation this message joined.")),
            )),
        (status = 400, body = error::ErrorBody, description = "Malformed JSON (`invalid_json`), \
            not a `ConversationRequest` (`invalid_request`), or a value outside the schema \
            (`invalid_conversation_id`, `invalid_message_id`, `empty_message`, \
            `message_too_long`, `unknown_tag`, `invalid_threshold`)."),
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
    let options = options(req.explain, req.thresholds, req.shop_id);
    let outcome = t
        .classify_conversation_with(
            &req.conversation_id,
            &req.message,
            req.message_id.as_deref(),
            &options,
        )
        .await?;
    let body = ConversationResponse::new(&req.conversation_id, req.message_id, outcome);
    let tags = body.message_result.selected.clone();
    Ok(with_tags(&tags, Json(body)))
}

#[utoipa::path(get, tag = "tagbeez", path = "/conversation/{id}",
    params(("id" = openapi::Id, Path, description = "The conversation's id."), ShopQuery),
    responses(
        (status = 200, description = "The conversation's stored window.", body = ConversationView,
            links(("ClearConversation" = (operation_id = "clear_conversation",
                parameters(("id" = "$response.body#/conversation_id"),
                    ("shop_id" = "$request.query.shop_id")),
                description = "Forget this conversation.")))),
        openapi::ConversationIdErrors,
        openapi::Internal,
    ))]
async fn get_conversation(
    State(t): State<Tagger>,
    id: Result<Path<String>, PathRejection>,
    shop: Result<Query<ShopQuery>, QueryRejection>,
) -> Result<Json<ConversationView>, ApiError> {
    let id = path_id(id)?;
    let shop = shop_query(shop)?;
    let conversation = t.conversation(&id, shop.shop_id.as_deref()).await?;
    Ok(Json(ConversationView::new(&id, conversation)))
}

#[utoipa::path(delete, tag = "tagbeez", path = "/conversation/{id}",
    params(("id" = openapi::Id, Path, description = "The conversation's id."), ShopQuery),
    responses(
        (status = 200, description = "The conversation is forgotten (`cleared: true`), or there \
            was none to forget (`cleared: false`: a 200, as the reference service answers, so \
            that clearing is idempotent).", body = Cleared,
            links(("GetConversation" = (operation_id = "get_conversation",
                parameters(("id" = "$response.body#/conversation_id"),
                    ("shop_id" = "$request.query.shop_id")),
                description = "The conversation, now gone (a 404).")))),
        openapi::ClearErrors,
        openapi::Internal,
    ))]
async fn clear_conversation(
    State(t): State<Tagger>,
    id: Result<Path<String>, PathRejection>,
    shop: Result<Query<ShopQuery>, QueryRejection>,
) -> Result<Json<Cleared>, ApiError> {
    let id = path_id(id)?;
    let shop = shop_query(shop)?;
    let cleared = t.clear_conversation(&id, shop.shop_id.as_deref()).await?;
    Ok(Json(Cleared::new(id, cleared)))
}

#[utoipa::path(post, tag = "tagbeez", path = "/feedback", request_body = Feedback,
    responses(
        (status = 201, description = "The correction is stored, to retrain on.",
            body = FeedbackReceipt),
        (status = 400, body = error::ErrorBody, description = "Malformed JSON (`invalid_json`), \
            not a `Feedback` (`invalid_request`), a tag the model does not have (`unknown_tag`, \
            listing the ones it has), a tag named twice (`repeated_tag`), or a value outside \
            the schema (`empty_message`, `message_too_long`, `invalid_conversation_id`, \
            `invalid_message_id`, `invalid_source`)."),
        openapi::JsonBodyRefused,
        (status = 503, body = error::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying")),
            description = "The feedback store is unavailable (`feedback_unavailable`)."),
        openapi::Internal,
    ))]
async fn feedback(
    State(t): State<Tagger>,
    JsonBody(req): JsonBody<Feedback>,
) -> Result<(StatusCode, Json<FeedbackReceipt>), ApiError> {
    Ok((StatusCode::CREATED, Json(t.feedback(req).await?)))
}

#[utoipa::path(get, tag = "tagbeez", path = "/metrics",
    responses(
        (status = 200, description = "The metrics in Prometheus text format (the local \
            server's default, `METRICS=prometheus`).", body = String, content_type = "text/plain"),
        (status = 404, body = error::ErrorBody, description = "Metrics do not go to Prometheus \
            here (`metrics_not_served`: `METRICS` is `emf` or `off`)."),
        openapi::Internal,
    ))]
async fn metrics() -> Result<Response, ApiError> {
    let page = crate::telemetry::render_prometheus().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "metrics_not_served",
            "metrics are not served here: METRICS is emf (CloudWatch) or off",
        )
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        page,
    )
        .into_response())
}

#[utoipa::path(get, tag = "tagbeez", path = "/demo",
    responses(
        (status = 200, description = "A page to try the service in a browser.", body = String,
            content_type = "text/html"),
        (status = 404, body = error::ErrorBody, description = "The page is off \
            (`demo_off`: `DEMO_PAGE=off`, the default in Lambda)."),
        openapi::Internal,
    ))]
async fn demo_page(State(t): State<Tagger>) -> Result<Response, ApiError> {
    if t.config().demo_page == DemoPage::Off {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "demo_off",
            "the demo page is off here; set DEMO_PAGE=on to serve it",
        ));
    }
    Ok(demo::page().await)
}

/// The `?shop_id=` query, or the JSON 400 every other bad id gets.
fn shop_query(query: Result<Query<ShopQuery>, QueryRejection>) -> Result<ShopQuery, ApiError> {
    query.map(|Query(q)| q).map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_shop_id",
            format!("the query is not valid: {}", rejection.body_text()),
        )
    })
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
        (status = 200, description = "The service can serve (`status: healthy`).", body = Health),
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
        endpoints: endpoints(),
        model_loaded: true,
        inference: InferenceInfo {
            form: t.classifier().selection().form.to_string(),
            reason: t.classifier().selection().reason.clone(),
        },
    })
}

/// The paths of `ROUTES`, each once, in order (the reference service's `endpoints`).
fn endpoints() -> Vec<String> {
    let mut paths: Vec<String> = Vec::new();
    for route in ROUTES {
        let path = route.split_once(' ').map_or(*route, |(_, p)| p);
        if !paths.iter().any(|p| p == path) {
            paths.push(path.to_owned());
        }
    }
    paths
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
