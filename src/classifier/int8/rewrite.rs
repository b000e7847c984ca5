//! The int8 form's graph, written from the shipped file before tract parses it.
//!
//! The shipped model stores each weight matrix as int8 with a scale per output column behind
//! ONNX `DequantizeLinear` (axis 1 of a `[k, n]` matrix, zero point 0), read by a `MatMul`
//! whose result usually gets a bias `Add`. Each such `DequantizeLinear` → `MatMul` (→ `Add`)
//! becomes one `TagbeezInt8MatMul` node (`product.rs`) that reads the int8 matrix itself. Anything
//! else (the attention products between activations, a `DequantizeLinear` of another shape,
//! axis or zero point) is left as it is, and `DequantizeAxes::widen` still turns what remains
//! of the stored int8 into f32.

use std::collections::HashMap;

use tract_onnx::pb::{GraphProto, ModelProto, NodeProto, TensorProto};

use super::product::{DOMAIN, OP_TYPE};

/// ONNX `TensorProto.DataType` codes this rewrite reads.
const INT8: i32 = 3;
const FLOAT: i32 = 1;

/// Rewrite every weight product of `model` it can, and return how many it rewrote.
pub fn rewrite(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else {
        return 0;
    };
    let products = find_products(graph);
    if products.is_empty() {
        return 0;
    }
    let mut dropped = vec![false; graph.node.len()];
    let mut replacement: HashMap<usize, NodeProto> = HashMap::new();
    for p in &products {
        dropped[p.dequantize] = true;
        if let Some(add) = p.bias_add {
            dropped[add] = true;
        }
        replacement.insert(p.matmul, p.node.clone());
    }
    let nodes = std::mem::take(&mut graph.node);
    graph.node = nodes
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !dropped[*i])
        .map(|(i, node)| replacement.remove(&i).unwrap_or(node))
        .collect();
    if !model.opset_import.iter().any(|o| o.domain == DOMAIN) {
        model.opset_import.push(tract_onnx::pb::OperatorSetIdProto {
            domain: DOMAIN.into(),
            version: 1,
        });
    }
    products.len()
}

/// One weight product found: the nodes it replaces and the node that replaces them.
struct Product {
    dequantize: usize,
    matmul: usize,
    bias_add: Option<usize>,
    node: NodeProto,
}

fn find_products(graph: &GraphProto) -> Vec<Product> {
    let initializers: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let mut producer = HashMap::new();
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, node) in graph.node.iter().enumerate() {
        for output in &node.output {
            producer.insert(output.as_str(), i);
        }
        for input in &node.input {
            readers.entry(input.as_str()).or_default().push(i);
        }
    }
    let graph_outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let single_reader = |name: &str| match readers.get(name).map(Vec::as_slice) {
        Some(&[only]) if !graph_outputs.contains(&name) => Some(only),
        _ => None,
    };
    let mut found = Vec::new();
    for (m, matmul) in graph.node.iter().enumerate() {
        if matmul.op_type != "MatMul" || !is_default_domain(matmul) || matmul.input.len() != 2 {
            continue;
        }
        let Some(&d) = producer.get(matmul.input[1].as_str()) else {
            continue;
        };
        let dequantize = &graph.node[d];
        if single_reader(&matmul.input[1]) != Some(m) {
            continue;
        }
        let Some(columns) = weight_columns(dequantize, &initializers) else {
            continue;
        };
        let bias = single_reader(&matmul.output[0])
            .filter(|&a| graph.node[a].op_type == "Add" && is_default_domain(&graph.node[a]))
            .and_then(|a| {
                let add = &graph.node[a];
                let other = add.input.iter().find(|i| **i != matmul.output[0])?;
                let bias = initializers.get(other.as_str())?;
                let n = bias.dims.iter().product::<i64>();
                (bias.data_type == FLOAT && bias.dims.len() == 1 && n == columns)
                    .then(|| (a, other.clone(), add.output[0].clone()))
            });
        let mut inputs = vec![
            matmul.input[0].clone(),
            dequantize.input[0].clone(),
            dequantize.input[1].clone(),
        ];
        let output = match &bias {
            Some((_, name, output)) => {
                inputs.push(name.clone());
                output.clone()
            }
            None => matmul.output[0].clone(),
        };
        found.push(Product {
            dequantize: d,
            matmul: m,
            bias_add: bias.as_ref().map(|b| b.0),
            node: NodeProto {
                input: inputs,
                output: vec![output],
                name: format!("{}.int8", matmul.name),
                op_type: OP_TYPE.into(),
                domain: DOMAIN.into(),
                ..Default::default()
            },
        });
    }
    found
}

fn is_default_domain(node: &NodeProto) -> bool {
    node.domain.is_empty() || node.domain == "ai.onnx"
}

/// The column count `n` of a `DequantizeLinear` this rewrite can take: int8 `[k, n]`
/// initializer, f32 `[n]` scale initializer on axis 1, zero point absent or all 0.
fn weight_columns(node: &NodeProto, initializers: &HashMap<&str, &TensorProto>) -> Option<i64> {
    if node.op_type != "DequantizeLinear" || !is_default_domain(node) {
        return None;
    }
    let attribute = |name: &str| node.attribute.iter().find(|a| a.name == name).map(|a| a.i);
    let axis = attribute("axis").unwrap_or(1);
    if attribute("block_size").unwrap_or(0) != 0 || attribute("output_dtype").unwrap_or(0) != 0 {
        return None;
    }
    let weights = initializers.get(node.input.first()?.as_str())?;
    let scale = initializers.get(node.input.get(1)?.as_str())?;
    let [_, n] = weights.dims[..] else {
        return None;
    };
    let axis_ok = axis == 1 || axis == -1;
    let scale_ok = scale.data_type == FLOAT && scale.dims[..] == [n];
    if weights.data_type != INT8 || !axis_ok || !scale_ok {
        return None;
    }
    match node.input.get(2).filter(|z| !z.is_empty()) {
        None => Some(n),
        Some(zero) => all_zero(initializers.get(zero.as_str())?).then_some(n),
    }
}

/// Whether an int8 tensor's stored values are all 0 (raw bytes or, as ONNX also allows for
/// int8, one int32 per value). An external or empty payload is not taken as zero.
fn all_zero(tensor: &TensorProto) -> bool {
    if tensor.data_type != INT8 {
        return false;
    }
    if !tensor.raw_data.is_empty() {
        return tensor.raw_data.iter().all(|&b| b == 0);
    }
    !tensor.int32_data.is_empty() && tensor.int32_data.iter().all(|&v| v == 0)
}
