//! Generators of personal data for property tests: valid card numbers (Luhn), phone numbers
//! in the formats `redact` knows, e-mail addresses, and arbitrary surrounding text. Shared by
//! `tests/redact.rs` (the functions) and `tests/redaction_e2e.rs` (the store and the logs).
//! Use with `#[path = "support/pii.rs"] mod pii;`.

#![allow(dead_code)] // each test file uses the part it needs

use proptest::prelude::*;
use proptest::sample::select;

/// A Luhn-valid number of 13-19 digits, written whole or grouped by spaces and dashes.
pub fn card() -> impl Strategy<Value = (String, String)> {
    (13usize..=19)
        .prop_flat_map(|len| {
            (
                prop::collection::vec(0u8..10, len - 1),
                prop::collection::vec(
                    prop_oneof![4 => Just(""), 1 => Just(" "), 1 => Just("-")],
                    len - 1,
                ),
            )
        })
        .prop_map(|(payload, joins)| {
            // The check digit: payload digits from the right, doubled first.
            let sum: u32 = payload
                .iter()
                .rev()
                .enumerate()
                .map(|(i, &d)| {
                    let d = u32::from(d);
                    if i.is_multiple_of(2) {
                        if d > 4 {
                            2 * d - 9
                        } else {
                            2 * d
                        }
                    } else {
                        d
                    }
                })
                .sum();
            let check = ((10 - sum % 10) % 10) as u8;
            let digits: String = payload
                .iter()
                .chain([&check])
                .map(|d| char::from(b'0' + d))
                .collect();
            let mut written = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 {
                    written.push_str(joins[i - 1]);
                }
                written.push(c);
            }
            (written, digits)
        })
}

pub fn digits_of(n: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::char::range('0', '9'), n).prop_map(String::from_iter)
}

/// A phone number in one of the formats the module doc lists, and its digits.
pub fn phone() -> impl Strategy<Value = (String, String)> {
    let nanp = || {
        (
            prop::char::range('2', '9'),
            digits_of(2),
            digits_of(3),
            digits_of(4),
        )
    };
    prop_oneof![
        // +CC and groups: +44 7700 900123, +1-202-555-0143, +33 6 12 34 56 78
        (
            prop::char::range('1', '9'),
            digits_of(1),
            prop::collection::vec((1usize..=4).prop_flat_map(digits_of), 2..=4),
            select(vec![" ", "-"])
        )
            .prop_filter("E.164 length", |(_, cc, groups, _)| {
                let n = 1 + cc.len() + groups.iter().map(String::len).sum::<usize>();
                (8..=15).contains(&n)
            })
            .prop_map(|(first, cc, groups, join)| format!(
                "+{first}{cc}{join}{}",
                groups.join(join)
            )),
        nanp().prop_map(|(a, b, c, d)| format!("({a}{b}) {c}-{d}")),
        (nanp(), select(vec!["-", ".", " "]))
            .prop_map(|((a, b, c, d), j)| format!("{a}{b}{j}{c}{j}{d}")),
        // Bare: a real North American exchange starts with 2-9.
        (nanp(), prop::char::range('2', '9'))
            .prop_map(|((a, b, c, d), x)| format!("{a}{b}{x}{}{d}", &c[1..])),
        (digits_of(4), digits_of(6)).prop_map(|(a, b)| format!("0{a} {b}")),
        (digits_of(10)).prop_map(|d| format!("0{d}")),
        (prop::char::range('1', '9'), digits_of(8)).prop_map(|(a, d)| {
            let pairs: Vec<String> = d
                .as_bytes()
                .chunks(2)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            format!("0{a} {}", pairs.join(" "))
        }),
    ]
    .prop_map(|written| {
        let digits = written.chars().filter(char::is_ascii_digit).collect();
        (written, digits)
    })
}

/// An address of the usual shape: `first.last+tag@sub.example.com`.
pub fn email() -> impl Strategy<Value = String> {
    (
        "[a-z0-9][a-z0-9._%+-]{0,15}",
        prop::collection::vec("[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", 1..=3),
        "[a-z]{2,6}",
    )
        .prop_map(|(local, labels, tld)| format!("{local}@{}.{tld}", labels.join(".")))
}

/// Arbitrary text: any characters, mostly printable, some digits and punctuation.
pub fn surrounding() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>(),
            3 => prop::char::range('a', 'z'),
            2 => prop::char::range('0', '9'),
            2 => select(vec![' ', '.', ',', '-', '(', ')', '+', '#', '@', '/', '\n']),
        ],
        0..40,
    )
    .prop_map(String::from_iter)
}
