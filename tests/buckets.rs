//! What the speed-ups could break: single messages run on a plan optimised for their length
//! bucket (padded to it), and batches are split by length into sub-batches. Both must give the
//! probabilities of the one symbolic plan on the unpadded message, in input order, in each
//! execution form: within 1e-4 in f32; within 0.02 in int8. The int8 form quantizes activations
//! per row, so neither the padding nor a message's neighbours in a batch enter a message's
//! ranges; but two plans add f32 values in different orders, a last-bit difference can move a
//! value across a rounding boundary of the next quantization, and six layers carry that on
//! (measured: up to 0.012 on these messages, on a 150-token one).

use std::sync::LazyLock;

use tagbeez::classifier::{
    embedded, sigmoid, Classifier, Engine, FormChoice, InferenceForm, LabelFile, LoadOptions,
    TextEncoder, BUCKETS, INT8_PLAN_LENGTHS, MAX_SUB_BATCH,
};

/// One form's length-bucketed classifier and its reference engine (the engine as it was
/// before buckets: one plan with symbolic batch and sequence).
struct Form {
    bucketed: Classifier,
    plain: Engine,
    tolerance: f32,
    /// The lengths single messages get a plan of in this form.
    lengths: &'static [usize],
}

fn bucketed(form: InferenceForm) -> Classifier {
    let options = LoadOptions {
        form: FormChoice::Forced(form),
        per_length_plans: Some(true),
    };
    Classifier::load_with(embedded::model_files(), options).expect("the model loads")
}

fn form(form: InferenceForm) -> Form {
    let onnx = embedded::model_files().onnx;
    Form {
        bucketed: bucketed(form),
        plain: Engine::load(onnx, false, form).expect("the model loads"),
        tolerance: match form {
            InferenceForm::F32 => 1e-4,
            InferenceForm::Int8 => 0.02,
        },
        lengths: match form {
            InferenceForm::F32 => &BUCKETS,
            InferenceForm::Int8 => &INT8_PLAN_LENGTHS,
        },
    }
}

static F32: LazyLock<Form> = LazyLock::new(|| form(InferenceForm::F32));
static INT8: LazyLock<Form> = LazyLock::new(|| form(InferenceForm::Int8));

static ENCODER: LazyLock<TextEncoder> = LazyLock::new(|| {
    let labels: LabelFile =
        serde_json::from_slice(embedded::model_files().labels_json).expect("labels.json");
    TextEncoder::from_bytes(embedded::model_files().tokenizer_json, labels.max_tokens)
        .expect("tokenizer.json")
});

/// Messages of 3 to 128+ tokens, to land in every bucket and past the last one's edge.
fn messages() -> Vec<String> {
    let words = "do you have this jacket in blue and is there any discount code for first orders \
                 i am just looking around today maybe later add it to my wishlist please";
    let words: Vec<&str> = words.split(' ').filter(|w| !w.is_empty()).collect();
    (0..40)
        .map(|i| {
            let n = [1, 2, 5, 9, 14, 20, 27, 33, 45, 60, 90, 150][i % 12] + i / 12;
            (0..n)
                .map(|k| words[(k * 7 + i) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The reference: each message alone, unpadded, on the symbolic plan.
fn reference(plain: &Engine, message: &str) -> Vec<f32> {
    let encoded = ENCODER.encode_batch(&[message]).expect("encodes");
    let (logits, _) = plain.run(&encoded.tokens).expect("runs");
    logits.into_iter().map(sigmoid).collect()
}

fn assert_close(got: &[f32], want: &[f32], tolerance: f32, what: &str) {
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        worst <= tolerance,
        "{what}: off by {worst:e}: {got:?} vs {want:?}"
    );
}

#[test]
fn every_bucket_gives_the_probabilities_of_the_one_symbolic_plan() {
    every_bucket_agrees(&F32);
}

#[test]
fn every_int8_bucket_gives_the_probabilities_of_the_int8_symbolic_plan() {
    every_bucket_agrees(&INT8);
}

fn every_bucket_agrees(form: &Form) {
    let mut buckets_seen = std::collections::BTreeSet::new();
    for message in messages() {
        let got = &form
            .bucketed
            .classify_batch(&[&message])
            .expect("classifies")[0];
        buckets_seen.insert(form.lengths.iter().position(|&b| got.tokens <= b));
        let want = reference(&form.plain, &message);
        assert_close(&got.probabilities, &want, form.tolerance, &message);
    }
    assert!(
        (0..form.lengths.len()).all(|b| buckets_seen.contains(&Some(b))),
        "every bucket was exercised: {buckets_seen:?}"
    );
}

#[test]
fn a_mixed_batch_keeps_its_order_and_its_probabilities() {
    a_mixed_batch_agrees(&F32);
}

#[test]
fn a_mixed_int8_batch_keeps_its_order_and_its_probabilities() {
    a_mixed_batch_agrees(&INT8);
}

fn a_mixed_batch_agrees(form: &Form) {
    let messages = messages();
    // Longer than one sub-batch, lengths interleaved so that sorting reorders them.
    let mut batch: Vec<&str> = messages.iter().map(String::as_str).collect();
    batch.extend(messages.iter().rev().map(String::as_str));
    assert!(batch.len() > MAX_SUB_BATCH);
    let got = form.bucketed.classify_batch(&batch).expect("classifies");
    assert_eq!(got.len(), batch.len());
    for (message, prediction) in batch.iter().zip(&got) {
        let alone = ENCODER.encode_batch(&[message]).expect("encodes");
        assert_eq!(prediction.tokens, alone.lengths[0], "{message}");
        assert_close(
            &prediction.probabilities,
            &reference(&form.plain, message),
            form.tolerance,
            message,
        );
    }
}

#[test]
fn the_old_single_padded_batch_agrees_too() {
    single_padded_batch_agrees(&F32);
}

#[test]
fn a_single_padded_int8_batch_agrees_too() {
    single_padded_batch_agrees(&INT8);
}

fn single_padded_batch_agrees(form: &Form) {
    let messages = messages();
    let batch: Vec<&str> = messages.iter().map(String::as_str).collect();
    let padded = ENCODER.encode_batch(&batch).expect("encodes");
    let (logits, width) = form.plain.run(&padded.tokens).expect("runs");
    let got = form.bucketed.classify_batch(&batch).expect("classifies");
    for ((row, prediction), message) in logits.chunks(width).zip(&got).zip(&batch) {
        let want: Vec<f32> = row.iter().copied().map(sigmoid).collect();
        assert_close(&prediction.probabilities, &want, form.tolerance, message);
    }
}

#[test]
fn warming_builds_every_plan_and_changes_nothing() {
    for form in [InferenceForm::F32, InferenceForm::Int8] {
        let classifier = bucketed(form);
        let message = "is there a discount code for this";
        let before = classifier.classify_batch(&[message]).expect("classifies");
        classifier.warm().expect("every plan optimises");
        let after = classifier.classify_batch(&[message]).expect("classifies");
        assert_eq!(before, after, "{form}");
    }
}
