//! Sending frames to connections through API Gateway's `@connections` management API,
//! and fanning one frame out to every member of a room.
//!
//! The fan-out is the hot path of the chat. It posts with bounded concurrency, so a
//! large room neither serialises on round trips nor opens thousands of sockets at once,
//! and one connection's failure never stops delivery to the others:
//! - a `410 Gone` means the connection closed without `$disconnect` reaching us: those ids
//!   are pruned from the connection table and the room after the posts, off the posting
//!   path ([`crate::delivery::prune`]);
//! - a `429` (`LimitExceededException`: the request rate, or the client's buffer is full)
//!   is back-pressure from that one connection: after everyone else has been posted to,
//!   the throttled ones are tried again in rounds, 250 ms apart and doubling (to 4 s),
//!   with jitter, for the caller's retry window; what is still refused then is counted and
//!   logged as undelivered (the client finds the hole by `seq` and fills it from `history`);
//! - nothing is started past the [`Deadlines`]: the ids not reached are returned, for a
//!   worker to take on;
//! - members that connected before API Gateway's two-hour connection limit are gone for
//!   certain (TTL removes their items only days later): they are pruned without a post.
//!
//! A room larger than one chunk is handed to [`Workers`], a chunk
//! per invocation.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use crate::delivery::fanout::Workers;
use crate::delivery::management::jittered;
pub use crate::delivery::management::{Connections, Delivery, Payload};
use crate::protocol::Member;
use crate::stores::connections::{ConnectionStore, StoreError, MAX_CONNECTION_SECS};
use crate::stores::members::MemberStore;

/// The first wait before throttled posts are tried again; it doubles up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(250);
const MAX_WAIT: Duration = Duration::from_secs(4);

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
    /// Posts that failed otherwise than 410 or 429 (after the client's own retries).
    pub failed: usize,
    /// 429 answers, each retry's included.
    pub throttled: usize,
    /// Posts to connections not known gone that were not delivered in the end: failed,
    /// still throttled at the deadline, or not reached and not handed on.
    pub undelivered: usize,
    /// Ids not posted to before the deadline (handed on to a worker when there is one).
    pub unreached: usize,
    /// Gone ids deleted from the room.
    pub pruned: usize,
    /// Members past API Gateway's two-hour limit: not posted to, pruned.
    pub expired: usize,
    /// Chunks handed to FanoutFunction workers (their posts are counted in their logs).
    pub chunks: usize,
    /// How long until every recipient had had its first post (retries and pruning after).
    pub posted_ms: u128,
    pub elapsed_ms: u128,
}

/// One connection a frame goes to, and when it connected (from the members table), which
/// decides how it is pruned if it answers 410.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub id: String,
    pub connected_at_ms: Option<i64>,
}

impl From<Member> for Recipient {
    fn from(member: Member) -> Recipient {
        Recipient {
            id: member.from,
            connected_at_ms: member.connected_at_ms,
        }
    }
}

/// When to stop starting posts, retries of throttled posts and prunes.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub post: Instant,
    /// Throttled posts are retried until then (no later than `post`).
    pub retry: Instant,
    pub prune: Instant,
}

impl Deadlines {
    /// Posts until `post_margin` before the invocation ends, prunes until `prune_margin`,
    /// and retries throttled posts for `retry_window` from now at most.
    pub fn before_end(
        post_margin: Duration,
        prune_margin: Duration,
        retry_window: Duration,
    ) -> Deadlines {
        let post = crate::delivery::budget::before_end(post_margin);
        Deadlines {
            post,
            retry: post.min(Instant::now() + retry_window),
            prune: crate::delivery::budget::before_end(prune_margin),
        }
    }
}

