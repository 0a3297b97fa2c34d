//! Function instances and pools: the template's functions run as real processes, each
//! talking to its own [`runtime_api`](crate::runtime_api) endpoint.
//!
//! A pool keeps warm instances and reuses them; when all are busy it starts another, up
//! to a limit, and beyond that invocations wait. An instance that crashes, fails to
//! initialise or outlives its Timeout is killed and never reused; the next invocation
//! gets a fresh one. Every invocation is logged like Lambda logs it: START, END and a
//! REPORT line with the duration and, on a cold start, the init duration.
//!
//! [`environment`] builds a process's variables, [`instance`] runs one process,
//! [`pool`] keeps a function's instances, [`report`] writes Lambda's log lines.

pub mod environment;
mod instance;
pub mod pool;
pub mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde_json::Value;

pub use environment::{lambda_environment, Endpoints};
pub use pool::{Pool, PoolSettings};
pub use report::Report;

use crate::runtime_api::FunctionError;
use crate::stack::{Function, Stack};

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

/// Every function of the stack, by logical id.
pub struct Functions {
    pools: BTreeMap<String, Arc<Pool>>,
}

/// Where the functions' executables are.
#[derive(Debug, Clone)]
pub enum Binaries {
    /// Host builds named after each function's cargo binary (`target/debug`).
    Dir(PathBuf),
    /// `sam build`'s output: `<dir>/<LogicalId>/bootstrap`, the very files `sam deploy`
    /// uploads (arm64 ones run under qemu on other machines).
    SamBuild(PathBuf),
}

impl Binaries {
    pub fn path(&self, function: &Function) -> PathBuf {
        match self {
            Binaries::Dir(dir) => dir.join(&function.binary),
            Binaries::SamBuild(dir) => dir.join(&function.logical_id).join("bootstrap"),
        }
    }
}

impl Functions {
    /// A pool for every function of `stack`, with Lambda's environment pointing at `endpoints`.
    pub fn start(
        stack: &Stack,
        binaries: &Binaries,
        endpoints: &Endpoints,
        settings: &PoolSettings,
    ) -> Result<Functions> {
        let mut pools = BTreeMap::new();
        for (id, function) in &stack.functions {
            let where_from = match binaries {
                Binaries::Dir(_) => "build it or check --bin-dir",
                Binaries::SamBuild(_) => "run sam build or check --sam-build",
            };
            let binary = existing_file(&binaries.path(function)).ok_or_else(|| {
                let path = binaries.path(function);
                anyhow!("{id}: no binary {}; {where_from}", path.display())
            })?;
            // A binary for another machine with no emulator is refused now, not per event.
            crate::process::program(&binary).map_err(|why| anyhow!("{id}: {why}"))?;
            let env = lambda_environment(function, &stack.region, endpoints);
            let pool = Pool::new(function.clone(), binary, env, settings.clone());
            pools.insert(id.clone(), pool);
        }
        Ok(Functions::new(pools))
    }

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

    pub fn pool(&self, logical_id: &str) -> Option<&Pool> {
        self.pools.get(logical_id).map(Arc::as_ref)
    }

    /// Invokes one function with a JSON event and parses its JSON response.
    pub async fn invoke(&self, logical_id: &str, event: &Value) -> Result<Value, InvokeError> {
        let pool = self
            .pools
            .get(logical_id)
            .ok_or_else(|| InvokeError::NoSuchFunction(logical_id.to_owned()))?;
        let payload = serde_json::to_vec(event).expect("events serialise");
        let body = self
            .invoke_bytes(&pool.function().logical_id, payload)
            .await?;
        Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Invokes one function with a payload as it is and returns its response as it is.
    pub async fn invoke_bytes(
        &self,
        logical_id: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, InvokeError> {
        self.invoke_bytes_as(logical_id, crate::ids::uuid(), payload)
            .await
    }

    /// [`Self::invoke_bytes`] with the request id `request_id`.
    pub async fn invoke_bytes_as(
        &self,
        logical_id: &str,
        request_id: String,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, InvokeError> {
        let pool = self
            .pools
            .get(logical_id)
            .ok_or_else(|| InvokeError::NoSuchFunction(logical_id.to_owned()))?;
        // The invocation runs in a task of its own: if the caller goes away (a client that
        // hangs up during its handshake), the instance still finishes and stays warm.
        let pool = Arc::clone(pool);
        let (result, _) = tokio::spawn(async move { pool.invoke_as(request_id, payload).await })
            .await
            .map_err(|e| InvokeError::Crashed(format!("the invocation task failed: {e}")))?;
        result
    }

    pub fn shutdown(&self) {
        for pool in self.pools.values() {
            pool.shutdown();
        }
    }
}

fn existing_file(path: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok().filter(|p| p.is_file())
}
