//! `chat-bench`: the project's figures, measured side by side in one run against the real
//! local stack, written to BENCHMARKS.md.
//!
//! 1. Fan-out: N clients, one sends; time until all N have the message, next to the raw
//!    limit (the gateway writing the same frame to the same sockets, no Lambda, no
//!    DynamoDB, no per-recipient HTTP request).
//!    With it, onMessage's CPU time per delivery (`/proc`), and the same for a Node.js
//!    peer running the official sample's sendmessage algorithm; and one message to a
//!    room of 10 000, posted inline by onMessage and handed to FanoutFunction in chunks.
//! 2. Rooms: one message to a 100-member room among 1 000 and among 10 000 connections;
//!    delivery time and DynamoDB items read must not grow with the total.
//! 3. Cold start of every bootstrap, next to the Node.js peer (AWS SDK v3).
//! 4. Warm latency per route through the gateway.
//! 5. Capacity: idle connections, gateway memory, new connections per second.
//! 6. Artifacts: the arm64 bootstraps `sam build` made, raw and zipped.
//!
//! `--quick` runs everything with tiny numbers: the test suite does that so the
//! benchmark cannot rot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chat_local::functions::{lambda_environment, Endpoints, Pool, PoolSettings};
use chat_local::stack::Stack as TemplateStack;
use chat_local::template::Template;
use e2e::harness::{self, Client, Options, Stack};
use futures::stream::{self, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

struct Settings {
    sizes: Vec<usize>,
    /// N for the Rust vs Node.js CPU comparison.
    peer_sizes: Vec<usize>,
    /// Members of the inline-vs-chunked room, and its messages.
    big_room: usize,
    big_messages: usize,
    /// FanoutChunkSize of the chunked case.
    big_chunk: usize,
    /// (total connections, rooms) for the rooms section; the measured room has total ÷ rooms.
    rooms: Vec<(usize, usize)>,
    messages: usize,
    cold_runs: usize,
    warm_runs: usize,
    idle: Vec<usize>,
    out: PathBuf,
}

impl Settings {
    fn from_args() -> Settings {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let out = args
            .iter()
            .position(|a| a == "--out")
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from)
            .unwrap_or_else(|| harness::repo().join("BENCHMARKS.md"));
        let sizes = std::env::var("BENCH_SIZES").ok().map(|v| {
            v.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect::<Vec<usize>>()
        });
        if let Some(sizes) = sizes.filter(|s| !s.is_empty()) {
            return Settings {
                sizes,
                peer_sizes: vec![100, 1000, 5000],
                big_room: 10_000,
                big_messages: 5,
                big_chunk: 2000,
                rooms: vec![(1000, 10), (10_000, 100)],
                messages: 20,
                cold_runs: 20,
                warm_runs: 50,
                idle: vec![1000, 10000],
                out,
            };
        }
        if quick {
            Settings {
                sizes: vec![3, 10],
                peer_sizes: vec![10],
                big_room: 30,
                big_messages: 2,
                big_chunk: 10,
                rooms: vec![(20, 2), (100, 10)],
                messages: 3,
                cold_runs: 2,
                warm_runs: 3,
                idle: vec![20],
                out,
            }
        } else {
            Settings {
                sizes: vec![10, 100, 1000, 5000],
                peer_sizes: vec![100, 1000, 5000],
                big_room: 10_000,
                big_messages: 5,
                big_chunk: 2000,
                rooms: vec![(1000, 10), (10_000, 100)],
                messages: 20,
                cold_runs: 20,
                warm_runs: 50,
                idle: vec![1000, 10000],
                out,
            }
        }
    }
}

/// What keeping one message costs: its writes, and the latency of keeping it.
struct KeepCost {
    label: &'static str,
    writes: usize,
    p50_ms: f64,
    p95_ms: f64,
}

/// Keeping `n` messages in the stack's messages table (dynalite), one after another, three
/// ways side by side: as before `seq` (one `PutItem`), with `seq` (its `UpdateItem`, then the
/// message's `PutItem` beside its id's, at once, as `onMessage` writes them), and with `seq`
/// and a `clientId` (the claim, the number, the message and its id, the settlement) — what
/// `onMessage` waits for before its fan-out starts.
async fn seq_cost(stack: &Stack, table: &str, n: usize) -> Vec<KeepCost> {
    let history = chat::stores::history::MessageStore::new(
        stack.dynamodb().await,
        format!("{table}-messages"),
    );
    let frame = format!(r#"{{"type":"message","message":"{}"}}"#, "x".repeat(200));
    let now_ms = || chrono::Utc::now().timestamp_millis();
    let expires = chrono::Utc::now().timestamp() + 3600;
    let mut costs = Vec::new();
    for (label, writes) in [
        ("before seq: PutItem", 1),
        ("seq: UpdateItem + PutItem ∥ PutItem (id)", 3),
        (
            "seq + clientId: PutItem (claim) + UpdateItem + PutItem ∥ PutItem (id) + UpdateItem",
            5,
        ),
    ] {
        let room = harness::unique("bench-seq");
        let mut samples = Vec::with_capacity(n);
        for i in 0..n {
            let started = Instant::now();
            match writes {
                1 => history
                    .put(&room, i as u64 + 1, &frame, now_ms(), expires)
                    .await
                    .unwrap(),
                3 => {
                    let seq = history.take_seq(&room, now_ms()).await.unwrap();
                    let id = format!("m{i}");
                    tokio::try_join!(
                        history.put(&room, seq, &frame, now_ms(), expires),
                        history.index(&room, &id, seq, "c#bench", expires),
                    )
                    .unwrap();
                }
                _ => {
                    let client_id = format!("c{i}");
                    let claim = history
                        .claim(&room, &client_id, now_ms(), expires)
                        .await
                        .unwrap();
                    assert_eq!(claim, chat::stores::history::Claim::New);
                    let seq = history.take_seq(&room, now_ms()).await.unwrap();
                    let id = format!("m{i}");
                    tokio::try_join!(
                        history.put(&room, seq, &frame, now_ms(), expires),
                        history.index(&room, &id, seq, "c#bench", expires),
                    )
                    .unwrap();
                    history
                        .settle(&room, &client_id, seq, &frame)
                        .await
                        .unwrap();
                }
            }
            samples.push(started.elapsed());
        }
        let (p50_ms, p95_ms) = percentiles(&samples);
        costs.push(KeepCost {
            label,
            writes,
            p50_ms,
            p95_ms,
        });
    }
    costs
}

/// p50 and p95 of a sample, in milliseconds.
fn percentiles(samples: &[Duration]) -> (f64, f64) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    (at(0.50), at(0.95))
}

/// Connects `n` clients, `concurrency` handshakes at a time; returns them and the elapsed time.
async fn connect_many(url: &str, n: usize, concurrency: usize) -> (Vec<Client>, Duration) {
    let started = Instant::now();
    let clients: Vec<Client> = stream::iter(0..n)
        .map(|_| async { Client::connect(url).await.expect("handshake") })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    (clients, started.elapsed())
}

/// Keeps the first client as the sender and turns the others into reader tasks that
/// report each text frame's arrival; the readers close their sockets when `stop` fires.
fn listen(
    clients: Vec<Client>,
) -> (
    Client,
    mpsc::UnboundedReceiver<(String, Instant)>,
    tokio::sync::watch::Sender<bool>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut clients = clients.into_iter();
    let sender = clients.next().expect("at least one client");
    for client in clients {
        let tx = tx.clone();
        let mut stopped = stopped.clone();
        let mut socket = client.socket;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = socket.next() => match message {
                        Some(Ok(Message::Text(text))) => { let _ = tx.send((text.to_string(), Instant::now())); }
                        Some(Ok(_)) => {}
                        _ => return,
                    },
                    _ = stopped.changed() => {
                        let _ = socket.close(None).await;
                        return;
                    }
                }
            }
        });
    }
    (sender, rx, stop)
}

