//! Handler tests over mocked AWS SDK clients (aws-smithy-mocks): the rules of each route
//! without a network. The same behaviours run through the real stack in `tests/`.

use std::sync::{Arc, Mutex};

use aws_sdk_apigatewaymanagement::operation::post_to_connection::{
    PostToConnectionError, PostToConnectionOutput,
};
use aws_sdk_apigatewaymanagement::types::error::GoneException;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
use aws_sdk_dynamodb::operation::get_item::{GetItemError, GetItemOutput};
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::scan::{ScanError, ScanOutput};
use aws_sdk_dynamodb::types::error::InternalServerError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use chat::config::Config;
use chat::{ApiGatewayWebsocketProxyRequest, App, Route};
use serde_json::Value;

type Dynamo = aws_sdk_dynamodb::Client;
type Management = aws_sdk_apigatewaymanagement::Client;

const SENDER: &str = "Sx3qNeRgoAMCJkQ=";

fn event(name: &str) -> ApiGatewayWebsocketProxyRequest {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn message_event(body: &str) -> ApiGatewayWebsocketProxyRequest {
    let mut event = event("on_message.json");
    event.body = Some(body.to_owned());
    event
}

fn app(dynamo_rules: &[&Rule], management_rules: &[&Rule]) -> App {
    let config = Config::from_lookup(|name| match name {
        "TABLE_NAME" => Some("Chat".into()),
        "FANOUT_CONCURRENCY" => Some("4".into()),
        _ => None,
    })
    .unwrap();
    // The sender's stored name, unless a test sets its own GetItem rule (first match wins).
    let stored_name = stored_name("carol");
    let dynamo_rules: Vec<&Rule> = dynamo_rules.iter().copied().chain([&stored_name]).collect();
    let dynamo = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &dynamo_rules);
    let management = mock_client!(
        aws_sdk_apigatewaymanagement,
        RuleMode::MatchAny,
        management_rules
    );
    App::new(config, dynamo, management)
}

/// A GetItem rule answering the sender's item with `name`.
fn stored_name(name: &'static str) -> Rule {
    mock!(Dynamo::get_item)
        .match_requests(|req| req.key().unwrap()["connectionid"].as_s().unwrap() == SENDER)
        .then_output(move || {
            GetItemOutput::builder()
                .item("name", AttributeValue::S(name.into()))
                .build()
        })
}

/// An event whose request context carries what a `$connect` authorizer answered.
fn authorized(mut event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayWebsocketProxyRequest {
    event.request_context.authorizer.fields = serde_json::from_value(serde_json::json!({
        "principalId": "sub-42", "userId": "sub-42", "name": "Alice", "integrationLatency": 12
    }))
    .unwrap();
    event
}

fn ids_page(ids: &[&str], last: Option<&str>) -> ScanOutput {
    let items = ids
        .iter()
        .map(|id| [("connectionid".to_owned(), AttributeValue::S(id.to_string()))].into())
        .collect();
    let builder = ScanOutput::builder().set_items(Some(items));
    match last {
        Some(id) => builder
            .last_evaluated_key("connectionid", AttributeValue::S(id.into()))
            .build(),
        None => builder.build(),
    }
}

/// A post rule that records every (connection id, frame) it sees and succeeds.
fn recording_post(log: &Arc<Mutex<Vec<(String, Value)>>>) -> Rule {
    let log = Arc::clone(log);
    mock!(Management::post_to_connection)
        .match_requests(move |req| {
            let frame = serde_json::from_slice(req.data().unwrap().as_ref()).unwrap();
            log.lock()
                .unwrap()
                .push((req.connection_id().unwrap().to_owned(), frame));
            true
        })
        .then_output(|| PostToConnectionOutput::builder().build())
}

fn key_of(req: &aws_sdk_dynamodb::operation::delete_item::DeleteItemInput) -> String {
    req.key().unwrap()["connectionid"].as_s().unwrap().clone()
}

#[tokio::test]
async fn broadcast_pages_through_every_scan_page() {
    let scan = mock!(Dynamo::scan)
        .sequence()
        .output(|| ids_page(&["a", "b"], Some("b")))
        .output(|| ids_page(&["c", SENDER], Some(SENDER)))
        .output(|| ids_page(&["e"], None))
        .build();
    let posts = Arc::new(Mutex::new(Vec::new()));
    let app = app(&[&scan], &[&recording_post(&posts)]);

    let response = app.handle(Route::OnMessage, event("on_message.json")).await;

    assert_eq!(response.status_code, 200);
    assert_eq!(scan.num_calls(), 3);
    let posts = posts.lock().unwrap();
    let mut ids: Vec<&str> = posts.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, [SENDER, "a", "b", "c", "e"]);
    for (_, frame) in posts.iter() {
        assert_eq!(frame["type"], "message");
        assert_eq!(frame["from"], SENDER);
        assert_eq!(frame["name"], "carol", "the name $connect stored");
        assert_eq!(frame["message"], "Hello everyone");
    }
}