/// What [`deliver`] leaves to its caller.
#[derive(Debug, Default)]
pub struct Leftover {
    /// Recipients not posted to before the deadline.
    pub unreached: Vec<Recipient>,
    /// Gone ids not pruned before the deadline.
    pub unpruned: Vec<Recipient>,
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
    pub deadlines: Deadlines,
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
    let recipients: Vec<Recipient> = members
        .into_iter()
        .map(Recipient::from)
        .filter(|recipient| Some(recipient.id.as_str()) != audience.except)
        .collect();
    let mut summary = Summary {
        items_read,
        recipients: recipients.len(),
        ..Summary::default()
    };
    if more || audience.limit.is_some_and(|limit| recipients.len() > limit) {
        summary.skipped = true;
        return Ok(summary);
    }
    // Members who connected before API Gateway's two-hour limit are gone for certain:
    // they are pruned without a post (TTL removes them only days later).
    let (expired, recipients) = past_the_limit(recipients, chrono::Utc::now().timestamp_millis());
    summary.expired = expired.len();
    let mut to_prune = expired;
    let inline = match plan.workers {
        Some(workers) if recipients.len() > workers.chunk_size => {
            let handed = workers
                .hand_over(plan.endpoint, audience.room, frame, recipients)
                .await;
            summary.chunks = handed.chunks;
            // A chunk no worker took is posted here: nobody is silently skipped.
            handed.left
        }
        _ => recipients,
    };
    // After the posts' jobs, so that a queue of invocations serves the living first.
    if let Some(workers) = plan.workers.filter(|w| to_prune.len() > w.chunk_size) {
        let handed = workers
            .hand_over_prunes(plan.endpoint, audience.room, std::mem::take(&mut to_prune))
            .await;
        summary.chunks += handed.chunks;
        to_prune = handed.left;
    }
    finish(
        audience, client, inline, to_prune, frame, plan, summary, started,
    )
    .await
}

/// Splits off the recipients that connected before API Gateway's two-hour limit (and a
/// minute more) from `now_ms`.
pub fn past_the_limit(recipients: Vec<Recipient>, now_ms: i64) -> (Vec<Recipient>, Vec<Recipient>) {
    let cutoff = now_ms - (MAX_CONNECTION_SECS + 60) * 1000;
    // A time of 0 or less is no time at all (an item written by hand): posted to, as unknown.
    recipients.into_iter().partition(|recipient| {
        recipient
            .connected_at_ms
            .is_some_and(|at| at > 0 && at < cutoff)
    })
}

/// Posts what is left to post here, prunes what is left to prune, and hands on what ran
/// out of time.
#[allow(clippy::too_many_arguments)]
async fn finish(
    audience: Audience<'_>,
    client: &Connections,
    inline: Vec<Recipient>,
    to_prune: Vec<Recipient>,
    frame: &[u8],
    plan: Plan<'_>,
    mut summary: Summary,
    started: Instant,
) -> Result<Summary, StoreError> {
    let payload = Payload::new(frame.to_vec());
    // Boxed: callers' futures would otherwise nest too deep for the compiler.
    let leftover = Box::pin(deliver(
        &audience,
        client,
        inline,
        to_prune,
        &payload,
        plan.concurrency,
        plan.deadlines,
        &mut summary,
    ))
    .await;
    if !leftover.unreached.is_empty() {
        // Out of time: a worker takes them on, when there is one to take them.
        let handed = match plan.workers {
            Some(workers) => {
                workers
                    .hand_over(plan.endpoint, audience.room, frame, leftover.unreached)
                    .await
            }
            None => crate::delivery::fanout::Handed {
                chunks: 0,
                left: leftover.unreached,
            },
        };
        summary.chunks += handed.chunks;
        summary.undelivered += handed.left.len();
        if !handed.left.is_empty() {
            tracing::warn!(
                room = audience.room,
                ids = handed.left.len(),
                "out of time: not posted to"
            );
        }
    }
    if !leftover.unpruned.is_empty() {
        tracing::info!(
            room = audience.room,
            ids = leftover.unpruned.len(),
            "out of time to prune; left to the next 410 or TTL"
        );
    }
    summary.elapsed_ms = started.elapsed().as_millis();
    crate::metrics::broadcast(&summary, started);
    Ok(summary)
}

