//! PII redaction: customers paste personal data into chat, and none of it should be stored or
//! logged. [`redact`] replaces, in this order:
//!
//! 1. e-mail addresses with `[EMAIL]` (`email`);
//! 2. IBANs with `[IBAN]`: the country's length and mod-97 checked (`iban`);
//! 3. card numbers with `[CARD]`: 13-19 digits, grouped by spaces or dashes or not, Luhn
//!    checked (`card`);
//! 4. phone numbers with `[PHONE]` (`phone`);
//! 5. street addresses with `[ADDRESS]`, best-effort (`address`).
//!
//! Why this order: each pass runs on the previous one's output, so the precise, checksummed
//! detectors go first and take their digits before the loose ones can split them. An e-mail
//! address may hold digits a phone or card pass would bite into (`4111111111111111@x.com`); an
//! IBAN holds a card-length digit run; a card number is a run of 16 digits that the phone pass,
//! which accepts up to 17, would otherwise take in part. Addresses go last: their house
//! number and postcode are short digit runs no other pass wants, and their span ends only where
//! the text stops looking like an address.
//!
//! The trade-off throughout (the module docs of each pass say where it bites): a missed
//! number leaks a customer's data for good, a redacted order number costs an agent a look at
//! the original conversation. So the passes lean to redacting, and the order numbers they keep
//! are the short ones (`#12345678`, `order 123456`: below every phone and card length), numbers
//! right after a cue word (`order #1234567890`, `model 110-42926-200`), and long runs that fail
//! Luhn. Not redacted at all: names, order and account numbers in other shapes, free-text
//! addresses without a house number and street suffix, dates of birth, passport and national id
//! numbers, and digits in scripts other than ASCII. `docs/privacy.md` has the list and the
//! measured effect on the model.
//!
//! Properties the tests hold (`tests/redact.rs`): no input panics (any Unicode, up to the 4 MB
//! the tests try); the time is linear in the input (the `regex` crate's guarantee, and every
//! hand-written step is bounded per digit group); the output never holds a replaced card's or
//! phone number's digits; and redaction is idempotent, `redact(redact(x).text) == redact(x)`
//! in text. The replacement tokens hold no digit, `@`, quote or backslash, so they match no
//! pattern and keep JSON and log lines valid wherever they land.
//!
//! Pure: no I/O, no HTTP or service types, nothing but text in and text out.

mod address;
mod card;
mod email;
mod iban;
mod phone;
mod text;

use std::ops::Range;

use serde::Serialize;

/// How many of each kind were replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub email: usize,
    pub phone: usize,
    pub card: usize,
    pub iban: usize,
    pub address: usize,
}

impl Counts {
    /// Every replacement, of any kind.
    pub fn total(&self) -> usize {
        self.email + self.phone + self.card + self.iban + self.address
    }

    fn of(&mut self, kind: Kind) -> &mut usize {
        match kind {
            Kind::Email => &mut self.email,
            Kind::Iban => &mut self.iban,
            Kind::Card => &mut self.card,
            Kind::Phone => &mut self.phone,
            Kind::Address => &mut self.address,
        }
    }
}

/// A text with its PII replaced, and what was replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redacted {
    pub text: String,
    pub counts: Counts,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Email,
    Iban,
    Card,
    Phone,
    Address,
}

impl Kind {
    fn token(self) -> &'static str {
        match self {
            Kind::Email => "[EMAIL]",
            Kind::Iban => "[IBAN]",
            Kind::Card => "[CARD]",
            Kind::Phone => "[PHONE]",
            Kind::Address => "[ADDRESS]",
        }
    }
}

type Finder = fn(&str) -> Vec<Range<usize>>;

/// The passes, in the order the module doc gives.
const PASSES: [(Kind, Finder); 5] = [
    (Kind::Email, email::find),
    (Kind::Iban, iban::find),
    (Kind::Card, card::find),
    (Kind::Phone, phone::find),
    (Kind::Address, address::find),
];

/// Rounds of all five passes at most. One round finds everything in all but contrived text;
/// a second, run only when the first replaced something, confirms nothing is left and so makes
/// `redact` idempotent by construction, not only by the care taken in each pass. Each round that
/// changes the text removes at least one digit or `@`, so the loop ends anyway; the cap bounds
/// the work on adversarial input.
const MAX_ROUNDS: usize = 4;

/// Replace the e-mail addresses, IBANs, card numbers, phone numbers and street addresses in
/// `text` by `[EMAIL]`, `[IBAN]`, `[CARD]`, `[PHONE]` and `[ADDRESS]`. Never panics; linear
/// in the length of `text`.
pub fn redact(text: &str) -> Redacted {
    let mut counts = Counts::default();
    let mut current: Option<String> = None;
    for _ in 0..MAX_ROUNDS {
        match round(current.as_deref().unwrap_or(text), &mut counts) {
            Some(changed) => current = Some(changed),
            None => break,
        }
    }
    Redacted {
        text: current.unwrap_or_else(|| text.to_owned()),
        counts,
    }
}

/// One round of the five passes; `None` when nothing was replaced.
fn round(text: &str, counts: &mut Counts) -> Option<String> {
    let mut changed: Option<String> = None;
    for (kind, find) in PASSES {
        let input = changed.as_deref().unwrap_or(text);
        let spans = find(input);
        if spans.is_empty() {
            continue;
        }
        let (out, replaced) = replace(input, &spans, kind.token());
        if replaced > 0 {
            *counts.of(kind) += replaced;
            changed = Some(out);
        }
    }
    changed
}

/// `text` with each span replaced by `token`, and how many were. The finders give sorted,
/// disjoint spans on character boundaries; one that is not is skipped rather than trusted.
fn replace(text: &str, spans: &[Range<usize>], token: &str) -> (String, usize) {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut replaced = 0;
    for span in spans {
        if span.start < copied || span.end <= span.start {
            continue;
        }
        let (Some(kept), Some(_)) = (text.get(copied..span.start), text.get(span.clone())) else {
            continue;
        };
        out.push_str(kept);
        out.push_str(token);
        copied = span.end;
        replaced += 1;
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    (out, replaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_skips_overlapping_and_misaligned_spans() {
        let (out, n) = replace("ab€cd", &[0..1, 0..2, 3..4, 2..5], "[X]");
        // 0..1 applies; 0..2 overlaps it; 3..4 splits the euro sign; 2..5 is the euro sign.
        assert_eq!((out.as_str(), n), ("[X]b[X]cd", 2));
    }

    #[test]
    fn tokens_hold_nothing_a_pattern_or_json_would_see() {
        for (kind, _) in PASSES {
            let token = kind.token();
            assert!(!token.contains(|c: char| c.is_ascii_digit() || "@\"\\".contains(c)));
            assert_eq!(redact(token).counts, Counts::default(), "{token}");
        }
    }
}
