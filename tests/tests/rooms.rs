//! Rooms through the real local stack: a message reaches exactly its room's members, once;
//! `join` moves a client and both rooms are told; `who` pages through a room of 1 500;
//! `history` returns the last N in order; the per-connection rate limit holds back a burst
//! and the room sees only what was allowed; a client gone without a close frame is
//! announced as `left`; bad room names and limits are refused.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use common::*;
use serde_json::Value;

fn in_room(stack: &Stack, room: &str) -> String {
    format!("{}/Test?room={room}", stack.ws_url)
}

async fn join(stack: &Stack, room: &str) -> Client {
    Client::connect(&in_room(stack, room)).await.unwrap()
}

/// The next frame of `kind` (`message`, `joined`, …), others skipped.
async fn next_of(client: &mut Client, kind: &str) -> Value {
    loop {
        let frame = client.frame_within(Duration::from_secs(10)).await;
        if frame["type"] == kind {
            return frame;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_reaches_exactly_its_rooms_members_once() {
    let stack = Stack::start(Options::project()).await;
    let rooms = ["alpha", "beta", "gamma"];
    let mut clients: Vec<(&str, Client)> = Vec::new();
    for room in rooms {
        for _ in 0..3 {
            clients.push((room, join(&stack, room).await));
        }
    }
    for (n, (room, client)) in clients.iter_mut().enumerate() {
        client.say(&format!("{room} {n}")).await;
    }
    for (room, client) in clients.iter_mut() {
        let mut got = BTreeSet::new();
        while got.len() < 3 {
            let frame = client.json().await;
            assert_eq!(frame["type"], "message", "{frame}");
            assert_eq!(frame["room"], *room, "{frame}");
            let text = frame["message"].as_str().unwrap().to_owned();
            assert!(text.starts_with(*room), "{text} reached {room}");
            assert!(got.insert(text), "each message once");
        }
        client.expect_silence(Duration::from_millis(300)).await;
    }
    let ids: BTreeSet<String> = stack.stored_ids().await.into_iter().collect();
    assert_eq!(ids.len(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_moves_a_client_and_both_rooms_see_it() {
    let stack = Stack::start(Options::project()).await;
    let mut stay_a = join(&stack, "red").await;
    let mut stay_b = join(&stack, "blue").await;
    let mut mover = Client::connect(&format!("{}&name=max", in_room(&stack, "red")))
        .await
        .unwrap();
    let joined = next_of(&mut stay_a, "joined").await;
    assert_eq!(
        (joined["room"].as_str(), joined["name"].as_str()),
        (Some("red"), Some("max"))
    );
    let mover_id = joined["from"].as_str().unwrap().to_owned();

    mover.send_text(r#"{"action":"join","room":"blue"}"#).await;
    let left = next_of(&mut stay_a, "left").await;
    assert_eq!(
        left,
        serde_json::json!({"type": "left", "room": "red", "from": mover_id, "name": "max"})
    );
    for client in [&mut stay_b, &mut mover] {
        let joined = next_of(client, "joined").await;
        assert_eq!(joined["room"], "blue");
        assert_eq!(joined["from"], mover_id.as_str());
    }
    mover.say("now in blue").await;
    assert_eq!(stay_b.json().await["message"], "now in blue");
    assert_eq!(mover.json().await["room"], "blue");
    stay_a.expect_silence(Duration::from_millis(300)).await;

    // who answers for the room the connection is in now.
    mover.send_text(r#"{"action":"who"}"#).await;
    let members = next_of(&mut mover, "members").await;
    assert_eq!(members["room"], "blue");
    assert_eq!(members["you"], mover_id.as_str());
    let ids: BTreeSet<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["from"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(mover_id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_pages_through_a_room_of_1500() {
    const OTHERS: usize = 1_500;
    let stack = Stack::start(Options::project()).await;
    let mut asker = join(&stack, "crowd").await;
    // 1 500 members written as $connect writes them; the room spans several Query pages.
    let dynamodb = stack.dynamodb().await;
    let members = format!("{}-members", stack.table.clone().unwrap());
    let padding = "p".repeat(1000);
    for chunk in (0..OTHERS).collect::<Vec<_>>().chunks(25) {
        let writes = chunk
            .iter()
            .map(|n| {
                let put = PutRequest::builder()
                    .item("room", AttributeValue::S("crowd".into()))
                    .item("connectionid", AttributeValue::S(format!("member{n:07}=")))
                    .item("name", AttributeValue::S(format!("m{n}")))
                    .item("padding", AttributeValue::S(padding.clone()))
                    .build()
                    .unwrap();
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        dynamodb
            .batch_write_item()
            .request_items(&members, writes)
            .send()
            .await
            .unwrap();
    }

    assert!(
        stack.room_spans_pages("crowd").await,
        "more than one 1 MB page"
    );

    asker.send_text(r#"{"action":"who"}"#).await;
    let mut names = BTreeMap::new();
    loop {
        let frame = next_of(&mut asker, "members").await;
        for member in frame["members"].as_array().unwrap() {
            let id = member["from"].as_str().unwrap().to_owned();
            assert!(
                names.insert(id, member["name"].clone()).is_none(),
                "no member twice"
            );
        }
        if frame["more"] == false {
            break;
        }
    }
    assert_eq!(names.len(), OTHERS + 1, "every member, the asker included");
    assert_eq!(names["member0001234="], "m1234");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_returns_the_last_messages_in_order() {
    let mut options = Options::project();
    // 120 messages from one client, faster than the default rate allows.
    options.overrides.push("MessageBurst=200".into());
    let stack = Stack::start(options).await;
    let mut writer = join(&stack, "log").await;
    for n in 0..120 {
        writer.say(&format!("entry {n:03}")).await;
        let frame = writer.json().await;
        assert_eq!(frame["message"], format!("entry {n:03}"), "sent in order");
    }
    let mut reader = join(&stack, "log").await;
    reader.send_text(r#"{"action":"history","limit":30}"#).await;
    let history = next_of(&mut reader, "history").await;
    assert_eq!(history["room"], "log");
    assert_eq!(history["truncated"], false);
    let messages = history["messages"].as_array().unwrap();
    let texts: Vec<&str> = messages
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (90..120).map(|n| format!("entry {n:03}")).collect();
    assert_eq!(texts, expected);
    assert!(messages
        .iter()
        .all(|m| m["type"] == "message" && m["room"] == "log" && m["id"].is_string()));

    reader.send_text(r#"{"action":"history"}"#).await;
    let default = next_of(&mut reader, "history").await;
    assert_eq!(
        default["messages"].as_array().unwrap().len(),
        50,
        "50 unless asked"
    );
    let mut lobby = stack.client().await;
    lobby.send_text(r#"{"action":"history","limit":5}"#).await;
    let other = next_of(&mut lobby, "history").await;
    assert!(
        other["messages"].as_array().unwrap().is_empty(),
        "another room's history is its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_rate_is_limited_and_the_room_sees_only_what_was_allowed() {
    const BURST: usize = 50;
    let stack = Stack::start(Options::project()).await;
    let mut watcher = join(&stack, "busy").await;
    let mut sender = join(&stack, "busy").await;
    let started = std::time::Instant::now();
    for n in 0..BURST {
        sender.say(&format!("burst {n}")).await;
    }
    let (mut allowed, mut limited) = (BTreeSet::new(), 0);
    while allowed.len() + limited < BURST {
        let frame = sender.json().await;
        match frame["type"].as_str() {
            Some("message") => {
                allowed.insert(frame["message"].as_str().unwrap().to_owned());
            }
            Some("error") => {
                assert_eq!(frame["code"], "rate_limited", "{frame}");
                assert!(frame["retryAfterMs"].as_u64().unwrap() <= 200);
                limited += 1;
            }
            _ => panic!("unexpected {frame}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // A burst of 20, then 5 a second.
    assert!(
        allowed.len() >= 20,
        "the burst is allowed: {}",
        allowed.len()
    );
    assert!(
        (allowed.len() as f64) <= 20.0 + 5.0 * elapsed + 1.0,
        "{} allowed in {elapsed:.1} s",
        allowed.len()
    );
    assert!(limited > 0, "past the burst, rate_limited");
    let mut seen = BTreeSet::new();
    while seen.len() < allowed.len() {
        seen.insert(watcher.json().await["message"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, allowed, "the room sees exactly the allowed messages");
    watcher.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_without_a_close_frame_is_announced_as_left_and_a_newcomer_is_heard() {
    let stack = Stack::start(Options::project()).await;
    let mut stays = join(&stack, "porch").await;
    let vanishing = Client::connect(&format!("{}&name=ghost", in_room(&stack, "porch")))
        .await
        .unwrap();
    let joined = next_of(&mut stays, "joined").await;
    assert_eq!(joined["name"], "ghost");
    // The TCP connection ends with no close frame.
    drop(vanishing);
    let left = next_of(&mut stays, "left").await;
    assert_eq!(
        (left["name"].as_str(), left["room"].as_str()),
        (Some("ghost"), Some("porch"))
    );
    assert_eq!(left["from"], joined["from"]);

    // A member who connected a moment before a message gets it.
    let mut newcomer = join(&stack, "porch").await;
    stays.say("welcome").await;
    assert_eq!(newcomer.json().await["message"], "welcome");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rooms_and_limits_are_refused_clearly() {
    let stack = Stack::start(Options::project()).await;
    for room in ["two%20words", "a%2Fb", &"x".repeat(65), ""] {
        let url = format!("{}/Test?room={room}", stack.ws_url);
        assert_eq!(handshake_status(&url).await, 400, "?room={room}");
    }
    let mut client = join(&stack, "fine_name-1").await;
    for (body, code) in [
        (r#"{"action":"join","room":"no way"}"#, "invalid_room"),
        (r#"{"action":"join"}"#, "invalid_room"),
        (r#"{"action":"history","limit":101}"#, "invalid_limit"),
        (r#"{"action":"history","limit":"all"}"#, "invalid_limit"),
    ] {
        client.send_text(body).await;
        let error = client.json().await;
        assert_eq!(error["code"], code, "{body}");
        assert!(error["message"].as_str().unwrap().len() > 20, "{error}");
    }
    client.say("still here").await;
    assert_eq!(client.json().await["room"], "fine_name-1");
}
