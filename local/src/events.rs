//! API Gateway WebSocket events in the exact shape AWS delivers them to Lambda (see the
//! captures in `tests/fixtures/aws-events/`): CONNECT with headers and query string, MESSAGE
//! with `messageId` and `body`, DISCONNECT with `disconnectStatusCode`/`disconnectReason`,
//! and the REQUEST authorizer's event for `$connect`. Once an authorizer allowed the
//! connection, every event carries its answer in `requestContext.authorizer`.

use serde_json::{json, Map, Value};

/// Request facts every event of one connection repeats.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub connection_id: String,
    pub connected_at_ms: i64,
    pub source_ip: String,
    pub user_agent: Option<String>,
    pub api_id: String,
    pub stage: String,
    pub domain_name: String,
    /// `requestContext.authorizer`: `principalId`, the authorizer's `context` and
    /// `integrationLatency`, when a `$connect` authorizer allowed the connection.
    pub authorizer: Option<Value>,
}

fn request_context(
    info: &ConnectionInfo,
    route_key: &str,
    event_type: &str,
    now_ms: i64,
) -> Map<String, Value> {
    let request_id = crate::ids::gateway_id();
    let mut identity = Map::new();
    if let Some(agent) = &info.user_agent {
        identity.insert("userAgent".into(), json!(agent));
    }
    identity.insert("sourceIp".into(), json!(info.source_ip));
    let time = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    let mut context = Map::new();
    context.insert("routeKey".into(), json!(route_key));
    context.insert("eventType".into(), json!(event_type));
    context.insert("extendedRequestId".into(), json!(request_id));
    context.insert(
        "requestTime".into(),
        json!(time.format("%d/%b/%Y:%H:%M:%S +0000").to_string()),
    );
    context.insert("messageDirection".into(), json!("IN"));
    context.insert("stage".into(), json!(info.stage));
    context.insert("connectedAt".into(), json!(info.connected_at_ms));
    context.insert("requestTimeEpoch".into(), json!(now_ms));
    context.insert("identity".into(), Value::Object(identity));
    if let Some(authorizer) = &info.authorizer {
        context.insert("authorizer".into(), authorizer.clone());
    }
    context.insert("requestId".into(), json!(request_id));
    context.insert("domainName".into(), json!(info.domain_name));
    context.insert("connectionId".into(), json!(info.connection_id));
    context.insert("apiId".into(), json!(info.api_id));
    context
}

/// Headers as AWS passes them: a single-value map and a multi-value map.
fn header_maps(headers: &[(String, String)]) -> (Value, Value) {
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (name, value) in headers {
        single.insert(name.clone(), json!(value));
        match multi.get_mut(name) {
            Some(Value::Array(values)) => values.push(json!(value)),
            _ => {
                multi.insert(name.clone(), json!([value]));
            }
        }
    }
    (Value::Object(single), Value::Object(multi))
}

/// The `$connect` event, with the handshake's headers and query string passed through as sent.
pub fn connect(
    info: &ConnectionInfo,
    headers: &[(String, String)],
    query: &[(String, String)],
    now_ms: i64,
) -> Value {
    let mut event = handshake_request(headers, query);
    event.insert(
        "requestContext".into(),
        Value::Object(request_context(info, "$connect", "CONNECT", now_ms)),
    );
    event.insert("isBase64Encoded".into(), json!(false));
    Value::Object(event)
}

/// The REQUEST authorizer's event for `$connect`: `type`, `methodArn`, the handshake's
/// headers and query string, `stageVariables` and the CONNECT request context.
pub fn authorizer_request(
    info: &ConnectionInfo,
    headers: &[(String, String)],
    query: &[(String, String)],
    method_arn: &str,
    now_ms: i64,
) -> Value {
    let mut event = handshake_request(headers, query);
    event.insert("type".into(), json!("REQUEST"));
    event.insert("methodArn".into(), json!(method_arn));
    event.entry("queryStringParameters").or_insert(json!({}));
    event
        .entry("multiValueQueryStringParameters")
        .or_insert(json!({}));
    event.insert("stageVariables".into(), json!({}));
    event.insert(
        "requestContext".into(),
        Value::Object(request_context(info, "$connect", "CONNECT", now_ms)),
    );
    Value::Object(event)
}

/// Headers and query string of the handshake, single- and multi-valued.
fn handshake_request(
    headers: &[(String, String)],
    query: &[(String, String)],
) -> Map<String, Value> {
    let (single, multi) = header_maps(headers);
    let mut event = Map::new();
    event.insert("headers".into(), single);
    event.insert("multiValueHeaders".into(), multi);
    if !query.is_empty() {
        let (single, multi) = header_maps(query);
        event.insert("queryStringParameters".into(), single);
        event.insert("multiValueQueryStringParameters".into(), multi);
    }
    event
}

/// A MESSAGE event for `route_key`; `body` is the text, or base64 for binary frames.
pub fn message(
    info: &ConnectionInfo,
    route_key: &str,
    body: String,
    is_base64: bool,
    now_ms: i64,
) -> Value {
    let mut context = request_context(info, route_key, "MESSAGE", now_ms);
    context.insert("messageId".into(), json!(crate::ids::gateway_id()));
    json!({"requestContext": context, "body": body, "isBase64Encoded": is_base64})
}

/// The `$disconnect` event with the close code and reason.
pub fn disconnect(info: &ConnectionInfo, status_code: u16, reason: &str, now_ms: i64) -> Value {
    let mut context = request_context(info, "$disconnect", "DISCONNECT", now_ms);
    context.insert("disconnectStatusCode".into(), json!(status_code));
    context.insert("disconnectReason".into(), json!(reason));
    let (single, multi) = header_maps(&[
        ("Host".to_owned(), info.domain_name.clone()),
        ("x-api-key".to_owned(), String::new()),
        ("X-Forwarded-For".to_owned(), String::new()),
        ("x-restapi".to_owned(), String::new()),
    ]);
    json!({"headers": single, "multiValueHeaders": multi, "requestContext": context, "isBase64Encoded": false})
}

/// Evaluates a route selection expression such as `$request.body.action` (nested paths
/// like `$request.body.meta.kind` included) against a text frame. `None` means no route
/// key could be selected: the body is not JSON, the path is absent, or not a string.
pub fn select_route(expression: &str, body: &str) -> Option<String> {
    let path = expression.strip_prefix("$request.body.")?;
    let parsed = serde_json::from_str::<Value>(body).ok()?;
    let mut value = &parsed;
    for part in path.split('.') {
        value = value.get(part)?;
    }
    match value {
        Value::String(key) => Some(key.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_selection_follows_the_expression() {
        let e = "$request.body.action";
        assert_eq!(
            select_route(e, r#"{"action":"onMessage"}"#).as_deref(),
            Some("onMessage")
        );
        assert_eq!(select_route(e, r#"{"message":"x"}"#), None);
        assert_eq!(select_route(e, "not json"), None);
        assert_eq!(select_route(e, r#"{"action":{"a":1}}"#), None);
        let nested = "$request.body.meta.kind";
        assert_eq!(
            select_route(nested, r#"{"meta":{"kind":"ping"}}"#).as_deref(),
            Some("ping")
        );
        assert_eq!(select_route(nested, r#"{"meta":"ping"}"#), None);
    }
}
