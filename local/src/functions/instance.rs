//! One function instance: a real process speaking the Runtime API on its own loopback
//! port, its output forwarded line by line, killed when it crashes, times out or is retired.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::{InvokeError, INIT_TIMEOUT};
use crate::log::Log;
use crate::metrics::Metrics;
use crate::process;
use crate::runtime_api::{self, ApiState, Invocation, Outcome};
use crate::stack::Function;

/// One running process of a function and its Runtime API endpoint.
/// Process ids of a pool's running instances, busy or idle.
pub(super) type Live = Arc<Mutex<BTreeSet<u32>>>;

pub(super) struct Instance {
    pub(super) pid: Option<u32>,
    spawned_at: Instant,
    queue: mpsc::Sender<Invocation>,
    api: Arc<ApiState>,
    exited: watch::Receiver<Option<String>>,
    kill: Mutex<Option<oneshot::Sender<()>>>,
    server: JoinHandle<()>,
    pub(super) invocations: u64,
    /// The pool's generation at spawn; an instance of an older binary is not reused.
    pub(super) generation: u64,
}

impl Instance {
    pub(super) async fn spawn(
        function: &Function,
        binary: &Path,
        environment: &[(String, String)],
        generation: u64,
        log: &Log,
        metrics: Option<&Arc<Metrics>>,
        live: &Live,
    ) -> Result<Instance, InvokeError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| InvokeError::Crashed(format!("cannot bind a Runtime API port: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| InvokeError::Crashed(format!("Runtime API address: {e}")))?;
        let (api, queue) = ApiState::new(function.arn.clone(), function.timeout);
        let server = tokio::spawn({
            let router = runtime_api::router(Arc::clone(&api));
            async move {
                let _ = axum::serve(listener, router).await;
            }
        });

        let mut command = process::program(binary).map_err(|why| {
            server.abort();
            InvokeError::Init(why)
        })?;
        command
            .env_clear()
            .envs(environment.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("local/[$LATEST]{}", crate::ids::hex(16)),
            )
            .current_dir(binary.parent().unwrap_or(std::path::Path::new(".")))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawned_at = Instant::now();
        let mut child = match process::spawn_owned(&mut command) {
            Ok(child) => child,
            Err(error) => {
                server.abort();
                return Err(InvokeError::Init(format!(
                    "cannot start {}: {error}",
                    binary.display()
                )));
            }
        };
        let pid = child.id();
        let live = Arc::clone(live);
        if let Some(pid) = pid {
            live.lock().expect("live pids").insert(pid);
        }
        forward_lines(child.stdout.take(), &function.name, log, metrics);
        forward_lines(child.stderr.take(), &function.name, log, None);
        let (exit_sender, exited) = watch::channel(None);
        let (kill, kill_received) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = kill_received => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let description = match status {
                Ok(status) => status.to_string(),
                Err(error) => error.to_string(),
            };
            if let Some(pid) = pid {
                live.lock().expect("live pids").remove(&pid);
            }
            let _ = exit_sender.send(Some(description));
        });
        Ok(Instance {
            pid,
            spawned_at,
            queue,
            api,
            exited,
            kill: Mutex::new(Some(kill)),
            server,
            invocations: 0,
            generation,
        })
    }

    pub(super) fn kill(&self) {
        if let Some(kill) = self.kill.lock().expect("kill switch").take() {
            let _ = kill.send(());
        }
        self.server.abort();
    }

    pub(super) fn is_alive(&self) -> bool {
        self.exited.borrow().is_none()
    }

    /// Init duration, once the process has asked for its first event.
    pub(super) fn init_duration(&self) -> Option<Duration> {
        self.api
            .ready
            .borrow()
            .map(|ready| ready.duration_since(self.spawned_at))
    }

    pub(super) async fn invoke(
        &mut self,
        request_id: String,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, InvokeError> {
        let cold = self.invocations == 0;
        self.invocations += 1;
        let (reply, outcome) = oneshot::channel();
        let invocation = Invocation {
            request_id,
            payload,
            reply,
        };
        if self.queue.send(invocation).await.is_err() {
            return Err(InvokeError::Crashed(
                "the instance stopped taking events".into(),
            ));
        }
        let budget = timeout + if cold { INIT_TIMEOUT } else { Duration::ZERO };
        let mut exited = self.exited.clone();
        let result = tokio::select! {
            biased;
            outcome = outcome => match outcome {
                Ok(Outcome::Response(body)) => Ok(body),
                Ok(Outcome::Error(error)) => Err(InvokeError::Function(error)),
                Err(_) => Err(InvokeError::Crashed("the invocation was dropped".into())),
            },
            status = exited.wait_for(Option::is_some) => {
                let status = status.map(|s| s.clone().unwrap_or_default()).unwrap_or_default();
                let init_error = self.api.init_error.lock().expect("init error").clone();
                match (init_error, self.init_duration()) {
                    (Some(error), _) => Err(InvokeError::Init(format!("{}: {}", error.error_type, error.error_message))),
                    (None, None) => Err(InvokeError::Init(format!("the process exited before asking for an event ({status})"))),
                    (None, Some(_)) => Err(InvokeError::Crashed(status)),
                }
            },
            _ = tokio::time::sleep(budget) => Err(InvokeError::Timeout(timeout)),
        };
        if result.as_ref().is_err_and(InvokeError::is_fatal) {
            self.kill();
        }
        result
    }

    /// The process's peak resident memory (VmHWM), where /proc tells it.
    pub(super) fn max_memory_mb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb.div_ceil(1024))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Prints a stream's lines with the function's name; on standard output, EMF lines go to
/// `metrics` instead, as CloudWatch Logs takes them out of the log's way.
fn forward_lines(
    stream: Option<impl AsyncRead + Unpin + Send + 'static>,
    name: &str,
    log: &Log,
    metrics: Option<&Arc<Metrics>>,
) {
    let Some(stream) = stream else { return };
    let (prefix, log, metrics) = (format!("[{name}] "), log.clone(), metrics.cloned());
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if metrics.as_ref().is_some_and(|m| m.ingest_line(&line)) {
                continue;
            }
            log.line(&format!("{prefix}{line}"));
        }
    });
}
