//! The WebSocket front: the handshake (with `$connect` run before it completes), frames,
//! AWS's quotas, route selection, and `$disconnect` on every close.
//!
//! Each connection is one task that reads client frames, writes what the `@connections`
//! API queues for it, and enforces the idle and lifetime limits. Messages are invoked
//! concurrently, as API Gateway does, so a slow broadcast never blocks the socket.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::connections::{Connection, Outgoing, Registry, MAX_MESSAGE_BYTES};
use crate::events::{self, ConnectionInfo};
use crate::functions::Functions;

/// How long one frame may take to reach a client before the connection is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// API Gateway's connection limits; tests shorten them.
#[derive(Debug, Clone)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub max_connection_duration: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            idle_timeout: Duration::from_secs(10 * 60),
            max_connection_duration: Duration::from_secs(2 * 60 * 60),
        }
    }
}

/// What the gateway serves and whom it asks.
pub struct Gateway {
    pub api_id: String,
    pub stage: String,
    pub route_selection_expression: String,
    /// Route key to function logical id.
    pub routes: BTreeMap<String, String>,
    pub functions: Arc<Functions>,
    pub registry: Arc<Registry>,
    pub limits: Limits,
    pub web_dir: Option<PathBuf>,
    pub shutdown: watch::Receiver<bool>,
    pub sessions: Arc<Sessions>,
}

/// Connection tasks still running, their `$disconnect` included, so that shutdown can
/// wait for the last `$disconnect` before it stops the functions.
#[derive(Default)]
pub struct Sessions {
    running: std::sync::atomic::AtomicUsize,
}

struct Session(Arc<Sessions>);

