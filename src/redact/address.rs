//! Street addresses, best-effort: a house number, one to four words and a street suffix
//! (`221B Baker Street`, `350 5th Ave`, `12 main st`), the French, German, Italian, Spanish and
//! Portuguese shapes (`10 rue de Rivoli`, `Hauptstraße 5`, `Berliner Str. 12`, `Via Roma 10`,
//! `Calle Mayor, 5`), and `PO Box 123`; then, on the same line, an optional unit (`, Apt 4`),
//! city, state and postcode (`, Springfield, IL 62704`, `, London NW1 6XE`, `, 10115 Berlin`).
//! Only that span is redacted, never the rest of the message.
//!
//! Why best-effort: an address has no checksum and no fixed shape. A pattern strict enough to
//! leave shopping talk alone (`5 minutes down the road`, `2 tennis court`, `3 shops close by`)
//! misses addresses written without a number or a suffix (`the flat above the bakery on Mill
//! Lane`, `Damrak 1`), and one loose enough to catch those would eat product names and
//! quantities. The rules, and the false positives they still allow:
//!
//! - capitalised street names take any suffix; lower-case ones only an unambiguous suffix
//!   (street, road, avenue, lane, boulevard, crescent, terrace, highway, parkway), and
//!   none of their words may be a function word or a unit (`the`, `my`, `minutes`, `miles`,
//!   `pairs`, …): `12 baker street` is an address, `2 tennis court` is not;
//! - a capitalised product name that ends like a street (`10 Wide Fit Court`, `360 S Hard
//!   Drive`) is redacted;
//! - a `via …` street followed by a lower-case word is not one (`via Amazon 2 days` is
//!   shipping talk).

use std::ops::Range;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// A house number: `12`, `221B`, `12-14`, `3/5`.
const NUMBER: &str = r"[0-9]{1,5}[A-Za-z]?(?:[-/][0-9]{1,5}[A-Za-z]?)?";
const GAP: &str = r"[ \t]{1,3}";
/// A capitalised word (`O'Connell`, `Saint-Jean`, `St.`), a lower-case one, or an ordinal.
const WORD: &str = r"(?:\p{Lu}[\p{L}\p{M}'’.-]*|\p{Ll}[\p{L}\p{M}'’-]*|[0-9]{1,3}(?i:st|nd|rd|th))";
const SUFFIX: &str = r"(?i:street|road|avenue|lane|drive|boulevard|way|court|place|close|crescent|terrace|square|highway|parkway|(?:st|rd|ave|av|ln|dr|blvd|ct|pl|cres|terr|sq|hwy|pkwy)\.?)";
/// Suffixes that are street words in lower case too; the others (drive, way, court, place,
/// close, square) are everyday words (`hard drive`, `tennis court`) and need a capitalised
/// street name.
const STRONG: &[&str] = &[
    "street",
    "st",
    "road",
    "rd",
    "avenue",
    "ave",
    "av",
    "lane",
    "ln",
    "boulevard",
    "blvd",
    "crescent",
    "cres",
    "terrace",
    "terr",
    "highway",
    "hwy",
    "parkway",
    "pkwy",
];
/// Words that never stand in a lower-case street name: `10 minutes down the road`.
const STOP: &[&str] = &[
    "a", "an", "the", "and", "or", "of", "for", "to", "in", "on", "at", "by", "with", "from",
    "into", "onto", "up", "down", "my", "your", "our", "their", "his", "her", "its", "this",
    "that", "these", "those", "more", "less", "per", "each", "every", "all", "some", "any",
    "other", "another", "is", "are", "was", "were", "be", "get", "got", "buy", "bought", "pay",
    "paid", "way", "off", "new", "old", "same", "next", "last", "first", "than", "too", "so",
];
/// Units and counts: never the first word after a house number, capitalised or not
/// (`2 Mile Drive` is a distance, `5 min drive` too).
const MEASURE: &[&str] = &[
    "minute",
    "minutes",
    "min",
    "mins",
    "hour",
    "hours",
    "hr",
    "hrs",
    "day",
    "days",
    "week",
    "weeks",
    "month",
    "months",
    "year",
    "years",
    "yr",
    "yrs",
    "mile",
    "miles",
    "km",
    "kms",
    "kilometre",
    "kilometres",
    "kilometer",
    "kilometers",
    "metre",
    "metres",
    "meter",
    "meters",
    "m",
    "ft",
    "feet",
    "foot",
    "yard",
    "yards",
    "block",
    "blocks",
    "time",
    "times",
    "x",
    "item",
    "items",
    "piece",
    "pieces",
    "pcs",
    "pair",
    "pairs",
    "pack",
    "packs",
    "people",
    "persons",
    "kids",
    "percent",
    "euro",
    "euros",
    "dollar",
    "dollars",
    "pound",
    "pounds",
    "quid",
    "bucks",
];

