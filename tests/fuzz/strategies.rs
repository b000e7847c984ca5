//! Strategies shared by the fuzz targets: odd text, JSON values with the real field names,
//! request bodies.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};

use crate::router;

#[rustfmt::skip]
pub const FIELDS: &[&str] = &[
    "operation", "message", "messages", "conversation_id", "message_id", "requestContext",
    "httpMethod", "body", "isBase64Encoded", "headers", "multiValueHeaders", "path", "rawPath",
    "rawQueryString", "routeKey", "version", "stage", "http", "method", "resource",
    "queryStringParameters", "pathParameters", "cookies", "domainName", "content-type",
];
#[rustfmt::skip]
pub const OPERATIONS: &[&str] = &[
    "classify-message", "classify-batch", "classify-conversation", "get-conversation",
    "clear-conversation",
];
#[rustfmt::skip]
pub const SAMPLES: &[&str] = &[
    router::HOT, router::WISHLIST, router::FIRST_TIME, "any discount codes?", "ok", "hi",
    "just browsing, thanks", "¿Tienen envío gratis? 🚚", "كم السعر؟", "这个多少钱",
];
#[rustfmt::skip]
pub const WHITESPACE: &[char] = &[
    ' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{85}', '\u{a0}', '\u{1680}', '\u{2000}',
    '\u{2007}', '\u{200a}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}',
    '\u{200b}', '\u{feff}', '\u{180e}',
];
#[rustfmt::skip]
pub const BIDI: &[char] = &[
    '\u{200e}', '\u{200f}', '\u{061c}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}',
    '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
];
#[rustfmt::skip]
pub const SPECIAL: &[char] = &[
    '\u{fffd}', '\u{fffe}', '\u{ffff}', '\u{10ffff}', '\u{e000}', '\u{f8ff}', '\u{fdd0}', '"',
    '\\', '/', '<', '{', '%', '#', '?', '&', '@', ':', '.',
];
#[rustfmt::skip]
pub const ZWJ_SEQUENCES: &[&str] = &[
    "👨‍👩‍👧‍👦", "🏳️‍🌈", "👩🏽‍💻", "🧑‍🤝‍🧑", "🇯🇵", "❤️‍🔥", "#️⃣", "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
];

pub fn odd_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => prop::char::range('a', 'z'),
        1 => prop::char::range('A', 'Z'),
        3 => Just(' '),
        1 => select(WHITESPACE),
        1 => prop::char::range('\u{300}', '\u{36f}'), // combining marks
        1 => prop::char::range('\u{590}', '\u{6ff}'), // Hebrew, Arabic
        1 => select(BIDI),
        1 => prop::char::range('\0', '\u{1f}'), // C0 controls, NUL
        1 => prop::char::range('\u{7f}', '\u{9f}'), // DEL, C1 controls
        1 => prop::char::range('\u{1f300}', '\u{1faff}'), // emoji
        1 => prop_oneof![Just('\u{200d}'), Just('\u{fe0f}'), prop::char::range('\u{1f3fb}', '\u{1f3ff}')],
        1 => prop::char::range('\u{4e00}', '\u{9fff}'), // CJK
        1 => prop::char::range('\u{900}', '\u{e7f}'), // Indic scripts, Thai
        1 => prop::char::range('\u{1100}', '\u{11ff}'), // Hangul jamo
        1 => prop::char::range('\u{1d400}', '\u{1d7ff}'), // mathematical alphanumerics
        1 => select(SPECIAL),
        2 => any::<char>(),
    ]
}

/// One run of text of a kind: odd characters, a ZWJ emoji sequence, a long word, whitespace
/// only, random UTF-16 decoded lossily (unpaired surrogates become U+FFFD), a real message.
pub fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => vec(odd_char(), 1..24).prop_map(String::from_iter),
        1 => select(ZWJ_SEQUENCES).prop_map(str::to_owned),
        1 => vec(prop::char::range('\u{1f466}', '\u{1f469}'), 2..6)
            .prop_map(|v| v.iter().map(char::to_string).collect::<Vec<_>>().join("\u{200d}")),
        1 => (prop::char::range('a', 'z'), 20..400usize).prop_map(|(c, n)| c.to_string().repeat(n)),
        1 => vec(prop::char::range('a', 'z'), 100..300).prop_map(String::from_iter),
        1 => vec(select(WHITESPACE), 1..12).prop_map(String::from_iter),
        1 => vec(prop_oneof![any::<u16>(), 0xd800u16..0xe000], 1..24)
            .prop_map(|v| String::from_utf16_lossy(&v)),
        2 => select(SAMPLES).prop_map(str::to_owned),
    ]
}