#[tokio::test]
async fn a_signed_in_sender_is_named_by_the_authorizer_without_a_read() {
    let scan = mock!(Dynamo::scan).then_output(|| ids_page(&[SENDER, "b"], None));
    let get = stored_name("not-read");
    let posts = Arc::new(Mutex::new(Vec::new()));
    let app = app(&[&scan, &get], &[&recording_post(&posts)]);

    let response = app
        .handle(Route::OnMessage, authorized(event("on_message.json")))
        .await;

    assert_eq!(response.status_code, 200);
    assert_eq!(
        get.num_calls(),
        0,
        "no GetItem when the authorizer named the sender"
    );
    let posts = posts.lock().unwrap();
    assert_eq!(posts.len(), 2);
    assert!(posts.iter().all(|(_, frame)| frame["name"] == "Alice"));
}

#[tokio::test]
async fn an_unknown_or_unreadable_sender_is_a_guest() {
    for failing in [false, true] {
        let get = if failing {
            mock!(Dynamo::get_item).then_error(|| {
                GetItemError::InternalServerError(InternalServerError::builder().build())
            })
        } else {
            mock!(Dynamo::get_item).then_output(|| GetItemOutput::builder().build())
        };
        let scan = mock!(Dynamo::scan).then_output(|| ids_page(&[SENDER], None));
        let posts = Arc::new(Mutex::new(Vec::new()));
        let app = app(&[&scan, &get], &[&recording_post(&posts)]);

        let response = app.handle(Route::OnMessage, event("on_message.json")).await;

        assert_eq!(response.status_code, 200, "the message still goes out");
        let posts = posts.lock().unwrap();
        assert_eq!(posts[0].1["name"], format!("guest-{}", &SENDER[..4]));
    }
}

#[tokio::test]
async fn gone_connection_is_deleted_and_the_sender_is_not() {
    let scan = mock!(Dynamo::scan).then_output(|| ids_page(&[SENDER, "stale", "live"], None));
    let delete_stale = mock!(Dynamo::delete_item)
        .match_requests(|req| key_of(req) == "stale" && req.condition_expression().is_some())
        .then_output(|| DeleteItemOutput::builder().build());
    let delete_other =
        mock!(Dynamo::delete_item).then_output(|| DeleteItemOutput::builder().build());
    let gone = mock!(Management::post_to_connection)
        .match_requests(|req| req.connection_id() == Some("stale"))
        .then_error(|| PostToConnectionError::GoneException(GoneException::builder().build()));
    let posts = Arc::new(Mutex::new(Vec::new()));
    let app = app(
        &[&scan, &delete_stale, &delete_other],
        &[&gone, &recording_post(&posts)],
    );

    let response = app.handle(Route::OnMessage, event("on_message.json")).await;

    assert_eq!(response.status_code, 200);
    assert_eq!(delete_stale.num_calls(), 1, "the stale id is deleted");
    assert_eq!(
        delete_other.num_calls(),
        0,
        "no other id, the sender's included, is deleted"
    );
    let mut delivered: Vec<String> = posts
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    delivered.sort();
    assert_eq!(delivered, ["Sx3qNeRgoAMCJkQ=", "live"]);
}

#[tokio::test]
async fn a_failing_post_does_not_stop_the_others() {
    let scan = mock!(Dynamo::scan).then_output(|| ids_page(&["a", "broken", "b", "c"], None));
    let delete = mock!(Dynamo::delete_item).then_output(|| DeleteItemOutput::builder().build());
    let broken = mock!(Management::post_to_connection)
        .match_requests(|req| req.connection_id() == Some("broken"))
        .sequence()
        .http_status(500, Some("boom".into()))
        .repeatedly()
        .build();
    let posts = Arc::new(Mutex::new(Vec::new()));
    let app = app(&[&scan, &delete], &[&broken, &recording_post(&posts)]);

    let response = app.handle(Route::OnMessage, event("on_message.json")).await;

    assert_eq!(response.status_code, 200);
    assert!(broken.num_calls() >= 1);
    assert_eq!(
        delete.num_calls(),
        0,
        "a 500 is not a 410: nothing is deleted"
    );
    let mut delivered: Vec<String> = posts
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    delivered.sort();
    assert_eq!(delivered, ["a", "b", "c"]);
}

