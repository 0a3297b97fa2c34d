//! The registry of open WebSocket connections and the `@connections` management API over it.
//!
//! `POST /{stage}/@connections/{id}` sends a frame, `GET` describes the connection,
//! `DELETE` closes it; an unknown or closed id is `410 GoneException`, as on AWS. The API
//! listens on loopback only and does not check SigV4 signatures.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::mpsc;

use crate::events::ConnectionInfo;

/// API Gateway's limit on one WebSocket message, in either direction.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// How long a post may wait for room in a client's queue.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// What the gateway is asked to write to one client.
#[derive(Debug)]
pub enum Outgoing {
    Text(String),
    Binary(Vec<u8>),
    Close(u16, String),
}

/// One open connection, as the management API sees it.
pub struct Connection {
    pub info: ConnectionInfo,
    outgoing: mpsc::Sender<Outgoing>,
    last_active_ms: AtomicI64,
}

/// The connection is closed (or closing): API Gateway's `GoneException`.
#[derive(Debug)]
pub struct Gone;

impl Connection {
    pub fn new(info: ConnectionInfo, outgoing: mpsc::Sender<Outgoing>) -> Connection {
        let now = info.connected_at_ms;
        Connection {
            info,
            outgoing,
            last_active_ms: AtomicI64::new(now),
        }
    }

    pub fn touch(&self) {
        self.last_active_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    /// Queues a frame for the client. A client whose queue stays full for
    /// [`SEND_TIMEOUT`] is not reading: it is treated as gone, so that one stalled client
    /// cannot hold up a broadcast to everyone else.
    pub async fn send(&self, message: Outgoing) -> Result<(), Gone> {
        match self.outgoing.send_timeout(message, SEND_TIMEOUT).await {
            Ok(()) => Ok(()),
            Err(_) => Err(Gone),
        }
    }
}

/// Open connections by id.
#[derive(Default)]
pub struct Registry {
    connections: RwLock<HashMap<String, Arc<Connection>>>,
}

impl Registry {
    pub fn insert(&self, connection: Arc<Connection>) {
        let id = connection.info.connection_id.clone();
        self.connections
            .write()
            .expect("registry")
            .insert(id, connection);
    }

    pub fn remove(&self, id: &str) {
        self.connections.write().expect("registry").remove(id);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Connection>> {
        self.connections.read().expect("registry").get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.connections.read().expect("registry").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct ApiState {
    registry: Arc<Registry>,
    stage: String,
}

pub fn router(registry: Arc<Registry>, stage: String) -> Router {
    Router::new()
        .route("/@local/broadcast", post(broadcast_all))
        .route(
            "/{stage}/@connections/{id}",
            post(post_to_connection)
                .get(get_connection)
                .delete(delete_connection),
        )
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "NotFoundException",
                "No such resource; use /{stage}/@connections/{connectionId}",
            )
        })
        // Bodies past the quota are read (up to 1 MiB) so the answer can be a clear 413.
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .with_state(Arc::new(ApiState { registry, stage }))
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [("x-amzn-errortype", kind.to_owned())],
        Json(json!({ "message": message })),
    )
        .into_response()
}

fn gone(id: &str) -> Response {
    error(
        StatusCode::GONE,
        "GoneException",
        &format!("Connection {id} is gone"),
    )
}

/// The open connection `id` on `stage`, or the error API Gateway answers.
#[allow(clippy::result_large_err)] // the error is the handler's own answer, returned at once
fn find(state: &ApiState, stage: &str, id: &str) -> Result<Arc<Connection>, Response> {
    if stage != state.stage {
        return Err(error(
            StatusCode::FORBIDDEN,
            "ForbiddenException",
            &format!("Forbidden: the stage is {}", state.stage),
        ));
    }
    state.registry.get(id).ok_or_else(|| gone(id))
}

async fn post_to_connection(
    State(state): State<Arc<ApiState>>,
    Path((stage, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, Response> {
    let connection = find(&state, &stage, &id)?;
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            &format!(
                "Message is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
                body.len()
            ),
        ));
    }
    let message = match String::from_utf8(body.to_vec()) {
        Ok(text) => Outgoing::Text(text),
        Err(bytes) => Outgoing::Binary(bytes.into_bytes()),
    };
    connection.send(message).await.map_err(|Gone| gone(&id))?;
    Ok(StatusCode::OK.into_response())
}

/// A local extension, not part of API Gateway: writes the body to every open connection
/// with no function, table or per-connection request involved. The benchmarks use it to
/// measure the gateway's own fan-out limit.
async fn broadcast_all(State(state): State<Arc<ApiState>>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body).into_owned();
    let all: Vec<Arc<Connection>> = state
        .registry
        .connections
        .read()
        .expect("registry")
        .values()
        .cloned()
        .collect();
    let mut delivered = 0usize;
    for connection in all {
        if connection.send(Outgoing::Text(text.clone())).await.is_ok() {
            delivered += 1;
        }
    }
    Json(json!({ "delivered": delivered })).into_response()
}

async fn get_connection(
    State(state): State<Arc<ApiState>>,
    Path((stage, id)): Path<(String, String)>,
) -> Result<Response, Response> {
    let connection = find(&state, &stage, &id)?;
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let mut identity = serde_json::Map::new();
    identity.insert("sourceIp".into(), json!(connection.info.source_ip));
    if let Some(agent) = &connection.info.user_agent {
        identity.insert("userAgent".into(), json!(agent));
    }
    Ok(Json(json!({
        "connectedAt": iso(connection.info.connected_at_ms),
        "identity": identity,
        "lastActiveAt": iso(connection.last_active_ms.load(Ordering::Relaxed)),
    }))
    .into_response())
}

async fn delete_connection(
    State(state): State<Arc<ApiState>>,
    Path((stage, id)): Path<(String, String)>,
) -> Result<Response, Response> {
    let connection = find(&state, &stage, &id)?;
    connection
        .send(Outgoing::Close(1000, String::new()))
        .await
        .map_err(|Gone| gone(&id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
