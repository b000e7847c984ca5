//! Int8 weights widened to f32 once, right after tract parses the file.
//!
//! The shipped model stores every MatMul weight as int8 with a per-channel scale behind ONNX
//! `DequantizeLinear` (the file is a quarter of its f32 size). Left to itself, tract types a
//! per-channel `DequantizeLinear` over constants as cast, subtract and multiply nodes and folds
//! them while typing, copying each weight matrix several times and comparing every new
//! constant with the others: most of the 100-215 ms that typing took on the shipped model
//! (`tract_tool startup`; docs/performance.md has the start-up measurements). Here each such
//! node becomes the f32 constant it computes, `(x - zero_point) * scale` in f32 as tract would
//! fold it, in one pass.
//!
//! This is done on tract's parsed graph rather than on the protobuf so that the weights exist
//! in f32 only once: an f32 protobuf parsed by tract holds two f32 copies at its peak (measured:
//! 132 against 122 MB peak RSS, `tract_tool bench`). The axis is read off the protobuf, since tract's parsed op keeps it
//! private. Only a `DequantizeLinear` whose inputs are all constants is widened; one fed at run
//! time is left alone. (The word-embedding table stays int8 in memory: its rows are cast and
//! scaled after their `Gather`, by other nodes.)

use std::collections::HashMap;

use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::ops::konst::Const;

use super::ClassifierError;

/// The axis of every `DequantizeLinear` in a model, by its output's name (tract labels each
/// parsed node's outlet with it).
#[derive(Debug, Clone, Default)]
pub struct DequantizeAxes(HashMap<String, i64>);

impl DequantizeAxes {
    pub fn of(proto: &ModelProto) -> Self {
        let nodes = proto.graph.iter().flat_map(|g| &g.node);
        let dequantize = nodes.filter(|n| {
            n.op_type == "DequantizeLinear" && (n.domain.is_empty() || n.domain == "ai.onnx")
        });
        let axes = dequantize.filter_map(|n| {
            let int = |name: &str| n.attribute.iter().find(|a| a.name == name).map(|a| a.i);
            // Blocked scales (opset 21 `block_size`) and other output types (opset 23
            // `output_dtype`) are not this module's arithmetic: those stay tract's.
            if int("block_size").unwrap_or(0) != 0 || int("output_dtype").unwrap_or(0) != 0 {
                return None;
            }
            Some((n.output.first()?.clone(), int("axis").unwrap_or(1)))
        });
        Self(axes.collect())
    }

    /// Replace every `DequantizeLinear` of `model` whose inputs are all constants by the f32
    /// constant it computes, and return how many were replaced. The int8 constants they read
    /// are left with no reader, and decluttering drops them. One of another input type (int32,
    /// say, which quantized exports use for biases) is left to tract; scales that do not fit
    /// the input's shape are an error.
    pub fn widen(&self, model: &mut InferenceModel) -> Result<usize, ClassifierError> {
        let mut widened = 0;
        for id in 0..model.nodes.len() {
            let Some(axis) = self.axis_of(model, id) else {
                continue;
            };
            let Some(inputs) = constant_inputs(model, id) else {
                continue;
            };
            let name = &model.nodes[id].name;
            let fail =
                |why: String| ClassifierError::Engine(format!("DequantizeLinear {name}: {why}"));
            let Some(value) = dequantize(&inputs, axis).map_err(fail)? else {
                continue;
            };
            become_const(model, id, value)?;
            widened += 1;
        }
        Ok(widened)
    }

    fn axis_of(&self, model: &InferenceModel, id: usize) -> Option<i64> {
        let node = &model.nodes[id];
        if node.op.name() != "DequantizeLinear" || node.outputs.len() != 1 {
            return None;
        }
        self.0
            .get(model.outlet_label(OutletId::new(id, 0))?)
            .copied()
    }
}

