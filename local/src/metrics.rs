//! The local stand-in for CloudWatch metrics: the functions' Embedded Metric Format lines
//! (read from their standard output, as CloudWatch Logs reads them) and the metrics the
//! stack records for itself under AWS's names (`AWS/Lambda` per function, `AWS/ApiGateway`
//! per API and stage), kept in memory in 10-second buckets (the newest sixty of each
//! series: ten minutes of a busy one).
//!
//! Served as `/@local/metrics.json` and drawn by `/@local/metrics` on the WebSocket port.
//! Hand-written: EMF parsing is one JSON shape, and no crate reads it back.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// The width of one bucket.
pub const BUCKET_MS: i64 = 10_000;
/// How many buckets each series keeps (ten minutes).
pub const BUCKETS: usize = 60;
/// How many values per series are kept for percentiles (of the last ten minutes).
const VALUES_KEPT: usize = 10_000;
/// How old an EMF document's `Timestamp` may be, as CloudWatch accepts data points: two
/// weeks back…
const OLDEST_MS: i64 = 14 * 24 * 3_600_000;
/// …and two hours ahead.
const NEWEST_MS: i64 = 2 * 3_600_000;
/// How many series are kept: dimensions come from what functions print, so their number
/// is bounded here (the chat's own are a few dozen).
pub const MAX_SERIES: usize = 2_000;

/// One metric's identity: namespace, name and dimensions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    start_ms: i64,
    sum: f64,
    count: u64,
    min: f64,
    max: f64,
}

impl Bucket {
    fn add(&mut self, value: f64) {
        self.sum += value;
        self.count += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }
}

#[derive(Debug, Default)]
struct Series {
    unit: String,
    sum: f64,
    count: u64,
    min: Option<f64>,
    max: Option<f64>,
    buckets: VecDeque<Bucket>,
    /// The newest values and when they were recorded, for percentiles (of durations).
    values: VecDeque<(i64, f64)>,
}

impl Series {
    fn add(&mut self, at_ms: i64, value: f64) {
        self.sum += value;
        self.count += 1;
        self.min = Some(self.min.map_or(value, |m| m.min(value)));
        self.max = Some(self.max.map_or(value, |m| m.max(value)));
        let start_ms = at_ms.saturating_sub(at_ms.rem_euclid(BUCKET_MS));
        match self
            .buckets
            .iter_mut()
            .rev()
            .find(|b| b.start_ms == start_ms)
        {
            Some(bucket) => bucket.add(value),
            None => {
                let bucket = Bucket {
                    start_ms,
                    sum: value,
                    count: 1,
                    min: value,
                    max: value,
                };
                let at = self.buckets.partition_point(|b| b.start_ms < start_ms);
                self.buckets.insert(at, bucket);
                while self.buckets.len() > BUCKETS {
                    self.buckets.pop_front();
                }
            }
        }
        if self.unit != "Count" {
            self.values.push_back((at_ms, value));
            if self.values.len() > VALUES_KEPT {
                self.values.pop_front();
            }
        }
    }
}

/// The `p`th percentile (nearest rank) of `sorted` values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Every metric the stack has seen.
#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<Key, Series>>,
}

