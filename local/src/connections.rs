//! The `@connections` management API over the [registry](crate::registry) of open connections.
//!
//! `POST /{stage}/@connections/{id}` sends a frame, `GET` describes the connection,
//! `DELETE` closes it; an unknown or closed id is `410 GoneException`, as on AWS, and a
//! client whose outgoing buffer is full answers `429 LimitExceededException` and stays
//! open. The API
//! listens on loopback only and, as AWS, takes only requests signed with SigV4 for
//! `execute-api` ([`sigv4`](crate::sigv4)) by credentials the stack accepts.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::metrics::Metrics;
use crate::registry::{Connection, Gone, Outgoing, Registry, SendError, MAX_MESSAGE_BYTES};
use crate::sigv4::Verifier;

struct ApiState {
    registry: Arc<Registry>,
    stage: String,
    /// Where a delivered post counts as a `MessageCount` of the API (its id), as API
    /// Gateway counts messages to clients as well as from them.
    metrics: Option<(Arc<Metrics>, String)>,
}

pub fn router(
    registry: Arc<Registry>,
    stage: String,
    verifier: Arc<Verifier>,
    metrics: Option<(Arc<Metrics>, String)>,
) -> Router {
    Router::new()
        .route(
            "/{stage}/@connections/{id}",
            post(post_to_connection)
                .get(get_connection)
                .delete(delete_connection),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            (verifier, 1024 * 1024),
            crate::sigv4::require,
        ))
        // Not an AWS API: unsigned.
        .route("/@local/broadcast", post(broadcast_all))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "NotFoundException",
                "No such resource; use /{stage}/@connections/{connectionId}",
            )
        })
        // Bodies past the quota are read (up to 1 MiB) so the answer can be a clear 413.
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .with_state(Arc::new(ApiState {
            registry,
            stage,
            metrics,
        }))
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
    match connection.send(message).await {
        Ok(()) => {
            if let Some((metrics, api_id)) = &state.metrics {
                metrics.api_gateway("MessageCount", api_id, &state.stage);
            }
            Ok(StatusCode::OK.into_response())
        }
        Err(SendError::Gone) => Err(gone(&id)),
        Err(SendError::Full) => Err(error(
            StatusCode::TOO_MANY_REQUESTS,
            "LimitExceededException",
            "Limit Exceeded: the WebSocket client side buffer is full",
        )),
    }
}

/// A local extension, not part of API Gateway: writes the body to every open connection
/// with no function, table or per-connection request involved. The benchmarks use it to
/// measure the gateway's own fan-out limit.
async fn broadcast_all(State(state): State<Arc<ApiState>>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body).into_owned();
    let all = state.registry.all();
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
        "lastActiveAt": iso(connection.last_active_ms()),
    }))
    .into_response())
}

async fn delete_connection(
    State(state): State<Arc<ApiState>>,
    Path((stage, id)): Path<(String, String)>,
) -> Result<Response, Response> {
    let connection = find(&state, &stage, &id)?;
    connection.close().await.map_err(|Gone| gone(&id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
