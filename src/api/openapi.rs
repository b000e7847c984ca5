//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the route and body types. It
//! is the service's contract: every request it accepts is one the server accepts, every value
//! it refuses the server refuses, and every status a route can answer is listed with the body
//! sent (`tests/openapi_contract.rs` and `scripts/schemathesis.sh` hold it to that).
//!
//! The rules come from the constants the server validates with (`schema::ID_PATTERN`,
//! `config::MAX_BATCH`, `config::MAX_BODY_BYTES`); the message length limit is a setting
//! (`MAX_MESSAGE_CHARS`), so it is written into the document when it is served.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::extract::State;
use axum::Json;
use serde_json::Value;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{IntoResponses, OpenApi, PartialSchema, ToSchema};

use super::error::ErrorBody;
use crate::config::{Config, MAX_BATCH, MAX_BODY_BYTES};
use crate::service::Tagger;
// The value schemas the domain types share live in `crate::schema`; the request types here
// name them as `openapi::Id` etc.
pub use crate::schema::{Id, Message, Source, Tag, Tags};

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
        super::feedback,
        super::shops::outcome,
        super::shops::put_profile,
        super::shops::get_profile,
        super::shops::delete_profile,
        super::shops::experiment_report,
        super::health,
        super::metrics,
        super::demo_page,
        super::service_info,
    ),
    components(schemas(ErrorBody, Message, Messages, Id, Tag, Tags, Thresholds, Source))
)]
pub struct ApiDoc;

/// A profile's (and a variant's) thresholds are the `Thresholds` of a request, and its tag
/// lists hold `Tag`s: the domain types cannot name the HTTP schemas, so they are pointed at
/// them here.
fn shop_schemas(doc: &mut Value) {
    let thresholds = serde_json::json!({"$ref": "#/components/schemas/Thresholds"});
    let tags = serde_json::json!({"type": ["array", "null"],
        "items": {"$ref": "#/components/schemas/Tag"}});
    // A shop that enables no tag is refused (`invalid_enabled_tags`); one that emits no
    // event is fine.
    let enabled = serde_json::json!({"type": ["array", "null"], "minItems": 1,
        "items": {"$ref": "#/components/schemas/Tag"}});
    for (pointer, schema) in [
        (
            "/components/schemas/Profile/properties/thresholds",
            &thresholds,
        ),
        (
            "/components/schemas/Variant/properties/thresholds",
            &thresholds,
        ),
        (
            "/components/schemas/Profile/properties/enabled_tags",
            &enabled,
        ),
        ("/components/schemas/Profile/properties/event_tags", &tags),
    ] {
        if let Some(slot) = doc.pointer_mut(pointer) {
            *slot = schema.clone();
        }
    }
}

/// The document without the settings, built once.
static BASE: LazyLock<Value> = LazyLock::new(|| {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    camel_case_links(&mut doc);
    shop_schemas(&mut doc);
    doc
});

/// The document as this server is configured: `Message.maxLength` is `MAX_MESSAGE_CHARS`,
/// and a `Tag` is one of the model's tags (from its label file, never from code).
pub fn document_for(config: &Config, tags: &[String]) -> Value {
    let mut doc = BASE.clone();
    if let Some(message) = doc
        .pointer_mut("/components/schemas/Message")
        .and_then(Value::as_object_mut)
    {
        message.insert("maxLength".into(), config.max_message_chars.into());
    }
    if let Some(tag) = doc
        .pointer_mut("/components/schemas/Tag")
        .and_then(Value::as_object_mut)
    {
        tag.insert("enum".into(), tags.into());
    }
    if let Some(names) = doc
        .pointer_mut("/components/schemas/Thresholds/propertyNames")
        .and_then(Value::as_object_mut)
    {
        names.insert("enum".into(), tags.into());
    }
    if let Some(tags_schema) = doc
        .pointer_mut("/components/schemas/Tags")
        .and_then(Value::as_object_mut)
    {
        tags_schema.insert("maxItems".into(), tags.len().into());
    }
    doc
}

pub async fn document(State(t): State<Tagger>) -> Json<Value> {
    Json(document_for(t.config(), &t.classifier().labels().tags))
}

/// utoipa 5.5 serializes a Link Object's fields in snake case (`operation_id`), which no
/// OpenAPI tool reads (schemathesis's stateful phase would find no links): rename them to the
/// specification's `operationId`, `operationRef` and `requestBody`.
fn camel_case_links(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let responses = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses"))
        .filter_map(Value::as_object_mut)
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        let Some(links) = response.get_mut("links").and_then(Value::as_object_mut) else {
            continue;
        };
        for link in links.values_mut().filter_map(Value::as_object_mut) {
            for (from, to) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(from) {
                    link.insert(to.into(), value);
                }
            }
        }
    }
}

