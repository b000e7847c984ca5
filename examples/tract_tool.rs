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
//! - `tract_tool redact` reads JSON lines `{"text": ..}` on stdin and prints one line
//!   `{"text": .., "counts": {"email", "phone", "card", "iban", "address"}}` per input line:
//!   the text through `tagbeez::redact`, the same code the service runs, so that
//!   `pipeline/redaction.py` measures the model on exactly what it would see.
//!
//! It is an example, not a binary, so the Lambda build never packages it.

use std::io::{Read, Write};
use std::time::Instant;

use serde::Deserialize;
use tagbeez::classifier::{Cpu, Engine, FormChoice, InferenceForm, Selection, TokenBatch};

#[derive(Deserialize)]
struct Inputs {
    input_ids: Vec<Vec<i64>>,
    attention_mask: Vec<Vec<i64>>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("redact"), _) => redact(),
        (Some("logits"), Some(path)) => logits(path),
        (Some("startup"), Some(path)) => startup(path, args.get(3).and_then(|r| r.parse().ok())),
        (Some("rewrites"), Some(path)) => rewrites(
            path,
            args.get(3).map(String::as_str),
            args.get(4).and_then(|r| r.parse().ok()),
        ),
        (Some("bench"), Some(path)) => bench(
            path,
            args.get(3).and_then(|r| r.parse().ok()),
            args.get(4).is_none_or(|m| m != "plain"),
        ),
        _ => Err(
            "usage: tract_tool logits MODEL.onnx < inputs.json | bench MODEL.onnx [RUNS] [plain] \
             | startup MODEL.onnx [RUNS] | rewrites MODEL.onnx ORT_DYNAMIC_INT8.onnx [RUNS] \
             | redact < texts.json"
                .into(),
        ),
    };
    if let Err(err) = result {
        eprintln!("tract_tool: {err}");
        std::process::exit(1);
    }
}

fn load(
    path: &str,
    bucketed: bool,
) -> Result<(Engine, f64, InferenceForm), Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    let threads = std::env::var("INFERENCE_THREADS")
        .ok()
        .and_then(|t| t.parse().ok());
    tagbeez::classifier::threads::set(threads.unwrap_or(1));
    let start = Instant::now();
    let choice: FormChoice = std::env::var("INFERENCE_FORM")
        .unwrap_or_default()
        .parse()?;
    let form = Selection::choose(choice, Cpu::detect()).form;
    let engine = Engine::load(&bytes, bucketed, form)?;
    Ok((engine, start.elapsed().as_secs_f64() * 1e3, form))
}

