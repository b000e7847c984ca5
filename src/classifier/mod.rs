//! The inference core: tokenizer + tract + per-tag thresholds. Synchronous, and free of any
//! HTTP or storage type, so every adapter (HTTP, direct invoke, CLI) shares it unchanged.

mod batching;
mod dequantize;
pub mod embedded;
mod engine;
mod error;
pub mod int8;
mod labels;
mod occlude;
pub mod pages;
pub mod threads;
mod tokenize;

use std::time::{Duration, Instant};

pub use batching::{sub_batches, MAX_SUB_BATCH};
pub use dequantize::DequantizeAxes;
pub use engine::{bucket_of, op_names, Engine, TokenBatch, BUCKETS, INT8_PLAN_LENGTHS};
pub use error::ClassifierError;
pub use int8::{Cpu, FormChoice, FormChoiceError, InferenceForm, Selection};
pub use labels::{LabelFile, Labels};
pub use occlude::{words, Occlusion, WordSpan};
pub use tokenize::{pad, EncodedBatch, EncodedRow, TextEncoder};

/// The model files a classifier is built from.
#[derive(Debug, Clone, Copy)]
pub struct ModelFiles<'a> {
    pub onnx: &'a [u8],
    pub tokenizer_json: &'a [u8],
    pub labels_json: &'a [u8],
}

/// One message's result: a probability per tag, in the label file's order. They are calibrated
/// probabilities: the pipeline folds a per-tag temperature (fitted on real validation messages,
/// recorded in `labels.json`) into the model's last layer, so the sigmoid of its output needs no
/// further scaling here, and the thresholds are on the same scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub probabilities: Vec<f32>,
    /// Whether tokens past the model's maximum were cut off before inference.
    pub truncated: bool,
    /// Tokens the model saw, special tokens included.
    pub tokens: usize,
}

/// Where one batch's time went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Split {
    pub tokenize: Duration,
    pub inference: Duration,
}

/// How a classifier is loaded: which execution form, and whether single messages get a plan
/// per length bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// `INFERENCE_FORM`: by default chosen from the CPU (`int8::form`).
    pub form: FormChoice,
    /// `None`: the form's default. Per-length plans are on for int8 (16, 24 and 32 tokens),
    /// where they were measured 1.2× faster at 16 and 32 tokens for about 12 MB each, and off
    /// for f32, where each plan holds ~33 MB of f32 weights and paid off only from 48-64 tokens
    /// (docs/performance.md).
    pub per_length_plans: Option<bool>,
}

/// A loaded model: build once, share read-only (it is `Send + Sync`).
#[derive(Debug, Clone)]
pub struct Classifier {
    labels: Labels,
    encoder: TextEncoder,
    engine: Engine,
    selection: Selection,
}

impl Classifier {
    /// The execution form chosen by this CPU, each form's default plans.
    pub fn load(files: ModelFiles<'_>) -> Result<Self, ClassifierError> {
        Self::load_with(files, LoadOptions::default())
    }

    pub fn load_with(files: ModelFiles<'_>, options: LoadOptions) -> Result<Self, ClassifierError> {
        let selection = Selection::choose(options.form, Cpu::detect());
        let bucketed = options
            .per_length_plans
            .unwrap_or(selection.form == InferenceForm::Int8);
        let labels = Labels::from_json(files.labels_json)?;
        let (encoder, engine) = load_side_by_side(
            || TextEncoder::from_bytes(files.tokenizer_json, labels.file.max_tokens),
            || Engine::load(files.onnx, bucketed, selection.form),
        );
        let (encoder, engine) = (encoder?, engine?);
        check_vocabulary(encoder.vocab_size(), engine.embedding_rows())?;
        Ok(Self {
            labels,
            encoder,
            engine,
            selection,
        })
    }

    /// The execution form that runs, and why (for `/` and the start-up log).
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// Classify messages in one padded batch. Results are in input order.
    pub fn classify_batch(&self, messages: &[&str]) -> Result<Vec<Prediction>, ClassifierError> {
        self.classify_batch_timed(messages)
            .map(|(predictions, _)| predictions)
    }

    /// As `classify_batch`, with the time spent tokenizing and in the model (for metrics and
    /// the `Server-Timing` header).
    pub fn classify_batch_timed(
        &self,
        messages: &[&str],
    ) -> Result<(Vec<Prediction>, Split), ClassifierError> {
        let started = Instant::now();
        let rows = self.encoder.encode_rows(messages)?;
        let tokenize = started.elapsed();
        let width = self.labels.tags.len();
        let lengths: Vec<usize> = rows.iter().map(|r| r.ids.len()).collect();
        let mut probabilities = vec![Vec::new(); rows.len()];
        for group in sub_batches(&lengths) {
            let batch = pad(&group.iter().map(|&i| &rows[i]).collect::<Vec<_>>());
            let (logits, outputs) = self.engine.run(&batch)?;
            if outputs != width {
                return Err(ClassifierError::Labels(format!(
                    "the model has {outputs} outputs but the label file names {width} tags"
                )));
            }
            for (&i, row) in group.iter().zip(logits.chunks(width)) {
                probabilities[i] = row.iter().map(|&z| sigmoid(z)).collect();
            }
        }
        let split = Split {
            tokenize,
            inference: started.elapsed() - tokenize,
        };
        let predictions = probabilities
            .into_iter()
            .zip(rows.iter().zip(&lengths))
            .map(|(probabilities, (row, &tokens))| Prediction {
                probabilities,
                truncated: row.truncated,
                tokens,
            })
            .collect();
        Ok((predictions, split))
    }

