//! Function instances and pools: the template's functions run as real processes, each
//! talking to its own [`runtime_api`](crate::runtime_api) endpoint.
//!
//! A pool keeps warm instances and reuses them; when all are busy it starts another, up
//! to a limit, and beyond that invocations wait. An instance that crashes, fails to
//! initialise or outlives its Timeout is killed and never reused; the next invocation
//! gets a fresh one. Every invocation is logged like Lambda logs it: START, END and a
//! REPORT line with the duration and, on a cold start, the init duration.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::process;
use crate::runtime_api::{self, ApiState, FunctionError, Invocation, Outcome};
use crate::stack::Function;

/// Lambda's limit on the init phase of a new instance.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an invocation produced no response.
#[derive(Debug, Clone)]
pub enum InvokeError {
    /// The function reported an error through the Runtime API.
    Function(FunctionError),
    /// The instance ran past its Timeout and was killed.
    Timeout(Duration),
    /// The process exited (or could not be started) before answering.
    Crashed(String),
    /// The process reported an init error or exited before asking for an event.
    Init(String),
    /// No function has that logical id.
    NoSuchFunction(String),
}

impl InvokeError {
    /// Whether the instance that produced this error is unusable and must be killed. A
    /// function error is not fatal: the runtime reported it and asks for the next event.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, InvokeError::Function(_))
    }
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvokeError::Function(e) => write!(f, "{}: {}", e.error_type, e.error_message),
            InvokeError::Timeout(t) => {
                write!(f, "Task timed out after {:.2} seconds", t.as_secs_f64())
            }
            InvokeError::Crashed(why) => write!(f, "Runtime exited: {why}"),
            InvokeError::Init(why) => write!(f, "Init failed: {why}"),
            InvokeError::NoSuchFunction(id) => write!(f, "no function {id} in the template"),
        }
    }
}

