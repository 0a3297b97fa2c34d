//! The connection store against a real DynamoDB API (dynalite, started by `make test`
//! and named by `DYNAMODB_ENDPOINT`): put, delete, and a scan over more than one 1 MB
//! page that returns every id exactly once.

use std::collections::HashSet;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use chat::store::ConnectionStore;

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

async fn fresh_table(client: &Client, prefix: &str) -> String {
    let name = format!("{prefix}-{}", std::process::id());
    let _ = client.delete_table().table_name(&name).send().await;
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("connectionid")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("connectionid")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create table");
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
async fn add_remove_and_list() {
    let client = client().await;
    let table = fresh_table(&client, "store-basic").await;
    let store = ConnectionStore::new(client.clone(), &table);

    store
        .add(
            "R1kmxc2VNjMCFIA=",
            "alice",
            1_700_000_000_000,
            1_700_000_000,
        )
        .await
        .unwrap();
    store
        .add("R1kmxc2VNjMCFIB=", "bob", 1_700_000_000_001, 1_700_000_000)
        .await
        .unwrap();
    let mut ids = store.all_ids().await.unwrap();
    ids.sort();
    assert_eq!(ids, ["R1kmxc2VNjMCFIA=", "R1kmxc2VNjMCFIB="]);

    let item = client
        .get_item()
        .table_name(&table)
        .key("connectionid", AttributeValue::S("R1kmxc2VNjMCFIA=".into()))
        .send()
        .await
        .unwrap();
    let item = item.item().unwrap();
    assert_eq!(item["connectedAt"].as_n().unwrap(), "1700000000000");
    assert_eq!(
        store.name_of("R1kmxc2VNjMCFIB=").await.unwrap().as_deref(),
        Some("bob")
    );
    assert_eq!(store.name_of("nobody").await.unwrap(), None);
    assert_eq!(
        item["expiresAt"].as_n().unwrap(),
        &(1_700_000_000 + 7200 + 600).to_string()
    );

    store.remove("R1kmxc2VNjMCFIA=").await.unwrap();
    store
        .remove("never-there")
        .await
        .expect("deleting an absent id is fine");
    assert_eq!(store.all_ids().await.unwrap(), ["R1kmxc2VNjMCFIB="]);

    // A 410 prunes an old id but keeps one whose handshake may still be running.
    let now_ms = 1_700_000_100_000;
    store
        .add("young", "y", now_ms - 1_000, now_ms / 1000)
        .await
        .unwrap();
    store
        .add("old", "o", now_ms - 120_000, now_ms / 1000)
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
async fn scan_returns_every_id_of_a_multi_megabyte_table_exactly_once() {
    const COUNT: usize = 25_000;
    let client = client().await;
    let table = fresh_table(&client, "store-large").await;
    let ids: Vec<String> = (0..COUNT).map(|n| format!("{n:015}=")).collect();
    // Padding makes the table well over 1 MB, so the scan needs several pages.
    let padding = "p".repeat(40);
    for chunk in ids.chunks(25) {
        let writes = chunk
            .iter()
            .map(|id| {
                let put = PutRequest::builder()
                    .item("connectionid", AttributeValue::S(id.clone()))
                    .item("connectedAt", AttributeValue::N("1700000000000".into()))
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
    let pages = client.scan().table_name(&table).send().await.unwrap();
    assert!(
        pages.last_evaluated_key.is_some(),
        "the table spans more than one scan page"
    );

    let store = ConnectionStore::new(client.clone(), &table);
    let found = store.all_ids().await.unwrap();
    assert_eq!(found.len(), COUNT, "every id, none twice");
    let unique: HashSet<&String> = found.iter().collect();
    assert_eq!(unique.len(), COUNT);
    assert!(ids.iter().all(|id| unique.contains(id)));
    drop_table(&client, &table).await;
}