/// Posts `payload` to `recipients`, `concurrency` at a time, counting each outcome in
/// `summary`; then, at once, retries the throttled ones with backoff and prunes the gone
/// ones (and `to_prune`, known gone). Nothing starts past the deadlines; what was left is
/// returned.
#[allow(clippy::too_many_arguments)]
pub async fn deliver(
    audience: &Audience<'_>,
    client: &Connections,
    recipients: Vec<Recipient>,
    to_prune: Vec<Recipient>,
    payload: &Payload,
    concurrency: usize,
    deadlines: Deadlines,
    summary: &mut Summary,
) -> Leftover {
    let started = Instant::now();
    let first = post_round(client, recipients, payload, concurrency, deadlines.post).await;
    summary.posted_ms = started.elapsed().as_millis();
    summary.delivered += first.delivered;
    summary.failed += first.failed;
    summary.throttled += first.throttled.len();
    summary.gone += first.gone.len();
    summary.unreached += first.unreached.len();
    let retries = retry_throttled(
        client,
        first.throttled,
        payload,
        concurrency,
        deadlines.retry,
    );
    let mut gone = first.gone;
    gone.extend(to_prune);
    let pruning = crate::delivery::prune::prune(
        audience.connections,
        audience.members,
        audience.room,
        gone,
        deadlines.prune,
    );
    let (retried, pruned) = futures::join!(retries, pruning);
    summary.delivered += retried.delivered;
    summary.throttled += retried.throttled;
    summary.failed += retried.failed;
    summary.gone += retried.gone.len();
    summary.pruned += pruned.pruned;
    summary.undelivered += first.failed + retried.failed + retried.left.len();
    if !retried.left.is_empty() {
        let ids: Vec<&str> = retried
            .left
            .iter()
            .take(10)
            .map(|r| r.id.as_str())
            .collect();
        tracing::warn!(
            room = audience.room,
            undelivered = retried.left.len(),
            ?ids,
            "connections still throttled (429) at the deadline: not delivered"
        );
    }
    // Ids that answered 410 only on a retry are left to the next broadcast or TTL.
    Leftover {
        unreached: first.unreached,
        unpruned: pruned.left,
    }
}

/// What one round of posts did.
#[derive(Default)]
struct Round {
    delivered: usize,
    failed: usize,
    gone: Vec<Recipient>,
    throttled: Vec<Recipient>,
    unreached: Vec<Recipient>,
}

/// Posts to every recipient, `concurrency` at a time; none is started after `deadline`.
async fn post_round(
    client: &Connections,
    recipients: Vec<Recipient>,
    payload: &Payload,
    concurrency: usize,
    deadline: Instant,
) -> Round {
    let mut deliveries = stream::iter(recipients)
        .map(|recipient| async move {
            if Instant::now() >= deadline {
                return (recipient, None);
            }
            let delivery = client.post(&recipient.id, payload).await;
            (recipient, Some(delivery))
        })
        .buffer_unordered(concurrency.max(1));
    let mut round = Round::default();
    while let Some((recipient, delivery)) = deliveries.next().await {
        match delivery {
            None | Some(Delivery::OutOfTime) => round.unreached.push(recipient),
            Some(Delivery::Delivered) => round.delivered += 1,
            Some(Delivery::Gone) => round.gone.push(recipient),
            Some(Delivery::Throttled(_)) => round.throttled.push(recipient),
            Some(Delivery::Failed(error)) => {
                round.failed += 1;
                tracing::warn!(connection_id = %recipient.id, %error, "post to connection failed");
            }
        }
    }
    round
}

/// What retrying throttled posts did.
#[derive(Default)]
struct Retried {
    delivered: usize,
    failed: usize,
    throttled: usize,
    gone: Vec<Recipient>,
    /// Still throttled when time ran out.
    left: Vec<Recipient>,
}

/// Tries the throttled recipients again in rounds, waiting [`FIRST_WAIT`] (doubling to
/// [`MAX_WAIT`], with jitter) before each, while a round can start before `deadline`.
async fn retry_throttled(
    client: &Connections,
    mut throttled: Vec<Recipient>,
    payload: &Payload,
    concurrency: usize,
    deadline: Instant,
) -> Retried {
    let mut retried = Retried::default();
    let mut wait = FIRST_WAIT;
    while !throttled.is_empty() {
        let pause = jittered(wait);
        if Instant::now() + pause >= deadline {
            break;
        }
        tokio::time::sleep(pause).await;
        let round = post_round(client, throttled, payload, concurrency, deadline).await;
        retried.delivered += round.delivered;
        retried.failed += round.failed;
        retried.throttled += round.throttled.len();
        retried.gone.extend(round.gone);
        throttled = round.throttled;
        throttled.extend(round.unreached);
        wait = (wait * 2).min(MAX_WAIT);
    }
    retried.left = throttled;
    retried
}