/// The environment Lambda gives every function, plus the template's variables.
pub fn lambda_environment(
    function: &Function,
    region: &str,
    dynamodb: &str,
    connections: &str,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_owned(), v);
    };
    set("PATH", "/usr/local/bin:/usr/bin:/bin".into());
    set("LANG", "en_US.UTF-8".into());
    set("TZ", ":UTC".into());
    set("_HANDLER", "bootstrap".into());
    set("AWS_LAMBDA_FUNCTION_NAME", function.name.clone());
    set(
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        function.memory_mb.to_string(),
    );
    set("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into());
    set("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into());
    set(
        "AWS_LAMBDA_LOG_GROUP_NAME",
        format!("/aws/lambda/{}", function.name),
    );
    set("AWS_REGION", region.to_owned());
    set("AWS_DEFAULT_REGION", region.to_owned());
    set("AWS_ACCESS_KEY_ID", "local".into());
    set("AWS_SECRET_ACCESS_KEY", "local".into());
    set("AWS_SESSION_TOKEN", "local".into());
    set("AWS_EC2_METADATA_DISABLED", "true".into());
    set("AWS_ENDPOINT_URL_DYNAMODB", dynamodb.to_owned());
    set(
        "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI",
        connections.to_owned(),
    );
    if let Some(format) = &function.log_format {
        set("AWS_LAMBDA_LOG_FORMAT", format.clone());
    }
    for name in ["RUST_LOG", "RUST_BACKTRACE", "AWS_LAMBDA_LOG_LEVEL"] {
        if let Ok(value) = std::env::var(name) {
            set(name, value);
        }
    }
    for (name, value) in &function.environment {
        set(name, value.clone());
    }
    env.into_iter().collect()
}

/// One running process of a function and its Runtime API endpoint.
struct Instance {
    pid: Option<u32>,
    spawned_at: Instant,
    queue: mpsc::Sender<Invocation>,
    api: Arc<ApiState>,
    exited: watch::Receiver<Option<String>>,
    kill: Mutex<Option<oneshot::Sender<()>>>,
    server: JoinHandle<()>,
    invocations: u64,
    /// The pool's generation at spawn; an instance of an older binary is not reused.
    generation: u64,
}

impl Instance {
    async fn spawn(
        function: &Function,
        binary: &PathBuf,
        environment: &[(String, String)],
        generation: u64,
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

        let mut command = tokio::process::Command::new(binary);
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
        forward_lines(child.stdout.take(), function.name.clone());
        forward_lines(child.stderr.take(), function.name.clone());
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

    fn kill(&self) {
        if let Some(kill) = self.kill.lock().expect("kill switch").take() {
            let _ = kill.send(());
        }
        self.server.abort();
    }

    fn is_alive(&self) -> bool {
        self.exited.borrow().is_none()
    }

    /// Init duration, once the process has asked for its first event.
    fn init_duration(&self) -> Option<Duration> {
        self.api
            .ready
            .borrow()
            .map(|ready| ready.duration_since(self.spawned_at))
    }

    async fn invoke(
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
    fn max_memory_mb(&self) -> Option<u64> {
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

fn forward_lines(stream: Option<impl AsyncRead + Unpin + Send + 'static>, name: String) {
    let Some(stream) = stream else { return };
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            println!("[{name}] {line}");
        }
    });
}

/// How the pool ran one invocation: what the REPORT line says.
#[derive(Debug, Clone)]
pub struct Report {
    pub request_id: String,
    pub duration: Duration,
    pub init_duration: Option<Duration>,
    pub max_memory_mb: Option<u64>,
}

/// The warm instances of one function and the limit on how many may run.
pub struct Pool {
    function: Function,
    binary: PathBuf,
    environment: Vec<(String, String)>,
    idle: Mutex<Vec<Instance>>,
    busy: Semaphore,
    generation: AtomicU64,
    quiet: bool,
}

impl Pool {
    pub fn new(
        function: Function,
        binary: PathBuf,
        environment: Vec<(String, String)>,
        max_instances: usize,
        quiet: bool,
    ) -> Pool {
        Pool {
            function,
            binary,
            environment,
            idle: Mutex::new(Vec::new()),
            busy: Semaphore::new(max_instances.max(1)),
            generation: AtomicU64::new(0),
            quiet,
        }
    }

    pub fn function(&self) -> &Function {
        &self.function
    }

    pub async fn invoke(&self, payload: Vec<u8>) -> (Result<Vec<u8>, InvokeError>, Report) {
        let request_id = crate::ids::uuid();
        let _permit = self
            .busy
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        let warm = {
            let mut idle = self.idle.lock().expect("idle instances");
            idle.retain(Instance::is_alive);
            idle.pop()
        };
        let started = Instant::now();
        let mut instance = match warm {
            Some(instance) => instance,
            None => match Instance::spawn(
                &self.function,
                &self.binary,
                &self.environment,
                self.generation.load(Ordering::Acquire),
            )
            .await
            {
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
            },
        };
        let cold = instance.invocations == 0;
        self.log(&format!("START RequestId: {request_id} Version: $LATEST"));
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

    fn log(&self, line: &str) {
        if !self.quiet {
            println!("[{}] {line}", self.function.name);
        }
    }

    fn log_report(&self, report: &Report, error: Option<&InvokeError>) {
        let id = &report.request_id;
        if let Some(error) = error {
            if !matches!(error, InvokeError::Function(_)) || !self.quiet {
                println!("[{}] {id} ERROR {error}", self.function.name);
            }
        }
        let ms = report.duration.as_secs_f64() * 1000.0;
        let mut line = format!(
            "REPORT RequestId: {id}\tDuration: {ms:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB",
            ms.ceil() as u64,
            self.function.memory_mb
        );
        if let Some(mb) = report.max_memory_mb {
            line.push_str(&format!("\tMax Memory Used: {mb} MB"));
        }
        if let Some(init) = report.init_duration {
            line.push_str(&format!(
                "\tInit Duration: {:.2} ms",
                init.as_secs_f64() * 1000.0
            ));
        }
        self.log(&format!("END RequestId: {id}"));
        self.log(&line);
    }

    /// Retires every instance: idle ones stop now, busy ones when their invocation ends.
    /// The next invocation starts a fresh process from the (rebuilt) binary.
    pub fn restart(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.idle.lock().expect("idle instances").clear();
    }

    pub fn binary(&self) -> &std::path::Path {
        &self.binary
    }

    /// Stops every idle instance; busy ones stop when their invocation ends or the stack exits.
    pub fn shutdown(&self) {
        self.idle.lock().expect("idle instances").clear();
    }
}

/// Every function of the stack, by logical id.
pub struct Functions {
    pools: BTreeMap<String, Arc<Pool>>,
}

impl Functions {
    pub fn new(pools: BTreeMap<String, Pool>) -> Functions {
        let pools = pools
            .into_iter()
            .map(|(id, pool)| (id, Arc::new(pool)))
            .collect();
        Functions { pools }
    }

    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.pools.values().map(Arc::as_ref)
    }

    /// Invokes one function with a JSON event and parses its JSON response.
    pub async fn invoke(&self, logical_id: &str, event: &Value) -> Result<Value, InvokeError> {
        let pool = self
            .pools
            .get(logical_id)
            .ok_or_else(|| InvokeError::NoSuchFunction(logical_id.to_owned()))?;
        let payload = serde_json::to_vec(event).expect("events serialise");
        // The invocation runs in a task of its own: if the caller goes away (a client that
        // hangs up during its handshake), the instance still finishes and stays warm.
        let pool = Arc::clone(pool);
        let (result, _) = tokio::spawn(async move { pool.invoke(payload).await })
            .await
            .map_err(|e| InvokeError::Crashed(format!("the invocation task failed: {e}")))?;
        let body = result?;
        Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub fn shutdown(&self) {
        for pool in self.pools.values() {
            pool.shutdown();
        }
    }
}
