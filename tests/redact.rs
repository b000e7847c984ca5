//! PII redaction (`tagbeez::redact`) on its real behaviour: each kind found in the shapes
//! customers write it, the everyday numbers of shop chat left alone, properties over generated
//! card numbers, e-mail addresses and phone numbers in arbitrary text, no panic and linear
//! time on 4 MB inputs; then the two places it is wired in here: every log line the
//! subscriber writes, and the feedback text the service stores.
//!
//! ```text
//! cargo test --profile local --test redact
//! ```

#[path = "support/pii.rs"]
mod pii;

use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Value};
use tagbeez::classifier::{embedded, Classifier};
use tagbeez::config::Config;
use tagbeez::feedback::Feedback;
use tagbeez::redact::{redact, Counts, Redacted};
use tagbeez::service::Tagger;
use tagbeez::store::{MemoryFeedback, MemoryStore};
use tagbeez::telemetry;

use pii::{card, digits_of, email, phone, surrounding};

fn counts(email: usize, phone: usize, card: usize, iban: usize, address: usize) -> Counts {
    Counts {
        email,
        phone,
        card,
        iban,
        address,
    }
}

/// `(input, expected output)`, each checked, with one replacement of `kind` in each.
fn check_each(cases: &[(&str, &str)], one: Counts) {
    for (input, expected) in cases {
        let out = redact(input);
        assert_eq!(out.text, *expected, "input: {input:?}");
        assert_eq!(out.counts, one, "input: {input:?}");
    }
}

