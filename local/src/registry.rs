//! The open WebSocket connections: what `@connections` posts to and the gateway serves.
//!
//! Each client has a bounded outgoing buffer ([`QUEUE_BYTES`]). A post that does not fit
//! is refused at once with [`SendError::Full`] — API Gateway's `429 LimitExceededException`
//! when "the WebSocket client side buffer is full" — and the connection stays open; the
//! poster may try again once the client has read. `410 Gone` is only ever the answer for a
//! connection that is closed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::events::ConnectionInfo;

/// API Gateway's limit on one WebSocket message, in either direction.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// API Gateway's limit on one WebSocket frame; a larger one closes the connection (1009).
pub const MAX_FRAME_BYTES: usize = 32 * 1024;

/// Bytes queued for one client; a post past them is refused (429): a slow reader's budget.
pub const QUEUE_BYTES: usize = 1024 * 1024;

/// How long a post waits for a closing connection to finish closing: longer than the
/// gateway's whole closing handshake ([`CLOSE_TIMEOUT`]), so it never answers 410 while the
/// connection is still registered.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// How long the gateway's closing handshake with a client may take, all in all.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The close code for a connection dropped without a closing handshake.
pub const ABNORMAL: u16 = 1006;

/// What the gateway is asked to write to one client.
#[derive(Debug)]
pub enum Outgoing {
    Text(String),
    Binary(Vec<u8>),
}

impl Outgoing {
    fn len(&self) -> usize {
        match self {
            Outgoing::Text(text) => text.len(),
            Outgoing::Binary(bytes) => bytes.len(),
        }
    }
}

/// A frame in a client's queue, holding its share of the queue's byte budget until written.
pub struct Queued {
    pub message: Outgoing,
    pub budget: OwnedSemaphorePermit,
}

/// The connection is closed: API Gateway's `GoneException`.
#[derive(Debug)]
pub struct Gone;

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The connection is closed (`410 GoneException`).
    Gone,
    /// The client's buffer is full (`429 LimitExceededException`); it stays open.
    Full,
}

/// One open connection, as the management API sees it.
pub struct Connection {
    pub info: ConnectionInfo,
    outgoing: mpsc::UnboundedSender<Queued>,
    /// [`QUEUE_BYTES`] permits; a queued frame holds as many as it has bytes.
    budget: Arc<Semaphore>,
    last_active_ms: AtomicI64,
    /// Set to make the connection's task end it: [`ABNORMAL`] drops the client, any other
    /// code closes it with that code.
    end: watch::Sender<Option<u16>>,
    /// Raised by the connection's task once it has left the registry.
    closed: watch::Sender<bool>,
}

impl Connection {
    /// A connection and the receiving end of its outgoing queue.
    pub fn new(info: ConnectionInfo) -> (Connection, mpsc::UnboundedReceiver<Queued>) {
        let (outgoing, queued) = mpsc::unbounded_channel();
        let now = info.connected_at_ms;
        let connection = Connection {
            info,
            outgoing,
            budget: Arc::new(Semaphore::new(QUEUE_BYTES)),
            last_active_ms: AtomicI64::new(now),
            end: watch::channel(None).0,
            closed: watch::channel(false).0,
        };
        (connection, queued)
    }

    pub fn touch(&self) {
        self.last_active_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    pub fn last_active_ms(&self) -> i64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }

    /// Queues a frame for the client, or says why not: [`SendError::Full`] when its
    /// buffer has no room for it (nothing waits, nothing is closed), [`SendError::Gone`]
    /// once it is closed.
    pub async fn send(&self, message: Outgoing) -> Result<(), SendError> {
        if *self.closed.borrow() {
            return Err(SendError::Gone);
        }
        let cost = message.len().clamp(1, QUEUE_BYTES) as u32;
        let budget = match Arc::clone(&self.budget).try_acquire_many_owned(cost) {
            Ok(budget) => budget,
            Err(tokio::sync::TryAcquireError::NoPermits) => return Err(SendError::Full),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(SendError::Gone),
        };
        let queued = Queued { message, budget };
        if self.outgoing.send(queued).is_err() {
            self.wait_closed().await;
            return Err(SendError::Gone);
        }
        Ok(())
    }

    /// Bytes the client's buffer holds now (of [`QUEUE_BYTES`]).
    pub fn buffered(&self) -> usize {
        QUEUE_BYTES - self.budget.available_permits()
    }

    /// Asks the connection's task to end it with `code` (the first request wins).
    fn end_with(&self, code: u16) {
        self.end.send_if_modified(|end| {
            end.is_none() && {
                *end = Some(code);
                true
            }
        });
    }

    /// `DELETE @connections/{id}`: closes the connection with 1000, ahead of whatever is
    /// queued, and returns once it is closed; [`Gone`] if it already was.
    pub async fn close(&self) -> Result<(), Gone> {
        if *self.closed.borrow() {
            return Err(Gone);
        }
        self.end_with(1000);
        self.wait_closed().await;
        Ok(())
    }

    /// The code the connection is to be ended with, once someone asks.
    pub async fn ended(&self) -> u16 {
        let mut end = self.end.subscribe();
        let code = end.wait_for(Option::is_some).await.map(|code| *code);
        code.ok().flatten().unwrap_or(ABNORMAL)
    }

    /// Marks the connection closed; posts from now on are answered [`Gone`].
    pub fn mark_closed(&self) {
        self.closed.send_replace(true);
    }

    async fn wait_closed(&self) {
        let mut closed = self.closed.subscribe();
        let _ = tokio::time::timeout(CLOSE_WAIT, closed.wait_for(|closed| *closed)).await;
    }
}

/// Open connections by id.
#[derive(Default)]
pub struct Registry {
    connections: RwLock<HashMap<String, Arc<Connection>>>,
}

impl Registry {
    pub fn insert(&self, connection: Arc<Connection>) {
        let id = connection.info.connection_id.clone();
        self.connections
            .write()
            .expect("registry")
            .insert(id, connection);
    }

    /// Removes the connection and marks it closed.
    pub fn remove(&self, id: &str) {
        let removed = self.connections.write().expect("registry").remove(id);
        if let Some(connection) = removed {
            connection.mark_closed();
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Connection>> {
        self.connections.read().expect("registry").get(id).cloned()
    }

    /// Every open connection, at this moment.
    pub fn all(&self) -> Vec<Arc<Connection>> {
        let connections = self.connections.read().expect("registry");
        connections.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.connections.read().expect("registry").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
