//! The metrics an operator watches, through the real local stack: each scenario (a chat
//! session, a gone connection pruned, a job refused for another endpoint, a rate-limited
//! burst, an authorizer's deny, a fan-out worker that fails every try) moves exactly the
//! metrics it should, as read from `/@local/metrics.json`; and a dropped chunk's record,
//! with its payload, is found at the local stand-in for its on-failure destination
//! (`/@local/on-failure.json`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chat_local::signing::SigningKey;
use common::*;
use e2e::issuer::TestIssuer;
use serde_json::{json, Value};

const FRAME: Duration = Duration::from_secs(10);
/// The chat's own metrics (the project's template's default namespace).
const OWN: &str = "ServerlessChat";

/// How much each series moved, by (namespace, name, the function or API it is of).
type Moved = BTreeMap<(String, String, String), f64>;

/// The stack's metrics, as scripts read them.
async fn snapshot(stack: &Stack) -> Value {
    stack.metrics().await
}

/// Every series' sum, by (namespace, name, the dimension naming its function or API).
fn sums(snapshot: &Value) -> Moved {
    let mut sums = BTreeMap::new();
    for metric in snapshot["metrics"].as_array().unwrap() {
        let dimensions = &metric["dimensions"];
        let owner = dimensions["FunctionName"]
            .as_str()
            .or(dimensions["ApiId"].as_str())
            .unwrap_or_default();
        let key = (
            metric["namespace"].as_str().unwrap().to_owned(),
            metric["name"].as_str().unwrap().to_owned(),
            owner.to_owned(),
        );
        *sums.entry(key).or_insert(0.0) += metric["sum"].as_f64().unwrap();
    }
    sums
}

/// What changed between two snapshots' sums (only what changed).
fn delta(before: &Moved, after: &Moved) -> Moved {
    after
        .iter()
        .filter_map(|(key, value)| {
            let moved = value - before.get(key).copied().unwrap_or(0.0);
            (moved != 0.0).then(|| (key.clone(), moved))
        })
        .collect()
}

fn key(namespace: &str, name: &str, owner: &str) -> (String, String, String) {
    (namespace.to_owned(), name.to_owned(), owner.to_owned())
}

/// The chat's own counters that moved (durations and cold starts left out: how often
/// an instance starts is the stack's business).
fn own_counters(moved: &Moved, namespace: &str) -> BTreeMap<(String, String), f64> {
    moved
        .iter()
        .filter(|((ns, name, _), _)| {
            ns == namespace && name != "FanoutDuration" && name != "ColdStarts"
        })
        .map(|((_, name, owner), value)| ((name.clone(), owner.clone()), *value))
        .collect()
}