/// Waits until `count` frames containing `marker` arrived; returns when the last did.
async fn await_all(
    rx: &mut mpsc::UnboundedReceiver<(String, Instant)>,
    marker: &str,
    count: usize,
) -> Instant {
    let mut seen = 0;
    let mut last = Instant::now();
    while seen < count {
        let (text, at) = tokio::time::timeout(Duration::from_secs(120), rx.recv())
            .await
            .expect("every client receives within 120 s")
            .expect("readers alive");
        if text.contains(marker) {
            seen += 1;
            last = at;
        }
    }
    last
}

struct FanOut {
    n: usize,
    lambda: (f64, f64),
    raw: (f64, f64),
    /// CPU time (user + system) of the function processes per delivery, in µs.
    cpu_us: f64,
}

/// User + system CPU seconds so far of `parent`'s children named in `names` (from
/// `/proc/<pid>/stat`, fields 14 and 15).
fn children_cpu(parent: u32, names: &[&str]) -> f64 {
    // SAFETY: sysconf only reads a constant of the system.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    harness::children_of(parent)
        .into_iter()
        .filter(|(_, name)| names.contains(&name.as_str()))
        .filter_map(|(pid, _)| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
            let user: u64 = fields.get(11)?.parse().ok()?;
            let system: u64 = fields.get(12)?.parse().ok()?;
            Some((user + system) as f64 / ticks_per_second)
        })
        .sum()
}

/// Whose CPU a fan-out spends: the stack's process and its function binaries' names.
struct Functions<'a> {
    parent: u32,
    names: &'a [&'a str],
}

/// The function binaries a broadcast runs in.
const RUST_FANOUT: &[&str] = &["chat-on-message", "chat-fanout"];

async fn fan_out(stack: &Stack, n: usize, messages: usize, cpu: &Functions<'_>) -> FanOut {
    fan_out_with(stack, n, messages, cpu, true).await
}