impl Drop for Session {
    fn drop(&mut self) {
        self.0
            .running
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Sessions {
    fn enter(self: &Arc<Self>) -> Session {
        self.running
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Session(Arc::clone(self))
    }

    /// Waits until no connection task runs, for at most `limit`; says whether they all ended.
    pub async fn wait_until_closed(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.running.load(std::sync::atomic::Ordering::Acquire) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/", get(handshake))
        .route("/{*path}", get(handshake))
        .with_state(gateway)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The frame API Gateway sends when it cannot serve a message itself.
fn gateway_error(message: &str, connection_id: &str) -> String {
    json!({"message": message, "connectionId": connection_id, "requestId": crate::ids::gateway_id()}).to_string()
}

async fn handshake(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(_) => return crate::web::serve(gateway.web_dir.as_deref(), uri.path()).await,
    };
    // The API answers at its root (the local default) and at /{stage}, as on AWS.
    let path = uri.path().trim_end_matches('/');
    if !path.is_empty() && path.trim_start_matches('/') != gateway.stage {
        return (StatusCode::FORBIDDEN, r#"{"message":"Forbidden"}"#).into_response();
    }
    let header_text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let info = ConnectionInfo {
        connection_id: new_connection_id(&gateway.registry),
        connected_at_ms: now_ms(),
        source_ip: peer.ip().to_string(),
        user_agent: header_text(header::USER_AGENT),
        api_id: gateway.api_id.clone(),
        stage: gateway.stage.clone(),
        domain_name: header_text(header::HOST).unwrap_or_else(|| peer.to_string()),
    };
    let mut request_headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    request_headers.push(("X-Forwarded-For".into(), info.source_ip.clone()));
    request_headers.push(("X-Forwarded-Port".into(), peer.port().to_string()));
    request_headers.push(("X-Forwarded-Proto".into(), "http".into()));
    let query: Vec<(String, String)> = query
        .map(|q| serde_urlencoded::from_str(&q).unwrap_or_default())
        .unwrap_or_default();

    if let Some(function) = gateway.routes.get("$connect") {
        let event = events::connect(&info, &request_headers, &query, info.connected_at_ms);
        match gateway.functions.invoke(function, &event).await {
            Ok(response) => {
                let status = response
                    .get("statusCode")
                    .and_then(Value::as_u64)
                    .unwrap_or(200);
                if !(200..300).contains(&status) {
                    let status = u16::try_from(status)
                        .ok()
                        .and_then(|code| StatusCode::from_u16(code).ok())
                        .filter(|code| code.as_u16() >= 300)
                        .unwrap_or(StatusCode::BAD_GATEWAY);
                    return (
                        status,
                        gateway_error(
                            status.canonical_reason().unwrap_or("Refused"),
                            &info.connection_id,
                        ),
                    )
                        .into_response();
                }
            }
            Err(_) => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    gateway_error("Internal server error", &info.connection_id),
                )
                    .into_response()
            }
        }
    }
    // Reading is capped well above the quota so an oversize message is seen, and answered
    // with close 1009, instead of failing inside the WebSocket codec. Small I/O buffers keep
    // an idle connection cheap (the codec's defaults are 128 KiB each way).
    upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(4 * MAX_MESSAGE_BYTES)
        .max_frame_size(4 * MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(gateway, socket, info))
}

/// A connection id in AWS's shape that no open connection has and that is safe in a URL path.
fn new_connection_id(registry: &Registry) -> String {
    loop {
        let id = crate::ids::gateway_id();
        if !id.contains(['/', '+']) && registry.get(&id).is_none() {
            return id;
        }
    }
}

/// Why a connection ended, as `$disconnect` reports it.
struct Closed {
    code: u16,
    reason: String,
}

impl Closed {
    fn new(code: u16, reason: &str) -> Closed {
        Closed {
            code,
            reason: reason.to_owned(),
        }
    }
}

async fn serve(gateway: Arc<Gateway>, socket: WebSocket, info: ConnectionInfo) {
    let _session = gateway.sessions.enter();
    let (outgoing, mut queued) = mpsc::channel(256);
    let connection = Arc::new(Connection::new(info.clone(), outgoing));
    gateway.registry.insert(Arc::clone(&connection));
    let (mut sink, mut stream) = socket.split();
    let mut shutdown = gateway.shutdown.clone();
    let stopping = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopping);
    let opened = Instant::now();
    let mut idle_deadline = opened + gateway.limits.idle_timeout;
    let lifetime_deadline = opened + gateway.limits.max_connection_duration;

    let closed = loop {
        tokio::select! {
            incoming = stream.next() => {
                idle_deadline = Instant::now() + gateway.limits.idle_timeout;
                connection.touch();
                match incoming {
                    Some(Ok(Message::Text(text))) => {
                        if text.len() > MAX_MESSAGE_BYTES {
                            break close(&mut sink, 1009, "Message too big").await;
                        }
                        dispatch(&gateway, &connection, text.to_string(), false);
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        if bytes.len() > MAX_MESSAGE_BYTES {
                            break close(&mut sink, 1009, "Message too big").await;
                        }
                        let body = base64::engine::general_purpose::STANDARD.encode(&bytes);
                        dispatch(&gateway, &connection, body, true);
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(frame))) => {
                        // The codec has queued its answering close frame; send it before leaving.
                        let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.close()).await;
                        break match frame {
                            Some(frame) => Closed::new(frame.code, &frame.reason),
                            None => Closed::new(1005, "Client-side close frame status not set"),
                        };
                    }
                    Some(Err(error)) => {
                        let text = error.to_string();
                        break if text.contains("too long") || text.contains("Space limit") || text.contains("too big") {
                            close(&mut sink, 1009, "Message too big").await
                        } else if text.contains("UTF-8") || text.contains("utf-8") || text.contains("Utf8") {
                            close(&mut sink, 1007, "Invalid frame payload data").await
                        } else {
                            Closed::new(1006, "Connection was closed abnormally")
                        };
                    }
                    None => break Closed::new(1006, "Connection was closed abnormally"),
                }
            }
            Some(message) = queued.recv() => {
                idle_deadline = Instant::now() + gateway.limits.idle_timeout;
                let frame = match message {
                    Outgoing::Text(text) => Message::Text(text.into()),
                    Outgoing::Binary(bytes) => Message::Binary(bytes.into()),
                    Outgoing::Close(code, reason) => break close(&mut sink, code, &reason).await,
                };
                // A client that stops reading must not stall this loop (and with it its
                // timers and everyone posting to it): it is dropped after WRITE_TIMEOUT.
                match tokio::time::timeout(WRITE_TIMEOUT, sink.send(frame)).await {
                    Ok(Ok(())) => {}
                    _ => break Closed::new(1006, "Connection was closed abnormally"),
                }
            }
            _ = tokio::time::sleep_until(idle_deadline) => break close(&mut sink, 1001, "Going away").await,
            _ = tokio::time::sleep_until(lifetime_deadline) => break close(&mut sink, 1001, "Going away").await,
            _ = &mut stopping => break close(&mut sink, 1001, "Going away").await,
        }
    };
    gateway.registry.remove(&info.connection_id);
    drop(queued);
    if let Some(function) = gateway.routes.get("$disconnect") {
        let event = events::disconnect(&info, closed.code, &closed.reason, now_ms());
        if let Err(error) = gateway.functions.invoke(function, &event).await {
            eprintln!("$disconnect for {} failed: {error}", info.connection_id);
        }
    }
}

async fn close(
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
    code: u16,
    reason: &str,
) -> Closed {
    let frame = CloseFrame {
        code,
        reason: reason.to_owned().into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.close().await;
    Closed::new(code, reason)
}

/// Routes one client message and invokes its function in the background.
fn dispatch(gateway: &Arc<Gateway>, connection: &Arc<Connection>, body: String, is_base64: bool) {
    let selected = if is_base64 {
        None
    } else {
        events::select_route(&gateway.route_selection_expression, &body)
    };
    let route = selected
        .filter(|key| gateway.routes.contains_key(key) && !key.starts_with('$'))
        .or_else(|| {
            gateway
                .routes
                .contains_key("$default")
                .then(|| "$default".to_owned())
        });
    let gateway = Arc::clone(gateway);
    let connection = Arc::clone(connection);
    tokio::spawn(async move {
        let id = &connection.info.connection_id;
        let Some(route) = route else {
            let _ = connection
                .send(Outgoing::Text(gateway_error("Forbidden", id)))
                .await;
            return;
        };
        let event = events::message(&connection.info, &route, body, is_base64, now_ms());
        if gateway
            .functions
            .invoke(&gateway.routes[&route], &event)
            .await
            .is_err()
        {
            let _ = connection
                .send(Outgoing::Text(gateway_error("Internal server error", id)))
                .await;
        }
    });
}
