//! What API Gateway does that the local stack must do too, through the real stack: the
//! 32 KB frame quota (fragmented messages up to 128 KB pass), stage throttling with its
//! `Too Many Requests` answer, bounded work for a flooding client, and the `$connect`
//! response's headers reaching the client.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Options, Stack};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

fn say(message: &str) -> String {
    serde_json::json!({"action": "onMessage", "message": message}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_32_kb_closes_with_1009_and_fragmented_messages_up_to_128_kb_pass() {
    let stack = Stack::start(Options::project()).await;
    let mut sender = stack.client().await;
    let mut bystander = stack.client().await;

    // 30 KB in one frame: under the frame quota, delivered to everyone.
    let thirty = "a".repeat(30 * 1024);
    sender.send_text(&say(&thirty)).await;
    assert_eq!(sender.json().await["message"], thirty.as_str());
    assert_eq!(bystander.json().await["message"], thirty.as_str());

    // 100 KB in frames of 32 KB: one message, accepted and broadcast.
    let hundred = "b".repeat(100 * 1024);
    sender.send_fragmented(&say(&hundred), 32 * 1024).await;
    assert_eq!(sender.json().await["message"], hundred.as_str());
    assert_eq!(bystander.json().await["message"], hundred.as_str());

    // 40 KB in one frame, as a browser or wscat sends it: close 1009, nothing broadcast.
    let forty = "c".repeat(40 * 1024);
    sender.send_text(&say(&forty)).await;
    match sender.next().await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected close 1009, got {other:?}"),
    }
    bystander.expect_silence(Duration::from_millis(500)).await;
    bystander.say("still here").await;
    assert_eq!(bystander.json().await["message"], "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_throttled_in_bounded_memory_and_others_chat_right_after() {
    const FLOOD: usize = 3_000;
    let mut options = Options::project();
    options.quiet = true;
    // A process of its own, so that its memory is measured apart from the clients'.
    let stack = Stack::command(options).await;
    let mut other = stack.client().await;
    other.say("before").await;
    assert_eq!(other.json().await["message"], "before");
    let rss_before = common::rss_kb(stack.pid());

    let flooder = stack.client().await;
    let (mut sink, mut stream) = flooder.socket.split();
    let reader = tokio::spawn(async move {
        // Answers: the stage's throttle, the connection's own rate limit, or the message.
        let (mut throttled, mut limited, mut own) = (0usize, 0usize, 0usize);
        while throttled + limited + own < FLOOD {
            let frame = tokio::time::timeout(Duration::from_secs(60), stream.next()).await;
            let Ok(Some(Ok(Message::Text(text)))) = frame else {
                break;
            };
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame["message"] == "Too Many Requests" {
                assert!(frame["connectionId"].is_string() && frame["requestId"].is_string());
                throttled += 1;
            } else if frame["code"] == "rate_limited" {
                assert!(frame["retryAfterMs"].as_u64().is_some());
                limited += 1;
            } else if frame["type"] == "message"
                && frame["message"].as_str().unwrap().starts_with("flood")
            {
                own += 1;
            }
        }
        (throttled, limited, own)
    });
    let started = Instant::now();
    let mut peak_kb = rss_before;
    for n in 0..FLOOD {
        sink.send(Message::text(say(&format!("flood {n}"))))
            .await
            .unwrap();
        if n % 100 == 0 {
            peak_kb = peak_kb.max(common::rss_kb(stack.pid()));
        }
    }
    let (throttled, limited, delivered) = tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .expect("every flood frame is answered within 2 minutes")
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    peak_kb = peak_kb.max(common::rss_kb(stack.pid()));
    eprintln!(
        "flood: {FLOOD} frames in {elapsed:.1} s, {delivered} delivered, {throttled} throttled by \
         the stage, {limited} over the connection's rate; stack RSS {rss_before} KB before, \
         peak {peak_kb} KB"
    );
    assert_eq!(
        throttled + limited + delivered,
        FLOOD,
        "every frame got an answer"
    );
    assert!(
        throttled > 0,
        "the stage's throttle answered Too Many Requests"
    );
    // The stage allows a burst of 100 and 50 per second after it; the connection's own
    // rate (MessageBurst 20, MessagesPerSecond 5) allows far fewer of those.
    let allowed = (20.0 + 5.0 * elapsed + 2.0).min(100.0 + 50.0 * elapsed + 10.0);
    assert!(
        (delivered as f64) <= allowed,
        "{delivered} passed in {elapsed:.1} s; the stage allows about {allowed:.0}"
    );
    assert!(
        peak_kb < rss_before + 64 * 1024,
        "the stack's memory stays bounded: {rss_before} KB → peak {peak_kb} KB"
    );
    // Right after the flood another client chats normally.
    let mut got = None;
    for _ in 0..50 {
        other.say("after the flood").await;
        loop {
            let frame = other.json().await;
            if frame["message"] == "after the flood" || frame["message"] == "Too Many Requests" {
                got = Some(frame);
                break;
            }
        }
        if got.as_ref().unwrap()["type"] == "message" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        got.unwrap()["type"],
        "message",
        "the other client is served within seconds"
    );
    drop(sink);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_throttle_lets_everything_through() {
    let mut options = Options::project();
    options.throttle = false;
    // The stage's throttle is off; the connection's own rate is raised out of the way.
    options.overrides.push("MessageBurst=1000".into());
    let stack = Stack::start(options).await;
    assert!(stack.printed("Throttling:      off (--no-throttle)"));
    let mut client = stack.client().await;
    for n in 0..300 {
        client.send_text(&say(&format!("n{n}"))).await;
    }
    let mut seen = 0;
    while seen < 300 {
        let frame = client.json().await;
        assert_eq!(frame["type"], "message", "nothing throttled: {frame}");
        seen += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_response_headers_reach_the_client() {
    let log = common::EventLog::new("protocol");
    let stack = Stack::start(log.options()).await;
    let mut request = format!("{}/?protocol=chat", stack.ws_url)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "chat".parse().unwrap());
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
    let mut client = Client { socket };
    client.send_text(r#"{"action":"fault","mode":"ok"}"#).await;
    log.wait_for(2).await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_handshake_is_refused_with_429() {
    let log = common::EventLog::new("connect-throttle");
    let mut options = log.options();
    options.overrides.push("ConnectBurst=2".into());
    let stack = Stack::start(options).await;
    let first = stack.client().await;
    let second = stack.client().await;
    match Client::connect(&stack.ws_url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["message"], "Too Many Requests");
        }
        other => panic!("expected 429, got {:?}", other.map(|_| "a connection")),
    }
    // The refused handshake never reached $connect.
    let connects = log.wait_for(2).await;
    assert_eq!(connects.len(), 2);
    first.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_beyond_the_accounts_rate_get_429() {
    let mut options = Options::project();
    // The account's quota (500/s on AWS), lowered so a handful of handshakes crosses it.
    options.connect_rate = Some(4.0);
    let stack = Stack::start(options).await;
    let attempts = futures::future::join_all((0..10).map(|_| Client::connect(&stack.ws_url))).await;
    let mut refused = 0;
    let mut open = Vec::new();
    for attempt in attempts {
        match attempt {
            Ok(client) => open.push(client),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 429);
                let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned();
                assert!(body.contains("Too Many Requests"), "{body}");
                refused += 1;
            }
            Err(other) => panic!("unexpected handshake failure: {other}"),
        }
    }
    assert!((4..=6).contains(&open.len()), "{} admitted", open.len());
    assert_eq!(refused, 10 - open.len());
    // The quota refills: a second later there is room again, and the admitted ones chat.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut late = stack.client().await;
    late.say("after the burst").await;
    assert_eq!(late.json().await["message"], "after the burst");
}
