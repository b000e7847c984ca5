//! `GET /openapi.json`: an OpenAPI 3.1 document generated from the route and body types.

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tagbeez",
        description = "Tags customer chat messages with behavioural intent."
    ),
    paths(
        super::classify_message,
        super::classify_batch,
        super::classify_conversation,
        super::get_conversation,
        super::clear_conversation,
        super::health,
        super::service_info,
    )
)]
pub struct ApiDoc;

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
