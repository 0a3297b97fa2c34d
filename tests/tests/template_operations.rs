//! What `template.yaml` gives the operator, checked in the template and in the SAM
//! transform's output: the alarm topic only with `AlarmEmail`, the alarms on it, the
//! dropped-chunk queue as FanoutFunction's on-failure destination (kept 14 days, the
//! worker allowed to send there and nowhere else), and a dashboard — whose metrics, like
//! the alarms', are ones the functions really emit (`chat::metrics::NAMES`) or ones AWS
//! documents for Lambda, WebSocket APIs and SQS; and the local `/@local/metrics` page
//! draws the same widgets.

mod common;

use std::collections::BTreeSet;

use chat_local::template::Template;
use serde_json::{json, Value};

fn template() -> Template {
    Template::load(&common::repo().join("template.yaml")).expect("template.yaml parses")
}

/// AWS's metrics this template may name, per namespace.
fn aws_metric(namespace: &str, name: &str) -> bool {
    let known: &[&str] = match namespace {
        "AWS/Lambda" => &["Invocations", "Errors", "Throttles", "Duration"],
        // WebSocket APIs have no 4XX/5XX metrics; these are theirs.
        "AWS/ApiGateway" => &[
            "ConnectCount",
            "MessageCount",
            "IntegrationError",
            "ClientError",
            "ExecutionError",
            "IntegrationLatency",
        ],
        "AWS/SQS" => &[
            "ApproximateNumberOfMessagesVisible",
            "ApproximateNumberOfMessagesNotVisible",
        ],
        _ => &[],
    };
    known.contains(&name)
}

fn own_metric(name: &str) -> bool {
    chat::metrics::NAMES.iter().any(|(known, _)| *known == name)
}

