//! IBANs: a country code, two check digits and the national account number, written whole or
//! in groups (`GB82 WEST 1234 5698 7654 32`), in either case.
//!
//! Two checks make this precise: the length must be the one the SWIFT registry gives the
//! country, and the ISO 7064 mod-97 remainder must be 1. A typo'd IBAN fails mod-97 and stays
//! (it no longer names an account); random text passes both one time in ~97 times the share of
//! letter-digit strings of exactly the right length, which is nil in chat.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::text::{free_standing, is_word_byte};

/// Where an IBAN can start: two letters and two digits.
static START: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z]{2}[0-9]{2}").expect("a valid pattern"));

/// IBAN lengths by country (SWIFT IBAN registry, plus the national IBANs of the francophone
/// African banks that publish them).
const LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AO", 25),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BF", 28),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BJ", 28),
    ("BR", 29),
    ("BY", 28),
    ("CF", 27),
    ("CG", 27),
    ("CH", 21),
    ("CI", 28),
    ("CM", 27),
    ("CR", 22),
    ("CV", 25),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("DZ", 26),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GA", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GQ", 27),
    ("GR", 27),
    ("GT", 28),
    ("GW", 25),
    ("HN", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IR", 26),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KM", 27),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MA", 28),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MG", 27),
    ("MK", 19),
    ("ML", 28),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("MZ", 25),
    ("NE", 28),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SN", 28),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TD", 27),
    ("TG", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
];

fn length_of(country: &[u8]) -> Option<usize> {
    LENGTHS
        .iter()
        .find(|(code, _)| code.as_bytes().eq_ignore_ascii_case(country))
        .map(|&(_, len)| len)
}

/// The spans of `text` that are valid IBANs, in order, not overlapping.
pub(super) fn find(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut spans: Vec<Range<usize>> = Vec::new();
    for start in START.find_iter(text) {
        let from = start.start();
        if spans.last().is_some_and(|s| from < s.end) {
            continue;
        }
        let Some(len) = length_of(&bytes[from..from + 2]) else {
            continue;
        };
        let Some(end) = take(bytes, from, len) else {
            continue;
        };
        let span = from..end;
        if free_standing(text, &span) && mod97(bytes, &span) == 1 {
            spans.push(span);
        }
    }
    spans
}

/// Where `len` letters and digits starting at `from` end, allowing one space or dash between
/// two of them (the printed groups of four, or any other grouping).
fn take(bytes: &[u8], from: usize, len: usize) -> Option<usize> {
    let mut at = from;
    let mut taken = 0;
    while taken < len {
        match bytes.get(at) {
            Some(b) if b.is_ascii_alphanumeric() => {
                taken += 1;
                at += 1;
            }
            Some(b' ' | b'-')
                if taken > 0 && bytes.get(at + 1).is_some_and(u8::is_ascii_alphanumeric) =>
            {
                at += 1
            }
            _ => return None,
        }
    }
    // The IBAN must end here, not run on into more letters or digits.
    (!bytes.get(at).copied().is_some_and(is_word_byte)).then_some(at)
}

/// ISO 7064 mod-97-10 of the IBAN in `span`: the first four characters moved to the end, each
/// letter read as two digits (A = 10 … Z = 35). A valid IBAN leaves 1.
fn mod97(bytes: &[u8], span: &Range<usize>) -> u32 {
    let chars: Vec<u8> = bytes[span.clone()]
        .iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(u8::to_ascii_uppercase)
        .collect();
    let (head, tail) = chars.split_at(4.min(chars.len()));
    tail.iter().chain(head).fold(0u32, |rem, &c| match c {
        b'0'..=b'9' => (rem * 10 + u32::from(c - b'0')) % 97,
        _ => (rem * 100 + u32::from(c - b'A') + 10) % 97,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_examples_leave_one() {
        for iban in [
            "GB82WEST12345698765432",
            "DE89370400440532013000",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "BE68539007547034",
            "NO9386011117947",
            "MT84MALT011000012345MTLCAST001S",
        ] {
            let bytes = iban.as_bytes();
            assert_eq!(mod97(bytes, &(0..bytes.len())), 1, "{iban}");
            assert_eq!(length_of(&bytes[..2]), Some(iban.len()), "{iban}");
        }
    }

    #[test]
    fn the_table_has_no_duplicate_country() {
        let mut codes: Vec<&str> = LENGTHS.iter().map(|(c, _)| *c).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), LENGTHS.len());
    }
}
