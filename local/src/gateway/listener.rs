//! The WebSocket API's listener. It records the head of each connection's first request
//! so that the `$connect` event can carry header names with the client's casing, as API
//! Gateway passes them (the HTTP stack itself lowercases every name), and it closes each
//! connection gracefully: a server-side close (1009 on an oversize frame, say) reaches a
//! client that is still sending, instead of being lost to a TCP reset.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Most bytes of a request head that are kept.
const MAX_HEAD: usize = 16 * 1024;

/// How long a closed connection goes on reading (and discarding) what the client still
/// sends, and how much of it, before the socket is let go.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// A TCP listener whose streams remember the head of their first request.
pub struct Listener(pub TcpListener);

impl axum::serve::Listener for Listener {
    type Io = Recorded;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Recorded, SocketAddr) {
        let (stream, address) = axum::serve::Listener::accept(&mut self.0).await;
        let head = Arc::new(Mutex::new(Head::default()));
        let stream = Some(stream);
        (Recorded { stream, head }, address)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

#[derive(Default)]
struct Head {
    bytes: Vec<u8>,
    complete: bool,
}

/// A client's TCP stream, recording what it reads until the first blank line.
pub struct Recorded {
    /// Taken when dropped, to linger.
    stream: Option<TcpStream>,
    head: Arc<Mutex<Head>>,
}

impl Recorded {
    fn stream(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(
            self.stream
                .as_mut()
                .expect("the stream is taken only when dropped"),
        )
    }
}

impl Drop for Recorded {
    /// Closing a socket with unread data sends a reset, which can destroy the close frame
    /// just written before the client reads it. So the write side is shut down and what
    /// the client still sends is read and dropped, for a short while, before letting go.
    fn drop(&mut self) {
        let (Some(mut stream), Ok(runtime)) =
            (self.stream.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            let _ = stream.shutdown().await;
            let mut discarded = 0;
            let mut buffer = [0u8; 4096];
            let deadline = tokio::time::Instant::now() + LINGER;
            while discarded < LINGER_BYTES {
                match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
                    Ok(Ok(read)) if read > 0 => discarded += read,
                    _ => break,
                }
            }
        });
    }
}

impl AsyncRead for Recorded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = self.stream().poll_read(cx, buf);
        let mut head = self.head.lock().expect("request head");
        if !head.complete {
            let room = MAX_HEAD.saturating_sub(head.bytes.len());
            let new = &buf.filled()[before..];
            head.bytes.extend_from_slice(&new[..new.len().min(room)]);
            head.complete =
                head.bytes.windows(4).any(|w| w == b"\r\n\r\n") || head.bytes.len() >= MAX_HEAD;
        }
        result
    }
}

impl AsyncWrite for Recorded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}

/// What a handler learns of its connection: the peer and the recorded request head.
#[derive(Clone)]
pub struct Peer {
    pub address: SocketAddr,
    head: Arc<Mutex<Head>>,
}

impl Connected<IncomingStream<'_, Listener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Peer {
        Peer {
            address: *stream.remote_addr(),
            head: Arc::clone(&stream.io().head),
        }
    }
}

impl Peer {
    /// Lowercase header name to the name as the client wrote it, from the request head.
    pub fn header_names(&self) -> HashMap<String, String> {
        let head = self.head.lock().expect("request head");
        original_names(&head.bytes)
    }
}

/// Header names as written in a raw HTTP/1 request head, keyed by their lowercase form.
pub fn original_names(head: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(head)
        .split("\r\n")
        .skip(1)
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .map(|(name, _)| (name.trim().to_ascii_lowercase(), name.trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_keep_the_casing_of_the_request_head() {
        let head = b"GET /Test HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Key: k\r\nX-custom-Thing: 1\r\n\r\nbody: no";
        let names = super::original_names(head);
        assert_eq!(names["sec-websocket-key"], "Sec-WebSocket-Key");
        assert_eq!(names["x-custom-thing"], "X-custom-Thing");
        assert_eq!(names["host"], "Host");
        assert!(!names.contains_key("body"));
    }
}
