//! Handler tests over mocked AWS SDK clients (aws-smithy-mocks): the rules of each route
//! without a network. The same behaviours run through the real stack in `tests/`.

use std::sync::{Arc, Mutex};

use aws_sdk_apigatewaymanagement::operation::post_to_connection::{
    PostToConnectionError, PostToConnectionOutput,
};
use aws_sdk_apigatewaymanagement::types::error::{GoneException, LimitExceededException};
use aws_sdk_dynamodb::operation::delete_item::{
    DeleteItemError, DeleteItemInput, DeleteItemOutput,
};
use aws_sdk_dynamodb::operation::get_item::{GetItemError, GetItemOutput};
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::query::{QueryError, QueryOutput};
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::error::{ConditionalCheckFailedException, InternalServerError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use chat::config::Config;
use chat::{ApiGatewayWebsocketProxyRequest, App, Route};
use serde_json::{json, Value};

type Dynamo = aws_sdk_dynamodb::Client;
type Management = aws_sdk_apigatewaymanagement::Client;

const SENDER: &str = "Sx3qNeRgoAMCJkQ=";
const MEMBERS: &str = "Chat-members";
const MESSAGES: &str = "Chat-messages";

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

/// A `join`/`who`/`history` event with `body`.
fn rooms_event(route: &str, body: &str) -> ApiGatewayWebsocketProxyRequest {
    let mut event = message_event(body);
    event.request_context.route_key = Some(route.to_owned());
    event
}

fn item(pairs: &[(&str, AttributeValue)]) -> std::collections::HashMap<String, AttributeValue> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

fn n(number: impl ToString) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

/// The sender's record: in `room` as `name`, with a full rate bucket.
fn record(room: &'static str, name: &'static str) -> Rule {
    mock!(Dynamo::get_item)
        .match_requests(|req| req.key().unwrap().get("connectionid") == Some(&s(SENDER)))
        .then_output(move || {
            GetItemOutput::builder()
                .set_item(Some(item(&[
                    ("connectionid", s(SENDER)),
                    ("room", s(room)),
                    ("name", s(name)),
                ])))
                .build()
        })
}

/// The rules every test shares, after its own (the first matching rule wins): the sender
/// is carol in the lobby, writes succeed, rooms no test describes are empty.
fn app(dynamo_rules: &[&Rule], management_rules: &[&Rule]) -> App {
    app_with(&[], dynamo_rules, management_rules)
}

/// [`app`] with more environment variables.
fn app_with(env: &[(&str, &str)], dynamo_rules: &[&Rule], management_rules: &[&Rule]) -> App {
    let config = Config::from_lookup(|name| match name {
        "TABLE_NAME" => Some("Chat".into()),
        "FANOUT_CONCURRENCY" => Some("4".into()),
        other => env
            .iter()
            .find(|(k, _)| *k == other)
            .map(|(_, v)| v.to_string()),
    })
    .unwrap();
    let defaults = [
        record("lobby", "carol"),
        counter(),
        mock!(Dynamo::update_item).then_output(|| UpdateItemOutput::builder().build()),
        mock!(Dynamo::put_item).then_output(|| PutItemOutput::builder().build()),
        mock!(Dynamo::delete_item).then_output(|| DeleteItemOutput::builder().build()),
        mock!(Dynamo::query).then_output(|| QueryOutput::builder().build()),
        // Nobody is banned; no other item is there.
        mock!(Dynamo::get_item).then_output(|| GetItemOutput::builder().build()),
    ];
    let dynamo_rules: Vec<&Rule> = dynamo_rules.iter().copied().chain(&defaults).collect();
    let dynamo = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &dynamo_rules);
    let management = mock_client!(
        aws_sdk_apigatewaymanagement,
        RuleMode::MatchAny,
        management_rules
    );
    App::new(config, dynamo, management)
}

/// The messages table's counters: every room's `seq` from 1, one more each time.
fn counter() -> Rule {
    let last = Arc::new(std::sync::atomic::AtomicU64::new(0));
    mock!(Dynamo::update_item)
        .match_requests(|req| req.key().unwrap().get("sk") == Some(&s("#seq")))
        .then_output(move || {
            let n = last.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            UpdateItemOutput::builder()
                .attributes("n", self::n(n))
                .build()
        })
}

/// One page of a room's members (strongly consistent), continuing after `last`.
fn members_page(ids: &[&str], last: Option<&str>) -> QueryOutput {
    let items = ids
        .iter()
        .map(|id| item(&[("connectionid", s(id)), ("name", s(&format!("name-{id}")))]))
        .collect();
    let builder = QueryOutput::builder()
        .set_items(Some(items))
        .scanned_count(ids.len() as i32);
    match last {
        Some(id) => builder
            .last_evaluated_key("room", s("lobby"))
            .last_evaluated_key("connectionid", s(id))
            .build(),
        None => builder.build(),
    }
}

