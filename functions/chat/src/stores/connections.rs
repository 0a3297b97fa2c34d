//! The table of live WebSocket connections, kept in DynamoDB.
//!
//! One item per connection: `connectionid` (the key), `room`, `name` (the display name
//! frames carry), `connectedAt` (epoch ms), `expiresAt` (epoch seconds) and the rate
//! limit's bucket (`tokens`, `refilledAt`, see [`crate::stores::ratelimit`]). API Gateway calls `$disconnect` only best-effort, so
//! `expiresAt` lets the table's TTL remove ids whose connection is long gone; it is set
//! past API Gateway's two-hour connection limit.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;

use crate::stores::ratelimit::Bucket;

/// The table's partition key.
pub const KEY: &str = "connectionid";

/// Errors of the writes that take a condition.
pub(crate) trait ConditionalWrite {
    fn condition_failed(&self) -> bool;
}

impl ConditionalWrite for aws_sdk_dynamodb::operation::update_item::UpdateItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionalWrite for aws_sdk_dynamodb::operation::put_item::PutItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionalWrite for aws_sdk_dynamodb::operation::delete_item::DeleteItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

/// A conditional write's outcome: `Some(output)` if its condition held, `None` if not.
pub(crate) fn conditional<T, E, R>(
    operation: &'static str,
    result: Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
) -> Result<Option<T>, StoreError>
where
    E: ConditionalWrite,
    aws_sdk_dynamodb::error::SdkError<E, R>: Into<aws_sdk_dynamodb::Error>,
{
    match result {
        Ok(output) => Ok(Some(output)),
        Err(error) if error.as_service_error().is_some_and(E::condition_failed) => Ok(None),
        Err(error) => Err(store_error(operation)(error)),
    }
}

/// The attribute holding the connection's display name.
pub const NAME: &str = "name";

/// The attribute holding the signed-in user's id.
pub const USER: &str = "user";

/// The table's index by `user` (keys and `room`), for a user's connections.
pub const USER_INDEX: &str = "user-index";

/// One open connection of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserConnection {
    pub id: String,
    pub room: String,
}

/// The attribute holding the connection's room.
pub const ROOM: &str = "room";

/// Who a connection is: its display name, and its user when signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Who<'a> {
    pub name: &'a str,
    pub user: Option<&'a str>,
}

impl Who<'_> {
    /// An item of `fields` with `name` and, when signed in, `user`.
    pub(crate) fn item<const N: usize>(
        &self,
        fields: [(&str, AttributeValue); N],
    ) -> HashMap<String, AttributeValue> {
        let mut item: HashMap<String, AttributeValue> = fields
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect();
        item.insert(NAME.into(), AttributeValue::S(self.name.to_owned()));
        if let Some(user) = self.user {
            item.insert(USER.into(), AttributeValue::S(user.to_owned()));
        }
        item
    }
}

/// What the table knows of one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRecord {
    pub room: String,
    pub name: String,
    /// The signed-in user's id (`user`); none in open mode.
    pub user: Option<String>,
    /// Until when (epoch ms) a moderator banned the user from this connection's room
    /// (`bannedUntil`), as marked when the ban was made.
    pub banned_until: Option<i64>,
    pub connected_at_ms: i64,
    pub bucket: Option<Bucket>,
}

impl ConnectionRecord {
    fn from_item(item: &HashMap<String, AttributeValue>) -> Option<ConnectionRecord> {
        let text = |key: &str| item.get(key)?.as_s().ok().cloned();
        let number = |key: &str| item.get(key)?.as_n().ok()?.parse::<f64>().ok();
        let bucket = match (number("tokens"), number("refilledAt")) {
            (Some(tokens), Some(at)) => Some(Bucket {
                tokens,
                at_ms: at as i64,
            }),
            _ => None,
        };
        Some(ConnectionRecord {
            room: text(ROOM).unwrap_or_else(|| crate::protocol::rooms::DEFAULT_ROOM.to_owned()),
            name: text(NAME)?,
            user: text(USER),
            banned_until: number("bannedUntil").map(|until| until as i64),
            connected_at_ms: number("connectedAt").unwrap_or_default() as i64,
            bucket,
        })
    }
}

/// API Gateway closes every WebSocket connection after two hours.
pub const MAX_CONNECTION_SECS: i64 = 2 * 60 * 60;

/// A connection this young is never pruned on a 410: its handshake may still be running.
pub const GONE_GRACE_MS: i64 = 30_000;

/// Extra time before TTL may remove an item, so a live connection is never expired.
pub const EXPIRY_MARGIN_SECS: i64 = 10 * 60;

