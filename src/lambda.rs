//! Lambda adapter: one handler for every event the function receives.
//!
//! API Gateway (REST v1, HTTP API v2, Function URL) events go through `lambda_http`'s own
//! request conversion into the same axum router as the local server. Any other JSON object is
//! a direct invocation by another Lambda: `{"operation": ..., ...the route's body fields}`,
//! answered with the route's JSON body, or `{"error": {"status", "code", "message"}}` as a
//! normal result (never a function error, so callers need no special error path).

use std::collections::BTreeMap;
use std::time::Instant;

use axum::Router;
use http::StatusCode;
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Service};
use lambda_runtime::{Context, LambdaEvent};
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;

use crate::api::types::{options, BatchResponse, Cleared, ConversationResponse, ConversationView};
use crate::api::{self, ApiError};
use crate::feedback::Feedback;
use crate::service::Tagger;
use crate::telemetry;

type Thresholds = Option<BTreeMap<String, f64>>;

/// A direct invocation, named by `operation`.
#[derive(Debug, Deserialize)]
#[serde(tag = "operation", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Operation {
    ClassifyMessage {
        message: String,
        #[serde(default)]
        explain: bool,
        #[serde(default)]
        thresholds: Thresholds,
    },
    ClassifyBatch {
        messages: Vec<String>,
        #[serde(default)]
        explain: bool,
        #[serde(default)]
        thresholds: Thresholds,
    },
    ClassifyConversation {
        conversation_id: String,
        message: String,
        #[serde(default)]
        message_id: Option<String>,
        #[serde(default)]
        explain: bool,
        #[serde(default)]
        thresholds: Thresholds,
    },
    GetConversation {
        conversation_id: String,
    },
    ClearConversation {
        conversation_id: String,
    },
    Feedback {
        message: String,
        tags: Vec<String>,
        #[serde(default)]
        predicted: Option<Vec<String>>,
        #[serde(default)]
        conversation_id: Option<String>,
        #[serde(default)]
        message_id: Option<String>,
        #[serde(default)]
        source: Option<String>,
    },
}

impl Operation {
    /// The `route` label of its metrics.
    fn route(&self) -> &'static str {
        match self {
            Self::ClassifyMessage { .. } => "direct:classify-message",
            Self::ClassifyBatch { .. } => "direct:classify-batch",
            Self::ClassifyConversation { .. } => "direct:classify-conversation",
            Self::GetConversation { .. } => "direct:get-conversation",
            Self::ClearConversation { .. } => "direct:clear-conversation",
            Self::Feedback { .. } => "direct:feedback",
        }
    }
}

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
                Ok::<Value, lambda_runtime::Error>(answer)
            }
        },
    ))
    .await
}

/// The one place that tells an HTTP event from a direct invocation. Everything logged while
/// it runs carries the invocation's `request_id` and `xray_trace_id` (its span's fields).
pub async fn dispatch(router: &Router, tagger: &Tagger, event: LambdaEvent<Value>) -> Value {
    let span = tracing::info_span!(
        "invocation",
        request_id = %event.context.request_id,
        xray_trace_id = event.context.xray_trace_id.as_deref().unwrap_or(""),
    );
    route_event(router, tagger, event).instrument(span).await
}

async fn route_event(router: &Router, tagger: &Tagger, event: LambdaEvent<Value>) -> Value {
    let LambdaEvent { payload, context } = event;
    if is_http_event(&payload) {
        return match serde_json::from_value::<LambdaRequest>(payload) {
            Ok(request) => http_event(router, request, context).await,
            Err(e) => error_value(&bad_event(format!("not a valid API Gateway event: {e}"))),
        };
    }
    // serde's tagged enums also accept the positional form (`["classify-message", "hi"]`):
    // a direct invocation is an object, as every HTTP body is.
    if !payload.is_object() {
        return error_value(&bad_event(
            "not a valid direct invocation: the payload must be a JSON object".into(),
        ));
    }
    match serde_json::from_value::<Operation>(payload) {
        Ok(op) => observed_direct(tagger, op).await,
        Err(e) => error_value(&bad_event(format!("not a valid direct invocation: {e}"))),
    }
}

/// A direct invocation with the metrics and log line an HTTP request gets.
async fn observed_direct(tagger: &Tagger, op: Operation) -> Value {
    let started = Instant::now();
    let route = op.route();
    let (answer, timings) = telemetry::measured(direct(tagger, op)).await;
    let elapsed = started.elapsed();
    let status = answer.as_ref().map_or_else(|e| e.status.as_u16(), |_| 200);
    telemetry::request(route, status, elapsed, &timings);
    tracing::info!(
        route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1e3,
        tokenize_ms = timings.tokenize.as_secs_f64() * 1e3,
        inference_ms = timings.inference.as_secs_f64() * 1e3,
        store_ms = timings.store.as_secs_f64() * 1e3,
        "request"
    );
    answer.unwrap_or_else(|e| error_value(&e))
}

