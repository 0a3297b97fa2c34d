//! A Lambda that misbehaves on request, for fault tests of the local stack.
//!
//! `$connect`: `?status=403` answers that status, `?crash=1` exits mid-invocation,
//! `?protocol=chat` answers with that `Sec-WebSocket-Protocol` header.
//! Messages `{"action":"fault","mode":…}`: `crash` exits, `hang` sleeps past any
//! Timeout, `error` reports a function error, `big` answers past Lambda's 6 MB response
//! limit, anything else answers 200.
//! With `EVENT_LOG` set, every event is appended to that file, one JSON per line.
//! As a fan-out worker (an event with `connectionIds`) it is the real `FanoutFunction`,
//! except that it crashes on chunk `CRASH_ON_CHUNK` the first time it sees it (a file at
//! `CRASH_MARKER` remembers that it did), or every time when there is no `CRASH_MARKER`;
//! it writes the worker's metrics as FanoutFunction does.

use std::io::Write;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

static WORKER: tokio::sync::OnceCell<chat::App> = tokio::sync::OnceCell::const_new();

/// A fan-out job: crash on the chosen chunk once, else post it as `FanoutFunction` does.
async fn fan_out(job: chat::delivery::fanout::Job, deadline_ms: u64) -> Result<Value, Error> {
    let crash_on = std::env::var("CRASH_ON_CHUNK").ok();
    let marker = std::env::var("CRASH_MARKER").unwrap_or_default();
    // No marker: every try crashes, so the chunk ends at the on-failure destination.
    if crash_on.as_deref() == Some(job.chunk.to_string().as_str())
        && (marker.is_empty()
            || std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&marker)
                .is_ok())
    {
        std::process::exit(3);
    }
    let app = WORKER.get_or_try_init(chat::App::from_env).await?;
    let done = chat::delivery::budget::within(deadline_ms, Box::pin(app.fan_out_chunk(job)));
    Ok(match done.await {
        Some(summary) => {
            json!({"delivered": summary.delivered, "gone": summary.gone, "failed": summary.failed})
        }
        None => json!({"refused": true}),
    })
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let deadline_ms = event.context.deadline;
    let event = event.payload;
    if let Some(path) = std::env::var("EVENT_LOG").ok().filter(|p| !p.is_empty()) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(file, "{event}")?;
    }
    if event.get("connectionIds").is_some() {
        // As FanoutFunction: its metrics written after the chunk.
        let answer = fan_out(serde_json::from_value(event)?, deadline_ms).await;
        chat::metrics::flush();
        return answer;
    }
    let query = |name: &str| {
        event
            .pointer(&format!("/queryStringParameters/{name}"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mode = event
        .get("body")
        .and_then(Value::as_str)
        .and_then(|body| serde_json::from_str::<Value>(body).ok())
        .and_then(|body| body.get("mode").and_then(Value::as_str).map(str::to_owned))
        .or_else(|| query("crash").map(|_| "crash".to_owned()));
    match mode.as_deref() {
        Some("crash") => std::process::exit(3),
        Some("hang") => {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            Ok(json!({"statusCode": 200}))
        }
        Some("error") => Err("the fault function was asked to fail".into()),
        Some("big") => Ok(json!({"statusCode": 200, "body": "x".repeat(7 * 1024 * 1024)})),
        _ => {
            let status: u16 = query("status").and_then(|s| s.parse().ok()).unwrap_or(200);
            match query("protocol") {
                Some(protocol) => Ok(json!({
                    "statusCode": status,
                    "headers": {"Sec-WebSocket-Protocol": protocol},
                })),
                None => Ok(json!({"statusCode": status})),
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    chat::metrics::init_from_env();
    lambda_runtime::run(service_fn(handle)).await
}
