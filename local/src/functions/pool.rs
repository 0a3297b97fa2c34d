//! The warm instances of one function: reused while warm, started on demand up to a
//! limit, and beyond it invocations wait their turn in arrival order (a fair queue, so one
//! busy caller cannot starve the others).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Semaphore;

use super::instance::{Instance, Live};
use super::report::Report;
use super::InvokeError;
use crate::log::Log;
use crate::metrics::Metrics;
use crate::stack::Function;

/// How a pool runs its instances.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_instances: usize,
    /// No START/END/REPORT lines (function output is still forwarded).
    pub quiet: bool,
    pub log: Log,
    /// Where the functions' EMF lines and each invocation's `AWS/Lambda` metrics go
    /// (none: EMF lines are printed as they are, as by a one-off invoke).
    pub metrics: Option<Arc<Metrics>>,
}

pub struct Pool {
    function: Function,
    binary: PathBuf,
    environment: Vec<(String, String)>,
    idle: Mutex<Vec<Instance>>,
    /// Tokio's semaphore hands out permits first come, first served.
    busy: Semaphore,
    generation: AtomicU64,
    settings: PoolSettings,
    live: Live,
    /// Set by [`Pool::shutdown`]: no new instance starts after it.
    stopped: AtomicBool,
}

impl Pool {
    pub fn new(
        function: Function,
        binary: PathBuf,
        environment: Vec<(String, String)>,
        settings: PoolSettings,
    ) -> Pool {
        Pool {
            function,
            binary,
            environment,
            idle: Mutex::new(Vec::new()),
            busy: Semaphore::new(settings.max_instances.max(1)),
            generation: AtomicU64::new(0),
            settings,
            live: Live::default(),
            stopped: AtomicBool::new(false),
        }
    }

    pub fn function(&self) -> &Function {
        &self.function
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    pub async fn invoke(&self, payload: Vec<u8>) -> (Result<Vec<u8>, InvokeError>, Report) {
        self.invoke_as(crate::ids::uuid(), payload).await
    }

    /// One invocation with the request id `request_id` (Lambda keeps an event's id across
    /// its asynchronous retries, and answers `Invoke` with it).
    pub async fn invoke_as(
        &self,
        request_id: String,
        payload: Vec<u8>,
    ) -> (Result<Vec<u8>, InvokeError>, Report) {
        let _permit = self
            .busy
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        let started = Instant::now();
        let mut instance = match self.warm_or_new().await {
            Ok(instance) => instance,
            Err(error) => {
                let report = Report {
                    request_id,
                    duration: started.elapsed(),
                    init_duration: None,
                    max_memory_mb: None,
                };
                self.log_report(&report, Some(&error));
                return (Err(error), report);
            }
        };
        let cold = instance.invocations == 0;
        self.log(&Report::start_line(&request_id));
        let result = instance
            .invoke(request_id.clone(), payload, self.function.timeout)
            .await;
        let init_duration = if cold { instance.init_duration() } else { None };
        let duration = match init_duration {
            Some(init) => started.elapsed().saturating_sub(init),
            None => started.elapsed(),
        };
        let report = Report {
            request_id,
            duration,
            init_duration,
            max_memory_mb: instance.max_memory_mb(),
        };
        self.log_report(&report, result.as_ref().err());
        let current = instance.generation == self.generation.load(Ordering::Acquire);
        if current && instance.is_alive() && !result.as_ref().is_err_and(InvokeError::is_fatal) {
            self.idle.lock().expect("idle instances").push(instance);
        }
        (result, report)
    }

    /// A warm instance if one is idle, else a new process.
    async fn warm_or_new(&self) -> Result<Instance, InvokeError> {
        let warm = {
            let mut idle = self.idle.lock().expect("idle instances");
            idle.retain(Instance::is_alive);
            idle.pop()
        };
        match warm {
            Some(instance) => Ok(instance),
            None if self.stopped.load(Ordering::Acquire) => Err(InvokeError::Crashed(
                "the stack has stopped; no new instance starts".into(),
            )),
            None => {
                Instance::spawn(
                    &self.function,
                    &self.binary,
                    &self.environment,
                    self.generation.load(Ordering::Acquire),
                    &self.settings.log,
                    self.settings.metrics.as_ref(),
                    &self.live,
                )
                .await
            }
        }
    }

    /// Process ids of the running instances, busy or idle.
    pub fn pids(&self) -> Vec<u32> {
        self.live
            .lock()
            .expect("live pids")
            .iter()
            .copied()
            .collect()
    }

    fn log(&self, line: &str) {
        if !self.settings.quiet {
            self.settings
                .log
                .line(&format!("[{}] {line}", self.function.name));
        }
    }

    fn log_report(&self, report: &Report, error: Option<&InvokeError>) {
        if let Some(metrics) = &self.settings.metrics {
            let function = [("FunctionName", self.function.name.as_str())];
            let failed = f64::from(u8::from(error.is_some()));
            let ms = report.duration.as_secs_f64() * 1000.0;
            metrics.aws("AWS/Lambda", "Invocations", &function, "Count", 1.0);
            metrics.aws("AWS/Lambda", "Errors", &function, "Count", failed);
            metrics.aws("AWS/Lambda", "Duration", &function, "Milliseconds", ms);
        }
        if let Some(error) = error {
            if !matches!(error, InvokeError::Function(_)) || !self.settings.quiet {
                self.settings.log.line(&format!(
                    "[{}] {}",
                    self.function.name,
                    report.error_line(error)
                ));
            }
        }
        self.log(&report.end_line());
        self.log(&report.report_line(&self.function));
    }

    /// Retires every instance: idle ones stop now, busy ones when their invocation ends.
    /// The next invocation starts a fresh process from the (rebuilt) binary.
    pub fn restart(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.idle.lock().expect("idle instances").clear();
    }

    /// Stops every idle instance; busy ones stop when their invocation ends or the stack exits.
    pub fn shutdown(&self) {
        self.stopped.store(true, Ordering::Release);
        self.idle.lock().expect("idle instances").clear();
    }
}
