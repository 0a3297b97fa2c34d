//! Rooms larger than one invocation, through the real local stack: onMessage hands the
//! room to FanoutFunction in chunks (asynchronous Invoke through the local Lambda API),
//! and every member gets the message exactly once — across DynamoDB's 1 MB Query pages,
//! and when a worker crashes on a chunk and Lambda's retry delivers it.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use common::{Client, Options, Stack};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Connects `n` clients to the stack's default room, 32 handshakes at a time; each may
/// take up to a minute (a loaded machine, the other tests of this binary), since what these
/// tests measure is the fan-out, not the handshake.
async fn crowd(stack: &Stack, n: usize) -> Vec<Client> {
    stream::iter(0..n)
        .map(|_| async {
            Client::connect_within(&stack.ws_url, Duration::from_secs(60))
                .await
                .expect("WebSocket handshake")
        })
        .buffer_unordered(32)
        .collect()
        .await
}

/// Reads every client until `quiet` passes without a frame; returns how often each saw
/// a chat message saying `marker`.
async fn count_marker(clients: Vec<Client>, marker: &str, quiet: Duration) -> Vec<usize> {
    let readers = clients.into_iter().map(|mut client| {
        let marker = marker.to_owned();
        tokio::spawn(async move {
            let mut seen = 0;
            // The first frame may take long (a large room); after it, `quiet` of silence ends.
            let mut limit = Duration::from_secs(60);
            while let Ok(Some(Ok(message))) =
                tokio::time::timeout(limit, client.socket.next()).await
            {
                if let Message::Text(text) = message {
                    let frame: Value = serde_json::from_str(&text).unwrap();
                    if frame["type"] == "message" && frame["message"] == marker.as_str() {
                        seen += 1;
                        limit = quiet;
                    }
                }
            }
            seen
        })
    });
    futures::future::join_all(readers)
        .await
        .into_iter()
        .map(|seen| seen.expect("reader"))
        .collect()
}

/// Fills every member item of the stack's table with `bytes` of padding, so a room's
/// Query spans several 1 MB pages.
async fn pad_members(stack: &Stack, bytes: usize) {
    let dynamodb = stack.dynamodb().await;
    let members = format!("{}-members", stack.table.clone().unwrap());
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(&members)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        items.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    let padding = "p".repeat(bytes);
    let writes: Vec<Vec<WriteRequest>> = items
        .chunks(25)
        .map(|chunk| {
            chunk
                .iter()
                .map(|item| {
                    let mut item = item.clone();
                    item.insert("padding".into(), AttributeValue::S(padding.clone()));
                    let put = PutRequest::builder().set_item(Some(item)).build().unwrap();
                    WriteRequest::builder().put_request(put).build()
                })
                .collect()
        })
        .collect();
    stream::iter(writes)
        .for_each_concurrent(8, |batch| {
            let (dynamodb, members) = (&dynamodb, &members);
            async move {
                dynamodb
                    .batch_write_item()
                    .request_items(members, batch)
                    .send()
                    .await
                    .unwrap();
            }
        })
        .await;
    assert!(
        stack.room_spans_pages("lobby").await,
        "the room spans more than one 1 MB page"
    );
}