/// Waits (bounded) until the chat's own counters in `namespace` have moved since
/// `before` by `expected`, then a little longer so that anything more would show; checks
/// that they moved by exactly that and that no other of them moved; returns all that moved.
async fn moved_exactly(
    stack: &Stack,
    before: &Moved,
    namespace: &str,
    expected: &[(&str, &str, f64)],
) -> Moved {
    let expected: BTreeMap<(String, String), f64> = expected
        .iter()
        .map(|(name, owner, value)| (((*name).to_owned(), (*owner).to_owned()), *value))
        .collect();
    let started = std::time::Instant::now();
    loop {
        let moved = delta(before, &sums(&snapshot(stack).await));
        let own = own_counters(&moved, namespace);
        if expected.iter().all(|(k, v)| own.get(k) == Some(v)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "metrics did not arrive: {moved:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let moved = delta(before, &sums(&snapshot(stack).await));
    assert_eq!(own_counters(&moved, namespace), expected, "{moved:?}");
    moved
}

/// The API's id, as API Gateway's metrics that moved name it.
fn api_of(moved: &Moved) -> String {
    moved
        .keys()
        .find(|(ns, _, _)| ns == "AWS/ApiGateway")
        .map(|(_, _, api)| api.clone())
        .expect("an API Gateway metric moved")
}

async fn quiet(clients: &mut [&mut Client]) {
    for client in clients.iter_mut() {
        client
            .messages_until_quiet(Duration::from_millis(300))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_session_counts_messages_deliveries_and_history_reads() {
    let stack = Stack::start(Options::project()).await;
    let room = unique("metrics");
    let mut alice = stack.join(&room).await;
    let mut bob = stack.join(&room).await;
    quiet(&mut [&mut alice, &mut bob]).await;
    let before = sums(&snapshot(&stack).await);

    for n in 0..3 {
        alice.say(&format!("hello {n}")).await;
        for client in [&mut alice, &mut bob] {
            assert_eq!(
                client.message_within(FRAME).await["message"],
                format!("hello {n}")
            );
        }
    }
    bob.send_json(json!({"action": "history"})).await;
    bob.frame_of("history", FRAME).await;

    let moved = moved_exactly(
        &stack,
        &before,
        OWN,
        &[
            ("MessagesKept", "OnMessageFunction", 3.0),
            ("Deliveries", "OnMessageFunction", 6.0),
            ("HistoryReads", "RoomsFunction", 1.0),
        ],
    )
    .await;
    let api = api_of(&moved);
    // Messages from clients (3 chat, 1 history) and to them (6 chat frames, 1 history).
    assert_eq!(moved[&key("AWS/ApiGateway", "MessageCount", &api)], 11.0);
    assert_eq!(
        moved[&key("AWS/Lambda", "Invocations", "OnMessageFunction")],
        3.0
    );
    assert_eq!(
        moved[&key("AWS/Lambda", "Invocations", "RoomsFunction")],
        1.0
    );
    // Only what moved is listed: no error did.
    assert!(!moved.contains_key(&key("AWS/Lambda", "Errors", "OnMessageFunction")));
    // One fan-out duration per broadcast, in milliseconds.
    let after = snapshot(&stack).await;
    let durations = after["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m["name"] == "FanoutDuration" && m["dimensions"]["FunctionName"] == "OnMessageFunction"
        })
        .expect("FanoutDuration");
    assert_eq!(durations["unit"], "Milliseconds");
    assert!(durations["count"].as_u64().unwrap() >= 3);
    assert!(durations["p99"].as_f64().unwrap() >= durations["p50"].as_f64().unwrap());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_member_is_counted_gone_and_pruned() {
    let stack = Stack::start(Options::project()).await;
    let room = unique("gone");
    let mut alice = stack.join(&room).await;
    quiet(&mut [&mut alice]).await;
    // A member that vanished without a $disconnect, a minute ago.
    let dynamodb = stack.dynamodb().await;
    let connections = stack.table.clone().unwrap();
    let gone = chat_local::ids::gateway_id();
    let connected_at = chrono::Utc::now().timestamp_millis() - 60_000;
    for (table, item) in gone_connection_items(&connections, &room, &gone, connected_at) {
        let put = dynamodb.put_item().table_name(table).set_item(Some(item));
        put.send().await.unwrap();
    }
    let before = sums(&snapshot(&stack).await);
    alice.say("anyone there?").await;
    alice.message_within(FRAME).await;
    moved_exactly(
        &stack,
        &before,
        OWN,
        &[
            ("MessagesKept", "OnMessageFunction", 1.0),
            ("Deliveries", "OnMessageFunction", 1.0),
            ("Gone", "OnMessageFunction", 1.0),
            ("Pruned", "OnMessageFunction", 1.0),
        ],
    )
    .await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_for_another_endpoint_is_counted_undelivered() {
    let stack = Stack::start(Options::project()).await;
    let room = unique("refused");
    let mut alice = stack.join(&room).await;
    quiet(&mut [&mut alice]).await;
    let ids = stack.stored_ids().await;
    assert_eq!(ids.len(), 1, "{ids:?}");
    let before = sums(&snapshot(&stack).await);
    // A job that names an endpoint not this API's: the worker posts nothing, and the
    // members it was for are what the Undelivered alarm counts.
    let marker = unique("refused");
    let job = json!({
        "endpoint": "https://elsewhere.example.com/Test",
        "room": room,
        "frame": json!({"type": "message", "message": marker}).to_string(),
        "chunk": 1,
        "chunks": 1,
        "connectionIds": [ids[0], chat_local::ids::gateway_id()],
    });
    let worker = format!("{}-fanout", chat_local::stack::STACK_NAME);
    let answer = stack
        .lambda()
        .invoke()
        .function_name(&worker)
        .payload(aws_sdk_lambda::primitives::Blob::new(job.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status_code(), 200);
    assert_eq!(
        answer.function_error(),
        None,
        "a refusal is not an error to retry"
    );
    let moved = moved_exactly(
        &stack,
        &before,
        OWN,
        &[("Undelivered", worker.as_str(), 2.0)],
    )
    .await;
    assert_eq!(moved[&key("AWS/Lambda", "Invocations", &worker)], 1.0);
    alice.expect_silence(Duration::from_millis(500)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_burst_counts_each_refusal() {
    const BURST: usize = 30;
    let stack = Stack::start(Options::project()).await;
    let room = unique("burst");
    let mut sender = stack.join(&room).await;
    quiet(&mut [&mut sender]).await;
    let before = sums(&snapshot(&stack).await);
    for n in 0..BURST {
        sender.say(&format!("burst {n}")).await;
    }
    let (mut kept, mut limited) = (0.0, 0.0);
    while kept + limited < BURST as f64 {
        let frame = sender.json_within(FRAME).await;
        match frame["type"].as_str() {
            Some("message") => kept += 1.0,
            Some("error") if frame["code"] == "rate_limited" => limited += 1.0,
            _ => panic!("unexpected {frame}"),
        }
    }
    assert!(limited > 0.0, "past the burst, rate_limited");
    let moved = moved_exactly(
        &stack,
        &before,
        OWN,
        &[
            ("MessagesKept", "OnMessageFunction", kept),
            ("Deliveries", "OnMessageFunction", kept),
            ("RateLimited", "OnMessageFunction", limited),
        ],
    )
    .await;
    // Each refusal is onMessage's 429: an IntegrationError, as AWS counts it.
    let api = api_of(&moved);
    assert_eq!(
        moved[&key("AWS/ApiGateway", "IntegrationError", &api)],
        limited
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorizer_counts_allows_and_denies() {
    const AUDIENCE: &str = "metrics-client";
    let key_pair = SigningKey::rs256("rsa-metrics").unwrap();
    let issuer = TestIssuer::start(&[&key_pair], true).await;
    let stack = Stack::start(Options::jwt(&issuer.url, AUDIENCE)).await;
    let before = sums(&snapshot(&stack).await);
    let forged = SigningKey::rs256("rsa-metrics").unwrap();
    let claims = issuer.claims(AUDIENCE, "sub-eve", "Eve");
    let denied = format!("{}/Test?token={}", stack.ws_url, forged.token(&claims));
    assert_eq!(handshake_status(&denied).await, 403);
    let claims = issuer.claims(AUDIENCE, "sub-ann", "Ann");
    let allowed = format!("{}/Test?token={}", stack.ws_url, key_pair.token(&claims));
    let mut ann = Client::connect(&allowed)
        .await
        .expect("a valid token is let in");
    quiet(&mut [&mut ann]).await;
    let moved = moved_exactly(
        &stack,
        &before,
        OWN,
        &[
            ("AuthorizerAllows", "local-authorizer", 1.0),
            ("AuthorizerDenies", "local-authorizer", 1.0),
        ],
    )
    .await;
    let api = api_of(&moved);
    // Only the allowed handshake reached $connect; the denied one was API Gateway's 403.
    assert_eq!(moved[&key("AWS/ApiGateway", "ConnectCount", &api)], 1.0);
    assert_eq!(moved[&key("AWS/ApiGateway", "ClientError", &api)], 1.0);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_out_of_reach_counts_authorizer_errors() {
    const AUDIENCE: &str = "metrics-client";
    let key_pair = SigningKey::rs256("rsa-gone").unwrap();
    let issuer = TestIssuer::start(&[&key_pair], true).await;
    let (url, claims) = (
        issuer.url.clone(),
        issuer.claims(AUDIENCE, "sub-ann", "Ann"),
    );
    drop(issuer);
    let stack = Stack::start(Options::jwt(&url, AUDIENCE)).await;
    let before = sums(&snapshot(&stack).await);
    let token = format!("{}/Test?token={}", stack.ws_url, key_pair.token(&claims));
    assert_eq!(handshake_status(&token).await, 500);
    let moved = moved_exactly(
        &stack,
        &before,
        OWN,
        &[("AuthorizerErrors", "local-authorizer", 1.0)],
    )
    .await;
    // The error fails the invocation: Lambda counts it, and API Gateway's 500 is an
    // ExecutionError (what the AuthorizerErrorRate and ApiErrors alarms read).
    assert_eq!(moved[&key("AWS/Lambda", "Errors", "local-authorizer")], 1.0);
    let api = api_of(&moved);
    assert_eq!(moved[&key("AWS/ApiGateway", "ExecutionError", &api)], 1.0);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_fails_every_try_leaves_its_chunk_at_the_on_failure_destination() {
    const FAULTS: &str = "FaultsChat";
    let mut options = Options::faults();
    // Five members in chunks of two: chunk 2 of 3 fails every try (no marker).
    options
        .overrides
        .extend(["FanoutChunkSize=2".to_owned(), "CrashOnChunk=2".to_owned()]);
    let stack = Stack::start(options).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(Client::connect(&stack.ws_url).await.expect("handshake"));
    }
    for client in clients.iter_mut() {
        client
            .messages_until_quiet(Duration::from_millis(300))
            .await;
    }
    let ids = stack.stored_ids().await;
    assert_eq!(ids.len(), 5, "{ids:?}");
    let before = sums(&snapshot(&stack).await);
    let marker = unique("dropped");
    clients[0].say(&marker).await;
    let worker = format!("{}-fanout", chat_local::stack::STACK_NAME);
    let records = {
        let started = std::time::Instant::now();
        loop {
            let all = stack.on_failure().await;
            if let Some(records) = all["DroppedChunksQueue"].as_array() {
                break records.clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no record: {all}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
    assert!(record["requestContext"]["functionArn"]
        .as_str()
        .unwrap()
        .contains(&format!("function:{worker}")));
    assert_eq!(record["responseContext"]["functionError"], "Unhandled");
    // The event kept one request id through its three tries, and the record names it.
    let id = record["requestContext"]["requestId"].as_str().unwrap();
    let start = format!("START RequestId: {id} ");
    let tries = || stack.output().iter().filter(|l| l.contains(&start)).count();
    eventually("three tries under one id", || {
        let seen = tries();
        async move { seen >= 3 }
    })
    .await;
    assert_eq!(tries(), 3, "{id}");
    let payload = &record["requestPayload"];
    assert_eq!(payload["chunk"], 2);
    assert_eq!(payload["chunks"], 3);
    let frame: Value = serde_json::from_str(payload["frame"].as_str().unwrap()).unwrap();
    assert_eq!(frame["message"], marker.as_str());
    let dropped: Vec<&str> = payload["connectionIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    assert_eq!(dropped.len(), 2);
    assert!(dropped.iter().all(|id| ids.iter().any(|own| own == id)));

    let moved = moved_exactly(
        &stack,
        &before,
        FAULTS,
        &[
            ("MessagesKept", "OnMessageFunction", 1.0),
            ("ChunksHandedOn", "OnMessageFunction", 3.0),
            // Chunks 1 and 3 (two members and one); chunk 2 never got to post.
            ("Deliveries", worker.as_str(), 3.0),
        ],
    )
    .await;
    // Two good chunks and the bad one's three tries (counted before its record was kept).
    assert_eq!(moved[&key("AWS/Lambda", "Invocations", &worker)], 5.0);
    assert_eq!(moved[&key("AWS/Lambda", "Errors", &worker)], 3.0);
    let metrics = snapshot(&stack).await;
    assert_eq!(metrics["onFailure"]["DroppedChunksQueue"], 1);
    stack.stop().await;
}
