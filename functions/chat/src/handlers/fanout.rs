//! `FanoutFunction`: one chunk of a large room's broadcast, handed over by `onMessage`.
//!
//! The worker posts the job's frame to the job's ids with the same bounded concurrency,
//! 429 backoff and 410 pruning as an inline broadcast ([`crate::delivery::broadcast`]). It watches
//! its deadline: no post starts later than a sixth of its time before it (2 to 10 s), no
//! prune later than a fifteenth (1.5 to 4 s), and whatever is left then goes to a fresh
//! invocation of the worker ([`Job::carry_on`]) — so a chunk is never cut off by the
//! timeout and retried whole.
//! It succeeds even when some posts fail (they are counted and logged) and when it refuses
//! a job, so Lambda retries a job only when the worker crashed.

use std::time::Duration;

use crate::delivery::broadcast::{self, Deadlines, Payload, Recipient, Summary};

use crate::delivery::fanout::{Job, MAX_HOPS};

use super::App;

/// How long a worker tries throttled (429) posts again, at most.
pub const RETRY_WINDOW: Duration = Duration::from_secs(20);

/// When a worker with `left` until its deadline stops posting, and stops pruning: the
/// rest of its time is for handing on what is left (60 s: posts until 50 s, prunes until
/// 56 s).
pub fn margins(left: Duration) -> (Duration, Duration) {
    let post = (left / 6).clamp(Duration::from_secs(2), Duration::from_secs(10));
    let prune = (left / 15).clamp(Duration::from_millis(1500), Duration::from_secs(4));
    (post, prune)
}

impl App {
    /// Posts one job's chunk. A job that names a callback endpoint this function may not
    /// post to is refused: logged, its recipients counted `Undelivered` (so the alarm sees
    /// them), nothing posted, `None` — not an error, which Lambda would only retry to the
    /// same end.
    pub async fn fan_out_chunk(&self, mut job: Job) -> Option<Summary> {
        if !self.config.is_callback_endpoint(&job.endpoint) {
            tracing::error!(
                endpoint = job.endpoint,
                recipients = job.connection_ids.len(),
                "refused a job: its endpoint is not this API's @connections endpoint"
            );
            crate::metrics::count(crate::metrics::UNDELIVERED, job.connection_ids.len() as u64);
            return None;
        }
        let started = std::time::Instant::now();
        let client = self.client_for(job.endpoint.clone());
        let recipients = job.recipients();
        let to_prune = job.to_prune();
        let audience = self.audience(&job.room, None);
        let mut summary = Summary {
            recipients: recipients.len(),
            ..Summary::default()
        };
        let left = crate::delivery::budget::deadline()
            .saturating_duration_since(std::time::Instant::now());
        let (post_margin, prune_margin) = margins(left);
        let deadlines = Deadlines::before_end(post_margin, prune_margin, RETRY_WINDOW);
        let payload = Payload::new(job.frame.clone().into_bytes());
        let (expired, recipients) =
            broadcast::past_the_limit(recipients, chrono::Utc::now().timestamp_millis());
        summary.expired = expired.len();
        let mut to_prune = to_prune;
        to_prune.extend(expired);
        let leftover = Box::pin(broadcast::deliver(
            &audience,
            &client,
            recipients,
            to_prune,
            &payload,
            self.config.fanout_concurrency,
            deadlines,
            &mut summary,
        ))
        .await;
        if !leftover.unreached.is_empty() || !leftover.unpruned.is_empty() {
            self.carry_on(&job, leftover.unreached, leftover.unpruned, &mut summary)
                .await;
        }
        summary.elapsed_ms = started.elapsed().as_millis();
        crate::metrics::broadcast(&summary, started);
        tracing::info!(
            room = job.room,
            chunk = job.chunk,
            chunks = job.chunks,
            hops = job.hops,
            recipients = summary.recipients,
            delivered = summary.delivered,
            gone = summary.gone,
            pruned = summary.pruned,
            expired = summary.expired,
            throttled = summary.throttled,
            failed = summary.failed,
            undelivered = summary.undelivered,
            unreached = summary.unreached,
            handed_on = summary.chunks,
            posted_ms = summary.posted_ms as u64,
            ms = summary.elapsed_ms as u64,
            "fan-out chunk"
        );
        Some(summary)
    }

    /// Hands what this worker had no time for to a fresh invocation of itself.
    async fn carry_on(
        &self,
        job: &Job,
        unreached: Vec<Recipient>,
        unpruned: Vec<Recipient>,
        summary: &mut Summary,
    ) {
        let (posts, prunes) = (unreached.len(), unpruned.len());
        let next = job.carry_on(unreached, unpruned);
        let handed = match &self.workers {
            Some(_) if job.hops >= MAX_HOPS => Err(format!("handed on {MAX_HOPS} times already")),
            Some(workers) => workers.invoke(&next).await,
            None => Err("no FANOUT_FUNCTION to hand it to".to_owned()),
        };
        match handed {
            Ok(()) => {
                summary.chunks += 1;
                tracing::info!(
                    room = job.room,
                    posts,
                    prunes,
                    hops = next.hops,
                    "out of time; handed the rest to a fresh worker"
                );
            }
            Err(error) => {
                summary.undelivered += posts;
                tracing::error!(
                    room = job.room,
                    posts,
                    prunes,
                    %error,
                    "out of time, and could not hand the rest on: not posted"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins_follow_the_time_a_worker_has() {
        let secs = |s: u64| Duration::from_secs(s);
        assert_eq!(margins(secs(60)), (secs(10), secs(4)));
        assert_eq!(margins(secs(900)), (secs(10), secs(4)));
        assert_eq!(margins(secs(30)), (secs(5), Duration::from_secs(2)));
        assert_eq!(margins(secs(6)), (secs(2), Duration::from_millis(1500)));
    }
}
