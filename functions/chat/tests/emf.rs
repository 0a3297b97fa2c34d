//! The line a function writes after each invocation, with the real EMF recorder: one
//! JSON document in the template's namespace, dimensioned by function and stage, with each
//! metric's unit and this invocation's values only; nothing at all when nothing happened.

use chat::metrics::{self, DELIVERIES, FANOUT_DURATION, MESSAGES_KEPT};
use serde_json::{json, Value};

fn flushed() -> Vec<Value> {
    let mut out = Vec::new();
    metrics::flush_to(&mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON document"))
        .collect()
}

fn unit_of<'a>(document: &'a Value, name: &str) -> &'a str {
    document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Name"] == name)
        .unwrap_or_else(|| panic!("{name} in {document}"))["Unit"]
        .as_str()
        .unwrap()
}

#[test]
fn each_invocation_writes_its_own_counts_once() {
    std::env::set_var("METRICS_NAMESPACE", "TestChat");
    std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "test-on-message");
    std::env::set_var("STAGE", "Test");
    metrics::init_from_env();

    // The first invocation: a cold start, one message kept and broadcast to five.
    let summary = chat::delivery::broadcast::Summary {
        delivered: 5,
        gone: 1,
        pruned: 1,
        ..Default::default()
    };
    metrics::count(MESSAGES_KEPT, 1);
    metrics::broadcast(&summary, std::time::Instant::now());
    let lines = flushed();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let document = &lines[0];
    let directive = &document["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "TestChat");
    assert_eq!(directive["Dimensions"], json!([["FunctionName", "Stage"]]));
    assert!(document["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    assert_eq!(document["FunctionName"], "test-on-message");
    assert_eq!(document["Stage"], "Test");
    assert_eq!(document["ColdStarts"], 1);
    assert_eq!(document[MESSAGES_KEPT], 1);
    assert_eq!(document[DELIVERIES], 5);
    assert_eq!(document["Gone"], 1);
    assert_eq!(document["Pruned"], 1);
    // Zero counts are left out (CloudWatch then has no datapoint, which alarms treat as
    // not breaching), and a duration is a list of values.
    assert!(document.get("Undelivered").is_none(), "{document}");
    assert_eq!(document[FANOUT_DURATION].as_array().unwrap().len(), 1);
    assert_eq!(unit_of(document, DELIVERIES), "Count");
    assert_eq!(unit_of(document, FANOUT_DURATION), "Milliseconds");

    // An invocation that counted nothing writes nothing.
    assert!(flushed().is_empty());

    // The next one: its own counts only, and no cold start.
    metrics::count(DELIVERIES, 2);
    let lines = flushed();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0][DELIVERIES], 2);
    assert!(lines[0].get("ColdStarts").is_none());
    assert!(lines[0].get(MESSAGES_KEPT).is_none());
}
