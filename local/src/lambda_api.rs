//! The Lambda Invoke API on loopback, so a function that invokes another (`onMessage`
//! handing chunks to `FanoutFunction`) reaches the local one through
//! `AWS_ENDPOINT_URL_LAMBDA`, as the SDKs do on AWS.
//!
//! `POST /2015-03-31/functions/{FunctionName}/invocations`, where the name is the
//! function's name, its ARN or a partial ARN (`{account}:function:{name}`), optionally
//! qualified with `$LATEST`. `X-Amz-Invocation-Type`:
//! - `RequestResponse` (the default): payload ≤ 6 MB; runs the function and answers 200
//!   with its response, or with its error and `X-Amz-Function-Error: Unhandled`.
//! - `Event`: payload ≤ 1 MB (since October 2025); answers 202 at once and queues the event. An invocation
//!   that fails (a function error, a crash, a timeout) is tried again up to the function's
//!   `EventInvokeConfig.MaximumRetryAttempts` (default 2) times, after [`RETRY_DELAYS`]:
//!   Lambda waits about one and then two minutes, the local stack seconds.
//! - `DryRun`: 204 once the function is known.
//!
//! Errors have Lambda's status codes and `x-amzn-ErrorType`s (`ResourceNotFoundException`
//! 404, `RequestTooLargeException` 413, `InvalidRequestContentException` 400). The
//! API listens on loopback only and, as Lambda, takes only requests signed with SigV4 for
//! `lambda` ([`sigv4`](crate::sigv4)) by credentials the stack accepts.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::functions::{Functions, InvokeError};
use crate::log::Log;
use crate::on_failure::{self, OnFailure};
use crate::sigv4::Verifier;
use crate::stack::{Function, Stack};

/// Lambda's limit on a synchronous invocation's payload.
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
/// Lambda's limit on an asynchronous invocation's payload (1 MB since October 2025).
pub const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;
/// The waits before the first and the second retry of a failed asynchronous invocation.
pub const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

struct ApiState {
    stack: Stack,
    functions: Arc<Functions>,
    log: Log,
    on_failure: Arc<OnFailure>,
}

/// The Invoke API over the stack's functions.
pub fn router(
    stack: Stack,
    functions: Arc<Functions>,
    log: Log,
    verifier: Arc<Verifier>,
    on_failure: Arc<OnFailure>,
) -> Router {
    Router::new()
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        .route_layer(axum::middleware::from_fn_with_state(
            (verifier, 7 * 1024 * 1024),
            crate::sigv4::require,
        ))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "the local Lambda API serves POST /2015-03-31/functions/{FunctionName}/invocations",
            )
        })
        // Bodies past the limits are read (up to 7 MiB) so the answer can be a clear 413.
        .layer(DefaultBodyLimit::max(7 * 1024 * 1024))
        .with_state(Arc::new(ApiState {
            on_failure,
            stack,
            functions,
            log,
        }))
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [("x-amzn-errortype", kind.to_owned())],
        Json(json!({ "Type": "User", "message": message })),
    )
        .into_response()
}

/// The function a `FunctionName` (and `Qualifier`) names, or Lambda's 404.
#[allow(clippy::result_large_err)] // the error is the handler's own answer, returned at once
fn find<'a>(
    stack: &'a Stack,
    name: &str,
    qualifier: Option<&str>,
) -> Result<&'a Function, Response> {
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {name}"),
        )
    };
    // arn:aws:lambda:{region}:{account}:function:{name}[:{qualifier}], or from {account}.
    let parts: Vec<&str> = name.split(':').collect();
    let (base, in_name) = match parts.as_slice() {
        [name] => (None, (*name, None)),
        [name, qualifier] => (None, (*name, Some(*qualifier))),
        [_, "function", name] => (Some(&parts[..3]), (*name, None)),
        [_, "function", name, qualifier] => (Some(&parts[..3]), (*name, Some(*qualifier))),
        ["arn", _, "lambda", _, _, "function", name] => (Some(&parts[..7]), (*name, None)),
        ["arn", _, "lambda", _, _, "function", name, qualifier] => {
            (Some(&parts[..7]), (*name, Some(*qualifier)))
        }
        _ => return Err(not_found()),
    };
    let function = stack
        .functions
        .values()
        .find(|f| f.name == in_name.0)
        .ok_or_else(not_found)?;
    if let Some(base) = base {
        // The ARN (or its fields from the account on) must be this function's, field by field.
        let own: Vec<&str> = function.arn.split(':').collect();
        if own.len() < base.len() || own[own.len() - base.len()..] != *base {
            return Err(not_found());
        }
    }
    for qualifier in [in_name.1, qualifier].into_iter().flatten() {
        if qualifier != "$LATEST" {
            return Err(not_found());
        }
    }
    Ok(function)
}

