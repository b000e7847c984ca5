//! Inference cost on the real embedded model: one message at 8, 16, 32 and 64 tokens, a
//! batch of 32 mixed messages (split by length, as the service runs it, beside the one padded
//! batch it used to be), and start-up (`Classifier::load`, and load plus the first answer).
//!
//! Single-threaded, as tract runs a plan by default, and as one Lambda vCPU would.
//! Run with `make bench` (`cargo bench --bench inference`); one run takes about a minute after
//! the build on a 2-core machine. Token counts include `[CLS]` and `[SEP]`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use tagbeez::classifier::{embedded, Classifier, Engine, LabelFile, TextEncoder};

/// One natural shop message per target length, as (target tokens, message).
const SINGLE: [(usize, &str); 4] = [
    (8, "Do you ship to Canada?"),
    (
        16,
        "Is this jacket still on sale, and does it come in medium?",
    ),
    (
        32,
        "I'm looking at the blue running shoes in size 10. If I order today, will they arrive \
         before Friday, and can I return them?",
    ),
    (
        64,
        "Hi there! I bought a coffee machine from you last month and I really like it, so now \
         I'm thinking about getting the matching grinder as a gift for my sister. Is there any \
         discount if I buy two, and could you gift wrap it and ship it to her address before \
         the weekend?",
    ),
];

/// The batch case: these sixteen, twice over, padded to the longest.
const MIXED: [&str; 16] = [
    "Do you ship to Canada?",
    "Any coupon codes today?",
    "Just browsing, thanks.",
    "Add the red one to my wishlist please.",
    "Is this jacket still on sale, and does it come in medium?",
    "I want to buy it now, how fast can you deliver?",
    "First time here, how does your loyalty programme work?",
    "Can you tell me when the black boots are back in stock in size 7?",
    "What's the difference between the two laptop bags, apart from the colour?",
    "I'm looking at the blue running shoes in size 10. If I order today, will they arrive \
     before Friday, and can I return them?",
    "Is the 20% off code still valid on items that are already reduced in the clearance \
     section?",
    "Saving a few of these for later, I'll decide after payday.",
    "Ready to check out, I just need to know if you take PayPal.",
    "Hello! I've never ordered from this shop before. Do I need an account, or can I check \
     out as a guest and still track my parcel?",
    "Hi there! I bought a coffee machine from you last month and I really like it, so now \
     I'm thinking about getting the matching grinder as a gift for my sister. Is there any \
     discount if I buy two, and could you gift wrap it and ship it to her address before \
     the weekend?",
    "Thanks, just looking around for ideas at the moment.",
];

fn load() -> Classifier {
    Classifier::load(embedded::model_files()).expect("the embedded model loads")
}

fn single_message(c: &mut Criterion) {
    let classifier = load();
    let counts: Vec<(usize, usize)> = SINGLE
        .iter()
        .map(|&(target, text)| {
            let p = classifier.classify_batch(&[text]).expect("classifies");
            (target, p[0].tokens)
        })
        .collect();
    eprintln!("single-message token counts (target -> actual): {counts:?}");
    for &(target, actual) in &counts {
        assert!(
            actual.abs_diff(target) <= 2,
            "the {target}-token message has {actual} tokens"
        );
    }

    let mut group = c.benchmark_group("single_message");
    group
        // Linear sampling needs 20 * 21 / 2 = 210 runs: ~5 s at 64 tokens (~25 ms each).
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(1));
    for &(target, text) in &SINGLE {
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{target}_tokens")),
            &text,
            |b, &text| b.iter(|| classifier.classify_batch(black_box(&[text])).unwrap()),
        );
    }
    group.finish();
}

fn batch(c: &mut Criterion) {
    let classifier = load();
    let messages: Vec<&str> = MIXED.iter().chain(MIXED.iter()).copied().collect();
    assert_eq!(messages.len(), 32);
    let tokens: Vec<usize> = classifier
        .classify_batch(&messages)
        .expect("classifies")
        .iter()
        .map(|p| p.tokens)
        .collect();
    eprintln!(
        "batch of {}: {}..={} tokens, padded to {}",
        tokens.len(),
        tokens.iter().min().unwrap(),
        tokens.iter().max().unwrap(),
        tokens.iter().max().unwrap()
    );

    let mut group = c.benchmark_group("batch");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(messages.len() as u64));
    group.bench_function("32_mixed", |b| {
        b.iter(|| classifier.classify_batch(black_box(&messages)).unwrap())
    });
    // Before issue 12: the whole batch padded to its longest message, one inference.
    let files = embedded::model_files();
    let labels: LabelFile = serde_json::from_slice(files.labels_json).expect("labels.json");
    let encoder = TextEncoder::from_bytes(files.tokenizer_json, labels.max_tokens).unwrap();
    let engine = Engine::from_onnx_bytes(files.onnx).unwrap();
    group.bench_function("32_mixed_one_padded_batch", |b| {
        b.iter(|| {
            let encoded = encoder.encode_batch(black_box(&messages)).unwrap();
            engine.run(&encoded.tokens).unwrap()
        })
    });
    group.finish();
}

fn startup(c: &mut Criterion) {
    let mut group = c.benchmark_group("startup");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("load_embedded", |b| {
        b.iter(|| Classifier::load(black_box(embedded::model_files())).unwrap())
    });
    // What a cold start waits for: the plan is optimised on the first request.
    group.bench_function("load_and_first_answer", |b| {
        b.iter(|| {
            let classifier = Classifier::load(black_box(embedded::model_files())).unwrap();
            classifier.classify_batch(&[SINGLE[1].1]).unwrap()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // No plots: criterion's plotting features are off, and gnuplot would only slow a run.
    config = Criterion::default().without_plots();
    targets = single_message, batch, startup
}
criterion_main!(benches);
