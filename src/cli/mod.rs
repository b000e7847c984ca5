//! `tagbeez classify`: JSON lines in (`{"message": ..., "id"?: ...}`), one JSON result per
//! line out, batched internally: the tool for tagging a dump of past chats. The operators'
//! shop commands are in `shops`; `tagbeez serve`'s greeting on a terminal is in `greet`.

pub mod greet;
mod shops;

pub use shops::{experiment_report, profile};

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::api::ApiError;
use crate::service::Tagger;

/// Lines classified per inference.
const BATCH: usize = 32;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    message: String,
    #[serde(default)]
    id: Option<Value>,
}

/// Read stdin to the end, write one line per input line (blank lines are skipped). A bad line
/// gets `{"line": n, "error": ...}` and the run goes on. Returns the number of bad lines.
pub async fn classify(tagger: &Tagger) -> std::io::Result<usize> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
    let (mut pending, mut bad, mut number) = (Vec::new(), 0, 0usize);
    while let Some(text) = lines.next_line().await? {
        number += 1;
        if !text.trim().is_empty() {
            pending.push((number, text));
        }
        if pending.len() == BATCH {
            bad += flush(tagger, &mut pending, &mut out).await?;
        }
    }
    bad += flush(tagger, &mut pending, &mut out).await?;
    out.flush().await?;
    Ok(bad)
}

async fn flush(
    tagger: &Tagger,
    pending: &mut Vec<(usize, String)>,
    out: &mut (impl AsyncWriteExt + Unpin),
) -> std::io::Result<usize> {
    let mut results: Vec<Value> = Vec::with_capacity(pending.len());
    let mut good = Vec::new();
    for (number, text) in pending.drain(..) {
        match serde_json::from_str::<Line>(&text) {
            Ok(line) => {
                good.push((results.len(), line));
                results.push(Value::Null);
            }
            Err(e) => results.push(json!({"line": number, "error": format!("invalid line: {e}")})),
        }
    }
    let messages: Vec<String> = good.iter().map(|(_, l)| l.message.clone()).collect();
    match tagger.classify_batch(&messages).await {
        Ok(batch) => {
            for ((slot, line), result) in good.into_iter().zip(batch) {
                let mut value = serde_json::to_value(result).expect("results serialize");
                if let Some(id) = line.id {
                    value["id"] = id;
                }
                results[slot] = value;
            }
        }
        // One bad message must not lose its neighbours: classify them one by one.
        Err(_) if !messages.is_empty() => {
            for (slot, line) in good {
                results[slot] = match tagger.classify_message(&line.message).await {
                    Ok(r) => {
                        let mut value = serde_json::to_value(r).expect("results serialize");
                        if let Some(id) = &line.id {
                            value["id"] = id.clone();
                        }
                        value
                    }
                    Err(e) => json!({"id": line.id, "error": ApiError::from(e).body().error}),
                };
            }
        }
        Err(_) => {}
    }
    let bad = results.iter().filter(|v| v.get("error").is_some()).count();
    for value in results {
        out.write_all(value.to_string().as_bytes()).await?;
        out.write_all(b"\n").await?;
    }
    Ok(bad)
}

/// `tagbeez export-feedback`: every stored correction as one JSON line on stdout (the format
/// `make model FEEDBACK=file.jsonl` reads). Returns the number of lines written.
pub async fn export_feedback(
    store: &dyn crate::store::FeedbackStore,
) -> Result<usize, ExportError> {
    let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
    let written = export_to(store, &mut out).await?;
    out.flush().await?;
    Ok(written)
}

/// As `export_feedback`, to any writer.
pub async fn export_to(
    store: &dyn crate::store::FeedbackStore,
    out: &mut (impl AsyncWriteExt + Unpin),
) -> Result<usize, ExportError> {
    let (mut after, mut written) = (None, 0);
    loop {
        let (records, next) = store.page(after).await?;
        for record in &records {
            let line = serde_json::to_string(record).expect("records serialize");
            out.write_all(line.as_bytes()).await?;
            out.write_all(b"\n").await?;
            written += 1;
        }
        match next {
            Some(key) => after = Some(key),
            None => return Ok(written),
        }
    }
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("reading the feedback table: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("writing the export: {0}")]
    Write(#[from] std::io::Error),
}
