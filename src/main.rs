//! The `tagbeez` binary: chooses a mode, nothing else.
//!
//! - `AWS_LAMBDA_RUNTIME_API` set: serve Lambda events (API Gateway and direct invocation).
//! - `tagbeez` or `tagbeez serve`: the local HTTP server on `HOST:PORT` (127.0.0.1:8080).
//! - `tagbeez classify`: JSON lines from stdin to stdout.

use std::process::ExitCode;
use std::sync::Arc;

use tagbeez::classifier::{embedded, Classifier};
use tagbeez::config::Config;
use tagbeez::service::Tagger;
use tagbeez::store::{ConversationStore, DynamoStore, MemoryStore};
use tagbeez::{api, cli, lambda};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return fail(&format!("configuration: {e}")),
    };
    init_logging(&config.log_level);
    let mode = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    let classifier = match Classifier::load(embedded::model_files()) {
        Ok(c) => Arc::new(c),
        Err(e) => return fail(&format!("model: {e}")),
    };
    let store: Arc<dyn ConversationStore> = match &config.dynamodb {
        Some(settings) => Arc::new(DynamoStore::connect(settings).await),
        None => Arc::new(MemoryStore::new()),
    };
    let tagger = Tagger::new(classifier, store, config.clone());
    let result = if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        lambda::run(tagger).await.map_err(|e| e.to_string())
    } else {
        match mode.as_str() {
            "serve" => serve(tagger, &config).await,
            "classify" => cli::classify(&tagger)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            other => Err(format!(
                "unknown command {other:?}; use `serve` or `classify`"
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

/// JSON log lines on stderr (stdout carries `classify` results).
fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_current_span(false)
        .init();
}

fn fail(message: &str) -> ExitCode {
    eprintln!("tagbeez: {message}");
    ExitCode::FAILURE
}