#[tokio::test]
async fn invalid_messages_get_an_error_frame_and_no_scan() {
    let cases = [
        ("not json", "invalid_json"),
        ("[1]", "not_an_object"),
        (r#"{"action":"onMessage"}"#, "missing_message"),
        (
            r#"{"action":"onMessage","message":null}"#,
            "missing_message",
        ),
        (r#"{"action":"onMessage","message":""}"#, "empty_message"),
        (r#"{"action":"onMessage","message":42}"#, "invalid_message"),
    ];
    for (body, code) in cases {
        let scan = mock!(Dynamo::scan).then_output(|| ids_page(&["x"], None));
        let posts = Arc::new(Mutex::new(Vec::new()));
        let app = app(&[&scan], &[&recording_post(&posts)]);

        let response = app.handle(Route::OnMessage, message_event(body)).await;

        assert_eq!(response.status_code, 400, "{body}");
        assert_eq!(scan.num_calls(), 0, "no scan for {body}");
        let posts = posts.lock().unwrap();
        assert_eq!(posts.len(), 1, "exactly one reply for {body}");
        assert_eq!(posts[0].0, SENDER, "the reply goes to the sender only");
        assert_eq!(posts[0].1["type"], "error");
        assert_eq!(posts[0].1["code"], code, "{body}");
    }
}

#[tokio::test]
async fn the_fixture_variants_are_rejected_too() {
    for (file, code) in [
        ("on_message_missing_message.json", "missing_message"),
        ("on_message_empty_message.json", "empty_message"),
    ] {
        let scan = mock!(Dynamo::scan).then_output(|| ids_page(&["x"], None));
        let posts = Arc::new(Mutex::new(Vec::new()));
        let app = app(&[&scan], &[&recording_post(&posts)]);
        app.handle(Route::OnMessage, event(file)).await;
        assert_eq!(scan.num_calls(), 0);
        assert_eq!(posts.lock().unwrap()[0].1["code"], code, "{file}");
    }
}

#[tokio::test]
async fn a_scan_failure_tells_the_sender() {
    let scan = mock!(Dynamo::scan)
        .then_error(|| ScanError::InternalServerError(InternalServerError::builder().build()));
    let posts = Arc::new(Mutex::new(Vec::new()));
    let app = app(&[&scan], &[&recording_post(&posts)]);

    let response = app.handle(Route::OnMessage, event("on_message.json")).await;

    assert_eq!(response.status_code, 500);
    let posts = posts.lock().unwrap();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].1["code"], "unavailable");
}

#[tokio::test]
async fn connect_stores_the_id_with_an_expiry() {
    let put = mock!(Dynamo::put_item)
        .match_requests(|req| {
            let item = req.item().unwrap();
            let expires: i64 = item["expiresAt"].as_n().unwrap().parse().unwrap();
            let now = chrono::Utc::now().timestamp();
            item["connectionid"].as_s().unwrap() == SENDER
                && item["connectedAt"].as_n().is_ok()
                && expires > now + 2 * 3600
                && expires < now + 3 * 3600
        })
        .then_output(|| PutItemOutput::builder().build());
    let app = app(&[&put], &[]);

    let response = app.handle(Route::Connect, event("connect.json")).await;

    assert_eq!(response.status_code, 200);
    assert_eq!(put.num_calls(), 1);
}

/// Connects with `event` and returns the name `$connect` stored.
async fn stored_name_after_connect(event: ApiGatewayWebsocketProxyRequest) -> String {
    let names = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&names);
    let put = mock!(Dynamo::put_item)
        .match_requests(move |req| {
            let name = req.item().unwrap()["name"].as_s().unwrap().clone();
            seen.lock().unwrap().push(name);
            true
        })
        .then_output(|| PutItemOutput::builder().build());
    let app = app(&[&put], &[]);
    assert_eq!(app.handle(Route::Connect, event).await.status_code, 200);
    let names = names.lock().unwrap();
    assert_eq!(names.len(), 1);
    names[0].clone()
}

