//! What a conversation needs beyond sending, through the real local stack: signed-in
//! users named in frames and member lists (`user`), editing and deleting one's own
//! messages (and a moderator deleting anyone's), with `history` showing the edit or a
//! tombstone, and typing notices — to the others only, at most one per 2 s, never kept;
//! direct messages to every device of a user, and moderators' kick and ban.

mod common;

use std::time::Duration;

use chat_local::signing::SigningKey;
use common::*;
use e2e::issuer::TestIssuer;
use futures::StreamExt;
use serde_json::{json, Value};

const AUDIENCE: &str = "chat-test-client";
const FRAME: Duration = Duration::from_secs(10);

fn jwt_stack(issuer: &TestIssuer) -> Options {
    Options::jwt(&issuer.url, AUDIENCE)
}

/// A client signed in as `sub` in `room`, with `groups` in `cognito:groups`.
async fn signed_in(
    stack: &Stack,
    issuer: &TestIssuer,
    key: &SigningKey,
    sub: &str,
    groups: &[&str],
    room: &str,
) -> Client {
    let mut claims = issuer.claims(AUDIENCE, sub, sub);
    claims["cognito:groups"] = json!(groups);
    let url = format!(
        "{}/Test?room={room}&token={}",
        stack.ws_url,
        key.token(&claims)
    );
    Client::connect(&url).await.expect("signed-in handshake")
}

/// The error frame answering the last request.
async fn error(client: &mut Client) -> Value {
    client.frame_of("error", FRAME).await
}

