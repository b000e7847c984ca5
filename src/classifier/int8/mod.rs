//! The int8 execution form: the same shipped file, run with its weights kept in int8 and each
//! activation quantized on the fly, on CPUs with fast int8 dot products.
//!
//! `form.rs` chooses between it and the f32 form at load; `rewrite.rs` writes its graph from the
//! shipped one; `product.rs` and `quantize.rs` are the ops that graph runs, registered in
//! tract-onnx's op register (no fork of tract).

mod form;
mod product;
mod quantize;
mod rewrite;

pub use form::{Cpu, FormChoice, FormChoiceError, InferenceForm, Selection};
pub use rewrite::rewrite;

/// tract-onnx's framework with this module's ops registered: the vectorised
/// `DynamicQuantizeLinear` in place of tract's own, and the int8 product the rewrite writes.
pub fn onnx() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    quantize::register(&mut onnx.op_register);
    product::register(&mut onnx.op_register);
    onnx
}
