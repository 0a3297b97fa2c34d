//! The hosted page's `SiteContent` custom resource through its real path: the real
//! `SiteFunction` under the local Lambda runtime, writing to the local S3 through the AWS
//! SDK, answering CloudFormation's protocol with a `PUT` to the request's `ResponseURL`
//! (served here, as CloudFormation's pre-signed S3 URL would be). The stack runs `Create`
//! at start as a deploy does; Update rewrites, Delete empties the bucket (and a bucket
//! already gone is fine), and bad requests are answered `FAILED` with the reason. The page on
//! the WebSocket port reads that configuration and carries the distribution's security
//! headers, with the local endpoints in place of AWS's.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::put;
use common::*;
use serde_json::{json, Value};

/// One answer on the ResponseURL: its Content-Type and body.
type Answer = (Option<String>, Value);

/// What CloudFormation's ResponseURL received, in order.
#[derive(Clone, Default)]
struct Answers(Arc<Mutex<Vec<Answer>>>);

impl Answers {
    /// Serves a ResponseURL on loopback; its URL.
    async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/cfn-answer", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route(
                "/cfn-answer",
                put(
                    |State(answers): State<Answers>, headers: HeaderMap, body: String| async move {
                        let kind = headers
                            .get("content-type")
                            .map(|v| v.to_str().unwrap_or_default().to_owned());
                        answers
                            .0
                            .lock()
                            .unwrap()
                            .push((kind, serde_json::from_str(&body).unwrap()));
                    },
                ),
            )
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    async fn next(&self, count: usize) -> (Option<String>, Value) {
        eventually(&format!("answer {count} on the ResponseURL"), || async {
            self.0.lock().unwrap().len() >= count
        })
        .await;
        self.0.lock().unwrap()[count - 1].clone()
    }
}

fn lambda(stack: &Stack) -> aws_sdk_lambda::Client {
    stack.lambda()
}

fn request(kind: &str, response_url: &str, properties: Value) -> Value {
    json!({
        "RequestType": kind, "ResponseURL": response_url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/local/1",
        "RequestId": format!("req-{kind}-{}", unique("r")), "LogicalResourceId": "SiteContent",
        "ResourceType": "Custom::SiteContent", "PhysicalResourceId": "site-content-local-sitebucket",
        "ResourceProperties": properties,
    })
}