/// `expiresAt` of a connection's items written at `now_secs`: past API Gateway's limit.
pub(crate) fn expires_at(now_secs: i64) -> i64 {
    now_secs + MAX_CONNECTION_SECS + EXPIRY_MARGIN_SECS
}

/// A failed DynamoDB call, with the operation it was part of.
#[derive(Debug)]
pub struct StoreError {
    pub operation: &'static str,
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    /// An answer that lacks what the operation always returns.
    pub fn malformed(operation: &'static str, what: &str) -> StoreError {
        StoreError {
            operation,
            source: what.into(),
        }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DynamoDB {} failed: {}", self.operation, self.source)
    }
}

impl std::error::Error for StoreError {}

pub(crate) fn store_error<E>(operation: &'static str) -> impl FnOnce(E) -> StoreError
where
    E: Into<aws_sdk_dynamodb::Error>,
{
    move |error| StoreError {
        operation,
        source: Box::new(Into::<aws_sdk_dynamodb::Error>::into(error)),
    }
}

/// Items a `BatchWriteItem` may carry.
const BATCH_ITEMS: usize = 25;

/// Deletes the items with `keys` from `table`, 25 to a `BatchWriteItem`, trying again
/// (after 50, 100, 200 ms …) up to five times what DynamoDB leaves unprocessed. Returns
/// how many were deleted; what is still unprocessed after that is left for TTL.
pub(crate) async fn batch_delete(
    client: &Client,
    table: &str,
    keys: Vec<HashMap<String, AttributeValue>>,
) -> Result<usize, StoreError> {
    use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
    let mut deleted = 0;
    let mut keys = keys.into_iter().peekable();
    while keys.peek().is_some() {
        let mut requests: Vec<WriteRequest> = keys
            .by_ref()
            .take(BATCH_ITEMS)
            .filter_map(|key| {
                let delete = DeleteRequest::builder().set_key(Some(key)).build().ok()?;
                Some(WriteRequest::builder().delete_request(delete).build())
            })
            .collect();
        for attempt in 0..6u32 {
            if requests.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
            }
            let sent = requests.len();
            let output = client
                .batch_write_item()
                .request_items(table, std::mem::take(&mut requests))
                .send()
                .await
                .map_err(store_error("BatchWriteItem"))?;
            requests = output
                .unprocessed_items
                .and_then(|mut left| left.remove(table))
                .unwrap_or_default();
            deleted += sent - requests.len();
        }
    }
    Ok(deleted)
}

/// Connection ids in one DynamoDB table.
#[derive(Clone, Debug)]
pub struct ConnectionStore {
    client: Client,
    table: String,
}

