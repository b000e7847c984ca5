//! The `tagbeez` binary: chooses a mode, nothing else.
//!
//! - `AWS_LAMBDA_RUNTIME_API` set: serve Lambda events (API Gateway and direct invocation).
//! - `tagbeez` or `tagbeez serve`: the local HTTP server on `HOST:PORT` (127.0.0.1:8080).
//! - `tagbeez classify`: JSON lines from stdin to stdout.
//! - `tagbeez export-feedback`: the feedback table as JSON lines on stdout.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use tagbeez::classifier::{self, embedded, Classifier};
use tagbeez::config::{Config, DemoPage};
use tagbeez::service::Tagger;
use tagbeez::store::{ConversationStore, DynamoFeedback, DynamoStore, MemoryStore};
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
    let classifier = match Classifier::load(embedded::model_files()) {
        Ok(c) => Arc::new(c),
        Err(e) => return fail(&format!("model: {e}")),
    };
    classifier::threads::set(config.inference_threads);
    warm_in_background(&classifier);
    let model_version = classifier.labels().file.model_version.clone();
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
    telemetry::cold_start(started.elapsed());
    let result = if in_lambda {
        lambda::run(tagger).await.map_err(|e| e.to_string())
    } else {
        match mode.as_str() {
            "serve" => serve(tagger, &config).await,
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
            other => Err(format!(
                "unknown command {other:?}; use `serve`, `classify` or `export-feedback`"
            )),
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

async fn serve(tagger: Tagger, config: &Config) -> Result<(), String> {
    let addr = std::net::SocketAddr::new(config.host, config.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, "tagbeez listening");
    axum::serve(listener, api::router(tagger))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}

fn fail(message: &str) -> ExitCode {
    eprintln!("tagbeez: {message}");
    ExitCode::FAILURE
}

/// Optimise the per-length plans off the start-up path: the first answer waits only for its
/// own length's plan, and later ones for none.
fn warm_in_background(classifier: &Arc<Classifier>) {
    let classifier = Arc::clone(classifier);
    let spawned = std::thread::Builder::new()
        .name("tagbeez-warm".into())
        .spawn(move || {
            if let Err(e) = classifier.warm() {
                tracing::error!(error = %e, "optimising the model's plans failed");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no warm-up thread; plans are built on first use");
    }
}
