//! The int8 form's ops held to their definitions, on arbitrary inputs:
//! - the vectorised `DynamicQuantizeLinear` registered in tract's op register, against tract-onnx's
//!   own implementation (bit for bit) and against the ONNX operator's definition
//!   (<https://onnx.ai/onnx/operators/onnx__DynamicQuantizeLinear.html>: range widened to 0,
//!   round half to even, saturation to [0, 255]);
//! - the rewrite of `DequantizeLinear` → `MatMul` → `Add` into the int8 product, against the f32
//!   graph it replaces, within what quantizing each activation row to 8 bits may cost.

use proptest::prelude::*;
use tagbeez::classifier::int8;
use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
use tract_onnx::pb::{
    type_proto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use tract_onnx::prelude::*;

const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;

fn value_info(name: &str, elem_type: i32, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(dimension::Value::DimValue(d)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op_type: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: op_type.into(),
        name: format!("{op_type}_{}", outputs[0]),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn model(graph: GraphProto) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(graph),
        ..Default::default()
    }
}

/// `DynamicQuantizeLinear` over a vector of `n` values, as a one-node model.
fn quantize_model(n: usize) -> ModelProto {
    model(GraphProto {
        node: vec![node(
            "DynamicQuantizeLinear",
            &["x"],
            &["y", "scale", "zero"],
        )],
        input: vec![value_info("x", FLOAT, &[n as i64])],
        output: vec![
            value_info("y", UINT8, &[n as i64]),
            value_info("scale", FLOAT, &[]),
            value_info("zero", UINT8, &[]),
        ],
        ..Default::default()
    })
}

/// (y, scale bits, zero point) from tract's framework `onnx`.
fn run_quantize(onnx: &tract_onnx::Onnx, xs: &[f32]) -> (Vec<u8>, u32, u8) {
    let proto = quantize_model(xs.len());
    let plan = onnx
        .model_for_proto_model(&proto)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .expect("the one-node model loads");
    let out = plan.run(tvec!(tensor1(xs).into())).expect("the op runs");
    let y = values::<u8>(&out[0]);
    let scale = values::<f32>(&out[1])[0];
    let zero = values::<u8>(&out[2])[0];
    (y, scale.to_bits(), zero)
}

fn values<T: Datum + Copy>(value: &TValue) -> Vec<T> {
    let view = value.to_plain_array_view::<T>().expect("the expected type");
    view.iter().copied().collect()
}

/// The operator's definition, written out plainly: saturation in i64, so nothing wraps.
fn definition(xs: &[f32]) -> (Vec<u8>, f32, u8) {
    let max = xs.iter().copied().fold(0f32, f32::max);
    let min = xs.iter().copied().fold(0f32, f32::min);
    let scale = (max - min) / 255.0;
    let saturate = |v: f32| -> u8 {
        if v.is_nan() {
            return 0;
        }
        (v as f64).clamp(0.0, 255.0) as u8
    };
    let zero = saturate((-min / scale).round_ties_even());
    let y = xs
        .iter()
        .map(|&x| {
            let r = (x / scale).round_ties_even();
            if r.is_nan() {
                return zero;
            }
            (r as f64 + zero as f64).clamp(0.0, 255.0) as u8
        })
        .collect();
    (y, scale, zero)
}

/// Values of every kind an activation can hold: ordinary, exact ties after scaling, zeros of
/// both signs, extremes, NaN and infinities.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        8 => -50f32..50f32,
        2 => (-300i32..300).prop_map(|k| k as f32 + 0.5),
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
        1 => Just(f32::MAX),
        1 => -1e30f32..1e30f32,
    ]
}

/// Vectors whose scale comes out a power of two and whose values sit exactly half way between
/// two steps: every value is a tie for the rounding, which random values almost never are.
fn ties() -> impl Strategy<Value = Vec<f32>> {
    (
        0i32..=255,
        -4i32..5,
        prop::collection::vec(0i32..255, 1..60),
    )
        .prop_map(|(a, e, ks)| {
            let step = 2f32.powi(e);
            let mut xs = vec![-(a as f32) * step, (255 - a) as f32 * step];
            xs.extend(ks.iter().map(|&k| ((k - a) as f32 + 0.5) * step));
            xs
        })
}

