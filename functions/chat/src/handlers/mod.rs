//! One function per WebSocket route, each a plain async function over an [`App`]:
//! [`connection`] (`$connect`, `$disconnect`), [`chat`] (`onMessage`, `$default`),
//! [`changes`] (`edit`, `delete`, `typing`, with `onMessage`) and
//! [`rooms`] (`join`, `who`, `history`), and [`fanout`] (a chunk of a large room's
//! broadcast, in `FanoutFunction`).
//!
//! Every handler answers; none panics on input. A missing connection id (which API
//! Gateway always sends) is treated as a bad request rather than trusted.

mod changes;
mod chat;
mod connection;
mod direct;
mod fanout;
mod moderation;
mod rooms;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_sdk_apigatewaymanagement::Client as ManagementClient;
use aws_sdk_dynamodb::Client as DynamoClient;

use crate::auth::identity::{self, Identity};
use crate::config::Config;
use crate::delivery::broadcast::{self, Audience, Deadlines};
use crate::delivery::fanout::Workers;
use crate::delivery::management::{Connections, Delivery, Endpoint, Payload, Signer};
use crate::protocol::{self, ErrorFrame, Frame, Presence};
use crate::stores::admission::{self, Admission};
use crate::stores::connections::{ConnectionRecord, ConnectionStore};
use crate::stores::history::MessageStore;
use crate::stores::members::MemberStore;
use crate::stores::users::UserStore;

/// A broadcast starts no post later than this before the invocation ends …
const POST_MARGIN: std::time::Duration = std::time::Duration::from_secs(3);
/// … and no prune later than this.
const PRUNE_MARGIN: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a chat message's throttled (429) posts are tried again …
pub(crate) const MESSAGE_RETRY_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);
/// … and a presence notice's.
const PRESENCE_RETRY_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// The Lambdas of the WebSocket API; each binary serves one. `Rooms` serves the `join`,
/// `who` and `history` routes, told apart by the event's route key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Connect,
    Disconnect,
    OnMessage,
    Default,
    Rooms,
}

/// What a Lambda container builds once and reuses for every invocation.
pub struct App {
    config: Config,
    store: ConnectionStore,
    members: MemberStore,
    history: MessageStore,
    users: UserStore,
    /// Template for management clients; each callback endpoint gets one client, cached.
    management_base: ManagementClient,
    management: Mutex<HashMap<String, Connections>>,
    /// Signs `@connections` posts itself when set (the Lambdas); else they go through
    /// the SDK client (the handler tests, which mock it).
    signer: Option<Arc<Signer>>,
    /// `FanoutFunction`, when large rooms are handed to it.
    workers: Option<Workers>,
}

impl App {
    pub fn new(config: Config, dynamo: DynamoClient, management_base: ManagementClient) -> App {
        App {
            store: ConnectionStore::new(dynamo.clone(), config.table_name.clone()),
            members: MemberStore::new(dynamo.clone(), config.members_table.clone()),
            history: MessageStore::new(dynamo.clone(), config.messages_table.clone()),
            users: UserStore::new(dynamo, config.users_table.clone()),
            config,
            management_base,
            management: Mutex::new(HashMap::new()),
            signer: None,
            workers: None,
        }
    }

    /// Posts to `@connections` with requests signed here rather than through the SDK.
    pub fn with_signer(mut self, signer: Signer) -> App {
        self.signer = Some(Arc::new(signer));
        self
    }

    /// Hands rooms larger than one chunk to `workers` rather than posting every frame here.
    pub fn with_workers(mut self, workers: Workers) -> App {
        self.workers = Some(workers);
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &ConnectionStore {
        &self.store
    }

    pub fn members(&self) -> &MemberStore {
        &self.members
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
            Route::Disconnect => self.disconnect(&connection_id, &event).await,
            Route::OnMessage => match event.request_context.route_key.as_deref() {
                Some(protocol::EDIT_ACTION) => self.change(&connection_id, &event, false).await,
                Some(protocol::DELETE_ACTION) => self.change(&connection_id, &event, true).await,
                Some(protocol::TYPING_ACTION) => self.typing(&connection_id, &event).await,
                Some(protocol::direct::DM_ACTION) => self.direct(&connection_id, &event).await,
                // `onMessage`, and events that name no route (a direct invoke).
                _ => self.on_message(&connection_id, &event).await,
            },
            Route::Default => self.default_route(&connection_id, &event).await,
            Route::Rooms => self.rooms(&connection_id, &event).await,
        }
    }

