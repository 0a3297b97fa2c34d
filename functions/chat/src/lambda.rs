//! The wiring every Lambda binary shares: logging, clients built once per container,
//! and the runtime loop.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

use crate::config::Config;
use crate::delivery::fanout::{Job, Workers};
use crate::delivery::management::Signer;
use crate::handlers::{App, Route};

impl App {
    /// Builds the app from the Lambda environment (`TABLE_NAME`, `AWS_REGION`, endpoints,
    /// `FANOUT_FUNCTION`, …).
    pub async fn from_env() -> Result<App, Error> {
        let config = Config::from_env()?;
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let workers = config.fanout_function.clone().map(|function| Workers {
            client: aws_sdk_lambda::Client::new(&sdk),
            function,
            chunk_size: config.fanout_chunk_size,
        });
        let signer = sdk
            .credentials_provider()
            .map(|credentials| Signer::new(credentials, &config.region, config.fanout_concurrency));
        let app = App::new(
            config,
            aws_sdk_dynamodb::Client::new(&sdk),
            aws_sdk_apigatewaymanagement::Client::from_conf(management_config(&sdk)),
        );
        let app = match signer {
            Some(signer) => app.with_signer(signer),
            None => app,
        };
        Ok(match workers {
            Some(workers) => app.with_workers(workers),
            None => app,
        })
    }
}

/// The `@connections` client's settings: the fan-out's hot path. A post's body is one
/// frame and its answer a few bytes, so stalled-stream protection (a wrapper and timers
/// around both bodies of every request) guards nothing there and costs CPU per delivery.
fn management_config(sdk: &aws_config::SdkConfig) -> aws_sdk_apigatewaymanagement::Config {
    use aws_sdk_apigatewaymanagement::config::StalledStreamProtectionConfig;
    aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .build()
}

/// Runs `route` under the Lambda runtime until the container is shut down.
pub async fn run(route: Route) -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    crate::metrics::init_from_env();
    let app = Arc::new(App::from_env().await?);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let app = Arc::clone(&app);
            let deadline = event.context.deadline;
            async move {
                // Boxed: the runtime's future would otherwise nest too deep for the compiler.
                let handled = Box::pin(app.handle(route, event.payload));
                let response = crate::delivery::budget::within(deadline, handled).await;
                crate::metrics::flush();
                Ok::<ApiGatewayProxyResponse, Error>(response)
            }
        },
    ))
    .await
}

/// Runs `FanoutFunction`: each event is a [`Job`]; the answer counts its posts.
pub async fn run_fanout() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    crate::metrics::init_from_env();
    let app = Arc::new(App::from_env().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Job>| {
        let app = Arc::clone(&app);
        let deadline = event.context.deadline;
        async move {
            let done = Box::pin(app.fan_out_chunk(event.payload));
            let done = crate::delivery::budget::within(deadline, done).await;
            crate::metrics::flush();
            Ok::<Value, Error>(match done {
                Some(summary) => json!({
                    "delivered": summary.delivered,
                    "gone": summary.gone,
                    "pruned": summary.pruned,
                    "throttled": summary.throttled,
                    "failed": summary.failed,
                    "undelivered": summary.undelivered,
                    "handedOn": summary.chunks,
                }),
                None => json!({"refused": true}),
            })
        }
    }))
    .await
}
