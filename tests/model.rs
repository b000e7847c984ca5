//! The shipped model in `model/`, run by tract the way the service runs it, reproduces
//! onnxruntime's probabilities and the model card's test metrics, and keeps the reference
//! system's targeted fixes, in both execution forms: the f32 form to onnxruntime's last digits,
//! the int8 form within its stated tolerance (micro-F1 within 0.005 of the card, no probability
//! moved by more than 0.1; `make eval-forms` holds every set to the same).

use std::sync::LazyLock;

use serde::Deserialize;
use tagbeez::classifier::{
    Classifier, Cpu, FormChoice, InferenceForm, Labels, LoadOptions, ModelFiles, Prediction,
};

fn model_file(name: &str) -> Vec<u8> {
    let path = format!("{}/model/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

static FILES: LazyLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = LazyLock::new(|| {
    (
        model_file("tagger.onnx"),
        model_file("tokenizer.json"),
        model_file("labels.json"),
    )
});

fn load(form: InferenceForm) -> Classifier {
    let files = ModelFiles {
        onnx: &FILES.0,
        tokenizer_json: &FILES.1,
        labels_json: &FILES.2,
    };
    let options = LoadOptions {
        form: FormChoice::Forced(form),
        per_length_plans: None,
    };
    Classifier::load_with(files, options).expect("the shipped model loads")
}

static CLASSIFIER: LazyLock<Classifier> = LazyLock::new(|| load(InferenceForm::F32));
static INT8: LazyLock<Classifier> = LazyLock::new(|| load(InferenceForm::Int8));

/// Both forms, for the tests that must hold in each.
fn forms() -> [&'static Classifier; 2] {
    [&CLASSIFIER, &INT8]
}

/// One line of `model/reports/test_probabilities.onnxruntime.jsonl`, written by
/// `make model` from onnxruntime on the same ONNX file.
#[derive(Deserialize)]
struct Reference {
    message: String,
    tags: Vec<String>,
    probabilities: Vec<f32>,
}

fn references() -> Vec<Reference> {
    let text =
        String::from_utf8(model_file("reports/test_probabilities.onnxruntime.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("reference line"))
        .collect()
}

fn selected_tags(c: &Classifier, message: &str) -> Vec<String> {
    let prediction = &c.classify_batch(&[message]).unwrap()[0];
    c.selected(prediction)
        .into_iter()
        .map(|i| c.labels().tags[i].clone())
        .collect()
}

#[test]
fn label_file_was_written_for_this_onnx_file() {
    let labels = Labels::from_json(&FILES.2).unwrap();
    assert!(
        labels.matches_onnx(&FILES.0),
        "labels.json onnx_sha256 is stale"
    );
    assert!(!labels.matches_onnx(b"some other model"));
}

/// The largest probability change against the first `limit` references, and micro-F1 on their
/// labels.
fn against_references(c: &Classifier, limit: usize) -> (f32, f64) {
    let mut refs = references();
    assert!(
        refs.len() > 400,
        "the test split has {} messages",
        refs.len()
    );
    refs.truncate(limit);
    let tags = &c.labels().tags;
    let (mut tp, mut fp, mut fn_) = (0u32, 0u32, 0u32);
    let mut worst = 0f32;
    // Batches of 32, padded to their longest message: the same batching the reference used.
    for chunk in refs.chunks(32) {
        let messages: Vec<&str> = chunk.iter().map(|r| r.message.as_str()).collect();
        let predictions: Vec<Prediction> = c.classify_batch(&messages).unwrap();
        for (r, p) in chunk.iter().zip(&predictions) {
            for (got, want) in p.probabilities.iter().zip(&r.probabilities) {
                worst = worst.max((got - want).abs());
            }
            let picked = c.selected(p);
            for (i, tag) in tags.iter().enumerate() {
                let truth = r.tags.contains(tag);
                let pred = picked.contains(&i);
                tp += u32::from(truth && pred);
                fp += u32::from(!truth && pred);
                fn_ += u32::from(truth && !pred);
            }
        }
    }
    (worst, f64::from(2 * tp) / f64::from(2 * tp + fp + fn_))
}

fn card_test_micro_f1(c: &Classifier) -> f64 {
    c.labels().file.metrics["test"]["micro_f1"]
        .as_f64()
        .unwrap()
}

#[test]
fn tract_reproduces_onnxruntime_and_the_cards_test_micro_f1() {
    let c = &*CLASSIFIER;
    let (worst, micro_f1) = against_references(c, usize::MAX);
    assert!(worst <= 1e-3, "tract differs from onnxruntime by {worst}");
    let card = card_test_micro_f1(c);
    assert!(
        ((micro_f1 * 1e4).round() / 1e4 - card).abs() < 1e-9,
        "tract micro-F1 {micro_f1:.4} != card {card}"
    );
}

/// On a CPU without fast int8 dot products (an AVX2-only x86), tract's int8 kernel is some 50
/// times slower than f32 (about 0.5 s a message): there the whole split would add minutes to
/// `make test`, so only its first 64 messages are held to the probability tolerance. The
/// arithmetic is the same on every CPU (the integer products are exact), and the whole split is
/// checked wherever the form would run.
#[test]
fn the_int8_form_keeps_the_cards_test_micro_f1() {
    let c = &*INT8;
    assert_eq!(c.selection().form, InferenceForm::Int8);
    let fast = Cpu::detect().int8_dot.is_some();
    let (worst, micro_f1) = against_references(c, if fast { usize::MAX } else { 64 });
    assert!(worst <= 0.1, "a probability moved by {worst}");
    if !fast {
        eprintln!("no fast int8 on this CPU: 64 messages checked, micro-F1 not compared");
        return;
    }
    let card = card_test_micro_f1(c);
    assert!(
        (micro_f1 - card).abs() <= 0.005,
        "int8 micro-F1 {micro_f1:.4} against the card's {card}"
    );
}

#[test]
fn one_message_alone_scores_as_it_does_inside_a_padded_batch() {
    for c in forms() {
        one_message_alone_scores_as_inside_a_batch(c);
    }
}

fn one_message_alone_scores_as_inside_a_batch(c: &Classifier) {
    let short = "ok I'll take the blue one";
    let long = "hi there, I have been looking at your oak dining tables for a while and I think \
                the extendable one might fit our kitchen, do you deliver to Leeds?";
    let alone = c.classify_batch(&[short]).unwrap();
    let batched = c.classify_batch(&[long, short]).unwrap();
    assert!(batched[0].tokens > alone[0].tokens);
    for (a, b) in alone[0].probabilities.iter().zip(&batched[1].probabilities) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

#[test]
fn long_messages_are_truncated_and_say_so() {
    let c = &*CLASSIFIER;
    let long = "I really love this jacket and want to buy it now ".repeat(60);
    let p = &c.classify_batch(&[&long, "hello"]).unwrap();
    assert!(p[0].truncated);
    assert_eq!(p[0].tokens, c.labels().file.max_tokens);
    assert!(!p[1].truncated);
}

/// The reference system's targeted fixes and this project's hard negatives (LABELING.md).
#[test]
fn reference_fixes_and_hard_negatives_hold() {
    let cases: &[(&str, &[&str])] = &[
        ("I want to buy without discount", &["Hot-buyer"]),
        ("Window shopping for ideas", &["Window-shopper"]),
        ("I saved items to buy when I get paid", &["Wishlist-user"]),
        ("no coupon needed, buying now", &["Hot-buyer"]),
        ("not buying, just looking", &["Window-shopper"]),
        ("where is my discounted order", &[]),
    ];
    for c in forms() {
        let form = c.selection().form;
        for (message, want) in cases {
            assert_eq!(selected_tags(c, message), *want, "{form}: {message}");
        }
        let not_new = selected_tags(c, "I'm not new here");
        assert!(
            !not_new.contains(&"First-time-visitor".to_string()),
            "{form}"
        );
    }
}

/// The shipped tokenizer is pruned with the model (`make prune`); a tokenizer with more pieces
/// than the embedding table (the full base vocabulary beside a pruned model, say) must fail
/// at load with a message, not on the first message that holds a dropped piece.
#[test]
fn a_tokenizer_with_pieces_the_model_has_no_row_for_is_refused_at_load() {
    let mut tokenizer: serde_json::Value = serde_json::from_slice(&FILES.1).unwrap();
    let vocab = tokenizer["model"]["vocab"].as_object_mut().unwrap();
    let pieces = vocab.len();
    assert!(pieces < 30_522, "the shipped vocabulary is pruned");
    for extra in 0..3 {
        vocab.insert(format!("zzextra{extra}"), (pieces + extra).into());
    }
    let bytes = serde_json::to_vec(&tokenizer).unwrap();
    let loaded = Classifier::load(ModelFiles {
        onnx: &FILES.0,
        tokenizer_json: &bytes,
        labels_json: &FILES.2,
    });
    let Err(err) = loaded else {
        panic!("a tokenizer with three pieces too many loaded");
    };
    let err = err.to_string();
    let expected = format!(
        "{} pieces but the model's embedding table only {pieces} rows",
        pieces + 3
    );
    assert!(err.contains(&expected), "{err}");
}
