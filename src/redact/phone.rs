//! Phone numbers: international (`+44 7700 900123`, `+1-202-555-0143`, `0044 …`) and national
//! forms (`(555) 123-4567`, `555-123-4567`, `07700 900123`, `01 23 45 67 89`), and bare runs
//! of 10-11 digits shaped like a national number.
//!
//! A run of digit groups (joined by spaces, dashes, dots, slashes or parentheses) is found
//! first and split at any joiner never seen inside a phone number (`joiner_ok`); then the
//! group-aligned spans of it that read as a phone number are chosen (`text::best_cover`: the
//! most digits covered, so a number written after a date or a quantity is still taken whole).
//! What reads as one:
//!
//! - `+` and 8-15 digits (E.164's maximum), or `00` and 8-15 digits after it: any grouping;
//! - two or more groups with 9-13 digits (10-13 for two groups), every group after the first
//!   of at least two digits. Two groups must start with a trunk `0` or an area code in
//!   parentheses (`07700 900123`, `(555) 1234567`), and groups of at most two digits after the
//!   first need a leading `0` (`01 23 45 67 89`): otherwise `10000-20000` or the sizes
//!   `10 12 14 16 18` would be phone numbers. Dots only in the dotted shapes in use
//!   (`555.123.4567`, `1.555.123.4567`, `01.23.45.67.89`), so that model, version and price
//!   numbers stay (`795.72043.112`); a `/` only after a leading trunk group (`030/1234567`).
//!   No group of a date (`2024-05-01`, `01/05/2024`) is taken, nor of a card-shaped number
//!   that failed Luhn (`4111 1111 1111 1112`);
//! - one bare group of 10 digits with a trunk `0` (`0612345678`) or a North American area and
//!   exchange code (first and fourth digit 2-9: `2025550143`), or of 11 digits with a trunk `0`
//!   (`07700900123`) or `1` and a North American number (`12025550143`). That keeps epoch
//!   seconds and the 11-digit appliance model numbers of shop chat (`11078890800`) out;
//!   12-digit runs (as often UPC barcodes and tracking numbers as a number without its `+`)
//!   are left;
//! - in every national form, nothing right after a cue word on the same line (`order`, `ref`,
//!   `invoice`, `tracking`, `model`, `part`, `serial`, …, maybe with `no.`, `number`, `#`,
//!   `is` between), and no bare run right after `#`; after a phone word (`phone #…`, `call`,
//!   `mobile`) a number is taken whatever follows.
//!
//! The trade-off: a missed phone number leaks a customer's contact; a redacted order number
//! costs an agent a look at the original conversation. So formatted numbers are taken whatever
//! precedes them unless a cue word names them, and a bare `#` keeps only a bare run (the usual
//! shape of an order number). Order numbers of 6-9 digits (`#12345678`, `order 123456`) are
//! below every phone length and always stay. What still comes out as `[PHONE]` by mistake:
//! part numbers in a phone's shape with no cue before them (`5303918344`, `110 42932 200`;
//! 4 of the 14,708 messages of the real pools, docs/privacy.md).

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::text::{best_cover, free_standing};

/// E.164: at most 15 digits after the `+`. National spans get 13 at most; `00` adds two.
const MAX_INTERNATIONAL: usize = 15;
const MIN_INTERNATIONAL: usize = 8;
const MAX_NATIONAL: usize = 13;

