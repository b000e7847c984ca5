//! Target 3: the tokenizer path, odd Unicode through `Classifier::classify_batch` and
//! `/classify-message`.

use std::sync::LazyLock;

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::json;
use tagbeez::classifier::{embedded, TextEncoder};

use crate::router::{self, assert_well_formed, CLASSIFIER};
use crate::strategies::text;
use crate::{assert_client_error, function, fuzz, runtime};

/// The model's tokenizer without truncation: each text's full length in tokens.
static FULL: LazyLock<TextEncoder> = LazyLock::new(|| {
    TextEncoder::from_bytes(embedded::model_files().tokenizer_json, 1 << 20)
        .expect("the embedded tokenizer loads")
});

fn unicode_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => text(1..8, 400),
        2 => text(8..60, 5_000),
        1 => (4_990..5_010usize, text(1..4, 100)).prop_map(|(n, t)| t.chars().cycle().take(n).collect()),
    ]
}

#[test]
fn fuzz_tokenizer_path() {
    let rt = runtime();
    let app = function().0;
    let labels = CLASSIFIER.labels();
    let max_tokens = labels.file.max_tokens;
    let max_chars = router::config(&[]).max_message_chars;
    fuzz("tokenizer", 0.006, vec(unicode_text(), 1..4), |texts| {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let predictions = CLASSIFIER
            .classify_batch(&refs)
            .unwrap_or_else(|e| panic!("classify_batch failed: {e}"));
        assert_eq!(predictions.len(), texts.len());
        for (text, p) in texts.iter().zip(&predictions) {
            assert_eq!(p.probabilities.len(), labels.tags.len());
            assert!(
                p.probabilities
                    .iter()
                    .all(|x| x.is_finite() && (0.0..=1.0).contains(x)),
                "{p:?}"
            );
            let full = FULL
                .encode_batch(&[text.as_str()])
                .expect("encodes")
                .lengths[0];
            assert_eq!(p.tokens, full.min(max_tokens), "{p:?}");
            assert_eq!(p.truncated, full > max_tokens, "{full} tokens: {p:?}");
        }

        // The same text through the route: refused by the service's own rules (a non-space
        // character, at most `max_chars` characters as sent), or the classifier's prediction
        // for the trimmed text.
        let text = &texts[0];
        let reply = rt.block_on(router::post(
            &app,
            "/classify-message",
            &json!({ "message": text }),
        ));
        let trimmed = text.trim();
        let status = reply.status.as_u16();
        if trimmed.is_empty() || text.chars().count() > max_chars {
            let code = if trimmed.is_empty() {
                "empty_message"
            } else {
                "message_too_long"
            };
            assert_eq!(reply.json["error"]["code"], code);
            return assert_client_error(&reply.json, Some(400));
        }
        assert_eq!(status, 200, "{}", reply.json);
        assert_well_formed(&reply.json);
        let direct = if texts.len() == 1 && trimmed == text {
            predictions[0].clone()
        } else {
            CLASSIFIER
                .classify_batch(&[trimmed])
                .expect("classifies")
                .remove(0)
        };
        assert_eq!(reply.json["truncated"], json!(direct.truncated));
        assert_eq!(router::probabilities(&reply.json), direct.probabilities);
        if direct.truncated {
            "200 truncated"
        } else {
            "200"
        }
        .into()
    });
}
