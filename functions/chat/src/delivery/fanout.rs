//! Rooms larger than one invocation should serve: `onMessage` splits the room's member
//! ids into chunks and hands each to `FanoutFunction` with an asynchronous Lambda
//! invocation (`InvocationType: Event`), so no invocation posts more than a chunk.
//!
//! A [`Job`] carries everything its worker needs — the callback endpoint, the room, the
//! frame as it is posted and the chunk's ids — so a worker never reads the room again.
//! A job's payload stays within Lambda's 1 MB limit for asynchronous invocations (raised
//! from 256 KB in October 2025): a chunk closes at `FANOUT_CHUNK_SIZE` ids or at that
//! limit, whichever comes first.
//!
//! A worker that runs short of time hands what it has not reached (and the gone ids it
//! has not pruned) to a fresh invocation of itself, as a job one `hop` further, rather
//! than run into its timeout and be retried whole (which would post the chunk twice).

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::delivery::broadcast::Recipient;

/// Lambda's limit on an asynchronous invocation's payload (1 MB).
pub const MAX_EVENT_PAYLOAD: usize = 1024 * 1024;

/// Asynchronous invocations `onMessage` has in flight at once while handing a room over.
const HAND_OVER_CONCURRENCY: usize = 8;

/// How many times a chunk may be handed on by workers that ran short of time.
pub const MAX_HOPS: u32 = 20;

/// One worker's share of a broadcast: the event `FanoutFunction` receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The `@connections` endpoint to post to.
    pub endpoint: String,
    /// The room the ids were read from; a 410 deletes the id from it.
    pub room: String,
    /// The frame, posted byte for byte.
    pub frame: String,
    /// This chunk's number (from 1) and how many the broadcast was split into.
    pub chunk: usize,
    pub chunks: usize,
    pub connection_ids: Vec<String>,
    /// When each of `connection_ids` connected (epoch ms), where known: it decides how
    /// an id that answers 410 is pruned ([`crate::delivery::prune`]).
    #[serde(default)]
    pub connected_at: Vec<Option<i64>>,
    /// Ids already known gone, to prune only (handed on by a worker out of time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prune_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prune_connected_at: Vec<Option<i64>>,
    /// How many workers handed this job on before (0: it came from `onMessage`).
    #[serde(default)]
    pub hops: u32,
}

impl Job {
    /// The job's recipients, with when they connected.
    pub fn recipients(&mut self) -> Vec<Recipient> {
        pair(
            std::mem::take(&mut self.connection_ids),
            std::mem::take(&mut self.connected_at),
        )
    }

    /// The ids the job is to prune only.
    pub fn to_prune(&mut self) -> Vec<Recipient> {
        pair(
            std::mem::take(&mut self.prune_ids),
            std::mem::take(&mut self.prune_connected_at),
        )
    }

    /// The job that carries on from this one: `unreached` to post, `unpruned` to prune.
    pub fn carry_on(&self, unreached: Vec<Recipient>, unpruned: Vec<Recipient>) -> Job {
        let (connection_ids, connected_at) = unpair(unreached);
        let (prune_ids, prune_connected_at) = unpair(unpruned);
        Job {
            endpoint: self.endpoint.clone(),
            room: self.room.clone(),
            frame: self.frame.clone(),
            chunk: self.chunk,
            chunks: self.chunks,
            connection_ids,
            connected_at,
            prune_ids,
            prune_connected_at,
            hops: self.hops + 1,
        }
    }
}

fn pair(ids: Vec<String>, at: Vec<Option<i64>>) -> Vec<Recipient> {
    let mut at = at.into_iter();
    ids.into_iter()
        .map(|id| Recipient {
            id,
            connected_at_ms: at.next().flatten(),
        })
        .collect()
}

fn unpair(recipients: Vec<Recipient>) -> (Vec<String>, Vec<Option<i64>>) {
    recipients
        .into_iter()
        .map(|recipient| (recipient.id, recipient.connected_at_ms))
        .unzip()
}

