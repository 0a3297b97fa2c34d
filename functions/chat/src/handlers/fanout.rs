//! `FanoutFunction`: one chunk of a large room's broadcast, handed over by `onMessage`.
//!
//! The worker posts the job's frame to the job's ids with the same bounded concurrency
//! and 410 handling as an inline broadcast. It succeeds even when some posts fail (they
//! are counted and logged), so Lambda retries a job only when the worker crashed or ran
//! out of time — and a retry posts the whole chunk again.

use crate::broadcast::{self, Payload, Summary};
use crate::fanout::Job;

use super::App;

impl App {
    /// Posts one job's chunk. Fails only for a job that names a callback endpoint this
    /// function may not post to (nothing is posted then).
    pub async fn fan_out_chunk(&self, job: Job) -> Result<Summary, String> {
        if !self.config.is_callback_endpoint(&job.endpoint) {
            tracing::error!(
                endpoint = job.endpoint,
                "refused a job for another endpoint"
            );
            return Err(format!(
                "the job's endpoint {:?} is not this API's @connections endpoint",
                job.endpoint
            ));
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
        Ok(summary)
    }
}
