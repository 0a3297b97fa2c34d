//! Each room's messages, kept in DynamoDB (`MESSAGES_TABLE`) for `history`: partition key
//! `room`, sort key `sk` = `sentAt#id` (RFC 3339 UTC with milliseconds sorts as time does),
//! the chat frame exactly as broadcast, and `expiresAt` for the table's TTL
//! (`HISTORY_HOURS`).

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::store::{store_error, StoreError, ROOM};

/// The messages of every room.
#[derive(Clone, Debug)]
pub struct MessageStore {
    client: Client,
    table: String,
}

impl MessageStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        MessageStore {
            client,
            table: table.into(),
        }
    }

    /// Keeps a chat frame of `room` until `expires_at_secs`.
    pub async fn put(
        &self,
        room: &str,
        sent_at: &str,
        id: &str,
        frame: &str,
        expires_at_secs: i64,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(ROOM, AttributeValue::S(room.to_owned()))
            .item("sk", AttributeValue::S(format!("{sent_at}#{id}")))
            .item("frame", AttributeValue::S(frame.to_owned()))
            .item("expiresAt", AttributeValue::N(expires_at_secs.to_string()))
            .send()
            .await
            .map_err(store_error("PutItem"))?;
        Ok(())
    }

    /// The room's `limit` most recent frames sent after `since` (RFC 3339 UTC), oldest
    /// first: one strongly consistent `Query`, newest first, at most 100 items. TTL deletes
    /// expired items only eventually (often days later), so the key condition, not TTL,
    /// keeps older messages out.
    pub async fn recent(
        &self,
        room: &str,
        limit: u32,
        since: &str,
    ) -> Result<Vec<String>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#room = :room AND sk > :since")
            .expression_attribute_names("#room", ROOM)
            .expression_attribute_values(":room", AttributeValue::S(room.to_owned()))
            .expression_attribute_values(":since", AttributeValue::S(since.to_owned()))
            .projection_expression("frame")
            .scan_index_forward(false)
            .limit(limit as i32)
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error("Query"))?;
        let mut frames: Vec<String> = output
            .items()
            .iter()
            .filter_map(|item| item.get("frame")?.as_s().ok().cloned())
            .collect();
        frames.reverse();
        Ok(frames)
    }
}
