//! Least privilege in `template.yaml`, checked statement by statement: no `*` action, no
//! resource beyond this stack's table and this API's `@connections` path, each function
//! exactly the actions its route needs, invoke permissions scoped to this API, and
//! onMessage allowed to invoke FanoutFunction and nothing else.

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
    let tables: Vec<Value> = ["ChatTable", "MembersTable", "MessagesTable"]
        .iter()
        .map(|table| json!({"Fn::GetAtt": [table, "Arn"]}))
        .collect();
    let connections = json!({"Fn::Sub":
        "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${ChatApi}/${StageName}/POST/@connections/*"});
    let fanout = json!({"Fn::GetAtt": ["FanoutFunction", "Arn"]});
    let template = template();
    let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, function) in template.of_type("AWS::Serverless::Function") {
        if id == "AuthorizerFunction" {
            assert!(
                function.properties.get("Policies").is_none(),
                "the authorizer needs no AWS access: no Policies beyond SAM's logging role"
            );
            continue;
        }
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
                    let invoke = actions.iter().all(|a| a == "lambda:InvokeFunction");
                    assert!(
                        (dynamodb && tables.contains(&resource))
                            || (execute_api && resource == connections)
                            || (invoke && resource == fanout),
                        "{id} grants {actions:?} on {resource}, beyond this stack's tables, @connections path and fan-out worker"
                    );
                    let on = match resource["Fn::GetAtt"][0].as_str() {
                        Some(table) => table
                            .trim_end_matches("Table")
                            .trim_end_matches("Function")
                            .to_owned(),
                        None => "Api".to_owned(),
                    };
                    for action in &actions {
                        granted
                            .entry(id.clone())
                            .or_default()
                            .insert(format!("{on} {action}"));
                    }
                }
            }
        }
    }
    let expect = |actions: &[&str]| {
        actions
            .iter()
            .map(|a| a.to_string())
            .collect::<BTreeSet<_>>()
    };
    // Connect/Disconnect/OnMessage/Rooms also delete ids that answer 410 (DeleteItem).
    assert_eq!(
        granted["ConnectFunction"],
        expect(&[
            "Chat dynamodb:PutItem",
            "Chat dynamodb:DeleteItem",
            "Members dynamodb:PutItem",
            "Members dynamodb:Query",
            "Members dynamodb:DeleteItem",
            "Api execute-api:ManageConnections",
        ])
    );
    assert_eq!(
        granted["DisconnectFunction"],
        expect(&[
            "Chat dynamodb:DeleteItem",
            "Members dynamodb:Query",
            "Members dynamodb:DeleteItem",
            "Api execute-api:ManageConnections",
        ])
    );
    assert_eq!(
        granted["OnMessageFunction"],
        expect(&[
            "Chat dynamodb:GetItem",
            "Chat dynamodb:UpdateItem",
            "Chat dynamodb:DeleteItem",
            "Members dynamodb:Query",
            "Members dynamodb:DeleteItem",
            "Messages dynamodb:PutItem",
            "Api execute-api:ManageConnections",
            "Fanout lambda:InvokeFunction",
        ])
    );
    // The worker reads nothing: the ids come in its event; 410s are deleted.
    assert_eq!(
        granted["FanoutFunction"],
        expect(&[
            "Chat dynamodb:DeleteItem",
            "Members dynamodb:DeleteItem",
            "Api execute-api:ManageConnections",
        ])
    );
    assert_eq!(
        granted["RoomsFunction"],
        expect(&[
            "Chat dynamodb:GetItem",
            "Chat dynamodb:UpdateItem",
            "Chat dynamodb:DeleteItem",
            "Members dynamodb:PutItem",
            "Members dynamodb:Query",
            "Members dynamodb:DeleteItem",
            "Messages dynamodb:Query",
            "Api execute-api:ManageConnections",
        ])
    );
    assert_eq!(
        granted["DefaultFunction"],
        expect(&["Api execute-api:ManageConnections"])
    );
}

