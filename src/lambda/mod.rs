//! Lambda adapter: one handler for every event the function receives, told apart by shape.
//!
//! - API Gateway (REST v1, HTTP API v2, Function URL): the axum router (`http`); errors keep
//!   their HTTP statuses.
//! - SQS (`Records` from `aws:sqs`): each record a queued message (`sqs`), answered with
//!   `batchItemFailures` so only failed records return to the queue.
//! - A Step Functions Distributed Map batch (`{"Items": [...], "BatchInput": {...}}`): the
//!   items classified and returned in order (`bulk`).
//! - A direct invocation (`{"operation": ...}`): the route's answer (`direct`).
//!
//! Every failure outside HTTP is a Lambda function error by the contract in `error.rs`; an
//! event of no known shape is an `invalid_event` function error, never a success.

mod bulk;
mod direct;
mod error;
mod http;
mod sqs;

use axum::Router;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;
use tracing::Instrument;

use crate::api;
use crate::service::Tagger;
use crate::telemetry;
pub use direct::Operation;
pub use error::FunctionError;

/// Serve events from the Lambda Runtime API until the runtime stops. After each invocation
/// the metrics it recorded are written to stdout as EMF lines (CloudWatch reads them from the
/// function's log), with its request id and X-Ray trace id.
pub async fn run(tagger: Tagger) -> Result<(), lambda_runtime::Error> {
    let router = api::router(tagger.clone());
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<Value>| {
            let (router, tagger) = (router.clone(), tagger.clone());
            async move {
                let (request_id, trace_id) = (
                    event.context.request_id.clone(),
                    event.context.xray_trace_id.clone(),
                );
                let answer = dispatch(&router, &tagger, event).await;
                if let Err(e) =
                    telemetry::flush_emf(std::io::stdout().lock(), &request_id, trace_id.as_deref())
                {
                    tracing::warn!(error = %e, "could not write the invocation's metrics");
                }
                answer
            }
        },
    ))
    .await
}

/// The one place that tells the kinds of event apart. Everything logged while it runs
/// carries the invocation's `request_id` and `xray_trace_id` (its span's fields).
pub async fn dispatch(
    router: &Router,
    tagger: &Tagger,
    event: LambdaEvent<Value>,
) -> Result<Value, Diagnostic> {
    let span = tracing::info_span!(
        "invocation",
        request_id = %event.context.request_id,
        xray_trace_id = event.context.xray_trace_id.as_deref().unwrap_or(""),
    );
    let answer = async {
        let answer = route_event(router, tagger, event).await;
        if let Err(e) = &answer {
            tracing::warn!(error_type = %e.code, error = %e.message, "invocation failed");
        }
        answer
    };
    answer.instrument(span).await.map_err(Diagnostic::from)
}

async fn route_event(
    router: &Router,
    tagger: &Tagger,
    event: LambdaEvent<Value>,
) -> Result<Value, FunctionError> {
    let LambdaEvent { payload, context } = event;
    if http::is_http_event(&payload) {
        let request = serde_json::from_value(payload).map_err(|e| {
            FunctionError::invalid_event(format!("not a valid API Gateway event: {e}"))
        })?;
        return http::event(router, request, context).await;
    }
    // serde's tagged enums also accept the positional form (`["classify-message", "hi"]`):
    // every event this function takes is an object.
    if !payload.is_object() {
        return Err(FunctionError::invalid_event(
            "not a valid event: the payload must be a JSON object (an API Gateway or SQS \
             event, a Distributed Map batch, or a direct invocation with an `operation`)",
        ));
    }
    if sqs::is_sqs_event(&payload) {
        return sqs::event(tagger, payload).await;
    }
    if bulk::is_batch(&payload) {
        return bulk::event(tagger, payload).await;
    }
    if payload.get("operation").is_none() {
        return Err(FunctionError::invalid_event(
            "not a valid event: it is none of an API Gateway event, an SQS event, a \
             Distributed Map batch (`Items`) or a direct invocation (`operation`)",
        ));
    }
    match serde_json::from_value::<Operation>(payload) {
        Ok(op) => direct::observed(tagger, op).await,
        Err(e) => Err(FunctionError::invalid_event(format!(
            "not a valid direct invocation: {e}"
        ))),
    }
}

/// Through JSON text, as the HTTP routes answer: `serde_json::to_value` widens an `f32` to the
/// nearest `f64` (0.72 -> 0.7200000286102295), while `Json` writes the `f32`'s shortest form.
fn to_value(body: impl serde::Serialize) -> Value {
    let text = serde_json::to_string(&body).expect("response bodies serialize");
    serde_json::from_str(&text).expect("serde_json reads back its own output")
}
