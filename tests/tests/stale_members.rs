//! A room full of ids whose connections vanished without `$disconnect` does not delay the
//! living, and is pruned: through the real local stack, on its own (a test binary of its own
//! runs alone), since what it measures is time.

mod common;

use std::time::{Duration, Instant};

use common::{Options, Stack};
use futures::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_gone_ids_never_delay_the_living_and_are_all_pruned() {
    use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
    const STALE: usize = 20_000;
    const YOUNG: usize = 2_000;
    // As `chat-local start` runs by default: up to 10 instances of each function.
    let mut options = Options::project();
    options.throttle = false;
    options.max_instances = 10;
    let stack = Stack::start(options).await;
    let mut live = Vec::new();
    let mut live_ids = Vec::new();
    for _ in 0..3 {
        let mut client = stack.join("crowd").await;
        live_ids.push(client.own_id().await);
        live.push(client);
    }
    for client in live.iter_mut() {
        client
            .messages_until_quiet(Duration::from_millis(300))
            .await;
    }
    // Ids of connections that vanished without a $disconnect, shaped and spread like live
    // ones, in the connection table and among the room's members. Most connected more than
    // API Gateway's two hours ago (TTL removes such items only days after they expire);
    // YOUNG of them within the hour.
    let dynamodb = stack.dynamodb().await;
    let connections = stack.table.clone().unwrap();
    let members = format!("{connections}-members");
    let now_ms = chrono::Utc::now().timestamp_millis();
    let stale: Vec<(String, i64)> = (0..STALE)
        .map(|n| {
            let ago_ms = if n < YOUNG {
                3_600_000
            } else {
                3 * 3_600_000 + n as i64 * 1000
            };
            (chat_local::ids::gateway_id(), now_ms - ago_ms)
        })
        .collect();
    // Per 25 ids, one batch for the connection table and one for the members.
    let writes = stale.chunks(25).flat_map(|chunk| {
        let mut batches = [
            (connections.clone(), Vec::new()),
            (members.clone(), Vec::new()),
        ];
        for (id, connected_at) in chunk {
            let items = common::gone_connection_items(&connections, "crowd", id, *connected_at);
            for ((_, requests), (_, item)) in batches.iter_mut().zip(items) {
                let put = PutRequest::builder().set_item(Some(item)).build().unwrap();
                requests.push(WriteRequest::builder().put_request(put).build());
            }
        }
        batches
    });
    futures::stream::iter(writes)
        .for_each_concurrent(8, |(table, requests)| {
            let dynamodb = dynamodb.clone();
            async move {
                let mut requests = requests;
                while !requests.is_empty() {
                    let output = dynamodb
                        .batch_write_item()
                        .request_items(table.as_str(), requests)
                        .send()
                        .await
                        .unwrap();
                    requests = output
                        .unprocessed_items
                        .and_then(|mut left| left.remove(table.as_str()))
                        .unwrap_or_default();
                }
            }
        })
        .await;

    let started = Instant::now();
    live[0].say("to the living").await;
    for client in live.iter_mut() {
        let frame = client.message_within(Duration::from_secs(30)).await;
        assert_eq!(frame["message"], "to the living");
        eprintln!("a live member had it after {:?}", started.elapsed());
    }
    let slowest = started.elapsed();
    for client in live.iter_mut() {
        assert!(
            client
                .messages_until_quiet(Duration::from_secs(1))
                .await
                .is_empty(),
            "each once"
        );
    }
    common::eventually_within(
        Duration::from_secs(60),
        "every stale id is pruned from the table",
        || async { stack.stored_ids().await.len() == live_ids.len() },
    )
    .await;
    eprintln!("every stale id pruned after {:?}", started.elapsed());
    live_ids.sort();
    assert_eq!(stack.stored_ids().await, live_ids, "the living stay");
    let left_in_room = dynamodb
        .query()
        .table_name(&members)
        .key_condition_expression("room = :room")
        .expression_attribute_values(":room", AttributeValue::S("crowd".into()))
        .select(aws_sdk_dynamodb::types::Select::Count)
        .send()
        .await
        .unwrap()
        .count;
    assert_eq!(left_in_room, 3, "only the living are members");
    let output = stack.output();
    assert!(
        !output.iter().any(|line| line.contains("Task timed out")),
        "no worker ran into its timeout"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "the living had it within 2 s: {slowest:?}"
    );
}