/// Inputs redact returns unchanged.
fn kept(cases: &[&str]) {
    for input in cases {
        let out = redact(input);
        assert_eq!(out.text, *input, "should stay: {input:?}");
        assert_eq!(out.counts.total(), 0, "{input:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Each kind, positives and negatives.

#[test]
fn emails() {
    check_each(
        &[
            ("mail me at jane.doe@example.com", "mail me at [EMAIL]"),
            ("JANE+shop@Example.co.uk, thanks", "[EMAIL], thanks"),
            ("<o'brien_2@mail.example.ie>", "<[EMAIL]>"),
            ("josé@correo.es?", "[EMAIL]?"),
            ("a@b.io.", "[EMAIL]."),
        ],
        counts(1, 0, 0, 0, 0),
    );
    kept(&[
        "2 for 3@5.99 each",
        "email me @ the shop",
        "@handle on twitter",
        "user@localhost",
    ]);
}

#[test]
fn cards() {
    check_each(
        &[
            (
                "card 4111 1111 1111 1111 exp 12/27",
                "card [CARD] exp 12/27",
            ),
            ("4111-1111-1111-1111", "[CARD]"),
            ("4111111111111111.", "[CARD]."),
            ("amex 3782 822463 10005", "amex [CARD]"),
            ("visa 4222222222222 (13 digits)", "visa [CARD] (13 digits)"),
            ("maestro 6759 6498 2643 8453 011", "maestro [CARD]"),
            ("19: 6304 0000 0000 0000 018", "19: [CARD]"),
            // Digits before it form one run with it; the card is still found whole.
            ("qty 2 5555 5555 5555 4444", "qty 2 [CARD]"),
        ],
        counts(0, 0, 1, 0, 0),
    );
    kept(&[
        // The same digits with the last one changed: not Luhn-valid, so not a card.
        "4111 1111 1111 1112",
        "tracking 1234567890123456",
        // Glued to letters: a code, not a card.
        "ref4111111111111111",
        "4111111111111111x",
    ]);
}

#[test]
fn ibans() {
    check_each(
        &[
            (
                "pay GB82 WEST 1234 5698 7654 32 please",
                "pay [IBAN] please",
            ),
            ("DE89370400440532013000", "[IBAN]"),
            ("iban: fr14 2004 1010 0505 0001 3m02 606.", "iban: [IBAN]."),
            ("NL91ABNA0417164300,", "[IBAN],"),
            ("BE68-5390-0754-7034", "[IBAN]"),
        ],
        counts(0, 0, 0, 1, 0),
    );
    // One digit changed: mod-97 fails, so it is no IBAN (its digit groups still read as a phone
    // number); the right checksum with the wrong length for the country; no such country.
    for not_iban in [
        "GB82 WEST 1234 5698 7654 33",
        "GB82WEST123456987654321",
        "XX82WEST12345698765432",
    ] {
        assert_eq!(redact(not_iban).counts.iban, 0, "{not_iban}");
    }
    kept(&["size EU42 UK8", "GB82WEST123456987654321"]);
}

#[test]
fn phones() {
    check_each(
        &[
            ("call +44 7700 900123 today", "call [PHONE] today"),
            ("(555) 123-4567", "[PHONE]"),
            ("555-123-4567.", "[PHONE]."),
            ("mobile 07700 900123", "mobile [PHONE]"),
            ("+1-202-555-0143", "[PHONE]"),
            ("+1 (202) 555-0143", "[PHONE]"),
            ("+44 (0)20 7946 0958", "[PHONE]"),
            ("+447700900123", "[PHONE]"),
            ("0044 7700 900123", "[PHONE]"),
            ("555.123.4567", "[PHONE]"),
            ("01 23 45 67 89", "[PHONE]"),
            ("06-12345678", "[PHONE]"),
            ("+33 6 12 34 56 78", "[PHONE]"),
            ("my number is 2025550143", "my number is [PHONE]"),
            ("or 12025550143", "or [PHONE]"),
            ("phone #555 123 4567", "phone #[PHONE]"),
            ("my # is 555-123-4567", "my # is [PHONE]"),
            ("07700900123", "[PHONE]"),
            ("tel:+4915123456789", "tel:[PHONE]"),
            // After a date, the date stays and the number goes.
            ("2024-05-01 555-123-4567", "2024-05-01 [PHONE]"),
        ],
        counts(0, 1, 0, 0, 0),
    );
    kept(&[
        "order #12345678",
        "order 123456",
        "order #1234567890",
        "Order no. 2025550143",
        "tracking number: 2025550143",
        "model # 110 4751 4753",
        "my model number is 795-51086-011",
        // Bare runs that no phone plan uses: 11-digit model numbers, epoch seconds.
        "Kenmore 11078890800",
        "fits 79092423302",
        "5551234567",
        "10000-20000",
        "sizes 10 12 14 16 18",
        "1733598245",
        "ZIP 02134-1234",
        "192.168.100.200",
        "version 1.2.3.4",
        "pi is 3.14159265",
        "2024-05-01 10:30",
        "01/05/2024 12:30",
        // Ids in logs: hex groups joined by dashes, whatever digits they hold.
        "request 3f2a6b1c-1234-4567-8901-123456789012",
        "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "trace 1-5759e988-bd862e3fe1be46a994272793",
        "model 795.72043.112",
        "mesh 60/100/250/500",
        "£259.99 764/3893",
    ]);
}

#[test]
fn addresses() {
    check_each(
        &[
            (
                "ship to 221B Baker Street please",
                "ship to [ADDRESS] please",
            ),
            ("12 Main St, Apt 4, Springfield, IL 62704", "[ADDRESS]"),
            ("I live at 12 baker street.", "I live at [ADDRESS]."),
            ("350 5th Ave, New York, NY 10118!", "[ADDRESS]!"),
            (
                "1600 Pennsylvania Avenue NW, Washington, DC 20500",
                "[ADDRESS]",
            ),
            ("221B Baker Street, London NW1 6XE", "[ADDRESS]"),
            ("deliver to 4 Elm Close", "deliver to [ADDRESS]"),
            ("10 rue de Rivoli, 75001 Paris", "[ADDRESS]"),
            ("Hauptstraße 5, 10115 Berlin", "[ADDRESS]"),
            ("Berliner Str. 12", "[ADDRESS]"),
            ("Via Roma 10, 00184 Roma", "[ADDRESS]"),
            ("Calle Mayor, 5", "[ADDRESS]"),
            ("PO Box 1234", "[ADDRESS]"),
            // Only the span: the rest of the line and message stay.
            (
                "Hi! Send it to 7 Oak Rd Suite 4 and call me\nthanks",
                "Hi! Send it to [ADDRESS] and call me\nthanks",
            ),
        ],
        counts(0, 0, 0, 0, 1),
    );
    kept(&[
        "it's 5 minutes down the road",
        "we have 2 tennis court shoes",
        "3 shops close by",
        "a 2 Mile Drive",
        "it is 1 way street",
        "ship via Amazon 2 days",
        "Spring 2024 collection",
        "string 5",
        "my xbox 360 S hard drive",
        "a 2 tb usb drive",
    ]);
}

#[test]
fn shop_talk_stays() {
    kept(&[
        "$1,299.99",
        "£1.299,00 or 1 299 €",
        "Is it 20% off?",
        "delivered 2024-05-01",
        "ordered on 01/05/2024 at 10:30",
        "open 9:00-17:30",
        "size UK 10, EU 44",
        "2 x 3 pack",
        "order #12345678",
        "order 123456",
        "SKU 123-456",
        "Model 5-1234-56",
        "can I get 3 for £10?",
        "I'm 5'10\" tall",
        "between 1000 and 2000 dollars",
    ]);
}

#[test]
fn mixed_counts_and_order() {
    let out = redact(
        "Jane, jane@x.io, +44 7700 900123, 4111 1111 1111 1111, GB82 WEST 1234 5698 7654 32, \
         12 Baker Street",
    );
    assert_eq!(
        out,
        Redacted {
            text: "Jane, [EMAIL], [PHONE], [CARD], [IBAN], [ADDRESS]".into(),
            counts: counts(1, 1, 1, 1, 1),
        }
    );
    assert_eq!(out.counts.total(), 5);
    // An e-mail address full of digits is one e-mail address, not a card.
    assert_eq!(redact("4111111111111111@x.com").text, "[EMAIL]");
    assert_eq!(
        serde_json::to_value(out.counts).unwrap(),
        json!({"email": 1, "phone": 1, "card": 1, "iban": 1, "address": 1})
    );
}

// ---------------------------------------------------------------------------------------------
// Properties.

/// What joins the PII to the text around it: a space, a newline, or punctuation and a space.
fn gap() -> impl Strategy<Value = &'static str> {
    select(vec![" ", "\n", ", ", ": ", "; "])
}

/// The output's ASCII digits, every separator removed.
fn digits_in(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// Text built from pieces that come near every pattern: digit groups and their joiners, `+`,
/// `@`, street words, order cues, IBAN heads, the tokens themselves.
fn soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => (1usize..=6).prop_flat_map(digits_of),
        3 => select(vec![
            " ", " ", "-", ".", "/", "(", ")", "+", "@", "#", ",", "\n", "\\n", "'", "_", "x",
            "00", "0", "1", "4111", "Street", "St", "street", "Main", "baker", "Ave", "Close",
            "via", "Roma", "rue", "de", "la", "Paix", "Hauptstraße", "Str.", "Apt", "London",
            "NW1 6XE", "order", "no.", "DE89", "GB82 WEST", "jane", "example.com", "a.b",
            "[PHONE]", "[CARD]", "[EMAIL]", "[ADDRESS]", "[IBAN]", "é", "ß", "👩🏽‍💻", "\u{0}",
        ]).prop_map(str::to_owned),
        1 => card().prop_map(|c| c.0),
        1 => phone().prop_map(|p| p.0),
        1 => email(),
    ];
    prop::collection::vec(piece, 0..30).prop_map(|p| p.concat())
}

/// Cases per property: `REDACT_CASES`, 1500 by default (a few seconds in all).
fn cases() -> u32 {
    std::env::var("REDACT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500)
}

proptest! {
    // No failure file: a failure prints its shrunk input, which is the regression to add above.
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_card_in_any_text_is_gone(
        before in surrounding(),
        (written, digits) in card(),
        (g1, g2) in (gap(), gap()),
        after in surrounding(),
    ) {
        let out = redact(&format!("{before}{g1}{written}{g2}{after}"));
        prop_assert!(!out.text.contains(&written), "{out:?}");
        prop_assert!(!digits_in(&out.text).contains(&digits), "{out:?}");
        prop_assert!(out.counts.card >= 1, "{out:?}");
    }

    #[test]
    fn an_email_in_any_text_is_gone(
        before in surrounding(),
        address in email(),
        (g1, g2) in (gap(), gap()),
        after in surrounding(),
    ) {
        let out = redact(&format!("{before}{g1}{address}{g2}{after}"));
        prop_assert!(!out.text.contains(&address), "{out:?}");
        prop_assert!(out.counts.email >= 1, "{out:?}");
    }

    #[test]
    fn a_phone_number_in_any_text_is_gone(
        before in surrounding(),
        (written, digits) in phone(),
        (g1, g2) in (gap(), gap()),
        after in surrounding(),
    ) {
        // The one exception by design: a national number right after an order cue on the
        // same line (`#` before a bare run; `model`, `ref`, ... before any) is kept as an
        // order or model number (the phone module's doc). So a bare number, or one after a
        // word of three letters or more, starts its own line here.
        let bare = written.chars().all(|c| c.is_ascii_digit());
        let line = before.rsplit('\n').next().unwrap_or_default();
        let trimmed = line.trim_end_matches(|c: char| c.is_whitespace() || ":.#".contains(c));
        let worded = trimmed.len() >= 3
            && trimmed.as_bytes()[trimmed.len() - 3..].iter().all(u8::is_ascii_alphabetic);
        let g1 = if bare || (worded && !written.starts_with('+')) { "\n" } else { g1 };
        let out = redact(&format!("{before}{g1}{written}{g2}{after}"));
        prop_assert!(!out.text.contains(&written), "{out:?}");
        prop_assert!(!digits_in(&out.text).contains(&digits), "{out:?}");
        prop_assert!(out.counts.phone + out.counts.card >= 1, "{out:?}");
    }

    #[test]
    fn redaction_is_idempotent_on_pii_soup(text in soup()) {
        let once = redact(&text);
        let twice = redact(&once.text);
        prop_assert_eq!(&twice.text, &once.text, "input {:?}", text);
        prop_assert_eq!(twice.counts.total(), 0);
    }

    #[test]
    fn any_string_neither_panics_nor_changes_twice(text in any::<String>()) {
        let once = redact(&text);
        prop_assert_eq!(redact(&once.text).text, once.text);
    }
}

// ---------------------------------------------------------------------------------------------
// Big inputs: no panic, and time in proportion to the length.

/// A deterministic 4 MB-ish text of `pieces` cycled by a small LCG.
fn big(pieces: &[&str], bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 64);
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    while out.len() < bytes {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        out.push_str(pieces[(state >> 33) as usize % pieces.len()]);
    }
    out
}

#[test]
fn four_megabytes_of_anything_is_redacted_in_linear_time() {
    const MB: usize = 1 << 20;
    let inputs: Vec<(&str, Vec<&str>)> = vec![
        (
            "unicode chat",
            vec![
                "hello ",
                "ça va ",
                "straße ",
                "日本語 ",
                "👩🏽‍💻",
                "\u{200d}",
                "\n",
                "١٢٣ ",
                "x@y ",
                "+",
                "(",
                ")",
                "#",
                "3 ",
                "12 ",
                "Main ",
                "Street ",
                ".",
                ", ",
            ],
        ),
        ("one long digit run", vec!["1 ", "2-", "3.", "4 (", "5) "]),
        (
            "every kind, repeated",
            vec![
                "4111 1111 1111 1111 ",
                "+44 7700 900123 ",
                "jane@example.com ",
                "DE89 3704 0044 0532 0130 00 ",
                "12 Baker Street, London NW1 6XE\n",
                "order #12345678 ",
            ],
        ),
        ("at signs", vec!["a@", "b.", "@@", "é@"]),
        (
            "street words",
            vec!["1 ", "Main ", "main ", "Street ", "Rd ", "via ", "Roma "],
        ),
    ];
    for (name, pieces) in inputs {
        let small = big(&pieces, MB);
        let large = big(&pieces, 4 * MB);
        let t_small = time(|| redact(&small));
        let (t_large, out) = timed(|| redact(&large));
        let t_again = time(|| redact(&out.text));
        println!(
            "{name}: 1 MB {:.0} ms, 4 MB {:.0} ms ({:.1}x), again on the output {:.0} ms; {:?}",
            ms(t_small),
            ms(t_large),
            ms(t_large) / ms(t_small).max(1.0),
            ms(t_again),
            out.counts
        );
        // Generous bounds for a loaded 2-core machine; a quadratic step would blow far past
        // them (4 MB is 4 million steps per pass; quadratic, 10^13).
        assert!(t_large < Duration::from_secs(30), "{name}: {t_large:?}");
        assert!(
            ms(t_large) < 12.0 * ms(t_small).max(50.0),
            "{name}: 1 MB {t_small:?}, 4 MB {t_large:?}"
        );
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed(), out)
}

fn time<T>(f: impl FnOnce() -> T) -> Duration {
    timed(f).0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------------------------
// Where it is wired in: log lines and stored feedback.

/// A writer the log subscriber and the test share.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn every_log_line_is_redacted_and_stays_json() {
    let logs = Buffer::default();
    let writer = logs.clone();
    let subscriber = telemetry::logging::subscriber("info", move || writer.clone());
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request", customer = "jane.doe@example.com");
        let _entered = span.enter();
        tracing::info!(
            card = "4111 1111 1111 1111",
            phone = 2_025_550_143u64,
            "customer wrote: \"call me on +44 7700 900123\"\nor mail jane.doe@example.com"
        );
        tracing::warn!(
            error = "store refused 12 Baker Street, London NW1 6XE",
            "failed"
        );
        tracing::info!(tags = 3, "nothing to hide on 2024-05-01");
    });
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    for pii in [
        "jane.doe@example.com",
        "4111",
        "7700",
        "900123",
        "2025550143",
        "Baker",
        "NW1",
    ] {
        assert!(!text.contains(pii), "{pii} in {text}");
    }
    let first = &lines[0];
    assert_eq!(
        first["fields"]["message"],
        "customer wrote: \"call me on [PHONE]\"\nor mail [EMAIL]"
    );
    assert_eq!(first["fields"]["card"], "[CARD]");
    assert_eq!(first["fields"]["phone"], "[PHONE]");
    assert_eq!(first["span"]["customer"], "[EMAIL]");
    assert_eq!(lines[1]["fields"]["error"], "store refused [ADDRESS]");
    assert_eq!(lines[2]["fields"]["tags"], 3);
    assert_eq!(
        lines[2]["fields"]["message"],
        "nothing to hide on 2024-05-01"
    );
}

static CLASSIFIER: LazyLock<Arc<Classifier>> = LazyLock::new(|| {
    Arc::new(Classifier::load(embedded::model_files()).expect("the embedded model loads"))
});

#[tokio::test]
async fn feedback_is_stored_redacted() {
    let tagger = Tagger::new(
        Arc::clone(&CLASSIFIER),
        Arc::new(MemoryStore::new()),
        Config::from_pairs(&[]).unwrap(),
    )
    .with_feedback(Arc::new(MemoryFeedback::default()));
    let feedback: Feedback = serde_json::from_value(json!({
        "message": "  buy now, ship to 12 Baker Street, London NW1 6XE, card 4111 1111 1111 1111, \
                    jane@example.com  ",
        "tags": ["Hot-buyer"],
    }))
    .unwrap();
    tagger.feedback(feedback).await.expect("stored");
    let (records, _) = tagger.feedback_store().page(None).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].message,
        "buy now, ship to [ADDRESS], card [CARD], [EMAIL]"
    );
}
