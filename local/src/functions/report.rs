//! Lambda's per-invocation log lines: `START`, `END` and `REPORT` with the duration, the
//! billed duration, memory and, on a cold start, the init duration.

use std::time::Duration;

use super::InvokeError;
use crate::stack::Function;

/// How the pool ran one invocation: what the REPORT line says.
#[derive(Debug, Clone)]
pub struct Report {
    pub request_id: String,
    pub duration: Duration,
    pub init_duration: Option<Duration>,
    pub max_memory_mb: Option<u64>,
}

impl Report {
    pub fn start_line(request_id: &str) -> String {
        format!("START RequestId: {request_id} Version: $LATEST")
    }

    /// The `ERROR` line for a failed invocation, if any.
    pub fn error_line(&self, error: &InvokeError) -> String {
        format!("{} ERROR {error}", self.request_id)
    }

    pub fn end_line(&self) -> String {
        format!("END RequestId: {}", self.request_id)
    }

    pub fn report_line(&self, function: &Function) -> String {
        let ms = self.duration.as_secs_f64() * 1000.0;
        let mut line = format!(
            "REPORT RequestId: {}\tDuration: {ms:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB",
            self.request_id,
            ms.ceil() as u64,
            function.memory_mb
        );
        if let Some(mb) = self.max_memory_mb {
            line.push_str(&format!("\tMax Memory Used: {mb} MB"));
        }
        if let Some(init) = self.init_duration {
            line.push_str(&format!(
                "\tInit Duration: {:.2} ms",
                init.as_secs_f64() * 1000.0
            ));
        }
        line
    }
}
