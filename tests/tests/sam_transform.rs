//! The template on SAM's `AWS::Serverless::WebSocketApi`, read two ways: chat-local's own
//! expansion of the SAM form, and the CloudFormation the pinned SAM CLI's aws-sam-translator
//! makes of it (what `sam deploy` hands to CloudFormation). Both must give the same API:
//! the resources the WebSocket API expands into, property for property; the stack model
//! (routes → functions, the authorizer, stage, throttling, every function's settings); and
//! both forms must start and chat.

mod common;

use std::collections::BTreeMap;

use chat_local::sam;
use chat_local::stack::Stack as Model;
use chat_local::template::Template;
use common::*;
use serde_json::Value;

const JWT: [&str; 3] = [
    "AuthMode=jwt",
    "JwtIssuer=https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example",
    "JwtAudience=client",
];

fn overrides(pairs: &[&str]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The two forms of the template for `pairs`: as written, and as transformed.
fn both_forms(pairs: &[&str]) -> (Template, Template) {
    let sam_form = Template::load(&repo().join("template.yaml")).unwrap();
    let pairs: Vec<String> = pairs.iter().map(|p| p.to_string()).collect();
    let translated = sam_translate(&pairs).to_string();
    let cfn_form = Template::parse(&translated).expect("chat-local reads the transformed form");
    (sam_form, cfn_form)
}

/// A resource's properties without the tags the translator adds (`createdBy: SAM`), and
/// with the pseudo parameters the translator substitutes in `Auth` and `Routes` while
/// transforming (region, account, partition: known then) substituted the same way; chat-local
/// resolves them later, to the same values.
fn untagged(properties: &Value) -> Value {
    let mut properties = properties.clone();
    if let Some(map) = properties.as_object_mut() {
        map.remove("Tags");
    }
    let text = properties.to_string().replace(
        "${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}",
        "aws:lambda:us-east-1:123456789012",
    );
    serde_json::from_str(&text).unwrap()
}

#[test]
fn chat_local_expands_the_websocket_api_as_the_sam_translator_does() {
    for pairs in [&[][..], &JWT[..]] {
        let (sam_form, cfn_form) = both_forms(pairs);
        let expanded = sam::expand(&sam_form).unwrap();
        let made: Vec<&String> = expanded
            .resources
            .keys()
            .filter(|id| !sam_form.resources.contains_key(*id) || *id == "ChatApi")
            .collect();
        assert!(
            made.len() > 20,
            "routes, integrations, permissions: {made:?}"
        );
        for id in made {
            let ours = &expanded.resources[id];
            let theirs = cfn_form
                .resources
                .get(id)
                .unwrap_or_else(|| panic!("the translator makes no {id}"));
            assert_eq!(ours.kind, theirs.kind, "{id}");
            assert_eq!(
                untagged(&ours.properties),
                untagged(&theirs.properties),
                "{id} ({pairs:?})"
            );
        }
        // And nothing of the API's the other way round.
        for (id, resource) in &cfn_form.resources {
            if resource.kind.starts_with("AWS::ApiGatewayV2::") {
                assert!(expanded.resources.contains_key(id), "{id} is missing");
            }
        }
    }
}

#[test]
fn both_forms_give_the_same_stack() {
    let region = "us-east-1";
    for pairs in [&[][..], &JWT[..]] {
        let (sam_form, cfn_form) = both_forms(pairs);
        let overrides = overrides(pairs);
        let ours = Model::from_template(&sam_form, &repo(), region, &overrides).unwrap();
        let theirs = Model::from_template(&cfn_form, &repo(), region, &overrides).unwrap();
        assert_eq!(ours.api_id, theirs.api_id);
        assert_eq!(ours.stage, theirs.stage);
        assert_eq!(ours.stage, "Test");
        assert_eq!(
            ours.route_selection_expression,
            theirs.route_selection_expression
        );
        assert_eq!(ours.routes, theirs.routes);
        assert_eq!(ours.routes.len(), 14, "{:?}", ours.routes);
        assert_eq!(ours.throttle, theirs.throttle);
        assert!(ours.throttle.stage.is_some());
        let (a, b) = (
            ours.connect_authorizer.as_ref().unwrap(),
            theirs.connect_authorizer.as_ref().unwrap(),
        );
        assert_eq!(a.function, b.function);
        assert_eq!(a.identity_sources, b.identity_sources);
        assert_eq!(a.method_arn, b.method_arn);
        assert_eq!(ours.auth_mode(), theirs.auth_mode());
        assert_eq!(
            ours.functions.keys().collect::<Vec<_>>(),
            theirs.functions.keys().collect::<Vec<_>>()
        );
        for (id, f) in &ours.functions {
            let g = &theirs.functions[id];
            assert_eq!(
                (&f.binary, f.timeout, f.memory_mb, &f.environment, &f.arn),
                (&g.binary, g.timeout, g.memory_mb, &g.environment, &g.arn),
                "{id}"
            );
        }
    }
}

/// Writes the transformed template where a stack can be started from it.
fn transformed_template_file() -> std::path::PathBuf {
    let dir = repo().join("target/sam-translated");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.json", unique("template")));
    std::fs::write(&path, sam_translate(&[]).to_string()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_forms_start_and_chat() {
    let sam_form = Stack::start(Options::project()).await;
    // The transformed form beside it, on the same DynamoDB (its own tables).
    let mut options = Options::project();
    options.template = transformed_template_file();
    options.dynamodb_endpoint = Some(sam_form.dynamodb_endpoint.clone());
    let cfn_form = Stack::start(options).await;
    for stack in [&sam_form, &cfn_form] {
        let mut alice = Client::connect(&format!("{}/Test?name=alice", stack.ws_url))
            .await
            .unwrap();
        let mut bob = stack.client().await;
        alice.say("Hello everyone").await;
        for client in [&mut alice, &mut bob] {
            let frame = client.json().await;
            assert_eq!(frame["message"], "Hello everyone", "{}", stack.ws_url);
            assert_eq!(frame["name"], "alice");
        }
        alice.close().await;
        bob.close().await;
    }
    let _ = cfn_form.stop().await;
    let _ = sam_form.stop().await;
}