/// A Query rule for the members of `room`, answering `pages` in turn.
fn room_query(room: &'static str, pages: Vec<QueryOutput>) -> Rule {
    let pages = Arc::new(Mutex::new(pages.into_iter()));
    mock!(Dynamo::query)
        .match_requests(move |req| {
            req.table_name() == Some(MEMBERS)
                && req.consistent_read() == Some(true)
                && req.expression_attribute_values().unwrap()[":room"] == s(room)
        })
        .then_output(move || {
            pages
                .lock()
                .unwrap()
                .next()
                .unwrap_or_else(|| members_page(&[], None))
        })
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

type Posts = Arc<Mutex<Vec<(String, Value)>>>;

fn posts() -> Posts {
    Arc::new(Mutex::new(Vec::new()))
}

fn sorted_ids(posts: &Posts) -> Vec<String> {
    let mut ids: Vec<String> = posts
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    ids.sort();
    ids
}

fn key_of(req: &DeleteItemInput) -> String {
    req.key().unwrap()["connectionid"].as_s().unwrap().clone()
}

/// An event whose request context carries what a `$connect` authorizer answered.
fn authorized(mut event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayWebsocketProxyRequest {
    event.request_context.authorizer.fields = serde_json::from_value(json!({
        "principalId": "sub-42", "userId": "sub-42", "name": "Alice", "integrationLatency": 12
    }))
    .unwrap();
    event
}

#[tokio::test]
async fn a_message_is_kept_then_posted_to_every_page_of_its_room() {
    let query = room_query(
        "lobby",
        vec![
            members_page(&["a", "b"], Some("b")),
            members_page(&["c", SENDER], Some(SENDER)),
            members_page(&["e"], None),
        ],
    );
    let kept = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&kept);
    let put = mock!(Dynamo::put_item)
        .match_requests(move |req| {
            let item = req.item().unwrap();
            let text = |key: &str| item.get(key).map(|v| v.as_s().unwrap().clone());
            seen.lock().unwrap().push((
                req.table_name().unwrap().to_owned(),
                item["room"].as_s().unwrap().clone(),
                item["sk"].as_s().unwrap().clone(),
                text("frame").unwrap_or_default(),
                text("author"),
            ));
            true
        })
        .then_output(|| PutItemOutput::builder().build());
    let posts = posts();
    let app = app(&[&query, &put], &[&recording_post(&posts)]);

    let response = app.handle(Route::OnMessage, event("on_message.json")).await;

    assert_eq!(response.status_code, 200);
    assert_eq!(query.num_calls(), 3);
    assert_eq!(sorted_ids(&posts), [SENDER, "a", "b", "c", "e"]);
    let mut kept = kept.lock().unwrap();
    kept.sort_by(|a, b| b.2.cmp(&a.2));
    assert_eq!(
        kept.len(),
        2,
        "the message is kept once, and its id beside it"
    );
    let (_, _, id_key, _, author) = &kept[1];
    assert!(id_key.starts_with("i#"), "{id_key}");
    assert_eq!(author.as_deref(), Some(format!("c#{SENDER}").as_str()));
    let (table, room, sort_key, frame, _) = &kept[0];
    assert_eq!((table.as_str(), room.as_str()), (MESSAGES, "lobby"));
    for (_, posted) in posts.lock().unwrap().iter() {
        assert_eq!(
            posted,
            &serde_json::from_str::<Value>(frame).unwrap(),
            "kept as posted"
        );
        assert_eq!(posted["type"], "message");
        assert_eq!(posted["room"], "lobby");
        assert_eq!(posted["from"], SENDER);
        assert_eq!(posted["name"], "carol", "the name $connect stored");
        assert_eq!(posted["message"], "Hello everyone");
        let id = posted["id"].as_str().unwrap();
        assert!(!id.is_empty());
        assert_eq!(id_key, &format!("i#{id}"), "the id points at the message");
        assert_eq!(posted["seq"], 1, "the room's first message");
        assert_eq!(sort_key, "s#00000000000000000001");
    }
}

#[tokio::test]
async fn only_the_senders_room_is_read_and_posted_to() {
    let rust = room_query("rust", vec![members_page(&[SENDER, "r1"], None)]);
    let lobby = room_query("lobby", vec![members_page(&["l1", "l2"], None)]);
    let posts = posts();
    let app = app(
        &[&record("rust", "carol"), &rust, &lobby],
        &[&recording_post(&posts)],
    );

    app.handle(Route::OnMessage, event("on_message.json")).await;

    assert_eq!(lobby.num_calls(), 0, "another room costs nothing");
    assert_eq!(sorted_ids(&posts), [SENDER, "r1"]);
}

#[tokio::test]
async fn a_signed_in_sender_is_named_by_the_authorizer() {
    let query = room_query("lobby", vec![members_page(&[SENDER, "b"], None)]);
    let posts = posts();
    let app = app(&[&query], &[&recording_post(&posts)]);

    let response = app
        .handle(Route::OnMessage, authorized(event("on_message.json")))
        .await;

    assert_eq!(response.status_code, 200);
    let posts = posts.lock().unwrap();
    assert_eq!(posts.len(), 2);
    assert!(posts.iter().all(|(_, frame)| frame["name"] == "Alice"));
}

#[tokio::test]
async fn an_unknown_sender_is_refused_and_an_unreadable_one_is_told() {
    let unknown = mock!(Dynamo::get_item).then_output(|| GetItemOutput::builder().build());
    let query = room_query("lobby", vec![members_page(&["a"], None)]);
    let posts = posts();
    let app = app(&[&unknown, &query], &[&recording_post(&posts)]);
    assert_eq!(
        app.handle(Route::OnMessage, event("on_message.json"))
            .await
            .status_code,
        403
    );
    // Only the sender hears of it; nothing reached the room.
    let posts = posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].0, SENDER);
    assert_eq!(posts[0].1["code"], "not_connected");
    assert_eq!(query.num_calls(), 0);

    let failing = mock!(Dynamo::get_item)
        .then_error(|| GetItemError::InternalServerError(InternalServerError::builder().build()));
    let told = self::posts();
    let app = self::app(&[&failing], &[&recording_post(&told)]);
    assert_eq!(
        app.handle(Route::OnMessage, event("on_message.json"))
            .await
            .status_code,
        500
    );
    assert_eq!(told.lock().unwrap()[0].1["code"], "unavailable");
}