#[test]
fn the_alarm_topic_exists_only_with_an_alarm_email_and_every_alarm_notifies_it() {
    let template = template();
    let topic = &template.resources["AlarmTopic"];
    assert_eq!(topic.kind, "AWS::SNS::Topic");
    assert_eq!(topic.condition.as_deref(), Some("HasAlarmEmail"));
    assert_eq!(
        template.conditions["HasAlarmEmail"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]})
    );
    assert_eq!(template.parameters["AlarmEmail"].as_deref(), Some(""));
    assert_eq!(
        topic.properties["Subscription"],
        json!([{"Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}])
    );
    let notify =
        json!({"Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]});
    let alarms: Vec<_> = template.of_type("AWS::CloudWatch::Alarm").collect();
    let ids: BTreeSet<&str> = alarms.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        BTreeSet::from([
            "FunctionErrorsAlarm",
            "FunctionThrottlesAlarm",
            "AuthorizerErrorRateAlarm",
            "UndeliveredAlarm",
            "ApiErrorsAlarm",
            "DroppedChunksAlarm",
        ])
    );
    for (id, alarm) in alarms {
        assert_eq!(alarm.properties["AlarmActions"], notify, "{id}");
        assert_eq!(alarm.properties["OKActions"], notify, "{id}");
        assert_eq!(alarm.properties["TreatMissingData"], "notBreaching", "{id}");
    }
}

/// Every metric an alarm reads: (namespace, name, dimensions).
fn alarm_metrics(alarm: &Value) -> Vec<(Value, String, Value)> {
    if let Some(name) = alarm["MetricName"].as_str() {
        return vec![(
            alarm["Namespace"].clone(),
            name.to_owned(),
            alarm["Dimensions"].clone(),
        )];
    }
    alarm["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|query| {
            let metric = query["MetricStat"].get("Metric")?;
            Some((
                metric["Namespace"].clone(),
                metric["MetricName"].as_str()?.to_owned(),
                metric["Dimensions"].clone(),
            ))
        })
        .collect()
}

#[test]
fn alarms_read_metrics_the_functions_emit_with_their_dimensions() {
    let template = template();
    let own_namespace = json!({"Ref": "MetricsNamespace"});
    for (id, alarm) in template.of_type("AWS::CloudWatch::Alarm") {
        let metrics = alarm_metrics(&alarm.properties);
        assert!(!metrics.is_empty(), "{id}");
        for (namespace, name, dimensions) in metrics {
            if namespace == own_namespace {
                assert!(own_metric(&name), "{id}: no function emits {name}");
                let names: Vec<&str> = dimensions
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["Name"].as_str().unwrap())
                    .collect();
                assert_eq!(names, ["FunctionName", "Stage"], "{id}: {name}");
            } else {
                let namespace = namespace.as_str().unwrap();
                assert!(aws_metric(namespace, &name), "{id}: {namespace} {name}");
            }
        }
        // Metric math alarms return exactly one series.
        if let Some(queries) = alarm.properties["Metrics"].as_array() {
            let returned = queries.iter().filter(|q| q["ReturnData"] == true).count();
            assert_eq!(returned, 1, "{id}");
        }
    }
    // Every function that can fail is watched for errors and throttles.
    let functions: BTreeSet<String> = template
        .of_type("AWS::Serverless::Function")
        .map(|(id, _)| id.clone())
        .filter(|id| id != "SiteFunction")
        .collect();
    for alarm in ["FunctionErrorsAlarm", "FunctionThrottlesAlarm"] {
        let watched: BTreeSet<String> = alarm_metrics(&template.resources[alarm].properties)
            .into_iter()
            .map(|(_, _, dims)| dims[0]["Value"]["Ref"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(watched, functions, "{alarm}");
    }
}

#[test]
fn the_dashboard_draws_only_metrics_that_exist() {
    let template = template();
    let body = template.resources["Dashboard"].properties["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("DashboardBody is one !Sub string")
        .replace("${MetricsNamespace}", "OWN");
    let body: Value = serde_json::from_str(&body).expect("the dashboard body is JSON");
    let mut drawn = BTreeSet::new();
    for widget in body["widgets"].as_array().unwrap() {
        for row in widget["properties"]["metrics"].as_array().unwrap() {
            let row = row.as_array().unwrap();
            let (Some(namespace), Some(name)) =
                (row[0].as_str(), row.get(1).and_then(Value::as_str))
            else {
                assert!(row[0]["expression"].is_string(), "{row:?}");
                continue;
            };
            if namespace == "OWN" {
                assert!(
                    own_metric(name),
                    "the dashboard draws {name}, which no function emits"
                );
                assert_eq!(row[2], "FunctionName");
                assert_eq!(row[4], "Stage");
            } else {
                assert!(aws_metric(namespace, name), "{namespace} {name}");
            }
            drawn.insert(name.to_owned());
        }
    }
    // Everything the functions emit is on the dashboard.
    for (name, _) in chat::metrics::NAMES {
        assert!(drawn.contains(*name), "{name} is not on the dashboard");
    }
    for name in [
        "ConnectCount",
        "Duration",
        "ApproximateNumberOfMessagesVisible",
    ] {
        assert!(drawn.contains(name), "{name}");
    }
}

/// The dashboard's widgets: each title and the (namespace, name) of every metric it draws.
fn dashboard_widgets() -> Vec<(String, Vec<(String, String)>)> {
    let body = template().resources["Dashboard"].properties["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("DashboardBody is one !Sub string")
        .replace("${MetricsNamespace}", "OWN");
    let body: Value = serde_json::from_str(&body).expect("the dashboard body is JSON");
    body["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|widget| {
            let title = widget["properties"]["title"].as_str().unwrap().to_owned();
            let metrics = widget["properties"]["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|row| Some((row[0].as_str()?.to_owned(), row[1].as_str()?.to_owned())))
                .collect();
            (title, metrics)
        })
        .collect()
}

#[test]
fn the_local_metrics_page_draws_the_dashboards_widgets() {
    let page = std::fs::read_to_string(common::repo().join("local/assets/metrics.js")).unwrap();
    let list = &page[page
        .find("const WIDGETS = [")
        .expect("the page's widget list")..];
    let list = &list[..list.find("\n  ];").expect("the list's end")];
    // Each local widget, from its title to the next one's.
    let local: Vec<(&str, &str)> = list
        .split("title: '")
        .skip(1)
        .map(|widget| widget.split_once('\'').expect("a quoted title"))
        .collect();
    let dashboard = dashboard_widgets();
    let titles = |widgets: Vec<&str>| widgets.join(" | ");
    assert_eq!(
        titles(local.iter().map(|(title, _)| *title).collect()),
        titles(dashboard.iter().map(|(title, _)| title.as_str()).collect()),
        "the same widgets in the same order"
    );
    for ((title, metrics), (_, drawn)) in dashboard.iter().zip(&local) {
        for (namespace, name) in metrics {
            // SQS's own metrics are not emulated: the on-failure stand-in's count stands in.
            let shown = if namespace == "AWS/SQS" {
                drawn.contains("dropped: true")
            } else {
                drawn.contains(&format!("'{name}'"))
            };
            assert!(
                shown,
                "the local {title} widget does not draw {namespace} {name}"
            );
        }
    }
}

#[test]
fn dropped_chunks_go_to_a_queue_kept_14_days_that_only_the_worker_may_send_to() {
    let template = template();
    let queue = &template.resources["DroppedChunksQueue"];
    assert_eq!(queue.kind, "AWS::SQS::Queue");
    assert_eq!(queue.properties["MessageRetentionPeriod"], 1_209_600);
    let config = &template.resources["FanoutFunction"].properties["EventInvokeConfig"];
    assert_eq!(config["MaximumRetryAttempts"], 2);
    assert_eq!(
        config["DestinationConfig"]["OnFailure"],
        json!({"Type": "SQS", "Destination": {"Fn::GetAtt": ["DroppedChunksQueue", "Arn"]}})
    );
    // What the SAM transform makes of it: Lambda's EventInvokeConfig with the queue, and
    // the worker's role allowed to send to that queue alone.
    let translated = common::sam_translate(&[]);
    let resources = translated["Resources"].as_object().unwrap();
    let invoke_config = resources
        .values()
        .find(|r| r["Type"] == "AWS::Lambda::EventInvokeConfig")
        .expect("an AWS::Lambda::EventInvokeConfig");
    assert_eq!(
        invoke_config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"],
        json!({"Fn::GetAtt": ["DroppedChunksQueue", "Arn"]})
    );
    let mut senders = Vec::new();
    for (id, resource) in resources {
        if resource["Type"] != "AWS::IAM::Role" {
            continue;
        }
        let policies = resource["Properties"]["Policies"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for statement in policies.iter().flat_map(|p| {
            p["PolicyDocument"]["Statement"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        }) {
            let text = statement.to_string();
            if text.contains("sqs:") {
                assert!(text.contains("DroppedChunksQueue"), "{id}: {text}");
                assert!(!text.contains("\"*\""), "{id}: {text}");
                senders.push(id.clone());
            }
        }
    }
    assert_eq!(
        senders,
        ["FanoutFunctionRole"],
        "only the worker sends to the queue"
    );
}
