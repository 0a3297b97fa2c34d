//! Starts the local stack on free loopback ports with the real function binaries, in the
//! test's process through the library or as the `chat-local` command, and talks to it with
//! real WebSocket clients. Every wait is bounded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use chat_local::functions::Binaries;
use chat_local::{Database, Log, Running};

pub const WAIT: Duration = Duration::from_secs(10);

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where `chat-local` and the function binaries are: `E2E_BIN_DIR`, else the directory
/// of the running test or benchmark binary (`target/<profile>`).
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("E2E_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current executable");
    let dir = exe.parent().expect("executable directory");
    if dir.ends_with("deps") {
        dir.parent().expect("profile directory").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// A unique name for this test's table, so tests can share one DynamoDB endpoint.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub struct Options {
    pub template: PathBuf,
    /// Where the function binaries come from (`--bin-dir` or `--sam-build`).
    pub binaries: Binaries,
    /// `--max-instances` per function.
    pub max_instances: usize,
    pub overrides: Vec<String>,
    /// Use the shared `DYNAMODB_ENDPOINT` (when set) rather than a dynalite of its own.
    pub shared_dynamodb: bool,
    /// Another DynamoDB endpoint (wins over `shared_dynamodb`).
    pub dynamodb_endpoint: Option<String>,
    /// Keep dynalite's data here.
    pub persist: Option<PathBuf>,
    pub quiet: bool,
    /// Emulate the stage's throttling, as `chat-local` does by default.
    pub throttle: bool,
    /// The account's new connections per second (`--connect-rate`; default 500).
    pub connect_rate: Option<f64>,
    /// The users' credentials, `ID:SECRET[:TOKEN]` (`--credentials`; default `local:local`).
    pub credentials: Option<String>,
    /// Restart functions whose binary changes.
    pub watch: bool,
    /// Address of the WebSocket API (loopback unless set).
    pub host: Option<String>,
}

impl Options {
    fn with_template(template: &str, overrides: Vec<String>) -> Options {
        Options {
            template: repo().join(template),
            binaries: Binaries::Dir(bin_dir()),
            max_instances: 4,
            overrides,
            shared_dynamodb: true,
            dynamodb_endpoint: None,
            persist: None,
            quiet: false,
            throttle: true,
            connect_rate: None,
            credentials: None,
            watch: false,
            host: None,
        }
    }

    /// The project's own template, with a table of the test's own.
    /// The project's template in `AuthMode=jwt`, trusting `issuer` for `audience`.
    pub fn jwt(issuer: &str, audience: &str) -> Options {
        let mut options = Options::project();
        options.overrides.extend([
            "AuthMode=jwt".to_owned(),
            format!("JwtIssuer={issuer}"),
            format!("JwtAudience={audience}"),
        ]);
        options
    }

    pub fn project() -> Options {
        Options::with_template(
            "template.yaml",
            vec![format!("TableName={}", unique("chat"))],
        )
    }

    /// Every route, `$connect` included, is the fault function; no tables.
    pub fn fault_connect() -> Options {
        Options::with_template("tests/fixtures/fault-connect.yaml", Vec::new())
    }

    /// The real chat functions plus a `fault` route, and no `$default`.
    pub fn faults() -> Options {
        Options::with_template(
            "tests/fixtures/faults.yaml",
            vec![format!("TableName={}", unique("faults"))],
        )
    }

    fn endpoint(&self) -> Option<String> {
        self.dynamodb_endpoint.clone().or_else(|| {
            self.shared_dynamodb
                .then(|| std::env::var("DYNAMODB_ENDPOINT").ok())
                .flatten()
        })
    }