    /// Who to send to: the members of `room`, but `except`.
    fn audience<'a>(&'a self, room: &'a str, except: Option<&'a str>) -> Audience<'a> {
        Audience {
            connections: &self.store,
            members: &self.members,
            room,
            except,
            limit: None,
        }
    }

    /// Sends `frame` to a room, logging what happened; a failure to read the room is
    /// logged and returned. With the callback `endpoint` given, a room larger than one
    /// chunk goes to the workers (when there are any) with that endpoint.
    async fn announce(
        &self,
        client: &Connections,
        audience: Audience<'_>,
        frame: &Frame,
        endpoint: Option<&str>,
    ) -> Result<(), crate::stores::connections::StoreError> {
        // A chat message's throttled posts are retried for a while; a presence notice's
        // hardly (a handshake or a join waits for it).
        let retry = if matches!(
            frame,
            Frame::Message { .. } | Frame::Edited { .. } | Frame::Deleted { .. }
        ) {
            MESSAGE_RETRY_WINDOW
        } else {
            PRESENCE_RETRY_WINDOW
        };
        self.announce_data(
            client,
            audience,
            frame.kind(),
            frame.to_json(),
            endpoint,
            retry,
        )
        .await
    }

    /// [`announce`](App::announce) for a frame already serialised (`kind` names it in the
    /// log), retrying throttled posts for `retry`.
    async fn announce_data(
        &self,
        client: &Connections,
        audience: Audience<'_>,
        kind: &str,
        data: String,
        endpoint: Option<&str>,
        retry: std::time::Duration,
    ) -> Result<(), crate::stores::connections::StoreError> {
        let room = audience.room.to_owned();
        let plan = broadcast::Plan {
            concurrency: self.config.fanout_concurrency,
            workers: endpoint.and(self.workers.as_ref()),
            endpoint: endpoint.unwrap_or_default(),
            deadlines: Deadlines::before_end(POST_MARGIN, PRUNE_MARGIN, retry),
        };
        match broadcast::fan_out(audience, client, data.as_bytes(), plan).await {
            Ok(summary) => {
                tracing::info!(
                    room,
                    kind,
                    items_read = summary.items_read,
                    recipients = summary.recipients,
                    skipped = summary.skipped,
                    delivered = summary.delivered,
                    gone = summary.gone,
                    pruned = summary.pruned,
                    expired = summary.expired,
                    throttled = summary.throttled,
                    failed = summary.failed,
                    undelivered = summary.undelivered,
                    unreached = summary.unreached,
                    chunks = summary.chunks,
                    posted_ms = summary.posted_ms as u64,
                    ms = summary.elapsed_ms as u64,
                    "broadcast"
                );
                Ok(())
            }
            Err(error) => {
                tracing::error!(room, %error, "could not list the room's members");
                Err(error)
            }
        }
    }

    /// A presence frame (`joined`/`left`) to a room of at most `PRESENCE_LIMIT` others,
    /// never failing the caller.
    async fn presence(
        &self,
        client: &Connections,
        joined: bool,
        presence: Presence,
        except: Option<&str>,
    ) {
        let room = presence.room.clone();
        let frame = if joined {
            Frame::Joined(presence)
        } else {
            Frame::Left(presence)
        };
        let audience = Audience {
            limit: Some(self.config.presence_limit),
            ..self.audience(&room, except)
        };
        let _ = self.announce(client, audience, &frame, None).await;
    }

    /// Sends one frame to one connection; a failure is logged, never raised.
    async fn send(&self, client: &Connections, id: &str, frame: &Frame) {
        let _ = self
            .send_payload(client, id, &Payload::new(frame.to_json()))
            .await;
    }

    /// Sends one payload to one connection, a throttled (429) post tried again up to
    /// three times (250 ms, 500 ms, 1 s, with jitter); a failure is logged, never raised.
    /// Whether it was delivered.
    async fn send_payload(&self, client: &Connections, id: &str, payload: &Payload) -> bool {
        self.send_outcome(client, id, payload).await.0 == Sent::Delivered
    }

    /// As [`App::send_payload`], telling a gone connection from a failed post; with the
    /// number of 429 answers on the way.
    async fn send_outcome(&self, client: &Connections, id: &str, payload: &Payload) -> (Sent, u64) {
        let mut wait = std::time::Duration::from_millis(250);
        let mut throttled = 0;
        for attempt in 0..4 {
            let delivery = client.post(id, payload).await;
            throttled += u64::from(matches!(delivery, Delivery::Throttled(_)));
            match delivery {
                Delivery::Delivered => return (Sent::Delivered, throttled),
                Delivery::Gone => {
                    tracing::info!(connection_id = id, "the connection left before its answer");
                    return (Sent::Gone, throttled);
                }
                Delivery::Throttled(_) if attempt < 3 => {
                    tokio::time::sleep(crate::delivery::management::jittered(wait)).await;
                    wait *= 2;
                }
                Delivery::Throttled(error) | Delivery::Failed(error) => {
                    tracing::warn!(connection_id = id, %error, "could not send to the connection");
                    return (Sent::Failed, throttled);
                }
                Delivery::OutOfTime => {
                    tracing::warn!(connection_id = id, "no time left to send to the connection");
                    return (Sent::Failed, throttled);
                }
            }
        }
        (Sent::Failed, throttled)
    }

    /// Spends from the sender's rate ([`admission`]): its record, or the status to answer
    /// once the sender has been told why (echoing the request's `clientId`, `echo`). A
    /// connection the table does not know is refused: sending as a guest would spend from
    /// no rate at all.
    async fn admit(
        &self,
        client: &Connections,
        id: &str,
        echo: Option<&str>,
    ) -> Result<ConnectionRecord, i64> {
        let now_ms = || chrono::Utc::now().timestamp_millis();
        match admission::admit(&self.store, id, self.config.rate, now_ms).await {
            Ok(Admission::Allowed(record)) => Ok(record),
            Ok(Admission::Unknown) => {
                tracing::warn!(connection_id = id, "sender is not in the table; refused");
                self.reply(client, id, ErrorFrame::not_connected().for_client_id(echo))
                    .await;
                Err(403)
            }
            Ok(Admission::Limited { retry_after_ms }) => {
                crate::metrics::count(crate::metrics::RATE_LIMITED, 1);
                let error = ErrorFrame::rate_limited(retry_after_ms).for_client_id(echo);
                self.reply(client, id, error).await;
                Err(429)
            }
            Err(error) => {
                tracing::error!(connection_id = id, %error, "could not read the sender");
                self.reply(client, id, ErrorFrame::unavailable().for_client_id(echo))
                    .await;
                Err(500)
            }
        }
    }

    /// Tells the sender why its request was refused; the status to answer with.
    async fn refuse(
        &self,
        client: &Connections,
        id: &str,
        error: ErrorFrame,
        code: i64,
    ) -> ApiGatewayProxyResponse {
        self.reply(client, id, error).await;
        status(code)
    }

    /// Sends an error frame to one connection.
    async fn reply(&self, client: &Connections, id: &str, error: ErrorFrame) {
        tracing::info!(connection_id = id, code = ?error.code, "rejected request");
        self.send(client, id, &Frame::Error(error)).await;
    }

    /// The connection's room and name as the table has them (a connection the table does
    /// not know is a guest in the default room); a failed read has told the sender.
    async fn record(&self, client: &Connections, id: &str) -> Option<ConnectionRecord> {
        match self.store.get(id).await {
            Ok(Some(record)) => Some(record),
            Ok(None) => Some(guest_record(id)),
            Err(error) => {
                tracing::error!(connection_id = id, %error, "could not read the connection");
                self.reply(client, id, ErrorFrame::unavailable()).await;
                None
            }
        }
    }

    /// The management client for the API that sent `event`, built once per endpoint.
    fn management_client(&self, event: &ApiGatewayWebsocketProxyRequest) -> Option<Connections> {
        match self.config.callback_endpoint(&event.request_context) {
            Ok(endpoint) => Some(self.client_for(endpoint)),
            Err(error) => {
                tracing::error!(%error, "cannot work out the @connections endpoint");
                None
            }
        }
    }

    /// The management client for one callback endpoint, built once.
    fn client_for(&self, endpoint: String) -> Connections {
        let mut clients = self
            .management
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let client = clients.entry(endpoint).or_insert_with_key(|endpoint| {
            let signed = self
                .signer
                .as_ref()
                .and_then(|signer| Endpoint::new(Arc::clone(signer), endpoint));
            if let Some(signed) = signed {
                return Connections::Signed(Arc::new(signed));
            }
            Connections::Sdk(self.sdk_client_for(endpoint))
        });
        client.clone()
    }

    /// The SDK's management client for one callback endpoint (what posts use when there
    /// is no signer, and what closes connections).
    fn sdk_client_for(&self, endpoint: &str) -> ManagementClient {
        let config = self
            .management_base
            .config()
            .to_builder()
            .endpoint_url(endpoint)
            .build();
        ManagementClient::from_conf(config)
    }
}