/// The street itself, in one of its shapes; `end` marks where it stops, before the one
/// character (or the end of the text) that must not be a letter or digit.
static STREET: LazyLock<Regex> = LazyLock::new(|| {
    let name = r"\p{Lu}[\p{L}\p{M}'’-]*";
    // French: `10 rue de la Paix`, `5 bis avenue des Champs-Élysées`.
    let fr_link = r"(?:(?i:de|du|des|la|le|les|et|sur|sous)[ \t]{1,3}|(?i:d|l)['’])";
    let french = format!(
        r"[0-9]{{1,4}}(?:[ \t]?(?i:bis|ter))?,?{GAP}(?i:rue|avenue|av\.|boulevard|bd|place|chemin|allée|allee|impasse|quai|cours|route|square){GAP}{fr_link}{{0,2}}{name}(?:{GAP}{fr_link}{{0,2}}{name}){{0,3}}"
    );
    // German: `Hauptstraße 5`, `Berliner Str. 12`, `Lindenweg 4a`.
    let german = format!(
        r"(?:\p{{Lu}}[\p{{L}}\p{{M}}-]*er{GAP})?(?:\p{{L}}[\p{{L}}\p{{M}}-]*(?i:straße|strasse)|\p{{Lu}}[\p{{L}}\p{{M}}-]*(?:str\.|weg|gasse|platz|allee)|(?:Straße|Strasse|Str\.|Weg|Gasse|Platz|Allee))[ \t]{{0,3}}[0-9]{{1,4}}[A-Za-z]?(?:[-/][0-9]{{1,4}}[A-Za-z]?)?"
    );
    // Italian, Spanish, Portuguese, Catalan: `Via Roma 10`, `Calle Mayor, 5`, `Rua Augusta n. 12`.
    let ro_name = r"\p{Lu}\p{Ll}[\p{L}\p{M}'’-]*";
    let ro_link = r"(?:(?i:de|del|della|delle|dei|degli|di|da|do|dos|das|la|las|le|el|los|y|e)[ \t]{1,3}|(?i:d|l)['’])";
    let romance = format!(
        r"(?P<ro>(?i:via|viale|piazza|piazzale|corso|largo|calle|avenida|rua|travessa|carrer|plaza|paseo|passeig|camino|carretera)){GAP}{ro_link}{{0,2}}{ro_name}(?:{GAP}{ro_link}{{0,2}}{ro_name}){{0,3}},?[ \t]{{0,3}}(?:(?i:n|no|nº|n°|num)\.?[ \t]{{0,2}})?[0-9]{{1,4}}[A-Za-z]?"
    );
    let english =
        format!(r"(?P<num>{NUMBER}){GAP}(?P<words>(?:{WORD}{GAP}){{1,4}})(?P<suffix>{SUFFIX})");
    let po_box = r"(?i:p\.?[ \t]?o\.?[ \t]?box)[ \t]{0,3}#?[0-9]{1,6}";
    Regex::new(&format!(
        r"(?:{english}|{french}|{german}|{romance}|{po_box})(?P<end>)(?:[^\p{{L}}\p{{N}}]|$)"
    ))
    .expect("a valid pattern")
});