    /// The library's options for the same stack, on free ports, logging to `log`.
    fn library(&self, log: Log) -> chat_local::Options {
        let mut options = chat_local::Options::new(&self.template, self.binaries.clone());
        options.parameter_overrides = self
            .overrides
            .iter()
            .map(|pair| {
                let (k, v) = pair.split_once('=').expect("overrides are Name=Value");
                (k.to_owned(), v.to_owned())
            })
            .collect();
        options.database = match self.endpoint() {
            Some(endpoint) => Database::Endpoint(endpoint),
            None => Database::Dynalite {
                persist: self.persist.clone(),
            },
        };
        options.port = 0;
        options.connections_port = 0;
        options.issuer_port = 0;
        options.lambda_port = 0;
        options.s3_port = 0;
        options.max_instances = self.max_instances;
        options.quiet = self.quiet;
        options.throttle = self.throttle;
        if let Some(rate) = self.connect_rate {
            options.connect_rate = rate;
        }
        if let Some(text) = &self.credentials {
            options.credentials =
                chat_local::sigv4::Credentials::parse(text).expect("ID:SECRET[:TOKEN]");
        }
        options.watch = self.watch.then_some(None);
        if let Some(host) = &self.host {
            options.host = host.clone();
        }
        options.log = log;
        options
    }

    /// The same stack as `chat-local start` arguments.
    fn arguments(&self) -> Vec<String> {
        let mut args: Vec<String> = vec!["start".into(), "--template".into()];
        args.push(self.template.display().to_string());
        args.extend(
            [
                "--port",
                "0",
                "--connections-port",
                "0",
                "--issuer-port",
                "0",
                "--lambda-port",
                "0",
                "--s3-port",
                "0",
            ]
            .map(String::from),
        );
        args.extend(["--max-instances".into(), self.max_instances.to_string()]);
        match &self.binaries {
            Binaries::Dir(dir) => args.extend(["--bin-dir".into(), dir.display().to_string()]),
            Binaries::SamBuild(dir) => {
                args.extend(["--sam-build".into(), dir.display().to_string()])
            }
        }
        if let Some(rate) = self.connect_rate {
            args.extend(["--connect-rate".into(), rate.to_string()]);
        }
        if let Some(text) = &self.credentials {
            args.extend(["--credentials".into(), text.clone()]);
        }
        let flags = [
            (self.quiet, "--quiet"),
            (!self.throttle, "--no-throttle"),
            (self.watch, "--watch"),
        ];
        args.extend(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, flag)| flag.to_string()),
        );
        if let Some(endpoint) = self.endpoint() {
            args.extend(["--dynamodb-endpoint".into(), endpoint]);
        }
        if let Some(dir) = &self.persist {
            args.extend(["--persist".into(), dir.display().to_string()]);
        }
        if let Some(host) = &self.host {
            args.extend(["--host".into(), host.clone()]);
        }
        if !self.overrides.is_empty() {
            args.push("--parameter-overrides".into());
            args.extend(self.overrides.iter().cloned());
        }
        args
    }
}

/// How a test's stack runs.
enum Runs {
    /// In the test's own process, started through the library (`chat_local::start`).
    Library(Option<Box<Running>>),
    /// As the `chat-local` command, for tests of the command itself and for measuring the
    /// stack's memory apart from the clients'.
    Command(Child),
}

/// A running local stack, stopped when dropped.
pub struct Stack {
    runs: Runs,
    pub ws_url: String,
    /// `http://127.0.0.1:<port>/<stage>`
    pub connections_url: String,
    /// `http://127.0.0.1:<port>`: the Lambda Invoke API.
    pub lambda_url: String,
    pub dynamodb_endpoint: String,
    /// `http://127.0.0.1:<port>`: the local S3.
    pub s3_url: String,
    pub table: Option<String>,
    /// The development issuer's URL, when the stack runs one.
    pub dev_issuer: Option<String>,
    pub output: Arc<Mutex<Vec<String>>>,
}

/// A log that keeps every line (and echoes it with `E2E_VERBOSE`).
fn collecting_log() -> (Log, Arc<Mutex<Vec<String>>>) {
    let output = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&output);
    let verbose = std::env::var("E2E_VERBOSE").is_ok();
    let log = Log::new(move |line| {
        if verbose {
            eprintln!("stack| {line}");
        }
        kept.lock().unwrap().push(line.to_owned());
    });
    (log, output)
}

fn table_of(options: &Options) -> Option<String> {
    options
        .overrides
        .iter()
        .find_map(|o| o.strip_prefix("TableName=").map(str::to_owned))
}

