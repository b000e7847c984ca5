//! Helpers the detectors share: word boundaries, digit groups, and the choice of which
//! group-aligned spans of a digit run to redact.

use std::ops::Range;

/// An ASCII letter, digit or underscore: a byte that glues a number or code to a word
/// (`ref4111…`, `DE89…X`). Non-ASCII bytes count as boundaries: a digit run after `é` is
/// still redacted.
pub(super) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Nothing word-like touches `span` on either side, directly or through one `-` or `_` (the
/// hex groups of a UUID, `3f2a6b1c-1234-4567-8901-…`, or a code like `AB-12345678901` are
/// not numbers of their own). Every detector asks this of its spans, so a replacement token
/// (`[CARD]`, whose brackets are not word bytes) never makes a neighbour free-standing that was
/// not before: that is what keeps the passes from finding new matches in each other's output.
pub(super) fn free_standing(text: &str, span: &Range<usize>) -> bool {
    let bytes = text.as_bytes();
    let at = |i: Option<usize>| i.and_then(|i| bytes.get(i)).copied();
    let glued = |next: Option<u8>, beyond: Option<u8>| match next {
        Some(b'-' | b'_') => beyond.is_some_and(is_word_byte),
        Some(b) => is_word_byte(b),
        None => false,
    };
    let before = glued(at(span.start.checked_sub(1)), at(span.start.checked_sub(2)));
    let after = glued(at(Some(span.end)), at(Some(span.end + 1)));
    !before && !after
}

/// The byte ranges of the ASCII digit sequences in `text[within]`, in order.
pub(super) fn digit_groups(text: &str, within: Range<usize>) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut groups = Vec::new();
    let mut i = within.start;
    while i < within.end {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < within.end && bytes[i].is_ascii_digit() {
                i += 1;
            }
            groups.push(start..i);
        } else {
            i += 1;
        }
    }
    groups
}

/// Which spans of consecutive groups to redact: among the spans `valid(first, last)` accepts
/// (group indices, inclusive), a set of non-overlapping ones that covers the most digits.
/// `lengths[k]` is group `k`'s digit count; no span is longer than `max_digits`, so each group
/// is tried against at most `max_digits` ends and the whole is linear in the run's length.
///
/// Why not the leftmost match: a card or phone number written after other digits (`order 12
/// 4111 1111 1111 1111`, `01/05/2024 555-123-4567`) forms one run with them, and the leftmost
/// valid span can be a wrong split that leaves the real number's tail in the text. Covering the
/// most digits takes the split that hides the most.
pub(super) fn best_cover(
    lengths: &[usize],
    max_digits: usize,
    mut valid: impl FnMut(usize, usize) -> bool,
) -> Vec<(usize, usize)> {
    let n = lengths.len();
    // best[k]: the most digits coverable in groups k..n; choice[k]: the span taken at k.
    let mut best = vec![0usize; n + 1];
    let mut choice: Vec<Option<usize>> = vec![None; n];
    for k in (0..n).rev() {
        best[k] = best[k + 1];
        let mut digits = 0;
        for (j, len) in lengths.iter().enumerate().skip(k) {
            digits += len;
            if digits > max_digits {
                break;
            }
            let covered = digits + best[j + 1];
            if covered > best[k] && valid(k, j) {
                best[k] = covered;
                choice[k] = Some(j);
            }
        }
    }
    let mut spans = Vec::new();
    let mut k = 0;
    while k < n {
        match choice[k] {
            Some(j) => {
                spans.push((k, j));
                k = j + 1;
            }
            None => k += 1,
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cover_prefers_more_digits_to_the_leftmost_span() {
        // Groups of 2, 4, 4: spans (0,1) and (1,2) are valid; (1,2) covers more.
        let spans = best_cover(&[2, 4, 4], 19, |a, b| (a, b) == (0, 1) || (a, b) == (1, 2));
        assert_eq!(spans, vec![(1, 2)]);
    }

    #[test]
    fn boundaries_are_ascii_word_bytes() {
        assert!(free_standing("a 123 b", &(2..5)));
        assert!(!free_standing("a123 b", &(1..4)));
        assert!(free_standing("é123", &(2..5)));
        assert!(free_standing("123", &(0..3)));
        assert!(!free_standing("c-1234-5678", &(2..11)));
        assert!(!free_standing("12-x", &(0..2)));
        assert!(free_standing("- 12 -", &(2..4)));
    }
}