/// What may follow the street on the same line: a direction, a unit, then a city and/or a
/// postcode (US ZIP, UK, Canadian, Dutch, or four or five digits).
static TAIL: LazyLock<Regex> = LazyLock::new(|| {
    let city = r"\p{Lu}[\p{L}\p{M}'’.-]*(?:[ \t]{1,3}\p{Lu}[\p{L}\p{M}'’.-]*){0,2}";
    let post = r"(?:[0-9]{5}(?:-[0-9]{4})?|[A-Z]{1,2}[0-9][A-Z0-9]?[ \t]?[0-9][A-Z]{2}|[A-Z][0-9][A-Z][ \t]?[0-9][A-Z][0-9]|[0-9]{4}[ \t]?[A-Z]{2}|[0-9]{4})";
    let state = r"(?:[A-Z]{2}[ \t]{1,3})?";
    let direction = r"(?:[ \t]{1,3}(?:NE|NW|SE|SW|N|S|E|W)\.?)?";
    let unit = r"(?:[ \t]{0,3},?[ \t]{0,3}(?:(?i:apt|apartment|unit|suite|ste|flat|floor|fl|room|rm)\.?[ \t]{0,3}#?|#[ \t]{0,2})[0-9A-Za-z][0-9A-Za-z-]{0,5})?";
    let place = format!(
        r"(?:[ \t]{{0,3}},[ \t]{{0,3}}[0-9]{{4,5}}[ \t]{{1,3}}{city}|[ \t]{{0,3}},[ \t]{{0,3}}{city}(?:[ \t]{{0,3}},?[ \t]{{0,3}}{state}{post})?|[ \t]{{0,3}},?[ \t]{{0,3}}{state}{post})?"
    );
    Regex::new(&format!(
        r"^{direction}{unit}{place}(?P<end>)(?:[^\p{{L}}\p{{N}}]|$)"
    ))
    .expect("a valid pattern")
});

/// The spans of `text` that look like street addresses, in order, not overlapping.
pub(super) fn find(text: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    if !text.bytes().any(|b| b.is_ascii_digit()) {
        return spans;
    }
    let mut at = 0;
    while let Some(caps) = STREET.captures_at(text, at) {
        let (Some(whole), Some(end)) = (caps.get(0), caps.name("end")) else {
            break;
        };
        let start = whole.start();
        let glued = text[..start]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric);
        if glued || !plausible(text, &caps, end.start()) {
            // Not this start; a later one may still begin inside the refused match.
            at = start + text[start..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        let street_end = end.start();
        let tail_end = TAIL
            .captures(&text[street_end..])
            .and_then(|t| t.name("end"))
            .map_or(street_end, |e| street_end + e.start());
        spans.push(start..tail_end);
        at = tail_end;
    }
    spans
}

/// The checks a pattern cannot say: the word lists for the English shape, and the
/// lower-case word after a `via` address.
fn plausible(text: &str, caps: &Captures, end: usize) -> bool {
    if let (Some(words), Some(suffix)) = (caps.name("words"), caps.name("suffix")) {
        let words: Vec<String> = words
            .as_str()
            .split_whitespace()
            .map(|w| w.trim_end_matches('.').to_lowercase())
            .collect();
        if words.first().is_some_and(|w| MEASURE.contains(&w.as_str())) {
            return false;
        }
        let capitalised = caps["words"]
            .split_whitespace()
            .all(|w| w.starts_with(|c: char| c.is_uppercase() || c.is_ascii_digit()));
        let suffix = suffix.as_str().trim_end_matches('.').to_lowercase();
        return capitalised
            || (STRONG.contains(&suffix.as_str())
                && !words
                    .iter()
                    .any(|w| STOP.contains(&w.as_str()) || MEASURE.contains(&w.as_str())));
    }
    if caps
        .name("ro")
        .is_some_and(|r| r.as_str().eq_ignore_ascii_case("via"))
    {
        let after = text[end..].trim_start_matches([' ', '\t']);
        return !after.starts_with(char::is_lowercase);
    }
    true
}