fn logits(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    // The one symbolic plan, unpadded: per-length plans pad the message, which changes what a
    // graph with dynamic activation quantization computes (its ranges include the padding).
    let (engine, _, _) = load(path, false)?;
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

#[derive(Deserialize)]
struct Text {
    text: String,
}

fn redact() -> Result<(), Box<dyn std::error::Error>> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in input.lines().filter(|l| !l.trim().is_empty()) {
        let Text { text } = serde_json::from_str(line)?;
        let redacted = tagbeez::redact::redact(&text);
        serde_json::to_writer(&mut out, &redacted)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
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
    let (engine, load_ms, form) = load(path, bucketed)?;
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
    let peak = peak_rss_mb();
    let kernels: Vec<String> = engine.kernels().into_iter().collect();
    // Every plan the service would build ahead of traffic (`Engine::warm`), then the memory.
    engine.warm()?;
    let report = serde_json::json!({
        "form": form.as_str(),
        "load_ms": load_ms,
        "p50_ms": p50,
        "peak_rss_mb": peak,
        "peak_rss_all_plans_mb": peak_rss_mb(),
        "kernels": kernels,
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

/// The `Cast` and `Mul` nodes (not `MatMul`) among a plan's op names: the scaling around the
/// products.
fn scaling_nodes(names: &[String]) -> (usize, usize) {
    let casts = names.iter().filter(|n| n.contains("Cast")).count();
    let muls = names
        .iter()
        .filter(|n| n.contains("Mul") && !n.contains("MatMul"));
    (casts, muls.count())
}

/// One way of running a 16- or 32-token message, for `rewrites`.
type Runner = Box<dyn Fn(&TokenBatch) -> Result<(), Box<dyn std::error::Error>>>;

/// A plan of an ONNX file as tract-onnx parses it with `framework`'s op register: symbolic batch
/// and sequence, no widening (for onnxruntime's dynamic-int8 graph, which has no int8 weights
/// behind `DequantizeLinear`).
fn plain_plan(
    framework: tract_onnx::Onnx,
    path: &str,
) -> Result<(Runner, usize, usize), Box<dyn std::error::Error>> {
    use tract_onnx::prelude::*;
    let plan = framework
        .model_for_path(path)?
        .into_optimized()?
        .into_runnable()?;
    let (casts, muls) = scaling_nodes(&tagbeez::classifier::op_names(&plan));
    let run: Runner = Box::new(move |t: &TokenBatch| {
        let shape = [t.batch, t.sequence];
        let ids = Tensor::from_shape(&shape, &t.input_ids)?;
        let mask = Tensor::from_shape(&shape, &t.attention_mask)?;
        plan.run(tvec!(ids.into(), mask.into()))?;
        Ok(())
    });
    Ok((run, casts, muls))
}

/// Each rewrite of the int8 form measured side by side in one process, one thread: the
/// shipped f32 form; onnxruntime's dynamic-int8 graph of the same weights with tract-onnx's
/// own `DynamicQuantizeLinear` and with the project's vectorised one; the project's int8
/// product (one plan, then per-length plans). The variants take turns, 20 runs at a time, so
/// that all see the same machine; one JSON line per variant with its medians and the scaling
/// nodes (`Cast`, `Mul`) its plan holds.
fn rewrites(
    path: &str,
    ort: Option<&str>,
    runs: Option<usize>,
) -> Result<(), Box<dyn std::error::Error>> {
    let ort = ort.ok_or("rewrites needs onnxruntime's dynamic-int8 file as its second argument")?;
    let runs = runs.unwrap_or(200).max(20);
    tagbeez::classifier::threads::set(1);
    let bytes = std::fs::read(path)?;
    let engine_runner = |engine: Engine| -> Runner {
        Box::new(move |t: &TokenBatch| {
            engine.run(t)?;
            Ok(())
        })
    };
    let engine_counts = |engine: &Engine| {
        engine.warm().ok();
        scaling_nodes(&engine.plan_ops())
    };
    let mut variants: Vec<(&str, Runner, usize, usize)> = Vec::new();
    let f32 = Engine::load(&bytes, false, InferenceForm::F32)?;
    let (c, m) = engine_counts(&f32);
    variants.push(("shipped f32 form, one plan", engine_runner(f32), c, m));
    let (run, c, m) = plain_plan(tract_onnx::onnx(), ort)?;
    variants.push((
        "onnxruntime dynamic-int8 graph, tract's DynamicQuantizeLinear",
        run,
        c,
        m,
    ));
    let (run, c, m) = plain_plan(tagbeez::classifier::int8::onnx(), ort)?;
    variants.push((
        "onnxruntime dynamic-int8 graph, vectorised DynamicQuantizeLinear",
        run,
        c,
        m,
    ));
    let int8 = Engine::load(&bytes, false, InferenceForm::Int8)?;
    let (c, m) = engine_counts(&int8);
    variants.push((
        "int8 form (one product node per weight), one plan",
        engine_runner(int8),
        c,
        m,
    ));
    let bucketed = Engine::load(&bytes, true, InferenceForm::Int8)?;
    let (c, m) = engine_counts(&bucketed);
    variants.push(("int8 form, per-length plans", engine_runner(bucketed), c, m));
    for tokens in [16usize, 32] {
        let message = message_of(tokens);
        let mut times = vec![Vec::new(); variants.len()];
        for (_, run, _, _) in &variants {
            for _ in 0..3 {
                run(&message)?;
            }
        }
        for _ in 0..runs / 20 {
            for ((_, run, _, _), times) in variants.iter().zip(times.iter_mut()) {
                for _ in 0..20 {
                    let start = Instant::now();
                    run(&message)?;
                    times.push(start.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
        for ((name, _, casts, muls), times) in variants.iter().zip(times.iter_mut()) {
            times.sort_by(f64::total_cmp);
            let line = serde_json::json!({
                "variant": name, "tokens": tokens, "p50_ms": times[times.len() / 2],
                "cast_nodes": casts, "mul_nodes": muls,
            });
            println!("{line}");
        }
    }
    Ok(())
}
