//! One function per WebSocket route, each a plain async function over an [`App`].
//!
//! Every handler answers; none panics on input. A missing connection id (which API
//! Gateway always sends) is treated as a bad request rather than trusted.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_sdk_apigatewaymanagement::Client as ManagementClient;
use aws_sdk_dynamodb::Client as DynamoClient;
use chrono::{SecondsFormat, Utc};

use crate::broadcast::{self, Delivery};
use crate::config::Config;
use crate::identity::{self, Identity};
use crate::protocol::{self, ErrorFrame, Frame};
use crate::store::ConnectionStore;

/// The four routes of the WebSocket API; each Lambda binary serves one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Connect,
    Disconnect,
    OnMessage,
    Default,
}

/// What a Lambda container builds once and reuses for every invocation.
pub struct App {
    config: Config,
    store: ConnectionStore,
    /// Template for management clients; each callback endpoint gets one client, cached.
    management_base: ManagementClient,
    management: Mutex<HashMap<String, ManagementClient>>,
}

impl App {
    pub fn new(config: Config, dynamo: DynamoClient, management_base: ManagementClient) -> App {
        let store = ConnectionStore::new(dynamo, config.table_name.clone());
        App {
            config,
            store,
            management_base,
            management: Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &ConnectionStore {
        &self.store
    }

    /// Serves one event on `route`.
    pub async fn handle(
        &self,
        route: Route,
        event: ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let Some(connection_id) = event.request_context.connection_id.clone() else {
            tracing::error!(?route, "event has no requestContext.connectionId");
            return status(400);
        };
        match route {
            Route::Connect => self.connect(&connection_id, &event).await,
            Route::Disconnect => self.disconnect(&connection_id).await,
            Route::OnMessage => self.on_message(&connection_id, &event).await,
            Route::Default => self.default_route(&connection_id, &event).await,
        }
    }

    /// `$connect`: remember the connection and its display name: the signed-in user's
    /// (from the authorizer), else the cleaned `?name=`, else `guest-…`. A 500 makes API
    /// Gateway refuse the handshake.
    async fn connect(
        &self,
        id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let connected_at = event.request_context.connected_at;
        let name = match Identity::from_authorizer(&event.request_context.authorizer.fields) {
            Some(identity) => identity.name,
            None => event
                .query_string_parameters
                .first("name")
                .and_then(identity::clean_name)
                .unwrap_or_else(|| identity::guest_name(id)),
        };
        match self
            .store
            .add(id, &name, connected_at, Utc::now().timestamp())
            .await
        {
            Ok(()) => {
                tracing::info!(connection_id = id, name, "connected");
                status(200)
            }
            Err(error) => {
                tracing::error!(connection_id = id, %error, "could not store connection");
                status(500)
            }
        }
    }

    /// `$disconnect`: forget the connection. API Gateway ignores the answer, so it is always 200.
    async fn disconnect(&self, id: &str) -> ApiGatewayProxyResponse {
        match self.store.remove(id).await {
            Ok(()) => tracing::info!(connection_id = id, "disconnected"),
            Err(error) => {
                tracing::error!(connection_id = id, %error, "could not delete connection")
            }
        }
        status(200)
    }

    /// `onMessage`: validate, then post the chat frame to every connection.
    async fn on_message(
        &self,
        id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let Some(client) = self.management_client(event) else {
            return status(500);
        };
        if event.is_base64_encoded {
            self.reply(&client, id, ErrorFrame::binary_frame()).await;
            return status(400);
        }
        let name = self.sender_name(id, event).await;
        let sent_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let frame = match protocol::chat_frame(event.body.as_deref(), id, &name, sent_at) {
            Ok(frame) => frame,
            Err(error) => {
                self.reply(&client, id, error).await;
                return status(400);
            }
        };
        let data = frame.to_json();
        match broadcast::fan_out(
            &self.store,
            &client,
            data.as_bytes(),
            self.config.fanout_concurrency,
        )
        .await
        {
            Ok(summary) => {
                tracing::info!(
                    connection_id = id,
                    recipients = summary.recipients,
                    delivered = summary.delivered,
                    gone = summary.gone,
                    failed = summary.failed,
                    ms = summary.elapsed_ms as u64,
                    "broadcast"
                );
                status(200)
            }
            Err(error) => {
                tracing::error!(connection_id = id, %error, "could not list connections");
                self.reply(&client, id, ErrorFrame::unavailable()).await;
                status(500)
            }
        }
    }

    /// The sender's display name: the authorizer's (no read), else the one `$connect`
    /// stored, else `guest-…` (a failed read is logged, never fatal to the message).
    async fn sender_name(&self, id: &str, event: &ApiGatewayWebsocketProxyRequest) -> String {
        if let Some(identity) = Identity::from_authorizer(&event.request_context.authorizer.fields)
        {
            return identity.name;
        }
        match self.store.name_of(id).await {
            Ok(Some(name)) => name,
            Ok(None) => identity::guest_name(id),
            Err(error) => {
                tracing::warn!(connection_id = id, %error, "could not read the sender's name");
                identity::guest_name(id)
            }
        }
    }

    /// `$default`: tell the sender what was wrong with the request and how to fix it.
    async fn default_route(
        &self,
        id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let Some(client) = self.management_client(event) else {
            return status(500);
        };
        let error = if event.is_base64_encoded {
            ErrorFrame::binary_frame()
        } else {
            protocol::explain_unrouted(event.body.as_deref())
        };
        self.reply(&client, id, error).await;
        status(200)
    }

    /// Sends an error frame to one connection; a failure is logged, never raised.
    async fn reply(&self, client: &ManagementClient, id: &str, error: ErrorFrame) {
        tracing::info!(connection_id = id, code = ?error.code, "rejected request");
        let frame = Frame::Error(error).to_json();
        match broadcast::post(client, id, frame.as_bytes()).await {
            Delivery::Delivered => {}
            Delivery::Gone => {
                tracing::info!(connection_id = id, "sender left before the error reply")
            }
            Delivery::Failed(error) => {
                tracing::warn!(connection_id = id, %error, "could not send error reply")
            }
        }
    }

    /// The management client for the API that sent `event`, built once per endpoint.
    fn management_client(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> Option<ManagementClient> {
        let endpoint = match self.config.callback_endpoint(&event.request_context) {
            Ok(endpoint) => endpoint,
            Err(error) => {
                tracing::error!(%error, "cannot work out the @connections endpoint");
                return None;
            }
        };
        let mut clients = self
            .management
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let client = clients.entry(endpoint).or_insert_with_key(|endpoint| {
            let config = self
                .management_base
                .config()
                .to_builder()
                .endpoint_url(endpoint.clone())
                .build();
            ManagementClient::from_conf(config)
        });
        Some(client.clone())
    }
}

fn status(code: i64) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = code;
    response
}
