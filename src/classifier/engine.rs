//! The tract runtime for the tagger's ONNX graph: ids and mask in, one row of logits out per
//! message. It knows nothing of text or tags, so the export-path tests can run any encoder.
//!
//! Plans: tract's matmul cost model picks its kernels from the shapes it knows. With symbolic
//! `batch` and `sequence` it falls back to a default kernel, so a single message runs faster on
//! a plan optimised for its concrete length. With per-length plans on, the engine keeps the
//! decluttered graph and builds, on first use (or ahead, from `warm`), one plan per length
//! bucket for single messages (padded to the bucket: padded keys are masked out and padded
//! positions are left out of the pooling, so the logits are the unpadded ones up to float
//! rounding; the int8 form quantizes each row on its own range, so padding rows do not enter a
//! message's ranges either) and one symbolic plan for batches. Off (the f32 default), the one
//! symbolic plan takes the graph. Start-up pays only for decoding, parsing, widening and
//! decluttering.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use prost::Message;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::Gather;
use tract_onnx::tract_core::ops::matmul::optimized::OptMatMul;

use super::dequantize::DequantizeAxes;
use super::int8::{self, InferenceForm};
use super::ClassifierError;

/// The single-message plan lengths of the int8 form. Each int8 plan holds its own packed
/// weights (about 12 MB of resident set each in `tagbeez serve`): all seven `BUCKETS` plus the
/// symbolic plan took it to 144 MB peak RSS, these three to 97 MB. They cover the usual chat
/// message (most are under 32 tokens) at 1.2× less latency than the symbolic plan at 16 and 32
/// tokens (`make bench-peer`), within the 128 MB budget. Longer messages run on the symbolic
/// plan, unpadded.
pub const INT8_PLAN_LENGTHS: [usize; 3] = [16, 24, 32];

/// The plans `warm` builds first: the most common lengths of chat messages.
const WARM_ORDER: [usize; 7] = [16, 32, 8, 64, 24, 48, 128];

/// Single-message length buckets, in tokens (special tokens included). A message longer than
/// the last one runs on the symbolic plan.
pub const BUCKETS: [usize; 7] = [8, 16, 24, 32, 48, 64, 128];

/// A loaded ONNX graph with inputs `input_ids`, `attention_mask` (int64, `[batch, sequence]`)
/// and one output `[batch, outputs]`, and its optimised plans.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Decluttered, with symbolic `batch` and `sequence` (the ONNX `dim_param` names), while a
    /// plan may still be built from it. Without per-length plans the one symbolic plan takes
    /// it: the plan packs its own copy of the weights, and keeping the graph would hold them
    /// twice for the life of the process (~42 MB for the shipped model).
    model: Mutex<Option<TypedModel>>,
    /// Rows of the word-embedding table, read off the graph at load.
    embedding_rows: Option<usize>,
    /// The lengths single messages get a plan of (`BUCKETS`, or `INT8_PLAN_LENGTHS`).
    lengths: &'static [usize],
    /// One plan per entry of `lengths`, for a batch of one.
    buckets: Vec<OnceLock<Result<Arc<TypedSimplePlan>, String>>>,
    symbolic: OnceLock<Result<Arc<TypedSimplePlan>, String>>,
    bucketed: bool,
}

/// A padded batch of token ids, row-major `[batch, sequence]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    pub batch: usize,
    pub sequence: usize,
    pub input_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
}

impl TokenBatch {
    /// The same rows with `to - sequence` padding tokens (id 0, mask 0) appended to each.
    fn padded_to(&self, to: usize) -> TokenBatch {
        let mut out = TokenBatch {
            batch: self.batch,
            sequence: to,
            input_ids: Vec::with_capacity(self.batch * to),
            attention_mask: Vec::with_capacity(self.batch * to),
        };
        let pad = to.saturating_sub(self.sequence);
        for row in 0..self.batch {
            let span = row * self.sequence..(row + 1) * self.sequence;
            out.input_ids
                .extend_from_slice(&self.input_ids[span.clone()]);
            out.input_ids.extend(std::iter::repeat_n(0, pad));
            out.attention_mask
                .extend_from_slice(&self.attention_mask[span]);
            out.attention_mask.extend(std::iter::repeat_n(0, pad));
        }
        out
    }
}