impl Stack {
    /// Starts the stack in this process through the library.
    pub async fn start(options: Options) -> Stack {
        let (log, output) = collecting_log();
        let running = chat_local::start(options.library(log))
            .await
            .unwrap_or_else(|e| panic!("the stack did not start: {e:#}"));
        for line in running.banner() {
            output.lock().unwrap().push(line);
        }
        Stack {
            ws_url: running.ws_url(),
            connections_url: running.connections_url.clone(),
            lambda_url: running.lambda_url.clone(),
            dynamodb_endpoint: running.dynamodb_endpoint.clone(),
            s3_url: running.s3_url.clone(),
            table: table_of(&options),
            dev_issuer: running.dev_issuer.as_ref().map(|issuer| issuer.url.clone()),
            output,
            runs: Runs::Library(Some(Box::new(running))),
        }
    }

    /// Starts `chat-local start` as a process and reads its addresses from its banner.
    pub async fn command(options: Options) -> Stack {
        let mut child = Command::new(bin_dir().join("chat-local"))
            .args(options.arguments())
            // The stack takes users' credentials from these when set; tests give their own.
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .current_dir(repo())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start chat-local (cargo build --workspace first)");
        let (log, output) = collecting_log();
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (log, ready_tx) = (log.clone(), ready_tx.clone());
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log.line(&line);
                    let _ = ready_tx.send(line);
                }
            });
        }
        drop(ready_tx);
        let banner = read_banner(&mut ready_rx, &output).await;
        let dev_issuer = output.lock().unwrap().iter().find_map(|line| {
            let rest = line.strip_prefix("Dev issuer:")?.trim();
            Some(rest.split_whitespace().next()?.to_owned())
        });
        let lambda_url = output
            .lock()
            .unwrap()
            .iter()
            .find_map(|line| {
                let rest = line.strip_prefix("Lambda API:")?.trim();
                let url = rest.split_whitespace().next()?;
                Some(
                    url.trim_end_matches("/2015-03-31/functions/{name}/invocations")
                        .to_owned(),
                )
            })
            .expect("the banner names the Lambda API");
        let s3_url = output
            .lock()
            .unwrap()
            .iter()
            .find_map(|line| {
                let url = line.strip_prefix("S3:")?.split_whitespace().next()?;
                Some(url.trim_end_matches("/{bucket}/{key}").to_owned())
            })
            .expect("the banner names the S3 endpoint");
        Stack {
            s3_url,
            ws_url: banner[0].clone(),
            lambda_url,
            connections_url: banner[1]
                .trim_end_matches("/@connections/{connectionId}")
                .to_owned(),
            dynamodb_endpoint: banner[2].clone(),
            table: table_of(&options),
            dev_issuer,
            output,
            runs: Runs::Command(child),
        }
    }

    /// The stack's process id: this process for a library stack.
    pub fn pid(&self) -> u32 {
        match &self.runs {
            Runs::Command(child) => child.id().expect("running"),
            Runs::Library(_) => std::process::id(),
        }
    }

    /// Stops the stack like Ctrl-C does; says whether it stopped cleanly.
    pub async fn stop(mut self) -> bool {
        match &mut self.runs {
            Runs::Library(running) => {
                let running = running.take().expect("running");
                tokio::time::timeout(Duration::from_secs(20), running.shutdown())
                    .await
                    .is_ok()
            }
            Runs::Command(child) => {
                if let Some(pid) = child.id() {
                    unsafe { libc::kill(pid as i32, libc::SIGINT) };
                }
                tokio::time::timeout(Duration::from_secs(20), child.wait())
                    .await
                    .expect("the stack stops within 20 s of Ctrl-C")
                    .expect("wait")
                    .success()
            }
        }
    }

    pub fn output(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// One of the stack's own JSON documents on its web port (`/@local/…`).
    async fn local_json(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.ws_url.replacen("ws://", "http://", 1));
        let answer = reqwest::get(&url)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        answer
            .json()
            .await
            .unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
    }

    /// `/@local/metrics.json`: the stack's metrics, as scripts read them.
    pub async fn metrics(&self) -> Value {
        self.local_json("/@local/metrics.json").await
    }

    /// `/@local/on-failure.json`: the records at each on-failure destination.
    pub async fn on_failure(&self) -> Value {
        self.local_json("/@local/on-failure.json").await
    }

    /// The sum of every value of the metric `name` recorded for `function`.
    pub async fn metric_sum(&self, name: &str, function: &str) -> f64 {
        let metrics = self.metrics().await;
        metrics["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .filter(|m| m["name"] == name && m["dimensions"]["FunctionName"] == function)
            .filter_map(|m| m["sum"].as_f64())
            .sum()
    }

    /// A client connected to `room` (`?room=`) on the stage `Test`.
    pub async fn join(&self, room: &str) -> Client {
        Client::connect(&format!("{}/Test?room={room}", self.ws_url))
            .await
            .expect("WebSocket handshake")
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.ws_url)
            .await
            .expect("WebSocket handshake")
    }

    /// The AWS SDK's Lambda client pointed at the stack's Invoke API, as the functions' is.
    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        let config = aws_sdk_lambda::Config::builder()
            .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
            .region(aws_sdk_lambda::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                "local", "local", None, None, "e2e",
            ))
            .endpoint_url(&self.lambda_url)
            .build();
        aws_sdk_lambda::Client::from_conf(config)
    }

    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.dynamodb_endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local", "local", None, None, "e2e",
            ))
            .load()
            .await;
        aws_sdk_dynamodb::Client::new(&config)
    }

    /// Whether `room`'s members take more than one (1 MB) `Query` page in the stack's
    /// members table.
    pub async fn room_spans_pages(&self, room: &str) -> bool {
        let members = format!(
            "{}-members",
            self.table.clone().expect("a table of its own")
        );
        let first_page = self
            .dynamodb()
            .await
            .query()
            .table_name(&members)
            .key_condition_expression("room = :room")
            .expression_attribute_values(
                ":room",
                aws_sdk_dynamodb::types::AttributeValue::S(room.to_owned()),
            )
            .send()
            .await
            .expect("query the room");
        first_page.last_evaluated_key.is_some()
    }

    /// Every connection id in the stack's table.
    pub async fn stored_ids(&self) -> Vec<String> {
        let client = self.dynamodb().await;
        let table = self.table.clone().unwrap_or_else(|| "Chat".into());
        let store = chat::stores::connections::ConnectionStore::new(client, table);
        let mut ids = store.all_ids().await.expect("scan");
        ids.sort();
        ids
    }
}

