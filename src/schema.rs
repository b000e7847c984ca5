//! The value schemas the OpenAPI document shares between the HTTP bodies and the domain types
//! (`Message`, `Id`, `Tag`, `Tags`, `Source`), with the rules they state (`ID_PATTERN`,
//! `MAX_SOURCE_CHARS`). They sit below both: `feedback::Feedback` and the `api` bodies name
//! them in `#[schema(value_type = ...)]`, so no domain type names the HTTP adapter. This module
//! depends on no other module of the crate.
//!
//! Settings are not known here: `api::openapi::document_for` writes `Message.maxLength` and
//! the `Tag` enum in when the document is served.

use std::borrow::Cow;

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// 1-128 characters of `[A-Za-z0-9_.:@-]`: the id pattern the OpenAPI document states.
pub const ID_PATTERN: &str = "^[A-Za-z0-9_.:@-]{1,128}$";

/// Longest `source` of a correction (`feedback::valid_source`).
pub const MAX_SOURCE_CHARS: usize = 64;

/// "Contains a character that is not whitespace": a class of exactly the characters Rust's
/// `char::is_whitespace` (Unicode `White_Space`) holds, the ones `str::trim` removes. `\S` is
/// not used: its whitespace differs between regex engines (ECMA-262 counts U+FEFF, Python
/// U+001C-U+001F, neither matches `str::trim`), and the document must mean one thing.
pub const NON_BLANK_PATTERN: &str = concat!(
    "[^\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680",
    "\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
);

/// The longest id, in characters (the `{1,128}` of `ID_PATTERN`).
const ID_MAX_CHARS: usize = 128;

/// A message to tag (`Message` in the document).
pub struct Message;

impl PartialSchema for Message {
    fn schema() -> RefOr<Schema> {
        // `maxLength` is the server's setting: `api::openapi::document_for` writes it in.
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(MESSAGE_DESCRIPTION))
            .min_length(Some(1))
            .pattern(Some(NON_BLANK_PATTERN))
            .examples(["I want to buy this right now, send me the checkout link"])
            .into()
    }
}

impl ToSchema for Message {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Message")
    }
}

const MESSAGE_DESCRIPTION: &str = "A chat message: at least one character that is not \
    whitespace, and at most `maxLength` characters (Unicode code points, counted as sent: \
    surrounding whitespace counts; the server's `MAX_MESSAGE_CHARS`). Surrounding whitespace is \
    trimmed before classification. Refused with `empty_message` or `message_too_long`.";

/// A conversation or message id (`Id` in the document).
pub struct Id;

impl PartialSchema for Id {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "1-128 characters of A-Z, a-z, 0-9, '_', '.', ':', '@', '-': safe as a \
                 DynamoDB key, a URL path segment and a log field. Refused with \
                 `invalid_conversation_id` or `invalid_message_id`.",
            ))
            .min_length(Some(1))
            .max_length(Some(ID_MAX_CHARS))
            .pattern(Some(ID_PATTERN))
            .examples(["chat-2024-06-01:42"])
            .into()
    }
}

impl ToSchema for Id {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Id")
    }
}

/// One of the model's tags (`Tag`; its `enum` is written in when the document is served).
pub struct Tag;

impl PartialSchema for Tag {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A tag of the serving model (`GET /` lists them); another is refused with \
                 `unknown_tag`, whose message lists the known ones.",
            ))
            .into()
    }
}

impl ToSchema for Tag {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Tag")
    }
}

/// A set of tags (`Tags`): each a `Tag`, none twice.
pub struct Tags;

impl PartialSchema for Tags {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(Ref::from_schema_name(Tag::name()))
            .unique_items(true)
            .description(Some(
                "Tags of the model, none twice (`repeated_tag`); empty when no tag applies.",
            ))
            .into()
    }
}

impl ToSchema for Tags {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Tags")
    }
}

/// Who sent a correction (`Source`).
pub struct Source;

impl PartialSchema for Source {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_SOURCE_CHARS))
            .pattern(Some("^[A-Za-z0-9_.:@-]{1,64}$"))
            .description(Some(
                "Who sent the correction, e.g. `agent` or `demo` (else `invalid_source`).",
            ))
            .examples(["agent"])
            .into()
    }
}

impl ToSchema for Source {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Source")
    }
}
