//! Log lines: JSON on stderr (stdout carries `classify` results and, in Lambda, the EMF
//! metric lines). Each line carries its span's fields: in Lambda the invocation's
//! `request_id` and `xray_trace_id` (`lambda::dispatch` opens that span).

use tracing_subscriber::fmt::MakeWriter;

/// The subscriber `main` installs, writing to `writer` (tests pass a buffer).
pub fn subscriber<W>(level: &str, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_current_span(true)
        .with_span_list(false)
        .finish()
}
