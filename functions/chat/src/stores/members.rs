//! Each room's members, kept in DynamoDB (`MEMBERS_TABLE`): partition key `room`, sort key
//! `connectionid`, with the member's `name`, `user` (signed in), `connectedAt` and `expiresAt` (TTL, as on the
//! connection table).
//!
//! A broadcast reads its own room only, with strongly consistent `Query` pages, so a member
//! written a moment before a message is among its recipients, and the cost of a message
//! does not grow with the number of connections in other rooms.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::protocol::Member;
use crate::stores::connections::{
    batch_delete, conditional, expires_at, store_error, StoreError, Who, GONE_GRACE_MS, KEY, NAME,
    ROOM, USER,
};

/// One page of a room's members, and how many items DynamoDB read for it.
#[derive(Debug, Default)]
pub struct Page {
    pub members: Vec<Member>,
    pub items_read: usize,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<HashMap<String, AttributeValue>>,
}

/// The members of every room.
#[derive(Clone, Debug)]
pub struct MemberStore {
    client: Client,
    table: String,
}

impl MemberStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        MemberStore {
            client,
            table: table.into(),
        }
    }

    /// Adds a connection to a room, under its name and user.
    pub async fn add(
        &self,
        room: &str,
        id: &str,
        who: Who<'_>,
        connected_at_ms: i64,
        now_secs: i64,
    ) -> Result<(), StoreError> {
        let item = who.item([
            (ROOM, AttributeValue::S(room.to_owned())),
            (KEY, AttributeValue::S(id.to_owned())),
            (
                "connectedAt",
                AttributeValue::N(connected_at_ms.to_string()),
            ),
            (
                "expiresAt",
                AttributeValue::N(expires_at(now_secs).to_string()),
            ),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(store_error("PutItem"))?;
        Ok(())
    }

    /// Takes a connection out of a room; one that is not there is not an error.
    pub async fn remove(&self, room: &str, id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(ROOM, AttributeValue::S(room.to_owned()))
            .key(KEY, AttributeValue::S(id.to_owned()))
            .send()
            .await
            .map_err(store_error("DeleteItem"))?;
        Ok(())
    }

    /// Takes out members API Gateway reported gone (410) that connected long enough ago
    /// for that to be final (see [`crate::delivery::prune`]): unconditional deletes, 25 to a
    /// `BatchWriteItem`. Returns how many were deleted.
    pub async fn remove_gone(&self, room: &str, ids: &[String]) -> Result<usize, StoreError> {
        let keys = ids
            .iter()
            .map(|id| {
                HashMap::from([
                    (ROOM.to_owned(), AttributeValue::S(room.to_owned())),
                    (KEY.to_owned(), AttributeValue::S(id.clone())),
                ])
            })
            .collect();
        batch_delete(&self.client, &self.table, keys).await
    }

    /// Takes out a member API Gateway reported gone (410), unless it connected less than
    /// [`GONE_GRACE_MS`] before `now_ms` (its `$connect` may still be running).
    pub async fn remove_stale(
        &self,
        room: &str,
        id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(ROOM, AttributeValue::S(room.to_owned()))
            .key(KEY, AttributeValue::S(id.to_owned()))
            .condition_expression("attribute_not_exists(connectedAt) OR connectedAt < :cutoff")
            .expression_attribute_values(
                ":cutoff",
                AttributeValue::N((now_ms - GONE_GRACE_MS).to_string()),
            )
            .send()
            .await;
        Ok(conditional("DeleteItem", result)?.is_some())
    }

    /// One page of a room's members, from `start` (a strongly consistent `Query`, only the
    /// id, the name and when it connected read).
    pub async fn page(
        &self,
        room: &str,
        start: Option<HashMap<String, AttributeValue>>,
    ) -> Result<Page, StoreError> {
        self.query(room, start, None).await
    }

    /// At most `limit` of a room's members (one `Query` that reads no more than that);
    /// the page's `next` says whether there are more.
    pub async fn first(&self, room: &str, limit: usize) -> Result<Page, StoreError> {
        let limit = i32::try_from(limit.max(1)).unwrap_or(i32::MAX);
        self.query(room, None, Some(limit)).await
    }

    async fn query(
        &self,
        room: &str,
        start: Option<HashMap<String, AttributeValue>>,
        limit: Option<i32>,
    ) -> Result<Page, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#room = :room")
            .expression_attribute_names("#room", ROOM)
            .expression_attribute_names("#id", KEY)
            .expression_attribute_names("#name", NAME)
            .expression_attribute_names("#user", USER)
            .expression_attribute_values(":room", AttributeValue::S(room.to_owned()))
            .projection_expression("#id, #name, #user, connectedAt")
            .consistent_read(true)
            .set_limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(store_error("Query"))?;
        let members = output
            .items()
            .iter()
            .filter_map(|item| {
                Some(Member {
                    from: item.get(KEY)?.as_s().ok()?.clone(),
                    user: item.get(USER).and_then(|user| user.as_s().ok()).cloned(),
                    name: item
                        .get(NAME)
                        .and_then(|name| name.as_s().ok())
                        .cloned()
                        .unwrap_or_default(),
                    connected_at_ms: item
                        .get("connectedAt")
                        .and_then(|at| at.as_n().ok()?.parse().ok()),
                })
            })
            .collect();
        Ok(Page {
            members,
            items_read: usize::try_from(output.scanned_count).unwrap_or_default(),
            next: output.last_evaluated_key.filter(|key| !key.is_empty()),
        })
    }

    /// Every member of a room, page after page; and how many items were read.
    pub async fn all(&self, room: &str) -> Result<(Vec<Member>, usize), StoreError> {
        let (mut members, mut read) = (Vec::new(), 0);
        let mut start = None;
        loop {
            let page = self.page(room, start).await?;
            members.extend(page.members);
            read += page.items_read;
            match page.next {
                Some(next) => start = Some(next),
                None => return Ok((members, read)),
            }
        }
    }
}
