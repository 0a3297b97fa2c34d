//! The local stand-in for asynchronous invocations' on-failure destinations: an event
//! that failed every try is kept here, in the record Lambda sends to the destination
//! (an SQS queue on AWS), under the destination's logical id. Served as
//! `/@local/on-failure.json` on the WebSocket port for scripts and tests. Each destination
//! keeps its newest [`KEPT`] records (an SQS queue keeps 14 days' worth; this is memory).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{json, Value};

use crate::stack::Function;

/// How many records each destination keeps, the newest.
pub const KEPT: usize = 1000;

/// The records kept, per destination.
#[derive(Debug, Default)]
pub struct OnFailure {
    records: Mutex<BTreeMap<String, VecDeque<Value>>>,
}

impl OnFailure {
    fn records(&self) -> MutexGuard<'_, BTreeMap<String, VecDeque<Value>>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `record` for `destination` (dropping its oldest past [`KEPT`]).
    pub fn push(&self, destination: &str, record: Value) {
        let mut records = self.records();
        let kept = records.entry(destination.to_owned()).or_default();
        kept.push_back(record);
        if kept.len() > KEPT {
            kept.pop_front();
        }
    }

    /// How many records each destination holds.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.records()
            .iter()
            .map(|(k, v)| (k.clone(), v.len()))
            .collect()
    }

    /// Every record, per destination, oldest first.
    pub fn snapshot(&self) -> Value {
        json!(*self.records())
    }
}

/// Lambda's on-failure record for the event `request_id` (the id the `Invoke` call
/// answered with) of `function` that failed `attempts` times, the last time with `error`
/// (`errorType`, `errorMessage`). The payload is kept as JSON, or as text when it is not
/// JSON.
pub fn record(
    function: &Function,
    request_id: &str,
    payload: &[u8],
    attempts: usize,
    error: Value,
) -> Value {
    let request_payload = serde_json::from_slice::<Value>(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
    json!({
        "version": "1.0",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "requestContext": {
            "requestId": request_id,
            "functionArn": format!("{}:$LATEST", function.arn),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": request_payload,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_destination_keeps_its_newest_records() {
        let on_failure = OnFailure::default();
        for n in 0..KEPT + 5 {
            on_failure.push("Queue", json!({"n": n}));
        }
        on_failure.push("Other", json!({"n": 0}));
        assert_eq!(on_failure.counts()["Queue"], KEPT);
        assert_eq!(on_failure.counts()["Other"], 1);
        assert_eq!(on_failure.snapshot()["Queue"][0]["n"], 5);
    }
}