/// Splits `ids` into jobs of at most `chunk_size` ids and [`MAX_EVENT_PAYLOAD`] bytes
/// each. Returns the jobs, and the ids that fit no job at all (a frame so large that the
/// payload is full before its first id): those are for the caller to post itself.
pub fn plan(
    endpoint: &str,
    room: &str,
    frame: &str,
    ids: Vec<Recipient>,
    chunk_size: usize,
) -> (Vec<Job>, Vec<Recipient>) {
    let empty = Job {
        endpoint: endpoint.to_owned(),
        room: room.to_owned(),
        frame: frame.to_owned(),
        chunk: 0,
        chunks: 0,
        connection_ids: Vec::new(),
        connected_at: Vec::new(),
        prune_ids: Vec::new(),
        prune_connected_at: Vec::new(),
        hops: 0,
    };
    // Room for the chunk numbers' digits, which are filled in last.
    let base = payload_len(&empty) + 2 * 20;
    let chunk_size = chunk_size.max(1);
    let mut jobs: Vec<Job> = Vec::new();
    let mut current: Vec<Recipient> = Vec::new();
    let mut size = base;
    let mut unplaced = Vec::new();
    let close = |current: &mut Vec<Recipient>| {
        let (connection_ids, connected_at) = unpair(std::mem::take(current));
        Job {
            connection_ids,
            connected_at,
            ..empty.clone()
        }
    };
    for recipient in ids {
        // The id and its time as JSON, and the commas before them.
        let cost = serde_json::to_string(&recipient.id).map_or(usize::MAX, |text| text.len() + 1)
            + serde_json::to_string(&recipient.connected_at_ms).map_or(usize::MAX, |t| t.len() + 1);
        if base.saturating_add(cost) > MAX_EVENT_PAYLOAD {
            unplaced.push(recipient);
            continue;
        }
        if current.len() == chunk_size || size + cost > MAX_EVENT_PAYLOAD {
            jobs.push(close(&mut current));
            size = base;
        }
        size += cost;
        current.push(recipient);
    }
    if !current.is_empty() {
        jobs.push(close(&mut current));
    }
    let chunks = jobs.len();
    for (n, job) in jobs.iter_mut().enumerate() {
        job.chunk = n + 1;
        job.chunks = chunks;
    }
    (jobs, unplaced)
}

fn payload_len(job: &Job) -> usize {
    serde_json::to_vec(job).map_or(usize::MAX, |payload| payload.len())
}

/// What handing a room over did.
#[derive(Debug, Default)]
pub struct Handed {
    /// Jobs a worker accepted.
    pub chunks: usize,
    /// Ids no worker took (an invocation that failed, or a frame too large to hand over).
    pub left: Vec<Recipient>,
}

/// `FanoutFunction`, as `onMessage` sees it: where to send jobs and how large they are.
#[derive(Debug, Clone)]
pub struct Workers {
    pub client: aws_sdk_lambda::Client,
    /// The function's name or ARN (`FANOUT_FUNCTION`).
    pub function: String,
    /// Rooms with more recipients than this are handed over (`FANOUT_CHUNK_SIZE`).
    pub chunk_size: usize,
}

impl Workers {
    /// Hands `ids` over in chunks; whatever no worker accepted comes back in
    /// [`Handed::left`] for the caller to post.
    pub async fn hand_over(
        &self,
        endpoint: &str,
        room: &str,
        frame: &[u8],
        ids: Vec<Recipient>,
    ) -> Handed {
        let Ok(frame) = std::str::from_utf8(frame) else {
            return Handed {
                chunks: 0,
                left: ids,
            };
        };
        let (jobs, unplaced) = plan(endpoint, room, frame, ids, self.chunk_size);
        if !unplaced.is_empty() {
            tracing::warn!(
                room,
                ids = unplaced.len(),
                "the frame is too large to hand to a worker; posting here"
            );
        }
        let mut handed = Handed {
            chunks: 0,
            left: unplaced,
        };
        let mut invocations = stream::iter(jobs)
            .map(|job| async move {
                let result = self.invoke(&job).await;
                (job, result)
            })
            .buffer_unordered(HAND_OVER_CONCURRENCY);
        while let Some((job, result)) = invocations.next().await {
            match result {
                Ok(()) => handed.chunks += 1,
                Err(error) => {
                    tracing::warn!(
                        room,
                        chunk = job.chunk,
                        %error,
                        "could not hand a chunk to a worker; posting it here"
                    );
                    let mut job = job;
                    handed.left.extend(job.recipients());
                }
            }
        }
        handed
    }