    /// Optimise the engine's plans now (see `Engine::warm`): for a background thread at
    /// start-up, so that no request waits for its length's plan.
    pub fn warm(&self) -> Result<(), ClassifierError> {
        self.engine.warm()
    }

    /// Indices of the tags at or above their threshold, most confident first.
    pub fn selected(&self, prediction: &Prediction) -> Vec<usize> {
        self.selected_with(prediction, &self.labels.thresholds)
    }

    /// As `selected`, against other per-tag thresholds (in the label file's tag order): a
    /// caller's own for one call.
    pub fn selected_with(&self, prediction: &Prediction, thresholds: &[f32]) -> Vec<usize> {
        let mut picked: Vec<usize> = (0..self.labels.tags.len())
            .filter(|&i| prediction.probabilities[i] >= thresholds[i])
            .collect();
        picked
            .sort_by(|&a, &b| prediction.probabilities[b].total_cmp(&prediction.probabilities[a]));
        picked
    }
}

/// Every id the tokenizer can produce must have an embedding row. A pruned vocabulary
/// (`model/pipeline/prune.py`) makes a tokenizer and a model from different runs a real mix-up,
/// and tract would only find out on the first message holding a rare piece.
fn check_vocabulary(pieces: usize, rows: Option<usize>) -> Result<(), ClassifierError> {
    match rows {
        Some(rows) if pieces > rows => Err(ClassifierError::Tokenizer(format!(
            "the tokenizer has {pieces} pieces but the model's embedding table only {rows} rows: \
             tokenizer.json and tagger.onnx are not from the same pipeline run"
        ))),
        _ => Ok(()),
    }
}

/// Numerically stable logistic function.
pub fn sigmoid(z: f32) -> f32 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Runs `tokenizer` on a thread of its own while `engine` runs on this one, and returns both.
///
/// Parsing the tokenizer takes about 8 ms, the engine about 100: on an instance with a second
/// vCPU the tokenizer costs no wall time (its malloc arena still costs 2-4 MB). Where no thread
/// can be started, both run here, one after the other. The engine stays on the caller's thread,
/// which `main.rs` relies on (one malloc arena for the load and the optimisation that follows).
fn load_side_by_side<A: Send, B>(
    tokenizer: impl FnOnce() -> A + Send,
    engine: impl FnOnce() -> B,
) -> (A, B) {
    // The closure sits where both sides can reach it: if the thread cannot start, this thread
    // takes it back (a failed spawn drops what it was given).
    let job = std::sync::Mutex::new(Some(tokenizer));
    let take = || job.lock().ok().and_then(|mut slot| slot.take());
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("tagbeez-tokenizer".into())
            .spawn_scoped(scope, || take().map(|run| run()));
        let engine = engine();
        let done = match spawned {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(e) => {
                tracing::debug!(error = %e, "no tokenizer thread; loading it here");
                None
            }
        };
        let tokenizer = done
            .or_else(|| take().map(|run| run()))
            .expect("the tokenizer job runs on exactly one side");
        (tokenizer, engine)
    })
}

#[cfg(test)]
mod tests {
    use super::{check_vocabulary, load_side_by_side, sigmoid};

    #[test]
    fn the_tokenizer_loads_on_its_own_thread_beside_the_engine() {
        let here = std::thread::current().id();
        let (tokenizer, engine) = load_side_by_side(
            || {
                let me = std::thread::current();
                (me.id(), me.name().map(str::to_owned))
            },
            || std::thread::current().id(),
        );
        assert_eq!(engine, here, "the engine stays on the caller's thread");
        assert_ne!(tokenizer.0, here);
        assert_eq!(tokenizer.1.as_deref(), Some("tagbeez-tokenizer"));
    }

    #[test]
    fn a_panic_while_loading_the_tokenizer_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| {
            load_side_by_side(|| -> u8 { panic!("tokenizer broke") }, || 1u8)
        });
        let message = caught.expect_err("the panic is resumed");
        assert_eq!(message.downcast_ref::<&str>(), Some(&"tokenizer broke"));
    }

    #[test]
    fn a_tokenizer_with_more_pieces_than_embedding_rows_is_refused() {
        assert!(check_vocabulary(22_387, Some(22_387)).is_ok());
        assert!(check_vocabulary(100, None).is_ok());
        let err = check_vocabulary(30_522, Some(22_387))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("30522 pieces") && err.contains("22387 rows"),
            "{err}"
        );
    }

    #[test]
    fn sigmoid_is_stable_at_the_extremes() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!((sigmoid(2.0) - 0.880_797).abs() < 1e-6);
        assert!((sigmoid(-2.0) - 0.119_203).abs() < 1e-6);
        assert_eq!(sigmoid(-200.0), 0.0);
        assert_eq!(sigmoid(200.0), 1.0);
        assert!(!sigmoid(f32::NEG_INFINITY).is_nan());
    }
}