/// Invokes SiteFunction as CloudFormation does (asynchronously).
async fn send(stack: &Stack, event: &Value) {
    let output = lambda(stack)
        .invoke()
        .function_name("SiteFunction")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(event.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(output.status_code(), 202);
}

async fn get(url: &str) -> (u16, HeaderMap, String) {
    let response = reqwest::get(url).await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let mut map = HeaderMap::new();
    for (name, value) in headers.iter() {
        map.insert(
            name.as_str().parse::<axum::http::HeaderName>().unwrap(),
            value.to_str().unwrap().parse().unwrap(),
        );
    }
    (status, map, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_content_is_written_at_start_rewritten_emptied_and_failures_are_answered() {
    let stack = Stack::start(Options::project()).await;
    let bucket = format!("{}/local-sitebucket", stack.s3_url);
    assert!(
        stack.printed("Custom resource SiteContent (Custom::SiteContent) created by SiteFunction")
    );

    // Create ran at start: the page and its configuration, for this stack.
    let (status, headers, html) = get(&format!("{bucket}/index.html")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(
        html,
        std::fs::read_to_string(repo().join("web/index.html")).unwrap()
    );
    for file in ["app.js", "chat.js", "oidc.js", "style.css"] {
        assert_eq!(get(&format!("{bucket}/{file}")).await.0, 200, "{file}");
    }
    let (_, _, config) = get(&format!("{bucket}/chat-config.json")).await;
    let config: Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        config,
        json!({"authMode": "open", "webSocketUrl": format!("{}/Test", stack.ws_url)}),
        "the page's configuration names this stack's API (its local endpoint)"
    );

    let answers = Answers::default();
    let url = answers.serve().await;
    let properties = json!({"ServiceToken": "arn", "Bucket": "local-sitebucket",
        "Config": {"authMode": "cognito", "webSocketUrl": "wss://abc.execute-api.us-east-1.amazonaws.com/Test",
            "issuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_X", "clientId": "client-1"}});

    // Update: rewritten, answered SUCCESS on the ResponseURL with no Content-Type.
    let update = request("Update", &url, properties.clone());
    send(&stack, &update).await;
    let (kind, answer) = answers.next(1).await;
    assert_eq!(
        kind.as_deref().unwrap_or(""),
        "",
        "the pre-signed URL is signed without a Content-Type"
    );
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["RequestId"], update["RequestId"]);
    assert_eq!(
        answer["PhysicalResourceId"],
        "site-content-local-sitebucket"
    );
    assert_eq!(answer["Data"]["Objects"], 6);
    let (_, _, config) = get(&format!("{bucket}/chat-config.json")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&config).unwrap()["clientId"],
        "client-1"
    );

    // A bad configuration: FAILED, with the reason.
    let mut bad = properties.clone();
    bad["Config"]["authMode"] = json!("magic");
    send(&stack, &request("Update", &url, bad)).await;
    let (_, answer) = answers.next(2).await;
    assert_eq!(answer["Status"], "FAILED");
    assert!(
        answer["Reason"].as_str().unwrap().contains("magic"),
        "{answer}"
    );

    // A bucket that does not exist: FAILED, saying so.
    let mut missing = properties.clone();
    missing["Bucket"] = json!("no-such-bucket");
    send(&stack, &request("Create", &url, missing.clone())).await;
    let (_, answer) = answers.next(3).await;
    assert_eq!(answer["Status"], "FAILED");
    assert!(
        answer["Reason"].as_str().unwrap().contains("NoSuchBucket"),
        "{answer}"
    );

    // Delete empties the bucket, so CloudFormation can delete it.
    send(&stack, &request("Delete", &url, properties.clone())).await;
    let (_, answer) = answers.next(4).await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["Data"]["Objects"], 6);
    let (_, _, listing) = get(&format!("{bucket}?list-type=2")).await;
    assert!(listing.contains("<KeyCount>0</KeyCount>"), "{listing}");
    assert_eq!(get(&format!("{bucket}/index.html")).await.0, 404);
    // A Delete for a bucket already gone succeeds (a rollback after the bucket failed).
    send(&stack, &request("Delete", &url, missing)).await;
    let (_, answer) = answers.next(5).await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");

    // Not a CloudFormation request: nobody to answer, and no retry loop either.
    let output = lambda(&stack)
        .invoke()
        .function_name("SiteFunction")
        .payload(Blob::new(r#"{"hello":"world"}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(output.function_error(), None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(answers.0.lock().unwrap().len(), 5);
    let _ = stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_resource_that_fails_stops_the_start_with_its_reason() {
    // A WebSocket API and the site, whose page config names an auth mode the page lacks.
    let template = repo().join("tests/fixtures/site-fails.yaml");
    let mut options =
        chat_local::Options::new(&template, chat_local::functions::Binaries::Dir(bin_dir()));
    (options.port, options.connections_port, options.issuer_port) = (0, 0, 0);
    (options.lambda_port, options.s3_port) = (0, 0);
    options.quiet = true;
    options.log = chat_local::Log::new(|_| {});
    // No tables: no DynamoDB is asked anything.
    options.database = chat_local::Database::Endpoint("http://127.0.0.1:9".into());
    let started = tokio::time::timeout(Duration::from_secs(60), chat_local::start(options))
        .await
        .expect("a failed custom resource never hangs the start");
    let error = format!("{:#}", started.err().expect("the start fails"));
    assert!(
        error.contains("SiteContent") && error.contains("FAILED"),
        "{error}"
    );
    assert!(error.contains("Config.authMode"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_carries_the_distributions_security_headers_and_the_buckets_config() {
    for mode in ["open", "cognito"] {
        let mut options = Options::project();
        options.overrides.push(format!("AuthMode={mode}"));
        let stack = Stack::start(options).await;
        let page = stack.ws_url.replacen("ws://", "http://", 1);
        let (status, headers, _) = get(&format!("{page}/")).await;
        assert_eq!(status, 200);
        let csp = headers["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        for part in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            &format!("connect-src 'self' {}", stack.ws_url),
        ] {
            assert!(csp.contains(part), "{mode}: the CSP lacks {part}: {csp}");
        }
        assert!(
            !csp.contains("amazonaws.com"),
            "{mode}: local endpoints stand in: {csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(
            headers["strict-transport-security"],
            "max-age=63072000; includeSubDomains"
        );
        let (_, headers, _) = get(&format!("{page}/app.js")).await;
        assert!(
            headers.contains_key("content-security-policy"),
            "on every response"
        );
        let (_, _, config) = get(&format!("{page}/chat-config.json")).await;
        let config: Value = serde_json::from_str(&config).unwrap();
        assert_eq!(config["webSocketUrl"], format!("{}/Test", stack.ws_url));
        assert_eq!(config["authMode"], mode);
        if mode == "cognito" {
            let issuer = stack
                .dev_issuer
                .clone()
                .expect("the development issuer stands in for the pool");
            assert_eq!(config["issuer"], issuer.as_str());
            assert_eq!(config["clientId"], "chat-local");
            assert!(
                csp.contains(&issuer),
                "the CSP lets the page reach the issuer: {csp}"
            );
        }
        let _ = stack.stop().await;
    }
}