/// One client of `n + 1` sends `messages` messages (each reaching all `n + 1`); with
/// `raw`, each is followed by the raw limit's broadcast of the same frame.
async fn fan_out_with(
    stack: &Stack,
    n: usize,
    messages: usize,
    cpu: &Functions<'_>,
    with_raw: bool,
) -> FanOut {
    let (clients, _) = connect_many(&stack.ws_url, n + 1, 64).await;
    // Client 0 sends and is not timed (it also gets its own message); the other n are timed.
    let (mut sender, mut rx, stop) = listen(clients);
    let http = RawBroadcast::new(&stack.connections_url);
    let mut lambda = Vec::new();
    let mut raw = Vec::new();
    let mut cpu_seconds = 0.0;
    for i in 0..messages {
        let marker = format!("bench-{n}-{i}-");
        let cpu_before = children_cpu(cpu.parent, cpu.names);
        let started = Instant::now();
        sender.say(&marker).await;
        lambda.push(await_all(&mut rx, &marker, n).await - started);
        let _ = sender.json().await;
        // The function answers after its last post; give its CPU time a moment to settle.
        tokio::time::sleep(Duration::from_millis(50)).await;
        cpu_seconds += children_cpu(cpu.parent, cpu.names) - cpu_before;
        if !with_raw {
            continue;
        }

        let marker = format!("raw-{n}-{i}-");
        let started = Instant::now();
        http.send(&format!(r#"{{"type":"message","message":"{marker}"}}"#))
            .await;
        raw.push(await_all(&mut rx, &marker, n).await - started);
        let _ = sender.json().await;
    }
    let _ = sender.socket.close(None).await;
    let _ = stop.send(true);
    FanOut {
        n,
        lambda: percentiles(&lambda),
        raw: if raw.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            percentiles(&raw)
        },
        cpu_us: cpu_seconds * 1e6 / (messages * (n + 1)) as f64,
    }
}

/// CPU seconds this thread has used.
fn thread_cpu_seconds() -> f64 {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    time.tv_sec as f64 + time.tv_nsec as f64 / 1e9
}

/// CPU µs per signed `@connections` post, the frame's hash computed once in each:
/// (the former hand-written signer, the chat's day key on aws-sigv4, aws-sigv4's whole
/// `http_request` signer), alternated in rounds.
fn signing_cost(posts: usize) -> [f64; 3] {
    use chat::delivery::sigv4;
    use e2e::former_signer as former;
    use std::time::SystemTime;
    let (id, secret, token) = (
        "ASIAEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "session-token-of-a-lambda-role",
    );
    let (host, region) = (
        "abcdef1234.execute-api.us-east-1.amazonaws.com",
        "us-east-1",
    );
    let hash = former::payload_hash(br#"{"type":"message","message":"Hello everyone"}"#);
    let now = SystemTime::now();
    let former_key = former::signing_key(
        secret,
        &chrono::Utc::now().format("%Y%m%d").to_string(),
        region,
    );
    let day_key = sigv4::DayKey::new(secret, now, region, sigv4::SERVICE);
    let identity =
        aws_credential_types::Credentials::new(id, secret, Some(token.into()), None, "bench")
            .into();
    let amz_date = || chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut seconds = [0.0f64; 3];
    let mut sink = 0usize;
    let rounds = 5;
    let per_round = (posts / rounds).max(1);
    for round in 0..rounds {
        let path = |i: usize| {
            format!(
                "/Test/@connections/{}",
                sigv4::encode_segment(&format!("c{round}-{i}="))
            )
        };
        let started = thread_cpu_seconds();
        for i in 0..per_round {
            let authorization = former::authorization(
                &former_key,
                &former::Identity {
                    access_key_id: id,
                    session_token: Some(token),
                    region,
                },
                &former::Request {
                    host,
                    path: &path(i),
                    amz_date: &amz_date(),
                    payload_hash: &hash,
                },
            );
            sink += authorization.len();
        }
        seconds[0] += thread_cpu_seconds() - started;
        let started = thread_cpu_seconds();
        for i in 0..per_round {
            let authorization = day_key.authorization(&sigv4::Post {
                access_key_id: id,
                session_token: Some(token),
                region,
                host,
                path: &path(i),
                amz_date: &amz_date(),
                payload_hash: &hash,
            });
            sink += authorization.len();
        }
        seconds[1] += thread_cpu_seconds() - started;
        let started = thread_cpu_seconds();
        for i in 0..per_round {
            let url = format!("https://{host}{}", path(i));
            let headers = sigv4::sign_headers(
                &identity,
                region,
                sigv4::SERVICE,
                SystemTime::now(),
                &sigv4::Request {
                    method: "POST",
                    url: &url,
                    headers: &[("host", host)],
                    payload_hash: &hash,
                },
            )
            .expect("signed");
            sink += headers.len();
        }
        seconds[2] += thread_cpu_seconds() - started;
    }
    assert!(sink > 0);
    seconds.map(|s| s * 1e6 / (per_round * rounds) as f64)
}

/// The fan-out chart: p50 against room size for Rust, the Node.js peer and the raw limit.
fn fanout_chart(fanouts: &[FanOut], peers: &[(FanOut, FanOut)]) -> Option<String> {
    use e2e::chart::{log_log, Series};
    let points = |pick: &dyn Fn(&FanOut) -> f64, from: Vec<&FanOut>| -> Vec<(f64, f64)> {
        from.into_iter().map(|f| (f.n as f64, pick(f))).collect()
    };
    log_log(
        "One message to N clients: p50 time until all have it",
        "N (clients in the room)",
        "p50 ms",
        &[
            Series {
                name: "Rust onMessage".into(),
                color: "#c0392b",
                points: points(&|f| f.lambda.0, fanouts.iter().collect()),
            },
            Series {
                name: "Node.js peer".into(),
                color: "#2e86c1",
                points: points(&|f| f.lambda.0, peers.iter().map(|(_, p)| p).collect()),
            },
            Series {
                name: "raw limit".into(),
                color: "#7f8c8d",
                points: points(&|f| f.raw.0, fanouts.iter().collect()),
            },
        ],
    )
}

/// The cost and ceiling model on AWS from the measured CPU per delivery: the CPU-bound
/// floor at a MemorySize's share of a vCPU, the network-bound floor at
/// `FanoutConcurrency` posts in flight, and the account's request-rate quota.
fn aws_model(cpu_us: f64) -> Vec<String> {
    const RTT_MS: f64 = 30.0; // a post's round trip on AWS (20–50 ms)
    const CONCURRENCY: f64 = 64.0; // FanoutConcurrency's default
    const QUOTA: f64 = 10_000.0; // account-level API Gateway requests per second
    const CHUNK: f64 = 2_000.0; // FanoutChunkSize's default
    const TIMEOUT_S: f64 = 29.0; // onMessage's Timeout
    const GB_SECOND: f64 = 0.000_013_333_4; // Lambda arm64, us-east-1
    let network_us = RTT_MS * 1000.0 / CONCURRENCY;
    let mut lines = vec![
        "## On AWS, on paper: CPU share, ceilings and cost".to_owned(),
        String::new(),
        format!("From the measured CPU per delivery of the largest fan-out above ({cpu_us:.1} µs here, on x86; Graviton's per-core speed is similar but not the same): a Lambda of M MB gets M/1769 of a vCPU, so its CPU-bound floor is {cpu_us:.1} µs × 1769/M per delivery; the network-bound floor is a post's round trip (~{RTT_MS:.0} ms on AWS) over `FanoutConcurrency` ({CONCURRENCY:.0}) in flight = {network_us:.0} µs. A delivery takes the larger of the two. Inline = one invocation posts all (29 s Timeout); chunked = chunks of {CHUNK:.0} to parallel FanoutFunction workers, so the chunk's time, but never faster than the account's API Gateway quota of {QUOTA:.0} requests/s (`@connections` posts count against it) allows. Cost = Lambda GB-seconds per million deliveries (arm64, us-east-1; API Gateway's own $1.00 per million messages is the same whatever the function does)."),
        String::new(),
        "| MemorySize | CPU floor µs/delivery | µs/delivery (max of CPU, network) | 10 000 inline s | 50 000 inline s | 50 000 chunked s | Lambda $ per million deliveries |".to_owned(),
        "|---|---|---|---|---|---|---|".to_owned(),
    ];
    let mut pick = None;
    for memory in [128.0_f64, 256.0, 512.0, 1024.0, 1769.0] {
        let cpu_floor = cpu_us * (1769.0 / memory).max(1.0);
        let per = cpu_floor.max(network_us);
        let inline = |n: f64| {
            let seconds = n * per / 1e6;
            if seconds > TIMEOUT_S {
                format!("{seconds:.1} (past the 29 s Timeout)")
            } else {
                format!("{seconds:.1}")
            }
        };
        let chunked = (CHUNK * per / 1e6).max(50_000.0 / QUOTA);
        let cost = memory / 1024.0 * per / 1e6 * 1e6 * GB_SECOND;
        if pick.is_none() && cpu_floor <= network_us {
            pick = Some(memory);
        }
        lines.push(format!(
            "| {memory:.0} MB | {cpu_floor:.0} | {per:.0} | {} | {} | {chunked:.1} | ${cost:.4} |",
            inline(10_000.0),
            inline(50_000.0)
        ));
    }
    lines.push(String::new());
    let quota_s = 50_000.0 / QUOTA;
    lines.push(match pick {
        Some(memory) if memory <= 128.0 => format!("At this CPU per delivery even 128 MB is network-bound: more memory would cost more per delivery and buy no speed, so the template keeps 128 MB for onMessage and FanoutFunction. One invocation reaches 10 000 members well within onMessage's 29 s Timeout and 50 000 only just; chunked, 50 000 members are bounded by the account's quota ({quota_s:.0} s at {QUOTA:.0} requests/s), not by the functions."),
        Some(memory) => format!("The smallest MemorySize at which the fan-out is network-bound rather than CPU-bound is {memory:.0} MB: below it every delivery waits for CPU, above it more memory costs more per delivery and buys no speed, so set onMessage and FanoutFunction to {memory:.0} MB for large rooms. Chunked, 50 000 members are bounded by the account's quota ({quota_s:.0} s at {QUOTA:.0} requests/s), not by the functions."),
        None => "Even a full vCPU leaves the fan-out CPU-bound at this CPU per delivery.".to_owned(),
    });
    lines
}

/// A directory of the release binaries where `chat-on-message` is the Node.js peer of
/// onMessage (the official sample's sendmessage algorithm, AWS SDK v3).
fn node_peer_binaries() -> PathBuf {
    let dir = std::env::temp_dir().join(harness::unique("node-peer-bin"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let release = harness::bin_dir();
    for entry in std::fs::read_dir(&release).expect("binaries").flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("chat-") && entry.path().is_file() {
            let _ = std::os::unix::fs::symlink(entry.path(), dir.join(&name));
        }
    }
    let peer = harness::repo().join("tests/node-peer/sendmessage.mjs");
    let script = dir.join("chat-on-message");
    let _ = std::fs::remove_file(&script);
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexec node --no-warnings {}\n", peer.display()),
    )
    .expect("write the peer's bootstrap");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

struct RoomCost {
    total: usize,
    rooms: usize,
    p: (f64, f64),
    items_read: Vec<u64>,
}

/// `total` clients spread evenly over `rooms` rooms; one member of room `r0` sends
/// `messages` messages, timed until every other member of `r0` has each.
async fn room_cost(stack: &Stack, total: usize, rooms: usize, messages: usize) -> RoomCost {
    let tag = harness::unique("r");
    let urls: Vec<String> = (0..total)
        .map(|n| format!("{}/Test?room={tag}-{}", stack.ws_url, n % rooms))
        .collect();
    let clients: Vec<Client> = stream::iter(urls)
        .map(|url| async move { Client::connect(&url).await.expect("handshake") })
        .buffered(64)
        .collect()
        .await;
    // Clients 0, rooms, 2·rooms, … are room 0's members; the rest stay connected, idle.
    let (measured, others): (Vec<_>, Vec<_>) = clients
        .into_iter()
        .enumerate()
        .partition(|(n, _)| n % rooms == 0);
    let members: Vec<Client> = measured.into_iter().map(|(_, c)| c).collect();
    let receivers = members.len() - 1;
    let (mut sender, mut rx, stop) = listen(members);
    let mut samples = Vec::new();
    let mut items_read = Vec::new();
    let room = format!("\"room\":\"{tag}-0\"");
    for i in 0..messages {
        let marker = format!("room-{total}-{i}-");
        let started = Instant::now();
        sender.say(&marker).await;
        samples.push(await_all(&mut rx, &marker, receivers).await - started);
        let _ = sender.json().await;
        // The function logs each broadcast with the member items it read; wait for this one's.
        let mut read = None;
        for _ in 0..250 {
            let lines: Vec<u64> = stack
                .output()
                .iter()
                .filter(|line| {
                    line.contains("\"broadcast\"")
                        && line.contains("\"kind\":\"message\"")
                        && line.contains(&room)
                })
                .filter_map(|line| {
                    let at = line.find("\"items_read\":")? + "\"items_read\":".len();
                    let digits: String = line[at..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    digits.parse::<u64>().ok()
                })
                .collect();
            if lines.len() > i {
                read = lines.last().copied();
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        items_read.push(read.unwrap_or_default());
    }
    let _ = sender.socket.close(None).await;
    let _ = stop.send(true);
    for (_, mut client) in others {
        let _ = client.socket.close(None).await;
    }
    RoomCost {
        total,
        rooms,
        p: percentiles(&samples),
        items_read,
    }
}

/// Triggers the local stack's raw broadcast (`POST /@local/broadcast`) over plain HTTP/1.1.
struct RawBroadcast {
    address: String,
}

impl RawBroadcast {
    fn new(connections_url: &str) -> RawBroadcast {
        let address = connections_url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        RawBroadcast { address }
    }

    async fn send(&self, body: &str) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(&self.address)
            .await
            .expect("@connections listener");
        let request = format!(
            "POST /@local/broadcast HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
}

struct ColdStart {
    name: String,
    init: f64,
    first_response: f64,
}

/// Median init (spawn → first `next`) and spawn → first response over `runs` fresh instances.
async fn cold_start(name: &str, pool: &Pool, event: &[u8], runs: usize) -> ColdStart {
    let mut init = Vec::new();
    let mut total = Vec::new();
    for _ in 0..runs {
        pool.restart();
        let (result, report) = pool.invoke(event.to_vec()).await;
        result.unwrap_or_else(|e| panic!("{name} failed: {e}"));
        let init_duration = report
            .init_duration
            .expect("a cold start reports its init duration");
        init.push(init_duration);
        total.push(init_duration + report.duration);
    }
    pool.restart();
    ColdStart {
        name: name.to_owned(),
        init: percentiles(&init).0,
        first_response: percentiles(&total).0,
    }
}

fn endpoints(stack: &Stack) -> Endpoints {
    Endpoints {
        dynamodb: stack.dynamodb_endpoint.clone(),
        connections: stack.connections_url.clone(),
        // The cold-start pools invoke nothing.
        lambda: "http://127.0.0.1:9".into(),
        s3: "http://127.0.0.1:9".into(),
        // The user's credentials, which the stack also accepts.
        credentials: chat_local::server::default_credentials(),
    }
}

/// One instance at a time, no log lines.
fn quiet_pool() -> PoolSettings {
    PoolSettings {
        max_instances: 1,
        quiet: true,
        log: chat_local::Log::new(|_| {}),
        metrics: None,
    }
}

async fn cold_starts(stack: &Stack, table: &str, runs: usize) -> Vec<ColdStart> {
    let repo = harness::repo();
    let template = Template::load(&repo.join("template.yaml")).unwrap();
    let overrides = BTreeMap::from([("TableName".to_owned(), table.to_owned())]);
    let local = TemplateStack::from_template(&template, &repo, "us-east-1", &overrides).unwrap();
    let event = |file: &str| std::fs::read(repo.join("events").join(file)).unwrap();
    let mut results = Vec::new();
    let cases = [
        ("ConnectFunction", "connect.json"),
        ("DisconnectFunction", "disconnect.json"),
        ("OnMessageFunction", "on_message.json"),
        ("DefaultFunction", "default.json"),
    ];
    for (id, file) in cases {
        let function = local.functions[id].clone();
        let env = lambda_environment(&function, "us-east-1", &endpoints(stack));
        let binary = harness::bin_dir().join(&function.binary);
        let pool = Pool::new(function, binary, env, quiet_pool());
        results.push(cold_start(&format!("{id} (Rust)"), &pool, &event(file), runs).await);
    }
    let peer = repo.join("tests/node-peer/bootstrap");
    let mut function = local.functions["ConnectFunction"].clone();
    function.name = "NodeConnectFunction".into();
    let env = lambda_environment(&function, "us-east-1", &endpoints(stack));
    let pool = Pool::new(function, peer, env, quiet_pool());
    results.push(
        cold_start(
            "ConnectFunction (Node.js 20 peer, AWS SDK v3)",
            &pool,
            &event("connect.json"),
            runs,
        )
        .await,
    );
    results
}

struct Warm {
    route: &'static str,
    p: (f64, f64),
}

async fn warm_latency(stack: &Stack, runs: usize) -> Vec<Warm> {
    let mut connect = Vec::new();
    let mut message = Vec::new();
    let mut disconnect = Vec::new();
    for i in 0..runs {
        let started = Instant::now();
        let mut client = stack.client().await;
        connect.push(started.elapsed());
        let marker = format!("warm-{i}");
        let started = Instant::now();
        client.say(&marker).await;
        assert_eq!(client.json().await["message"], marker.as_str());
        message.push(started.elapsed());
        let started = Instant::now();
        client.socket.close(None).await.unwrap();
        while let Some(Ok(_)) = client.socket.next().await {}
        disconnect.push(started.elapsed());
    }
    vec![
        Warm {
            route: "$connect (handshake incl. $connect invocation)",
            p: percentiles(&connect),
        },
        Warm {
            route: "onMessage (send → own broadcast received, 1 client)",
            p: percentiles(&message),
        },
        Warm {
            route: "close handshake (then $disconnect runs)",
            p: percentiles(&disconnect),
        },
    ]
}

struct Capacity {
    n: usize,
    rss_before_kb: u64,
    rss_after_kb: u64,
    per_second: f64,
}

async fn capacity(stack: &Stack, n: usize) -> Capacity {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before_kb = harness::rss_kb(stack.pid());
    let (clients, elapsed) = connect_many(&stack.ws_url, n, 128).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after_kb = harness::rss_kb(stack.pid());
    for mut client in clients {
        let _ = client.socket.close(None).await;
    }
    Capacity {
        n,
        rss_before_kb,
        rss_after_kb,
        per_second: n as f64 / elapsed.as_secs_f64(),
    }
}

fn artifacts(repo: &Path) -> Vec<(String, u64, Option<u64>)> {
    let mut rows = Vec::new();
    // Every function `sam build` built, whatever the template declares.
    let mut ids: Vec<String> = std::fs::read_dir(repo.join(".aws-sam/build"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().join("bootstrap").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    for id in &ids {
        let bootstrap = repo.join(".aws-sam/build").join(id).join("bootstrap");
        let Ok(meta) = std::fs::metadata(&bootstrap) else {
            continue;
        };
        let zipped = std::process::Command::new("python3")
            .args(["-c", "import io,sys,zipfile; b=io.BytesIO(); z=zipfile.ZipFile(b,'w',zipfile.ZIP_DEFLATED); z.write(sys.argv[1],'bootstrap'); z.close(); print(len(b.getvalue()))"])
            .arg(&bootstrap)
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok());
        rows.push((id.clone(), meta.len(), zipped));
    }
    rows
}

fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gb = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "{cores} cores ({cpu}), {mem_gb:.1} GB RAM, {}",
        std::env::consts::ARCH
    )
}

/// One direct-message measurement: to a user with `connections` open, among `population`
/// signed-in users.
struct DmCost {
    population: usize,
    connections: usize,
    p50_ms: f64,
    p95_ms: f64,
    /// Items the user index returned per message (both users' connections), as logged.
    index_items: f64,
}

/// Signs `name` in at the stack's development issuer and connects to `room`.
async fn signed_in_client(stack: &Stack, name: &str, room: &str) -> Client {
    let issuer = stack
        .dev_issuer
        .as_deref()
        .expect("AuthMode=jwt has a dev issuer");
    let token = chat_local::issuer::fetch_token(issuer, name, "")
        .await
        .expect("a development token");
    Client::connect_within(
        &format!("{}/Test?room={room}&token={token}", stack.ws_url),
        Duration::from_secs(60),
    )
    .await
    .expect("signed-in handshake")
}

/// `messages` direct messages, one at a time, from a user with one connection to a user
/// with `connections`, while `population` users in all are signed in: the time from the
/// send until every recipient connection and the sender's own have it.
async fn dm_cost(stack: &Stack, population: usize, connections: usize, messages: usize) -> DmCost {
    let run = harness::unique("dm");
    let bystanders: Vec<Client> = stream::iter(0..population.saturating_sub(2))
        .map(|n| {
            let name = format!("{run}-u{n}");
            async move { signed_in_client(stack, &name, "dm-bench").await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let (sender_name, recipient_name) = (format!("{run}-sender"), format!("{run}-recipient"));
    let mut sender = signed_in_client(stack, &sender_name, "dm-bench").await;
    let mut recipient = Vec::new();
    for _ in 0..connections {
        recipient.push(signed_in_client(stack, &recipient_name, "dm-bench").await);
    }
    let to = chat_local::oauth::subject(&recipient_name);
    let logged_before = stack.output().len();
    let mut samples = Vec::new();
    for n in 0..messages {
        let text = format!("{run} {n}");
        let started = Instant::now();
        sender
            .send_json(serde_json::json!({"action": "dm", "to": to, "message": text}))
            .await;
        for client in recipient.iter_mut().chain(std::iter::once(&mut sender)) {
            loop {
                let frame = client.frame_of("dm", Duration::from_secs(30)).await;
                if frame["message"] == text.as_str() {
                    break;
                }
            }
        }
        samples.push(started.elapsed());
    }
    let logged: Vec<f64> = stack.output()[logged_before..]
        .iter()
        .filter(|line| line.contains("\"direct message\""))
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(&line[line.find('{')?..]).ok())
        .map(|line| {
            let fields = &line["fields"];
            fields["sender_connections"].as_f64().unwrap_or_default()
                + fields["recipient_connections"].as_f64().unwrap_or_default()
        })
        .collect();
    let (p50_ms, p95_ms) = percentiles(&samples);
    for client in bystanders.into_iter().chain(recipient).chain([sender]) {
        client.close().await;
    }
    DmCost {
        population,
        connections,
        p50_ms,
        p95_ms,
        index_items: logged.iter().sum::<f64>() / logged.len().max(1) as f64,
    }
}

/// Waits until every client of the last section has disconnected, so the next starts clean.
async fn all_disconnected(stack: &Stack, limit: Duration) {
    harness::eventually_within(limit, "every client has disconnected", || async {
        stack.stored_ids().await.is_empty()
    })
    .await;
}

/// A fresh local stack with its own dynalite, as the benchmark runs it: in this process
/// through the library, or as the `chat-local` command where its memory is measured
/// apart from the clients'. Throttling is off: the benchmark measures the stack itself.
async fn bench_stack(own_process: bool) -> (Stack, String) {
    bench_stack_with(own_process, &[], None).await
}

/// [`bench_stack`] with more template parameters and, optionally, other binaries.
async fn bench_stack_with(
    own_process: bool,
    overrides: &[&str],
    binaries: Option<PathBuf>,
) -> (Stack, String) {
    let mut options = Options::project();
    options
        .overrides
        .extend(overrides.iter().map(|o| o.to_string()));
    if let Some(dir) = binaries {
        options.binaries = chat_local::functions::Binaries::Dir(dir);
    }
    options.shared_dynamodb = false;
    options.quiet = true;
    options.throttle = false;
    // The sender's own rate (MessageBurst) is raised out of the way too.
    options.overrides.push("MessageBurst=1000".into());
    options.max_instances = 10;
    // Extra template parameters for experiments, e.g. BENCH_PARAMETERS="FanoutConcurrency=256".
    if let Ok(extra) = std::env::var("BENCH_PARAMETERS") {
        options
            .overrides
            .extend(extra.split_whitespace().map(str::to_owned));
    }
    let table = options.overrides[0]
        .trim_start_matches("TableName=")
        .to_owned();
    let stack = if own_process {
        Stack::command(options).await
    } else {
        Stack::start(options).await
    };
    (stack, table)
}

#[tokio::main]
async fn main() {
    let settings = Settings::from_args();
    let mut report = String::new();
    let out = |report: &mut String, line: String| {
        println!("{line}");
        report.push_str(&line);
        report.push('\n');
    };
    let profile = harness::bin_dir()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    out(&mut report, "# Benchmarks".into());
    out(&mut report, String::new());
    out(&mut report, format!("Machine: {}. Binaries: `{profile}` build, measured against the real local stack (loopback, dynalite).", machine()));
    let arguments: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a.starts_with("--") && a != "--out")
        .collect();
    out(
        &mut report,
        format!(
            "Command: `make bench` (`target/{profile}/chat-bench {}`).",
            arguments.join(" ")
        )
        .replace(" `)", "`)"),
    );
    out(&mut report, String::new());

    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |section: &str| only.is_empty() || only.split(',').any(|s| s == section);
    let (stack, table) = bench_stack(false).await;

    out(&mut report, "## Fan-out: one message to N clients".into());
    out(&mut report, String::new());
    out(&mut report, format!("Time from send until all N clients received it ({} messages each). Raw limit: the gateway writing the same frame to the same N sockets (no Lambda, no DynamoDB, no per-recipient HTTP). Rooms above `FanoutChunkSize` (2 000) go through FanoutFunction workers, as deployed: N = 5 000 is three chunks. CPU = user + system time of the onMessage and FanoutFunction processes (`/proc`) ÷ deliveries.", settings.messages));
    out(&mut report, String::new());
    out(&mut report, "| N | fan-out p50 ms | p95 ms | deliveries/s (p50) | raw limit p50 ms | p95 ms | fan-out ÷ limit (throughput) | onMessage CPU µs/delivery |".into());
    out(&mut report, "|---|---|---|---|---|---|---|---|".into());
    let mut fanouts: Vec<FanOut> = Vec::new();
    let this_process = Functions {
        parent: std::process::id(),
        names: RUST_FANOUT,
    };
    for &n in settings.sizes.iter().filter(|_| wanted("fanout")) {
        let f = fan_out(&stack, n, settings.messages, &this_process).await;
        out(
            &mut report,
            format!(
                "| {} | {:.1} | {:.1} | {:.0} | {:.2} | {:.2} | {:.0} % | {:.1} |",
                f.n,
                f.lambda.0,
                f.lambda.1,
                f.n as f64 / (f.lambda.0 / 1000.0),
                f.raw.0,
                f.raw.1,
                100.0 * f.raw.0 / f.lambda.0,
                f.cpu_us
            ),
        );
        fanouts.push(f);
        all_disconnected(&stack, Duration::from_secs(60)).await;
    }
    out(&mut report, String::new());

    // Emitting metrics as a share of the CPU per delivery, in the smallest room measured.
    let mut metrics_share = None;
    if wanted("metrics") {
        // The denominator: CPU per delivery measured in this run (a room of 100 when the
        // fan-out section did not run).
        if fanouts.is_empty() {
            fanouts.push(fan_out(&stack, 100, settings.messages, &this_process).await);
            all_disconnected(&stack, Duration::from_secs(60)).await;
        }
        let (lines, share) = metrics_cost(&fanouts);
        metrics_share = share;
        for line in lines {
            out(&mut report, line);
        }
    }

    out(
        &mut report,
        "## CPU per delivery: Rust onMessage vs the Node.js peer".into(),
    );
    out(&mut report, String::new());
    out(&mut report, format!("The same stack, N and {} messages each; the peer is the official sample's sendmessage algorithm (Scan of the connections, `Promise.all` of AWS SDK v3 `PostToConnectionCommand`, Node.js 20) behind the same minimal Runtime API loop as the cold-start peer. CPU = user + system time of the function process (`/proc`) during the broadcasts ÷ deliveries.", settings.messages));
    out(&mut report, String::new());
    out(&mut report, "| N | Rust µs/delivery | Node.js µs/delivery | Node ÷ Rust CPU | Rust p50 / p95 ms | Node.js p50 / p95 ms |".into());
    out(&mut report, "|---|---|---|---|---|---|".into());
    let mut peers: Vec<(FanOut, FanOut)> = Vec::new();
    if wanted("peer") {
        let (node_stack, _) = bench_stack_with(false, &[], Some(node_peer_binaries())).await;
        let node = Functions {
            parent: std::process::id(),
            names: &["node"],
        };
        for &n in settings.peer_sizes.iter() {
            let rust = fan_out_with(&stack, n, settings.messages, &this_process, false).await;
            all_disconnected(&stack, Duration::from_secs(60)).await;
            let peer = fan_out_with(&node_stack, n, settings.messages, &node, false).await;
            all_disconnected(&node_stack, Duration::from_secs(60)).await;
            out(
                &mut report,
                format!(
                    "| {n} | {:.1} | {:.1} | {:.1}× | {:.1} / {:.1} | {:.1} / {:.1} |",
                    rust.cpu_us,
                    peer.cpu_us,
                    peer.cpu_us / rust.cpu_us,
                    rust.lambda.0,
                    rust.lambda.1,
                    peer.lambda.0,
                    peer.lambda.1
                ),
            );
            peers.push((rust, peer));
        }
    }
    out(&mut report, String::new());
    if let Some(svg) = fanout_chart(&fanouts, &peers) {
        let chart = settings.out.with_file_name("BENCHMARKS-fanout.svg");
        std::fs::write(&chart, svg).expect("write the chart");
        out(
            &mut report,
            format!(
                "![Fan-out p50 against room size: Rust, the Node.js peer and the raw limit]({})",
                chart.file_name().unwrap_or_default().to_string_lossy()
            ),
        );
        out(&mut report, String::new());
    }
    let ratios: Vec<String> = peers
        .iter()
        .map(|(rust, peer)| {
            format!(
                "N = {}: Node.js ÷ Rust CPU {:.1}×",
                rust.n,
                peer.cpu_us / rust.cpu_us
            )
        })
        .chain(fanouts.iter().filter(|f| f.raw.0.is_finite()).map(|f| {
            format!(
                "N = {}: fan-out ÷ raw limit {:.0} %",
                f.n,
                100.0 * f.raw.0 / f.lambda.0
            )
        }))
        .collect();
    if !ratios.is_empty() {
        out(&mut report, format!("Ratios (machine-independent; aims: Node.js ÷ Rust 30×, fan-out ÷ raw limit 50 %): {}.", ratios.join("; ")));
        out(&mut report, String::new());
    }

    // CPU per delivery after the signer change ÷ before, when measured.
    let mut signer_change: Option<f64> = None;
    if wanted("signing") {
        out(
            &mut report,
            "## Signing: aws-sigv4 against the former hand-written signer".into(),
        );
        out(&mut report, String::new());
        let posts = if settings.sizes.iter().max().copied().unwrap_or(0) < 100 {
            2_000
        } else {
            50_000
        };
        let [former_us, current_us, whole_us] = signing_cost(posts);
        out(&mut report, format!("CPU per signed `@connections` post ({posts} posts in rounds that alternate the three, this thread's CPU time), the frame's SHA-256 computed once per broadcast in all three. Now: the chat's day key — key derivation and signature from `aws-sigv4` (`sign::v4`), the day's key derived once, the canonical request of the one POST shape built in `chat::delivery::sigv4`. Former: the hand-written signer it replaced (aws-lc HMAC; kept in `tests/src/former_signer.rs` for this comparison). Whole: `aws-sigv4`'s `http_request::sign`, which derives the key and builds a general canonical request per post."));
        out(&mut report, String::new());
        out(&mut report, "| signer | µs per post | ÷ former |".into());
        out(&mut report, "|---|---|---|".into());
        out(
            &mut report,
            format!("| former (hand-written) | {former_us:.2} | 1.00 |"),
        );
        out(
            &mut report,
            format!(
                "| day key on aws-sigv4 (now) | {current_us:.2} | {:.2} |",
                current_us / former_us
            ),
        );
        out(
            &mut report,
            format!(
                "| aws-sigv4 `http_request::sign` | {whole_us:.2} | {:.2} |",
                whole_us / former_us
            ),
        );
        out(&mut report, String::new());
        if let Some(f) = fanouts
            .iter()
            .rev()
            .find(|f| f.cpu_us.is_finite() && f.cpu_us > 0.0)
        {
            let before = f.cpu_us - (current_us - former_us);
            let whole = f.cpu_us + (whole_us - current_us);
            signer_change = Some(f.cpu_us / before);
            out(&mut report, format!("CPU per delivery at N = {}: {:.1} µs measured (day key); with the former signer {:.1} µs (the measured delivery less the signing difference): after ÷ before = {:.1} % (target ≤ 110 %). Signing every post with `http_request::sign` would make it {:.1} µs ({:.1} % of before).", f.n, f.cpu_us, before, 100.0 * f.cpu_us / before, whole, 100.0 * whole / before));
            out(&mut report, String::new());
        }
    }

    // Keeping a message with seq ÷ without, p50, when measured.
    let mut seq_change: Option<f64> = None;
    if wanted("seq") {
        out(
            &mut report,
            "## Numbering: what `seq` costs per message".into(),
        );
        out(&mut report, String::new());
        let n = if settings.sizes.iter().max().copied().unwrap_or(0) < 100 {
            50
        } else {
            300
        };
        out(&mut report, format!("Keeping one message in the messages table (the stack's dynalite), {n} in a row each way, side by side: what `onMessage` waits for between the rate check and the fan-out. The fan-out itself is unchanged; each message's end-to-end latency grows by the difference."));
        out(&mut report, String::new());
        out(
            &mut report,
            "| keeping a message | writes | p50 ms | p95 ms | one room's ceiling on DynamoDB |"
                .into(),
        );
        out(&mut report, "|---|---|---|---|---|".into());
        let costs = seq_cost(&stack, &table, n).await;
        for cost in &costs {
            out(
                &mut report,
                format!(
                    "| {} | {} | {:.2} | {:.2} | {} messages/s |",
                    cost.label,
                    cost.writes,
                    cost.p50_ms,
                    cost.p95_ms,
                    1000 / cost.writes
                ),
            );
        }
        out(&mut report, String::new());
        let (before, after) = (&costs[0], &costs[1]);
        seq_change = Some(after.p50_ms / before.p50_ms);
        out(&mut report, format!("With `seq` ÷ before, p50: {:.0} % ({:+.2} ms per message); p95: {:.0} %. The ceiling: every write of a room lands on one partition key, which DynamoDB serves up to 1 000 write units a second (the counter is one item, held to the same); a message of up to 1 KB is one unit per write. The stage throttle (50 messages/s, burst 100) binds long before.", 100.0 * after.p50_ms / before.p50_ms, after.p50_ms - before.p50_ms, 100.0 * after.p95_ms / before.p95_ms));
        out(&mut report, String::new());
    }

    let mut dm_costs: Vec<DmCost> = Vec::new();
    if wanted("dm") {
        out(
            &mut report,
            "## Direct messages: latency, and what one reads".into(),
        );
        out(&mut report, String::new());
        let (populations, messages) = if settings.sizes.iter().max().copied().unwrap_or(0) < 100 {
            (vec![10, 50], 20)
        } else {
            (vec![10, 500], 100)
        };
        out(&mut report, format!("A stack in `AuthMode=jwt` (its development issuer). {messages} direct messages one at a time from a user with one connection to a user with 1 or 3, among a population of signed-in users: time from the send until every connection of the recipient and the sender's own have it. Index items = the user index's items read per message (both users' connections, from onMessage's log): a Query per user, so it follows the two users' connections, not the population."));
        out(&mut report, String::new());
        out(&mut report, "| signed-in users | recipient's connections | p50 ms | p95 ms | index items read per message |".into());
        out(&mut report, "|---|---|---|---|---|".into());
        let (dm_stack, _) = bench_stack_with(false, &["AuthMode=jwt"], None).await;
        for &population in &populations {
            for connections in [1, 3] {
                let cost = dm_cost(&dm_stack, population, connections, messages).await;
                out(
                    &mut report,
                    format!(
                        "| {} | {} | {:.1} | {:.1} | {:.1} |",
                        cost.population,
                        cost.connections,
                        cost.p50_ms,
                        cost.p95_ms,
                        cost.index_items
                    ),
                );
                dm_costs.push(cost);
                all_disconnected(&dm_stack, Duration::from_secs(60)).await;
            }
        }
        dm_stack.stop().await;
        out(&mut report, String::new());
    }

    out(
        &mut report,
        format!(
            "## One message to a room of {}: inline vs chunked",
            settings.big_room
        ),
    );
    out(&mut report, String::new());
    out(&mut report, format!("{} connected members, {} messages; inline = onMessage posts to all (`FanoutChunkSize` above the room), chunked = onMessage hands chunks of {} to FanoutFunction (asynchronous Invoke through the local Lambda API). CPU = onMessage + FanoutFunction processes ÷ deliveries. Each stack is a process of its own (the members' sockets and theirs exceed one process's open-file limit of this machine, which also keeps the room below 20 000 here).", settings.big_room, settings.big_messages, settings.big_chunk));
    out(&mut report, String::new());
    out(
        &mut report,
        "| delivery | p50 ms | p95 ms | CPU µs/delivery |".into(),
    );
    out(&mut report, "|---|---|---|---|".into());
    let cases = [
        ("inline".to_owned(), "FanoutChunkSize=100000".to_owned()),
        (
            format!("chunked ({})", settings.big_chunk),
            format!("FanoutChunkSize={}", settings.big_chunk),
        ),
    ];
    for (label, chunk) in cases.iter().filter(|_| wanted("bigroom")) {
        let (big, _) = bench_stack_with(true, &[chunk.as_str()], None).await;
        let functions = Functions {
            parent: big.pid(),
            names: RUST_FANOUT,
        };
        let f = fan_out_with(
            &big,
            settings.big_room - 1,
            settings.big_messages,
            &functions,
            false,
        )
        .await;
        out(
            &mut report,
            format!(
                "| {label} | {:.1} | {:.1} | {:.1} |",
                f.lambda.0, f.lambda.1, f.cpu_us
            ),
        );
        drop(big);
    }
    out(&mut report, String::new());

    let measured = fanouts
        .iter()
        .rev()
        .find(|f| f.cpu_us.is_finite() && f.cpu_us > 0.0)
        .map(|f| f.cpu_us);
    if let Some(cpu_us) = measured {
        for line in aws_model(cpu_us) {
            out(&mut report, line);
        }
        out(&mut report, String::new());
    }

    out(
        &mut report,
        "## Rooms: a message costs its own room only".into(),
    );
    out(&mut report, String::new());
    out(&mut report, format!("One member of a room sends {} messages; time until every other member of that room has each, and the member items DynamoDB read for the broadcast (from the function's log). The other rooms' clients stay connected.", settings.messages));
    out(&mut report, String::new());
    out(
        &mut report,
        "| connections | rooms | room size | p50 ms | p95 ms | items read per message |".into(),
    );
    out(&mut report, "|---|---|---|---|---|---|".into());
    let mut room_costs: Vec<RoomCost> = Vec::new();
    // A stack process of its own: 10 000 clients here and their 10 000 server sockets there
    // would not fit one process's open-file limit.
    let room_stack = if wanted("rooms") {
        Some(bench_stack(true).await.0)
    } else {
        None
    };
    for &(total, rooms) in settings.rooms.iter().filter(|_| wanted("rooms")) {
        let room_stack = room_stack.as_ref().expect("started above");
        let c = room_cost(room_stack, total, rooms, settings.messages).await;
        let read = c.items_read.iter().max().copied().unwrap_or_default();
        out(
            &mut report,
            format!(
                "| {} | {} | {} | {:.1} | {:.1} | {read} |",
                c.total,
                c.rooms,
                c.total / c.rooms,
                c.p.0,
                c.p.1
            ),
        );
        room_costs.push(c);
        all_disconnected(room_stack, Duration::from_secs(120)).await;
    }
    drop(room_stack);
    if let [small, large] = &room_costs[..] {
        out(&mut report, String::new());
        out(
            &mut report,
            format!(
                "{}× the connections: the room's p50 is {:.2}× and its items read {:.2}×.",
                large.total / small.total,
                large.p.0 / small.p.0,
                large.items_read.iter().max().copied().unwrap_or_default() as f64
                    / small.items_read.iter().max().copied().unwrap_or(1).max(1) as f64
            ),
        );
    }
    out(&mut report, String::new());

    out(
        &mut report,
        format!("## Cold start (median of {})", settings.cold_runs),
    );
    out(&mut report, String::new());
    out(&mut report, "Init = process spawn → first Runtime API `next`; first response = spawn → the first invocation's response (its sample event from `events/`).".into());
    out(&mut report, String::new());
    out(
        &mut report,
        "| function | init ms | first response ms |".into(),
    );
    out(&mut report, "|---|---|---|".into());
    let colds = if wanted("cold") {
        cold_starts(&stack, &table, settings.cold_runs).await
    } else {
        Vec::new()
    };
    for c in &colds {
        out(
            &mut report,
            format!("| {} | {:.2} | {:.2} |", c.name, c.init, c.first_response),
        );
    }
    if let (Some(rust), Some(node)) = (colds.first(), colds.last()) {
        out(&mut report, String::new());
        out(
            &mut report,
            format!(
                "Node.js peer ÷ Rust ConnectFunction: init {:.1}×, first response {:.1}×.",
                node.init / rust.init,
                node.first_response / rust.first_response
            ),
        );
    }
    out(&mut report, String::new());

    out(
        &mut report,
        format!(
            "## Warm latency through the gateway ({} runs)",
            settings.warm_runs
        ),
    );
    out(&mut report, String::new());
    out(&mut report, "| route | p50 ms | p95 ms |".into());
    out(&mut report, "|---|---|---|".into());
    let warm = if wanted("warm") {
        warm_latency(&stack, settings.warm_runs).await
    } else {
        Vec::new()
    };
    for w in warm {
        out(
            &mut report,
            format!("| {} | {:.2} | {:.2} |", w.route, w.p.0, w.p.1),
        );
    }
    out(&mut report, String::new());

    out(&mut report, "## Capacity: idle connections".into());
    out(&mut report, String::new());
    out(&mut report, "Gateway = the `chat-local` process (WebSocket front, @connections, Runtime API), started fresh for this section; dynalite and function processes not included.".into());
    out(&mut report, String::new());
    out(&mut report, "| connections | gateway RSS before MB | after MB | bytes per connection | new connections/s |".into());
    out(&mut report, "|---|---|---|---|---|".into());
    drop(stack);
    let (stack, _) = bench_stack(true).await;
    let mut capacities: Vec<Capacity> = Vec::new();
    for &n in settings.idle.iter().filter(|_| wanted("capacity")) {
        let c = capacity(&stack, n).await;
        out(
            &mut report,
            format!(
                "| {} | {:.1} | {:.1} | {:.0} | {:.0} |",
                c.n,
                c.rss_before_kb as f64 / 1024.0,
                c.rss_after_kb as f64 / 1024.0,
                (c.rss_after_kb.saturating_sub(c.rss_before_kb) * 1024) as f64 / c.n as f64,
                c.per_second
            ),
        );
        capacities.push(c);
        all_disconnected(&stack, Duration::from_secs(120)).await;
    }
    out(&mut report, String::new());

    out(&mut report, "## Artifacts (`sam build`, arm64)".into());
    out(&mut report, String::new());
    let rows = artifacts(&harness::repo());
    if rows.is_empty() {
        out(
            &mut report,
            "No `.aws-sam/build` here: run `make sam-build` first.".into(),
        );
    } else {
        out(
            &mut report,
            "| function | bootstrap bytes | zipped bytes |".into(),
        );
        out(&mut report, "|---|---|---|".into());
        for (id, size, zipped) in rows {
            out(
                &mut report,
                format!(
                    "| {id} | {size} | {} |",
                    zipped.map_or("?".into(), |z| z.to_string())
                ),
            );
        }
    }
    out(&mut report, String::new());
    out(&mut report, "## Targets".into());
    out(&mut report, String::new());
    out(&mut report, "| target | measured | |".into());
    out(&mut report, "|---|---|---|".into());
    let target = |report: &mut String, name: &str, measured: Option<(f64, bool)>, unit: &str| {
        if let Some((value, met)) = measured {
            out(
                report,
                format!(
                    "| {name} | {value:.1} {unit} | {} |",
                    if met { "met" } else { "missed" }
                ),
            );
        }
    };
    target(
        &mut report,
        "emitting metrics ≤ 5 % of onMessage's CPU per delivery (smallest room measured)",
        metrics_share.map(|share| (share, share <= 5.0)),
        "%",
    );
    // What a direct message reads follows its two users, not the population.
    let dm_items = |population: Option<&DmCost>| population.map(|cost| cost.index_items);
    let smallest = dm_costs.iter().find(|c| c.connections == 3);
    let largest = dm_costs.iter().rev().find(|c| c.connections == 3);
    if let (Some(small), Some(large)) = (dm_items(smallest), dm_items(largest)) {
        let ratio = large / small.max(f64::MIN_POSITIVE);
        target(
            &mut report,
            "a direct message reads no more items among the most users than among the fewest (ratio)",
            Some((ratio, ratio <= 1.0)),
            "×",
        );
    }
    let rust_init = colds
        .iter()
        .filter(|c| c.name.contains("(Rust)"))
        .map(|c| c.init)
        .fold(f64::NAN, f64::max);
    let node = colds.iter().find(|c| c.name.contains("Node"));
    let rust_connect = colds
        .iter()
        .find(|c| c.name.starts_with("ConnectFunction (Rust)"));
    target(
        &mut report,
        "cold init median ≤ 10 ms (slowest Rust function)",
        (!rust_init.is_nan()).then_some((rust_init, rust_init <= 10.0)),
        "ms",
    );
    target(
        &mut report,
        "cold init ≥ 15× faster than the Node.js peer",
        node.zip(rust_connect)
            .map(|(n, r)| (n.init / r.init, n.init / r.init >= 15.0)),
        "×",
    );
    let fanout_of = |n: usize| fanouts.iter().find(|f| f.n == n);
    target(
        &mut report,
        "1 000-client broadcast p50 < 100 ms",
        fanout_of(1000).map(|f| (f.lambda.0, f.lambda.0 < 100.0)),
        "ms",
    );
    target(
        &mut report,
        "5 000-client broadcast p50 ≤ 250 ms",
        fanout_of(5000).map(|f| (f.lambda.0, f.lambda.0 <= 250.0)),
        "ms",
    );
    target(
        &mut report,
        "5 000-client broadcast ≥ 35 % of the raw limit (stretch 50 %)",
        fanout_of(5000).map(|f| (100.0 * f.raw.0 / f.lambda.0, f.raw.0 / f.lambda.0 >= 0.35)),
        "%",
    );
    let worst_rust = peers
        .iter()
        .map(|(rust, _)| rust.cpu_us)
        .fold(f64::NAN, f64::max);
    target(
        &mut report,
        "Rust CPU per delivery ≤ 15 µs (largest of the peer comparison)",
        (!worst_rust.is_nan()).then_some((worst_rust, worst_rust <= 15.0)),
        "µs",
    );
    let least_ratio = peers
        .iter()
        .map(|(rust, node)| node.cpu_us / rust.cpu_us)
        .fold(f64::NAN, f64::min);
    target(
        &mut report,
        "Node.js peer ÷ Rust CPU per delivery ≥ 5×",
        (!least_ratio.is_nan()).then_some((least_ratio, least_ratio >= 5.0)),
        "×",
    );
    target(
        &mut report,
        "CPU per delivery with the aws-sigv4 signer ≤ 110 % of the former signer's",
        signer_change.map(|ratio| (100.0 * ratio, ratio <= 1.10)),
        "%",
    );
    target(
        &mut report,
        "keeping a message with seq, p50 ≤ 250 % of keeping it without (one more write in a row, and the id beside the message)",
        seq_change.map(|ratio| (100.0 * ratio, ratio <= 2.5)),
        "%",
    );
    target(
        &mut report,
        "aim: Node.js peer ÷ Rust CPU per delivery ≥ 30×",
        (!least_ratio.is_nan()).then_some((least_ratio, least_ratio >= 30.0)),
        "×",
    );
    let least_share = fanouts
        .iter()
        .filter(|f| f.n >= 1000 && f.raw.0.is_finite())
        .map(|f| f.raw.0 / f.lambda.0)
        .fold(f64::NAN, f64::min);
    target(
        &mut report,
        "aim: fan-out ≥ 50 % of the raw limit (N ≥ 1 000)",
        (!least_share.is_nan()).then_some((100.0 * least_share, least_share >= 0.5)),
        "%",
    );
    let idle = capacities
        .iter()
        .find(|c| c.n == 10_000)
        .map(|c| c.rss_after_kb as f64 / 1024.0);
    target(
        &mut report,
        "10 000 idle connections in < 200 MB gateway RSS",
        idle.map(|mb| (mb, mb < 200.0)),
        "MB",
    );
    out(&mut report, String::new());
    for doc in ["docs/bench-findings.md", "docs/aws-costs.md"] {
        let text = std::fs::read_to_string(harness::repo().join(doc))
            .unwrap_or_else(|e| panic!("{doc}: {e}"));
        report.push_str(&text);
        report.push('\n');
    }
    drop(stack);
    std::fs::write(&settings.out, report).expect("write the report");
    println!("Wrote {}", settings.out.display());
}

/// What emitting metrics costs an onMessage invocation, measured in this process with the
/// functions' own code (`chat::metrics`, the real EMF recorder, one line per invocation to
/// a sink), next to the CPU per delivery the fan-out measured in the same run.
/// Returns the section's lines and the share in the smallest room, in percent.
fn metrics_cost(fanouts: &[FanOut]) -> (Vec<String>, Option<f64>) {
    const ROUNDS: u32 = 20_000;
    chat::metrics::init("Bench", "bench-on-message", "Bench");
    // Every counter of a broadcast non-zero: the most a line carries.
    let summary = chat::delivery::broadcast::Summary {
        delivered: 100,
        gone: 1,
        pruned: 1,
        throttled: 1,
        undelivered: 1,
        chunks: 1,
        ..Default::default()
    };
    // As a function's standard output: a line-buffered pipe, drained by another thread
    // (Lambda's log collector), so each line is one write system call.
    let (mut reader, writer) = std::io::pipe().expect("a pipe");
    let drained = std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let mut out = std::io::LineWriter::new(writer);
    let started = std::time::Instant::now();
    for _ in 0..ROUNDS {
        let broadcast = std::time::Instant::now();
        chat::metrics::count(chat::metrics::MESSAGES_KEPT, 1);
        chat::metrics::broadcast(&summary, broadcast);
        chat::metrics::flush_to(&mut out).expect("write the line");
    }
    let per_message_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
    drop(out);
    let bytes = drained.join().expect("the reader").expect("drained") as usize;
    let mut lines = vec![
        "## What emitting metrics costs".into(),
        String::new(),
        format!("One onMessage invocation records its metrics (`MessagesKept`, the broadcast's six counters, all non-zero, and its `FanoutDuration`) and writes them as one EMF line ({} bytes) to a line-buffered pipe, as to standard output, after the invocation: measured here with the functions' own code and the real recorder, {ROUNDS} invocations, in this process. Counters are added once per broadcast, not per post, so a delivery's share is the invocation's cost over the room's deliveries; the CPU per delivery is onMessage's, measured by the fan-out above in this run. Target: under 5 % of the CPU per delivery.", bytes / ROUNDS as usize),
        String::new(),
        "| room (deliveries per message) | metrics µs per message | metrics µs per delivery | onMessage CPU µs per delivery | metrics ÷ CPU per delivery |".into(),
        "|---|---|---|---|---|".into(),
    ];
    let mut smallest: Option<(usize, f64)> = None;
    for f in fanouts {
        let per_delivery = per_message_us / f.n as f64;
        let share = 100.0 * per_delivery / f.cpu_us;
        lines.push(format!(
            "| {} | {per_message_us:.2} | {per_delivery:.3} | {:.1} | {share:.2} % |",
            f.n, f.cpu_us
        ));
        if smallest.is_none_or(|(n, _)| f.n < n) {
            smallest = Some((f.n, share));
        }
    }
    lines.push(String::new());
    (lines, smallest.map(|(_, share)| share))
}