/// The bucket a single message of `tokens` tokens runs in, if any.
pub fn bucket_of(tokens: usize) -> Option<usize> {
    BUCKETS.iter().position(|&b| tokens <= b)
}

impl Engine {
    /// Parse and declutter once at start-up; the one symbolic plan is optimised on first use
    /// (or ahead, by `warm`).
    ///
    /// Length-bucketed plans are not the default: each optimised plan packs its own copy of
    /// the weights (about 33 MB for the shipped model, measured by `make bench-peer`), and on the
    /// machines measured they paid off only from 48-64 tokens (22% at 64), while chat messages
    /// are mostly under 32.
    pub fn from_onnx_bytes(bytes: &[u8]) -> Result<Self, ClassifierError> {
        Self::load(bytes, false, InferenceForm::F32)
    }

    /// As `from_onnx_bytes`; with `bucketed`, a single message runs on a plan optimised for its
    /// length bucket (built on first use), batches on the symbolic plan.
    ///
    /// In the `Int8` form the weight products are first rewritten to int8 ones (`int8::rewrite`);
    /// constant int8 weights left after that (all of them in the `F32` form) are widened to f32
    /// right after parsing (`DequantizeAxes` says why: it is most of what typing cost).
    pub fn load(
        bytes: &[u8],
        bucketed: bool,
        form: InferenceForm,
    ) -> Result<Self, ClassifierError> {
        let onnx = int8::onnx();
        // Decoded in place: tract's own reader first copies the file (20 MB) into a buffer.
        let mut proto = ModelProto::decode(bytes)
            .map_err(|e| ClassifierError::Engine(format!("the ONNX file does not decode: {e}")))?;
        if form == InferenceForm::Int8 {
            int8::rewrite(&mut proto);
        }
        let axes = DequantizeAxes::of(&proto);
        let mut model = onnx.model_for_proto_model(&proto)?;
        drop(proto);
        axes.widen(&mut model)?;
        let model = model.into_typed()?.into_decluttered()?;
        let lengths: &[usize] = match form {
            InferenceForm::F32 => &BUCKETS,
            InferenceForm::Int8 => &INT8_PLAN_LENGTHS,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                embedding_rows: embedding_rows(&model),
                model: Mutex::new(Some(model)),
                lengths,
                buckets: lengths.iter().map(|_| OnceLock::new()).collect(),
                symbolic: OnceLock::new(),
                bucketed,
            }),
        })
    }

    /// Rows of the largest constant table a `Gather` reads: the word embeddings. A token id at
    /// or past it has no row, so `Classifier::load` checks the tokenizer against it (a pruned
    /// vocabulary makes a tokenizer and a model from different runs a real possibility).
    pub fn embedding_rows(&self) -> Option<usize> {
        self.inner.embedding_rows
    }

    /// Build plans ahead of their first request, most used lengths first: chat messages are
    /// mostly under 32 tokens. Meant for a background thread right after start-up.
    ///
    /// Once every plan exists the decluttered graph has no further use, and is dropped: with
    /// per-length plans on, it holds the weights a further time (10.6 MB in int8).
    pub fn warm(&self) -> Result<(), ClassifierError> {
        if self.inner.bucketed {
            let lengths = self.inner.lengths;
            for length in WARM_ORDER {
                if let Some(bucket) = lengths.iter().position(|&l| l == length) {
                    self.bucket_plan(bucket)?;
                }
            }
        }
        self.symbolic_plan()?;
        self.inner
            .model
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        Ok(())
    }

    fn symbolic_plan(&self) -> Result<Arc<TypedSimplePlan>, ClassifierError> {
        let inner = &self.inner;
        cached(&inner.symbolic, || {
            let model = {
                let mut kept = inner.model.lock().unwrap_or_else(|e| e.into_inner());
                if inner.bucketed {
                    kept.clone()
                } else {
                    kept.take()
                }
            };
            // Gone only if an earlier optimisation took it and panicked before caching a result.
            let gone = "the decluttered graph is gone: an earlier optimisation of it panicked";
            optimise(model.ok_or_else(|| TractError::msg(gone))?)
        })
    }

    fn bucket_plan(&self, bucket: usize) -> Result<Arc<TypedSimplePlan>, ClassifierError> {
        let inner = &self.inner;
        cached(&inner.buckets[bucket], || {
            // A clone shares the weights; the lock is not held while optimising.
            let model = inner
                .model
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let model =
                model.ok_or_else(|| TractError::msg("no decluttered graph to plan from"))?;
            let mut values = HashMap::new();
            values.insert(model.sym("batch"), TDim::Val(1));
            let length = inner.lengths[bucket];
            values.insert(model.sym("sequence"), TDim::Val(length as i64));
            optimise(model.set_symbols(&values)?)
        })
    }

    /// The names of the matrix-product kernels tract chose in the plans built so far (for
    /// `make bench-peer`, which prints which kernel family each form ran on).
    pub fn kernels(&self) -> std::collections::BTreeSet<String> {
        let built = self.inner.buckets.iter().chain([&self.inner.symbolic]);
        let plans = built.filter_map(|cell| cell.get()?.as_ref().ok());
        let nodes = plans.flat_map(|plan| plan.model().nodes().iter());
        nodes
            .filter_map(|node| node.op_as::<OptMatMul>())
            .flat_map(|op| op.mmm.iter().map(|k| k.name().to_string()))
            .collect()
    }

    /// The op name of every node of the symbolic plan, once built (for `tract_tool rewrites`,
    /// which counts the scaling nodes around the products).
    pub fn plan_ops(&self) -> Vec<String> {
        match self.inner.symbolic.get() {
            Some(Ok(plan)) => op_names(plan),
            _ => Vec::new(),
        }
    }

    /// Run the graph; returns the logits row-major, `[batch, outputs]`, and `outputs`.
    pub fn run(&self, tokens: &TokenBatch) -> Result<(Vec<f32>, usize), ClassifierError> {
        let lengths = self.inner.lengths;
        let bucket = lengths
            .iter()
            .position(|&l| tokens.sequence <= l)
            .filter(|_| tokens.batch == 1 && self.inner.bucketed);
        match bucket {
            Some(b) => run_plan(&self.bucket_plan(b)?, &tokens.padded_to(lengths[b])),
            None => run_plan(&self.symbolic_plan()?, tokens),
        }
    }
}

