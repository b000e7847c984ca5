//! One weight product of the int8 form, as three plan nodes: quantize the activation rows,
//! multiply in integers (tract's int8 kernels: VNNI on x86, SDOT on arm64), rescale to f32.
//!
//! ONNX's own spelling of this (`DynamicQuantizeLinear`, `MatMulInteger`, `Cast`, `Mul`, `Add`,
//! what onnxruntime's dynamic quantizer writes) becomes about a dozen nodes in tract: an
//! offset from u8 to i8, two zero-point corrections over the whole output, a cast, two scalings
//! and the bias, each a pass over the product's output (measured: docs/performance.md). Here the
//! zero-point correction, both scales and the bias are one pass (`Rescale`), with the weights'
//! column sums and scales computed once, at load.
//!
//! Activations are quantized **per row** (per token), not per tensor as `DynamicQuantizeLinear`
//! does: a message's result then never depends on the other messages of its batch or on the
//! padding of a per-length plan (the range of one row is that token's alone), and each token
//! keeps its own resolution.

use std::sync::Arc;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_hir::internal::*;

use super::quantize::{quantize_xor, scale_and_zero_point};

/// The ONNX op type the rewrite writes (in the `DOMAIN` domain) and this module parses.
pub const OP_TYPE: &str = "TagbeezInt8MatMul";
pub const DOMAIN: &str = "dev.tagbeez";

pub fn register(register: &mut OnnxOpRegister) {
    register.insert(OP_TYPE, parse);
}

fn parse(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    ensure!(
        node.input.len() == 3 || node.input.len() == 4,
        "{OP_TYPE} takes 3 or 4 inputs"
    );
    Ok((expand(Int8MatMul), vec![]))
}

/// `A (f32, [.., k]) × W (i8 constant, [k, n]) × scale (f32 constant, [n]) + bias (f32
/// constant, [n], optional)`, as the f32 `MatMul` + `Add` it replaces.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Int8MatMul;

impl Expansion for Int8MatMul {
    fn name(&self) -> StaticName {
        OP_TYPE.into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> TractResult<()> {
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, f32::datum_type())?;
        s.equals(&inputs[1].datum_type, i8::datum_type())?;
        s.equals(&inputs[1].rank, 2)?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].rank, &inputs[0].rank)?;
        s.given_2(&inputs[0].shape, &inputs[1].shape, move |s, a, w| {
            let mut shape = a.clone();
            if let Some(last) = shape.last_mut() {
                *last = w[1].clone();
            }
            s.equals(&outputs[0].shape, shape)
        })
    }

    fn wire(
        &self,
        prefix: &str,
        target: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let konst = |i: usize| -> TractResult<Arc<Tensor>> {
            let fact = target.outlet_fact(inputs[i])?;
            fact.konst
                .clone()
                .with_context(|| format!("{prefix}: input {i} is not a constant"))
        };
        let weights = konst(1)?;
        let rescale = Rescale::new(
            &weights,
            &*konst(2)?,
            inputs.get(3).map(|_| konst(3)).transpose()?.as_deref(),
        )?;
        let rank = target.outlet_fact(inputs[0])?.rank();
        let rows = target.wire_node(
            format!("{prefix}.quantize_rows"),
            QuantizeRows,
            &[inputs[0]],
        )?;
        let lead: String = "abcdefgh".chars().take(rank.saturating_sub(1)).collect();
        let axes: AxesMapping = format!("{lead}k,kn->{lead}n").parse()?;
        let w = target.add_const(format!("{prefix}.weights"), weights)?;
        let product = target.wire_node(
            format!("{prefix}.product"),
            EinSum::new(axes, i32::datum_type()),
            &[rows[0], w],
        )?;
        target.wire_node(
            format!("{prefix}.rescale"),
            rescale,
            &[product[0], rows[1], rows[2]],
        )
    }
}

/// f32 `[.., k]` to i8 `[.., k]` plus, per row, its scale (f32) and zero point (i32): the
/// `DynamicQuantizeLinear` arithmetic applied to each row, then shifted by -128 into i8 (what
/// tract's int8 kernels take), the zero point with it.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct QuantizeRows;