/// The name a signed-in user has in every frame: the authorizer's, over anything stored.
fn display_name(event: &ApiGatewayWebsocketProxyRequest, stored: &str) -> String {
    Identity::from_authorizer(&event.request_context.authorizer.fields)
        .map(|identity| identity.name)
        .unwrap_or_else(|| stored.to_owned())
}

/// Whether the authorizer found the caller in the moderators' group (`moderator` in
/// `requestContext.authorizer`: true, or "true" as some integrations pass it).
fn is_moderator(event: &ApiGatewayWebsocketProxyRequest) -> bool {
    match event.request_context.authorizer.fields.get("moderator") {
        Some(serde_json::Value::Bool(moderator)) => *moderator,
        Some(serde_json::Value::String(moderator)) => moderator == "true",
        _ => false,
    }
}

/// The signed-in user the authorizer vouched for; none in open mode.
fn signed_in_user(event: &ApiGatewayWebsocketProxyRequest) -> Option<String> {
    Identity::from_authorizer(&event.request_context.authorizer.fields).map(|id| id.user_id)
}

fn guest_record(id: &str) -> ConnectionRecord {
    ConnectionRecord {
        room: crate::protocol::rooms::DEFAULT_ROOM.to_owned(),
        name: identity::guest_name(id),
        user: None,
        banned_until: None,
        connected_at_ms: 0,
        bucket: None,
    }
}

fn status(code: i64) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = code;
    response
}

/// How one post to one connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    Delivered,
    /// 410: the connection is gone.
    Gone,
    /// Failed, still throttled after the retries, or out of time.
    Failed,
}
