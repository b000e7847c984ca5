//! E-mail addresses: a local part, `@`, and a domain with at least one dot whose last label
//! starts with a letter (`jane.doe+shop@example.co.uk`, `josé@correo.es`).
//!
//! Deliberately looser than RFC 5322 (no quoted local parts, no IP literals) and looser than
//! what mail servers accept in the other direction: any run of letters, digits and `_.%+'-`
//! before an `@` counts, so a sentence glued to the address (`Hi.jane@x.com`) is redacted
//! with it. Requiring a letter after the last dot keeps `3@5.99` (a price) out.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

/// Letters and digits of any script: internationalised addresses are redacted too. `_` is in
/// the domain class although no host name has one, so that an address never ends right before
/// a word byte (`a@b.com_x`), which the other passes' boundaries rely on.
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[\p{L}\p{N}_.%+'-]+@[\p{L}\p{N}_-]+(?:\.[\p{L}\p{N}_-]+)*\.\p{L}[\p{L}\p{N}_-]*")
        .expect("a valid pattern")
});

/// The spans of `text` that are e-mail addresses, in order, not overlapping.
pub(super) fn find(text: &str) -> Vec<Range<usize>> {
    if !text.contains('@') {
        return Vec::new();
    }
    EMAIL.find_iter(text).map(|m| m.range()).collect()
}