impl Op for QuantizeRows {
    fn name(&self) -> StaticName {
        "QuantizeRows".into()
    }

    op_as_typed_op!();
}

impl EvalOp for QuantizeRows {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let shape = input.shape();
        let xs = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let width = shape.last().copied().unwrap_or(1).max(1);
        let rows_shape = &shape[..shape.len().saturating_sub(1)];
        let rows = xs.len() / width;
        let mut scales = Vec::with_capacity(rows);
        let mut zeros = Vec::with_capacity(rows);
        // SAFETY: every value is written below: `xs.chunks(width)` covers the whole input and
        // each chunk's quantized values go to the chunk of `out` of the same place and length.
        let mut out = unsafe { Tensor::uninitialized_dt(i8::datum_type(), shape)? };
        {
            let mut view = out.try_as_plain_ram_mut()?;
            let ys = view.as_slice_mut::<i8>()?;
            // The bytes of an i8 slice are u8 ones: quantize in u8 and flip the top bit in the
            // same pass, which is subtracting 128 from every value.
            let ys: &mut [u8] = bytemuck_i8(ys);
            for (x, y) in xs.chunks(width).zip(ys.chunks_mut(width)) {
                let (scale, zero) = scale_and_zero_point(x);
                quantize_xor(x, scale, zero, 0x80, y);
                scales.push(scale);
                zeros.push(zero as i32 - 128);
            }
        }
        Ok(tvec!(
            out.into_tvalue(),
            Tensor::from_shape(rows_shape, &scales)?.into_tvalue(),
            Tensor::from_shape(rows_shape, &zeros)?.into_tvalue()
        ))
    }
}

/// The same memory, read as bytes.
fn bytemuck_i8(values: &mut [i8]) -> &mut [u8] {
    // SAFETY: i8 and u8 have the same size and alignment and every bit pattern is valid in both.
    unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast::<u8>(), values.len()) }
}

impl TypedOp for QuantizeRows {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = inputs[0].shape.to_tvec();
        let rows = &shape[..shape.len().saturating_sub(1)];
        Ok(tvec!(
            i8::fact(shape.clone()),
            f32::fact(rows),
            i32::fact(rows)
        ))
    }

    as_op!();
}

/// The integer product back to f32, in one pass:
/// `(acc - zero[row] × colsum[n]) × scale[row] × weight_scale[n] + bias[n]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rescale {
    /// Per output column: the weights' scale, the sum of the column's int8 weights (the zero
    /// point's correction), the bias (zeros when the graph had none).
    columns: Arc<Columns>,
}

#[derive(Debug)]
struct Columns {
    weight_scale: Vec<f32>,
    column_sum: Vec<i32>,
    bias: Vec<f32>,
}

/// Bit for bit (tract compares ops to merge identical nodes; a NaN equals itself here).
impl PartialEq for Columns {
    fn eq(&self, other: &Self) -> bool {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        self.column_sum == other.column_sum
            && bits(&self.weight_scale) == bits(&other.weight_scale)
            && bits(&self.bias) == bits(&other.bias)
    }
}

impl Eq for Columns {}

impl Rescale {
    fn new(weights: &Tensor, scale: &Tensor, bias: Option<&Tensor>) -> TractResult<Self> {
        let &[k, n] = weights.shape() else {
            bail!(
                "int8 weights of shape {:?}: [k, n] expected",
                weights.shape()
            );
        };
        ensure!(n > 0, "int8 weights with no column");
        let w = weights.try_as_plain_ram()?;
        let w = w.as_slice::<i8>()?;
        let mut column_sum = vec![0i32; n];
        for row in w.chunks(n).take(k) {
            for (sum, &v) in column_sum.iter_mut().zip(row) {
                *sum += v as i32;
            }
        }
        let per_column = |t: &Tensor, what: &str| -> TractResult<Vec<f32>> {
            let values = t.cast_to::<f32>()?;
            let values = values.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
            ensure!(
                values.len() == n,
                "{what}: {} values for {n} columns",
                values.len()
            );
            Ok(values)
        };
        Ok(Self {
            columns: Arc::new(Columns {
                weight_scale: per_column(scale, "weight scale")?,
                column_sum,
                bias: bias.map_or(Ok(vec![0.0; n]), |b| per_column(b, "bias"))?,
            }),
        })
    }
}