impl Drop for Stack {
    /// A command stack is stopped as Ctrl-C would stop it, so it stops its functions and
    /// dynalite itself; `kill_on_drop` ends it only if it has not exited within five
    /// seconds. A library stack stops its processes when dropped.
    fn drop(&mut self) {
        let Runs::Command(child) = &self.runs else {
            return;
        };
        if let Some(pid) = child.id() {
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            for _ in 0..100 {
                if !is_running(pid) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The WebSocket URL, `@connections` URL and DynamoDB endpoint from `chat-local`'s banner.
async fn read_banner(
    lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    output: &Mutex<Vec<String>>,
) -> [String; 3] {
    let mut found: [Option<String>; 3] = [None, None, None];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the stack did not get ready in 30 s: {:?}",
                    output.lock().unwrap()
                )
            })
            .unwrap_or_else(|| {
                panic!(
                    "the stack exited before it was ready: {:?}",
                    output.lock().unwrap()
                )
            });
        for (slot, prefix) in ["WebSocket API:", "@connections:", "DynamoDB:"]
            .iter()
            .enumerate()
        {
            if let Some(rest) = line.strip_prefix(prefix) {
                found[slot] = rest.split_whitespace().next().map(str::to_owned);
            }
        }
        if line.starts_with("Ready.") {
            return found.map(|value| value.expect("the banner names every address"));
        }
    }
}