#[tokio::test]
async fn over_the_rate_the_sender_is_told_and_nothing_is_kept_or_posted() {
    let now = chrono::Utc::now().timestamp_millis();
    let empty = mock!(Dynamo::get_item).then_output(move || {
        GetItemOutput::builder()
            .set_item(Some(item(&[
                ("room", s("lobby")),
                ("name", s("carol")),
                ("tokens", n(0)),
                ("refilledAt", n(now)),
            ])))
            .build()
    });
    let query = room_query("lobby", vec![members_page(&["a"], None)]);
    let put = mock!(Dynamo::put_item).then_output(|| PutItemOutput::builder().build());
    let posts = posts();
    let app = app(&[&empty, &query, &put], &[&recording_post(&posts)]);

    let response = app.handle(Route::OnMessage, event("on_message.json")).await;

    assert_eq!(response.status_code, 429);
    assert_eq!((query.num_calls(), put.num_calls()), (0, 0));
    let posts = posts.lock().unwrap();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].0, SENDER);
    assert_eq!(posts[0].1["code"], "rate_limited");
    let wait = posts[0].1["retryAfterMs"].as_u64().unwrap();
    assert!((1..=200).contains(&wait), "one token at 5/s: {wait} ms");
}

#[tokio::test]
async fn a_bucket_spent_by_another_container_meanwhile_is_read_again() {
    // The bucket as read: 10 tokens at a fixed time; the update must be conditional on both.
    let at = chrono::Utc::now().timestamp_millis() - 1_000;
    let lost = mock!(Dynamo::update_item)
        .match_requests(move |req| {
            let values = req.expression_attribute_values().unwrap();
            req.condition_expression() == Some("refilledAt = :seenAt AND tokens = :seenTokens")
                && values[":seenAt"] == n(at)
                && values[":seenTokens"] == n(10)
                && values[":at"].as_n().unwrap().parse::<i64>().unwrap() >= at
        })
        .sequence()
        .error(|| {
            UpdateItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder().build(),
            )
        })
        .output(|| UpdateItemOutput::builder().build())
        .build();
    let get = mock!(Dynamo::get_item).then_output(move || {
        GetItemOutput::builder()
            .set_item(Some(item(&[
                ("room", s("lobby")),
                ("name", s("carol")),
                ("tokens", n(10)),
                ("refilledAt", n(at)),
            ])))
            .build()
    });
    let query = room_query("lobby", vec![members_page(&["a"], None)]);
    let posts = posts();
    let app = app(&[&lost, &get, &query], &[&recording_post(&posts)]);

    let response = app.handle(Route::OnMessage, event("on_message.json")).await;

    assert_eq!(response.status_code, 200);
    assert_eq!(
        lost.num_calls(),
        2,
        "the lost race is retried, conditional on the bucket as read"
    );
    assert_eq!(get.num_calls(), 2, "after reading the bucket again");
    assert_eq!(sorted_ids(&posts), ["a"]);
}

#[tokio::test]
async fn a_message_that_cannot_be_kept_is_not_posted() {
    let put = mock!(Dynamo::put_item)
        .then_error(|| PutItemError::InternalServerError(InternalServerError::builder().build()));
    let query = room_query("lobby", vec![members_page(&["a"], None)]);
    let posts = posts();
    let app = app(&[&put, &query], &[&recording_post(&posts)]);

    let response = app.handle(Route::OnMessage, event("on_message.json")).await;

    assert_eq!(response.status_code, 500);
    assert_eq!(query.num_calls(), 0);
    assert_eq!(posts.lock().unwrap()[0].1["code"], "unavailable");
}

