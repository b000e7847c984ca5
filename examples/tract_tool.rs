//! A small driver around the inference core's tract engine for the model pipeline (Python):
//!
//! - `tract_tool logits MODEL.onnx` reads JSON lines `{"input_ids": [[..]], "attention_mask":
//!   [[..]]}` (one padded batch each) on stdin and prints one `{"logits": [[..]]}` line per
//!   batch: the pipeline compares it with onnxruntime and scores F1 with it, so the graph is
//!   checked in the engine the service ships.
//! - `tract_tool bench MODEL.onnx [RUNS] [plain]` prints load time, median latency of one
//!   message of 8, 16, 32 and 64 tokens, and peak memory, as JSON: the quantization table's
//!   tract columns and `make bench-peer`'s tract rows. By default on the length-bucketed plans
//!   the service runs; `plain` uses the one symbolic plan instead. `INFERENCE_THREADS=n`
//!   spreads each inference over n threads, as the service does.
//! - `tract_tool startup MODEL.onnx [RUNS]` prints, as one JSON line per form, the median over
//!   RUNS (default 5) of each start-up phase in milliseconds: decoding the protobuf, building
//!   tract's graph, widening constant int8 weights to f32 (`widened` form only, as
//!   `Engine::load` does), typing, decluttering (what `Engine::load` does before the service
//!   answers), optimising into a plan, and the first run of a 16-token message. The `as_stored`
//!   form skips the widening, so tract types and folds the int8 weights itself; both decode the
//!   protobuf in place as `Engine::load` does, and the two alternate in each run.
//!
//! It is an example, not a binary, so the Lambda build never packages it.

use std::io::Read;
use std::time::Instant;

use serde::Deserialize;
use tagbeez::classifier::{Engine, TokenBatch};

#[derive(Deserialize)]
struct Inputs {
    input_ids: Vec<Vec<i64>>,
    attention_mask: Vec<Vec<i64>>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("logits"), Some(path)) => logits(path),
        (Some("startup"), Some(path)) => startup(path, args.get(3).and_then(|r| r.parse().ok())),
        (Some("bench"), Some(path)) => bench(
            path,
            args.get(3).and_then(|r| r.parse().ok()),
            args.get(4).is_none_or(|m| m != "plain"),
        ),
        _ => Err(
            "usage: tract_tool logits MODEL.onnx < inputs.json | bench MODEL.onnx [RUNS] [plain] \
             | startup MODEL.onnx [RUNS]"
                .into(),
        ),
    };
    if let Err(err) = result {
        eprintln!("tract_tool: {err}");
        std::process::exit(1);
    }
}

fn load(path: &str, bucketed: bool) -> Result<(Engine, f64), Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    let threads = std::env::var("INFERENCE_THREADS")
        .ok()
        .and_then(|t| t.parse().ok());
    tagbeez::classifier::threads::set(threads.unwrap_or(1));
    let start = Instant::now();
    let engine = Engine::load(&bytes, bucketed)?;
    Ok((engine, start.elapsed().as_secs_f64() * 1e3))
}

fn logits(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    // The one symbolic plan, unpadded: per-length plans pad the message, which changes what a
    // graph with dynamic activation quantization computes (its ranges include the padding).
    let (engine, _) = load(path, false)?;
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let inputs: Inputs = serde_json::from_str(line)?;
        let sequence = inputs.input_ids.first().map_or(0, Vec::len);
        let tokens = TokenBatch {
            batch: inputs.input_ids.len(),
            sequence,
            input_ids: inputs.input_ids.concat(),
            attention_mask: inputs.attention_mask.concat(),
        };
        let (flat, width) = engine.run(&tokens)?;
        let rows: Vec<&[f32]> = flat.chunks(width).collect();
        println!("{}", serde_json::json!({ "logits": rows }));
    }
    Ok(())
}

/// Synthetic ids: [CLS] + ordinary word-piece ids + [SEP]; latency does not depend on which
/// ids, only on how many.
fn message_of(tokens: usize) -> TokenBatch {
    let mut ids: Vec<i64> = (0..tokens as i64).map(|i| 2000 + (i * 37) % 5000).collect();
    ids[0] = 101;
    ids[tokens - 1] = 102;
    TokenBatch {
        batch: 1,
        sequence: tokens,
        input_ids: ids,
        attention_mask: vec![1; tokens],
    }
}

fn bench(
    path: &str,
    runs: Option<usize>,
    bucketed: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let runs = runs.unwrap_or(40).max(1);
    let (engine, load_ms) = load(path, bucketed)?;
    let mut p50 = serde_json::Map::new();
    for tokens in [8usize, 16, 32, 64] {
        let batch = message_of(tokens);
        for _ in 0..3 {
            engine.run(&batch)?;
        }
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                engine
                    .run(&batch)
                    .map(|_| start.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_, _>>()?;
        times.sort_by(f64::total_cmp);
        p50.insert(tokens.to_string(), times[times.len() / 2].into());
    }
    let report = serde_json::json!({
        "load_ms": load_ms,
        "p50_ms": p50,
        "peak_rss_mb": peak_rss_mb(),
    });
    println!("{report}");
    Ok(())
}

/// The process's peak resident set (VmHWM), in MiB; Linux only, 0 elsewhere.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Each start-up phase on its own clock, the median of `runs` fresh loads.
fn startup(path: &str, runs: Option<usize>) -> Result<(), Box<dyn std::error::Error>> {
    use tract_onnx::prelude::*;
    let bytes = std::fs::read(path)?;
    let names = [
        "read",
        "parse",
        "widen",
        "type",
        "declutter",
        "optimise",
        "first_run_16",
    ];
    let forms = ["as_stored", "widened"];
    let mut times = vec![vec![Vec::<f64>::new(); names.len()]; forms.len()];
    let message = message_of(16);
    let ids = tract_ndarray::Array2::from_shape_vec((1, 16), message.input_ids)?;
    let mask = tract_ndarray::Array2::from_shape_vec((1, 16), message.attention_mask)?;
    // The two forms alternate within each run, so that both see the same machine.
    for _ in 0..runs.unwrap_or(5).max(1) {
        for (form, times) in times.iter_mut().enumerate() {
            let mut clock = Instant::now();
            let mut lap = |phase: usize| {
                times[phase].push(clock.elapsed().as_secs_f64() * 1e3);
                clock = Instant::now();
            };
            let onnx = tract_onnx::onnx();
            let proto = <tract_onnx::pb::ModelProto as prost::Message>::decode(bytes.as_slice())?;
            let axes = tagbeez::classifier::DequantizeAxes::of(&proto);
            lap(0);
            let mut model = onnx.model_for_proto_model(&proto)?;
            drop(proto);
            lap(1);
            if form == 1 {
                axes.widen(&mut model)?;
            }
            lap(2);
            let typed = model.into_typed()?;
            lap(3);
            let decluttered = typed.into_decluttered()?;
            lap(4);
            let plan = decluttered.into_optimized()?.into_runnable()?;
            lap(5);
            plan.run(tvec!(ids.clone().into_tvalue(), mask.clone().into_tvalue()))?;
            lap(6);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (form, times) in forms.iter().zip(times.iter_mut()) {
        let mut out = serde_json::Map::new();
        out.insert("form".into(), (*form).into());
        for (name, v) in names.iter().zip(times.iter_mut()) {
            out.insert(name.to_string(), median(v).into());
        }
        let total: f64 = times.iter_mut().map(median).sum();
        out.insert("total".into(), total.into());
        println!("{}", serde_json::Value::Object(out));
    }
    Ok(())
}
