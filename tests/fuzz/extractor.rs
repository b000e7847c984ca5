//! Target 2: the JSON body extractor, with arbitrary and near-JSON bytes POSTed to each POST
//! route.

use std::fmt;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::Value;
use tagbeez::config::MAX_BODY_BYTES;

use crate::strategies::*;
use crate::{assert_route_answer, function, fuzz, router, runtime};

/// Request body bytes, shown as (lossy) text.
#[derive(Clone)]
struct Bytes(Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = String::from_utf8_lossy(&self.0);
        let shown: String = text.chars().take(2_000).collect();
        write!(f, "{} bytes: {shown:?}", self.0.len())
    }
}

#[rustfmt::skip]
const ESCAPES: &[&str] = &[
    r"\ud800", r"\udfff", r"\udc00\ud800", r"\ud800\u0041", r"\ud83d\ude00", r"\u0000", r"\u00",
    r"\uZZZZ", r"\x41", r"\'", r"\U0001F600", r"\n", r"\\", r#"\""#, r"\/", r"\b\f\r\t",
];
#[rustfmt::skip]
const NUMBERS: &[&str] = &[
    "1e999999", "-1e400", "1E+", "-", "-0", "0.", ".5", "01", "NaN", "Infinity", "0x10",
    "18446744073709551616", "-9223372036854775809", "1e-999999", "5e-324",
];

/// Change `bytes`: flip a byte, cut, insert or delete.
#[derive(Debug, Clone)]
enum ByteEdit {
    Flip(Index, u8),
    Truncate(Index),
    Insert(Index, u8),
    Delete(Index),
}

fn edit(bytes: &mut Vec<u8>, e: &ByteEdit) {
    let at = |i: &Index, len: usize| i.index(len.max(1)).min(len);
    match e {
        ByteEdit::Flip(i, x) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            bytes[i] ^= (*x).max(1);
        }
        ByteEdit::Truncate(i) => bytes.truncate(at(i, bytes.len())),
        ByteEdit::Insert(i, b) => bytes.insert(at(i, bytes.len()), *b),
        ByteEdit::Delete(i) if !bytes.is_empty() => drop(bytes.remove(i.index(bytes.len()))),
        _ => {}
    }
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, x)| ByteEdit::Flip(i, x)),
        1 => any::<Index>().prop_map(ByteEdit::Truncate),
        2 => (any::<Index>(), select(&b"{}[]\",:\\0e-\x00\xff\xc3 "[..]))
            .prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        2 => any::<Index>().prop_map(ByteEdit::Delete),
    ]
}

/// Bytes for the body of a POST to `path`.
fn body_bytes(path: &'static str) -> impl Strategy<Value = Bytes> {
    let field = match path {
        "/classify-batch" => r#"{"messages": ["#,
        "/classify-conversation" => r#"{"conversation_id": "c1", "message": "#,
        _ => r#"{"message": "#,
    };
    let close = if path == "/classify-batch" { "]}" } else { "}" };
    let wrap = move |inner: String| format!("{field}{inner}{close}").into_bytes();
    prop_oneof![
        // Arbitrary bytes, and noise made of JSON's own punctuation.
        6 => vec(any::<u8>(), 0..300),
        3 => vec(select(&b"{}[]\":,0123456789.eE+-truefalsn \\u"[..]), 0..200),
        // A valid body for some route, with its bytes edited.
        12 => (fields(), vec(byte_edit(), 0..4)).prop_map(move |(f, edits)| {
            let mut bytes = Value::Object(f.body_of(path)).to_string().into_bytes();
            edits.iter().for_each(|e| edit(&mut bytes, e));
            bytes
        }),
        // Deep nesting, closed or not, at the top or in the field.
        3 => (prop_oneof![9 => 1..2_000usize, 1 => Just(120_000usize)], any::<bool>(), any::<bool>())
            .prop_map(move |(depth, closed, top)| {
                let inner = format!("{}{}", "[".repeat(depth), if closed { "]".repeat(depth) } else { String::new() });
                if top { inner.into_bytes() } else { wrap(inner) }
            }),
        // Huge, odd and invalid numbers.
        3 => prop_oneof![select(NUMBERS).prop_map(str::to_owned), (1..3_000usize).prop_map(|n| "9".repeat(n))]
            .prop_map(wrap),
        // Escapes: lone surrogates, NUL, invalid ones, inside a message.
        6 => vec(prop_oneof![select(ESCAPES).prop_map(str::to_owned), select(SAMPLES).prop_map(str::to_owned)], 1..5)
            .prop_map(move |parts| wrap(format!("\"{}\"", parts.concat()))),
        // Any JSON value as the whole body; duplicate fields.
        3 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => Just(r#"{"message": "hi", "message": "ok"}"#.as_bytes().to_vec()),
        // Around the body size limit (large: rare).
        1 => (MAX_BODY_BYTES - 40..MAX_BODY_BYTES + 40)
            .prop_map(move |n| wrap(format!("\"{}\"", "a".repeat(n - field.len() - close.len() - 2)))),
    ]
    .prop_map(Bytes)
}

fn post_case() -> impl Strategy<Value = (&'static str, &'static str, Bytes)> {
    let content_type = select(
        &[
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/vnd.api+json",
        ][..],
    );
    select(
        &[
            "/classify-message",
            "/classify-batch",
            "/classify-conversation",
        ][..],
    )
    .prop_flat_map(move |path| (Just(path), content_type.clone(), body_bytes(path)))
}

#[test]
fn fuzz_json_extractor() {
    let rt = runtime();
    let app = function().0;
    fuzz(
        "extractor",
        0.30,
        post_case(),
        |(path, content_type, body)| {
            let reply = rt.block_on(router::post_raw(&app, path, Some(content_type), body.0));
            assert_route_answer(path, &reply)
        },
    );
}
