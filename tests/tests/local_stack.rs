//! The local stack end to end: real sockets, real dynalite, real bootstrap processes.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{eventually, Client, Options, Stack};
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_reaches_every_client_the_sender_included_exactly_once() {
    let stack = Stack::start(Options::project()).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(stack.client().await);
    }
    for (n, client) in clients.iter_mut().enumerate() {
        client.say(&format!("hello from {n}")).await;
    }
    for client in clients.iter_mut() {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for _ in 0..3 {
            let frame = client.json().await;
            assert_eq!(frame["type"], "message", "{frame}");
            assert!(frame["sentAt"].as_str().unwrap().ends_with('Z'));
            *seen
                .entry(frame["message"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        assert_eq!(seen.len(), 3, "one of each message: {seen:?}");
        assert!(seen.values().all(|&count| count == 1));
        client.expect_silence(Duration::from_millis(300)).await;
    }
    let output = stack.output().join("\n");
    assert!(
        output.contains("REPORT RequestId:"),
        "REPORT lines are printed"
    );
    assert!(
        output.contains("Init Duration:"),
        "cold starts report their init duration"
    );
    assert!(
        output.contains("[OnMessageFunction]"),
        "function logs are prefixed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_clients_item_is_removed_from_the_table() {
    let stack = Stack::start(Options::project()).await;
    let mut staying = stack.client().await;
    let mut leaving = stack.client().await;
    let leaving_id = leaving.own_id().await;
    let staying_id = staying.own_id().await;
    assert!(stack.stored_ids().await.contains(&leaving_id));
    leaving.close().await;
    eventually("the closed client's id is deleted", || async {
        !stack.stored_ids().await.contains(&leaving_id)
    })
    .await;
    assert_eq!(stack.stored_ids().await, vec![staying_id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_and_invalid_requests_go_to_default_and_get_explained() {
    let stack = Stack::start(Options::project()).await;
    let mut sender = stack.client().await;
    let mut bystander = stack.client().await;
    for (body, code) in [
        (r#"{"action":"shout","message":"hi"}"#, "unknown_action"),
        ("not json at all", "invalid_json"),
        (r#"{"message":"no action"}"#, "missing_action"),
        (r#"{"action":"onMessage"}"#, "missing_message"),
        (r#"{"action":"onMessage","message":""}"#, "empty_message"),
    ] {
        sender.send_text(body).await;
        let frame = sender.json().await;
        assert_eq!(frame["type"], "error", "{body}: {frame}");
        assert_eq!(frame["code"], code, "{body}");
        assert!(frame["message"]
            .as_str()
            .unwrap()
            .contains(r#"{"action":"onMessage","message":"Hello everyone"}"#));
    }
    bystander.expect_silence(Duration::from_millis(300)).await;
    sender.say("still here").await;
    assert_eq!(sender.json().await["message"], "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_default_route_unmatched_messages_are_forbidden() {
    let stack = Stack::start(Options::faults()).await;
    let mut client = stack.client().await;
    client.send_text(r#"{"action":"nothing-here"}"#).await;
    let frame = client.json().await;
    assert_eq!(frame["message"], "Forbidden");
    assert_eq!(frame["connectionId"].as_str().unwrap().len(), 16);
    assert!(frame["requestId"].is_string());
    client.send_text("not json").await;
    assert_eq!(client.json().await["message"], "Forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_api_posts_describes_deletes_and_answers_gone() {
    let stack = Stack::start(Options::project()).await;
    let mut client = stack.client().await;
    let id = client.own_id().await;
    let url = format!("{}/@connections/{id}", stack.connections_url);
    let http = common::Signed(reqwest::Client::new());

    let posted = http
        .send(
            "POST",
            &url,
            r#"{"type":"message","message":"from the API"}"#,
        )
        .await;
    assert_eq!(posted.status(), 200);
    assert_eq!(client.json().await["message"], "from the API");

    let described: Value = http.send("GET", &url, "").await.json().await.unwrap();
    assert!(
        described["connectedAt"].as_str().unwrap().ends_with('Z'),
        "{described}"
    );
    assert!(described["lastActiveAt"].is_string());
    assert_eq!(described["identity"]["sourceIp"], "127.0.0.1");

    let big = "x".repeat(128 * 1024 + 1);
    assert_eq!(http.send("POST", &url, &big).await.status(), 413);

    assert_eq!(http.send("DELETE", &url, "").await.status(), 204);
    // DELETE answers once the connection is closed: from then on it is gone.
    assert_eq!(http.send("POST", &url, "late").await.status(), 410);
    assert_eq!(http.send("DELETE", &url, "").await.status(), 410);
    match client.next().await {
        Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected close 1000, got {other:?}"),
    }
    let gone = http.send("POST", &url, "late").await;
    assert_eq!(gone.headers()["x-amzn-errortype"], "GoneException");
    let unknown = format!("{}/@connections/AAAAAAAAAAAAAAA=", stack.connections_url);
    assert_eq!(http.send("GET", &unknown, "").await.status(), 410);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_message_closes_the_connection_with_1009() {
    let stack = Stack::start(Options::project()).await;
    let mut client = stack.client().await;
    let body = format!(
        r#"{{"action":"onMessage","message":"{}"}}"#,
        "x".repeat(128 * 1024)
    );
    client.send_text(&body).await;
    match client.next().await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected close 1009, got {other:?}"),
    }
    let mut other = stack.client().await;
    other.say("the stack still serves").await;
    assert_eq!(other.json().await["message"], "the stack still serves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_and_hanging_functions_give_internal_server_error_and_the_stack_keeps_serving() {
    let stack = Stack::start(Options::faults()).await;
    let mut client = stack.client().await;
    for mode in ["crash", "error", "hang", "big"] {
        client
            .send_text(&format!(r#"{{"action":"fault","mode":"{mode}"}}"#))
            .await;
        let frame = client.json().await;
        assert_eq!(frame["message"], "Internal server error", "{mode}: {frame}");
        assert!(frame["connectionId"].is_string() && frame["requestId"].is_string());
        client.say(&format!("after {mode}")).await;
        assert_eq!(client.json().await["message"], format!("after {mode}"));
    }
    let output = stack.output().join("\n");
    assert!(
        output.contains("Task timed out after 2.00 seconds"),
        "the hang hit its Timeout"
    );
    assert!(
        output.contains("Function.ResponseSizeTooLarge"),
        "a response over 6 MB fails at once, as on Lambda"
    );
    client.send_text(r#"{"action":"fault","mode":"ok"}"#).await;
    client.expect_silence(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_connect_refuses_the_handshake_with_its_status() {
    let stack = Stack::start(Options::fault_connect()).await;
    let refused = Client::connect(&format!("{}/?status=403", stack.ws_url)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        Err(other) => panic!("expected HTTP 403, got {other}"),
        Ok(_) => panic!("the handshake should have been refused"),
    }
    let crashed = Client::connect(&format!("{}/?crash=1", stack.ws_url)).await;
    match crashed {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 500)
        }
        Err(other) => panic!("expected HTTP 500, got {other}"),
        Ok(_) => panic!("the handshake should have been refused"),
    }
    assert!(
        Client::connect(&stack.ws_url).await.is_ok(),
        "a good handshake still works"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_restarts_a_function_whose_binary_changed() {
    let dir = std::env::temp_dir().join(common::unique("watch-bin"));
    std::fs::create_dir_all(&dir).unwrap();
    let binary = dir.join("chat-fault");
    std::fs::copy(common::bin_dir().join("chat-fault"), &binary).unwrap();
    let mut options = Options::fault_connect();
    options.binaries = chat_local::functions::Binaries::Dir(dir.clone());
    options.watch = true;
    let stack = Stack::start(options).await;
    let cold_starts = || stack.cold_starts("FaultFunction");
    let mut client = stack.client().await;
    client.send_text(r#"{"action":"fault","mode":"ok"}"#).await;
    common::eventually("two invocations, one cold start", || async {
        stack
            .output()
            .iter()
            .filter(|l| l.starts_with("[FaultFunction] REPORT"))
            .count()
            == 2
    })
    .await;
    assert_eq!(
        cold_starts(),
        1,
        "the second invocation reused the warm instance"
    );

    // Replace the binary the way a build does: a new file renamed over the old one.
    let fresh = dir.join("chat-fault.new");
    std::fs::copy(common::bin_dir().join("chat-fault"), &fresh).unwrap();
    std::fs::rename(&fresh, &binary).unwrap();
    common::eventually("the watcher restarts FaultFunction", || async {
        stack.printed("FaultFunction: new binary, restarting its instances")
    })
    .await;
    client.send_text(r#"{"action":"fault","mode":"ok"}"#).await;
    common::eventually(
        "the next invocation is a cold start of the new binary",
        || async { cold_starts() == 2 },
    )
    .await;
    drop(stack);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persist_keeps_the_tables_and_their_items_across_restarts() {
    let dir = std::env::temp_dir().join(common::unique("persist"));
    let persisted = |dir: &std::path::Path| {
        let mut options = Options::project();
        options.shared_dynamodb = false;
        options.overrides = vec!["TableName=Persisted".into()];
        options.persist = Some(dir.to_path_buf());
        options
    };
    let stack = Stack::start(persisted(&dir)).await;
    assert!(stack.printed("table Persisted (ChatTable, created)"));
    let mut client = stack.client().await;
    let id = client.own_id().await;
    // Stopping the stack runs $disconnect, so add a second item directly to look for later.
    let dynamodb = stack.dynamodb().await;
    dynamodb
        .put_item()
        .table_name("Persisted")
        .item(
            "connectionid",
            aws_sdk_dynamodb::types::AttributeValue::S("kept".into()),
        )
        .send()
        .await
        .unwrap();
    assert!(stack.stop().await);

    let stack = Stack::start(persisted(&dir)).await;
    assert!(stack.printed("table Persisted (ChatTable, exists)"));
    let ids = stack.stored_ids().await;
    assert_eq!(
        ids,
        vec!["kept".to_owned()],
        "the data survived; {id} was removed by its $disconnect"
    );
    drop(stack);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A client whose requests to `@connections` are signed as the SDK signs them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_missing_from_the_table_is_refused_and_nothing_reaches_the_room() {
    let stack = Stack::start(Options::project()).await;
    let mut ghost = stack.client().await;
    let ghost_id = ghost.own_id().await;
    let mut other = stack.client().await;
    ghost.say("still registered").await;
    assert_eq!(other.json().await["message"], "still registered");
    assert_eq!(ghost.json().await["message"], "still registered");
    // Its item vanishes (a prune, a lost $connect write): it is no longer a member.
    stack
        .dynamodb()
        .await
        .delete_item()
        .table_name(stack.table.clone().unwrap_or_else(|| "Chat".into()))
        .key(
            "connectionid",
            aws_sdk_dynamodb::types::AttributeValue::S(ghost_id.clone()),
        )
        .send()
        .await
        .unwrap();
    ghost.say("from nowhere").await;
    let refused = ghost.json().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "not_connected", "{refused}");
    other.say("after").await;
    assert_eq!(
        other.json().await["message"],
        "after",
        "the room got nothing else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorizer_denies_an_event_without_a_method_arn() {
    let stack = Stack::start(Options::project()).await;
    let answer = stack
        .lambda()
        .invoke()
        .function_name(format!("{}-authorizer", chat_local::stack::STACK_NAME))
        .payload(aws_sdk_lambda::primitives::Blob::new(
            r#"{"type":"REQUEST","headers":{},"queryStringParameters":{}}"#,
        ))
        .send()
        .await
        .unwrap();
    let policy: Value = serde_json::from_slice(answer.payload().unwrap().as_ref()).unwrap();
    assert_eq!(
        policy["policyDocument"]["Statement"][0]["Effect"], "Deny",
        "{policy}"
    );
}
