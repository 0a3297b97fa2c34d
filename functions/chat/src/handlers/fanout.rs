//! `FanoutFunction`: one chunk of a large room's broadcast, handed over by `onMessage`.
//!
//! The worker posts the job's frame to the job's ids with the same bounded concurrency
//! and 410 handling as an inline broadcast. It succeeds even when some posts fail (they
//! are counted and logged) and when it refuses a job, so Lambda retries a job only when the
//! worker crashed or ran out of time — and a retry posts the whole chunk again.

use crate::broadcast::{self, Payload, Summary};
use crate::fanout::Job;

use super::App;

impl App {
    /// Posts one job's chunk. A job that names a callback endpoint this function may not
    /// post to is refused: logged, nothing posted, `None` — not an error, which Lambda
    /// would only retry to the same end.
    pub async fn fan_out_chunk(&self, job: Job) -> Option<Summary> {
        if !self.config.is_callback_endpoint(&job.endpoint) {
            tracing::error!(
                endpoint = job.endpoint,
                "refused a job: its endpoint is not this API's @connections endpoint"
            );
            return None;
        }
        let started = std::time::Instant::now();
        let client = self.client_for(job.endpoint.clone());
        let audience = self.audience(&job.room, None);
        let mut summary = Summary {
            recipients: job.connection_ids.len(),
            ..Summary::default()
        };
        broadcast::post_all(
            &audience,
            &client,
            job.connection_ids,
            &Payload::new(job.frame.into_bytes()),
            self.config.fanout_concurrency,
            &mut summary,
        )
        .await;
        summary.elapsed_ms = started.elapsed().as_millis();
        tracing::info!(
            room = job.room,
            chunk = job.chunk,
            chunks = job.chunks,
            recipients = summary.recipients,
            delivered = summary.delivered,
            gone = summary.gone,
            failed = summary.failed,
            ms = summary.elapsed_ms as u64,
            "fan-out chunk"
        );
        Some(summary)
    }
}
