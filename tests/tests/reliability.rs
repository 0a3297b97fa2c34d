//! Reliability through the real local stack: bad input from live clients, faults in the
//! database, the functions and the network, and least exposure (loopback only, no
//! client text reaching a log line unescaped).

mod common;

use std::process::Stdio;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use common::{eventually, Client, Options, Stack};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

const EXAMPLE: &str = r#"{"action":"onMessage","message":"Hello everyone"}"#;

fn no_panics(stack: &Stack) {
    let output = stack.output();
    let panics: Vec<&String> = output.iter().filter(|l| l.contains("panicked")).collect();
    assert!(panics.is_empty(), "a process panicked: {panics:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_documented_answer_and_nobody_else_sees_it() {
    let stack = Stack::start(Options::project()).await;
    let mut sender = stack.client().await;
    let mut bystander = stack.client().await;
    let nested = format!(
        r#"{{"action":"onMessage","message":"x","deep":{}{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let long_action = format!(r#"{{"action":"{}"}}"#, "a".repeat(10_000));
    let cases: Vec<(String, &str)> = vec![
        ("this is not JSON".into(), "invalid_json"),
        ("[1,2,3]".into(), "not_an_object"),
        ("\"just a string\"".into(), "not_an_object"),
        (r#"{"message":"hi"}"#.into(), "missing_action"),
        (r#"{"action":5,"message":"hi"}"#.into(), "unknown_action"),
        (
            r#"{"action":"shout","message":"hi"}"#.into(),
            "unknown_action",
        ),
        (r#"{"action":"onMessage"}"#.into(), "missing_message"),
        (
            r#"{"action":"onMessage","message":""}"#.into(),
            "empty_message",
        ),
        (
            r#"{"action":"onMessage","message":42}"#.into(),
            "invalid_message",
        ),
        (
            r#"{"action":"onMessage","message":null}"#.into(),
            "missing_message",
        ),
        (nested, "invalid_json"),
        (long_action, "unknown_action"),
    ];
    for (body, code) in &cases {
        sender.send_text(body).await;
        let frame = sender.json().await;
        assert_eq!(
            frame["type"],
            "error",
            "{}: {frame}",
            &body[..body.len().min(60)]
        );
        assert_eq!(frame["code"], *code, "{}", &body[..body.len().min(60)]);
        let message = frame["message"].as_str().unwrap();
        assert!(
            message.contains(EXAMPLE),
            "the error shows a valid request: {message}"
        );
        assert!(
            message.len() < 600,
            "the error frame stays small: {} bytes",
            message.len()
        );
    }

    // A binary frame reaches $default base64-encoded and is explained.
    sender
        .socket
        .send(Message::binary(vec![0u8, 159, 146, 150]))
        .await
        .unwrap();
    assert_eq!(sender.json().await["code"], "binary_frame");

    // Just under 128 KB is accepted by the gateway, but the broadcast frame would pass the quota.
    let overhead = r#"{"action":"onMessage","message":""}"#.len();
    let under = format!(
        r#"{{"action":"onMessage","message":"{}"}}"#,
        "x".repeat(128 * 1024 - overhead)
    );
    assert_eq!(under.len(), 128 * 1024);
    sender.send_fragmented(&under, 32 * 1024).await;
    assert_eq!(sender.json().await["code"], "message_too_large");

    // The sender is still connected and served after all of that.
    sender.say("still here").await;
    assert_eq!(sender.json().await["message"], "still here");
    assert_eq!(
        bystander.json().await["message"],
        "still here",
        "the bystander saw only the valid message"
    );
    bystander.expect_silence(Duration::from_millis(300)).await;

    // Just over 128 KB: close 1009, as API Gateway does.
    let over = format!(
        r#"{{"action":"onMessage","message":"{}"}}"#,
        "x".repeat(128 * 1024 - overhead + 1)
    );
    sender.send_fragmented(&over, 32 * 1024).await;
    match sender.next().await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected close 1009, got {other:?}"),
    }

    // Invalid UTF-8 in a text frame: the connection is closed with 1007.
    let mut broken = stack.client().await;
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    broken.socket.send(Message::Frame(frame)).await.unwrap();
    match broken.next().await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Invalid),
        None => {}
        other => panic!("expected close 1007, got {other:?}"),
    }
    bystander.expect_silence(Duration::from_millis(300)).await;
    no_panics(&stack);
}

/// A dynalite of the test's own, on a fixed port with data on disk, so it can be stopped
/// and started again under a running stack.
struct Dynalite {
    child: tokio::process::Child,
}

impl Dynalite {
    async fn start(port: u16, dir: &std::path::Path) -> Dynalite {
        let child = tokio::process::Command::new("node")
            .arg(common::repo().join("node_modules/dynalite/cli.js"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--path"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs dynalite");
        eventually("dynalite listens", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        Dynalite { child }
    }

    async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_refuses_new_connections_answers_errors_and_heals() {
    let dir = std::env::temp_dir().join(common::unique("dynalite"));
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dynalite = Dynalite::start(port, &dir).await;
    let mut options = Options::project();
    options.shared_dynamodb = false;
    options.dynamodb_endpoint = Some(format!("http://127.0.0.1:{port}"));
    let stack = Stack::start(options).await;
    let mut client = stack.client().await;
    client.say("before").await;
    assert_eq!(client.json().await["message"], "before");

    dynalite.stop().await;
    match Client::connect(&stack.ws_url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 500)
        }
        Err(other) => panic!("expected HTTP 500, got {other}"),
        Ok(_) => panic!("a handshake must be refused while the table is unreachable"),
    }
    client.say("during").await;
    let frame = client.json().await;
    assert_eq!(frame["code"], "unavailable", "{frame}");

    let _dynalite = Dynalite::start(port, &dir).await;
    let mut newcomer = stack.client().await;
    client.say("after").await;
    assert_eq!(client.json().await["message"], "after");
    assert_eq!(newcomer.json().await["message"], "after");
    no_panics(&stack);
    drop(stack);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_or_timed_out_instance_fails_its_invocation_and_is_replaced() {
    let stack = Stack::start(Options::faults()).await;
    let mut client = stack.client().await;
    let cold_starts = || stack.cold_starts("FaultFunction");
    let started = || {
        let output = stack.output();
        output
            .iter()
            .filter(|l| l.starts_with("[FaultFunction] START"))
            .count()
    };
    // A warm instance first, so the one killed below is surely mid-invocation, not mid-init.
    client.send_text(r#"{"action":"fault","mode":"ok"}"#).await;
    eventually("a warm instance", || async { cold_starts() == 1 }).await;
    client
        .send_text(r#"{"action":"fault","mode":"hang"}"#)
        .await;
    eventually("the hanging invocation starts", || async { started() == 2 }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let victims = stack.instances("chat-fault");
    assert_eq!(victims.len(), 1, "one instance, hanging");
    for pid in &victims {
        unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
    }
    assert_eq!(client.json().await["message"], "Internal server error");
    eventually("the failed invocation is reported", || async {
        stack.printed("ERROR Runtime exited")
    })
    .await;
    let before = cold_starts();
    client.send_text(r#"{"action":"fault","mode":"ok"}"#).await;
    eventually("a new instance served the next invocation", || async {
        cold_starts() > before
    })
    .await;
    client.expect_silence(Duration::from_millis(200)).await;

    client
        .send_text(r#"{"action":"fault","mode":"hang"}"#)
        .await;
    assert_eq!(
        client.json().await["message"],
        "Internal server error",
        "the Timeout (2 s) fails the invocation"
    );
    eventually("the timeout is reported", || async {
        stack.printed("Task timed out after 2.00 seconds")
    })
    .await;
    eventually("the timed-out instance is gone", || async {
        stack.instances("chat-fault").len() <= 1
    })
    .await;
    client.send_text(r#"{"action":"fault","mode":"ok"}"#).await;
    eventually("another new instance served", || async {
        cold_starts() > before + 1
    })
    .await;
    client.say("all good").await;
    assert_eq!(client.json().await["message"], "all good");
    no_panics(&stack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_without_a_close_frame_is_disconnected_and_removed() {
    let log = common::EventLog::new("vanish");
    let stack = Stack::start(log.options()).await;
    let client = stack.client().await;
    // Dropping the stream closes the TCP connection without a WebSocket close frame.
    drop(client);
    let events = log.wait_for(2).await;
    let disconnect = events.last().unwrap();
    assert_eq!(disconnect["requestContext"]["eventType"], "DISCONNECT");
    assert_eq!(disconnect["requestContext"]["disconnectStatusCode"], 1006);

    let stack = Stack::start(Options::project()).await;
    let mut vanishing = stack.client().await;
    let id = vanishing.own_id().await;
    drop(vanishing);
    eventually("the vanished client's item is removed", || async {
        !stack.stored_ids().await.contains(&id)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_broadcast_prunes_more_than_a_megabyte_of_stale_ids_and_reaches_every_live_client() {
    const STALE: usize = 3_000;
    let stack = Stack::start(Options::project()).await;
    let mut live = Vec::new();
    for _ in 0..3 {
        live.push(stack.client().await);
    }
    let mut live_ids = Vec::new();
    for client in live.iter_mut() {
        live_ids.push(client.own_id().await);
    }
    // Drain the "who am I" broadcasts each client saw of the others.
    for client in live.iter_mut() {
        while tokio::time::timeout(
            Duration::from_millis(200),
            futures::StreamExt::next(&mut client.socket),
        )
        .await
        .is_ok()
        {}
    }
    let dynamodb = stack.dynamodb().await;
    // Stale ids: in the connection table and among the lobby's members, as a $disconnect
    // that never came leaves them.
    let connections = stack.table.clone().unwrap();
    let members = format!("{connections}-members");
    let padding = "stale connection from an old session ".repeat(12);
    let stale: Vec<String> = (0..STALE).map(|n| format!("stale{n:010}=")).collect();
    for (table, room) in [(&connections, None), (&members, Some("lobby"))] {
        for chunk in stale.chunks(25) {
            let writes: Vec<WriteRequest> = chunk
                .iter()
                .map(|id| {
                    let mut item = PutRequest::builder()
                        .item("connectionid", AttributeValue::S(id.clone()))
                        .item("name", AttributeValue::S("gone".into()))
                        .item("userAgent", AttributeValue::S(padding.clone()));
                    if let Some(room) = room {
                        item = item.item("room", AttributeValue::S(room.into()));
                    }
                    WriteRequest::builder()
                        .put_request(item.build().unwrap())
                        .build()
                })
                .collect();
            dynamodb
                .batch_write_item()
                .request_items(table.as_str(), writes)
                .send()
                .await
                .unwrap();
        }
    }
    assert!(
        stack.room_spans_pages("lobby").await,
        "the lobby's members are more than one 1 MB query page"
    );

    live[0].say("prune").await;
    // One invocation posts to 3 003 ids in arbitrary order: allow it the function's Timeout.
    for client in live.iter_mut() {
        let frame = client.json_within(Duration::from_secs(30)).await;
        assert_eq!(frame["message"], "prune");
    }
    // The live clients may be served before the fan-out has finished pruning: wait for its
    // summaries. 3 003 recipients are more than one FanoutChunkSize (2 000): the workers'
    // chunks count the gone ids.
    let gone = || {
        stack
            .output()
            .iter()
            .filter(|line| line.contains("\"fan-out chunk\""))
            .filter_map(|line| {
                let at = line.find("\"gone\":")? + "\"gone\":".len();
                let digits: String = line[at..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse::<usize>().ok()
            })
            .sum::<usize>()
    };
    common::eventually_within(
        Duration::from_secs(60),
        "the workers' summaries report every stale id gone",
        || async { gone() == STALE },
    )
    .await;
    live_ids.sort();
    assert_eq!(
        stack.stored_ids().await,
        live_ids,
        "every stale id is gone, every live id stays"
    );
}

/// Addresses listening on `port`, from /proc/net/tcp and tcp6 (hex, as the kernel writes them).
fn listeners_on(port: u16) -> Vec<String> {
    let mut found = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(table) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in table.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            let Some((address, hex_port)) = local.rsplit_once(':') else {
                continue;
            };
            if *state == "0A" && u16::from_str_radix(hex_port, 16).ok() == Some(port) {
                found.push(address.to_owned());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_and_runtime_apis_listen_on_loopback_only_and_client_text_stays_escaped() {
    let mut options = Options::project();
    options.host = Some("0.0.0.0".into());
    let stack = Stack::start(options).await;
    let connections_port: u16 = stack
        .connections_url
        .rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        listeners_on(connections_port),
        vec!["0100007F"],
        "@connections binds 127.0.0.1 even with --host 0.0.0.0"
    );

    let mut client = stack.client().await;
    let injected =
        "hi\n[ConnectFunction] REPORT RequestId: forged\u{1b}[31m`touch /tmp/pwned`$(id)";
    client.say(injected).await;
    assert_eq!(
        client.json().await["message"],
        injected,
        "delivered byte for byte"
    );
    client
        .send_text(&format!(
            r#"{{"action":"{}"}}"#,
            injected.replace('\n', "\\n").replace('\u{1b}', "\\u001b")
        ))
        .await;
    assert_eq!(client.json().await["code"], "unknown_action");

    let runtime_apis: Vec<String> = stack
        .instances("chat-on-message")
        .into_iter()
        .chain(stack.instances("chat-default"))
        .filter_map(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            environ.split(|b| *b == 0).find_map(|var| {
                String::from_utf8_lossy(var)
                    .strip_prefix("AWS_LAMBDA_RUNTIME_API=")
                    .map(str::to_owned)
            })
        })
        .collect();
    assert!(!runtime_apis.is_empty(), "function instances are running");
    for api in runtime_apis {
        assert!(api.starts_with("127.0.0.1:"), "{api}");
        let port: u16 = api.rsplit_once(':').unwrap().1.parse().unwrap();
        assert_eq!(
            listeners_on(port),
            vec!["0100007F"],
            "the Runtime API on {port} binds loopback only"
        );
    }
    let output = stack.output();
    assert!(
        !output.iter().any(|l| l.contains('\u{1b}')),
        "no raw escape sequence reached the log"
    );
    assert!(
        !output.iter().any(|l| l.contains("forged")),
        "client text is not logged"
    );
    assert!(!std::path::Path::new("/tmp/pwned").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_either_closed_and_gone_or_has_every_message() {
    const MESSAGES: usize = 200;
    let mut options = Options::project();
    // The point is a full socket buffer, not the stage's throttle or the sender's rate.
    options.throttle = false;
    options.overrides.push("MessageBurst=1000".into());
    let stack = Stack::start(options).await;
    let mut staller = stack.client().await;
    let staller_id = staller.own_id().await;
    let mut reader = stack.client().await;
    let sender = stack.client().await;
    // The sender reads its own copies, so only the staller stops reading.
    let (mut sender, mut echoes) = sender.socket.split();
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = echoes.next().await {} });
    // From here on nobody reads the staller's socket while ~6 MB are broadcast to it.
    let big = "x".repeat(30_000);
    for n in 0..MESSAGES {
        let body = serde_json::json!({"action": "onMessage", "message": format!("{n} {big}")});
        sender.send(Message::text(body.to_string())).await.unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    while seen.len() < MESSAGES {
        let frame = reader.json_within(Duration::from_secs(60)).await;
        let text = frame["message"].as_str().unwrap();
        seen.insert(text.split_once(' ').unwrap().0.to_owned());
    }
    // Give any post still waiting on the staller its time to decide.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let stored = stack.stored_ids().await.contains(&staller_id);
    // Now read everything the staller was sent, until its socket ends or falls quiet.
    let mut received = std::collections::HashSet::new();
    let mut closed = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(3), staller.socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if let Some((n, _)) = frame["message"].as_str().and_then(|m| m.split_once(' ')) {
                    received.insert(n.to_owned());
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => {
                closed = true;
                break;
            }
            Err(_) => break,
        }
    }
    eprintln!(
        "the staller: item kept {stored}, closed {closed}, {} messages",
        received.len()
    );
    if stored {
        assert!(!closed, "a connection whose item is kept is still open");
        assert_eq!(
            received.len(),
            MESSAGES,
            "an open connection has every message"
        );
    } else {
        assert!(
            closed,
            "a connection whose item was deleted (410) was closed first"
        );
    }
    // Either way the others were served, and the stack still is.
    let body = serde_json::json!({"action": "onMessage", "message": "after"});
    sender.send(Message::text(body.to_string())).await.unwrap();
    assert_eq!(reader.json().await["message"], "after");
    drain.abort();
}
