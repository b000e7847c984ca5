//! API Gateway (REST v1, HTTP API v2) and Function URL events: through `lambda_http`'s own
//! request conversion into the same axum router as the local server. Their errors keep their
//! HTTP statuses; only an event that does not convert to a request is a function error.

use axum::Router;
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Service};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

use super::FunctionError;

/// API Gateway and Function URL events carry `requestContext`; REST v1 also `httpMethod`.
pub(super) fn is_http_event(payload: &Value) -> bool {
    payload.get("requestContext").is_some() || payload.get("httpMethod").is_some()
}

pub(super) async fn event(
    router: &Router,
    request: LambdaRequest,
    context: Context,
) -> Result<Value, FunctionError> {
    let mut adapter = Adapter::from(StripStage(router.clone()));
    // lambda_http turns the event into a request inside `call`, before the router (and its
    // panic layer) sees it, and panics on some events that parse: a body marked base64 that
    // is not, a path or Host header that makes no URL. Such an event is the caller's error.
    let event = LambdaEvent::new(request, context);
    let call = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| adapter.call(event)));
    let Ok(future) = call else {
        tracing::warn!("API Gateway event refused: it does not convert to an HTTP request");
        return Err(FunctionError::invalid_event(
            "not a valid API Gateway event: it does not convert to an HTTP request \
             (check the body's base64, the path and the Host header)",
        ));
    };
    match future.await {
        Ok(response) => serde_json::to_value(response)
            .map_err(|e| FunctionError::new("internal", format!("response not encoded: {e}"))),
        Err(never) => match never {},
    }
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
        if through_function_url(&req) {
            req.extensions_mut()
                .insert(crate::api::shops::NoAdminRoutes);
        }
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

/// A Function URL event has the HTTP API v2 shape; its domain is the URL's own
/// (`<id>.lambda-url.<region>.on.aws`). A Function URL authorises the whole function, never
/// a route, so the operators' routes are refused through it.
fn through_function_url(req: &lambda_http::Request) -> bool {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c
            .domain_name
            .as_deref()
            .is_some_and(|d| d.contains(".lambda-url.")),
        _ => false,
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