#[tokio::test]
async fn gone_connection_is_deleted_from_both_tables_and_the_sender_is_not() {
    let query = room_query(
        "lobby",
        vec![members_page(&[SENDER, "stale", "live"], None)],
    );
    let delete_stale = mock!(Dynamo::delete_item)
        .match_requests(|req| key_of(req) == "stale" && req.condition_expression().is_some())
        .then_output(|| DeleteItemOutput::builder().build());
    let delete_other =
        mock!(Dynamo::delete_item).then_output(|| DeleteItemOutput::builder().build());
    let gone = mock!(Management::post_to_connection)
        .match_requests(|req| req.connection_id() == Some("stale"))
        .then_error(|| PostToConnectionError::GoneException(GoneException::builder().build()));
    let posts = posts();
    let app = app(
        &[&query, &delete_stale, &delete_other],
        &[&gone, &recording_post(&posts)],
    );

    let response = app.handle(Route::OnMessage, event("on_message.json")).await;

    assert_eq!(response.status_code, 200);
    assert_eq!(
        delete_stale.num_calls(),
        2,
        "the stale id is deleted from the connections and from the room"
    );
    assert_eq!(
        delete_other.num_calls(),
        0,
        "no other id, the sender's included"
    );
    assert_eq!(sorted_ids(&posts), [SENDER, "live"]);
}

#[tokio::test]
async fn a_failing_post_does_not_stop_the_others() {
    let query = room_query(
        "lobby",
        vec![members_page(&["a", "broken", "b", "c"], None)],
    );
    let delete = mock!(Dynamo::delete_item).then_output(|| DeleteItemOutput::builder().build());
    let broken = mock!(Management::post_to_connection)
        .match_requests(|req| req.connection_id() == Some("broken"))
        .sequence()
        .http_status(500, Some("boom".into()))
        .repeatedly()
        .build();
    let posts = posts();
    let app = app(&[&query, &delete], &[&broken, &recording_post(&posts)]);

    let response = app.handle(Route::OnMessage, event("on_message.json")).await;

    assert_eq!(response.status_code, 200);
    assert!(broken.num_calls() >= 1);
    assert_eq!(
        delete.num_calls(),
        0,
        "a 500 is not a 410: nothing is deleted"
    );
    assert_eq!(sorted_ids(&posts), ["a", "b", "c"]);
}

#[tokio::test]
async fn invalid_messages_get_an_error_frame_and_no_reads() {
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
        let get = record("lobby", "carol");
        let query = room_query("lobby", vec![members_page(&["x"], None)]);
        let posts = posts();
        let app = app(&[&get, &query], &[&recording_post(&posts)]);

        let response = app.handle(Route::OnMessage, message_event(body)).await;

        assert_eq!(response.status_code, 400, "{body}");
        assert_eq!(
            (get.num_calls(), query.num_calls()),
            (0, 0),
            "no reads for {body}"
        );
        let posts = posts.lock().unwrap();
        assert_eq!(posts.len(), 1, "exactly one reply for {body}");
        assert_eq!(posts[0].0, SENDER, "the reply goes to the sender only");
        assert_eq!(posts[0].1["type"], "error");
        assert_eq!(posts[0].1["code"], code, "{body}");
    }
    for (file, code) in [
        ("on_message_missing_message.json", "missing_message"),
        ("on_message_empty_message.json", "empty_message"),
    ] {
        let posts = posts();
        let app = app(&[], &[&recording_post(&posts)]);
        app.handle(Route::OnMessage, event(file)).await;
        assert_eq!(posts.lock().unwrap()[0].1["code"], code, "{file}");
    }
}

#[tokio::test]
async fn a_query_failure_tells_the_sender() {
    let query = mock!(Dynamo::query)
        .then_error(|| QueryError::InternalServerError(InternalServerError::builder().build()));
    let posts = posts();
    let app = app(&[&query], &[&recording_post(&posts)]);

    let response = app.handle(Route::OnMessage, event("on_message.json")).await;

    assert_eq!(response.status_code, 500);
    let posts = posts.lock().unwrap();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].1["code"], "unavailable");
}

/// What `$connect` wrote: (table, item) per PutItem.
type Writes = Arc<Mutex<Vec<(String, std::collections::HashMap<String, AttributeValue>)>>>;

fn recording_put(writes: &Writes) -> Rule {
    let writes = Arc::clone(writes);
    mock!(Dynamo::put_item)
        .match_requests(move |req| {
            let entry = (
                req.table_name().unwrap().to_owned(),
                req.item().unwrap().clone(),
            );
            writes.lock().unwrap().push(entry);
            true
        })
        .then_output(|| PutItemOutput::builder().build())
}

fn connect_event(query: Value) -> ApiGatewayWebsocketProxyRequest {
    let mut event = event("connect.json");
    event.query_string_parameters = serde_json::from_value(query).unwrap();
    event
}

#[tokio::test]
async fn connect_stores_the_connection_and_its_membership_and_tells_the_others() {
    let writes = Writes::default();
    let query = room_query("rust", vec![members_page(&[SENDER, "r1"], None)]);
    let posts = posts();
    let app = app(
        &[&recording_put(&writes), &query],
        &[&recording_post(&posts)],
    );

    let response = app
        .handle(
            Route::Connect,
            connect_event(json!({"room": "rust", "name": "dora"})),
        )
        .await;

    assert_eq!(response.status_code, 200);
    let writes = writes.lock().unwrap();
    assert_eq!(writes.len(), 2);
    let now = chrono::Utc::now().timestamp();
    for (table, item) in writes.iter() {
        assert!(table == "Chat" || table == MEMBERS, "{table}");
        assert_eq!(item["connectionid"], s(SENDER));
        assert_eq!(item["room"], s("rust"));
        assert_eq!(item["name"], s("dora"));
        let expires: i64 = item["expiresAt"].as_n().unwrap().parse().unwrap();
        assert!(expires > now + 2 * 3600 && expires < now + 3 * 3600);
    }
    let posts = posts.lock().unwrap();
    assert_eq!(posts.len(), 1, "the others are told, not the newcomer");
    assert_eq!(posts[0].0, "r1");
    assert_eq!(
        posts[0].1,
        json!({"type": "joined", "room": "rust", "from": SENDER, "name": "dora"})
    );
}

