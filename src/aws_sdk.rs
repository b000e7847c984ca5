//! What every AWS client of the service shares (DynamoDB for both tables, EventBridge): one
//! way to load the SDK's configuration, and one way to say why a call failed.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// The SDK configuration: rustls on ring (no aws-lc, no C toolchain), standard retries, the
/// given timeouts, and `endpoint` for a local server (which ignores the region, but the SDK
/// needs one to sign: `us-east-1` unless the environment names one).
pub async fn config(
    endpoint: Option<&str>,
    connect_timeout: Duration,
    operation_timeout: Duration,
) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::standard())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(connect_timeout)
                .operation_timeout(operation_timeout)
                .build(),
        );
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            loader = loader.region(aws_config::Region::new("us-east-1"));
        }
    }
    loader.load().await
}

/// An error with its sources, `{:#}`-style: the SDK's top-level message ("dispatch failure")
/// alone says little.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}