#[derive(serde::Deserialize)]
struct InvokeQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

async fn invoke(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(query): Query<InvokeQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let function = match find(&state.stack, &name, query.qualifier.as_deref()) {
        Ok(function) => function.clone(),
        Err(response) => return response,
    };
    let kind = headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse");
    let limit = match kind {
        "RequestResponse" | "DryRun" => MAX_SYNC_PAYLOAD,
        "Event" => MAX_ASYNC_PAYLOAD,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                &format!(
                    "X-Amz-Invocation-Type must be RequestResponse, Event or DryRun, not {other:?}"
                ),
            )
        }
    };
    if body.len() > limit {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            &format!(
                "Request must be smaller than {limit} bytes for the InvokeFunction operation \
                 ({kind}; this one is {} bytes)",
                body.len()
            ),
        );
    }
    let payload = if body.is_empty() {
        b"{}".to_vec()
    } else {
        body.to_vec()
    };
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&payload) {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            &format!("Could not parse request body into json: {e}"),
        );
    }
    let request_id = crate::ids::uuid();
    match kind {
        "DryRun" => (StatusCode::NO_CONTENT, [("x-amzn-requestid", request_id)]).into_response(),
        "Event" => {
            tokio::spawn(run_async(state, function, request_id.clone(), payload));
            (StatusCode::ACCEPTED, [("x-amzn-requestid", request_id)]).into_response()
        }
        _ => match state
            .functions
            .invoke_bytes_as(&function.logical_id, request_id.clone(), payload)
            .await
        {
            Ok(response) => (
                StatusCode::OK,
                [
                    ("x-amzn-requestid", request_id),
                    ("x-amz-executed-version", "$LATEST".to_owned()),
                ],
                response,
            )
                .into_response(),
            Err(failure) => (
                StatusCode::OK,
                [
                    ("x-amzn-requestid", request_id),
                    ("x-amz-executed-version", "$LATEST".to_owned()),
                    ("x-amz-function-error", "Unhandled".to_owned()),
                ],
                Json(function_error(&failure)),
            )
                .into_response(),
        },
    }
}

/// The error payload Lambda returns for a failed invocation.
fn function_error(failure: &InvokeError) -> serde_json::Value {
    match failure {
        InvokeError::Function(e) => {
            json!({"errorType": e.error_type, "errorMessage": e.error_message})
        }
        InvokeError::Timeout(_) => {
            json!({"errorType": "Sandbox.Timedout", "errorMessage": failure.to_string()})
        }
        InvokeError::Crashed(_) => {
            json!({"errorType": "Runtime.ExitError", "errorMessage": failure.to_string()})
        }
        InvokeError::Init(_) | InvokeError::NoSuchFunction(_) => {
            json!({"errorType": "Runtime.Unknown", "errorMessage": failure.to_string()})
        }
    }
}

/// One queued asynchronous invocation (`request_id`, as `Invoke` answered): tried, and on
/// failure tried again as Lambda does, under the same id.
async fn run_async(state: Arc<ApiState>, function: Function, request_id: String, payload: Vec<u8>) {
    let attempts = 1 + function.async_retries as usize;
    for attempt in 1..=attempts {
        let result = state
            .functions
            .invoke_bytes_as(&function.logical_id, request_id.clone(), payload.clone())
            .await;
        let Err(failure) = result else {
            return;
        };
        if attempt == attempts {
            let Some(destination) = &function.on_failure else {
                state.log.line(&format!(
                    "{}: asynchronous invocation failed {attempts} time(s), dropped (no destination): {failure}",
                    function.logical_id
                ));
                return;
            };
            let error = function_error(&failure);
            let record = on_failure::record(&function, &request_id, &payload, attempts, error);
            state.on_failure.push(destination, record);
            state.log.line(&format!(
                "{}: asynchronous invocation failed {attempts} time(s); its event went to {destination}: {failure}",
                function.logical_id
            ));
            return;
        }
        let delay = RETRY_DELAYS[(attempt - 1).min(RETRY_DELAYS.len() - 1)];
        state.log.line(&format!(
            "{}: asynchronous invocation failed ({failure}); retry {attempt} in {} s",
            function.logical_id,
            delay.as_secs()
        ));
        tokio::time::sleep(delay).await;
    }
}
