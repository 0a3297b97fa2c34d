//! Sending frames to connections through API Gateway's `@connections` management API,
//! and fanning one frame out to every member of a room.
//!
//! The fan-out is the hot path of the chat. It posts with bounded concurrency, so a
//! large room neither serialises on round trips nor opens thousands of sockets at once,
//! and one connection's failure never stops delivery to the others. A `410 Gone` means
//! the connection closed without `$disconnect` reaching us: that id, and only that id,
//! is deleted from the connection table and from the room. A room larger than one chunk
//! is handed to [`Workers`](crate::fanout::Workers) instead, a chunk per invocation.

use std::time::Instant;

use futures::stream::{self, StreamExt};

use crate::fanout::Workers;
pub use crate::management::{Connections, Delivery, Payload};
use crate::members::MemberStore;
use crate::store::{ConnectionStore, StoreError};

/// What one broadcast did; logged as one line per broadcast.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Member items DynamoDB read to find the recipients.
    pub items_read: usize,
    pub recipients: usize,
    /// Nothing was posted: the room has more recipients than the audience's limit.
    pub skipped: bool,
    pub delivered: usize,
    pub gone: usize,
    pub failed: usize,
    /// Chunks handed to FanoutFunction workers (their posts are counted in their logs).
    pub chunks: usize,
    pub elapsed_ms: u128,
}

/// Who a frame goes to: the members of `room`, but `except`; nobody at all when they are
/// more than `limit` (presence notices in a large room would cost a post per member for
/// every arrival and departure).
pub struct Audience<'a> {
    pub connections: &'a ConnectionStore,
    pub members: &'a MemberStore,
    pub room: &'a str,
    pub except: Option<&'a str>,
    pub limit: Option<usize>,
}

/// How a broadcast reaches its recipients: posts in flight at once, and the workers a
/// room larger than one chunk is handed to (none: every post is made here).
#[derive(Clone, Copy)]
pub struct Plan<'a> {
    pub concurrency: usize,
    pub workers: Option<&'a Workers>,
    /// The `@connections` endpoint the workers post to (the one `client` posts to).
    pub endpoint: &'a str,
}

/// Posts `frame` to every member of the audience's room (but `except`), or hands the
/// members to the plan's workers in chunks when there are more than one chunk's worth.
///
/// Fails only when the room's members cannot be read; per-connection failures are
/// logged and counted in the [`Summary`].
pub async fn fan_out(
    audience: Audience<'_>,
    client: &Connections,
    frame: &[u8],
    plan: Plan<'_>,
) -> Result<Summary, StoreError> {
    let started = Instant::now();
    // With a limit, no more than limit + 2 items are read (the excepted one may be among them).
    let (members, items_read, more) = match audience.limit {
        Some(limit) => {
            let page = audience
                .members
                .first(audience.room, limit.saturating_add(2))
                .await?;
            (page.members, page.items_read, page.next.is_some())
        }
        None => {
            let (members, read) = audience.members.all(audience.room).await?;
            (members, read, false)
        }
    };
    let ids: Vec<String> = members
        .into_iter()
        .map(|member| member.from)
        .filter(|id| Some(id.as_str()) != audience.except)
        .collect();
    let mut summary = Summary {
        items_read,
        recipients: ids.len(),
        ..Summary::default()
    };
    if more || audience.limit.is_some_and(|limit| ids.len() > limit) {
        summary.skipped = true;
        return Ok(summary);
    }
    let inline = match plan.workers {
        Some(workers) if ids.len() > workers.chunk_size => {
            let handed = workers
                .hand_over(plan.endpoint, audience.room, frame, ids)
                .await;
            summary.chunks = handed.chunks;
            // A chunk no worker took is posted here: nobody is silently skipped.
            handed.left
        }
        _ => ids,
    };
    let payload = Payload::new(frame.to_vec());
    post_all(
        &audience,
        client,
        inline,
        &payload,
        plan.concurrency,
        &mut summary,
    )
    .await;
    summary.elapsed_ms = started.elapsed().as_millis();
    Ok(summary)
}

/// Posts `frame` to `ids`, `concurrency` at a time, counting each outcome in `summary`;
/// a 410 deletes that id from the table and from the audience's room.
pub async fn post_all(
    audience: &Audience<'_>,
    client: &Connections,
    ids: Vec<String>,
    payload: &Payload,
    concurrency: usize,
    summary: &mut Summary,
) {
    let mut deliveries = stream::iter(ids)
        .map(|id| async move {
            let delivery = client.post(&id, payload).await;
            if let Delivery::Gone = delivery {
                forget_gone(audience, &id).await;
            }
            (id, delivery)
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((id, delivery)) = deliveries.next().await {
        match delivery {
            Delivery::Delivered => summary.delivered += 1,
            Delivery::Gone => summary.gone += 1,
            Delivery::Failed(error) => {
                summary.failed += 1;
                tracing::warn!(connection_id = %id, %error, "post to connection failed");
            }
        }
    }
}

/// Deletes a connection that answered 410 from the table and from the room.
async fn forget_gone(audience: &Audience<'_>, id: &str) {
    let now_ms = chrono::Utc::now().timestamp_millis();
    if let Err(error) = audience.connections.remove_stale(id, now_ms).await {
        tracing::warn!(connection_id = %id, %error, "could not delete stale connection");
    }
    if let Err(error) = audience
        .members
        .remove_stale(audience.room, id, now_ms)
        .await
    {
        tracing::warn!(connection_id = %id, %error, "could not delete stale member");
    }
}
