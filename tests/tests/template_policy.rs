//! Least privilege in `template.yaml`, checked statement by statement: no `*` action, no
//! resource beyond this stack's table and this API's `@connections` path, each function
//! exactly the actions its route needs, and invoke permissions scoped to this API.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chat_local::template::Template;
use serde_json::{json, Value};

fn template() -> Template {
    Template::load(&common::repo().join("template.yaml")).expect("template.yaml parses")
}

fn list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

#[test]
fn every_statement_is_scoped_to_this_stack() {
    let table = json!({"Fn::GetAtt": ["ChatTable", "Arn"]});
    let connections = json!({"Fn::Sub":
        "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${ChatApi}/${StageName}/POST/@connections/*"});
    let template = template();
    let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, function) in template.of_type("AWS::Serverless::Function") {
        let policies = function.properties["Policies"]
            .as_array()
            .unwrap_or_else(|| panic!("{id} has inline Policies"));
        for policy in policies {
            let statements = policy["Statement"].as_array().unwrap_or_else(|| {
                panic!("{id}: policy templates or managed policies are not allowed here: {policy}")
            });
            for statement in statements {
                assert_eq!(statement["Effect"], "Allow", "{id}");
                let actions: Vec<String> = list(&statement["Action"])
                    .iter()
                    .map(|a| a.as_str().unwrap().to_owned())
                    .collect();
                for action in &actions {
                    assert!(
                        !action.contains('*'),
                        "{id} grants a wildcard action {action}"
                    );
                }
                for resource in list(&statement["Resource"]) {
                    let dynamodb = actions.iter().all(|a| a.starts_with("dynamodb:"));
                    let execute_api = actions.iter().all(|a| a == "execute-api:ManageConnections");
                    assert!(
                        (dynamodb && resource == table) || (execute_api && resource == connections),
                        "{id} grants {actions:?} on {resource}, beyond this stack's table and @connections path"
                    );
                }
                granted.entry(id.clone()).or_default().extend(actions);
            }
        }
    }
    let expect = |actions: &[&str]| {
        actions
            .iter()
            .map(|a| a.to_string())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(granted["ConnectFunction"], expect(&["dynamodb:PutItem"]));
    assert_eq!(
        granted["DisconnectFunction"],
        expect(&["dynamodb:DeleteItem"])
    );
    assert_eq!(
        granted["OnMessageFunction"],
        expect(&[
            "dynamodb:Scan",
            "dynamodb:DeleteItem",
            "execute-api:ManageConnections"
        ])
    );
    assert_eq!(
        granted["DefaultFunction"],
        expect(&["execute-api:ManageConnections"])
    );
}

#[test]
fn only_this_api_may_invoke_the_functions() {
    let template = template();
    let permissions: Vec<_> = template.of_type("AWS::Lambda::Permission").collect();
    assert_eq!(permissions.len(), 4, "one permission per function");
    for (id, permission) in permissions {
        let p = &permission.properties;
        assert_eq!(p["Action"], "lambda:InvokeFunction", "{id}");
        assert_eq!(p["Principal"], "apigateway.amazonaws.com", "{id}");
        assert_eq!(
            p["SourceArn"],
            json!({"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${ChatApi}/*"}),
            "{id} is scoped to this API"
        );
    }
}