fn vectors() -> impl Strategy<Value = Vec<f32>> {
    prop_oneof![prop::collection::vec(value(), 1..70), ties()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Bit for bit what tract-onnx's own op gives, lengths around the 16-lane blocks included.
    #[test]
    fn the_vectorised_op_matches_tracts_own(xs in vectors()) {
        let ours = run_quantize(&int8::onnx(), &xs);
        let tracts = run_quantize(&tract_onnx::onnx(), &xs);
        prop_assert_eq!(ours, tracts);
    }

    /// The definition, on any finite f32 bit pattern (subnormals and the largest magnitudes
    /// included: where `round(x / scale)` is infinite, tract-onnx's own op adds the zero point
    /// to `i32::MAX` and wraps, so only the definition is the reference there).
    #[test]
    fn the_vectorised_op_meets_the_onnx_definition(
        xs in prop_oneof![
            prop::collection::vec(any::<f32>().prop_filter("finite", |v| v.is_finite()), 1..70),
            ties(),
        ]
    ) {
        let (y, scale, zero) = run_quantize(&int8::onnx(), &xs);
        let (want_y, want_scale, want_zero) = definition(&xs);
        prop_assert_eq!(scale, want_scale.to_bits());
        prop_assert_eq!(zero, want_zero);
        prop_assert_eq!(y, want_y);
    }
}

#[test]
fn the_onnx_examples_hold() {
    // The operator page's three examples.
    let cases: [(&[f32], &[u8], u8); 3] = [
        (
            &[0., 2., -3., -2.5, 1.34, 0.5],
            &[153, 255, 0, 26, 221, 179],
            153,
        ),
        (
            &[-1., -2.1, -1.3, -2.5, -3.34, -4.],
            &[191, 121, 172, 96, 42, 0],
            255,
        ),
        (
            &[1., 2.1, 1.3, 2.5, 3.34, 4., 1.5, 2.6, 3.9, 4., 3., 2.345],
            &[64, 134, 83, 159, 213, 255, 96, 166, 249, 255, 191, 149],
            0,
        ),
    ];
    for (xs, want, want_zero) in cases {
        let (y, _, zero) = run_quantize(&int8::onnx(), xs);
        assert_eq!((y.as_slice(), zero), (want, want_zero), "{xs:?}");
    }
}

#[test]
fn ties_round_to_even_in_the_values_and_the_zero_point() {
    // scale is exactly 1: 0.5 is a tie, and goes to 0 (+127), not 1.
    let (y, scale, zero) = run_quantize(&int8::onnx(), &[-127.0, 128.0, 0.5, 1.5]);
    assert_eq!((f32::from_bits(scale), zero), (1.0, 127));
    assert_eq!(y, [0, 255, 127, 129]);
    // -min / scale is exactly 126.5: the zero point is 126.
    let (_, scale, zero) = run_quantize(&int8::onnx(), &[-253.0, 257.0]);
    assert_eq!((f32::from_bits(scale), zero), (2.0, 126));
}

/// `x [rows, k] × DequantizeLinear(w int8 [k, n], scale [n]) + bias [n]`.
fn product_model(rows: usize, k: usize, w: &[i8], scale: &[f32], bias: &[f32]) -> ModelProto {
    let n = scale.len();
    let tensor = |name: &str, data_type: i32, dims: Vec<i64>, raw: Vec<u8>| TensorProto {
        name: name.into(),
        data_type,
        dims,
        raw_data: raw,
        ..Default::default()
    };
    let floats = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    model(GraphProto {
        node: vec![
            node("DequantizeLinear", &["w_q", "w_scale", "w_zero"], &["w"]),
            node("MatMul", &["x", "w"], &["xw"]),
            node("Add", &["bias", "xw"], &["y"]),
        ],
        initializer: vec![
            tensor(
                "w_q",
                INT8,
                vec![k as i64, n as i64],
                w.iter().map(|&v| v as u8).collect(),
            ),
            tensor("w_scale", FLOAT, vec![n as i64], floats(scale)),
            tensor("w_zero", INT8, vec![n as i64], vec![0; n]),
            tensor("bias", FLOAT, vec![n as i64], floats(bias)),
        ],
        input: vec![value_info("x", FLOAT, &[rows as i64, k as i64])],
        output: vec![value_info("y", FLOAT, &[rows as i64, n as i64])],
        ..Default::default()
    })
}

fn run_product(proto: &ModelProto, xs: &[f32], rows: usize, k: usize) -> Vec<f32> {
    let plan = int8::onnx()
        .model_for_proto_model(proto)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .expect("the product model loads");
    let x = Tensor::from_shape(&[rows, k], xs).expect("x");
    let out = plan.run(tvec!(x.into())).expect("runs");
    values::<f32>(&out[0])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]

    /// The int8 product gives the f32 product of the same int8 weights, within the error of
    /// quantizing each row of x to 8 bits: at most half a step of that row's scale per value,
    /// times the sum of the absolute dequantized weights of the column.
    #[test]
    fn the_rewritten_product_matches_the_f32_graph(
        (rows, k, n) in (1usize..6, 1usize..40, 1usize..20),
        seed in any::<u64>(),
    ) {
        let mut rng = seed;
        let mut next = || {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (rng >> 33) as u32
        };
        let w: Vec<i8> = (0..k * n).map(|_| (next() % 255) as i32 as i8).collect();
        let scale: Vec<f32> = (0..n).map(|_| 1e-3 + (next() % 1000) as f32 * 1e-5).collect();
        let bias: Vec<f32> = (0..n).map(|_| (next() % 200) as f32 / 100.0 - 1.0).collect();
        let xs: Vec<f32> = (0..rows * k).map(|_| (next() % 2001) as f32 / 250.0 - 4.0).collect();
        let proto = product_model(rows, k, &w, &scale, &bias);
        let want = run_product(&proto, &xs, rows, k);
        let mut rewritten = proto.clone();
        prop_assert_eq!(int8::rewrite(&mut rewritten), 1);
        let got = run_product(&rewritten, &xs, rows, k);
        for r in 0..rows {
            let row = &xs[r * k..(r + 1) * k];
            let (lo, hi) = row.iter().fold((0f32, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
            let step = (hi - lo) / 255.0;
            for c in 0..n {
                let column: f32 = (0..k).map(|i| (w[i * n + c] as f32 * scale[c]).abs()).sum();
                let bound = step / 2.0 * column * 1.001 + 1e-4;
                let (g, e) = (got[r * n + c], want[r * n + c]);
                prop_assert!((g - e).abs() <= bound, "row {} col {}: {} vs {} (bound {})", r, c, g, e, bound);
            }
        }
    }
}

#[test]
fn only_the_products_it_can_take_are_rewritten() {
    let w = [1i8, -2, 3, -4];
    let mut proto = product_model(2, 2, &w, &[0.5, 0.25], &[0.0, 1.0]);
    // A zero point that is not 0 is left to the f32 form.
    proto.graph.as_mut().unwrap().initializer[2].raw_data = vec![1, 0];
    assert_eq!(int8::rewrite(&mut proto.clone()), 0);
    // Otherwise the three nodes become one, which writes the Add's output.
    let mut proto = product_model(2, 2, &w, &[0.5, 0.25], &[0.0, 1.0]);
    assert_eq!(int8::rewrite(&mut proto), 1);
    let graph = proto.graph.as_ref().unwrap();
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops, ["TagbeezInt8MatMul"], "the bias Add was folded in");
    assert_eq!(graph.node[0].output, ["y"]);
}