/// The time now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Metrics {
    fn series(&self) -> MutexGuard<'_, BTreeMap<Key, Series>> {
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `values` of one metric at `at_ms` (a new series past [`MAX_SERIES`] is
    /// dropped).
    pub fn record(&self, key: Key, unit: &str, at_ms: i64, values: &[f64]) {
        let mut series = self.series();
        if series.len() >= MAX_SERIES && !series.contains_key(&key) {
            return;
        }
        let entry = series.entry(key).or_insert_with(|| Series {
            unit: unit.to_owned(),
            ..Series::default()
        });
        for value in values {
            entry.add(at_ms, *value);
        }
    }

    /// Records one value of an `AWS/…` metric the stack itself measures.
    pub fn aws(
        &self,
        namespace: &str,
        name: &str,
        dimensions: &[(&str, &str)],
        unit: &str,
        value: f64,
    ) {
        let key = Key {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            dimensions: dimensions
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        self.record(key, unit, now_ms(), &[value]);
    }

    /// Counts one of API Gateway's WebSocket metrics (`ConnectCount`, `MessageCount`,
    /// `ClientError`, `IntegrationError`, `ExecutionError`) for the API `api_id`'s `stage`.
    pub fn api_gateway(&self, name: &str, api_id: &str, stage: &str) {
        let dimensions = [("ApiId", api_id), ("Stage", stage)];
        self.aws("AWS/ApiGateway", name, &dimensions, "Count", 1.0);
    }

    /// Reads one line of a function's output: when it is an EMF document, its metrics are
    /// recorded and `true` is returned (the line is CloudWatch's, not the reader's).
    pub fn ingest_line(&self, line: &str) -> bool {
        let line = line.trim();
        if !line.starts_with('{') || !line.contains("\"_aws\"") {
            return false;
        }
        let Ok(Value::Object(document)) = serde_json::from_str::<Value>(line) else {
            return false;
        };
        match parse_emf(&document, now_ms()) {
            Some(records) => {
                for (key, unit, at_ms, values) in records {
                    self.record(key, &unit, at_ms, &values);
                }
                true
            }
            None => false,
        }
    }

    /// The sum of every value recorded for `name` (any namespace) whose dimensions
    /// include `dimensions`.
    pub fn sum(&self, name: &str, dimensions: &[(&str, &str)]) -> f64 {
        self.series()
            .iter()
            .filter(|(key, _)| key.name == name)
            .filter(|(key, _)| {
                dimensions
                    .iter()
                    .all(|(k, v)| key.dimensions.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, s)| s.sum)
            .sum()
    }

    /// Everything, as `/@local/metrics.json` serves it.
    pub fn snapshot(&self) -> Value {
        // Percentiles are of the charted window, as the page shows them.
        let since = now_ms() - BUCKETS as i64 * BUCKET_MS;
        // Copied out first: the gateway counts every message under the same lock.
        let copied: Vec<(Key, Value, Vec<f64>)> = self
            .series()
            .iter()
            .map(|(key, s)| {
                let points: Vec<Value> = s
                    .buckets
                    .iter()
                    .map(|b| json!({"t": b.start_ms, "sum": b.sum, "count": b.count, "min": b.min, "max": b.max}))
                    .collect();
                let summary = json!({
                    "unit": s.unit, "sum": s.sum, "count": s.count, "min": s.min, "max": s.max,
                    "points": points,
                });
                let window = s.values.iter().filter(|(at, _)| *at >= since);
                (key.clone(), summary, window.map(|(_, v)| *v).collect())
            })
            .collect();
        let metrics: Vec<Value> = copied
            .into_iter()
            .map(|(key, mut summary, mut values)| {
                values.sort_by(f64::total_cmp);
                summary["namespace"] = json!(key.namespace);
                summary["name"] = json!(key.name);
                summary["dimensions"] = json!(key.dimensions);
                summary["p50"] = json!(percentile(&values, 50.0));
                summary["p99"] = json!(percentile(&values, 99.0));
                summary
            })
            .collect();
        json!({"now": now_ms(), "bucketSeconds": BUCKET_MS / 1000, "metrics": metrics})
    }
}

type Record = (Key, String, i64, Vec<f64>);

/// The metrics of one EMF document (the specification's shape: `_aws.Timestamp`,
/// `_aws.CloudWatchMetrics[]` of `Namespace`, `Dimensions` and `Metrics`, values at the
/// root); `None` when it is not a valid one, or its time is one CloudWatch would refuse
/// (more than two weeks before `now_ms` or two hours after).
fn parse_emf(document: &Map<String, Value>, now_ms: i64) -> Option<Vec<Record>> {
    let aws = document.get("_aws")?.as_object()?;
    let at_ms = aws.get("Timestamp")?.as_i64()?;
    if !(now_ms.saturating_sub(OLDEST_MS)..=now_ms.saturating_add(NEWEST_MS)).contains(&at_ms) {
        return None;
    }
    let mut records = Vec::new();
    for directive in aws.get("CloudWatchMetrics")?.as_array()? {
        let namespace = directive.get("Namespace")?.as_str()?;
        let dimension_sets: Vec<Vec<&str>> = directive
            .get("Dimensions")?
            .as_array()?
            .iter()
            .map(|set| {
                set.as_array()
                    .map(|s| s.iter().filter_map(Value::as_str).collect())
            })
            .collect::<Option<_>>()?;
        for metric in directive.get("Metrics")?.as_array()? {
            let name = metric.get("Name")?.as_str()?;
            let unit = metric.get("Unit").and_then(Value::as_str).unwrap_or("None");
            let values = match document.get(name)? {
                Value::Number(n) => vec![n.as_f64()?],
                Value::Array(items) => items.iter().filter_map(Value::as_f64).collect(),
                _ => return None,
            };
            let sets = if dimension_sets.is_empty() {
                vec![Vec::new()]
            } else {
                dimension_sets.clone()
            };
            for set in sets {
                let dimensions = set
                    .iter()
                    .map(|d| Some(((*d).to_owned(), document.get(*d)?.as_str()?.to_owned())))
                    .collect::<Option<BTreeMap<_, _>>>()?;
                let key = Key {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    dimensions,
                };
                records.push((key, unit.to_owned(), at_ms, values.clone()));
            }
        }
    }
    Some(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An EMF line of `at_ms`.
    fn line(at_ms: i64) -> String {
        format!(
            r#"{{"_aws":{{"Timestamp":{at_ms},"CloudWatchMetrics":[{{"Namespace":"Chat","Dimensions":[["FunctionName","Stage"]],"Metrics":[{{"Name":"Deliveries","Unit":"Count"}},{{"Name":"FanoutDuration","Unit":"Milliseconds"}}]}}]}},"FunctionName":"OnMessageFunction","Stage":"Test","Deliveries":3,"FanoutDuration":[4.5,9.0]}}"#
        )
    }

    /// The `FanoutDuration` series as `/@local/metrics.json` serves it.
    fn fanout_duration(metrics: &Metrics) -> Value {
        metrics.snapshot()["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "FanoutDuration")
            .unwrap()
            .clone()
    }

    #[test]
    fn an_emf_line_is_recorded_per_metric_and_dimension() {
        let metrics = Metrics::default();
        let at_ms = now_ms();
        assert!(metrics.ingest_line(&line(at_ms)));
        assert!(metrics.ingest_line(&line(at_ms)));
        let on_message = [("FunctionName", "OnMessageFunction"), ("Stage", "Test")];
        assert_eq!(metrics.sum("Deliveries", &on_message), 6.0);
        assert_eq!(metrics.sum("Deliveries", &[("FunctionName", "Other")]), 0.0);
        let duration = fanout_duration(&metrics);
        assert_eq!(duration["count"], 4);
        assert_eq!(duration["p50"], 4.5);
        assert_eq!(duration["p99"], 9.0);
        assert_eq!(
            duration["points"][0]["t"],
            at_ms - at_ms.rem_euclid(BUCKET_MS)
        );
    }

    #[test]
    fn a_time_cloudwatch_would_refuse_is_not_recorded() {
        let metrics = Metrics::default();
        let hour = 3_600_000;
        for at_ms in [
            now_ms() - 15 * 24 * hour,
            now_ms() + 3 * hour,
            i64::MIN,
            i64::MAX,
        ] {
            assert!(!metrics.ingest_line(&line(at_ms)), "{at_ms}");
        }
        assert_eq!(metrics.snapshot()["metrics"], json!([]));
        // An hour late is still taken, but its values are not of the charted window.
        assert!(metrics.ingest_line(&line(now_ms() - hour)));
        let duration = fanout_duration(&metrics);
        assert_eq!(duration["count"], 2);
        assert_eq!(duration["p50"], Value::Null);
    }

    #[test]
    fn other_lines_are_left_to_the_log() {
        let metrics = Metrics::default();
        for line in [
            "START RequestId: 1",
            r#"{"level":"INFO","message":"hello"}"#,
            r#"{"_aws":{"Timestamp":"soon"}}"#,
            r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["D"]],"Metrics":[{"Name":"M"}]}]},"M":1}"#,
        ] {
            assert!(!metrics.ingest_line(line), "{line}");
        }
        assert_eq!(metrics.snapshot()["metrics"], json!([]));
    }

    #[test]
    fn buckets_keep_ten_minutes_in_order() {
        let metrics = Metrics::default();
        let key = Key {
            namespace: "N".into(),
            name: "M".into(),
            dimensions: BTreeMap::new(),
        };
        for i in (0..70).rev() {
            metrics.record(key.clone(), "Count", i * BUCKET_MS, &[1.0]);
        }
        let snapshot = metrics.snapshot();
        let points = snapshot["metrics"][0]["points"].as_array().unwrap();
        assert_eq!(points.len(), BUCKETS);
        assert!(points
            .windows(2)
            .all(|w| w[0]["t"].as_i64() < w[1]["t"].as_i64()));
        assert_eq!(snapshot["metrics"][0]["sum"], 70.0);
    }
}
