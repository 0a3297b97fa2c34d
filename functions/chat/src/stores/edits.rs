//! Finding a kept message by its `id`, and rewriting it (an edit, a tombstone).
//!
//! Beside each message (`s#<seq>`) the messages table keeps `i#<id>`: its `seq` and its
//! `author` (`u#<user id>` when signed in, `c#<connection id>` in open mode), written at
//! the same time as the message and expiring with it. An edit reads the pointer (who may
//! change it), then the message, and writes the new frame only if the kept one is still
//! the one it read: two edits at once never lose one silently (the later one is retried
//! on the frame the first wrote).

use aws_sdk_dynamodb::types::AttributeValue;

use super::connections::{conditional, store_error, StoreError, ROOM};
use super::history::{number, seq_key, MessageStore};

/// Who may change a message: its author's key.
pub fn author_key(user: Option<&str>, connection_id: &str) -> String {
    match user {
        Some(user) => format!("u#{user}"),
        None => format!("c#{connection_id}"),
    }
}

fn id_key(id: &str) -> String {
    format!("i#{id}")
}

/// A kept message found by its `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub seq: u64,
    pub author: String,
    /// The frame as kept now (a tombstone after a deletion).
    pub frame: String,
}

impl MessageStore {
    /// Records that message `id` of `room` is `seq`, written by `author`.
    pub async fn index(
        &self,
        room: &str,
        id: &str,
        seq: u64,
        author: &str,
        expires_at_secs: i64,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(ROOM, AttributeValue::S(room.to_owned()))
            .item("sk", AttributeValue::S(id_key(id)))
            .item("seq", AttributeValue::N(seq.to_string()))
            .item("author", AttributeValue::S(author.to_owned()))
            .item("expiresAt", AttributeValue::N(expires_at_secs.to_string()))
            .send()
            .await
            .map_err(store_error("PutItem"))?;
        Ok(())
    }

    /// Message `id` of `room`, unless it is unknown or expired at `now_secs` (TTL deletes
    /// late, so expiry is checked here).
    pub async fn find(
        &self,
        room: &str,
        id: &str,
        now_secs: i64,
    ) -> Result<Option<Found>, StoreError> {
        let Some(pointer) = self.item(room, &id_key(id), now_secs).await? else {
            return Ok(None);
        };
        let (Some(seq), Some(author)) = (
            number(&pointer, "seq").and_then(|seq| u64::try_from(seq).ok()),
            pointer.get("author").and_then(|a| a.as_s().ok()).cloned(),
        ) else {
            return Err(StoreError::malformed(
                "GetItem",
                "a message id without seq or author",
            ));
        };
        let Some(message) = self.item(room, &seq_key(seq), now_secs).await? else {
            return Ok(None);
        };
        let frame = message
            .get("frame")
            .and_then(|frame| frame.as_s().ok())
            .cloned()
            .ok_or_else(|| StoreError::malformed("GetItem", "a message without its frame"))?;
        Ok(Some(Found { seq, author, frame }))
    }

    /// Message `seq` of `room` as kept now (edited, or a tombstone), unless it is gone.
    pub async fn frame_at(
        &self,
        room: &str,
        seq: u64,
        now_secs: i64,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .item(room, &seq_key(seq), now_secs)
            .await?
            .and_then(|item| item.get("frame")?.as_s().ok().cloned()))
    }

    /// Takes back message `seq` and its id (a keep whose other half failed), so neither
    /// is left behind: `history` then reports the unused `seq` as a gap.
    pub async fn unkeep(&self, room: &str, seq: u64, id: &str) -> Result<(), StoreError> {
        for sk in [seq_key(seq), id_key(id)] {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key(ROOM, AttributeValue::S(room.to_owned()))
                .key("sk", AttributeValue::S(sk))
                .send()
                .await
                .map_err(store_error("DeleteItem"))?;
        }
        Ok(())
    }

    async fn item(
        &self,
        room: &str,
        sk: &str,
        now_secs: i64,
    ) -> Result<Option<std::collections::HashMap<String, AttributeValue>>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ROOM, AttributeValue::S(room.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error("GetItem"))?
            .item;
        Ok(item.filter(|item| number(item, "expiresAt").is_none_or(|at| at > now_secs)))
    }

    /// Replaces message `seq`'s frame `seen` by `next`; `false` when the kept frame is no
    /// longer `seen` (changed meanwhile) or the message is gone.
    pub async fn rewrite(
        &self,
        room: &str,
        seq: u64,
        seen: &str,
        next: &str,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ROOM, AttributeValue::S(room.to_owned()))
            .key("sk", AttributeValue::S(seq_key(seq)))
            .update_expression("SET #frame = :next")
            .condition_expression("#frame = :seen")
            .expression_attribute_names("#frame", "frame")
            .expression_attribute_values(":next", AttributeValue::S(next.to_owned()))
            .expression_attribute_values(":seen", AttributeValue::S(seen.to_owned()))
            .send()
            .await;
        Ok(conditional("UpdateItem", result)?.is_some())
    }
}