/// Rows of the largest constant table a `Gather` reads: the word embeddings.
fn embedding_rows(model: &TypedModel) -> Option<usize> {
    model
        .nodes()
        .iter()
        .filter(|node| node.op_is::<Gather>())
        .filter_map(|node| {
            let fact = model.outlet_fact(node.inputs[0]).ok()?;
            fact.konst.as_ref()?.shape().first().copied()
        })
        .max()
}

/// The op name of every node of a plan.
pub fn op_names(plan: &TypedSimplePlan) -> Vec<String> {
    let nodes = plan.model().nodes().iter();
    nodes.map(|node| node.op.name().to_string()).collect()
}

fn optimise(model: TypedModel) -> TractResult<Arc<TypedSimplePlan>> {
    model.into_optimized()?.into_runnable()
}

/// The plan in `cell`, built by `build` the first time (a failed build is remembered: the same
/// graph would fail the same way again).
fn cached(
    cell: &OnceLock<Result<Arc<TypedSimplePlan>, String>>,
    build: impl FnOnce() -> TractResult<Arc<TypedSimplePlan>>,
) -> Result<Arc<TypedSimplePlan>, ClassifierError> {
    cell.get_or_init(|| build().map_err(|e| format!("{e:?}")))
        .clone()
        .map_err(ClassifierError::Engine)
}

fn run_plan(
    plan: &Arc<TypedSimplePlan>,
    tokens: &TokenBatch,
) -> Result<(Vec<f32>, usize), ClassifierError> {
    let shape = [tokens.batch, tokens.sequence];
    let ids = Tensor::from_shape(&shape, &tokens.input_ids)?;
    let mask = Tensor::from_shape(&shape, &tokens.attention_mask)?;
    let outputs = plan.run(tvec!(ids.into(), mask.into()))?;
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
