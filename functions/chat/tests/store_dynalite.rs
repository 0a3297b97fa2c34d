//! The stores against a real DynamoDB API (dynalite, started by `make test` and named by
//! `DYNAMODB_ENDPOINT`): connections (room, name, the rate's conditional bucket), a room's
//! members over more than one 1 MB page (every member exactly once, and another room's
//! size not read), and a room's history in time order.

use std::collections::HashSet;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use chat::stores::connections::{ConnectionStore, Who};

fn who(name: &str) -> Who<'_> {
    Who { name, user: None }
}
use chat::stores::history::MessageStore;
use chat::stores::members::MemberStore;
use chat::stores::ratelimit::Bucket;

async fn client() -> Client {
    let endpoint = std::env::var("DYNAMODB_ENDPOINT")
        .expect("DYNAMODB_ENDPOINT must name a DynamoDB API endpoint; `make test` starts dynalite and sets it");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::for_tests())
        .load()
        .await;
    Client::new(&config)
}

/// A new table keyed by `hash` (and `range`), all string attributes.
async fn fresh_table(client: &Client, prefix: &str, hash: &str, range: Option<&str>) -> String {
    let name = format!("{prefix}-{}", std::process::id());
    let _ = client.delete_table().table_name(&name).send().await;
    let mut request = client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest);
    for (attribute, kind) in [(Some(hash), KeyType::Hash), (range, KeyType::Range)] {
        let Some(attribute) = attribute else { continue };
        request = request
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(attribute)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(attribute)
                    .key_type(kind)
                    .build()
                    .unwrap(),
            );
    }
    request.send().await.expect("create table");
    for _ in 0..100 {
        let table = client
            .describe_table()
            .table_name(&name)
            .send()
            .await
            .unwrap();
        if table
            .table()
            .and_then(|t| t.table_status())
            .map(|s| s.as_str())
            == Some("ACTIVE")
        {
            return name;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("table {name} never became active");
}

async fn drop_table(client: &Client, table: &str) {
    client
        .delete_table()
        .table_name(table)
        .send()
        .await
        .expect("delete table");
}

#[tokio::test]
async fn connections_keep_room_name_and_a_conditional_rate_bucket() {
    let client = client().await;
    let table = fresh_table(&client, "store-basic", "connectionid", None).await;
    let store = ConnectionStore::new(client.clone(), &table);

    store
        .add(
            "R1kmxc2VNjMCFIA=",
            "lobby",
            who("alice"),
            1_700_000_000_000,
            1_700_000_000,
        )
        .await
        .unwrap();
    store
        .add(
            "R1kmxc2VNjMCFIB=",
            "rust",
            Who {
                name: "bob",
                user: Some("sub-bob"),
            },
            1_700_000_000_001,
            1_700_000_000,
        )
        .await
        .unwrap();
    let mut ids = store.all_ids().await.unwrap();
    ids.sort();
    assert_eq!(ids, ["R1kmxc2VNjMCFIA=", "R1kmxc2VNjMCFIB="]);
    let bob = store.get("R1kmxc2VNjMCFIB=").await.unwrap().unwrap();
    assert_eq!(
        (bob.room.as_str(), bob.name.as_str(), bob.bucket),
        ("rust", "bob", None)
    );
    assert_eq!(bob.user.as_deref(), Some("sub-bob"));
    let alice = store.get("R1kmxc2VNjMCFIA=").await.unwrap().unwrap();
    assert_eq!(alice.user, None, "open mode: no user");
    assert_eq!(bob.connected_at_ms, 1_700_000_000_001);
    assert_eq!(store.get("nobody").await.unwrap(), None);
    let item = client
        .get_item()
        .table_name(&table)
        .key("connectionid", AttributeValue::S("R1kmxc2VNjMCFIA=".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        item.item().unwrap()["expiresAt"].as_n().unwrap(),
        &(1_700_000_000 + 7200 + 600).to_string()
    );

    // The bucket: only one of two spends from the same reading wins.
    let first = Bucket {
        tokens: 19.0,
        at_ms: 1000,
    };
    assert!(store.spend("R1kmxc2VNjMCFIB=", None, first).await.unwrap());
    assert!(
        !store.spend("R1kmxc2VNjMCFIB=", None, first).await.unwrap(),
        "the bucket changed"
    );
    let second = Bucket {
        tokens: 18.0,
        at_ms: 2000,
    };
    assert!(store
        .spend("R1kmxc2VNjMCFIB=", Some(first), second)
        .await
        .unwrap());
    assert!(!store
        .spend("R1kmxc2VNjMCFIB=", Some(first), second)
        .await
        .unwrap());
    assert_eq!(
        store.get("R1kmxc2VNjMCFIB=").await.unwrap().unwrap().bucket,
        Some(second)
    );
    assert!(
        !store.spend("nobody", None, first).await.unwrap(),
        "no item is created"
    );
    assert_eq!(store.get("nobody").await.unwrap(), None);

    // Moving rooms returns the old one; an unknown id is not created.
    assert_eq!(
        store
            .set_room("R1kmxc2VNjMCFIB=", "go")
            .await
            .unwrap()
            .as_deref(),
        Some("rust")
    );
    assert_eq!(
        store.get("R1kmxc2VNjMCFIB=").await.unwrap().unwrap().room,
        "go"
    );
    assert_eq!(store.set_room("nobody", "go").await.unwrap(), None);

    let removed = store.remove("R1kmxc2VNjMCFIA=").await.unwrap().unwrap();
    assert_eq!(
        (removed.room.as_str(), removed.name.as_str()),
        ("lobby", "alice")
    );
    assert_eq!(store.remove("never-there").await.unwrap(), None);
    assert_eq!(store.all_ids().await.unwrap(), ["R1kmxc2VNjMCFIB="]);

    // A 410 prunes an old id but keeps one whose handshake may still be running.
    let now_ms = 1_700_000_100_000;
    store
        .add("young", "lobby", who("y"), now_ms - 1_000, now_ms / 1000)
        .await
        .unwrap();
    store
        .add("old", "lobby", who("o"), now_ms - 120_000, now_ms / 1000)
        .await
        .unwrap();
    assert!(!store.remove_stale("young", now_ms).await.unwrap());
    assert!(store.remove_stale("old", now_ms).await.unwrap());
    let mut ids = store.all_ids().await.unwrap();
    ids.sort();
    assert_eq!(ids, ["R1kmxc2VNjMCFIB=", "young"]);
    drop_table(&client, &table).await;
}

#[tokio::test]
async fn a_rooms_members_come_back_exactly_once_over_many_pages_and_only_its_own() {
    const BIG: usize = 25_000;
    let client = client().await;
    let table = fresh_table(&client, "members-large", "room", Some("connectionid")).await;
    let ids: Vec<String> = (0..BIG).map(|n| format!("{n:015}=")).collect();
    // Padding makes the room well over 1 MB, so a Query needs several pages.
    let padding = "p".repeat(40);
    for chunk in ids.chunks(25) {
        let writes = chunk
            .iter()
            .map(|id| {
                let put = PutRequest::builder()
                    .item("room", AttributeValue::S("big".into()))
                    .item("connectionid", AttributeValue::S(id.clone()))
                    .item("name", AttributeValue::S(format!("n{id}")))
                    .item("userAgent", AttributeValue::S(padding.clone()))
                    .build()
                    .unwrap();
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        let mut pending = Some(writes);
        while let Some(writes) = pending.take() {
            let out = client
                .batch_write_item()
                .request_items(&table, writes)
                .send()
                .await
                .unwrap();
            pending = out
                .unprocessed_items
                .and_then(|mut left| left.remove(&table))
                .filter(|left| !left.is_empty());
        }
    }
    let members = MemberStore::new(client.clone(), &table);
    for n in 0..100 {
        members
            .add(
                "small",
                &format!("s{n:03}"),
                Who {
                    name: "s",
                    user: (n == 0).then_some("sub-s0"),
                },
                1_700_000_000_000,
                1_700_000_000,
            )
            .await
            .unwrap();
    }

    let first = members.page("big", None).await.unwrap();
    assert!(first.next.is_some(), "the room spans more than one page");
    let (found, read) = members.all("big").await.unwrap();
    assert_eq!(found.len(), BIG, "every member, none twice");
    let unique: HashSet<&String> = found.iter().map(|m| &m.from).collect();
    assert_eq!(unique.len(), BIG);
    assert!(ids.iter().all(|id| unique.contains(id)));
    assert!(found.iter().all(|m| m.name == format!("n{}", m.from)));
    assert_eq!(read, BIG);

    let (small, read) = members.all("small").await.unwrap();
    assert_eq!(small.len(), 100);
    assert_eq!(read, 100, "the big room next door is not read");
    let users: Vec<_> = small.iter().filter_map(|m| m.user.as_deref()).collect();
    assert_eq!(
        users,
        ["sub-s0"],
        "members carry the user they were added with"
    );

    // What the presence check reads: at most the number asked for, and whether there is more.
    let few = members.first("small", 7).await.unwrap();
    assert_eq!((few.members.len(), few.items_read), (7, 7));
    assert!(few.next.is_some(), "more members than asked for");
    let over = members.first("small", 101).await.unwrap();
    assert_eq!(over.members.len(), 100);
    assert!(
        over.next.is_none(),
        "asked for more than there are: no next page"
    );

    // Leaving, and a 410 that spares a member still connecting.
    members.remove("small", "s000").await.unwrap();
    members
        .add("small", "young", who("y"), 1_700_000_099_000, 1_700_000_000)
        .await
        .unwrap();
    assert!(!members
        .remove_stale("small", "young", 1_700_000_100_000)
        .await
        .unwrap());
    assert!(members
        .remove_stale("small", "s001", 1_700_000_100_000)
        .await
        .unwrap());
    let (small, _) = members.all("small").await.unwrap();
    assert_eq!(small.len(), 99);
    assert!(small.iter().all(|m| m.from != "s000" && m.from != "s001"));
    drop_table(&client, &table).await;
}

/// Now, in epoch seconds and ms, as the tests' history sees it.
const NOW_SECS: i64 = 1_800_000_000;
const NOW_MS: i64 = NOW_SECS * 1000;

fn numbers(frames: &[String]) -> Vec<u64> {
    frames
        .iter()
        .map(|frame| {
            serde_json::from_str::<serde_json::Value>(frame).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn history_numbers_a_rooms_messages_and_returns_them_oldest_first() {
    let client = client().await;
    let table = fresh_table(&client, "history", "room", Some("sk")).await;
    let history = MessageStore::new(client.clone(), &table);
    for n in 1..=120u64 {
        let seq = history.take_seq("rust", NOW_MS).await.unwrap();
        assert_eq!(seq, n, "1 for the first, one more for each next");
        let frame = format!(r#"{{"type":"message","n":{n}}}"#);
        let expires = if n <= 10 {
            NOW_SECS - 1
        } else {
            NOW_SECS + 3600
        };
        history
            .put("rust", seq, &frame, NOW_MS - 120_000, expires)
            .await
            .unwrap();
    }
    assert_eq!(
        history.take_seq("lobby", NOW_MS).await.unwrap(),
        1,
        "each room counts on its own"
    );
    history
        .put("lobby", 1, r#"{"n":0}"#, NOW_MS, NOW_SECS + 60)
        .await
        .unwrap();

    let last = history.recent("rust", 50, NOW_SECS).await.unwrap();
    assert_eq!(numbers(&last), (71..=120).collect::<Vec<_>>());
    // Expired (TTL has not deleted them yet) is left out.
    let all = history.recent("rust", 100, NOW_SECS).await.unwrap();
    assert_eq!(numbers(&all), (21..=120).collect::<Vec<_>>());
    assert_eq!(
        history.recent("empty", 10, NOW_SECS).await.unwrap(),
        Vec::<String>::new()
    );

    // After a seq: oldest first, limited, with more.
    let page = history.after("rust", 50, 30, NOW_MS).await.unwrap();
    assert_eq!(numbers(&page.frames), (51..=80).collect::<Vec<_>>());
    assert!(page.more && !page.gap && page.oldest.is_none());
    let end = history.after("rust", 100, 30, NOW_MS).await.unwrap();
    assert_eq!(numbers(&end.frames), (101..=120).collect::<Vec<_>>());
    assert!(!end.more && !end.gap);
    let none = history.after("rust", 120, 30, NOW_MS).await.unwrap();
    assert!(none.frames.is_empty() && !none.more && !none.gap);

    // Older than history keeps: a gap, from the oldest it has.
    let gap = history.after("rust", 3, 5, NOW_MS).await.unwrap();
    assert_eq!(numbers(&gap.frames), (11..=15).collect::<Vec<_>>());
    assert!(gap.gap && gap.more);
    assert_eq!(gap.oldest, Some(11));
    // More expired ones than a page holds: read past them to the first kept.
    let past = history.after("rust", 0, 2, NOW_MS).await.unwrap();
    assert_eq!(numbers(&past.frames), [11, 12]);
    assert!(past.gap && past.more);
    assert_eq!(past.oldest, Some(11));
    drop_table(&client, &table).await;
}

#[tokio::test]
async fn concurrent_senders_get_every_seq_once() {
    let client = client().await;
    let table = fresh_table(&client, "seq", "room", Some("sk")).await;
    let history = MessageStore::new(client.clone(), &table);
    let taken = futures::future::join_all((0..50).map(|_| history.take_seq("busy", NOW_MS))).await;
    let mut seqs: Vec<u64> = taken.into_iter().map(Result::unwrap).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    drop_table(&client, &table).await;
}

#[tokio::test]
async fn a_hole_is_a_gap_only_once_it_has_settled() {
    let client = client().await;
    let table = fresh_table(&client, "holes", "room", Some("sk")).await;
    let history = MessageStore::new(client.clone(), &table);
    for _ in 0..3 {
        history.take_seq("r", NOW_MS).await.unwrap();
    }
    // 1 is kept; 2 was numbered but is still being written; 3 is kept.
    history
        .put("r", 1, r#"{"n":1}"#, NOW_MS, NOW_SECS + 3600)
        .await
        .unwrap();
    history
        .put("r", 3, r#"{"n":3}"#, NOW_MS, NOW_SECS + 3600)
        .await
        .unwrap();
    let young = history.after("r", 1, 10, NOW_MS).await.unwrap();
    assert_eq!(numbers(&young.frames), [3]);
    assert!(!young.gap, "a message may still be on its way");
    let later = NOW_MS + chat::stores::history::SETTLE_MS + 1;
    let settled = history.after("r", 1, 10, later).await.unwrap();
    assert!(settled.gap, "a hole older than a minute is not coming");
    assert_eq!(settled.oldest, Some(3));
    // Nothing kept after `after`, but numbers were taken: a gap once settled, and
    // `oldest` is the next seq to come.
    let empty = history.after("r", 3, 10, NOW_MS).await.unwrap();
    assert!(!empty.gap && empty.frames.is_empty());
    history.take_seq("r", NOW_MS).await.unwrap();
    let lost = history.after("r", 3, 10, later).await.unwrap();
    assert!(lost.gap);
    assert_eq!(lost.oldest, Some(5));
    drop_table(&client, &table).await;
}

#[tokio::test]
async fn a_client_id_is_claimed_once_and_answers_with_what_it_was_kept_as() {
    use chat::stores::history::Claim;
    let client = client().await;
    let table = fresh_table(&client, "claims", "room", Some("sk")).await;
    let history = MessageStore::new(client.clone(), &table);
    let expires = NOW_SECS + 3600;
    let claim = |room: &'static str, at_ms: i64, expires: i64| {
        let history = history.clone();
        async move { history.claim(room, "c-1", at_ms, expires).await.unwrap() }
    };
    assert_eq!(claim("r", NOW_MS, expires).await, Claim::New);
    assert_eq!(claim("r", NOW_MS + 1000, expires).await, Claim::Pending);
    assert_eq!(
        claim("other", NOW_MS, expires).await,
        Claim::New,
        "per room"
    );
    // A claim left without a frame (its invocation died) is taken over after a while.
    let stale = NOW_MS + chat::stores::history::STALE_CLAIM_MS + 1;
    assert_eq!(claim("other", stale, expires).await, Claim::New);
    history.settle("r", "c-1", 7, r#"{"seq":7}"#).await.unwrap();
    let kept = Claim::Kept {
        frame: r#"{"seq":7}"#.into(),
        unsent: false,
    };
    assert_eq!(claim("r", NOW_MS, expires).await, kept);
    assert_eq!(
        claim("r", stale, expires).await,
        kept,
        "a kept one is never taken over"
    );
    // A broadcast that failed is marked, and unmarked once done.
    history.mark_sent("r", "c-1", false).await.unwrap();
    assert_eq!(
        claim("r", NOW_MS, expires).await,
        Claim::Kept {
            frame: r#"{"seq":7}"#.into(),
            unsent: true
        }
    );
    history.mark_sent("r", "c-1", true).await.unwrap();
    assert_eq!(claim("r", NOW_MS, expires).await, kept);
    // Expired claims are claimed anew; released ones too.
    assert_eq!(
        claim("r", (expires + 1) * 1000, expires + 99).await,
        Claim::New
    );
    history.release("r", "c-1").await.unwrap();
    assert_eq!(claim("r", NOW_MS, expires).await, Claim::New);
    // Claims and the counter never show up as messages.
    history.take_seq("r", NOW_MS).await.unwrap();
    assert!(history.recent("r", 10, NOW_SECS).await.unwrap().is_empty());
    assert!(history
        .after("r", 0, 10, NOW_MS)
        .await
        .unwrap()
        .frames
        .is_empty());
    drop_table(&client, &table).await;
}

#[tokio::test]
async fn a_message_is_found_by_its_id_and_rewritten_only_as_it_was_read() {
    let client = client().await;
    let table = fresh_table(&client, "edits", "room", Some("sk")).await;
    let history = MessageStore::new(client.clone(), &table);
    history
        .put("r", 1, r#"{"v":1}"#, NOW_MS, NOW_SECS + 3600)
        .await
        .unwrap();
    history
        .index("r", "m1", 1, "u#alice", NOW_SECS + 3600)
        .await
        .unwrap();
    let found = history.find("r", "m1", NOW_SECS).await.unwrap().unwrap();
    assert_eq!((found.seq, found.author.as_str()), (1, "u#alice"));
    assert_eq!(found.frame, r#"{"v":1}"#);
    assert_eq!(
        history.find("other", "m1", NOW_SECS).await.unwrap(),
        None,
        "another room's"
    );
    assert_eq!(history.find("r", "m2", NOW_SECS).await.unwrap(), None);
    // Two edits from the same reading: the second finds the frame changed.
    assert!(history
        .rewrite("r", 1, r#"{"v":1}"#, r#"{"v":2}"#)
        .await
        .unwrap());
    assert!(!history
        .rewrite("r", 1, r#"{"v":1}"#, r#"{"v":3}"#)
        .await
        .unwrap());
    assert_eq!(
        history
            .find("r", "m1", NOW_SECS)
            .await
            .unwrap()
            .unwrap()
            .frame,
        r#"{"v":2}"#
    );
    // Expired (TTL deletes late): not found.
    assert_eq!(
        history.find("r", "m1", NOW_SECS + 3601).await.unwrap(),
        None
    );
    drop_table(&client, &table).await;
}

#[tokio::test]
async fn users_are_known_once_seen_and_bans_end_when_they_say() {
    use chat::stores::users::UserStore;
    let client = client().await;
    let table = fresh_table(&client, "users", "user", Some("sk")).await;
    let users = UserStore::new(client.clone(), &table);
    assert!(!users.known("sub-a").await.unwrap());
    users.seen("sub-a", "Ada", NOW_MS).await.unwrap();
    assert!(users.known("sub-a").await.unwrap());

    users
        .ban("lobby", "sub-a", NOW_MS + 60_000, "sub-mod")
        .await
        .unwrap();
    assert_eq!(
        users.banned_until("lobby", "sub-a", NOW_MS).await.unwrap(),
        Some(NOW_MS + 60_000)
    );
    assert_eq!(
        users.banned_until("rust", "sub-a", NOW_MS).await.unwrap(),
        None,
        "one room's"
    );
    assert_eq!(
        users
            .banned_until("lobby", "sub-a", NOW_MS + 60_000)
            .await
            .unwrap(),
        None,
        "over when it says, whether or not TTL has removed it"
    );
    assert!(users.unban("lobby", "sub-a").await.unwrap());
    assert!(
        !users.unban("lobby", "sub-a").await.unwrap(),
        "nothing left to lift"
    );
    assert_eq!(
        users.banned_until("lobby", "sub-a", NOW_MS).await.unwrap(),
        None
    );
    drop_table(&client, &table).await;
}