impl ConnectionStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        ConnectionStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Records a new connection, its room, display name and signed-in user.
    /// `connected_at_ms` comes from the event, `now_secs` sets the expiry.
    pub async fn add(
        &self,
        id: &str,
        room: &str,
        who: Who<'_>,
        connected_at_ms: i64,
        now_secs: i64,
    ) -> Result<(), StoreError> {
        let item = who.item([
            (KEY, AttributeValue::S(id.to_owned())),
            (ROOM, AttributeValue::S(room.to_owned())),
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

    /// Notes that the connection is typing at `now_ms`, unless it did less than `gap_ms`
    /// before: its record when noted, `None` when too soon (or the connection is unknown).
    pub async fn mark_typing(
        &self,
        id: &str,
        now_ms: i64,
        gap_ms: i64,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(id.to_owned()))
            .update_expression("SET typedAt = :now")
            .condition_expression(
                "attribute_exists(#id) AND (attribute_not_exists(typedAt) OR typedAt <= :before)",
            )
            .expression_attribute_names("#id", KEY)
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(
                ":before",
                AttributeValue::N((now_ms - gap_ms).to_string()),
            )
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        Ok(conditional("UpdateItem", result)?
            .and_then(|output| output.attributes)
            .as_ref()
            .and_then(ConnectionRecord::from_item))
    }

    /// Marks connection `id` banned from its room until `until_ms` (`None` lifts it), if
    /// the connection is still there and still in `room`.
    pub async fn set_ban(
        &self,
        id: &str,
        room: &str,
        until_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(id.to_owned()))
            .condition_expression("#room = :room")
            .expression_attribute_names("#room", ROOM)
            .expression_attribute_values(":room", AttributeValue::S(room.to_owned()));
        let update = match until_ms {
            Some(until) => update
                .update_expression("SET bannedUntil = :until")
                .expression_attribute_values(":until", AttributeValue::N(until.to_string())),
            None => update.update_expression("REMOVE bannedUntil"),
        };
        let result = update.send().await;
        Ok(conditional("UpdateItem", result)?.is_some())
    }

    /// Every open connection of `user`, with its room: a Query of the table's
    /// [`USER_INDEX`], which holds the items of that user only. The index is eventually
    /// consistent: a connection made a moment ago may not be there yet.
    pub async fn of_user(&self, user: &str) -> Result<Vec<UserConnection>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(USER_INDEX)
                .key_condition_expression("#user = :user")
                .expression_attribute_names("#user", USER)
                .expression_attribute_values(":user", AttributeValue::S(user.to_owned()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error("Query"))?;
            found.extend(output.items().iter().filter_map(|item| {
                Some(UserConnection {
                    id: item.get(KEY)?.as_s().ok()?.clone(),
                    room: item.get(ROOM)?.as_s().ok()?.clone(),
                })
            }));
            match output.last_evaluated_key.filter(|key| !key.is_empty()) {
                Some(next) => start = Some(next),
                None => return Ok(found),
            }
        }
    }

    /// What the table knows of a connection (a strongly consistent read).
    pub async fn get(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error("GetItem"))?
            .item;
        Ok(item.as_ref().and_then(ConnectionRecord::from_item))
    }

    /// Stores the rate limit's bucket `next` if the stored one is still `seen`, tokens and
    /// time (no other invocation spent from it since); says whether it was stored.
    pub async fn spend(
        &self,
        id: &str,
        seen: Option<Bucket>,
        next: Bucket,
    ) -> Result<bool, StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(id.to_owned()))
            .update_expression("SET tokens = :tokens, refilledAt = :at")
            .expression_attribute_values(":tokens", AttributeValue::N(next.tokens.to_string()))
            .expression_attribute_values(":at", AttributeValue::N(next.at_ms.to_string()));
        let request = match seen {
            None => request.condition_expression(
                "attribute_exists(connectionid) AND attribute_not_exists(refilledAt)",
            ),
            Some(seen) => request
                .condition_expression("refilledAt = :seenAt AND tokens = :seenTokens")
                .expression_attribute_values(":seenAt", AttributeValue::N(seen.at_ms.to_string()))
                .expression_attribute_values(
                    ":seenTokens",
                    AttributeValue::N(seen.tokens.to_string()),
                ),
        };
        Ok(conditional("UpdateItem", request.send().await)?.is_some())
    }

    /// Moves a known connection to `room`; returns the room it was in (`None`: unknown).
    pub async fn set_room(&self, id: &str, room: &str) -> Result<Option<String>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(id.to_owned()))
            .update_expression("SET #room = :room REMOVE bannedUntil")
            .condition_expression("attribute_exists(connectionid)")
            .expression_attribute_names("#room", ROOM)
            .expression_attribute_values(":room", AttributeValue::S(room.to_owned()))
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await;
        Ok(conditional("UpdateItem", result)?.map(|output| {
            output
                .attributes
                .and_then(|old| old.get(ROOM)?.as_s().ok().cloned())
                .unwrap_or_else(|| crate::protocol::rooms::DEFAULT_ROOM.to_owned())
        }))
    }

    /// Forgets a connection and returns what was known of it; deleting an id that is not
    /// there is not an error.
    pub async fn remove(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(id.to_owned()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(store_error("DeleteItem"))?;
        Ok(output
            .attributes
            .as_ref()
            .and_then(ConnectionRecord::from_item))
    }

    /// Forgets connections API Gateway reported gone (410) that connected long enough ago
    /// for that to be final (see [`crate::delivery::prune`]): unconditional deletes, 25 to a
    /// `BatchWriteItem`. Returns how many were deleted.
    pub async fn remove_gone(&self, ids: &[String]) -> Result<usize, StoreError> {
        let keys = ids
            .iter()
            .map(|id| HashMap::from([(KEY.to_owned(), AttributeValue::S(id.clone()))]))
            .collect();
        batch_delete(&self.client, &self.table, keys).await
    }

    /// Forgets a connection that API Gateway reported gone (410), unless it connected
    /// less than [`GONE_GRACE_MS`] before `now_ms`. A post can meet 410 while the
    /// connection's `$connect` is still running; that id is about to become live and must
    /// stay. Returns whether the item was deleted.
    pub async fn remove_stale(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
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

    /// Every connection id in the table.
    ///
    /// A Scan page holds at most 1 MB, so this follows `LastEvaluatedKey` until the end;
    /// projecting only the key keeps each page as full of ids as it can be.
    pub async fn all_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .projection_expression("#id")
                .expression_attribute_names("#id", KEY)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error("Scan"))?;
            ids.extend(
                page.items()
                    .iter()
                    .filter_map(|item| item.get(KEY)?.as_s().ok().cloned()),
            );
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(ids),
            }
        }
    }
}