#[tokio::test]
async fn connect_stores_the_name_from_the_query_the_authorizer_or_a_guest_tag() {
    let with_query = |query: serde_json::Value| {
        let mut event = event("connect.json");
        event.query_string_parameters = serde_json::from_value(query).unwrap();
        event
    };
    assert_eq!(
        stored_name_after_connect(with_query(serde_json::json!({"name": "  ali\u{7}ce "}))).await,
        "alice"
    );
    let guest = format!("guest-{}", &SENDER[..4]);
    assert_eq!(
        stored_name_after_connect(with_query(serde_json::json!({}))).await,
        guest
    );
    assert_eq!(
        stored_name_after_connect(with_query(serde_json::json!({"name": "\n"}))).await,
        guest
    );
    // Signed in: the token's name wins over whatever ?name= says.
    let signed_in = authorized(with_query(serde_json::json!({"name": "mallory"})));
    assert_eq!(stored_name_after_connect(signed_in).await, "Alice");
}

#[tokio::test]
async fn connect_store_failure_refuses_the_connection() {
    let put = mock!(Dynamo::put_item)
        .then_error(|| PutItemError::InternalServerError(InternalServerError::builder().build()));
    let app = app(&[&put], &[]);

    let response = app.handle(Route::Connect, event("connect.json")).await;

    assert_eq!(response.status_code, 500);
}

#[tokio::test]
async fn disconnect_deletes_the_id_and_always_answers_200() {
    let delete = mock!(Dynamo::delete_item)
        .match_requests(|req| key_of(req) == SENDER)
        .then_output(|| DeleteItemOutput::builder().build());
    let app_ok = app(&[&delete], &[]);
    assert_eq!(
        app_ok
            .handle(Route::Disconnect, event("disconnect.json"))
            .await
            .status_code,
        200
    );
    assert_eq!(delete.num_calls(), 1);

    let failing = mock!(Dynamo::delete_item).then_error(|| {
        aws_sdk_dynamodb::operation::delete_item::DeleteItemError::InternalServerError(
            InternalServerError::builder().build(),
        )
    });
    let app_failing = app(&[&failing], &[]);
    assert_eq!(
        app_failing
            .handle(Route::Disconnect, event("disconnect.json"))
            .await
            .status_code,
        200
    );
}

#[tokio::test]
async fn default_route_explains_what_was_wrong() {
    for (file, code, hint) in [
        ("default.json", "unknown_action", "\"shout\""),
        ("default_not_json.json", "invalid_json", "JSON"),
        ("default_no_action.json", "missing_action", "\"action\""),
    ] {
        let posts = Arc::new(Mutex::new(Vec::new()));
        let app = app(&[], &[&recording_post(&posts)]);
        assert_eq!(
            app.handle(Route::Default, event(file)).await.status_code,
            200
        );
        let posts = posts.lock().unwrap();
        assert_eq!(posts.len(), 1, "{file}");
        assert_eq!(posts[0].0, SENDER);
        assert_eq!(posts[0].1["code"], code, "{file}");
        let message = posts[0].1["message"].as_str().unwrap();
        assert!(message.contains(hint), "{file}: {message}");
        assert!(message.contains(r#"{"action":"onMessage","message":"Hello everyone"}"#));
    }
}

#[tokio::test]
async fn an_event_without_a_connection_id_is_a_bad_request() {
    let mut event = event("on_message.json");
    event.request_context.connection_id = None;
    let app = app(&[], &[]);
    assert_eq!(app.handle(Route::OnMessage, event).await.status_code, 400);
}

#[tokio::test]
async fn a_gone_id_that_is_still_connecting_is_kept() {
    use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    let scan = mock!(Dynamo::scan).then_output(|| ids_page(&[SENDER, "connecting"], None));
    let young = mock!(Dynamo::delete_item).then_error(|| {
        DeleteItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder().build(),
        )
    });
    let gone = mock!(Management::post_to_connection)
        .match_requests(|req| req.connection_id() == Some("connecting"))
        .then_error(|| PostToConnectionError::GoneException(GoneException::builder().build()));
    let posts = Arc::new(Mutex::new(Vec::new()));
    let app = app(&[&scan, &young], &[&gone, &recording_post(&posts)]);

    let response = app.handle(Route::OnMessage, event("on_message.json")).await;

    assert_eq!(
        response.status_code, 200,
        "a failed condition is not an error"
    );
    assert_eq!(
        young.num_calls(),
        1,
        "the delete was conditional and refused"
    );
    assert_eq!(
        posts.lock().unwrap().len(),
        1,
        "the sender still got the message"
    );
}
