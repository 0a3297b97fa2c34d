//! Least privilege in `template.yaml`, checked statement by statement: no `*` action, no
//! resource beyond this stack's table and this API's `@connections` path, each function
//! exactly the actions its route needs, invoke permissions (made by the SAM transform)
//! scoped to this API, stage and route, and onMessage allowed to invoke FanoutFunction and
//! nothing else.

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

/// Only this API may invoke the functions, each only for its own routes on this stage,
/// and the authorizer only through this API's authorizers: checked on the template as
/// CloudFormation receives it (the SAM transform makes the permissions).
#[test]
fn only_this_api_may_invoke_the_functions() {
    let translated = common::sam_translate(&[]);
    let resources = translated["Resources"].as_object().unwrap();
    let mut allowed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, resource) in resources {
        if resource["Type"] != "AWS::Lambda::Permission" {
            continue;
        }
        let p = &resource["Properties"];
        assert_eq!(p["Action"], "lambda:InvokeFunction", "{id}");
        assert_eq!(p["Principal"], "apigateway.amazonaws.com", "{id}");
        let function = p["FunctionName"]["Fn::GetAtt"][0].as_str().unwrap();
        let (arn, variables) = (&p["SourceArn"]["Fn::Sub"][0], &p["SourceArn"]["Fn::Sub"][1]);
        let arn = arn.as_str().unwrap();
        let prefix = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:";
        let scope = arn
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{id}: {arn} is not this account's execute-api"));
        let route = if function == "AuthorizerFunction" {
            assert_eq!(scope, "${__ApiId__}/authorizers/*", "{id}");
            assert_eq!(variables["__ApiId__"], json!({"Ref": "ChatApi"}));
            "authorizer".to_owned()
        } else {
            let route = scope
                .strip_prefix("${ChatApi.ApiId}/${__StageName__}/")
                .unwrap_or_else(|| panic!("{id}: {arn} is not scoped to this API's stage"));
            assert_eq!(variables["__StageName__"], json!({"Ref": "StageName"}));
            route.to_owned()
        };
        allowed
            .entry(function.to_owned())
            .or_default()
            .insert(route);
    }
    let routes = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<BTreeSet<_>>();
    let expected: BTreeMap<String, BTreeSet<String>> = [
        ("AuthorizerFunction", routes(&["authorizer"])),
        ("ConnectFunction", routes(&["$connect"])),
        ("DefaultFunction", routes(&["$default"])),
        ("DisconnectFunction", routes(&["$disconnect"])),
        ("OnMessageFunction", routes(&["onMessage"])),
        ("RoomsFunction", routes(&["join", "who", "history"])),
    ]
    .into_iter()
    .map(|(f, r)| (f.to_owned(), r))
    .collect();
    // The fan-out worker is invoked by onMessage's role (no resource policy needed within
    // the account, and none is wanted): API Gateway may not invoke it.
    assert_eq!(allowed, expected);
}

#[test]
fn every_mode_puts_the_authorizer_on_connect_and_open_mode_lets_everyone_in() {
    use chat_local::stack::Stack;
    let stack = |overrides: &[(&str, &str)]| {
        let overrides = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Stack::from_template(&template(), &common::repo(), "us-east-1", &overrides).unwrap()
    };
    let open = stack(&[]);
    let authorizer = open
        .connect_authorizer
        .clone()
        .expect("$connect has the authorizer");
    assert_eq!(authorizer.function, "AuthorizerFunction");
    assert!(
        authorizer.identity_sources.is_empty(),
        "no identity source: a token may come in the query or in Sec-WebSocket-Protocol"
    );
    assert_eq!(open.auth_mode(), "open");
    assert_eq!(
        open.functions["AuthorizerFunction"].environment["AUTH_MODE"],
        "open"
    );
    let issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example";
    let jwt = stack(&[
        ("AuthMode", "jwt"),
        ("JwtIssuer", issuer),
        ("JwtAudience", "client"),
    ]);
    assert_eq!(jwt.auth_mode(), "jwt");
    let environment = &jwt.functions["AuthorizerFunction"].environment;
    assert_eq!(environment["JWT_ISSUER"], issuer);
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