/// The constant values of a node's inputs, if they all are constants.
fn constant_inputs(model: &InferenceModel, id: usize) -> Option<Vec<Arc<Tensor>>> {
    let inputs = &model.nodes[id].inputs;
    let konst = |o: &OutletId| {
        model.nodes[o.node]
            .op_as::<Const>()
            .map(|c| c.val().clone())
    };
    inputs.iter().map(konst).collect()
}

/// Turn node `id` into a constant: its inputs are unhooked, its readers stay wired to it.
fn become_const(
    model: &mut InferenceModel,
    id: usize,
    value: Tensor,
) -> Result<(), ClassifierError> {
    let inputs = std::mem::take(&mut model.nodes[id].inputs);
    for input in inputs {
        let successors = &mut model.nodes[input.node].outputs[input.slot].successors;
        successors.retain(|inlet| inlet.node != id);
    }
    let value = value.into_arc_tensor();
    let fact = TypedFact::try_from(value.clone())?;
    model.nodes[id].op = Box::new(Const::new(value)?);
    model.set_outlet_fact(OutletId::new(id, 0), fact.into())?;
    Ok(())
}

/// `(x - zero_point) * scale` along `axis`, in f32, for x int8 or uint8 and an f32 scale; the
/// zero point (optional) is of x's type with one value per scale. `None` for other types.
fn dequantize(inputs: &[Arc<Tensor>], axis: i64) -> Result<Option<Tensor>, String> {
    let (x, scale) = match inputs {
        [x, scale] | [x, scale, _] => (x, scale),
        _ => return Err(format!("{} inputs", inputs.len())),
    };
    let ours = [DatumType::I8, DatumType::U8].contains(&x.datum_type());
    let zero_ours = inputs
        .get(2)
        .is_none_or(|z| z.datum_type() == x.datum_type());
    if !ours || !zero_ours || scale.datum_type() != DatumType::F32 {
        return Ok(None);
    }
    let scale = values::<f32>(scale)?;
    let zero = match inputs.get(2) {
        Some(z) => integers(z)?,
        None => vec![0; scale.len()],
    };
    if zero.len() != scale.len() {
        return Err("zero point and scale differ in length".into());
    }
    let (channels, inner) = channel_layout(x.shape(), axis, scale.len())?;
    if x.len() == 0 {
        return Tensor::zero::<f32>(x.shape())
            .map(Some)
            .map_err(|e| e.to_string());
    }
    // SAFETY: the tensor is read only after `Layout::apply` has written every one of its
    // values: `out` has x's shape, and apply walks x and out in step, end to end (x is not
    // empty, so its chunks are at least one value long). On an error `out` is dropped unread.
    // (Zeroing it first was a measurable part of the widening: ~40 MB of memset.)
    let mut out = unsafe { Tensor::uninitialized::<f32>(x.shape()) }.map_err(|e| e.to_string())?;
    let layout = Layout {
        channels,
        inner,
        scale,
        zero: &zero,
    };
    {
        let mut view = out.try_as_plain_ram_mut().map_err(|e| e.to_string())?;
        let out_values = view.as_slice_mut::<f32>().map_err(|e| e.to_string())?;
        match x.datum_type() {
            DatumType::I8 => layout.apply(values::<i8>(x)?, out_values),
            _ => layout.apply(values::<u8>(x)?, out_values),
        }
    }
    Ok(Some(out))
}

/// Where each value's scale and zero point are: channel `(i / inner) % channels`.
struct Layout<'a> {
    channels: usize,
    inner: usize,
    scale: &'a [f32],
    zero: &'a [i32],
}

impl Layout<'_> {
    /// Whole rows of channels, or runs of one channel: no division per value, so this runs at
    /// memory speed over the shipped model's ~10 M weights.
    fn apply<Q: Copy + Into<i32>>(&self, x: &[Q], out: &mut [f32]) {
        let value = |q: Q, c: usize| (q.into() - self.zero[c]) as f32 * self.scale[c];
        if self.inner == 1 {
            for (row, dst) in x.chunks(self.channels).zip(out.chunks_mut(self.channels)) {
                for (c, (&q, d)) in row.iter().zip(dst).enumerate() {
                    *d = value(q, c);
                }
            }
        } else {
            let runs = x.chunks(self.inner).zip(out.chunks_mut(self.inner));
            for (i, (run, dst)) in runs.enumerate() {
                let c = i % self.channels;
                for (&q, d) in run.iter().zip(dst) {
                    *d = value(q, c);
                }
            }
        }
    }
}

