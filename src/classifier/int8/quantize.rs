//! ONNX `DynamicQuantizeLinear`, vectorised, registered in place of tract-onnx's own.
//!
//! The int8 form quantizes every activation that enters a weight product, once per product and
//! per run, so this op runs 36 times per message. tract-onnx 0.23.9 implements it as a scalar
//! loop whose round-half-to-even is one `rintf` library call per value on baseline x86-64: 45 %
//! of a 16-token inference when measured (docs/performance.md). Here the range is found with
//! lane-wise minimum and maximum, and the rounding is done by adding and removing 1.5 × 2²³, which
//! rounds half to even in the default rounding mode on every target (SSE2, AVX2, NEON), so the
//! compiler vectorises both loops without a target feature.
//!
//! The arithmetic is the ONNX definition, value for value as tract computes it (a test holds
//! it to tract's op on arbitrary inputs, NaN and infinities included):
//! `scale = (max(0, max x) - min(0, min x)) / 255`, `zero_point = saturate(round(-min / scale))`,
//! `y = saturate(round(x / scale) + zero_point)`, rounding half to even, division not
//! multiplication by the reciprocal (the two differ in the last bit, and so in the rounding).

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

/// Lanes of the min/max reduction: wide enough for AVX-512, a multiple of every narrower width.
const LANES: usize = 16;

/// Register the vectorised op under the ONNX name, replacing tract-onnx's parser.
pub fn register(register: &mut OnnxOpRegister) {
    register.insert("DynamicQuantizeLinear", parse);
}

fn parse(
    _ctx: &ParsingContext,
    _node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(DynamicQuantizeLinear), vec![]))
}

/// The parsed node: one f32 input; the quantized u8 tensor, its scale and zero point out.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct DynamicQuantizeLinear;

impl Expansion for DynamicQuantizeLinear {
    fn name(&self) -> StaticName {
        "DynamicQuantizeLinear".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(3)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> TractResult<()> {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 3)?;
        s.equals(&inputs[0].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        s.equals(&outputs[0].datum_type, u8::datum_type())?;
        s.equals(&outputs[1].datum_type, f32::datum_type())?;
        s.equals(&outputs[1].rank, 0)?;
        s.equals(&outputs[2].datum_type, u8::datum_type())?;
        s.equals(&outputs[2].rank, 0)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        target: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        target.wire_node(format!("{prefix}.quantize"), QuantizeU8, &[inputs[0]])
    }
}

/// The typed op the plan runs.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct QuantizeU8;

impl Op for QuantizeU8 {
    fn name(&self) -> StaticName {
        "QuantizeU8Vectorised".into()
    }

    op_as_typed_op!();
}

impl EvalOp for QuantizeU8 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].cast_to::<f32>()?;
        let xs = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let (scale, zero_point) = scale_and_zero_point(xs);
        // SAFETY: `quantize` writes every value of `ys` (it has xs's length) before it is read.
        let mut out = unsafe { Tensor::uninitialized_dt(u8::datum_type(), input.shape())? };
        quantize(
            xs,
            scale,
            zero_point,
            out.try_as_plain_ram_mut()?.as_slice_mut::<u8>()?,
        );
        Ok(tvec!(
            out.into_tvalue(),
            tensor0(scale).into_tvalue(),
            tensor0(zero_point).into_tvalue()
        ))
    }
}

impl TypedOp for QuantizeU8 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut quantized = inputs[0].clone();
        quantized.datum_type = u8::datum_type();
        Ok(tvec!(
            quantized,
            f32::fact([0usize; 0]),
            u8::fact([0usize; 0])
        ))
    }

    as_op!();
}

/// The range of `xs` widened to include 0, as scale and zero point. A NaN is never a bound
/// (`v < min` is false for it), as in tract.
pub fn scale_and_zero_point(xs: &[f32]) -> (f32, u8) {
    let mut low = [0f32; LANES];
    let mut high = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for lane in 0..LANES {
            let v = chunk[lane];
            low[lane] = if v < low[lane] { v } else { low[lane] };
            high[lane] = if v > high[lane] { v } else { high[lane] };
        }
    }
    let (mut min, mut max) = (0f32, 0f32);
    for &v in low.iter().chain(rest) {
        min = if v < min { v } else { min };
    }
    for &v in high.iter().chain(rest) {
        max = if v > max { v } else { max };
    }
    let scale = (max - min) / 255.0;
    // A zero range makes this NaN, and `NaN as u8` is 0: zero point 0, as in tract.
    let zero_point = (-min / scale).round_ties_even().clamp(0.0, 255.0) as u8;
    (scale, zero_point)
}

/// `saturate(round_half_even(x / scale) + zero_point)` for every value.
///
/// Saturated in f32, then converted: a float-to-integer `as` saturates and maps NaN to 0 value
/// by value, which the compiler does not vectorise. NaN is taken as 0 first, as tract's
/// `NaN as i32` does.
pub fn quantize(xs: &[f32], scale: f32, zero_point: u8, ys: &mut [u8]) {
    quantize_xor(xs, scale, zero_point, 0, ys);
}

/// As `quantize`, each byte then XORed with `mask` in the same pass: a mask of 0x80 subtracts
/// 128, giving the i8 values tract's int8 kernels take without a second pass over the row.
pub fn quantize_xor(xs: &[f32], scale: f32, zero_point: u8, mask: u8, ys: &mut [u8]) {
    let zero_point = zero_point as f32;
    for (x, y) in xs.iter().zip(ys.iter_mut()) {
        let r = round_half_even(x / scale);
        #[allow(clippy::eq_op)] // `r == r` is false only for NaN, and vectorises as a compare.
        let r = if r == r { r } else { 0.0 };
        let q = r + zero_point;
        let q = if q < 0.0 { 0.0 } else { q };
        let q = if q > 255.0 { 255.0 } else { q };
        // SAFETY: q is a whole number in [0, 255] here (not NaN: r is not, and zero_point is
        // finite), so the conversion is exact.
        *y = unsafe { q.to_int_unchecked::<u8>() } ^ mask;
    }
}

/// Round half to even without a library call: past 2²², where this trick would stop being
/// exact, every value saturates anyway. NaN stays NaN (and becomes 0 in the `as i32`, as in
/// tract's `round_ties_even() as i32`).
#[inline(always)]
fn round_half_even(v: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0; // 1.5 × 2²³: one unit in the last place is 1.
    if v.abs() < 4_194_304.0 {
        (v + SHIFT) - SHIFT
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_to_even() {
        for (v, r) in [
            (0.5, 0.0),
            (1.5, 2.0),
            (2.5, 2.0),
            (-0.5, 0.0),
            (-1.5, -2.0),
            (3.49, 3.0),
        ] {
            assert_eq!(round_half_even(v), r, "{v}");
            assert_eq!(round_half_even(v), f32::round_ties_even(v), "{v}");
        }
    }

    /// The ONNX operator's own example (onnx.ai, DynamicQuantizeLinear).
    #[test]
    fn matches_the_onnx_example() {
        let xs = [0., 2., -3., -2.5, 1.34, 0.5];
        let (scale, zero_point) = scale_and_zero_point(&xs);
        assert!((scale - 0.019_607_844).abs() < 1e-8);
        assert_eq!(zero_point, 153);
        let mut ys = [0u8; 6];
        quantize(&xs, scale, zero_point, &mut ys);
        assert_eq!(ys, [153, 255, 0, 26, 221, 179]);
    }
}
