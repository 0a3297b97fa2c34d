//! Events in AWS's real shape: the samples in `events/` and the events the local stack
//! delivers each deserialise into `ApiGatewayWebsocketProxyRequest`, their route agrees
//! with their event type, and their fields carry the same names and JSON types as the
//! captures in `tests/fixtures/aws-events/`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Stack;

use chat::ApiGatewayWebsocketProxyRequest;
use serde_json::Value;

fn repo() -> PathBuf {
    common::repo()
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn samples() -> Vec<(String, Value)> {
    let mut files: Vec<_> = std::fs::read_dir(repo().join("events"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 8,
        "events/ holds a sample per route and invalid variants"
    );
    files
        .into_iter()
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                read(&path),
            )
        })
        .collect()
}

/// `path -> JSON type` for every field, with header names left out (they vary by client).
fn shape(value: &Value, prefix: &str, out: &mut BTreeMap<String, &'static str>) {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    out.insert(prefix.to_owned(), kind);
    if let Value::Object(map) = value {
        if prefix.ends_with("eaders") || prefix.ends_with("ueryStringParameters") {
            return;
        }
        for (key, child) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            shape(child, &path, out);
        }
    }
}

#[test]
fn every_sample_deserialises_and_its_route_matches_its_event_type() {
    for (name, json) in samples() {
        check_event(&name, json);
    }
}

fn check_event(name: &str, json: Value) {
    {
        let event: ApiGatewayWebsocketProxyRequest =
            serde_json::from_value(json).unwrap_or_else(|e| panic!("{name}: {e}"));
        let context = &event.request_context;
        let route = context
            .route_key
            .as_deref()
            .unwrap_or_else(|| panic!("{name}: no routeKey"));
        let expected = match route {
            "$connect" => "CONNECT",
            "$disconnect" => "DISCONNECT",
            _ => "MESSAGE",
        };
        assert_eq!(context.event_type.as_deref(), Some(expected), "{name}");
        let id = context.connection_id.as_deref().unwrap();
        assert!(
            id.len() == 16 && id.ends_with('='),
            "{name}: connection id {id} looks like AWS's"
        );
        assert!(
            context.connected_at > 1_500_000_000_000,
            "{name}: connectedAt is epoch ms"
        );
        assert!(context.request_time_epoch >= context.connected_at, "{name}");
        match expected {
            "MESSAGE" => {
                assert!(
                    context.message_id.is_some(),
                    "{name}: messages carry messageId"
                );
                assert!(event.body.is_some(), "{name}: messages carry a body");
            }
            "DISCONNECT" => assert!(context.disconnect_status_code.is_some(), "{name}"),
            _ => assert!(!event.headers.is_empty(), "{name}: connects carry headers"),
        }
    }
}

#[test]
fn samples_have_the_field_names_and_types_of_real_aws_events() {
    check_shapes(samples());
}