/// A run of digit groups joined by one to three of ` ()./-`; an optional `+` or `(` before the
/// first. The joiners are checked one by one afterwards (`joiner_ok`).
static RUN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\+?\(?[0-9]+(?:[ ()./-]{1,3}[0-9]+)*").expect("a valid pattern"));

/// Words that, just before a national number, say it is an order, model or ticket number.
const CUES: &[&str] = &[
    "order",
    "orders",
    "ref",
    "reference",
    "invoice",
    "tracking",
    "track",
    "parcel",
    "package",
    "shipment",
    "ticket",
    "case",
    "sku",
    "upc",
    "ean",
    "isbn",
    "asin",
    "item",
    "article",
    "product",
    "model",
    "part",
    "serial",
    "catalog",
    "catalogue",
    "confirmation",
    "booking",
    "reservation",
    "transaction",
    "receipt",
    "voucher",
    "coupon",
    "promo",
    "code",
];

/// Words that make what follows a phone number: `phone #555 123 4567`.
const PHONE_WORDS: &[&str] = &[
    "phone",
    "telephone",
    "tel",
    "mobile",
    "cell",
    "cellphone",
    "landline",
    "fax",
    "whatsapp",
    "sms",
    "text",
    "call",
    "ring",
    "contact",
];

/// Words between a cue and its number: `order no. 1234567890`, `model number is 1234567890`.
const NUMBER_WORDS: &[&str] = &["no", "nr", "num", "number", "nº", "id"];
const FILLERS: &[&str] = &[
    "is", "was", "are", "be", "the", "a", "an", "of", "for", "on", "it", "its", "this",
];

/// One digit group of a run and what touches it.
struct Group {
    digits: Range<usize>,
    /// A `(` right before the digits.
    open: bool,
    /// A `)` right after the digits.
    close: bool,
}

/// The spans of `text` that read as phone numbers, in order, not overlapping.
pub(super) fn find(text: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    if text.bytes().filter(u8::is_ascii_digit).count() < 8 {
        return spans;
    }
    for run in RUN.find_iter(text) {
        for segment in segments(text, run.range()) {
            phones_in(text, &segment, &mut spans);
        }
    }
    spans
}

/// A stretch of a run whose joiners are all plausible inside one phone number, and whether a
/// `+` leads it.
struct Segment {
    groups: Vec<Group>,
    /// The joiner after each group but the last, as written.
    joiners: Vec<Range<usize>>,
    plus: Option<usize>,
}

fn segments(text: &str, run: Range<usize>) -> Vec<Segment> {
    let bytes = text.as_bytes();
    let plus = (bytes[run.start] == b'+').then_some(run.start);
    let mut out = Vec::new();
    let mut current = Segment {
        groups: Vec::new(),
        joiners: Vec::new(),
        plus,
    };
    let mut at = run.start;
    let mut pending: Option<Range<usize>> = None;
    while at < run.end {
        if bytes[at].is_ascii_digit() {
            let start = at;
            while at < run.end && bytes[at].is_ascii_digit() {
                at += 1;
            }
            let open = start > run.start && bytes[start - 1] == b'(';
            let close = at < run.end && bytes[at] == b')';
            let group = Group {
                digits: start..at,
                open,
                close,
            };
            match pending.take() {
                Some(joiner) if joiner_ok(&bytes[joiner.clone()]) => {
                    current.joiners.push(joiner);
                    current.groups.push(group);
                }
                Some(_) => {
                    out.push(std::mem::replace(
                        &mut current,
                        Segment {
                            groups: vec![group],
                            joiners: Vec::new(),
                            plus: None,
                        },
                    ));
                }
                None => current.groups.push(group),
            }
        } else {
            let start = at;
            while at < run.end && !bytes[at].is_ascii_digit() {
                at += 1;
            }
            // Only what stands between two groups is a joiner; the `+` or `(` before the first
            // is not.
            if !current.groups.is_empty() || !out.is_empty() {
                pending = Some(start..at);
            }
        }
    }
    out.push(current);
    out
}

/// A joiner people write inside one phone number: a space, `-`, `.`, `/`, `(`, `)`, `)-` or
/// `-(`, with at most one space on each side (none around a dot); a `(` touches the digits
/// after it and a `)` the digits before it.
fn joiner_ok(joiner: &[u8]) -> bool {
    let core: Vec<u8> = joiner.iter().copied().filter(|&b| b != b' ').collect();
    let spaces = joiner.len() - core.len();
    let allowed: &[&[u8]] = &[b"", b"-", b".", b"/", b"(", b")", b")-", b"-("];
    allowed.contains(&core.as_slice())
        && !joiner.windows(2).any(|w| w == b"  ")
        && !(core == b"." && spaces > 0)
        && (!core.contains(&b'(') || joiner.last() == Some(&b'('))
        && (!core.contains(&b')') || joiner.first() == Some(&b')'))
}

/// The phone numbers in one segment, by the rules in the module doc.
fn phones_in(text: &str, segment: &Segment, spans: &mut Vec<Range<usize>>) {
    let bytes = text.as_bytes();
    let groups = &segment.groups;
    let lengths: Vec<usize> = groups.iter().map(|g| g.digits.len()).collect();
    let n = groups.len();
    let cores: Vec<Vec<u8>> = segment
        .joiners
        .iter()
        .map(|j| {
            bytes[j.clone()]
                .iter()
                .copied()
                .filter(|&b| b != b' ')
                .collect()
        })
        .collect();
    // Prefix counts over groups (`g`) and joiners (`j`), so that each span is judged in O(1):
    // `count(&g, first, last)` is how many of groups first..=last are flagged.
    let prefix = |flags: &mut dyn Iterator<Item = bool>| -> Vec<usize> {
        let mut out = vec![0];
        for f in flags {
            out.push(out.last().copied().unwrap_or(0) + usize::from(f));
        }
        out
    };
    let count = |sums: &[usize], first: usize, last: usize| sums[last + 1] - sums[first];
    let short_g = prefix(&mut lengths.iter().map(|&l| l < 2));
    let long_g = prefix(&mut lengths.iter().map(|&l| l > 2));
    let dot_j = prefix(&mut cores.iter().map(|c| c.as_slice() == b"."));
    let slash_j = prefix(&mut cores.iter().map(|c| c.as_slice() == b"/"));
    // Groups of a date: no phone number takes any of them.
    let date_starts: Vec<bool> = (0..n).map(|k| date_at(text, segment, &cores, k)).collect();
    let dated_g = prefix(&mut (0..n).map(|k| (k.saturating_sub(2)..=k).any(|s| date_starts[s])));
    // Four or more groups of four digits: a card's shape. One that failed Luhn is no card, and
    // no phone number either (`4111 1111 1111 1112` stays as it is).
    let mut card_shaped = vec![false; n];
    let mut k = 0;
    while k < n {
        let mut end = k;
        while end < n
            && lengths[end] == 4
            && (end == k || matches!(cores[end - 1].as_slice(), b"" | b"-"))
        {
            end += 1;
        }
        if end - k >= 4 {
            card_shaped[k..end].iter_mut().for_each(|c| *c = true);
        }
        k = end.max(k + 1);
    }
    let carded_g = prefix(&mut card_shaped.iter().copied());
    let cue = groups
        .first()
        .map_or(Cue::None, |g| cue_before(text, g.digits.start));
    let start_of = |k: usize| -> usize {
        match segment.plus {
            Some(plus) if k == 0 => plus,
            _ if groups[k].open => groups[k].digits.start - 1,
            _ => groups[k].digits.start,
        }
    };
    let valid = |first: usize, last: usize| -> bool {
        let digits: usize = lengths[first..=last].iter().sum();
        let lead = &bytes[groups[first].digits.clone()];
        let span = start_of(first)..groups[last].digits.end;
        // The joiners inside the span are first..last (none for one group).
        let joined = |sums: &[usize]| {
            if last > first {
                sums[last] - sums[first]
            } else {
                0
            }
        };
        let shaped = if first == 0 && segment.plus.is_some() {
            (MIN_INTERNATIONAL..=MAX_INTERNATIONAL).contains(&digits)
        } else if lead.starts_with(b"00") && digits >= MIN_INTERNATIONAL + 2 {
            digits <= MAX_INTERNATIONAL + 2
        } else if first == last {
            bare(lead) && !(first == 0 && cue != Cue::None)
        } else {
            let groups_in = last - first + 1;
            let min = if groups_in == 2 { 10 } else { 9 };
            let paren = groups[first].open && groups[first].close;
            let dots = joined(&dot_j);
            let slashes = joined(&slash_j);
            (min..=MAX_NATIONAL).contains(&digits)
                && !(first == 0 && cue == Cue::Word)
                && count(&short_g, first + 1, last) == 0
                && (groups_in > 2 || lead[0] == b'0' || paren)
                && (count(&long_g, first + 1, last) > 0 || lead[0] == b'0')
                && (dots == 0 || dotted_shape(&lengths[first..=last], lead, dots == last - first))
                && (slashes == 0
                    || (slashes == 1 && cores[first].as_slice() == b"/" && lead[0] == b'0'))
                && count(&dated_g, first, last) == 0
                && count(&carded_g, first, last) == 0
        };
        shaped && free_standing(text, &span)
    };
    for (first, last) in best_cover(&lengths, MAX_INTERNATIONAL + 2, valid) {
        spans.push(start_of(first)..groups[last].digits.end);
    }
}

/// A dotted national number has one of the two dotted shapes in use, with dots between all its
/// groups: `555.123.4567` (or `1.555.123.4567`) and `01.23.45.67.89`. Anything else dotted is
/// a model, version or price (`795.72043.112`, `1.2.3`, `1.299.000`).
fn dotted_shape(lengths: &[usize], lead: &[u8], all_dots: bool) -> bool {
    all_dots
        && (matches!(lengths, [3, 3, 4] | [1, 3, 3, 4])
            || (lengths.len() == 5 && lengths.iter().all(|&l| l == 2) && lead[0] == b'0'))
}

/// A bare group that reads as a phone number: 10 digits with a trunk `0` (`0612345678`) or a
/// North American area and exchange code (first and fourth digit 2-9: `2025550143`); 11 digits
/// with a trunk `0` (`07700900123`) or `1` and a North American number (`12025550143`).
/// The North American rule is what keeps the 11-digit appliance model numbers (`110…`, `795…`)
/// and epoch seconds (`17…`) out.
fn bare(digits: &[u8]) -> bool {
    let nanp = |d: &[u8]| d.len() == 10 && d[0] >= b'2' && d[3] >= b'2';
    match digits.len() {
        10 => digits[0] == b'0' || nanp(digits),
        11 => digits[0] == b'0' || (digits[0] == b'1' && nanp(&digits[1..])),
        _ => false,
    }
}

/// Groups `k`, `k + 1`, `k + 2` form a date: `2024-05-01`, `01/05/2024`, `05/01/2024`, with
/// one and the same `-`, `/` or `.` between them and a real month and day. (Two-digit years
/// are left out: `01.23.45` is as likely the start of a French number as a date.)
fn date_at(text: &str, segment: &Segment, joiners: &[Vec<u8>], k: usize) -> bool {
    let (Some(a), Some(b), Some(c)) = (
        segment.groups.get(k),
        segment.groups.get(k + 1),
        segment.groups.get(k + 2),
    ) else {
        return false;
    };
    let same = joiners[k] == joiners[k + 1]
        && matches!(joiners[k].as_slice(), b"-" | b"/" | b".")
        && segment.joiners[k].len() == 1
        && segment.joiners[k + 1].len() == 1;
    let value = |g: &Group| text[g.digits.clone()].parse::<u32>().unwrap_or(u32::MAX);
    let (la, lb, lc) = (a.digits.len(), b.digits.len(), c.digits.len());
    let month_day = |m: u32, d: u32| (1..=12).contains(&m) && (1..=31).contains(&d);
    same && match (la, lb, lc) {
        (4, 1..=2, 1..=2) => month_day(value(b), value(c)),
        (1..=2, 1..=2, 4) => month_day(value(b), value(a)) || month_day(value(a), value(b)),
        _ => false,
    }
}

/// What stands before a digit run on its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cue {
    None,
    /// A `#` right before it (`#1234567890`), not after a phone word (`phone #…`).
    Hash,
    /// A word in `CUES`, maybe with `no.`, `number`, `#`, `is` between (`model no. is …`).
    Word,
}

