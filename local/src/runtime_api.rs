//! The Lambda Runtime API for one function instance, served on its own loopback port.
//!
//! The instance's process polls `GET …/invocation/next`, which blocks until an event is
//! handed over, then answers with `…/{id}/response` or `…/{id}/error`; a process that
//! cannot start reports `…/init/error`. This module knows nothing of sockets or routes:
//! it turns queued [`Invocation`]s into HTTP exchanges and outcomes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

/// Lambda's limit on a synchronous response payload.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// An event waiting for the instance's next `next`.
pub struct Invocation {
    pub request_id: String,
    pub payload: Vec<u8>,
    pub reply: oneshot::Sender<Outcome>,
}

/// How the function answered an invocation.
#[derive(Debug)]
pub enum Outcome {
    Response(Vec<u8>),
    Error(FunctionError),
}

/// An error the function reported (`errorType`, `errorMessage`).
#[derive(Debug, Clone)]
pub struct FunctionError {
    pub error_type: String,
    pub error_message: String,
}

impl FunctionError {
    fn from_body(body: &[u8]) -> FunctionError {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        FunctionError {
            error_type: field("errorType").unwrap_or_else(|| "Unhandled".to_owned()),
            error_message: field("errorMessage")
                .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect()),
        }
    }
}

/// What the HTTP handlers share with the instance that owns them.
pub struct ApiState {
    pub function_arn: String,
    pub timeout: Duration,
    queue: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    /// When the process first asked for an event: the end of its init phase.
    pub ready: watch::Sender<Option<Instant>>,
    pub init_error: Mutex<Option<FunctionError>>,
}

impl ApiState {
    pub fn new(
        function_arn: String,
        timeout: Duration,
    ) -> (Arc<ApiState>, mpsc::Sender<Invocation>) {
        let (sender, queue) = mpsc::channel(1);
        let state = ApiState {
            function_arn,
            timeout,
            queue: tokio::sync::Mutex::new(queue),
            in_flight: Mutex::new(HashMap::new()),
            ready: watch::channel(None).0,
            init_error: Mutex::new(None),
        };
        (Arc::new(state), sender)
    }
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        // Oversize responses are read and then failed, as Lambda fails them, rather than
        // refused at the HTTP layer (which would leave the invocation to time out).
        .layer(DefaultBodyLimit::max(4 * MAX_RESPONSE_BYTES))
        .with_state(state)
}

async fn next(State(state): State<Arc<ApiState>>) -> Response {
    state.ready.send_if_modified(|ready| {
        ready.is_none() && {
            *ready = Some(Instant::now());
            true
        }
    });
    let invocation = state.queue.lock().await.recv().await;
    let Some(invocation) = invocation else {
        // The instance is being retired and its process killed. `next` must only ever answer
        // with an event (the Lambda runtime treats any answer as one), so it never answers.
        return std::future::pending().await;
    };
    let deadline = chrono::Utc::now().timestamp_millis() as u128 + state.timeout.as_millis();
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set(
        "lambda-runtime-aws-request-id",
        invocation.request_id.clone(),
    );
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        state.function_arn.clone(),
    );
    set("lambda-runtime-trace-id", trace_id());
    set("content-type", "application/json".to_owned());
    state
        .in_flight
        .lock()
        .expect("in-flight map")
        .insert(invocation.request_id, invocation.reply);
    (StatusCode::OK, headers, invocation.payload).into_response()
}

fn finish(state: &ApiState, id: &str, outcome: Outcome) -> Response {
    let reply = state.in_flight.lock().expect("in-flight map").remove(id);
    match reply {
        Some(reply) => {
            let _ = reply.send(outcome);
            (StatusCode::ACCEPTED, Json(json!({"status": "OK"}))).into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "errorType": "InvalidRequestID",
                "errorMessage": format!("no invocation {id} is in flight on this instance"),
            })),
        )
            .into_response(),
    }
}

async fn response(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if body.len() > MAX_RESPONSE_BYTES {
        let error = FunctionError {
            error_type: "Function.ResponseSizeTooLarge".to_owned(),
            error_message: format!(
                "Response payload size ({} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
                body.len()
            ),
        };
        return finish(&state, &id, Outcome::Error(error));
    }
    finish(&state, &id, Outcome::Response(body.to_vec()))
}

async fn error(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    finish(&state, &id, Outcome::Error(FunctionError::from_body(&body)))
}

async fn init_error(State(state): State<Arc<ApiState>>, body: Bytes) -> Response {
    *state.init_error.lock().expect("init error") = Some(FunctionError::from_body(&body));
    (StatusCode::ACCEPTED, Json(json!({"status": "OK"}))).into_response()
}

/// An X-Ray style trace header: `Root=1-<epoch hex>-<24 hex>;Parent=<16 hex>;Sampled=0`.
fn trace_id() -> String {
    format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        chrono::Utc::now().timestamp(),
        crate::ids::hex(12),
        crate::ids::hex(8)
    )
}
