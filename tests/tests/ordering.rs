//! Nothing missed, nothing doubled, through the real local stack: every kept message has a
//! `seq` per room that all members agree on, `history` with `after` fills what a client
//! missed (and says when it cannot), a `clientId` makes a resend safe, and a slow reader gets
//! 429s rather than a closed connection. (A room full of gone ids: `stale_members.rs`.)

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::{eventually, Client, Options, Signed, Stack};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// A stack whose stage throttle and per-connection rate stay out of the way: the point is
/// concurrency, not the limits.
fn unthrottled() -> Options {
    let mut options = Options::project();
    options.throttle = false;
    options.overrides.push("MessageBurst=1000".into());
    options
}

/// The next `history` answer.
async fn history_answer(client: &mut Client) -> Value {
    loop {
        let frame = client.json_within(Duration::from_secs(10)).await;
        if frame["type"] == "history" {
            return frame;
        }
    }
}

/// Every kept message after `after`, page by page (`more`), oldest first.
async fn history_after(client: &mut Client, after: u64) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = after;
    loop {
        let request = json!({"action": "history", "after": after, "limit": 100});
        client.send_text(&request.to_string()).await;
        let answer = history_answer(client).await;
        assert_eq!(answer["gap"], false, "{answer}");
        let page = answer["messages"].as_array().unwrap().clone();
        if let Some(last) = page.last() {
            after = last["seq"].as_u64().unwrap();
        }
        all.extend(page);
        if answer["more"] != true {
            return all;
        }
    }
}

fn seq(frame: &Value) -> u64 {
    frame["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no seq: {frame}"))
}

