//! What the speed-ups could break: single messages run on a plan optimised for their length
//! bucket (padded to it), and batches are split by length into sub-batches. Both must give the
//! probabilities of the one symbolic plan on the unpadded message (within 1e-4), in input order.

use std::sync::LazyLock;

use tagbeez::classifier::{
    embedded, sigmoid, Classifier, Engine, LabelFile, TextEncoder, BUCKETS, MAX_SUB_BATCH,
};

const TOLERANCE: f32 = 1e-4;

static BUCKETED: LazyLock<Classifier> = LazyLock::new(|| {
    Classifier::load_with_plans(embedded::model_files(), true).expect("the model loads")
});

/// The engine as it was before buckets: one plan with symbolic batch and sequence.
static PLAIN: LazyLock<Engine> =
    LazyLock::new(|| Engine::load(embedded::model_files().onnx, false).expect("the model loads"));

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
fn reference(message: &str) -> Vec<f32> {
    let encoded = ENCODER.encode_batch(&[message]).expect("encodes");
    let (logits, _) = PLAIN.run(&encoded.tokens).expect("runs");
    logits.into_iter().map(sigmoid).collect()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        worst <= TOLERANCE,
        "{what}: off by {worst:e}: {got:?} vs {want:?}"
    );
}

#[test]
fn every_bucket_gives_the_probabilities_of_the_one_symbolic_plan() {
    let mut buckets_seen = std::collections::BTreeSet::new();
    for message in messages() {
        let got = &BUCKETED.classify_batch(&[&message]).expect("classifies")[0];
        buckets_seen.insert(BUCKETS.iter().position(|&b| got.tokens <= b));
        assert_close(&got.probabilities, &reference(&message), &message);
    }
    assert_eq!(
        buckets_seen.len(),
        BUCKETS.len(),
        "every bucket was exercised: {buckets_seen:?}"
    );
}

#[test]
fn a_mixed_batch_keeps_its_order_and_its_probabilities() {
    let messages = messages();
    // Longer than one sub-batch, lengths interleaved so that sorting reorders them.
    let mut batch: Vec<&str> = messages.iter().map(String::as_str).collect();
    batch.extend(messages.iter().rev().map(String::as_str));
    assert!(batch.len() > MAX_SUB_BATCH);
    let got = BUCKETED.classify_batch(&batch).expect("classifies");
    assert_eq!(got.len(), batch.len());
    for (message, prediction) in batch.iter().zip(&got) {
        let alone = ENCODER.encode_batch(&[message]).expect("encodes");
        assert_eq!(prediction.tokens, alone.lengths[0], "{message}");
        assert_close(&prediction.probabilities, &reference(message), message);
    }
}

#[test]
fn the_old_single_padded_batch_agrees_too() {
    let messages = messages();
    let batch: Vec<&str> = messages.iter().map(String::as_str).collect();
    let padded = ENCODER.encode_batch(&batch).expect("encodes");
    let (logits, width) = PLAIN.run(&padded.tokens).expect("runs");
    let got = BUCKETED.classify_batch(&batch).expect("classifies");
    for ((row, prediction), message) in logits.chunks(width).zip(&got).zip(&batch) {
        let want: Vec<f32> = row.iter().copied().map(sigmoid).collect();
        assert_close(&prediction.probabilities, &want, message);
    }
}

#[test]
fn warming_builds_every_plan_and_changes_nothing() {
    let classifier =
        Classifier::load_with_plans(embedded::model_files(), true).expect("the model loads");
    let message = "is there a discount code for this";
    let before = classifier.classify_batch(&[message]).expect("classifies");
    classifier.warm().expect("every plan optimises");
    let after = classifier.classify_batch(&[message]).expect("classifies");
    assert_eq!(before, after);
}
