//! Payment card numbers: 13-19 digits, written whole or in groups joined by one space or dash,
//! that pass the Luhn check.
//!
//! Luhn is what separates a card from any other long number: one random digit string in ten
//! passes it, every issued card does. Order numbers, tracking numbers and timestamps of 13-19
//! digits therefore stay nine times in ten; the tenth is redacted (a false positive we accept:
//! the other way round a card would leak).

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::text::{best_cover, digit_groups, free_standing};

/// Card lengths (ISO/IEC 7812: 13 for old Visa, 19 for some Maestro and UnionPay).
const MIN_DIGITS: usize = 13;
const MAX_DIGITS: usize = 19;

/// A run of digit groups joined by single spaces or dashes: every way people write a card.
static RUN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[0-9]+(?:[ -][0-9]+)*").expect("a valid pattern"));

/// The spans of `text` that are Luhn-valid card numbers, in order, not overlapping.
pub(super) fn find(text: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    if text.bytes().filter(u8::is_ascii_digit).count() < MIN_DIGITS {
        return spans;
    }
    for run in RUN.find_iter(text) {
        let groups = digit_groups(text, run.range());
        let lengths: Vec<usize> = groups.iter().map(Range::len).collect();
        if lengths.iter().sum::<usize>() < MIN_DIGITS {
            continue;
        }
        let digits: Vec<u8> = groups
            .iter()
            .flat_map(|g| text.as_bytes()[g.clone()].iter().map(|b| b - b'0'))
            .collect();
        let luhn = LuhnSums::new(&digits);
        // Where each group's digits start in `digits`.
        let offsets: Vec<usize> = lengths
            .iter()
            .scan(0, |at, len| {
                let start = *at;
                *at += len;
                Some(start)
            })
            .collect();
        let chosen = best_cover(&lengths, MAX_DIGITS, |first, last| {
            let from = offsets[first];
            let to = offsets[last] + lengths[last];
            (MIN_DIGITS..=MAX_DIGITS).contains(&(to - from))
                && luhn.valid(from, to)
                && free_standing(text, &(groups[first].start..groups[last].end))
        });
        spans.extend(
            chosen
                .into_iter()
                .map(|(first, last)| groups[first].start..groups[last].end),
        );
    }
    spans
}

/// Prefix sums that give the Luhn sum of any slice in O(1): a digit is doubled when its
/// distance from the slice's last digit is odd, so each digit has one of two values by the
/// parity of its position, and a slice takes the sum whose parity matches its end.
struct LuhnSums {
    /// Digits at even positions doubled.
    even_doubled: Vec<u32>,
    /// Digits at odd positions doubled.
    odd_doubled: Vec<u32>,
}

impl LuhnSums {
    fn new(digits: &[u8]) -> Self {
        let double = |d: u32| if d > 4 { 2 * d - 9 } else { 2 * d };
        let mut even_doubled = Vec::with_capacity(digits.len() + 1);
        let mut odd_doubled = Vec::with_capacity(digits.len() + 1);
        let (mut e, mut o) = (0u32, 0u32);
        even_doubled.push(0);
        odd_doubled.push(0);
        for (i, &d) in digits.iter().enumerate() {
            let d = u32::from(d);
            if i.is_multiple_of(2) {
                e += double(d);
                o += d;
            } else {
                e += d;
                o += double(d);
            }
            even_doubled.push(e);
            odd_doubled.push(o);
        }
        Self {
            even_doubled,
            odd_doubled,
        }
    }

    /// `digits[from..to]` passes Luhn.
    fn valid(&self, from: usize, to: usize) -> bool {
        if to <= from {
            return false;
        }
        // The last digit (position to - 1) is not doubled; its neighbour is, and so on.
        let sums = if (to - 1).is_multiple_of(2) {
            &self.odd_doubled
        } else {
            &self.even_doubled
        };
        (sums[to] - sums[from]).is_multiple_of(10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Luhn check as the standard states it, from the right: the reference for `LuhnSums`.
    fn luhn(digits: &[u8]) -> bool {
        let sum: u32 = digits
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &d)| {
                let d = u32::from(d);
                match (i % 2, d * 2) {
                    (1, x) if x > 9 => x - 9,
                    (1, x) => x,
                    _ => d,
                }
            })
            .sum();
        !digits.is_empty() && sum.is_multiple_of(10)
    }

    fn digits(s: &str) -> Vec<u8> {
        s.bytes().map(|b| b - b'0').collect()
    }

    #[test]
    fn luhn_accepts_test_cards_and_refuses_a_changed_digit() {
        for card in [
            "4111111111111111",
            "5555555555554444",
            "378282246310005",
            "6011111111111117",
            "4222222222222",
        ] {
            assert!(luhn(&digits(card)), "{card}");
        }
        assert!(!luhn(&digits("4111111111111112")));
        assert!(!luhn(&[]));
    }

    #[test]
    fn slices_agree_with_the_whole_string_check() {
        let s = digits("9274111111111111111333");
        let sums = LuhnSums::new(&s);
        for from in 0..s.len() {
            for to in from + 1..=s.len() {
                assert_eq!(sums.valid(from, to), luhn(&s[from..to]), "{from}..{to}");
            }
        }
    }
}