/// A real WebSocket client.
pub struct Client {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn connect(url: &str) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        Client::connect_within(url, WAIT).await
    }

    /// Connects, allowing the handshake `wait` (a crowd connecting at once queues behind
    /// the stack's `$connect` instances; its handshake time is not what such a test measures).
    pub async fn connect_within(
        url: &str,
        wait: Duration,
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let (socket, _) = tokio::time::timeout(wait, tokio_tungstenite::connect_async(url))
            .await
            .unwrap_or_else(|_| panic!("handshake within {wait:?}"))?;
        Ok(Client { socket })
    }

    /// Connects offering `protocols` in `Sec-WebSocket-Protocol` (as a browser's
    /// `new WebSocket(url, protocols)` does); returns the client and the protocol the
    /// server chose, or the handshake's refusal status.
    pub async fn connect_with_protocols(
        url: &str,
        protocols: &[&str],
    ) -> Result<(Client, Option<String>), u16> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::Error;
        let mut request = url.into_client_request().expect("a WebSocket URL");
        let offered = protocols.join(", ").parse().expect("valid header value");
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", offered);
        match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("handshake within 10 s")
        {
            Ok((socket, response)) => {
                let chosen = response
                    .headers()
                    .get("sec-websocket-protocol")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Ok((Client { socket }, chosen))
            }
            Err(Error::Http(response)) => Err(response.status().as_u16()),
            Err(other) => panic!("handshake to {url} failed without a status: {other}"),
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.expect("send");
    }

    /// Sends `text` as one message split into frames of at most `fragment` bytes, as a
    /// client does for a message larger than API Gateway's 32 KB frame quota.
    pub async fn send_fragmented(&mut self, text: &str, fragment: usize) {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        use tokio_tungstenite::tungstenite::protocol::frame::Frame;
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(fragment).collect();
        for (n, chunk) in chunks.iter().enumerate() {
            let opcode = if n == 0 { Data::Text } else { Data::Continue };
            let last = n + 1 == chunks.len();
            let frame = Frame::message(chunk.to_vec(), OpCode::Data(opcode), last);
            self.socket.send(Message::Frame(frame)).await.expect("send");
        }
    }

    pub async fn say(&mut self, message: &str) {
        let body = serde_json::json!({"action": "onMessage", "message": message}).to_string();
        self.send_text(&body).await;
    }

    /// The next message, or None if the socket closed; panics after `WAIT`.
    pub async fn next(&mut self) -> Option<Message> {
        self.next_within(WAIT).await
    }

    /// The next message, or None if the socket closed; panics after `limit`.
    pub async fn next_within(&mut self, limit: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no frame within {limit:?}"))?
                .ok()?;
            match message {
                Message::Ping(_) | Message::Pong(_) => continue,
                other => return Some(other),
            }
        }
    }

    /// The next text frame as JSON, presence frames (`joined`, `left`) skipped.
    pub async fn json(&mut self) -> Value {
        self.json_within(WAIT).await
    }

    /// The next text frame as JSON, presence frames skipped, waiting at most `limit`.
    pub async fn json_within(&mut self, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.frame_within(left).await;
            if frame["type"] != "joined" && frame["type"] != "left" {
                return frame;
            }
        }
    }

    /// The next chat message frame (every other type skipped), waiting at most `limit`.
    pub async fn message_within(&mut self, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.json_within(left).await;
            if frame["type"] == "message" {
                return frame;
            }
        }
    }

    /// The next frame of type `kind` (every other type skipped), waiting at most `limit`.
    pub async fn frame_of(&mut self, kind: &str, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.frame_within(left).await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Sends `value` as a text frame.
    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    /// Every frame of type `kind` that arrives until `quiet` passes without any frame.
    pub async fn frames_until_quiet(&mut self, kind: &str, quiet: Duration) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Ok(Some(Ok(message))) = tokio::time::timeout(quiet, self.socket.next()).await {
            if let Message::Text(text) = message {
                let frame: Value = serde_json::from_str(&text).unwrap_or_default();
                if frame["type"] == kind {
                    frames.push(frame);
                }
            }
        }
        frames
    }

    /// Every chat message frame that arrives until `quiet` passes without any frame.
    pub async fn messages_until_quiet(&mut self, quiet: Duration) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Ok(Some(Ok(message))) = tokio::time::timeout(quiet, self.socket.next()).await {
            if let Message::Text(text) = message {
                let frame: Value = serde_json::from_str(&text).unwrap_or_default();
                if frame["type"] == "message" {
                    frames.push(frame);
                }
            }
        }
        frames
    }

    /// The next text frame as JSON, whatever its type, waiting at most `limit`.
    pub async fn frame_within(&mut self, limit: Duration) -> Value {
        match self.next_within(limit).await {
            Some(Message::Text(text)) => {
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
            }
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Asserts that nothing but presence frames (`joined`, `left`) arrives for `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        let deadline = tokio::time::Instant::now() + quiet;
        while let Ok(Some(message)) = tokio::time::timeout_at(deadline, self.socket.next()).await {
            if let Ok(Message::Text(text)) = &message {
                let frame: Value = serde_json::from_str(text).unwrap_or_default();
                if frame["type"] == "joined" || frame["type"] == "left" {
                    continue;
                }
            }
            panic!("expected no frame, got {message:?}");
        }
    }

    /// Says something and returns this client's connection id, read from its own broadcast.
    pub async fn own_id(&mut self) -> String {
        let question = format!("who am I? ({})", unique("ask"));
        self.say(&question).await;
        loop {
            let frame = self.json().await;
            if frame["type"] == "message" && frame["message"] == question.as_str() {
                return frame["from"].as_str().unwrap().to_owned();
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
        let _ = tokio::time::timeout(WAIT, async {
            while let Some(Ok(_)) = self.socket.next().await {}
        })
        .await;
    }
}

/// The HTTP status a WebSocket handshake to `url` gets: 101 when it is accepted (the
/// connection is then closed), else the refusal's status.
pub async fn handshake_status(url: &str) -> u16 {
    use tokio_tungstenite::tungstenite::Error;
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake within 10 s")
    {
        Ok((socket, _)) => {
            Client { socket }.close().await;
            101
        }
        Err(Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("handshake to {url} failed without a status: {other}"),
    }
}

/// The items a connection that vanished without a `$disconnect` leaves behind, each with
/// its table: in the connection table `connections` (with a TTL far ahead) and among
/// `room`'s members; it connected at `connected_at_ms`.
pub fn gone_connection_items(
    connections: &str,
    room: &str,
    id: &str,
    connected_at_ms: i64,
) -> [(String, HashMap<String, AttributeValue>); 2] {
    let item = |ttl: bool| {
        let mut item = HashMap::from([
            ("connectionid".to_owned(), AttributeValue::S(id.to_owned())),
            ("room".to_owned(), AttributeValue::S(room.to_owned())),
            ("name".to_owned(), AttributeValue::S("gone".to_owned())),
            (
                "connectedAt".to_owned(),
                AttributeValue::N(connected_at_ms.to_string()),
            ),
        ]);
        if ttl {
            item.insert(
                "expiresAt".to_owned(),
                AttributeValue::N("4000000000".to_owned()),
            );
        }
        item
    };
    [
        (connections.to_owned(), item(true)),
        (format!("{connections}-members"), item(false)),
    ]
}

/// Waits until `check` holds, polling; panics with `what` after `WAIT`.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(WAIT, what, check).await
}

/// Waits until `check` holds, polling; panics with `what` after `limit`.
pub async fn eventually_within<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// One process's `/proc/<pid>/stat` fields after the command name, and the name itself.
fn stat(pid: u32) -> Option<(String, Vec<String>)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name sits in parentheses and may itself hold spaces or parentheses.
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    Some((name, rest.split_whitespace().map(str::to_owned).collect()))
}

/// Processes whose parent is `pid`, with their command names, from /proc.
pub fn children_of(pid: u32) -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| {
                    let child: u32 = entry.file_name().to_string_lossy().parse().ok()?;
                    let (name, fields) = stat(child)?;
                    (fields.get(1)?.parse::<u32>().ok()? == pid).then_some((child, name))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `pid` exists and is not a zombie.
pub fn is_running(pid: u32) -> bool {
    stat(pid).is_some_and(|(_, fields)| fields.first().map(String::as_str) != Some("Z"))
}

/// Resident memory of `pid` in KiB.
pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

impl Stack {
    /// Running instances of the function binary `binary` (process names are cut at 15 bytes).
    pub fn instances(&self, binary: &str) -> Vec<u32> {
        match &self.runs {
            Runs::Library(Some(running)) => running
                .stack
                .functions
                .values()
                .filter(|f| f.binary == binary)
                .flat_map(|f| running.instance_pids(&f.logical_id))
                .collect(),
            _ => children_of(self.pid())
                .into_iter()
                .filter(|(_, name)| binary.starts_with(name.as_str()))
                .map(|(pid, _)| pid)
                .collect(),
        }
    }

    /// Cold starts of `function` so far: its REPORT lines that carry an init duration.
    pub fn cold_starts(&self, function: &str) -> usize {
        let prefix = format!("[{function}] REPORT");
        self.output()
            .iter()
            .filter(|l| l.starts_with(&prefix) && l.contains("Init Duration"))
            .count()
    }
}

impl Stack {
    /// Whether any line the stack printed so far contains `needle`.
    pub fn printed(&self, needle: &str) -> bool {
        self.output
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(needle))
    }
}

/// The file the fault function appends every event it receives to (`EventLog` parameter of
/// `tests/fixtures/fault-connect.yaml`); removed when dropped.
pub struct EventLog {
    pub path: PathBuf,
}

impl EventLog {
    pub fn new(prefix: &str) -> EventLog {
        EventLog {
            path: std::env::temp_dir().join(format!("{}.jsonl", unique(prefix))),
        }
    }

    /// Options for a fault-connect stack that logs to this file.
    pub fn options(&self) -> Options {
        let mut options = Options::fault_connect();
        options
            .overrides
            .push(format!("EventLog={}", self.path.display()));
        options
    }

    /// The events logged so far, oldest first: the complete lines only (the function may be
    /// writing the next one while it is read).
    pub fn events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let complete = text.rsplit_once('\n').map_or("", |(lines, _)| lines);
        complete
            .lines()
            .map(|line| serde_json::from_str(line).expect("the fault function logs JSON"))
            .collect()
    }

    /// Waits until `count` events are logged and returns them.
    pub async fn wait_for(&self, count: usize) -> Vec<Value> {
        eventually(&format!("{count} events are logged"), || async {
            self.events().len() >= count
        })
        .await;
        self.events()
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `template.yaml` as CloudFormation receives it from `sam deploy`: transformed by the
/// aws-sam-translator of the pinned SAM CLI (`scripts/sam-translate.py`, run with the
/// project venv's Python) for these parameter overrides.
pub fn sam_translate(overrides: &[String]) -> Value {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "no .venv: `make test` sets it up (scripts/setup.sh)"
    );
    let output = std::process::Command::new(python)
        .arg(repo().join("scripts/sam-translate.py"))
        .arg(repo().join("template.yaml"))
        .args(overrides)
        .output()
        .expect("run scripts/sam-translate.py");
    assert!(
        output.status.success(),
        "the SAM translator refused template.yaml: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the translator prints JSON")
}

/// The headers that sign a request to the local `@connections` (`execute-api`) or Invoke
/// (`lambda`) API with `credentials` (`(id, secret, token)`) as at `at`: what an SDK adds.
pub fn sigv4_headers(
    method: &str,
    url: &str,
    body: &[u8],
    service: &str,
    credentials: (&str, &str, Option<&str>),
    at: std::time::SystemTime,
) -> Vec<(String, String)> {
    let (id, secret, token) = credentials;
    let identity =
        aws_credential_types::Credentials::new(id, secret, token.map(str::to_owned), None, "e2e")
            .into();
    let host = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .expect("a URL with a host");
    let hash = chat::delivery::sigv4::payload_hash(body);
    let request = chat::delivery::sigv4::Request {
        method,
        url,
        headers: &[("host", host)],
        payload_hash: &hash,
    };
    chat::delivery::sigv4::sign_headers(&identity, "us-east-1", service, at, &request)
        .expect("signed")
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// [`sigv4_headers`] with the stack's default user credentials (`local`/`local`), now.
pub fn signed_headers(
    method: &str,
    url: &str,
    body: &[u8],
    service: &str,
) -> Vec<(String, String)> {
    sigv4_headers(
        method,
        url,
        body,
        service,
        ("local", "local", None),
        std::time::SystemTime::now(),
    )
}

/// An HTTP client whose requests to the local `@connections` API are signed (`execute-api`,
/// the stack's default user credentials), as an SDK's would be.
pub struct Signed(pub reqwest::Client);

impl Signed {
    pub async fn send(&self, method: &str, url: &str, body: &str) -> reqwest::Response {
        let method_value = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.0.request(method_value, url);
        for (name, value) in signed_headers(method, url, body.as_bytes(), "execute-api") {
            request = request.header(name, value);
        }
        request
            .body(body.to_owned())
            .send()
            .await
            .expect("the API answers")
    }
}