/// API Gateway and Function URL events carry `requestContext`; REST v1 also `httpMethod`.
fn is_http_event(payload: &Value) -> bool {
    payload.get("requestContext").is_some() || payload.get("httpMethod").is_some()
}

async fn http_event(router: &Router, request: LambdaRequest, context: Context) -> Value {
    let mut adapter = Adapter::from(StripStage(router.clone()));
    // lambda_http turns the event into a request inside `call`, before the router (and its
    // panic layer) sees it, and panics on some events that parse: a body marked base64 that
    // is not, a path or Host header that makes no URL. Such an event is the caller's error.
    let event = LambdaEvent::new(request, context);
    let call = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| adapter.call(event)));
    let Ok(future) = call else {
        tracing::warn!("API Gateway event refused: it does not convert to an HTTP request");
        return error_value(&bad_event(
            "not a valid API Gateway event: it does not convert to an HTTP request \
             (check the body's base64, the path and the Host header)"
                .into(),
        ));
    };
    match future.await {
        Ok(response) => serde_json::to_value(response).unwrap_or_else(|e| {
            error_value(&ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                e.to_string(),
            ))
        }),
        Err(never) => match never {},
    }
}

async fn direct(tagger: &Tagger, op: Operation) -> Result<Value, ApiError> {
    let value = match op {
        Operation::ClassifyMessage {
            message,
            explain,
            thresholds,
        } => to_value(
            tagger
                .classify_message_with(&message, &options(explain, thresholds))
                .await?,
        ),
        Operation::ClassifyBatch {
            messages,
            explain,
            thresholds,
        } => to_value(BatchResponse::new(
            tagger
                .classify_batch_with(&messages, &options(explain, thresholds))
                .await?,
        )),
        Operation::ClassifyConversation {
            conversation_id,
            message,
            message_id,
            explain,
            thresholds,
        } => {
            let outcome = tagger
                .classify_conversation_with(
                    &conversation_id,
                    &message,
                    message_id.as_deref(),
                    &options(explain, thresholds),
                )
                .await?;
            to_value(ConversationResponse::new(
                &conversation_id,
                message_id,
                outcome,
            ))
        }
        Operation::GetConversation { conversation_id } => {
            let conversation = tagger.conversation(&conversation_id).await?;
            to_value(ConversationView::new(&conversation_id, conversation))
        }
        Operation::ClearConversation { conversation_id } => {
            let cleared = tagger.clear_conversation(&conversation_id).await?;
            to_value(Cleared::new(conversation_id, cleared))
        }
        Operation::Feedback {
            message,
            tags,
            predicted,
            conversation_id,
            message_id,
            source,
        } => to_value(
            tagger
                .feedback(Feedback {
                    message,
                    tags,
                    predicted,
                    conversation_id,
                    message_id,
                    source,
                })
                .await?,
        ),
    };
    Ok(value)
}

/// Through JSON text, as the HTTP routes answer: `serde_json::to_value` widens an `f32` to the
/// nearest `f64` (0.72 -> 0.7200000286102295), while `Json` writes the `f32`'s shortest form.
fn to_value(body: impl serde::Serialize) -> Value {
    let text = serde_json::to_string(&body).expect("response bodies serialize");
    serde_json::from_str(&text).expect("serde_json reads back its own output")
}

fn bad_event(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_event", message)
}

fn error_value(err: &ApiError) -> Value {
    to_value(err.body())
}

/// Removes an API Gateway stage prefix (`/prod/classify-message` -> `/classify-message`), so
/// the routes match whether or not the gateway puts the stage in the path.
#[derive(Clone)]
struct StripStage(Router);

impl Service<lambda_http::Request> for StripStage {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = <Router as Service<lambda_http::Request>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        Service::<lambda_http::Request>::poll_ready(&mut self.0, cx)
    }

    fn call(&mut self, mut req: lambda_http::Request) -> Self::Future {
        if let Some(path) = stripped_path(&req) {
            let query = req
                .uri()
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            if let Ok(uri) = format!("{path}{query}").parse() {
                *req.uri_mut() = uri;
            }
        }
        self.0.call(req)
    }
}

fn stripped_path(req: &lambda_http::Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    let stage = match req.request_context_ref()? {
        RequestContext::ApiGatewayV1(c) => c.stage.clone()?,
        RequestContext::ApiGatewayV2(c) => c.stage.clone()?,
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    let prefix = format!("/{stage}");
    let rest = req.uri().path().strip_prefix(&prefix)?;
    (stage != "$default" && (rest.is_empty() || rest.starts_with('/'))).then(|| {
        if rest.is_empty() {
            "/".to_owned()
        } else {
            rest.to_owned()
        }
    })
}
