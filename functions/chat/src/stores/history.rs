//! Each room's messages, numbered and kept in DynamoDB (`MESSAGES_TABLE`) for `history`,
//! under partition key `room` and three kinds of sort key `sk`:
//!
//! - `#seq`, the room's counter: `n`, the last `seq` taken, and `at`, when (epoch ms). It
//!   never expires, so a `seq` is never given twice, however long a room is quiet.
//! - `s#<seq>` (20 digits, so text order is number order), a kept message: `frame`, the
//!   chat frame exactly as broadcast, `keptAt` (epoch ms) and `expiresAt` (the table's
//!   TTL, `HISTORY_HOURS`).
//! - `i#<id>`, a kept message's `id`: its `seq` and `author` (see [`super::edits`]).
//! - `c#<clientId>`, a `clientId` the room has kept: `claimedAt` (epoch ms), then `seq`
//!   and `frame` once the message is kept, `unsent` while its broadcast failed, and
//!   `expiresAt` as the message's. A claim left without a frame for [`STALE_CLAIM_MS`] (its
//!   invocation died) is taken over by the next request with that `clientId`.
//!
//! A `seq` is taken with one atomic `UpdateItem` (`ADD n :one`, the new value returned)
//! before the message is written: concurrent senders each get their own number, no two
//! the same, none skipped. It costs one write (1 WCU) and one round trip per message; a
//! `clientId` costs two more writes (its claim, then its settlement, which holds the frame
//! again: a write unit per KB). The one way a number goes unused is a message whose write
//! fails after its number was taken (the sender is told `unavailable`); `history` reports
//! such a hole, when it comes before the first message it returns, as a gap once it is
//! older than [`SETTLE_MS`] rather than wait for it.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;

use crate::stores::connections::{conditional, store_error, StoreError, ROOM};

/// The counter's sort key.
const COUNTER: &str = "#seq";

/// Sort keys of messages lie between these two.
const FIRST_MESSAGE: &str = "s#";
const PAST_LAST_MESSAGE: &str = "s#~";

/// A `seq` missing from history for longer than this is not coming any more: its message
/// expired, or its write failed. Younger holes are messages still being written.
pub const SETTLE_MS: i64 = 60_000;

/// A claim without a frame this old belongs to an invocation that died: taken over.
pub const STALE_CLAIM_MS: i64 = 10_000;

/// Query pages one `history` request may read before it answers with `more` (past a page
/// of expired messages they are whole 1 MB pages: at most about 3 MB per request).
const MAX_PAGES: usize = 4;

/// The sort key of message `seq`.
pub fn seq_key(seq: u64) -> String {
    format!("{FIRST_MESSAGE}{seq:020}")
}

fn client_key(client_id: &str) -> String {
    format!("c#{client_id}")
}

/// What claiming a `clientId` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Not seen before (or expired): the message is to be kept.
    New,
    /// Kept already: the frame it was broadcast as, and whether that broadcast failed.
    Kept { frame: String, unsent: bool },
    /// Being kept right now by another invocation.
    Pending,
}

/// Messages after a `seq`, as [`MessageStore::after`] found them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct After {
    /// Frames, oldest first.
    pub frames: Vec<String>,
    /// There are more after the last of `frames`.
    pub more: bool,
    /// Some messages after the `seq` asked for are no longer kept: what is kept starts at
    /// `oldest` (the next `seq` to come, when nothing is kept; where reading stopped, with
    /// `more`, when all it read had expired).
    pub gap: bool,
    pub oldest: Option<u64>,
}

/// One message item read back.
struct Kept {
    seq: u64,
    frame: String,
    kept_at_ms: i64,
}

impl Kept {
    fn from_item(item: &HashMap<String, AttributeValue>) -> Option<Kept> {
        let sk = item.get("sk")?.as_s().ok()?;
        Some(Kept {
            seq: sk.strip_prefix(FIRST_MESSAGE)?.parse().ok()?,
            frame: item.get("frame")?.as_s().ok()?.clone(),
            kept_at_ms: number(item, "keptAt").unwrap_or_default(),
        })
    }
}

pub(super) fn number(item: &HashMap<String, AttributeValue>, key: &str) -> Option<i64> {
    item.get(key)?.as_n().ok()?.parse().ok()
}

/// The messages of every room.
#[derive(Clone, Debug)]
pub struct MessageStore {
    pub(super) client: Client,
    pub(super) table: String,
}