impl Op for Rescale {
    fn name(&self) -> StaticName {
        "RescaleInt8Product".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Rescale {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let acc = inputs[0].try_as_plain_ram()?;
        let acc = acc.as_slice::<i32>()?;
        let scales = inputs[1].try_as_plain_ram()?;
        let scales = scales.as_slice::<f32>()?;
        let zeros = inputs[2].try_as_plain_ram()?;
        let zeros = zeros.as_slice::<i32>()?;
        let c = &self.columns;
        let n = c.weight_scale.len();
        ensure!(
            acc.len() == scales.len() * n,
            "product and row scales disagree"
        );
        // SAFETY: every value is written: one output row per accumulator row, end to end.
        let mut out = unsafe { Tensor::uninitialized_dt(f32::datum_type(), inputs[0].shape())? };
        {
            let mut view = out.try_as_plain_ram_mut()?;
            let ys = view.as_slice_mut::<f32>()?;
            let rows = acc.chunks_exact(n).zip(ys.chunks_exact_mut(n));
            for ((acc, y), (&scale, &zero)) in rows.zip(scales.iter().zip(zeros)) {
                rescale_row(acc, scale, zero, c, y);
            }
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

/// One row: `(acc - zero × colsum) × scale × weight_scale + bias`, column by column. The
/// integer part wraps (as the product's own i32 accumulation would) rather than panic.
#[inline]
fn rescale_row(acc: &[i32], scale: f32, zero: i32, c: &Columns, y: &mut [f32]) {
    let columns = c.weight_scale.iter().zip(&c.column_sum).zip(&c.bias);
    for ((y, &a), ((&weight_scale, &column_sum), &bias)) in y.iter_mut().zip(acc).zip(columns) {
        let exact = a.wrapping_sub(zero.wrapping_mul(column_sum));
        *y = exact as f32 * (scale * weight_scale) + bias;
    }
}

impl TypedOp for Rescale {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::super::quantize::quantize;
    use super::*;

    /// Each row is quantized on its own range: a row of large values beside a row of small
    /// ones leaves the small one its full resolution.
    #[test]
    fn rows_are_quantized_independently() {
        let xs: Vec<f32> = vec![0.1, -0.2, 0.05, 100.0, -50.0, 25.0];
        let input = Tensor::from_shape(&[1, 2, 3], &xs).unwrap();
        let out = QuantizeRows
            .eval_out_of_plan(tvec!(input.into_tvalue()))
            .unwrap()
            .unwrap();
        let q = out[0].to_plain_array_view::<i8>().unwrap();
        let scales = out[1].to_plain_array_view::<f32>().unwrap();
        let zeros = out[2].to_plain_array_view::<i32>().unwrap();
        assert_eq!(out[1].shape(), &[1, 2]);
        for (row, x) in xs.chunks(3).enumerate() {
            let (scale, zero) = scale_and_zero_point(x);
            let mut want = [0u8; 3];
            quantize(x, scale, zero, &mut want);
            let got: Vec<i8> = q.iter().skip(row * 3).take(3).copied().collect();
            let want: Vec<i8> = want.iter().map(|&v| (v as i32 - 128) as i8).collect();
            assert_eq!(got, want, "row {row}");
            assert_eq!(scales.iter().nth(row), Some(&scale));
            assert_eq!(zeros.iter().nth(row), Some(&(zero as i32 - 128)));
        }
        // The small row's values span most of the 256 steps, not 1 or 2 of them.
        let small: Vec<i32> = q.iter().take(3).map(|&v| v as i32).collect();
        assert!(
            small.iter().max().unwrap() - small.iter().min().unwrap() > 200,
            "{small:?}"
        );
    }
}