#[tokio::test]
async fn presence_is_not_announced_to_a_room_over_the_limit() {
    let query = room_query("lobby", vec![members_page(&[SENDER, "a", "b", "c"], None)]);
    let posts = posts();
    let app = app_with(
        &[("PRESENCE_LIMIT", "2")],
        &[&query],
        &[&recording_post(&posts)],
    );

    let response = app.handle(Route::Connect, event("connect.json")).await;

    assert_eq!(response.status_code, 200);
    assert_eq!(query.num_calls(), 1);
    assert!(
        posts.lock().unwrap().is_empty(),
        "three others are over the limit of two"
    );
}

/// Connects with `event` and returns the name `$connect` stored.
async fn stored_name_after_connect(event: ApiGatewayWebsocketProxyRequest) -> String {
    let writes = Writes::default();
    let app = app(&[&recording_put(&writes)], &[]);
    assert_eq!(app.handle(Route::Connect, event).await.status_code, 200);
    let writes = writes.lock().unwrap();
    let (users, rooms): (Vec<_>, Vec<_>) =
        writes.iter().partition(|(table, _)| table == "Chat-users");
    assert_eq!(rooms.len(), 2, "the connection and its membership");
    let name = rooms[0].1["name"].as_s().unwrap().clone();
    // A signed-in user is recorded as seen, under the same name and their user id.
    if let Some((_, profile)) = users.first() {
        assert_eq!(profile["name"].as_s().unwrap(), &name);
        assert_eq!(rooms[0].1["user"], profile["user"]);
    } else {
        assert!(!rooms[0].1.contains_key("user"), "open mode: no user");
    }
    name
}

#[tokio::test]
async fn connect_stores_the_name_from_the_query_the_authorizer_or_a_guest_tag() {
    let named = connect_event(json!({"name": "  ali\u{7}ce "}));
    assert_eq!(stored_name_after_connect(named).await, "alice");
    let guest = format!("guest-{}", &SENDER[..4]);
    assert_eq!(
        stored_name_after_connect(connect_event(json!({}))).await,
        guest
    );
    assert_eq!(
        stored_name_after_connect(connect_event(json!({"name": "\n"}))).await,
        guest
    );
    // Signed in: the token's name wins over whatever ?name= says.
    let signed_in = authorized(connect_event(json!({"name": "mallory"})));
    assert_eq!(stored_name_after_connect(signed_in).await, "Alice");
}

#[tokio::test]
async fn connect_refuses_a_bad_room_and_a_store_failure() {
    for room in ["", "two words", "a/b", &"x".repeat(65)] {
        let writes = Writes::default();
        let app = app(&[&recording_put(&writes)], &[]);
        let response = app
            .handle(Route::Connect, connect_event(json!({"room": room})))
            .await;
        assert_eq!(response.status_code, 400, "{room:?}");
        assert!(
            writes.lock().unwrap().is_empty(),
            "nothing stored for {room:?}"
        );
    }
    let put = mock!(Dynamo::put_item)
        .then_error(|| PutItemError::InternalServerError(InternalServerError::builder().build()));
    let app = app(&[&put], &[]);
    assert_eq!(
        app.handle(Route::Connect, event("connect.json"))
            .await
            .status_code,
        500
    );
}

#[tokio::test]
async fn disconnect_leaves_the_room_tells_it_and_always_answers_200() {
    let removed = mock!(Dynamo::delete_item)
        .match_requests(|req| req.table_name() == Some("Chat") && key_of(req) == SENDER)
        .then_output(|| {
            DeleteItemOutput::builder()
                .set_attributes(Some(item(&[("room", s("rust")), ("name", s("dora"))])))
                .build()
        });
    let left_room = mock!(Dynamo::delete_item)
        .match_requests(|req| {
            req.table_name() == Some(MEMBERS)
                && key_of(req) == SENDER
                && req.key().unwrap()["room"] == s("rust")
        })
        .then_output(|| DeleteItemOutput::builder().build());
    let query = room_query("rust", vec![members_page(&["r1"], None)]);
    let posts = posts();
    let app_ok = app(&[&removed, &left_room, &query], &[&recording_post(&posts)]);
    let response = app_ok
        .handle(Route::Disconnect, event("disconnect.json"))
        .await;
    assert_eq!(response.status_code, 200);
    assert_eq!((removed.num_calls(), left_room.num_calls()), (1, 1));
    assert_eq!(
        posts.lock().unwrap()[..],
        [(
            "r1".to_owned(),
            json!({"type": "left", "room": "rust", "from": SENDER, "name": "dora"})
        )]
    );

    let failing = mock!(Dynamo::delete_item).then_error(|| {
        DeleteItemError::InternalServerError(InternalServerError::builder().build())
    });
    let app_failing = app(&[&failing], &[]);
    let response = app_failing
        .handle(Route::Disconnect, event("disconnect.json"))
        .await;
    assert_eq!(response.status_code, 200);
}