/// The room's history as the asker gets it.
async fn history(client: &mut Client) -> Vec<Value> {
    client.send_json(json!({"action": "history"})).await;
    let frame = client.frame_of("history", FRAME).await;
    frame["messages"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_authors_edit_and_delete_their_messages_and_moderators_anyones() {
    let key = SigningKey::rs256("rsa-conv").unwrap();
    let issuer = TestIssuer::start(&[&key], true).await;
    let stack = Stack::start(jwt_stack(&issuer)).await;
    let room = unique("conv");
    let mut alice = signed_in(&stack, &issuer, &key, "sub-alice", &[], &room).await;
    let mut bob = signed_in(&stack, &issuer, &key, "sub-bob", &["readers"], &room).await;
    let mut moderator = signed_in(&stack, &issuer, &key, "sub-mod", &["moderators"], &room).await;
    // Alice's second device.
    let mut alice2 = signed_in(&stack, &issuer, &key, "sub-alice", &[], &room).await;

    // Frames and members name the user.
    alice.say("first draft").await;
    let mut said = Value::Null;
    for client in [&mut alice, &mut bob, &mut moderator, &mut alice2] {
        said = client.message_within(FRAME).await;
        assert_eq!(said["user"], "sub-alice", "{said}");
    }
    let id = said["id"].as_str().unwrap().to_owned();
    bob.send_json(json!({"action": "who"})).await;
    let members = bob.frame_of("members", FRAME).await;
    let mut users: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"].as_str().unwrap())
        .collect();
    users.sort();
    assert_eq!(users, ["sub-alice", "sub-alice", "sub-bob", "sub-mod"]);

    // Someone else's message: refused, for an edit and for a delete by a non-moderator.
    bob.send_json(json!({"action": "edit", "id": id, "message": "bob was here"}))
        .await;
    assert_eq!(error(&mut bob).await["code"], "not_allowed");
    bob.send_json(json!({"action": "delete", "id": id})).await;
    assert_eq!(error(&mut bob).await["code"], "not_allowed");
    moderator
        .send_json(json!({"action": "edit", "id": id, "message": "mod words"}))
        .await;
    assert_eq!(
        error(&mut moderator).await["code"],
        "not_allowed",
        "a moderator deletes, but never puts words in someone's mouth"
    );
    bob.send_json(json!({"action": "edit", "id": "no-such-id", "message": "x"}))
        .await;
    assert_eq!(error(&mut bob).await["code"], "not_found");
    bob.send_json(json!({"action": "edit", "message": "x"}))
        .await;
    assert_eq!(error(&mut bob).await["code"], "invalid_id");

    // The author edits from her other device: the room sees it.
    alice2
        .send_json(json!({"action": "edit", "id": id, "message": "final words"}))
        .await;
    for client in [&mut alice, &mut bob, &mut moderator, &mut alice2] {
        let edited = client.frame_of("edited", FRAME).await;
        assert_eq!(
            (edited["id"].as_str(), edited["message"].as_str()),
            (Some(id.as_str()), Some("final words"))
        );
        assert_eq!(edited["seq"], said["seq"]);
        assert!(edited["editedAt"].is_string());
    }
    let kept = history(&mut bob).await;
    let entry = kept.iter().find(|m| m["id"] == id.as_str()).unwrap();
    assert_eq!(entry["message"], "final words");
    assert!(entry["editedAt"].is_string());

    // A moderator deletes it: a tombstone in its place.
    moderator
        .send_json(json!({"action": "delete", "id": id}))
        .await;
    for client in [&mut alice, &mut bob, &mut moderator, &mut alice2] {
        let deleted = client.frame_of("deleted", FRAME).await;
        assert_eq!(deleted["id"], id.as_str());
        assert_eq!(deleted["room"], room.as_str());
    }
    let kept = history(&mut alice).await;
    let entry = kept.iter().find(|m| m["id"] == id.as_str()).unwrap();
    assert_eq!(
        (entry["deleted"].clone(), entry["message"].clone()),
        (json!(true), json!(""))
    );
    assert_eq!(entry["seq"], said["seq"], "it keeps its place");
    alice
        .send_json(json!({"action": "edit", "id": id, "message": "back"}))
        .await;
    assert_eq!(error(&mut alice).await["code"], "not_found");
    let logged: Vec<Value> = stack
        .output()
        .iter()
        .filter(|line| line.contains("changed a message"))
        .filter_map(|line| serde_json::from_str::<Value>(&line[line.find('{')?..]).ok())
        .map(|line| line["fields"].clone())
        .collect();
    assert!(
        logged.iter().any(|fields| fields["user"] == "sub-mod"
            && fields["by_moderator"] == true
            && fields["author"] == "u#sub-alice"
            && fields["action"] == "delete"),
        "the moderator's action is logged, who did what to whom: {logged:?}"
    );

    // A deleted message stays deleted for whoever repeats its clientId: the tombstone,
    // without the clientId, is what a repeat is answered with, never the text.
    alice
        .send_json(json!({"action": "onMessage", "message": "my address", "clientId": "leak-1"}))
        .await;
    let secret = bob.message_within(FRAME).await;
    assert_eq!(secret["clientId"], "leak-1");
    alice.message_within(FRAME).await;
    moderator
        .send_json(json!({"action": "delete", "id": secret["id"]}))
        .await;
    bob.frame_of("deleted", FRAME).await;
    alice.frame_of("deleted", FRAME).await;
    bob.send_json(json!({"action": "onMessage", "message": "x", "clientId": "leak-1"}))
        .await;
    let answered = bob.message_within(FRAME).await;
    assert_eq!(
        (&answered["id"], &answered["deleted"]),
        (&secret["id"], &json!(true))
    );
    assert_eq!(answered["message"], "");
    assert!(answered.get("clientId").is_none());
    assert!(
        alice
            .frames_until_quiet("message", Duration::from_millis(500))
            .await
            .is_empty(),
        "a repeat is the asker's alone"
    );

    // An author deletes her own.
    bob.say("oops").await;
    let oops = bob.message_within(FRAME).await;
    bob.send_json(json!({"action": "delete", "id": oops["id"]}))
        .await;
    assert_eq!(alice.frame_of("deleted", FRAME).await["id"], oops["id"]);
    for client in [alice, alice2, bob, moderator] {
        client.close().await;
    }
    let _ = stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_the_others_at_most_every_two_seconds_and_open_mode_edits_are_the_connections(
) {
    let stack = Stack::start(Options::project()).await;
    let room = unique("typing");
    let mut a = stack.join(&room).await;
    let mut b = stack.join(&room).await;
    let mut c = stack.join(&room).await;

    a.send_json(json!({"action": "typing"})).await;
    let mut from = String::new();
    for client in [&mut b, &mut c] {
        let typing = client.frame_of("typing", FRAME).await;
        assert_eq!(typing["room"], room.as_str());
        assert!(typing.get("user").is_none(), "open mode: no user");
        from = typing["from"].as_str().unwrap().to_owned();
    }
    assert!(
        a.frames_until_quiet("typing", Duration::from_millis(500))
            .await
            .is_empty(),
        "not to the one typing"
    );

    // A burst of ten, after the first's 2 s have passed: one goes out.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for _ in 0..10 {
        a.send_json(json!({"action": "typing"})).await;
    }
    let seen = b
        .frames_until_quiet("typing", Duration::from_millis(1500))
        .await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(history(&mut c).await.is_empty(), "typing is never kept");

    // Open mode: a message is its connection's to change.
    a.say("typo").await;
    let typo = a.message_within(FRAME).await;
    assert_eq!(typo["from"], from.as_str());
    b.send_json(json!({"action": "edit", "id": typo["id"], "message": "b's"}))
        .await;
    assert_eq!(error(&mut b).await["code"], "not_allowed");
    a.send_json(json!({"action": "edit", "id": typo["id"], "message": "fixed"}))
        .await;
    assert_eq!(c.frame_of("edited", FRAME).await["message"], "fixed");
    let mut again = stack.join(&room).await;
    again
        .send_json(json!({"action": "delete", "id": typo["id"]}))
        .await;
    assert_eq!(
        error(&mut again).await["code"],
        "not_allowed",
        "another connection of the same person is another author in open mode"
    );
    for client in [a, b, c, again] {
        client.close().await;
    }
    let _ = stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_reach_every_device_of_both_users_and_no_one_else() {
    let key = SigningKey::rs256("rsa-dm").unwrap();
    let issuer = TestIssuer::start(&[&key], true).await;
    let stack = Stack::start(jwt_stack(&issuer)).await;
    let room = unique("dm");
    let mut alice = signed_in(&stack, &issuer, &key, "sub-alice", &[], &room).await;
    // Her phone is in another room: direct messages follow the user, not the room.
    let mut phone = signed_in(
        &stack,
        &issuer,
        &key,
        "sub-alice",
        &[],
        &unique("elsewhere"),
    )
    .await;
    let mut bob = signed_in(&stack, &issuer, &key, "sub-bob", &[], &room).await;
    let mut carol = signed_in(&stack, &issuer, &key, "sub-carol", &[], &room).await;

    let dm = json!({"action": "dm", "to": "sub-alice", "message": "psst", "clientId": "dm-1"});
    bob.send_json(dm.clone()).await;
    for client in [&mut alice, &mut phone] {
        let frame = client.frame_of("dm", FRAME).await;
        assert_eq!(
            (
                &frame["with"],
                &frame["user"],
                &frame["to"],
                &frame["message"]
            ),
            (
                &json!("sub-bob"),
                &json!("sub-bob"),
                &json!("sub-alice"),
                &json!("psst")
            )
        );
        assert_eq!(frame["seq"], 1, "the conversation's first message");
    }
    let own = bob.frame_of("dm", FRAME).await;
    assert_eq!(
        own["with"], "sub-alice",
        "the sender sees the other side as with"
    );
    assert_eq!(own["clientId"], "dm-1");
    assert!(
        carol
            .frames_until_quiet("dm", Duration::from_secs(1))
            .await
            .is_empty(),
        "nobody else"
    );

    // A repeat of the clientId: the sender alone is answered, with the original.
    bob.send_json(dm).await;
    let again = bob.frame_of("dm", FRAME).await;
    assert_eq!((&again["id"], &again["seq"]), (&own["id"], &own["seq"]));
    assert!(alice
        .frames_until_quiet("dm", Duration::from_secs(1))
        .await
        .is_empty());

    // Errors: a user never seen, a malformed one.
    bob.send_json(json!({"action": "dm", "to": "sub-nobody", "message": "hi"}))
        .await;
    assert_eq!(error(&mut bob).await["code"], "unknown_user");
    bob.send_json(json!({"action": "dm", "to": 7, "message": "hi"}))
        .await;
    assert_eq!(error(&mut bob).await["code"], "invalid_user");

    // The conversation's history, paged as a room's; each side sees the other as with.
    for n in 0..3 {
        alice
            .send_json(json!({"action": "dm", "to": "sub-bob", "message": format!("re {n}")}))
            .await;
        alice.frame_of("dm", FRAME).await;
    }
    alice
        .send_json(json!({"action": "history", "with": "sub-bob", "after": 0, "limit": 2}))
        .await;
    let page = alice.frame_of("history", FRAME).await;
    assert_eq!(page["with"], "sub-bob");
    assert!(page.get("room").is_none(), "a conversation, not a room");
    assert_eq!(page["more"], true);
    let messages = page["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(
        (&messages[0]["message"], &messages[0]["with"]),
        (&json!("psst"), &json!("sub-bob"))
    );
    bob.send_json(json!({"action": "history", "with": "sub-alice", "after": 2}))
        .await;
    let rest = bob.frame_of("history", FRAME).await;
    let texts: Vec<&str> = rest["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["re 1", "re 2"]);
    assert!(rest["messages"][0]["with"] == "sub-alice");
    // Carol asking about Bob reads her own conversation with him: empty.
    carol
        .send_json(json!({"action": "history", "with": "sub-bob"}))
        .await;
    let hers = carol.frame_of("history", FRAME).await;
    assert_eq!(hers["messages"], json!([]));

    // Changing a direct message: its author only, both sides told, each with the other.
    let first = messages[0]["id"].clone();
    let reply = rest["messages"][1]["id"].clone();
    alice
        .send_json(json!({"action": "delete", "id": first, "with": "sub-bob"}))
        .await;
    assert_eq!(
        error(&mut alice).await["code"],
        "not_allowed",
        "bob's, not hers"
    );
    alice
        .send_json(json!({"action": "edit", "id": reply, "with": "sub-bob", "message": "re 2!"}))
        .await;
    let seen = bob.frame_of("edited", FRAME).await;
    assert_eq!(
        (&seen["with"], &seen["message"]),
        (&json!("sub-alice"), &json!("re 2!"))
    );
    assert!(seen.get("room").is_none());
    assert_eq!(phone.frame_of("edited", FRAME).await["with"], "sub-bob");
    bob.send_json(json!({"action": "delete", "id": first, "with": "sub-alice"}))
        .await;
    assert_eq!(alice.frame_of("deleted", FRAME).await["id"], first);
    assert!(carol
        .frames_until_quiet("deleted", Duration::from_millis(500))
        .await
        .is_empty());
    bob.send_json(json!({"action": "history", "with": "sub-alice"}))
        .await;
    let kept = bob.frame_of("history", FRAME).await;
    let kept = kept["messages"].as_array().unwrap();
    assert_eq!(kept[0]["deleted"], true);
    assert_eq!(kept.last().unwrap()["message"], "re 2!");
    for client in [alice, phone, bob, carol] {
        client.close().await;
    }
    let _ = stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderators_kick_and_ban_in_their_room_and_nobody_else_may() {
    let key = SigningKey::rs256("rsa-mod").unwrap();
    let issuer = TestIssuer::start(&[&key], true).await;
    let stack = Stack::start(jwt_stack(&issuer)).await;
    let room = unique("modroom");
    let url = |sub: &str| {
        let claims = issuer.claims(AUDIENCE, sub, sub);
        format!(
            "{}/Test?room={room}&token={}",
            stack.ws_url,
            key.token(&claims)
        )
    };
    let mut moderator = signed_in(&stack, &issuer, &key, "sub-mod", &["moderators"], &room).await;
    let mut bob = signed_in(&stack, &issuer, &key, "sub-bob", &[], &room).await;
    let mut alice = signed_in(&stack, &issuer, &key, "sub-alice", &[], &room).await;

    // Not a moderator: refused.
    bob.send_json(json!({"action": "kick", "user": "sub-alice"}))
        .await;
    assert_eq!(error(&mut bob).await["code"], "not_allowed");
    bob.send_json(json!({"action": "ban", "user": "sub-alice", "minutes": 5}))
        .await;
    assert_eq!(error(&mut bob).await["code"], "not_allowed");

    // A kick closes her connection; her $disconnect tells the room; she may come back.
    moderator
        .send_json(json!({"action": "kick", "user": "sub-alice"}))
        .await;
    let done = moderator.frame_of("moderated", FRAME).await;
    assert_eq!(
        (&done["action"], &done["connections"]),
        (&json!("kick"), &json!(1))
    );
    let closed = tokio::time::timeout(FRAME, async {
        loop {
            match alice.socket.next().await {
                None
                | Some(Err(_))
                | Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the kicked connection is closed");
    let left = bob.frame_of("left", FRAME).await;
    assert_eq!(left["user"], "sub-alice");
    let mut alice = Client::connect(&url("sub-alice"))
        .await
        .expect("back after a kick");
    alice.say("before the ban").await;
    let before = alice.message_within(FRAME).await;
    bob.message_within(FRAME).await;

    // A ban: her messages, a new connection and a join to the room are refused.
    moderator
        .send_json(json!({"action": "ban", "user": "sub-alice", "minutes": 10}))
        .await;
    let done = moderator.frame_of("moderated", FRAME).await;
    assert_eq!(
        (&done["action"], &done["connections"]),
        (&json!("ban"), &json!(1))
    );
    assert!(done["until"].is_string());
    alice.say("let me in").await;
    let refused = error(&mut alice).await;
    assert_eq!(refused["code"], "banned");
    assert_eq!(refused["until"], done["until"]);
    alice
        .send_json(json!({"action": "edit", "id": before["id"], "message": "abuse"}))
        .await;
    assert_eq!(
        error(&mut alice).await["code"],
        "banned",
        "nor rewrite what she said"
    );
    assert!(
        bob.frames_until_quiet("message", Duration::from_secs(1))
            .await
            .is_empty(),
        "nothing of hers reached the room"
    );
    assert_eq!(handshake_status(&url("sub-alice")).await, 403);
    let mut elsewhere = signed_in(&stack, &issuer, &key, "sub-alice", &[], &unique("other")).await;
    elsewhere
        .send_json(json!({"action": "join", "room": room}))
        .await;
    assert_eq!(error(&mut elsewhere).await["code"], "banned");

    // Lifted: everything works again.
    moderator
        .send_json(json!({"action": "unban", "user": "sub-alice"}))
        .await;
    assert_eq!(
        moderator.frame_of("moderated", FRAME).await["action"],
        "unban"
    );
    alice.say("thanks").await;
    assert_eq!(bob.message_within(FRAME).await["message"], "thanks");
    elsewhere
        .send_json(json!({"action": "join", "room": room}))
        .await;
    assert_eq!(
        elsewhere.frame_of("joined", FRAME).await["room"],
        room.as_str()
    );
    assert_eq!(handshake_status(&url("sub-alice")).await, 101);

    let logged: Vec<Value> = stack
        .output()
        .iter()
        .filter(|line| line.contains("moderator action"))
        .filter_map(|line| serde_json::from_str::<Value>(&line[line.find('{')?..]).ok())
        .map(|line| line["fields"].clone())
        .collect();
    let actions: Vec<(&str, &str, &str)> = logged
        .iter()
        .map(|f| {
            (
                f["moderator"].as_str().unwrap(),
                f["action"].as_str().unwrap(),
                f["user"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("sub-mod", "kick", "sub-alice"),
            ("sub-mod", "ban", "sub-alice"),
            ("sub-mod", "unban", "sub-alice")
        ]
    );
    for client in [moderator, bob, alice, elsewhere] {
        client.close().await;
    }
    let _ = stack.stop().await;
}