    /// Hands ids known gone to workers, to prune only, in chunks; what no worker took
    /// comes back in [`Handed::left`].
    pub async fn hand_over_prunes(
        &self,
        endpoint: &str,
        room: &str,
        ids: Vec<Recipient>,
    ) -> Handed {
        let (jobs, unplaced) = plan(endpoint, room, "", ids, self.chunk_size);
        let mut handed = Handed {
            chunks: 0,
            left: unplaced,
        };
        let jobs = jobs.into_iter().map(|mut job| {
            let recipients = job.recipients();
            job.carry_on(Vec::new(), recipients)
        });
        let mut invocations = stream::iter(jobs)
            .map(|job| async move {
                let result = self.invoke(&job).await;
                (job, result)
            })
            .buffer_unordered(HAND_OVER_CONCURRENCY);
        while let Some((mut job, result)) = invocations.next().await {
            match result {
                Ok(()) => handed.chunks += 1,
                Err(error) => {
                    tracing::warn!(room, %error, "could not hand ids to prune to a worker");
                    handed.left.extend(job.to_prune());
                }
            }
        }
        handed
    }

    /// One asynchronous invocation of the worker with `job`.
    pub async fn invoke(&self, job: &Job) -> Result<(), String> {
        let payload = serde_json::to_vec(job).map_err(|e| e.to_string())?;
        let output = self
            .client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| aws_sdk_lambda::Error::from(e).to_string())?;
        match output.status_code() {
            202 => Ok(()),
            other => Err(format!("Invoke answered {other}, not 202")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<Recipient> {
        (0..n)
            .map(|i| Recipient {
                id: format!("id{i:013}="),
                connected_at_ms: Some(1_700_000_000_000 + i as i64),
            })
            .collect()
    }

    #[test]
    fn chunks_hold_at_most_chunk_size_ids_each_once_in_order() {
        let (jobs, unplaced) = plan("https://e", "lobby", "{}", ids(2500), 1000);
        assert!(unplaced.is_empty());
        let sizes: Vec<usize> = jobs.iter().map(|j| j.connection_ids.len()).collect();
        assert_eq!(sizes, vec![1000, 1000, 500]);
        let numbers: Vec<(usize, usize)> = jobs.iter().map(|j| (j.chunk, j.chunks)).collect();
        assert_eq!(numbers, vec![(1, 3), (2, 3), (3, 3)]);
        let all: Vec<Recipient> = jobs.into_iter().flat_map(|mut j| j.recipients()).collect();
        assert_eq!(all, ids(2500));
    }

    #[test]
    fn payloads_stay_within_the_async_limit() {
        // A frame full of quotes doubles when escaped: chunks close on bytes first.
        let frame = "\"".repeat(300 * 1024);
        let (jobs, unplaced) = plan("https://e", "lobby", &frame, ids(30_000), 30_000);
        assert!(unplaced.is_empty());
        assert!(jobs.len() > 1);
        for job in &jobs {
            let size = serde_json::to_vec(job).unwrap().len();
            assert!(size <= MAX_EVENT_PAYLOAD, "{size} bytes");
        }
        let total: usize = jobs.iter().map(|j| j.connection_ids.len()).sum();
        assert_eq!(total, 30_000);
    }

    #[test]
    fn a_job_carried_on_keeps_its_frame_and_counts_the_hop() {
        let (jobs, _) = plan("https://e", "lobby", "{}", ids(4), 4);
        let rest = ids(4).split_off(2);
        let gone = ids(1);
        let next = jobs[0].carry_on(rest.clone(), gone.clone());
        assert_eq!((next.hops, next.frame.as_str()), (1, "{}"));
        let text = serde_json::to_string(&next).unwrap();
        let mut back: Job = serde_json::from_str(&text).unwrap();
        assert_eq!(back.recipients(), rest);
        assert_eq!(back.to_prune(), gone);
        let old = r#"{"endpoint":"e","room":"r","frame":"{}","chunk":1,"chunks":1,"connectionIds":["a"]}"#;
        let mut old: Job = serde_json::from_str(old).unwrap();
        assert_eq!(old.hops, 0);
        assert_eq!(
            old.recipients(),
            vec![Recipient {
                id: "a".into(),
                connected_at_ms: None
            }]
        );
    }

    #[test]
    fn a_frame_too_large_to_hand_over_leaves_every_id_to_the_caller() {
        let frame = "\"".repeat(600 * 1024);
        let (jobs, unplaced) = plan("https://e", "lobby", &frame, ids(10), 5);
        assert!(jobs.is_empty());
        assert_eq!(unplaced, ids(10));
    }

    #[test]
    fn a_job_reads_back_as_it_was_written() {
        let (jobs, _) = plan("https://e/Test", "r", r#"{"type":"message"}"#, ids(3), 2);
        let text = serde_json::to_string(&jobs[1]).unwrap();
        assert!(
            text.contains(r#""connectionIds":["id0000000000002="]"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), jobs[1]);
    }
}