/// How many scales there are along the axis and how many values follow each step of it (for
/// a non-empty tensor: both at least 1).
fn channel_layout(shape: &[usize], axis: i64, scales: usize) -> Result<(usize, usize), String> {
    match scales {
        0 => return Err("no scale".into()),
        1 => return Ok((1, shape.iter().product())),
        _ => {}
    }
    let rank = shape.len() as i64;
    let axis = if axis < 0 { axis + rank } else { axis };
    if !(0..rank).contains(&axis) {
        return Err(format!("axis {axis} out of rank {rank}"));
    }
    let axis = axis as usize;
    if shape[axis] != scales {
        return Err(format!("{scales} scales for {} channels", shape[axis]));
    }
    Ok((scales, shape[axis + 1..].iter().product()))
}

fn values<T: Datum>(t: &Tensor) -> Result<&[T], String> {
    let fail = |e: TractError| format!("{:?} tensor: {e}", t.datum_type());
    t.try_as_plain_ram()
        .map_err(fail)?
        .as_slice::<T>()
        .map_err(fail)
}

/// A zero point's values, widened to i32 so that subtracting it is exact.
fn integers(t: &Tensor) -> Result<Vec<i32>, String> {
    match t.datum_type() {
        DatumType::I8 => Ok(values::<i8>(t)?.iter().map(|&v| v.into()).collect()),
        DatumType::U8 => Ok(values::<u8>(t)?.iter().map(|&v| v.into()).collect()),
        other => Err(format!("zero point is {other:?}, not int8 or uint8")),
    }
}

#[cfg(test)]
mod tests {
    use tract_onnx::pb::attribute_proto::AttributeType;
    use tract_onnx::pb::tensor_proto::DataType;
    use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
    use tract_onnx::pb::{
        type_proto, AttributeProto, GraphProto, NodeProto, OperatorSetIdProto, TensorProto,
        TensorShapeProto, TypeProto, ValueInfoProto,
    };

    use super::*;

