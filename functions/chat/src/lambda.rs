//! The wiring every Lambda binary shares: logging, clients built once per container,
//! and the runtime loop.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use lambda_runtime::{service_fn, Error, LambdaEvent};

use crate::config::Config;
use crate::handlers::{App, Route};

impl App {
    /// Builds the app from the Lambda environment (`TABLE_NAME`, `AWS_REGION`, endpoints, …).
    pub async fn from_env() -> Result<App, Error> {
        let config = Config::from_env()?;
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Ok(App::new(
            config,
            aws_sdk_dynamodb::Client::new(&sdk),
            aws_sdk_apigatewaymanagement::Client::new(&sdk),
        ))
    }
}

/// Runs `route` under the Lambda runtime until the container is shut down.
pub async fn run(route: Route) -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let app = Arc::new(App::from_env().await?);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let app = Arc::clone(&app);
            async move { Ok::<ApiGatewayProxyResponse, Error>(app.handle(route, event.payload).await) }
        },
    ))
    .await
}
