//! The chat's own CloudWatch metrics: counted through the `metrics` facade and written
//! after every invocation as one Embedded Metric Format (EMF) line on standard output by
//! `metrics_cloudwatch_embedded`, which CloudWatch Logs turns into metrics (and
//! `chat-local` reads the same way).
//!
//! Every metric has two dimensions, `FunctionName` and `Stage`, never a room or a user:
//! their number stays bounded. The namespace is `METRICS_NAMESPACE` (the template's
//! `MetricsNamespace`); without one nothing is recorded. [`NAMES`] lists every metric, and
//! the template's alarms and dashboard use only names from it (a test checks).

use std::io::Write;
use std::sync::OnceLock;
use std::time::Instant;

use metrics::Unit;
use metrics_cloudwatch_embedded::Collector;

use crate::delivery::broadcast::Summary;

/// Messages written to history (a room's or a direct conversation's), repeats not included.
pub const MESSAGES_KEPT: &str = "MessagesKept";
/// Posts `@connections` accepted, in broadcasts and direct messages.
pub const DELIVERIES: &str = "Deliveries";
/// Posts answered `410 Gone`.
pub const GONE: &str = "Gone";
/// Gone connection ids deleted from the tables.
pub const PRUNED: &str = "Pruned";
/// `429` answers from `@connections` (each retry's included).
pub const THROTTLED: &str = "Throttled";
/// Posts to connections not known gone that were not delivered in the end.
pub const UNDELIVERED: &str = "Undelivered";
/// Sends refused by the per-connection rate limit.
pub const RATE_LIMITED: &str = "RateLimited";
/// How long one broadcast (or one worker's chunk) took, in milliseconds.
pub const FANOUT_DURATION: &str = "FanoutDuration";
/// Chunks handed to FanoutFunction workers.
pub const CHUNKS_HANDED_ON: &str = "ChunksHandedOn";
/// The `$connect` authorizer's answers: Allow, Deny, and errors (API Gateway answers 500).
pub const AUTHORIZER_ALLOWS: &str = "AuthorizerAllows";
pub const AUTHORIZER_DENIES: &str = "AuthorizerDenies";
pub const AUTHORIZER_ERRORS: &str = "AuthorizerErrors";
/// `history` requests answered.
pub const HISTORY_READS: &str = "HistoryReads";
/// Invocations that were their instance's first.
pub const COLD_STARTS: &str = "ColdStarts";

/// Every metric the functions emit, with its unit.
pub const NAMES: &[(&str, Unit)] = &[
    (MESSAGES_KEPT, Unit::Count),
    (DELIVERIES, Unit::Count),
    (GONE, Unit::Count),
    (PRUNED, Unit::Count),
    (THROTTLED, Unit::Count),
    (UNDELIVERED, Unit::Count),
    (RATE_LIMITED, Unit::Count),
    (FANOUT_DURATION, Unit::Milliseconds),
    (CHUNKS_HANDED_ON, Unit::Count),
    (AUTHORIZER_ALLOWS, Unit::Count),
    (AUTHORIZER_DENIES, Unit::Count),
    (AUTHORIZER_ERRORS, Unit::Count),
    (HISTORY_READS, Unit::Count),
    (COLD_STARTS, Unit::Count),
];

static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();

/// Installs the EMF recorder from the Lambda environment (`METRICS_NAMESPACE`,
/// `AWS_LAMBDA_FUNCTION_NAME`, `STAGE`) and counts this cold start. Without a namespace,
/// or when a recorder is installed already, it does nothing.
pub fn init_from_env() {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    init(
        &var("METRICS_NAMESPACE"),
        &var("AWS_LAMBDA_FUNCTION_NAME"),
        &var("STAGE"),
    );
}

/// Installs the EMF recorder for `namespace`, with the dimensions `FunctionName` =
/// `function` and `Stage` = `stage`, and counts this cold start; nothing without a
/// namespace, or when a recorder is installed already.
pub fn init(namespace: &str, function: &str, stage: &str) {
    if namespace.trim().is_empty() || COLLECTOR.get().is_some() {
        return;
    }
    let or_unknown = |value: &str| match value {
        "" => "unknown".to_owned(),
        value => value.to_owned(),
    };
    let (namespace, function, stage) = (
        namespace.to_owned(),
        or_unknown(function),
        or_unknown(stage),
    );
    let built = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace)
        .with_dimension("FunctionName", function)
        .with_dimension("Stage", stage)
        .init();
    match built {
        Ok(collector) => {
            let _ = COLLECTOR.set(collector);
            for (name, unit) in NAMES {
                describe(name, *unit);
            }
            count(COLD_STARTS, 1);
        }
        Err(error) => tracing::warn!(%error, "metrics are off: cannot install the recorder"),
    }
}

fn describe(name: &'static str, unit: Unit) {
    if unit == Unit::Count {
        metrics::describe_counter!(name, unit, "");
    } else {
        metrics::describe_histogram!(name, unit, "");
    }
}

/// Writes what this invocation counted as one EMF line (nothing when nothing was
/// counted); the counters start again from zero.
pub fn flush() {
    let mut out = std::io::stdout().lock();
    if let Err(error) = flush_to(&mut out).and_then(|()| out.flush()) {
        tracing::warn!(%error, "could not write the metrics");
    }
}

/// As [`flush`], to `out` (the benchmark measures it against a sink).
pub fn flush_to(out: impl Write) -> std::io::Result<()> {
    match COLLECTOR.get() {
        Some(collector) => collector.flush(out),
        None => Ok(()),
    }
}

/// Adds `n` to the counter `name` (one of [`NAMES`]).
pub fn count(name: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!(name).increment(n);
    }
}

/// Records how long since `started`, in milliseconds, under `name` (one of [`NAMES`]).
pub fn duration_since(name: &'static str, started: Instant) {
    metrics::histogram!(name).record(started.elapsed().as_secs_f64() * 1000.0);
}

/// Counts one broadcast's (or one worker chunk's) outcome.
pub fn broadcast(summary: &Summary, started: Instant) {
    count(DELIVERIES, summary.delivered as u64);
    count(GONE, summary.gone as u64);
    count(PRUNED, summary.pruned as u64);
    count(THROTTLED, summary.throttled as u64);
    count(UNDELIVERED, summary.undelivered as u64);
    count(CHUNKS_HANDED_ON, summary.chunks as u64);
    duration_since(FANOUT_DURATION, started);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_cloudwatch_safe() {
        let mut seen = std::collections::BTreeSet::new();
        for (name, _) in NAMES {
            assert!(seen.insert(*name), "{name} twice");
            assert!(name.len() <= 255 && name.chars().all(|c| c.is_ascii_alphanumeric()));
        }
    }
}