fn check_shapes(events: Vec<(String, Value)>) {
    let captures = repo().join("tests/fixtures/aws-events");
    let websocket_captures = [
        ("MESSAGE", "go-apigw-websocket-request-send-message.json"),
        ("DISCONNECT", "go-apigw-websocket-request-disconnect.json"),
        (
            "DISCONNECT",
            "example-apigw-websocket-request-disconnect-route.json",
        ),
        (
            "CONNECT",
            "example-apigw-websocket-request-without-method.json",
        ),
        ("", "example-apigw-websocket-request.json"),
    ];
    let mut known: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (_, capture) in websocket_captures {
        let mut one = BTreeMap::new();
        shape(&read(&captures.join(capture)), "", &mut one);
        for (path, kind) in one {
            known.entry(path).or_default().push(kind);
        }
    }
    for (name, json) in events {
        let mut actual = BTreeMap::new();
        shape(&json, "", &mut actual);
        for (path, kind) in &actual {
            // The authorizer's own context: any key, of the kinds API Gateway passes on.
            if path.starts_with("requestContext.authorizer.") {
                assert!(
                    ["string", "number", "bool"].contains(kind),
                    "{name}: {path} is {kind}; an authorizer's context holds strings, numbers and booleans"
                );
                continue;
            }
            let aws_kinds = known
                .get(path)
                .unwrap_or_else(|| panic!("{name}: {path} appears in no AWS capture"));
            assert!(
                aws_kinds.contains(kind),
                "{name}: {path} is {kind}, AWS sends {aws_kinds:?}"
            );
        }
        let event_type = json["requestContext"]["eventType"].as_str().unwrap();
        for (capture_type, capture) in websocket_captures {
            if capture_type != event_type {
                continue;
            }
            let capture = read(&captures.join(capture));
            for key in capture["requestContext"].as_object().unwrap().keys() {
                if key == "identity" || key == "authorizer" {
                    continue;
                }
                assert!(
                    json["requestContext"].get(key).is_some(),
                    "{name}: requestContext.{key} is in every {event_type} event AWS sends"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_stack_delivers_events_in_the_aws_shape() {
    let log = common::EventLog::new("events");
    let stack = Stack::start(log.options()).await;
    let mut client = common::Client::connect(&format!("{}/?room=lobby&x=%3Cy%3E", stack.ws_url))
        .await
        .unwrap();
    client.send_text(r#"{"action":"fault","mode":"ok"}"#).await;
    client.expect_silence(Duration::from_millis(300)).await;
    client.close().await;
    let events: Vec<(String, Value)> = log
        .wait_for(3)
        .await
        .into_iter()
        .enumerate()
        .map(|(n, event)| (format!("local event {n}"), event))
        .collect();
    let types: Vec<&str> = events
        .iter()
        .map(|(_, e)| e["requestContext"]["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["CONNECT", "MESSAGE", "DISCONNECT"]);
    let connect = &events[0].1;
    assert_eq!(connect["queryStringParameters"]["room"], "lobby");
    assert_eq!(
        connect["queryStringParameters"]["x"], "<y>",
        "query strings arrive decoded, untouched otherwise"
    );
    assert_eq!(
        connect["multiValueQueryStringParameters"]["room"][0],
        "lobby"
    );
    // Header names keep the client's casing, as API Gateway passes them.
    let headers = connect["headers"].as_object().unwrap();
    assert!(
        headers.contains_key("Sec-WebSocket-Key") && headers.contains_key("Host"),
        "header names as the client wrote them: {:?}",
        headers.keys().collect::<Vec<_>>()
    );
    assert!(!headers.contains_key("sec-websocket-key"));
    assert!(connect["multiValueHeaders"]["Sec-WebSocket-Version"][0] == "13");
    let disconnect = &events[2].1["requestContext"];
    assert_eq!(
        disconnect["disconnectStatusCode"], 1005,
        "a close frame without a code"
    );
    assert_eq!(
        disconnect["disconnectReason"],
        "Client-side close frame status not set"
    );
    let ids: Vec<&Value> = events
        .iter()
        .map(|(_, e)| &e["requestContext"]["connectionId"])
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one connection id throughout"
    );
    for (name, json) in events.clone() {
        check_event(&name, json);
    }
    check_shapes(events);
}

#[test]
fn the_authorizer_events_have_the_captured_shape() {
    let fixture = read(&repo().join(
        "tests/fixtures/aws-events/example-apigw-v2-custom-authorizer-websocket-request.json",
    ));
    let info = chat_local::events::ConnectionInfo {
        connection_id: "R1kmxc2VNjMCFIA=".into(),
        connected_at_ms: 1_655_103_417_248,
        source_ip: "127.0.0.1".into(),
        user_agent: Some("test".into()),
        api_id: "chatapi000".into(),
        stage: "Test".into(),
        domain_name: "127.0.0.1:3001".into(),
        authorizer: None,
    };
    let headers = [("Host".to_owned(), "127.0.0.1:3001".to_owned())];
    let query = [("token".to_owned(), "abc".to_owned())];
    let arn = "arn:aws:execute-api:us-east-1:123456789012:chatapi000/Test/$connect";
    let local =
        chat_local::events::authorizer_request(&info, &headers, &query, arn, 1_655_103_417_249);
    let sample = read(&repo().join("events/authorizer/connect_request.json"));
    let mut expected = BTreeMap::new();
    shape(&fixture, "", &mut expected);
    // The capture also holds the Rust runtime's invocation context (context, deadline, …),
    // which is not part of what API Gateway sends.
    let sent_by_api_gateway = [
        "type",
        "methodArn",
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "stageVariables",
        "requestContext",
    ];
    expected.retain(|path, _| {
        sent_by_api_gateway
            .iter()
            .any(|top| path == top || path.starts_with(&format!("{top}.")))
    });
    for (name, event) in [
        ("the local stack's", &local),
        ("events/authorizer/", &sample),
    ] {
        let mut actual = BTreeMap::new();
        shape(event, "", &mut actual);
        actual.remove("");
        assert_eq!(actual, expected, "{name} authorizer event");
    }
    assert_eq!(local["type"], "REQUEST");
    assert_eq!(local["methodArn"], arn);
    assert_eq!(local["queryStringParameters"]["token"], "abc");
    assert_eq!(local["requestContext"]["eventType"], "CONNECT");
    assert_eq!(local["requestContext"]["routeKey"], "$connect");
}