/// Text of up to `max` characters.
pub fn text(pieces: std::ops::Range<usize>, max: usize) -> impl Strategy<Value = String> {
    vec(piece(), pieces).prop_map(move |p| p.concat().chars().take(max).collect())
}

/// A `message` field's text: mostly short (cheap to classify), sometimes empty, whitespace
/// only, or around the 5000-character limit.
pub fn message_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(SAMPLES).prop_map(str::to_owned),
        4 => text(1..4, 200),
        1 => vec(select(WHITESPACE), 0..4).prop_map(String::from_iter),
        1 => (4_990..5_010usize).prop_map(|n| "ab ".repeat(n).chars().take(n).collect()),
    ]
}

/// Ids: a few valid ones that repeat (so reads find conversations), any valid one, invalid ones.
pub fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(&["c1", "c2", "chat-42", "a.b:c@d-e_f"][..]).prop_map(str::to_owned),
        2 => "[A-Za-z0-9_.:@-]{1,130}",
        1 => text(1..3, 140),
        1 => Just(String::new()),
    ]
}

pub fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        select(&[0.0, -0.0, 1e308, -1e308, 5e-324, 64.0, 65.0, -1.0][..]).prop_map(Value::from),
    ]
}

pub fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::from),
        2 => number(),
        3 => message_text().prop_map(Value::from),
        1 => select(OPERATIONS).prop_map(Value::from),
        1 => id().prop_map(Value::from),
    ]
}

pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![3 => select(FIELDS).prop_map(str::to_owned), 1 => text(1..2, 12)]
}

/// Any JSON value, object keys biased toward the real field names.
pub fn json_value() -> BoxedStrategy<Value> {
    leaf()
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Value::Array),
                vec((key(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A field's value: usually of the right kind, sometimes any JSON.
pub fn or_any(right: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![8 => right, 1 => json_value()].boxed()
}

pub fn messages() -> impl Strategy<Value = Value> {
    prop_oneof![
        12 => vec(or_any(message_text().prop_map(Value::from)), 0..5).prop_map(Value::Array),
        1 => (63..66usize).prop_map(|n| json!(vec!["ok"; n])),
    ]
}

/// Values for every body field (of the right kind most of the time; `message_id` half the
/// time), which of them to flip (drop where wanted, add where not), and now and then odd
/// extra fields.
#[derive(Debug, Clone)]
pub struct Fields {
    values: Map<String, Value>,
    flips: Vec<bool>,
    extra: Vec<(String, Value)>,
}

pub fn fields() -> impl Strategy<Value = Fields> {
    (
        or_any(message_text().prop_map(Value::from)),
        or_any(messages()),
        or_any(id().prop_map(Value::from)),
        prop::option::of(or_any(id().prop_map(Value::from))),
        vec(prop::bool::weighted(0.07), 4),
        prop::option::weighted(0.1, vec((key(), json_value()), 1..3)),
    )
        .prop_map(|(m, ms, c, mid, flips, extra)| {
            let mut values = Map::new();
            values.insert("message".into(), m);
            values.insert("messages".into(), ms);
            values.insert("conversation_id".into(), c);
            values.extend(mid.map(|v| ("message_id".to_owned(), v)));
            Fields {
                values,
                flips,
                extra: extra.unwrap_or_default(),
            }
        })
}

impl Fields {
    /// The body of a route (`/classify-message`) or operation (`classify-message`).
    pub fn body_of(&self, route: &str) -> Map<String, Value> {
        let wanted: &[&str] = match route.trim_start_matches('/') {
            "classify-message" => &["message"],
            "classify-batch" => &["messages"],
            "classify-conversation" => &["conversation_id", "message", "message_id"],
            "get-conversation" | "clear-conversation" => &["conversation_id"],
            _ => &[],
        };
        let mut body: Map<String, Value> = self
            .values
            .iter()
            .zip(&self.flips)
            .filter(|((k, _), &flip)| wanted.contains(&k.as_str()) != flip)
            .map(|(kv, _)| (kv.0.clone(), kv.1.clone()))
            .collect();
        body.extend(self.extra.iter().cloned());
        body
    }
}
