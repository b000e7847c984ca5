//! The `tagbeez` binary: chooses a mode, nothing else.
//!
//! - `AWS_LAMBDA_RUNTIME_API` set: serve Lambda events (API Gateway, SQS, Distributed Map
//!   batches and direct invocation).
//! - `tagbeez` or `tagbeez serve`: the local HTTP server on `HOST:PORT` (127.0.0.1:8080).
//! - `tagbeez classify`: JSON lines from stdin to stdout.
//! - `tagbeez export-feedback`: the feedback table as JSON lines on stdout.
//! - `tagbeez profile put|get|delete <shop_id>`, `tagbeez experiment-report <shop_id> <name>`:
//!   the operators' shop commands, on the DynamoDB tables.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use tagbeez::classifier::{self, embedded, Classifier, FormChoice, LoadOptions};
use tagbeez::config::{Config, DemoPage};
use tagbeez::events::EventBridgeSink;
use tagbeez::service::Tagger;
use tagbeez::store::{
    ConversationStore, DynamoExperiments, DynamoFeedback, DynamoProfiles, DynamoStore, MemoryStore,
};
use tagbeez::{api, cli, lambda, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let started = Instant::now();
    let mut config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return fail(&format!("configuration: {e}")),
    };
    tracing::subscriber::set_global_default(telemetry::logging::subscriber(
        &config.log_level,
        std::io::stderr,
    ))
    .expect("the only subscriber");
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    if config.demo_page == DemoPage::Auto {
        config.demo_page = if in_lambda {
            DemoPage::Off
        } else {
            DemoPage::On
        };
    }
    let mode = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    let rest: Vec<String> = std::env::args().skip(2).collect();
    classifier::threads::set(config.inference_threads);
    let classifier = match load_then_warm(config.inference_form) {
        Ok(c) => c,
        Err(e) => return fail(&format!("model: {e}")),
    };
    let model_version = classifier.labels().file.model_version.clone();
    let selection = classifier.selection();
    let model = ModelInfo {
        version: model_version.clone(),
        form: selection.form.to_string(),
        reason: selection.reason.clone(),
    };
    tracing::info!(
        model_version,
        form = %selection.form,
        why = %selection.reason,
        "model loaded"
    );
    if let Err(e) = telemetry::install(
        config.metrics,
        in_lambda,
        &config.metrics_namespace,
        &model_version,
    ) {
        return fail(&e.to_string());
    }
    let store: Arc<dyn ConversationStore> = match &config.dynamodb {
        Some(settings) => Arc::new(DynamoStore::connect(settings).await),
        None => Arc::new(MemoryStore::new()),
    };
    let mut tagger = Tagger::new(classifier, store, config.clone());
    if let Some(settings) = &config.feedback {
        tagger = tagger.with_feedback(Arc::new(DynamoFeedback::connect(settings).await));
    }
    if let Some(settings) = &config.profiles {
        tagger = tagger.with_profiles(Arc::new(DynamoProfiles::connect(settings).await));
    }
    if let Some(settings) = &config.experiments {
        tagger = tagger.with_experiments(Arc::new(DynamoExperiments::connect(settings).await));
    }
    if let Some(settings) = &config.events {
        let sink = Arc::new(EventBridgeSink::connect(settings).await);
        tagger = match tagger.with_events(sink, config.event_tags.as_deref()) {
            Ok(t) => t,
            Err(e) => return fail(&format!("configuration: {e}")),
        };
    }
    // The redaction patterns compile on first use (about 20 ms): not on a customer's message.
    let _ = tagbeez::redact::redact("+1 000 000 0000 a@b.c");
    telemetry::cold_start(started.elapsed());
    let result = if in_lambda {
        lambda::run(tagger).await.map_err(|e| e.to_string())
    } else {
        match mode.as_str() {
            "serve" => serve(tagger, &config, &model).await,
            "classify" => cli::classify(&tagger)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            "export-feedback" if config.feedback.is_none() => Err(
                "export-feedback reads the DynamoDB feedback table: set FEEDBACK_TABLE_NAME \
                 (and DYNAMODB_ENDPOINT for a local server)"
                    .into(),
            ),
            "export-feedback" => cli::export_feedback(tagger.feedback_store())
                .await
                .map(|n| tracing::info!(records = n, "feedback exported"))
                .map_err(|e| e.to_string()),
            "profile" => print(cli::profile(&tagger, &rest).await),
            "experiment-report" => print(cli::experiment_report(&tagger, &rest).await),
            other => Err(format!(
                "unknown command {other:?}; use `serve`, `classify`, `export-feedback`, \
                 `profile` or `experiment-report`"
            )),
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// The model as the greeting names it.
struct ModelInfo {
    version: String,
    form: String,
    reason: String,
}

async fn serve(tagger: Tagger, config: &Config, model: &ModelInfo) -> Result<(), String> {
    let addr = std::net::SocketAddr::new(config.host, config.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let addr = listener.local_addr().unwrap_or(addr);
    tracing::info!(%addr, "tagbeez listening");
    if cli::greet::wanted(config.log_format, std::io::stderr().is_terminal()) {
        let greeting = cli::greet::Greeting {
            addr,
            demo_page: config.demo_page == DemoPage::On,
            model_version: &model.version,
            form: model.form.clone(),
            form_reason: &model.reason,
            store: match &config.dynamodb {
                Some(d) => format!("DynamoDB table {}", d.table),
                None => "in memory (set TABLE_NAME for DynamoDB)".into(),
            },
        };
        eprint!("{}", greeting.render());
    }
    axum::serve(listener, api::router(tagger))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}

/// A command's output on stdout.
fn print(output: Result<String, String>) -> Result<(), String> {
    output.map(|text| println!("{text}"))
}

fn fail(message: &str) -> ExitCode {
    eprintln!("tagbeez: {message}");
    ExitCode::FAILURE
}

/// The embedded ONNX file is decoded: its pages can go before the plan is optimised, which is
/// when the resident set peaks. Failing to release them only costs memory.
fn release_embedded_model() {
    match embedded::release_onnx() {
        Ok(bytes) => tracing::debug!(bytes, "released the embedded model's pages"),
        Err(e) => tracing::warn!(error = %e, "the embedded model's pages stay resident"),
    }
}

/// Load the model on a thread of its own, hand it over, and let that thread go on to optimise
/// its plan off the start-up path: the first answer waits only for what is left of that.
///
/// Both on one thread because glibc gives each thread its own malloc arena: memory the load
/// frees (the parsed protobuf, the int8 weights once widened) is reused by the optimisation only
/// on the same thread. Loading on the main thread and optimising on another cost 36 MB more
/// peak RSS (measured: 166 against 130 MB at the first answer, `tagbeez serve`).
fn load_then_warm(form: FormChoice) -> Result<Arc<Classifier>, classifier::ClassifierError> {
    let options = LoadOptions {
        form,
        per_length_plans: None,
    };
    let (loaded, received) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("tagbeez-model".into())
        .spawn(move || {
            let classifier = Classifier::load_with(embedded::model_files(), options).map(Arc::new);
            release_embedded_model();
            let warm = classifier.as_ref().ok().map(Arc::clone);
            let _ = loaded.send(classifier);
            match warm.map(|c| c.warm()) {
                Some(Ok(())) => classifier::pages::trim_heap(),
                Some(Err(e)) => tracing::error!(error = %e, "optimising the model's plans failed"),
                None => {}
            }
        });
    match spawned {
        Ok(_) => received.recv().unwrap_or_else(|_| {
            Err(classifier::ClassifierError::Engine(
                "the model thread stopped before the model loaded".into(),
            ))
        }),
        Err(e) => {
            tracing::warn!(error = %e, "no model thread; plans are built on first use");
            let classifier = Classifier::load_with(embedded::model_files(), options).map(Arc::new);
            release_embedded_model();
            classifier
        }
    }
}