#[test]
fn only_this_api_may_invoke_the_functions() {
    let template = template();
    let permissions: Vec<_> = template.of_type("AWS::Lambda::Permission").collect();
    // Every function but the fan-out worker, which onMessage's role invokes (no
    // resource policy needed within the account, and none is wanted).
    let functions = template.of_type("AWS::Serverless::Function").count();
    assert_eq!(
        permissions.len(),
        functions - 1,
        "one permission per API function"
    );
    assert!(
        permissions
            .iter()
            .all(|(_, p)| p.properties["FunctionName"] != json!({"Ref": "FanoutFunction"})),
        "API Gateway may not invoke the fan-out worker"
    );
    for (id, permission) in permissions {
        let p = &permission.properties;
        assert_eq!(p["Action"], "lambda:InvokeFunction", "{id}");
        assert_eq!(p["Principal"], "apigateway.amazonaws.com", "{id}");
        let source = if id == "AuthorizerPermission" {
            assert_eq!(p["FunctionName"], json!({"Ref": "AuthorizerFunction"}));
            "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${ChatApi}/authorizers/${ChatAuthorizer}"
        } else {
            "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${ChatApi}/*"
        };
        assert_eq!(
            p["SourceArn"],
            json!({ "Fn::Sub": source }),
            "{id} is scoped to this API (the authorizer's to its authorizer)"
        );
    }
}

/// The resources CloudFormation would create for `overrides`.
fn deployed(overrides: &[(&str, &str)]) -> Vec<String> {
    use chat_local::stack::Stack;
    let overrides = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let template = template();
    Stack::from_template(&template, &common::repo(), "us-east-1", &overrides)
        .expect("the template deploys with these parameters");
    let mut scope = chat_local::template::Scope::default();
    for (name, default) in &template.parameters {
        let value = overrides
            .get(name)
            .or(default.as_ref())
            .cloned()
            .unwrap_or_default();
        scope.refs.insert(name.clone(), value);
    }
    template.evaluate_conditions(&mut scope).unwrap();
    template
        .deployed(&scope)
        .unwrap()
        .resources
        .keys()
        .cloned()
        .collect()
}

#[test]
fn open_mode_deploys_no_authorizer_and_jwt_mode_puts_one_on_connect() {
    let authorizer_parts = [
        "AuthorizerFunction",
        "AuthorizerLogGroup",
        "AuthorizerPermission",
        "ChatAuthorizer",
    ];
    let open = deployed(&[]);
    for part in authorizer_parts {
        assert!(
            !open.contains(&part.to_owned()),
            "open mode deploys no {part}"
        );
    }
    let jwt = [
        ("AuthMode", "jwt"),
        (
            "JwtIssuer",
            "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example",
        ),
        ("JwtAudience", "client"),
    ];
    let deployed_jwt = deployed(&jwt);
    for part in authorizer_parts {
        assert!(
            deployed_jwt.contains(&part.to_owned()),
            "jwt mode deploys {part}"
        );
    }
    let overrides = jwt
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let stack = chat_local::stack::Stack::from_template(
        &template(),
        &common::repo(),
        "us-east-1",
        &overrides,
    )
    .unwrap();
    let authorizer = stack
        .connect_authorizer
        .expect("$connect has the authorizer");
    assert_eq!(authorizer.function, "AuthorizerFunction");
    assert_eq!(
        authorizer.identity_sources,
        [chat_local::stack::IdentitySource::Query("token".into())]
    );
    let environment = &stack.functions["AuthorizerFunction"].environment;
    assert_eq!(environment["JWT_ISSUER"], jwt[1].1);
    assert_eq!(environment["JWT_AUDIENCE"], "client");
}

#[test]
fn jwt_mode_without_an_issuer_or_with_an_unknown_mode_does_not_deploy() {
    let stack = |overrides: &[(&str, &str)]| {
        let overrides = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        chat_local::stack::Stack::from_template(
            &template(),
            &common::repo(),
            "us-east-1",
            &overrides,
        )
    };
    let error = stack(&[("AuthMode", "jwt"), ("JwtAudience", "client")]).unwrap_err();
    assert!(format!("{error:#}").contains("JwtIssuer"), "{error:#}");
    let error = stack(&[("AuthMode", "JWT")]).unwrap_err();
    assert!(format!("{error:#}").contains("AllowedValues"), "{error:#}");
}