#[tokio::test]
async fn join_enters_the_new_room_leaves_the_old_and_tells_both() {
    let writes = Writes::default();
    let moved = mock!(Dynamo::update_item)
        .match_requests(|req| {
            req.expression_attribute_values().unwrap()[":room"] == s("rust")
                && req.condition_expression() == Some("attribute_exists(connectionid)")
        })
        .then_output(|| {
            UpdateItemOutput::builder()
                .set_attributes(Some(item(&[("room", s("lobby"))])))
                .build()
        });
    let left_lobby = mock!(Dynamo::delete_item)
        .match_requests(|req| {
            req.table_name() == Some(MEMBERS) && req.key().unwrap()["room"] == s("lobby")
        })
        .then_output(|| DeleteItemOutput::builder().build());
    let lobby = room_query("lobby", vec![members_page(&["l1"], None)]);
    let rust = room_query("rust", vec![members_page(&[SENDER, "r1"], None)]);
    let posts = posts();
    let app = app(
        &[&recording_put(&writes), &moved, &left_lobby, &lobby, &rust],
        &[&recording_post(&posts)],
    );

    let response = app
        .handle(
            Route::Rooms,
            rooms_event("join", r#"{"action":"join","room":"rust"}"#),
        )
        .await;

    assert_eq!(response.status_code, 200);
    let writes = writes.lock().unwrap();
    assert_eq!(writes.len(), 1);
    assert_eq!(
        (writes[0].0.as_str(), &writes[0].1["room"]),
        (MEMBERS, &s("rust"))
    );
    assert_eq!((moved.num_calls(), left_lobby.num_calls()), (1, 1));
    let mut posts = posts.lock().unwrap().clone();
    posts.sort_by(|a, b| a.0.cmp(&b.0));
    let presence = |kind: &str, room: &str| json!({"type": kind, "room": room, "from": SENDER, "name": "carol"});
    assert_eq!(
        posts,
        [
            ("Sx3qNeRgoAMCJkQ=".to_owned(), presence("joined", "rust")),
            ("l1".to_owned(), presence("left", "lobby")),
            ("r1".to_owned(), presence("joined", "rust")),
        ]
    );
}

#[tokio::test]
async fn a_join_that_cannot_complete_takes_its_membership_back() {
    let gone = mock!(Dynamo::update_item).then_error(|| {
        UpdateItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder().build(),
        )
    });
    let undo = mock!(Dynamo::delete_item)
        .match_requests(|req| {
            req.table_name() == Some(MEMBERS) && req.key().unwrap()["room"] == s("rust")
        })
        .then_output(|| DeleteItemOutput::builder().build());
    let posts = posts();
    let app = app(&[&gone, &undo], &[&recording_post(&posts)]);
    let join = rooms_event("join", r#"{"action":"join","room":"rust"}"#);
    // The connection's record went away between the read and the move ($disconnect ran).
    assert_eq!(
        app.handle(Route::Rooms, join.clone()).await.status_code,
        200
    );
    assert_eq!(undo.num_calls(), 1, "the new membership is taken back");
    assert!(
        posts.lock().unwrap().is_empty(),
        "nobody is told of a join that did not happen"
    );

    let failing = mock!(Dynamo::update_item).then_error(|| {
        UpdateItemError::InternalServerError(InternalServerError::builder().build())
    });
    let told = self::posts();
    let app = self::app(&[&failing, &undo], &[&recording_post(&told)]);
    assert_eq!(app.handle(Route::Rooms, join).await.status_code, 500);
    assert_eq!(undo.num_calls(), 2);
    assert_eq!(told.lock().unwrap()[0].1["code"], "unavailable");
}

#[tokio::test]
async fn room_requests_answer_unavailable_when_the_connection_cannot_be_read() {
    for (route, body) in [
        ("who", r#"{"action":"who"}"#),
        ("history", r#"{"action":"history"}"#),
        ("join", r#"{"action":"join","room":"rust"}"#),
    ] {
        let failing = mock!(Dynamo::get_item).then_error(|| {
            GetItemError::InternalServerError(InternalServerError::builder().build())
        });
        let query = mock!(Dynamo::query).then_output(|| QueryOutput::builder().build());
        let posts = posts();
        let app = app(&[&failing, &query], &[&recording_post(&posts)]);
        let response = app.handle(Route::Rooms, rooms_event(route, body)).await;
        assert_eq!(response.status_code, 500, "{route}");
        assert_eq!(
            query.num_calls(),
            0,
            "no answer for the wrong room: {route}"
        );
        let posts = posts.lock().unwrap();
        assert_eq!(posts.len(), 1);
        assert_eq!(posts[0].1["code"], "unavailable");
    }
}

#[tokio::test]
async fn room_requests_are_checked_before_anything_is_read() {
    for (route, body, code) in [
        (
            "join",
            r#"{"action":"join","room":"no spaces"}"#,
            "invalid_room",
        ),
        ("join", r#"{"action":"join"}"#, "invalid_room"),
        (
            "history",
            r#"{"action":"history","limit":0}"#,
            "invalid_limit",
        ),
        (
            "history",
            r#"{"action":"history","limit":"ten"}"#,
            "invalid_limit",
        ),
    ] {
        let get = record("lobby", "carol");
        let posts = posts();
        let app = app(&[&get], &[&recording_post(&posts)]);
        let response = app.handle(Route::Rooms, rooms_event(route, body)).await;
        assert_eq!(response.status_code, 400, "{body}");
        assert_eq!(get.num_calls(), 0, "{body}");
        assert_eq!(posts.lock().unwrap()[0].1["code"], code, "{body}");
    }
}

#[tokio::test]
async fn who_lists_every_page_of_the_room_to_the_sender_only() {
    let query = room_query(
        "lobby",
        vec![
            members_page(&["a", "b"], Some("b")),
            members_page(&[SENDER], None),
        ],
    );
    let posts = posts();
    let app = app(&[&query], &[&recording_post(&posts)]);

    let response = app
        .handle(Route::Rooms, rooms_event("who", r#"{"action":"who"}"#))
        .await;

    assert_eq!(response.status_code, 200);
    let posts = posts.lock().unwrap();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].0, SENDER);
    assert_eq!(
        posts[0].1,
        json!({"type": "members", "room": "lobby", "you": SENDER, "more": false, "members": [
            {"from": "a", "name": "name-a"}, {"from": "b", "name": "name-b"},
            {"from": SENDER, "name": format!("name-{SENDER}")}]})
    );
}

#[tokio::test]
async fn history_returns_the_newest_oldest_first() {
    let stored = |n: u32| format!(r#"{{"type":"message","id":"m{n}","room":"lobby"}}"#);
    let query = mock!(Dynamo::query)
        .match_requests(|req| {
            req.table_name() == Some(MESSAGES)
                && req.scan_index_forward() == Some(false)
                && req.limit() == Some(3)
                && req.consistent_read() == Some(true)
        })
        .then_output(move || {
            let newest_first = (1..=3)
                .rev()
                .map(|n| item(&[("sk", s(&format!("s#{n:020}"))), ("frame", s(&stored(n)))]))
                .collect();
            QueryOutput::builder().set_items(Some(newest_first)).build()
        });
    let posts = posts();
    let app = app(&[&query], &[&recording_post(&posts)]);

    let response = app
        .handle(
            Route::Rooms,
            rooms_event("history", r#"{"action":"history","limit":3}"#),
        )
        .await;

    assert_eq!(response.status_code, 200);
    assert_eq!(query.num_calls(), 1);
    let posts = posts.lock().unwrap();
    let ids: Vec<&str> = posts[0].1["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m1", "m2", "m3"]);
    assert_eq!(posts[0].1["truncated"], false);
    assert_eq!(posts[0].1["room"], "lobby");
    assert_eq!(
        (&posts[0].1["more"], &posts[0].1["gap"]),
        (&json!(false), &json!(false))
    );
}

#[tokio::test]
async fn default_route_explains_what_was_wrong() {
    for (file, code, hint) in [
        ("default.json", "unknown_action", "\"shout\""),
        ("default_not_json.json", "invalid_json", "JSON"),
        ("default_no_action.json", "missing_action", "\"action\""),
    ] {
        let posts = posts();
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
    let query = room_query("lobby", vec![members_page(&[SENDER, "connecting"], None)]);
    let young = mock!(Dynamo::delete_item).then_error(|| {
        DeleteItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder().build(),
        )
    });
    let gone = mock!(Management::post_to_connection)
        .match_requests(|req| req.connection_id() == Some("connecting"))
        .then_error(|| PostToConnectionError::GoneException(GoneException::builder().build()));
    let posts = posts();
    let app = app(&[&query, &young], &[&gone, &recording_post(&posts)]);

    let response = app.handle(Route::OnMessage, event("on_message.json")).await;

    assert_eq!(
        response.status_code, 200,
        "a failed condition is not an error"
    );
    assert_eq!(
        young.num_calls(),
        2,
        "both conditional deletes were refused"
    );
    assert_eq!(
        posts.lock().unwrap().len(),
        1,
        "the sender still got the message"
    );
}

/// A fan-out job as onMessage hands it to FanoutFunction.
fn job(endpoint: &str, ids: &[&str]) -> chat::delivery::fanout::Job {
    chat::delivery::fanout::Job {
        endpoint: endpoint.to_owned(),
        room: "lobby".to_owned(),
        frame: r#"{"type":"message","message":"Hello everyone"}"#.to_owned(),
        chunk: 2,
        chunks: 3,
        connection_ids: ids.iter().map(|id| id.to_string()).collect(),
        connected_at: Vec::new(),
        prune_ids: Vec::new(),
        prune_connected_at: Vec::new(),
        hops: 0,
    }
}

const OWN_ENDPOINT: &str = "http://127.0.0.1:3002/Test";

#[tokio::test]
async fn a_worker_posts_its_chunk_without_reading_the_room_and_prunes_gone_ids() {
    let query = mock!(Dynamo::query).then_output(|| QueryOutput::builder().build());
    let delete_stale = mock!(Dynamo::delete_item)
        .match_requests(|req| key_of(req) == "stale")
        .then_output(|| DeleteItemOutput::builder().build());
    let gone = mock!(Management::post_to_connection)
        .match_requests(|req| req.connection_id() == Some("stale"))
        .then_error(|| PostToConnectionError::GoneException(GoneException::builder().build()));
    let posts = posts();
    let app = app_with(
        &[("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI", OWN_ENDPOINT)],
        &[&query, &delete_stale],
        &[&gone, &recording_post(&posts)],
    );

    let summary = app
        .fan_out_chunk(job(OWN_ENDPOINT, &["a", "stale", "b"]))
        .await
        .expect("its own endpoint");

    assert_eq!((summary.delivered, summary.gone, summary.failed), (2, 1, 0));
    assert_eq!(sorted_ids(&posts), ["a", "b"]);
    let frames: Vec<Value> = posts
        .lock()
        .unwrap()
        .iter()
        .map(|(_, f)| f.clone())
        .collect();
    assert!(
        frames.iter().all(|f| f["message"] == "Hello everyone"),
        "the job's frame as is"
    );
    assert_eq!(query.num_calls(), 0, "a worker never reads the room");
    assert_eq!(
        delete_stale.num_calls(),
        2,
        "from the connections and from the room"
    );
}

#[tokio::test]
async fn a_worker_refuses_a_job_for_another_endpoint_and_posts_nothing() {
    let posts = posts();
    let app = app_with(
        &[("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI", OWN_ENDPOINT)],
        &[],
        &[&recording_post(&posts)],
    );
    for endpoint in [
        "https://evil.example.com/Test",
        "http://127.0.0.1:3002/Other",
        "",
    ] {
        assert!(
            app.fan_out_chunk(job(endpoint, &["a", "b"]))
                .await
                .is_none(),
            "{endpoint}"
        );
    }
    assert!(posts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_throttled_connection_is_retried_after_the_rest_until_the_deadline() {
    let query = room_query("lobby", vec![members_page(&["a", "full", "b"], None)]);
    let full = mock!(Management::post_to_connection)
        .match_requests(|req| req.connection_id() == Some("full"))
        .then_error(|| {
            PostToConnectionError::LimitExceededException(LimitExceededException::builder().build())
        });
    let posts = posts();
    let app = app(&[&query], &[&full, &recording_post(&posts)]);
    // Four seconds left: onMessage starts no post later than three before its end.
    let deadline = chrono::Utc::now().timestamp_millis() as u64 + 4_000;
    let started = std::time::Instant::now();
    let response = chat::delivery::budget::within(
        deadline,
        app.handle(Route::OnMessage, event("on_message.json")),
    )
    .await;
    assert_eq!(response.status_code, 200);
    assert_eq!(sorted_ids(&posts), ["a", "b"], "the others once each");
    assert!(
        full.num_calls() >= 2,
        "tried again after the rest: {} calls",
        full.num_calls()
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "and given up at the deadline"
    );
}

#[tokio::test]
async fn a_repeat_of_a_message_whose_broadcast_failed_is_broadcast_then() {
    let original =
        r#"{"type":"message","id":"m1","seq":4,"room":"lobby","message":"again","clientId":"c-1"}"#;
    let taken = mock!(Dynamo::put_item)
        .match_requests(|req| req.item().unwrap()["sk"] == s("c#c-1"))
        .then_error(|| {
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder().build(),
            )
        });
    let claim = mock!(Dynamo::get_item)
        .match_requests(|req| req.key().unwrap().get("sk") == Some(&s("c#c-1")))
        .then_output(move || {
            GetItemOutput::builder()
                .set_item(Some(item(&[
                    ("frame", s(original)),
                    ("unsent", AttributeValue::Bool(true)),
                ])))
                .build()
        });
    let marked = mock!(Dynamo::update_item)
        .match_requests(|req| req.update_expression() == Some("REMOVE unsent"))
        .then_output(|| UpdateItemOutput::builder().build());
    let counter_taken = mock!(Dynamo::update_item)
        .match_requests(|req| req.key().unwrap().get("sk") == Some(&s("#seq")))
        .then_output(|| UpdateItemOutput::builder().build());
    let query = room_query("lobby", vec![members_page(&[SENDER, "a"], None)]);
    let posts = posts();
    let app = app(
        &[&taken, &claim, &marked, &counter_taken, &query],
        &[&recording_post(&posts)],
    );
    let response = app
        .handle(
            Route::OnMessage,
            message_event(r#"{"action":"onMessage","message":"again","clientId":"c-1"}"#),
        )
        .await;
    assert_eq!(response.status_code, 200);
    assert_eq!(counter_taken.num_calls(), 0, "not numbered again");
    assert_eq!(sorted_ids(&posts), [SENDER, "a"], "the room has it now");
    assert!(posts
        .lock()
        .unwrap()
        .iter()
        .all(|(_, frame)| frame == &serde_json::from_str::<Value>(original).unwrap()));
    assert_eq!(marked.num_calls(), 1, "and it is marked sent");
}
