//! Log lines: JSON on stderr (stdout carries `classify` results and, in Lambda, the EMF
//! metric lines). Each line carries its span's fields: in Lambda the invocation's
//! `request_id` and `xray_trace_id` (`lambda::dispatch` opens that span).
//!
//! Every line is redacted (`crate::redact`) before it is written: an error message can quote a
//! customer's text, and a log is kept far longer and read by more people than the request it
//! came from. The redaction sits in the writer, not at each `tracing::` call, so no log line
//! can forget it, today's or a later one's.

use std::borrow::Cow;
use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

use crate::redact::redact;

/// The subscriber `main` installs, writing to `writer` (tests pass a buffer).
pub fn subscriber<W>(level: &str, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(Redacting(writer))
        .with_current_span(true)
        .with_span_list(false)
        .finish()
}

/// A `MakeWriter` whose writers redact each line before it reaches `W`'s.
struct Redacting<W>(W);

impl<'a, W: MakeWriter<'a>> MakeWriter<'a> for Redacting<W> {
    type Writer = RedactingWriter<W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter::new(self.0.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RedactingWriter::new(self.0.make_writer_for(meta))
    }
}

/// Holds bytes until a line is complete, then writes it redacted. The fmt layer formats each
/// event into one buffer and writes it with one `write_all` on a fresh writer, so in practice
/// each write is one whole line; buffering to the newline makes that an assumption this code
/// does not need (a line split over two writes is still redacted as one). Whatever is left
/// without a newline is written, redacted, when the writer is flushed or dropped.
struct RedactingWriter<W: Write> {
    inner: W,
    pending: Vec<u8>,
}

impl<W: Write> RedactingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            pending: Vec::new(),
        }
    }

    fn emit(&mut self, upto: usize) -> io::Result<()> {
        let line: Vec<u8> = self.pending.drain(..upto).collect();
        let text = String::from_utf8_lossy(&line);
        self.inner.write_all(redact_line(&text).as_bytes())
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(bytes);
        if let Some(last) = self.pending.iter().rposition(|&b| b == b'\n') {
            self.emit(last + 1)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.emit(self.pending.len())?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// One or more log lines, redacted. A line that is JSON (all of this subscriber's) keeps valid
/// JSON: each string is decoded, redacted and re-encoded, so a message whose PII starts right
/// after an escape (`"…\n+44 7700 900123"`) is seen as the text it is; a number that is a
/// card or phone number becomes the string `"[CARD]"` or `"[PHONE]"`. Anything else is
/// redacted as plain text. Unchanged strings and numbers are copied byte for byte.
fn redact_line(text: &str) -> Cow<'_, str> {
    if redact(text).counts.total() == 0 && !text.contains('\\') {
        // The common case: nothing to hide, and no escape that could hide something.
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        if serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok() {
            out.push_str(&redact_json(body));
        } else {
            out.push_str(&redact(body).text);
        }
        out.push_str(&line[body.len()..]);
    }
    Cow::Owned(out)
}

/// A valid JSON document with every string and number (by its integer part) redacted in place.
fn redact_json(json: &str) -> String {
    let bytes = json.as_bytes();
    let mut out = String::with_capacity(json.len());
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let token_end = match bytes[at] {
            b'"' => {
                let mut end = at + 1;
                while end < bytes.len() && bytes[end] != b'"' {
                    end += if bytes[end] == b'\\' { 2 } else { 1 };
                }
                (end + 1).min(bytes.len())
            }
            b'-' | b'0'..=b'9' => {
                let mut end = at + 1;
                while end < bytes.len()
                    && matches!(bytes[end], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    end += 1;
                }
                end
            }
            _ => {
                at += 1;
                continue;
            }
        };
        let token = &json[at..token_end];
        let plain: Option<Cow<str>> = if bytes[at] == b'"' {
            serde_json::from_str::<String>(token).ok().map(Cow::Owned)
        } else {
            // Only a number's integer part can be a card or phone number: the digits of a
            // fraction (a latency of `11.4623…`) are not, however long and Luhn-valid.
            let integer = token
                .find(['.', 'e', 'E'])
                .map_or(token, |end| &token[..end]);
            Some(Cow::Borrowed(integer))
        };
        if let Some(plain) = plain {
            let redacted = redact(&plain);
            if redacted.counts.total() > 0 {
                out.push_str(&json[copied..at]);
                out.push_str(&serde_json::Value::String(redacted.text).to_string());
                copied = token_end;
            }
        }
        at = token_end;
    }
    out.push_str(&json[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_stay_json_and_lose_their_pii() {
        let line = r#"{"fields":{"message":"mail jane@example.com\n+44 7700 900123","n":2025550143,"ok":true}}"#;
        let out = redact_line(line);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["fields"]["message"], "mail [EMAIL]\n[PHONE]", "{out}");
        assert_eq!(value["fields"]["n"], "[PHONE]");
        assert_eq!(value["fields"]["ok"], true);
    }

    #[test]
    fn fractions_are_not_cards_but_integer_parts_are() {
        // 4111111111111111 passes Luhn; as the digits of a latency's fraction it is no card.
        let line = r#"{"latency_ms":11.4111111111111111,"n":4111111111111111.0,"e":1.5e7}"#;
        let out = redact_line(line);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(
            out.contains(r#""latency_ms":11.4111111111111111,"#),
            "{out}"
        );
        assert_eq!(value["n"], "[CARD]");
        assert!(out.contains(r#""e":1.5e7"#), "{out}");
    }

    #[test]
    fn clean_lines_are_copied_as_they_are() {
        let line = "{\"a\":\"caf\\u00e9 2024-05-01\",\"b\":12}\n";
        assert_eq!(redact_line(line), line);
        assert_eq!(redact_line("plain 555-123-4567\n"), "plain [PHONE]\n");
    }
}
