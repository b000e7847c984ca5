//! The tract runtime for the tagger's ONNX graph: ids and mask in, one row of logits out per
//! message. It knows nothing of text or tags, so the export-path tests can run any encoder.

use std::sync::Arc;

use tract_onnx::prelude::*;

use super::ClassifierError;

/// A loaded, optimised and runnable ONNX graph with inputs `input_ids`, `attention_mask`
/// (int64, `[batch, sequence]`) and one output `[batch, outputs]`.
#[derive(Debug, Clone)]
pub struct Engine {
    plan: Arc<TypedSimplePlan>,
}

/// A padded batch of token ids, row-major `[batch, sequence]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    pub batch: usize,
    pub sequence: usize,
    pub input_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
}

impl Engine {
    /// Parse and optimise once at start-up; the plan is shared read-only afterwards.
    ///
    /// The graph keeps its symbolic `batch` and `sequence` dimensions (named by the ONNX
    /// `dim_param`s), so one plan serves a single message unpadded and any padded batch.
    pub fn from_onnx_bytes(mut bytes: &[u8]) -> Result<Self, ClassifierError> {
        let plan = tract_onnx::onnx()
            .model_for_read(&mut bytes)?
            .into_optimized()?
            .into_runnable()?;
        Ok(Self { plan })
    }

    /// Run the graph; returns the logits row-major, `[batch, outputs]`, and `outputs`.
    pub fn run(&self, tokens: &TokenBatch) -> Result<(Vec<f32>, usize), ClassifierError> {
        let shape = [tokens.batch, tokens.sequence];
        let ids = Tensor::from_shape(&shape, &tokens.input_ids)?;
        let mask = Tensor::from_shape(&shape, &tokens.attention_mask)?;
        let outputs = self.plan.run(tvec!(ids.into(), mask.into()))?;
        let logits = outputs
            .first()
            .ok_or_else(|| ClassifierError::Engine("the model has no output".into()))?;
        let view = logits.to_plain_array_view::<f32>()?;
        let dims = view.shape().to_vec();
        if dims.len() != 2 || dims[0] != tokens.batch {
            return Err(ClassifierError::Engine(format!(
                "expected logits [{}, n], got {dims:?}",
                tokens.batch
            )));
        }
        Ok((view.iter().copied().collect(), dims[1]))
    }
}