impl MessageStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        MessageStore {
            client,
            table: table.into(),
        }
    }

    /// Takes the room's next `seq` (1 for its first message).
    pub async fn take_seq(&self, room: &str, now_ms: i64) -> Result<u64, StoreError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ROOM, AttributeValue::S(room.to_owned()))
            .key("sk", AttributeValue::S(COUNTER.to_owned()))
            .update_expression("ADD n :one SET #at = :now")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(store_error("UpdateItem"))?;
        output
            .attributes
            .as_ref()
            .and_then(|new| number(new, "n"))
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| StoreError::malformed("UpdateItem", "the counter came back without n"))
    }

    /// The room's counter: the last `seq` taken and when (0 and 0 for a room with none).
    async fn counter(&self, room: &str) -> Result<(u64, i64), StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ROOM, AttributeValue::S(room.to_owned()))
            .key("sk", AttributeValue::S(COUNTER.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error("GetItem"))?
            .item
            .unwrap_or_default();
        let n = number(&item, "n").and_then(|n| u64::try_from(n).ok());
        Ok((n.unwrap_or(0), number(&item, "at").unwrap_or(0)))
    }

    /// Keeps message `seq` of `room` until `expires_at_secs`.
    pub async fn put(
        &self,
        room: &str,
        seq: u64,
        frame: &str,
        now_ms: i64,
        expires_at_secs: i64,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(ROOM, AttributeValue::S(room.to_owned()))
            .item("sk", AttributeValue::S(seq_key(seq)))
            .item("frame", AttributeValue::S(frame.to_owned()))
            .item("keptAt", AttributeValue::N(now_ms.to_string()))
            .item("expiresAt", AttributeValue::N(expires_at_secs.to_string()))
            .send()
            .await
            .map_err(store_error("PutItem"))?;
        Ok(())
    }

    /// Claims `client_id` in `room` for a message about to be kept (a conditional write:
    /// only if the room has not kept it, or its claim has expired, or it was left without
    /// a frame for [`STALE_CLAIM_MS`]).
    pub async fn claim(
        &self,
        room: &str,
        client_id: &str,
        now_ms: i64,
        expires_at_secs: i64,
    ) -> Result<Claim, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(ROOM, AttributeValue::S(room.to_owned()))
            .item("sk", AttributeValue::S(client_key(client_id)))
            .item("claimedAt", AttributeValue::N(now_ms.to_string()))
            .item("expiresAt", AttributeValue::N(expires_at_secs.to_string()))
            .condition_expression(
                "attribute_not_exists(sk) OR expiresAt < :now \
                 OR (attribute_not_exists(frame) AND claimedAt < :stale)",
            )
            .expression_attribute_values(":now", AttributeValue::N((now_ms / 1000).to_string()))
            .expression_attribute_values(
                ":stale",
                AttributeValue::N((now_ms - STALE_CLAIM_MS).to_string()),
            )
            .send()
            .await;
        if conditional("PutItem", result)?.is_some() {
            return Ok(Claim::New);
        }
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ROOM, AttributeValue::S(room.to_owned()))
            .key("sk", AttributeValue::S(client_key(client_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error("GetItem"))?
            .item;
        let Some(item) = item else {
            return Ok(Claim::Pending);
        };
        Ok(match item.get("frame").and_then(|f| f.as_s().ok()) {
            Some(frame) => Claim::Kept {
                frame: frame.clone(),
                unsent: item.contains_key("unsent"),
            },
            None => Claim::Pending,
        })
    }

    /// Marks a kept `client_id` whose broadcast failed (`sent` false), or that has been
    /// broadcast since (`sent` true): a repeat of an unsent one is broadcast.
    pub async fn mark_sent(
        &self,
        room: &str,
        client_id: &str,
        sent: bool,
    ) -> Result<(), StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ROOM, AttributeValue::S(room.to_owned()))
            .key("sk", AttributeValue::S(client_key(client_id)));
        let request = if sent {
            request.update_expression("REMOVE unsent")
        } else {
            request
                .update_expression("SET unsent = :yes")
                .expression_attribute_values(":yes", AttributeValue::Bool(true))
        };
        request.send().await.map_err(store_error("UpdateItem"))?;
        Ok(())
    }

    /// Records what a claimed `client_id` was kept as.
    pub async fn settle(
        &self,
        room: &str,
        client_id: &str,
        seq: u64,
        frame: &str,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(ROOM, AttributeValue::S(room.to_owned()))
            .key("sk", AttributeValue::S(client_key(client_id)))
            .update_expression("SET seq = :seq, frame = :frame")
            .expression_attribute_values(":seq", AttributeValue::N(seq.to_string()))
            .expression_attribute_values(":frame", AttributeValue::S(frame.to_owned()))
            .send()
            .await
            .map_err(store_error("UpdateItem"))?;
        Ok(())
    }

    /// Gives up a claim whose message could not be kept, so that a resend is kept.
    pub async fn release(&self, room: &str, client_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(ROOM, AttributeValue::S(room.to_owned()))
            .key("sk", AttributeValue::S(client_key(client_id)))
            .send()
            .await
            .map_err(store_error("DeleteItem"))?;
        Ok(())
    }

    /// One strongly consistent page of the room's unexpired messages from `from` on
    /// (or, `forward` false, down from the newest), at most `limit` items read; and
    /// whether it read expired ones.
    async fn page(
        &self,
        room: &str,
        from: &str,
        forward: bool,
        limit: usize,
        now_secs: i64,
        start: Option<HashMap<String, AttributeValue>>,
    ) -> Result<(Vec<Kept>, bool, Option<HashMap<String, AttributeValue>>), StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#room = :room AND sk BETWEEN :from AND :to")
            .filter_expression("expiresAt > :now")
            .expression_attribute_names("#room", ROOM)
            .expression_attribute_values(":room", AttributeValue::S(room.to_owned()))
            .expression_attribute_values(":from", AttributeValue::S(from.to_owned()))
            .expression_attribute_values(":to", AttributeValue::S(PAST_LAST_MESSAGE.to_owned()))
            .expression_attribute_values(":now", AttributeValue::N(now_secs.to_string()))
            .projection_expression("sk, frame, keptAt")
            .scan_index_forward(forward)
            .set_limit((limit < i32::MAX as usize).then(|| limit.max(1) as i32))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(store_error("Query"))?;
        let kept = output.items().iter().filter_map(Kept::from_item).collect();
        let expired = output.scanned_count > output.count;
        let next = output.last_evaluated_key.filter(|key| !key.is_empty());
        Ok((kept, expired, next))
    }

    /// The room's `limit` most recent unexpired frames, oldest first. TTL deletes expired
    /// items only eventually (often days later), so a filter on `expiresAt`, not TTL,
    /// keeps them out.
    pub async fn recent(
        &self,
        room: &str,
        limit: u32,
        now_secs: i64,
    ) -> Result<Vec<String>, StoreError> {
        let limit = limit as usize;
        let mut frames = Vec::new();
        let mut start = None;
        for _ in 0..MAX_PAGES {
            let (kept, _, next) = self
                .page(room, FIRST_MESSAGE, false, limit, now_secs, start)
                .await?;
            frames.extend(kept.into_iter().map(|kept| kept.frame));
            start = next;
            if frames.len() >= limit || start.is_none() {
                break;
            }
        }
        frames.truncate(limit);
        frames.reverse();
        Ok(frames)
    }

    /// The room's unexpired messages with a `seq` larger than `after`, oldest first, at
    /// most `limit`; whether there are more; and whether some after `after` are gone.
    pub async fn after(
        &self,
        room: &str,
        after: u64,
        limit: u32,
        now_ms: i64,
    ) -> Result<After, StoreError> {
        let limit = limit as usize;
        let now_secs = now_ms / 1000;
        let from = seq_key(after.saturating_add(1));
        let (mut kept, mut expired, mut start) = (Vec::new(), false, None);
        for _ in 0..MAX_PAGES {
            // Past a page of nothing but expired messages, whole (1 MB) pages: expired ones
            // come first (in seq order), and TTL may leave days of them.
            let page_limit = if expired && kept.is_empty() {
                usize::MAX
            } else {
                limit + 1
            };
            let page = self
                .page(room, &from, true, page_limit, now_secs, start)
                .await?;
            kept.extend(page.0);
            expired |= page.1;
            start = page.2;
            if kept.len() > limit || start.is_none() {
                break;
            }
        }
        let more = kept.len() > limit || start.is_some();
        kept.truncate(limit);
        let settled = |at_ms: i64| at_ms < now_ms - SETTLE_MS;
        let (gap, oldest) = match (kept.first(), &start) {
            (Some(first), _) => {
                let hole = first.seq > after.saturating_add(1);
                let gap = hole && (expired || settled(first.kept_at_ms));
                (gap, gap.then_some(first.seq))
            }
            // Out of pages before anything kept: everything up to where it stopped is gone;
            // the client asks again from there.
            (None, Some(stopped)) => {
                let last_read = stopped
                    .get("sk")
                    .and_then(|sk| sk.as_s().ok()?.strip_prefix(FIRST_MESSAGE)?.parse().ok())
                    .unwrap_or(after);
                (true, Some(last_read + 1))
            }
            (None, None) => {
                // Nothing kept after `after`: gone, if numbers were taken; the next to come
                // is `last + 1`, unless the last one may still be on its way.
                let (last, at_ms) = self.counter(room).await?;
                let gap = last > after && (expired || settled(at_ms));
                let next = if settled(at_ms) { last + 1 } else { last };
                (gap, gap.then_some(next.max(after + 1)))
            }
        };
        Ok(After {
            frames: kept.into_iter().map(|kept| kept.frame).collect(),
            more,
            gap,
            oldest,
        })
    }
}