/// The function log lines (JSON) whose message is `message`.
fn logged(stack: &Stack, message: &str) -> Vec<Value> {
    stack
        .output()
        .iter()
        .filter(|line| line.contains(message))
        // `[FunctionName] {…}`
        .filter_map(|line| serde_json::from_str::<Value>(&line[line.find('{')?..]).ok())
        .filter(|line| line["fields"]["message"] == message)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_of_10000_gets_one_message_exactly_once_through_chunks_of_1000() {
    const MEMBERS: usize = 10_000;
    let mut options = Options::project();
    options.overrides.push("FanoutChunkSize=1000".into());
    options.quiet = true;
    options.throttle = false;
    options.max_instances = 10;
    // A process of its own: 10 000 clients here and their sockets there exceed one
    // process's open files.
    let stack = Stack::command(options).await;
    let mut clients = crowd(&stack, MEMBERS).await;
    // ~700 bytes a member: the room's Query spans several pages, which fall across chunks.
    pad_members(&stack, 700).await;

    let marker = common::unique("big-room");
    clients[0].say(&marker).await;
    let seen = count_marker(clients, &marker, Duration::from_secs(2)).await;
    let missed = seen.iter().filter(|&&n| n == 0).count();
    let twice = seen.iter().filter(|&&n| n > 1).count();
    assert_eq!((missed, twice), (0, 0), "every member exactly once");

    // onMessage read the room once and handed it over in ten chunks of 1 000.
    common::eventually_within(Duration::from_secs(10), "ten chunks logged", || async {
        logged(&stack, "fan-out chunk").len() == 10
    })
    .await;
    let broadcast = logged(&stack, "broadcast");
    let broadcast = broadcast
        .iter()
        .find(|line| line["fields"]["kind"] == "message")
        .expect("the broadcast is logged");
    assert_eq!(broadcast["fields"]["recipients"], MEMBERS);
    assert_eq!(broadcast["fields"]["chunks"], 10);
    assert_eq!(broadcast["fields"]["delivered"], 0, "nothing posted inline");
    let mut chunks: HashMap<u64, u64> = HashMap::new();
    for line in logged(&stack, "fan-out chunk") {
        let fields = &line["fields"];
        assert_eq!(fields["delivered"], fields["recipients"], "{line}");
        chunks.insert(
            fields["chunk"].as_u64().unwrap(),
            fields["recipients"].as_u64().unwrap(),
        );
    }
    assert_eq!(chunks.len(), 10);
    assert!(chunks.values().all(|&n| n == 1000), "{chunks:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_crashes_on_a_chunk_is_retried_and_the_chunk_delivered() {
    let marker_file = std::env::temp_dir().join(common::unique("crash-marker"));
    let mut options = Options::faults();
    options.overrides.extend([
        "FanoutChunkSize=10".to_owned(),
        "CrashOnChunk=2".to_owned(),
        format!("CrashMarker={}", marker_file.display()),
    ]);
    let stack = Stack::start(options).await;
    let mut clients = crowd(&stack, 30).await;
    let marker = common::unique("crash");
    clients[0].say(&marker).await;
    let seen = count_marker(clients, &marker, Duration::from_secs(2)).await;
    assert!(marker_file.exists(), "the worker crashed on chunk 2");
    let _ = std::fs::remove_file(&marker_file);
    assert_eq!(seen, vec![1; 30], "every member exactly once");
    assert!(
        stack.printed("FanoutFunction: asynchronous invocation failed"),
        "the crash was retried"
    );
    let chunks = logged(&stack, "fan-out chunk");
    let mut numbers: Vec<u64> = chunks
        .iter()
        .map(|line| line["fields"]["chunk"].as_u64().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(
        numbers,
        vec![1, 2, 3],
        "each chunk posted once, the second on its retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_short_of_time_hands_the_rest_on_and_posts_nobody_twice() {
    const GONE: usize = 30_000;
    let stack = Stack::start(Options::faults()).await;
    let mut clients = crowd(&stack, 3).await;
    let mut live = Vec::new();
    for client in clients.iter_mut() {
        live.push(client.own_id().await);
    }
    for client in clients.iter_mut() {
        while tokio::time::timeout(Duration::from_millis(300), client.socket.next())
            .await
            .is_ok()
        {}
    }
    // One job of 30 003 ids, the living last: more than a 6 s worker posts in its 4 s.
    let marker = common::unique("handed-on");
    let mut ids: Vec<String> = (0..GONE).map(|_| chat_local::ids::gateway_id()).collect();
    ids.extend(live.iter().cloned());
    let job = json!({
        "endpoint": stack.connections_url,
        "room": "lobby",
        "frame": json!({"type": "message", "message": marker}).to_string(),
        "chunk": 1,
        "chunks": 1,
        "connectionIds": ids,
    });
    let answer = stack
        .lambda()
        .invoke()
        .function_name(format!("{}-fanout", chat_local::stack::STACK_NAME))
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .payload(aws_sdk_lambda::primitives::Blob::new(job.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status_code(), 202);
    let seen = count_marker(clients, &marker, Duration::from_secs(5)).await;
    assert_eq!(seen, vec![1; 3], "every live member exactly once");
    let chunks = logged(&stack, "fan-out chunk");
    assert!(
        chunks
            .iter()
            .any(|line| line["fields"]["hops"].as_u64() >= Some(1)),
        "a fresh invocation carried on: {chunks:?}"
    );
    let posted: u64 = chunks
        .iter()
        .map(|line| {
            line["fields"]["delivered"].as_u64().unwrap() + line["fields"]["gone"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(
        posted,
        (GONE + 3) as u64,
        "every id posted once, none twice"
    );
    let output = stack.output();
    assert!(
        !output.iter().any(|line| line.contains("Task timed out")),
        "no worker timed out"
    );
    assert!(
        !stack.printed("FanoutFunction: asynchronous invocation failed"),
        "nothing was retried whole"
    );
}