/// The messages of a batch (`Messages` in the document).
pub struct Messages;

impl PartialSchema for Messages {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(Ref::from_schema_name(Message::name()))
            .min_items(Some(1))
            .max_items(Some(MAX_BATCH))
            .description(Some(format!(
                "1 to {MAX_BATCH} messages, classified in one inference; refused with \
                 `empty_batch` or `batch_too_large`, or with the code of the first bad message. \
                 The whole body must also fit in {} KiB (else 413 `body_too_large`), which \
                 the largest valid batch does at the default `MAX_MESSAGE_CHARS`, even with \
                 every character written as a JSON escape.",
                MAX_BODY_BYTES / 1024
            )))
            .into()
    }

    // `Message` is registered by `components(...)` above.
}

impl ToSchema for Messages {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Messages")
    }
}

/// Per-call thresholds (`Thresholds`): tag -> probability.
pub struct Thresholds;

impl PartialSchema for Thresholds {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            // Its `enum` (the model's tags) is written in when the document is served.
            .property_names(Some(ObjectBuilder::new().schema_type(Type::String)))
            .additional_properties(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .minimum(Some(0.0))
                    .maximum(Some(1.0)),
            ))
            .description(Some(
                "Thresholds for this call: a tag of the model (else `unknown_tag`) to a \
                 probability in [0, 1] (else `invalid_threshold`). Tags not named keep the \
                 model's threshold.",
            ))
            .into()
    }
}

impl ToSchema for Thresholds {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Thresholds")
    }
}

/// A JSON error response (`ErrorBody`).
fn error_response(description: impl Into<String>) -> RefOr<Response> {
    error_body(description).build().into()
}

/// A response whose body is the JSON error (`ErrorBody`), to finish or add to.
fn error_body(description: impl Into<String>) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    )
}

/// 413 and 415: what every route with a JSON body refuses before parsing it.
pub struct JsonBodyRefused;

impl IntoResponses for JsonBodyRefused {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([
            (
                "413".to_owned(),
                error_response(format!(
                    "The body is over {} KiB (`body_too_large`).",
                    MAX_BODY_BYTES / 1024
                )),
            ),
            (
                "415".to_owned(),
                error_response(
                    "The body is not sent as JSON (`unsupported_media_type`): use \
                     `Content-Type: application/json` (or any `+json` type).",
                ),
            ),
        ])
    }
}

/// 500: a failed inference or a panicking handler (`internal`); possible on every route.
pub struct Internal;

impl IntoResponses for Internal {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([(
            "500".to_owned(),
            error_response("An internal error (`internal`); the details are in the log."),
        )])
    }
}

/// 400, 404 and 503: what `GET /conversation/{id}` refuses.
pub struct ConversationIdErrors;

/// 400 and 503: what `DELETE /conversation/{id}` refuses (clearing an absent one is a 200).
pub struct ClearErrors;

impl IntoResponses for ClearErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = ConversationIdErrors::responses();
        responses.remove("404");
        responses
    }
}

impl IntoResponses for ConversationIdErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let unavailable = unavailable(
            "The conversation store is unavailable (`store_unavailable`, `store_contention`).",
        );
        BTreeMap::from([
            (
                "400".to_owned(),
                error_response("The id is outside the schema (`invalid_conversation_id`)."),
            ),
            (
                "404".to_owned(),
                error_response("No live conversation has this id (`conversation_not_found`)."),
            ),
            ("503".to_owned(), unavailable.into()),
        ])
    }
}

/// A 503 with its `Retry-After` header and the error body.
fn unavailable(description: &str) -> Response {
    error_body(description)
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds to wait before retrying"))
                .build(),
        )
        .build()
}

/// 403 and 503: what every profile route may answer besides its own (refused through a
/// Function URL; the profile store unavailable).
pub struct ProfileRouteErrors;

impl IntoResponses for ProfileRouteErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([
            (
                "403".to_owned(),
                error_response(
                    "Refused through a Lambda Function URL (`admin_route_refused`): the \
                     operators' routes are served only where they can be authorised apart \
                     (API Gateway).",
                ),
            ),
            (
                "503".to_owned(),
                unavailable("The profile store is unavailable (`profile_unavailable`).").into(),
            ),
        ])
    }
}
