//! The opening handshake: the stage path, stage throttling, the `$connect` authorizer
//! (see [`super::authorize`]), the `$connect` invocation with
//! the request's headers (as the client cased them) and query string, and its answer: a
//! 2xx upgrades, with the response's headers (`Sec-WebSocket-Protocol`) passed on;
//! anything else refuses the upgrade with that status.

use std::sync::Arc;

use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::{ConnectInfo, OriginalUri, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::listener::Peer;
use super::{authorize, gateway_error, now_ms, session, Gateway};
use crate::events::{self, ConnectionInfo};
use crate::registry::{Registry, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES};

/// Response headers of `$connect` that belong to the upgrade itself and are not passed on.
const UPGRADE_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-accept",
    "content-length",
    "transfer-encoding",
];

pub(super) async fn handshake(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(_) => {
            let web = &gateway.web;
            return web.serve(uri.path()).await;
        }
    };
    // The API answers at its root (the local default) and at /{stage}, as on AWS.
    let path = uri.path().trim_end_matches('/');
    if !path.is_empty() && path.trim_start_matches('/') != gateway.stage {
        return (StatusCode::FORBIDDEN, r#"{"message":"Forbidden"}"#).into_response();
    }
    let mut info = connection_info(&gateway, &peer, &headers);
    if !gateway.throttle.admit_connection() || !gateway.throttle.admit("$connect") {
        gateway.count("ClientError");
        let body = gateway_error("Too Many Requests", &info.connection_id);
        return (StatusCode::TOO_MANY_REQUESTS, body).into_response();
    }
    let request_headers = request_headers(&peer, &headers);
    let query: Vec<(String, String)> = query
        .map(|q| serde_urlencoded::from_str(&q).unwrap_or_default())
        .unwrap_or_default();
    if let Some(authorizer) = &gateway.authorizer {
        let verdict =
            authorize::authorize(&gateway, authorizer, &info, &request_headers, &query).await;
        match verdict {
            Ok(context) => info.authorizer = Some(context),
            Err((status, message)) => {
                gateway.count(if status.is_server_error() {
                    "ExecutionError"
                } else {
                    "ClientError"
                });
                return (status, gateway_error(message, &info.connection_id)).into_response();
            }
        }
    }
    let response_headers = match gateway.routes.get("$connect") {
        None => HeaderMap::new(),
        Some(function) => {
            // AWS counts what reaches the $connect integration.
            gateway.count("ConnectCount");
            let event = events::connect(&info, &request_headers, &query, info.connected_at_ms);
            match gateway.functions.invoke(function, &event).await {
                Ok(response) => match connect_answer(&response) {
                    Ok(headers) => headers,
                    Err(status) => {
                        gateway.count("IntegrationError");
                        let reason = status.canonical_reason().unwrap_or("Refused");
                        return (status, gateway_error(reason, &info.connection_id))
                            .into_response();
                    }
                },
                Err(_) => {
                    gateway.count("IntegrationError");
                    let body = gateway_error("Internal server error", &info.connection_id);
                    return (StatusCode::INTERNAL_SERVER_ERROR, body).into_response();
                }
            }
        }
    };
    // The codec enforces API Gateway's quotas: a frame over 32 KB or a message over 128 KB
    // is an error answered with close 1009. Small I/O buffers keep an idle connection cheap
    // (the codec's defaults are 128 KiB each way).
    let mut response = upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| session::serve(gateway, socket, info));
    response.headers_mut().extend(response_headers);
    response
}

/// The facts every event of this connection repeats.
fn connection_info(gateway: &Gateway, peer: &Peer, headers: &HeaderMap) -> ConnectionInfo {
    let header_text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    ConnectionInfo {
        connection_id: new_connection_id(&gateway.registry),
        connected_at_ms: now_ms(),
        source_ip: peer.address.ip().to_string(),
        user_agent: header_text(header::USER_AGENT),
        api_id: gateway.api_id.clone(),
        stage: gateway.stage.clone(),
        domain_name: header_text(header::HOST).unwrap_or_else(|| peer.address.to_string()),
        authorizer: None,
    }
}

/// The request's headers with the names the client wrote, plus the ones API Gateway adds.
fn request_headers(peer: &Peer, headers: &HeaderMap) -> Vec<(String, String)> {
    let names = peer.header_names();
    let mut request_headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| {
            let name = names
                .get(name.as_str())
                .cloned()
                .unwrap_or_else(|| name.as_str().to_owned());
            Some((name, value.to_str().ok()?.to_owned()))
        })
        .collect();
    request_headers.push(("X-Forwarded-For".into(), peer.address.ip().to_string()));
    request_headers.push(("X-Forwarded-Port".into(), peer.address.port().to_string()));
    request_headers.push(("X-Forwarded-Proto".into(), "http".into()));
    request_headers
}

/// What `$connect` answered: the headers to pass on, or the status that refuses the upgrade.
fn connect_answer(response: &Value) -> Result<HeaderMap, StatusCode> {
    let status = response
        .get("statusCode")
        .and_then(Value::as_u64)
        .unwrap_or(200);
    if !(200..300).contains(&status) {
        return Err(u16::try_from(status)
            .ok()
            .and_then(|code| StatusCode::from_u16(code).ok())
            .filter(|code| code.as_u16() >= 300)
            .unwrap_or(StatusCode::BAD_GATEWAY));
    }
    let mut headers = HeaderMap::new();
    let declared = response.get("headers").and_then(Value::as_object);
    for (name, value) in declared.into_iter().flatten() {
        let value = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) else {
            continue;
        };
        if !UPGRADE_HEADERS.contains(&name.as_str()) {
            headers.insert(name, value);
        }
    }
    Ok(headers)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn connect_answers_pass_on_headers_or_refuse() {
        let headers =
            connect_answer(&json!({"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "chat", "Connection": "x"}}))
                .unwrap();
        assert_eq!(headers["sec-websocket-protocol"], "chat");
        assert!(headers.get("connection").is_none());
        assert_eq!(
            connect_answer(&json!({"statusCode": 403})).unwrap_err(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            connect_answer(&json!({"statusCode": 99})).unwrap_err(),
            StatusCode::BAD_GATEWAY
        );
        assert!(connect_answer(&Value::Null).unwrap().is_empty());
    }
}
