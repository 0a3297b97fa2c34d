//! Rooms larger than one invocation should serve: `onMessage` splits the room's member
//! ids into chunks and hands each to `FanoutFunction` with an asynchronous Lambda
//! invocation (`InvocationType: Event`), so no invocation posts more than a chunk.
//!
//! A [`Job`] carries everything its worker needs — the callback endpoint, the room, the
//! frame as it is posted and the chunk's ids — so a worker never reads the room again.
//! A job's payload stays within Lambda's 1 MB limit for asynchronous invocations (raised
//! from 256 KB in October 2025): a chunk closes at `FANOUT_CHUNK_SIZE` ids or at that
//! limit, whichever comes first.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

/// Lambda's limit on an asynchronous invocation's payload (1 MB).
pub const MAX_EVENT_PAYLOAD: usize = 1024 * 1024;

/// Asynchronous invocations `onMessage` has in flight at once while handing a room over.
const HAND_OVER_CONCURRENCY: usize = 8;

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
}

/// Splits `ids` into jobs of at most `chunk_size` ids and [`MAX_EVENT_PAYLOAD`] bytes
/// each. Returns the jobs, and the ids that fit no job at all (a frame so large that the
/// payload is full before its first id): those are for the caller to post itself.
pub fn plan(
    endpoint: &str,
    room: &str,
    frame: &str,
    ids: Vec<String>,
    chunk_size: usize,
) -> (Vec<Job>, Vec<String>) {
    let empty = Job {
        endpoint: endpoint.to_owned(),
        room: room.to_owned(),
        frame: frame.to_owned(),
        chunk: 0,
        chunks: 0,
        connection_ids: Vec::new(),
    };
    // Room for the chunk numbers' digits, which are filled in last.
    let base = payload_len(&empty) + 2 * 20;
    let chunk_size = chunk_size.max(1);
    let mut jobs: Vec<Job> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut size = base;
    let mut unplaced = Vec::new();
    for id in ids {
        // The id as JSON, and the comma before it.
        let cost = serde_json::to_string(&id).map_or(usize::MAX, |text| text.len() + 1);
        if base.saturating_add(cost) > MAX_EVENT_PAYLOAD {
            unplaced.push(id);
            continue;
        }
        if current.len() == chunk_size || size + cost > MAX_EVENT_PAYLOAD {
            jobs.push(Job {
                connection_ids: std::mem::take(&mut current),
                ..empty.clone()
            });
            size = base;
        }
        size += cost;
        current.push(id);
    }
    if !current.is_empty() {
        jobs.push(Job {
            connection_ids: current,
            ..empty.clone()
        });
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
    pub left: Vec<String>,
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
        ids: Vec<String>,
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
                    handed.left.extend(job.connection_ids);
                }
            }
        }
        handed
    }

    /// One asynchronous invocation of the worker with `job`.
    async fn invoke(&self, job: &Job) -> Result<(), String> {
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

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("id{i:013}=")).collect()
    }

    #[test]
    fn chunks_hold_at_most_chunk_size_ids_each_once_in_order() {
        let (jobs, unplaced) = plan("https://e", "lobby", "{}", ids(2500), 1000);
        assert!(unplaced.is_empty());
        let sizes: Vec<usize> = jobs.iter().map(|j| j.connection_ids.len()).collect();
        assert_eq!(sizes, vec![1000, 1000, 500]);
        let numbers: Vec<(usize, usize)> = jobs.iter().map(|j| (j.chunk, j.chunks)).collect();
        assert_eq!(numbers, vec![(1, 3), (2, 3), (3, 3)]);
        let all: Vec<String> = jobs.into_iter().flat_map(|j| j.connection_ids).collect();
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
