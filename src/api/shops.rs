//! The shop routes: a shop's profile (operators: `PUT`, `GET`, `DELETE
//! /shops/{shop_id}/profile`), its experiment's report (operators), and the outcomes shops
//! report (`POST /outcome`, callers). In Lambda the `/shops/` routes are authorised apart from
//! the classify routes (docs/deploy.md); through a Function URL, which cannot authorise per
//! route, they are refused (`lambda::http`).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{self, ApiError};
use super::extract::JsonBody;
use super::openapi;
use crate::service::{OutcomeReceipt, OutcomeRequest, Tagger};
use crate::shops::report::Report;
use crate::shops::{Profile, StoredProfile};

/// The path prefix of the operators' routes.
pub const ADMIN_PREFIX: &str = "/shops/";

/// Set on a request (by the adapter that received it) whose entry point cannot authorise
/// per route, such as a Lambda Function URL: the operators' routes are then refused with a
/// 403 (`admin_route_refused`), so a caller allowed to classify cannot rewrite profiles.
#[derive(Debug, Clone, Copy)]
pub struct NoAdminRoutes;

/// Refuses the operators' routes on requests marked `NoAdminRoutes`.
pub(super) async fn guard_admin(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let marked = req.extensions().get::<NoAdminRoutes>().is_some();
    if marked && req.uri().path().starts_with(ADMIN_PREFIX) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_route_refused",
            "the /shops/ routes are for operators: call them through the API Gateway routes \
             authorised for operators, not through the Function URL",
        )
        .into_response();
    }
    next.run(req).await
}

/// A shop's profile as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileView {
    #[schema(value_type = openapi::Id)]
    pub shop_id: String,
    pub profile: Profile,
    /// Epoch seconds of the last write.
    pub updated_at: u64,
    /// Incremented on every write.
    pub version: u64,
}

impl ProfileView {
    fn new(shop_id: String, stored: StoredProfile) -> Self {
        Self {
            shop_id,
            profile: stored.profile,
            updated_at: stored.updated_at,
            version: stored.version,
        }
    }
}

/// `DELETE /shops/{shop_id}/profile`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileDeleted {
    #[schema(value_type = openapi::Id)]
    pub shop_id: String,
    /// False when the shop had no profile (still a 200: deleting is idempotent).
    pub deleted: bool,
}

#[utoipa::path(put, tag = "shops", path = "/shops/{shop_id}/profile", request_body = Profile,
    params(("shop_id" = openapi::Id, Path, description = "The shop's id.")),
    responses(
        (status = 200, description = "The profile is stored (replacing any). This instance uses \
            it at once, others within `PROFILE_CACHE_SECONDS`.", body = ProfileView),
        (status = 400, body = error::ErrorBody, description = "Malformed JSON (`invalid_json`), \
            not a `Profile` (`invalid_request`), a bad shop id (`invalid_shop_id`), a tag the \
            model does not have (`unknown_tag`), a bad threshold (`invalid_threshold`), window \
            size (`invalid_window_size`) or experiment (`invalid_experiment`: 2-8 uniquely \
            named variants whose shares sum to 1)."),
        openapi::JsonBodyRefused,
        openapi::ProfileRouteErrors,
        openapi::Internal,
    ))]
pub(super) async fn put_profile(
    State(t): State<Tagger>,
    shop_id: Result<Path<String>, PathRejection>,
    JsonBody(profile): JsonBody<Profile>,
) -> Result<Json<ProfileView>, ApiError> {
    let shop_id = path_segment(shop_id, "invalid_shop_id")?;
    let stored = t.put_profile(&shop_id, profile).await?;
    Ok(Json(ProfileView::new(shop_id, stored)))
}

#[utoipa::path(get, tag = "shops", path = "/shops/{shop_id}/profile",
    params(("shop_id" = openapi::Id, Path, description = "The shop's id.")),
    responses(
        (status = 200, description = "The shop's stored profile.", body = ProfileView),
        (status = 400, body = error::ErrorBody, description = "A bad shop id (`invalid_shop_id`)."),
        (status = 404, body = error::ErrorBody, description = "The shop has no profile \
            (`profile_not_found`): it runs on the model's defaults."),
        openapi::ProfileRouteErrors,
        openapi::Internal,
    ))]
