//! The engine widens the shipped model's constant int8 weights to f32 before tract types the
//! graph (a start-up saving). It must compute what tract computes on the file as stored.

use tagbeez::classifier::{embedded, DequantizeAxes, Engine, LabelFile, TextEncoder};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::ops::konst::Const;

fn encoder() -> TextEncoder {
    let labels: LabelFile =
        serde_json::from_slice(embedded::model_files().labels_json).expect("labels.json");
    TextEncoder::from_bytes(embedded::model_files().tokenizer_json, labels.max_tokens)
        .expect("tokenizer.json")
}

/// tract on the file exactly as stored: it dequantizes the weights itself.
fn as_stored_logits(input_ids: &[i64], mask: &[i64], shape: (usize, usize)) -> Vec<f32> {
    let plan = tract_onnx::onnx()
        .model_for_read(&mut embedded::model_files().onnx)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .expect("tract loads the file as stored");
    let ids = tract_ndarray::Array2::from_shape_vec(shape, input_ids.to_vec()).unwrap();
    let mask = tract_ndarray::Array2::from_shape_vec(shape, mask.to_vec()).unwrap();
    let out = plan
        .run(tvec!(ids.into_tvalue(), mask.into_tvalue()))
        .expect("runs");
    out[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

#[test]
fn widened_weights_give_the_logits_of_the_file_as_stored() {
    let messages = [
        "hi first time here, do you ship to ireland?",
        "any promo code for the blue jacket",
        "add the size 9 trainers to my wishlist pls",
        "ok",
        "Just browsing for now. Thanks! Sent from my iPhone",
    ];
    let encoded = encoder().encode_batch(&messages).expect("encodes");
    let tokens = &encoded.tokens;
    let engine = Engine::from_onnx_bytes(embedded::model_files().onnx).expect("loads");
    let (widened, outputs) = engine.run(tokens).expect("runs");
    let stored = as_stored_logits(
        &tokens.input_ids,
        &tokens.attention_mask,
        (tokens.batch, tokens.sequence),
    );
    assert_eq!(widened.len(), stored.len());
    assert_eq!(widened.len(), messages.len() * outputs);
    let worst = widened
        .iter()
        .zip(&stored)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(worst <= 1e-5, "logits differ by {worst:e}");
}

#[test]
fn every_constant_weight_of_the_shipped_model_is_widened_once() {
    let onnx = tract_onnx::onnx();
    let proto = onnx
        .proto_model_for_read(&mut embedded::model_files().onnx)
        .expect("decodes");
    let mut model = onnx.model_for_proto_model(&proto).expect("parses");
    // DequantizeLinear nodes that read only constants: what the widening is for.
    let constant_fed = |model: &InferenceModel| {
        let konst = |o: &OutletId| model.nodes[o.node].op_as::<Const>().is_some();
        let nodes = model.nodes.iter();
        nodes
            .filter(|n| n.op.name() == "DequantizeLinear" && n.inputs.iter().all(konst))
            .count()
    };
    let before = constant_fed(&model);
    let axes = DequantizeAxes::of(&proto);
    let widened = axes.widen(&mut model).expect("widens");
    // Six layers of query, key, value, output and two feed-forward matrices, at least. (The
    // word-embedding rows are cast and scaled after their Gather, at run time: not a node here.)
    assert!(widened >= 36, "widened {widened}");
    assert_eq!(widened, before);
    assert_eq!(constant_fed(&model), 0, "none is left for tract to fold");
    assert_eq!(axes.widen(&mut model).expect("again"), 0);
}

#[test]
fn bytes_that_are_not_an_onnx_file_are_a_clear_error() {
    for bytes in [&b""[..], b"not a model", &[0xff; 64]] {
        match Engine::from_onnx_bytes(bytes) {
            Ok(_) => panic!("{bytes:?} loaded as a model"),
            Err(e) => assert!(e.to_string().starts_with("inference engine:"), "{e}"),
        }
    }
}
