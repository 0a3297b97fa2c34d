//! The WebSocket front: the handshake (with `$connect` run before it completes), frames,
//! AWS's quotas, throttling, route selection, and `$disconnect` on every close.
//!
//! [`handshake`] admits a client (after [`authorize`] runs the `$connect` authorizer, if
//! the template gives it one), [`session`] runs one connection (frames in, queued
//! frames out, limits), [`dispatch`] turns a frame into an invocation, and [`listener`]
//! keeps the request head so events carry header names as the client sent them.

mod authorize;
mod dispatch;
mod handshake;
pub mod listener;
mod session;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::functions::Functions;
use crate::log::Log;
use crate::registry::Registry;
use crate::stack::Authorizer;
use crate::throttle::Throttle;

/// API Gateway's connection limits (tests shorten them), and the local bound on work.
#[derive(Debug, Clone)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub max_connection_duration: Duration,
    /// Invocations one connection may have in flight; beyond it the gateway stops reading
    /// that socket until one finishes, so a flooding client costs bounded memory.
    pub in_flight_per_connection: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            idle_timeout: Duration::from_secs(10 * 60),
            max_connection_duration: Duration::from_secs(2 * 60 * 60),
            in_flight_per_connection: 8,
        }
    }
}

/// What the gateway serves and whom it asks.
pub struct Gateway {
    pub api_id: String,
    pub stage: String,
    pub route_selection_expression: String,
    /// Route key to function logical id.
    pub routes: BTreeMap<String, String>,
    /// The `$connect` authorizer, if the template declares one.
    pub authorizer: Option<Authorizer>,
    pub functions: Arc<Functions>,
    pub registry: Arc<Registry>,
    pub throttle: Throttle,
    pub limits: Limits,
    pub web: crate::web::Web,
    pub shutdown: watch::Receiver<bool>,
    pub sessions: Arc<Sessions>,
    pub log: Log,
}

impl Gateway {
    /// Counts one of API Gateway's own WebSocket metrics (`ConnectCount`, `MessageCount`,
    /// `ClientError`, `IntegrationError`, `ExecutionError`) for this API and stage.
    pub(crate) fn count(&self, name: &str) {
        self.web
            .metrics
            .api_gateway(name, &self.api_id, &self.stage);
    }
}

/// Connection tasks still running, their `$disconnect` included, so that shutdown can
/// wait for the last `$disconnect` before it stops the functions.
#[derive(Default)]
pub struct Sessions {
    running: AtomicUsize,
}

struct Session(Arc<Sessions>);

impl Drop for Session {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Sessions {
    fn enter(self: &Arc<Self>) -> Session {
        self.running.fetch_add(1, Ordering::AcqRel);
        Session(Arc::clone(self))
    }

    /// Waits until no connection task runs, for at most `limit`; says whether they all ended.
    pub async fn wait_until_closed(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.running.load(Ordering::Acquire) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/", get(handshake::handshake))
        .route("/{*path}", get(handshake::handshake))
        .with_state(gateway)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The frame API Gateway sends when it cannot serve a message itself.
fn gateway_error(message: &str, connection_id: &str) -> String {
    json!({"message": message, "connectionId": connection_id, "requestId": crate::ids::gateway_id()}).to_string()
}