pub(super) async fn get_profile(
    State(t): State<Tagger>,
    shop_id: Result<Path<String>, PathRejection>,
) -> Result<Json<ProfileView>, ApiError> {
    let shop_id = path_segment(shop_id, "invalid_shop_id")?;
    let stored = t.profile(&shop_id).await?;
    Ok(Json(ProfileView::new(shop_id, stored)))
}

#[utoipa::path(delete, tag = "shops", path = "/shops/{shop_id}/profile",
    params(("shop_id" = openapi::Id, Path, description = "The shop's id.")),
    responses(
        (status = 200, description = "The profile is gone (`deleted: true`), or there was none \
            (`deleted: false`).", body = ProfileDeleted),
        (status = 400, body = error::ErrorBody, description = "A bad shop id (`invalid_shop_id`)."),
        openapi::ProfileRouteErrors,
        openapi::Internal,
    ))]
pub(super) async fn delete_profile(
    State(t): State<Tagger>,
    shop_id: Result<Path<String>, PathRejection>,
) -> Result<Json<ProfileDeleted>, ApiError> {
    let shop_id = path_segment(shop_id, "invalid_shop_id")?;
    let deleted = t.delete_profile(&shop_id).await?;
    Ok(Json(ProfileDeleted { shop_id, deleted }))
}

#[utoipa::path(get, tag = "shops", path = "/shops/{shop_id}/experiments/{name}",
    params(
        ("shop_id" = openapi::Id, Path, description = "The shop's id."),
        ("name" = openapi::Id, Path, description = "The experiment's name (as in the profile)."),
    ),
    responses(
        (status = 200, description = "Per variant: conversations, tags selected per \
            conversation, conversion rate and revenue per conversation with 95% intervals, and \
            the difference against the control with its interval.", body = Report),
        (status = 400, body = error::ErrorBody, description = "A bad shop id \
            (`invalid_shop_id`) or experiment name (`invalid_experiment`)."),
        (status = 403, body = error::ErrorBody, description = "Refused through a Lambda \
            Function URL (`admin_route_refused`): the operators' routes are served only where \
            they can be authorised apart (API Gateway)."),
        (status = 404, body = error::ErrorBody, description = "The shop's profile holds no \
            experiment of that name (`experiment_not_found`)."),
        (status = 503, body = error::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying")),
            description = "The profile or experiment store is unavailable \
            (`profile_unavailable`, `experiments_unavailable`)."),
        openapi::Internal,
    ))]
pub(super) async fn experiment_report(
    State(t): State<Tagger>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Report>, ApiError> {
    let Path((shop_id, name)) = path.map_err(|r| bad_path("invalid_shop_id", &r))?;
    Ok(Json(t.experiment_report(&shop_id, &name).await?))
}

#[utoipa::path(post, tag = "shops", path = "/outcome", request_body = OutcomeRequest,
    responses(
        (status = 201, description = "The outcome is recorded.", body = OutcomeReceipt),
        (status = 200, description = "This `outcome_id` was already recorded: nothing was \
            counted again (`recorded: false`).", body = OutcomeReceipt),
        (status = 400, body = error::ErrorBody, description = "Malformed JSON (`invalid_json`), \
            not an `OutcomeRequest` (`invalid_request`), or a value outside the schema \
            (`invalid_shop_id`, `invalid_conversation_id`, `invalid_outcome_id`, \
            `invalid_value`, `invalid_currency`: a value needs its currency)."),
        openapi::JsonBodyRefused,
        (status = 503, body = error::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying")),
            description = "The experiment store is unavailable (`experiments_unavailable`), or \
            the shop's profile is unknown and its store unavailable (`profile_unavailable`)."),
        openapi::Internal,
    ))]
pub(super) async fn outcome(
    State(t): State<Tagger>,
    JsonBody(req): JsonBody<OutcomeRequest>,
) -> Result<(StatusCode, Json<OutcomeReceipt>), ApiError> {
    let receipt = t.record_outcome(req).await?;
    let status = if receipt.recorded {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(receipt)))
}

/// One path segment, or the JSON 400 every other bad id gets.
fn path_segment(
    segment: Result<Path<String>, PathRejection>,
    code: &'static str,
) -> Result<String, ApiError> {
    segment.map(|Path(s)| s).map_err(|r| bad_path(code, &r))
}

fn bad_path(code: &'static str, rejection: &PathRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        code,
        format!("the path is not valid: {}", rejection.body_text()),
    )
}
