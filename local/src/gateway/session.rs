//! One open connection: client frames become invocations (at most
//! [`Limits::in_flight_per_connection`](super::Limits) at a time; beyond that the socket is
//! not read), queued `@connections` frames are written with a time limit, the idle and
//! lifetime limits close it with 1001, and `$disconnect` runs however it ends.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use base64::Engine;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::{dispatch, now_ms, Gateway};
use crate::events::{self, ConnectionInfo};
use crate::registry::{Connection, Outgoing, Queued, ABNORMAL, CLOSE_TIMEOUT};

/// How long one frame may take to reach a client before the connection is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

type Sink = SplitSink<WebSocket, Message>;

/// Why a connection ended, as `$disconnect` reports it.
struct Closed {
    code: u16,
    reason: String,
}

impl Closed {
    fn new(code: u16, reason: &str) -> Closed {
        Closed {
            code,
            reason: reason.to_owned(),
        }
    }

    fn abnormal() -> Closed {
        Closed::new(1006, "Connection was closed abnormally")
    }
}

pub(super) async fn serve(gateway: Arc<Gateway>, socket: WebSocket, info: ConnectionInfo) {
    let _session = gateway.sessions.enter();
    let (connection, queued) = Connection::new(info.clone());
    let connection = Arc::new(connection);
    gateway.registry.insert(Arc::clone(&connection));
    let closed = run(&gateway, &connection, socket, queued).await;
    // From here on posts to this id are 410: it is closed before it is gone.
    gateway.registry.remove(&info.connection_id);
    if let Some(function) = gateway.routes.get("$disconnect") {
        let event = events::disconnect(&info, closed.code, &closed.reason, now_ms());
        if let Err(error) = gateway.functions.invoke(function, &event).await {
            let id = &info.connection_id;
            gateway
                .log
                .line(&format!("$disconnect for {id} failed: {error}"));
        }
    }
}

async fn run(
    gateway: &Arc<Gateway>,
    connection: &Arc<Connection>,
    socket: WebSocket,
    mut queued: mpsc::UnboundedReceiver<Queued>,
) -> Closed {
    let (mut sink, mut stream) = socket.split();
    let mut shutdown = gateway.shutdown.clone();
    let stopping = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopping);
    let ended = connection.ended();
    tokio::pin!(ended);
    let limits = &gateway.limits;
    let opened = Instant::now();
    let mut idle_deadline = opened + limits.idle_timeout;
    let lifetime_deadline = opened + limits.max_connection_duration;
    let in_flight = Arc::new(Semaphore::new(limits.in_flight_per_connection.max(1)));
    // A frame is read only with a permit in hand: a client with its limit of invocations
    // in flight is not read (TCP pushes back) until one of them finishes.
    let mut permit: Option<OwnedSemaphorePermit> = None;

    loop {
        // Biased, in this order: what ends the connection first, then the limits, then
        // what is owed to the client, and reading last, so no flood of frames can starve
        // shutdown, the timers or the client's own queue.
        tokio::select! {
            biased;
            code = &mut ended => return match code {
                ABNORMAL => Closed::abnormal(),
                code => close(&mut sink, code, "").await,
            },
            _ = &mut stopping => return close(&mut sink, 1001, "Going away").await,
            _ = tokio::time::sleep_until(lifetime_deadline) => return close(&mut sink, 1001, "Going away").await,
            _ = tokio::time::sleep_until(idle_deadline) => return close(&mut sink, 1001, "Going away").await,
            Some(queued) = queued.recv() => {
                idle_deadline = Instant::now() + limits.idle_timeout;
                // The frame's share of the byte budget is held until it is written.
                let Queued { message, budget: _held } = queued;
                let frame = match message {
                    Outgoing::Text(text) => Message::Text(text.into()),
                    Outgoing::Binary(bytes) => Message::Binary(bytes.into()),
                };
                // A client that stops reading must not stall this loop (and with it its
                // timers and everyone posting to it): it is dropped after WRITE_TIMEOUT,
                // or at once when a post gave up on it.
                tokio::select! {
                    written = tokio::time::timeout(WRITE_TIMEOUT, sink.send(frame)) => {
                        if !matches!(written, Ok(Ok(()))) {
                            return Closed::abnormal();
                        }
                    }
                    _ = &mut ended => return Closed::abnormal(),
                }
            }
            acquired = Arc::clone(&in_flight).acquire_owned(), if permit.is_none() => {
                permit = acquired.ok();
            }
            incoming = stream.next(), if permit.is_some() => {
                idle_deadline = Instant::now() + limits.idle_timeout;
                connection.touch();
                let body = match incoming {
                    Some(Ok(Message::Text(text))) => (text.to_string(), false),
                    Some(Ok(Message::Binary(bytes))) => {
                        (base64::engine::general_purpose::STANDARD.encode(&bytes), true)
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(frame))) => {
                        // The codec has queued its answering close frame; send it before leaving.
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
                        return match frame {
                            Some(frame) => Closed::new(frame.code, &frame.reason),
                            None => Closed::new(1005, "Client-side close frame status not set"),
                        };
                    }
                    Some(Err(error)) => {
                        return match close_code(error) {
                            Some((code, reason)) => close(&mut sink, code, reason).await,
                            None => Closed::abnormal(),
                        };
                    }
                    None => return Closed::abnormal(),
                };
                let permit = permit.take().expect("read only with a permit");
                dispatch::dispatch(gateway, connection, body.0, body.1, permit);
            }
        }
    }
}

/// The close code API Gateway answers a read error with, chosen by the error's type;
/// `None` for a connection that simply broke (1006, nothing to send).
fn close_code(error: axum::Error) -> Option<(u16, &'static str)> {
    use tungstenite::error::{Error, ProtocolError};
    match error.into_inner().downcast_ref::<Error>()? {
        Error::Capacity(_) => Some((1009, "Message too big")),
        Error::Utf8(_) => Some((1007, "Invalid frame payload data")),
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        Error::Protocol(_) => Some((1002, "Protocol error")),
        _ => None,
    }
}

/// Sends a close frame and ends the socket, within [`CLOSE_TIMEOUT`] in all.
async fn close(sink: &mut Sink, code: u16, reason: &str) -> Closed {
    let frame = CloseFrame {
        code,
        reason: reason.to_owned().into(),
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        sink.send(Message::Close(Some(frame))).await?;
        sink.close().await
    })
    .await;
    Closed::new(code, reason)
}

#[cfg(test)]
mod tests {
    use super::close_code;
    use tungstenite::error::{CapacityError, Error, ProtocolError};

    #[test]
    fn close_codes_follow_the_kind_of_error() {
        let code = |error: Error| close_code(axum::Error::new(error)).map(|(code, _)| code);
        let too_long = CapacityError::MessageTooLong {
            size: 40_000,
            max_size: 32_768,
        };
        assert_eq!(code(Error::Capacity(too_long)), Some(1009));
        assert_eq!(code(Error::Utf8("bad".into())), Some(1007));
        assert_eq!(
            code(Error::Protocol(ProtocolError::NonZeroReservedBits)),
            Some(1002)
        );
        assert_eq!(
            code(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)),
            None
        );
        assert_eq!(code(Error::ConnectionClosed), None);
        let other = axum::Error::new(std::io::Error::other("not a WebSocket error"));
        assert_eq!(close_code(other), None);
    }
}
