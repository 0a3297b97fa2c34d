//! Load through the real local stack: many clients, several of them talking at once;
//! every live client must receive every message exactly once (counted per sender and
//! sequence number), the gateway's memory is reported, and no process outlives the stack.
//!
//! Bounded for CI by default; `LOAD_CLIENTS`, `LOAD_SENDERS` and `LOAD_SECONDS` make it a
//! longer soak by hand (each sender sends one message every 2 s).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Options, Stack};
use futures::stream::{self, StreamExt};
use futures::SinkExt;
use tokio_tungstenite::tungstenite::Message;

fn rss_mb(pid: u32) -> f64 {
    common::rss_kb(pid) as f64 / 1024.0
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test]
async fn every_client_receives_every_message_exactly_once_under_load() {
    let clients = setting("LOAD_CLIENTS", 2000);
    let senders = setting("LOAD_SENDERS", 10).min(clients);
    let seconds = setting("LOAD_SECONDS", 20);
    let rounds = seconds.div_ceil(2);
    let total = senders * rounds;

    let mut options = Options::project();
    options.quiet = true;
    options.throttle = false;
    options.max_instances = 10;
    // As a process of its own, so its memory is measured apart from the clients'.
    let stack = Stack::command(options).await;
    let pid = stack.pid();
    let rss_start = rss_mb(pid);

    let started = Instant::now();
    let sockets: Vec<_> = stream::iter(0..clients)
        .map(|_| async { stack.client().await.socket })
        .buffer_unordered(64)
        .collect()
        .await;
    let connect_secs = started.elapsed().as_secs_f64();
    let rss_connected = rss_mb(pid);

    let received = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    let mut sinks = Vec::new();
    for (n, socket) in sockets.into_iter().enumerate() {
        let (sink, mut stream) = socket.split();
        if n < senders {
            sinks.push(sink);
        }
        let received = Arc::clone(&received);
        let mut stopped = stopped.clone();
        readers.push(tokio::spawn(async move {
            let mut seen: HashMap<String, u32> = HashMap::new();
            loop {
                tokio::select! {
                    frame = stream.next() => match frame {
                        Some(Ok(Message::Text(text))) => {
                            let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
                            // Arrivals are announced while the room is small (PresenceLimit).
                            if frame["type"] == "joined" || frame["type"] == "left" {
                                continue;
                            }
                            assert_eq!(frame["type"], "message", "{frame}");
                            *seen.entry(frame["message"].as_str().unwrap().to_owned()).or_default() += 1;
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Ok(_)) => {}
                        _ => return seen,
                    },
                    _ = stopped.changed() => return seen,
                }
            }
        }));
    }

    let sending = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(2));
    for round in 0..rounds {
        ticker.tick().await;
        for (sender, sink) in sinks.iter_mut().enumerate() {
            let body = serde_json::json!({"action": "onMessage", "message": format!("load-{sender}-{round}")});
            sink.send(Message::text(body.to_string()))
                .await
                .expect("send");
        }
    }
    let expected = clients * total;
    let deadline = Instant::now() + Duration::from_secs(180);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivery_secs = sending.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_end = rss_mb(pid);
    let _ = stop.send(true);

    let mut lost = 0;
    let mut duplicated = 0;
    for reader in readers {
        let seen = reader.await.unwrap();
        for sender in 0..senders {
            for round in 0..rounds {
                match seen
                    .get(&format!("load-{sender}-{round}"))
                    .copied()
                    .unwrap_or(0)
                {
                    0 => lost += 1,
                    1 => {}
                    n => duplicated += n as usize - 1,
                }
            }
        }
        assert_eq!(seen.len(), total, "no message this test did not send");
    }
    eprintln!(
        "load: {clients} clients, {senders} senders × {rounds} rounds = {total} messages, {expected} deliveries \
         in {delivery_secs:.1} s ({:.0}/s); connected in {connect_secs:.1} s; lost {lost}, duplicated {duplicated}; \
         gateway RSS {rss_start:.1} MB at start, {rss_connected:.1} MB connected, {rss_end:.1} MB at end",
        expected as f64 / delivery_secs
    );
    assert_eq!(lost, 0, "every live client receives every message");
    assert_eq!(duplicated, 0, "and none twice");

    drop(sinks);
    let children: Vec<u32> = common::children_of(pid)
        .into_iter()
        .map(|(child, _)| child)
        .collect();
    assert!(stack.stop().await, "a clean exit on Ctrl-C");
    common::eventually("no function process outlives the stack", || async {
        children.iter().all(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .map(|stat| {
                    stat.rsplit_once(')')
                        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
                })
                .unwrap_or(true)
        })
    })
    .await;
}