/// The cue before `start` on the same line, read back word by word over at most 48 bytes.
fn cue_before(text: &str, start: usize) -> Cue {
    let mut from = start.saturating_sub(48);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let window = &text[from..start];
    let mut rest = window.rsplit('\n').next().unwrap_or(window);
    let mut hash = None;
    for step in 0..6 {
        rest = rest.trim_end_matches(|c: char| c.is_whitespace() || c == ':' || c == '.');
        if let Some(before) = rest.strip_suffix('#') {
            hash = hash.or(Some(step == 0));
            rest = before;
            continue;
        }
        let word_start = rest
            .char_indices()
            .rev()
            .find(|(_, c)| !c.is_alphanumeric())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = rest[word_start..].to_lowercase();
        if CUES.contains(&word.as_str()) {
            return Cue::Word;
        }
        if word.is_empty() || PHONE_WORDS.contains(&word.as_str()) {
            // `phone #…` is a phone number whatever follows.
            return if word.is_empty() && hash == Some(true) {
                Cue::Hash
            } else {
                Cue::None
            };
        }
        if !NUMBER_WORDS.contains(&word.as_str()) && !FILLERS.contains(&word.as_str()) {
            break;
        }
        rest = &rest[..word_start];
    }
    if hash == Some(true) {
        Cue::Hash
    } else {
        Cue::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joiners() {
        for ok in [" ", "-", ".", "/", " - ", ") ", ")", " (", "(", ")-", "-("] {
            assert!(joiner_ok(ok.as_bytes()), "{ok:?}");
        }
        for bad in ["  ", "..", "--", " . ", "( ", " )", "((", "/-"] {
            assert!(!joiner_ok(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn cues() {
        for (text, cue) in [
            ("order 5551234567", Cue::Word),
            ("Order No. 5551234567", Cue::Word),
            ("ticket number: 5551234567", Cue::Word),
            ("my model number is 5551234567", Cue::Word),
            ("Serial no. is 5551234567", Cue::Word),
            ("model# 5551234567", Cue::Word),
            ("#5551234567", Cue::Hash),
            ("order #5551234567", Cue::Word),
            ("phone #5551234567", Cue::None),
            ("my # is 5551234567", Cue::None),
            ("call 5551234567", Cue::None),
            ("my number is 5551234567", Cue::None),
            ("order\n5551234567", Cue::None),
        ] {
            let start = text.find('5').unwrap();
            assert_eq!(cue_before(text, start), cue, "{text}");
        }
    }
}