    fn tensor(name: &str, dims: &[i64], data_type: DataType, raw: Vec<u8>) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: data_type as i32,
            raw_data: raw,
            ..Default::default()
        }
    }

    fn int8(name: &str, dims: &[i64], values: &[i8]) -> TensorProto {
        tensor(
            name,
            dims,
            DataType::Int8,
            values.iter().map(|&v| v as u8).collect(),
        )
    }

    fn f32s(name: &str, values: &[f32]) -> TensorProto {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensor(name, &[values.len() as i64], DataType::Float, raw)
    }

    fn value_info(name: &str, elem: DataType, dims: &[i64]) -> ValueInfoProto {
        let dim = dims.iter().map(|&d| Dimension {
            value: Some(dimension::Value::DimValue(d)),
            ..Default::default()
        });
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: elem as i32,
                    shape: Some(TensorShapeProto { dim: dim.collect() }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// `y = op(x, DequantizeLinear(inputs))`: with `MatMul` fed the identity, or `Add` fed
    /// zeros, `y` is the dequantized weight itself.
    fn dq_model(
        op: &str,
        x_dims: &[i64],
        dq_inputs: &[&str],
        axis: Option<i64>,
        initializer: Vec<TensorProto>,
        extra_inputs: Vec<ValueInfoProto>,
    ) -> ModelProto {
        let dq = NodeProto {
            op_type: "DequantizeLinear".into(),
            input: dq_inputs.iter().map(|s| s.to_string()).collect(),
            output: vec!["w".into()],
            attribute: axis
                .map(|i| AttributeProto {
                    name: "axis".into(),
                    i,
                    r#type: AttributeType::Int as i32,
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let matmul = NodeProto {
            op_type: op.into(),
            input: vec!["x".into(), "w".into()],
            output: vec!["y".into()],
            ..Default::default()
        };
        let mut input = vec![value_info("x", DataType::Float, x_dims)];
        input.extend(extra_inputs);
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            }],
            graph: Some(GraphProto {
                node: vec![dq, matmul],
                initializer,
                input,
                output: vec![ValueInfoProto {
                    name: "y".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Run `proto` on `x`, as tract alone would and widened; both results and the number
    /// widened.
    fn both_ways(proto: &ModelProto, x: tract_ndarray::ArrayD<f32>) -> (Vec<f32>, Vec<f32>, usize) {
        let run = |model: InferenceModel| -> Vec<f32> {
            let plan = model.into_optimized().unwrap().into_runnable().unwrap();
            let out = plan.run(tvec!(x.clone().into_tvalue())).unwrap();
            out[0]
                .to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .copied()
                .collect()
        };
        let onnx = tract_onnx::onnx();
        let stored = run(onnx.model_for_proto_model(proto).unwrap());
        let mut model = onnx.model_for_proto_model(proto).unwrap();
        let widened = DequantizeAxes::of(proto).widen(&mut model).unwrap();
        (stored, run(model), widened)
    }

    fn eye(k: usize) -> tract_ndarray::ArrayD<f32> {
        tract_ndarray::Array2::<f32>::eye(k).into_dyn()
    }

    #[test]
    fn per_channel_int8_weights_widen_to_what_tract_computes_from_them() {
        let proto = dq_model(
            "MatMul",
            &[2, 2],
            &["q", "s", "z"],
            Some(1),
            vec![
                int8("q", &[2, 3], &[-128, 0, 127, 1, 2, 3]),
                f32s("s", &[0.5, 1.0, 2.0]),
                int8("z", &[3], &[0, 1, -1]),
            ],
            vec![],
        );
        let (stored, widened, count) = both_ways(&proto, eye(2));
        assert_eq!(count, 1);
        assert_eq!(widened, [-64.0, -1.0, 256.0, 0.5, 1.0, 8.0]);
        assert_eq!(widened, stored);
    }

    #[test]
    fn the_axis_may_be_the_first_or_counted_from_the_end_and_a_missing_zero_point_is_zero() {
        for axis in [0, -2] {
            let proto = dq_model(
                "MatMul",
                &[2, 2],
                &["q", "s"],
                Some(axis),
                vec![int8("q", &[2, 2], &[1, 2, 3, 4]), f32s("s", &[10.0, 0.5])],
                vec![],
            );
            let (stored, widened, count) = both_ways(&proto, eye(2));
            assert_eq!(count, 1);
            assert_eq!(widened, [10.0, 20.0, 1.5, 2.0], "axis {axis}");
            assert_eq!(widened, stored, "axis {axis}");
        }
    }

    #[test]
    fn uint8_with_one_scale_for_the_whole_tensor() {
        let proto = dq_model(
            "MatMul",
            &[1, 1],
            &["q", "s", "z"],
            None,
            vec![
                tensor("q", &[1, 3], DataType::Uint8, vec![0, 128, 255]),
                f32s("s", &[0.25]),
                tensor("z", &[], DataType::Uint8, vec![128]),
            ],
            vec![],
        );
        let (stored, widened, count) = both_ways(&proto, eye(1));
        assert_eq!(count, 1);
        assert_eq!(widened, [-32.0, 0.0, 31.75]);
        assert_eq!(widened, stored);
    }

    #[test]
    fn a_dequantize_fed_at_run_time_is_left_to_tract() {
        let proto = dq_model(
            "MatMul",
            &[1, 1],
            &["q", "s"],
            None,
            vec![f32s("s", &[0.5])],
            vec![value_info("q", DataType::Int8, &[1, 2])],
        );
        let mut model = tract_onnx::onnx().model_for_proto_model(&proto).unwrap();
        let nodes = model.nodes.len();
        assert_eq!(DequantizeAxes::of(&proto).widen(&mut model).unwrap(), 0);
        assert_eq!(model.nodes.len(), nodes);
        assert!(model
            .nodes
            .iter()
            .any(|n| n.op.name() == "DequantizeLinear"));
    }

    #[test]
    fn scales_that_do_not_match_the_channels_are_an_error_not_a_guess_even_on_an_empty_input() {
        let cases = [
            (vec![2, 2], int8("q", &[2, 3], &[0; 6])),
            (vec![1, 0], int8("q", &[0, 3], &[])),
        ];
        for (x_dims, q) in cases {
            let initializer = vec![q, f32s("s", &[1.0, 1.0])];
            let proto = dq_model("MatMul", &x_dims, &["q", "s"], Some(1), initializer, vec![]);
            let mut model = tract_onnx::onnx().model_for_proto_model(&proto).unwrap();
            let err = DequantizeAxes::of(&proto).widen(&mut model).unwrap_err();
            assert!(err.to_string().contains("2 scales for 3 channels"), "{err}");
        }
    }

    #[test]
    fn a_channel_axis_in_the_middle_of_a_rank_3_tensor() {
        let q: Vec<i8> = (0..12).map(|v| v as i8 - 6).collect();
        let proto = dq_model(
            "Add",
            &[2, 3, 2],
            &["q", "s", "z"],
            Some(1),
            vec![
                int8("q", &[2, 3, 2], &q),
                f32s("s", &[1.0, 0.5, 2.0]),
                int8("z", &[3], &[0, 2, -1]),
            ],
            vec![],
        );
        let zeros = tract_ndarray::ArrayD::<f32>::zeros(vec![2, 3, 2]);
        let (stored, widened, count) = both_ways(&proto, zeros);
        assert_eq!(count, 1);
        // Channel c of [2, 3, 2] is values 2c and 2c+1 of each of the two outer blocks.
        let want = [
            -6.0, -5.0, -3.0, -2.5, -2.0, 0.0, 0.0, 1.0, 0.0, 0.5, 10.0, 12.0,
        ];
        assert_eq!(widened, want);
        assert_eq!(widened, stored);
    }

    #[test]
    fn a_scale_of_shape_empty_is_widened_and_an_int32_input_is_left_to_tract() {
        let scalar = tensor("s", &[], DataType::Float, 0.5f32.to_le_bytes().to_vec());
        let int32: Vec<u8> = [-4i32, 6].iter().flat_map(|v| v.to_le_bytes()).collect();
        let cases = [
            (int8("q", &[1, 2], &[-4, 6]), scalar, 1),
            (
                tensor("q", &[1, 2], DataType::Int32, int32),
                f32s("s", &[0.5]),
                0,
            ),
        ];
        for (q, scale, widened_count) in cases {
            let initializer = vec![q, scale];
            let proto = dq_model("MatMul", &[1, 1], &["q", "s"], None, initializer, vec![]);
            let (stored, widened, count) = both_ways(&proto, eye(1));
            assert_eq!(count, widened_count);
            assert_eq!(widened, [-2.0, 3.0]);
            assert_eq!(widened, stored);
        }
    }

    #[test]
    fn blocked_scales_are_not_read_as_channels() {
        let mut proto = dq_model(
            "MatMul",
            &[2, 2],
            &["q", "s"],
            Some(0),
            vec![int8("q", &[2, 2], &[1, 2, 3, 4]), f32s("s", &[1.0, 1.0])],
            vec![],
        );
        let node = &mut proto.graph.as_mut().unwrap().node[0];
        node.attribute.push(AttributeProto {
            name: "block_size".into(),
            i: 2,
            r#type: AttributeType::Int as i32,
            ..Default::default()
        });
        assert!(DequantizeAxes::of(&proto).0.is_empty());
    }
}
