//! Connections that answered `410 Gone`, taken out of the connection table and of their
//! room off the posting path: a broadcast posts to everyone first and prunes afterwards
//! (while it retries throttled posts), so the living never wait behind the dead.
//!
//! An id that answered 410 and connected more than [`GONE_GRACE_MS`] ago is gone for good
//! (API Gateway never reuses an id), so it is deleted without a condition, 25 to a
//! `BatchWriteItem`, in both tables. A younger one may belong to a `$connect` that is still
//! running: it gets the conditional deletes of
//! [`ConnectionStore::remove_stale`](crate::stores::connections::ConnectionStore::remove_stale), one by
//! one. At most [`PRUNE_CONCURRENCY`] requests are in flight, and none starts past the
//! deadline: what is left is returned for the caller to hand on or leave to TTL.

use std::time::Instant;

use futures::stream::{self, StreamExt};

use crate::delivery::broadcast::Recipient;
use crate::stores::connections::{ConnectionStore, GONE_GRACE_MS};
use crate::stores::members::MemberStore;

/// Batches (or single conditional deletes) in flight at once.
pub const PRUNE_CONCURRENCY: usize = 4;

/// Ids per unconditional batch (DynamoDB's `BatchWriteItem` limit).
const BATCH: usize = 25;

/// What pruning did.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Ids deleted from the room.
    pub pruned: usize,
    /// Ids not tried before the deadline.
    pub left: Vec<Recipient>,
}

/// One unit of work: a batch of ids gone for good, or one that may be young.
enum Unit {
    Batch(Vec<Recipient>),
    Young(Recipient),
}

/// Takes the `gone` ids out of `room` and the connection table, stopping at `deadline`.
pub async fn prune(
    connections: &ConnectionStore,
    members: &MemberStore,
    room: &str,
    gone: Vec<Recipient>,
    deadline: Instant,
) -> Pruned {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let (old, young): (Vec<Recipient>, Vec<Recipient>) = gone.into_iter().partition(|gone| {
        gone.connected_at_ms
            .is_some_and(|at| at < now_ms - GONE_GRACE_MS)
    });
    let mut units: Vec<Unit> = Vec::new();
    let mut old = old.into_iter().peekable();
    while old.peek().is_some() {
        units.push(Unit::Batch(old.by_ref().take(BATCH).collect()));
    }
    units.extend(young.into_iter().map(Unit::Young));
    let mut done = stream::iter(units)
        .map(|unit| async move {
            if Instant::now() >= deadline {
                return Err(unit);
            }
            Ok(match unit {
                Unit::Batch(batch) => delete_batch(connections, members, room, &batch).await,
                Unit::Young(gone) => delete_young(connections, members, room, &gone, now_ms).await,
            })
        })
        .buffer_unordered(PRUNE_CONCURRENCY);
    let mut pruned = Pruned::default();
    while let Some(result) = done.next().await {
        match result {
            Ok(count) => pruned.pruned += count,
            Err(Unit::Batch(batch)) => pruned.left.extend(batch),
            Err(Unit::Young(gone)) => pruned.left.push(gone),
        }
    }
    pruned
}

/// Deletes a batch of ids gone for good from both tables; how many left the room.
async fn delete_batch(
    connections: &ConnectionStore,
    members: &MemberStore,
    room: &str,
    batch: &[Recipient],
) -> usize {
    let ids: Vec<String> = batch.iter().map(|gone| gone.id.clone()).collect();
    let (from_table, from_room) = futures::join!(
        connections.remove_gone(&ids),
        members.remove_gone(room, &ids)
    );
    if let Err(error) = from_table {
        tracing::warn!(ids = ids.len(), %error, "could not delete stale connections");
    }
    match from_room {
        Ok(count) => count,
        Err(error) => {
            tracing::warn!(ids = ids.len(), %error, "could not delete stale members");
            0
        }
    }
}

/// Deletes one id that answered 410 but may be young, each table on its own condition.
async fn delete_young(
    connections: &ConnectionStore,
    members: &MemberStore,
    room: &str,
    gone: &Recipient,
    now_ms: i64,
) -> usize {
    let id = gone.id.as_str();
    if let Err(error) = connections.remove_stale(id, now_ms).await {
        tracing::warn!(connection_id = %id, %error, "could not delete stale connection");
    }
    match members.remove_stale(room, id, now_ms).await {
        Ok(removed) => usize::from(removed),
        Err(error) => {
            tracing::warn!(connection_id = %id, %error, "could not delete stale member");
            0
        }
    }
}