fn seq_to_id(frames: &[Value]) -> BTreeMap<u64, String> {
    let mut map = BTreeMap::new();
    for frame in frames {
        let id = frame["id"].as_str().unwrap().to_owned();
        assert!(
            map.insert(seq(frame), id).is_none(),
            "seq {} twice",
            seq(frame)
        );
    }
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_give_every_reader_one_order_and_history_agrees() {
    const SENDERS: usize = 10;
    const EACH: usize = 30;
    let stack = Stack::start(unthrottled()).await;
    let mut readers = Vec::new();
    for _ in 0..3 {
        readers.push(stack.join("order").await);
    }
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        senders.push(stack.join("order").await);
    }
    // All at once: every sender writes its 30 without waiting for anything.
    let sends = senders
        .iter_mut()
        .enumerate()
        .map(|(s, sender)| async move {
            for n in 0..EACH {
                let body = json!({"action": "onMessage", "message": format!("s{s} n{n}")});
                sender.send_text(&body.to_string()).await;
            }
        });
    futures::future::join_all(sends).await;
    let mut maps = Vec::new();
    for reader in readers.iter_mut() {
        let mut frames = Vec::new();
        while frames.len() < SENDERS * EACH {
            frames.push(reader.message_within(Duration::from_secs(60)).await);
        }
        assert!(
            reader
                .messages_until_quiet(Duration::from_millis(500))
                .await
                .is_empty(),
            "nothing more, nothing twice"
        );
        maps.push(seq_to_id(&frames));
    }
    let expected: Vec<u64> = (1..=(SENDERS * EACH) as u64).collect();
    assert_eq!(
        maps[0].keys().copied().collect::<Vec<_>>(),
        expected,
        "contiguous from the room's first"
    );
    let ids: HashSet<&String> = maps[0].values().collect();
    assert_eq!(ids.len(), SENDERS * EACH, "one id per seq");
    assert_eq!(maps[1], maps[0], "every reader has the same order");
    assert_eq!(maps[2], maps[0], "every reader has the same order");
    let history = history_after(&mut readers[0], 0).await;
    assert_eq!(seq_to_id(&history), maps[0], "history agrees");
    assert!(
        history.windows(2).all(|w| seq(&w[0]) < seq(&w[1])),
        "oldest first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_cut_off_or_not_reading_fills_the_gap_from_history_exactly_once() {
    const MESSAGES: usize = 40;
    let stack = Stack::start(unthrottled()).await;
    let mut cut = stack.join("resume").await;
    let mut staller = stack.join("resume").await;
    let mut sender = stack.join("resume").await;
    sender.say("before").await;
    let first = cut.message_within(Duration::from_secs(10)).await;
    assert_eq!(staller.message_within(Duration::from_secs(10)).await, first);
    let last_seen = seq(&first);
    // One loses its TCP connection without a close; the other stops reading.
    drop(cut);
    let big = "y".repeat(20_000);
    for n in 0..MESSAGES {
        sender.say(&format!("{n} {big}")).await;
    }
    let mut sent = Vec::new();
    while sent.len() <= MESSAGES {
        sent.push(sender.message_within(Duration::from_secs(60)).await);
    }
    let sent: Vec<Value> = sent.into_iter().filter(|f| seq(f) > last_seen).collect();
    assert_eq!(sent.len(), MESSAGES);
    let expected = seq_to_id(&sent);

    // The cut reader comes back as a new connection and asks for what it missed.
    let mut back = stack.join("resume").await;
    let missed = history_after(&mut back, last_seen).await;
    assert_eq!(seq_to_id(&missed), expected, "every missed message, once");
    assert!(
        missed.windows(2).all(|w| seq(&w[0]) + 1 == seq(&w[1])),
        "in order"
    );

    // The staller reads again: what reached it, then history after its last contiguous seq.
    let arrived = staller.messages_until_quiet(Duration::from_secs(3)).await;
    let mut held = seq_to_id(&arrived);
    let mut contiguous = last_seen;
    while held.contains_key(&(contiguous + 1)) {
        contiguous += 1;
    }
    let mut ask = staller;
    if contiguous < last_seen + MESSAGES as u64 {
        // It was closed for not reading, or missed some: it reconnects and asks.
        ask = stack.join("resume").await;
    }
    for frame in history_after(&mut ask, contiguous).await {
        held.entry(seq(&frame))
            .and_modify(|id| assert_eq!(id, frame["id"].as_str().unwrap()))
            .or_insert_with(|| frame["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        held, expected,
        "the staller holds every message exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_is_kept_once_and_its_sender_answered_every_time() {
    let stack = Stack::start(unthrottled()).await;
    let mut observer = stack.join("idem").await;
    let mut sender = stack.join("idem").await;
    let request = json!({"action": "onMessage", "message": "only once", "clientId": "k3J9-x_1"});
    sender.send_text(&request.to_string()).await;
    let original = sender.message_within(Duration::from_secs(10)).await;
    assert_eq!(original["clientId"], "k3J9-x_1");
    assert_eq!(
        observer.message_within(Duration::from_secs(10)).await,
        original
    );
    // Again on the same connection, and again after a reconnect (its answer was "lost").
    sender.send_text(&request.to_string()).await;
    assert_eq!(
        sender.message_within(Duration::from_secs(10)).await,
        original
    );
    drop(sender);
    let mut again = stack.join("idem").await;
    again.send_text(&request.to_string()).await;
    assert_eq!(
        again.message_within(Duration::from_secs(10)).await,
        original,
        "the original frame, same id and seq"
    );
    observer.expect_silence(Duration::from_secs(1)).await;
    let history = history_after(&mut observer, 0).await;
    assert_eq!(history, vec![original.clone()], "kept once");
    // Errors echo the clientId; a bad one is refused.
    let empty = json!({"action": "onMessage", "message": " ", "clientId": "c2"});
    again.send_text(&empty.to_string()).await;
    let error = again.json_within(Duration::from_secs(10)).await;
    assert_eq!(
        (&error["code"], &error["clientId"]),
        (&json!("empty_message"), &json!("c2"))
    );
    let bad = json!({"action": "onMessage", "message": "x", "clientId": "no spaces"});
    again.send_text(&bad.to_string()).await;
    let error = again.json_within(Duration::from_secs(10)).await;
    assert_eq!(error["code"], "invalid_client_id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_older_than_history_keeps_answers_gap_with_the_oldest_kept() {
    let stack = Stack::start(unthrottled()).await;
    let mut client = stack.join("gap").await;
    for n in 1..=5 {
        client.say(&format!("m{n}")).await;
        client.message_within(Duration::from_secs(10)).await;
    }
    // The first three pass HistoryHours: expired, not yet deleted by TTL.
    let messages = format!("{}-messages", stack.table.clone().unwrap());
    let dynamodb = stack.dynamodb().await;
    let past = (chrono::Utc::now().timestamp() - 10).to_string();
    for seq in 1..=3u64 {
        dynamodb
            .update_item()
            .table_name(&messages)
            .key(
                "room",
                aws_sdk_dynamodb::types::AttributeValue::S("gap".into()),
            )
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S(chat::stores::history::seq_key(seq)),
            )
            .update_expression("SET expiresAt = :past")
            .expression_attribute_values(
                ":past",
                aws_sdk_dynamodb::types::AttributeValue::N(past.clone()),
            )
            .send()
            .await
            .unwrap();
    }
    client
        .send_text(&json!({"action": "history", "after": 1, "limit": 10}).to_string())
        .await;
    let answer = history_answer(&mut client).await;
    assert_eq!(answer["gap"], true, "{answer}");
    assert_eq!(answer["oldest"], 4);
    let seqs: Vec<u64> = answer["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(seq)
        .collect();
    assert_eq!(seqs, [4, 5]);
    assert_eq!(answer["more"], false);
    // From what is kept on, nothing is missing.
    client
        .send_text(&json!({"action": "history", "after": 3, "limit": 1}).to_string())
        .await;
    let answer = history_answer(&mut client).await;
    assert_eq!(
        (&answer["gap"], &answer["more"]),
        (&json!(false), &json!(true))
    );
    assert_eq!(seq(&answer["messages"][0]), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_429s_stays_open_and_is_delivered_once_it_reads() {
    let stack = Stack::start(unthrottled()).await;
    let mut slow = stack.join("slow").await;
    let slow_id = slow.own_id().await;
    let mut others = [stack.join("slow").await, stack.join("slow").await];
    let url = format!("{}/@connections/{slow_id}", stack.connections_url);
    let http = Signed(reqwest::Client::new());
    // Fill its buffer (and the sockets' buffers before it) without reading.
    let filler = "f".repeat(64 * 1024);
    let mut full = None;
    for _ in 0..2000 {
        let answer = http.send("POST", &url, &filler).await;
        if answer.status() != 200 {
            full = Some(answer);
            break;
        }
    }
    let full = full.expect("the client's buffer fills up");
    assert_eq!(full.status(), 429);
    assert_eq!(full.headers()["x-amzn-errortype"], "LimitExceededException");
    let body: Value = full.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("Limit Exceeded"),
        "{body}"
    );
    assert_eq!(http.send("GET", &url, "").await.status(), 200, "still open");

    let mut sender = stack.join("slow").await;
    let started = Instant::now();
    sender.say("while it is full").await;
    for other in others.iter_mut() {
        let frame = other.message_within(Duration::from_secs(5)).await;
        assert_eq!(frame["message"], "while it is full");
    }
    let others_took = started.elapsed();
    assert!(
        others_took < Duration::from_secs(2),
        "the rest of the room is not held up: {others_took:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    // It reads again: the fillers, then the message, once, from the fan-out's retries.
    let mut got = Vec::new();
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_secs(15), slow.socket.next()).await
    {
        if let Message::Text(text) = message {
            if text.as_str() == filler {
                continue;
            }
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame["type"] == "message" {
                got.push(frame["message"].clone());
                if got.contains(&json!("while it is full")) {
                    break;
                }
            }
        }
    }
    assert_eq!(got, [json!("while it is full")], "delivered once it read");
    assert!(slow
        .messages_until_quiet(Duration::from_secs(2))
        .await
        .is_empty());
    let retried = stack.output().iter().any(|line| {
        line.contains("\"broadcast\"")
            && line.contains("\"throttled\":")
            && !line.contains("\"throttled\":0")
            && line.contains("\"undelivered\":0")
    });
    assert!(
        retried,
        "the broadcast counts the 429s it retried, and nothing undelivered"
    );
    // onMessage's metrics say the same: each 429 its broadcasts logged, nothing undelivered.
    let logged: f64 = stack
        .output()
        .iter()
        .filter_map(|line| line.strip_prefix("[OnMessageFunction] "))
        .filter(|line| line.contains("\"broadcast\""))
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|line| line["fields"]["throttled"].as_f64())
        .sum();
    assert!(logged > 0.0);
    let on_stack = &stack;
    eventually("Throttled to match the logged 429s", move || async move {
        on_stack.metric_sum("Throttled", "OnMessageFunction").await == logged
    })
    .await;
    assert_eq!(
        stack.metric_sum("Undelivered", "OnMessageFunction").await,
        0.0
    );
    // Still the same open connection.
    slow.say("still here").await;
    assert_eq!(
        slow.message_within(Duration::from_secs(10)).await["message"],
        "still here"
    );
    let _ = sender.socket.close(None).await;
}
