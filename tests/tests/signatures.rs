//! SigV4 through the real local stack, as AWS checks it: the Rust SDK, boto3 and raw
//! requests against `@connections` and the Lambda Invoke API, with the right credentials
//! and with a wrong secret, region, date, session token or no signature at all; and the
//! chat's own signed posts passing.

mod common;

use std::time::{Duration, SystemTime};

use aws_sdk_apigatewaymanagement::error::ProvideErrorMetadata;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use common::{repo, sigv4_headers, Options, Stack};
use serde_json::Value;

fn management(
    stack: &Stack,
    secret: &str,
    region: &str,
    token: Option<&str>,
) -> aws_sdk_apigatewaymanagement::Client {
    let config = aws_sdk_apigatewaymanagement::Config::builder()
        .behavior_version(aws_sdk_apigatewaymanagement::config::BehaviorVersion::latest())
        .region(aws_sdk_apigatewaymanagement::config::Region::new(
            region.to_owned(),
        ))
        .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
            "local",
            secret,
            token.map(str::to_owned),
            None,
            "e2e",
        ))
        .retry_config(aws_sdk_apigatewaymanagement::config::retry::RetryConfig::disabled())
        .endpoint_url(&stack.connections_url)
        .build();
    aws_sdk_apigatewaymanagement::Client::from_conf(config)
}

/// What a raw POST to `url` with these headers gets: status, error type and message.
async fn raw_post(url: &str, headers: &[(String, String)], body: &str) -> (u16, String, String) {
    let mut request = reqwest::Client::new().post(url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.body(body.to_owned()).send().await.unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = response.json().await.unwrap_or_default();
    (
        status,
        kind,
        body["message"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_apis_check_signatures_as_aws_does() {
    let stack = Stack::start(Options::project()).await;
    let mut client = stack.client().await;
    let id = client.own_id().await;

    // The chat's own posts are signed (aws-sigv4, the functions' session credentials).
    client.say("signed by the chat").await;
    assert_eq!(client.json().await["message"], "signed by the chat");

    // The Rust SDK with the stack's credentials, and with wrong ones.
    let post = |api: aws_sdk_apigatewaymanagement::Client, text: &'static str| {
        let id = id.clone();
        async move {
            api.post_to_connection()
                .connection_id(id)
                .data(Blob::new(format!(
                    r#"{{"type":"message","message":"{text}"}}"#
                )))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.code().unwrap_or("none").to_owned())
        }
    };
    post(
        management(&stack, "local", "us-east-1", None),
        "from the SDK",
    )
    .await
    .expect("the right credentials post");
    assert_eq!(client.json().await["message"], "from the SDK");
    for (secret, region, token, code) in [
        ("wrong", "us-east-1", None, "InvalidSignatureException"),
        ("local", "eu-west-1", None, "InvalidSignatureException"),
        (
            "local",
            "us-east-1",
            Some("forged"),
            "UnrecognizedClientException",
        ),
    ] {
        let api = management(&stack, secret, region, token);
        assert_eq!(
            post(api, "never").await,
            Err(code.to_owned()),
            "{secret} {region} {token:?}"
        );
    }

    // Raw requests: none, malformed, expired.
    let url = format!("{}/@connections/{id}", stack.connections_url);
    let body = r#"{"type":"message","message":"raw"}"#;
    let (status, kind, message) = raw_post(&url, &[], body).await;
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token"
        )
    );
    let malformed = [(
        "authorization".to_owned(),
        "AWS4-HMAC-SHA256 Credential=local".to_owned(),
    )];
    assert_eq!(
        raw_post(&url, &malformed, body).await.1,
        "IncompleteSignatureException"
    );
    let ten_minutes_ago = SystemTime::now() - Duration::from_secs(600);
    let old = sigv4_headers(
        "POST",
        &url,
        body.as_bytes(),
        "execute-api",
        ("local", "local", None),
        ten_minutes_ago,
    );
    let (status, kind, message) = raw_post(&url, &old, body).await;
    assert_eq!((status, kind.as_str()), (403, "InvalidSignatureException"));
    assert!(message.starts_with("Signature expired"), "{message}");
    let signed = common::signed_headers("POST", &url, body.as_bytes(), "execute-api");
    assert_eq!(raw_post(&url, &signed, body).await.0, 200);
    assert_eq!(client.json().await["message"], "raw");
    // Signed for one body, sent with another.
    let (status, kind, _) = raw_post(&url, &signed, r#"{"message":"tampered"}"#).await;
    assert_eq!((status, kind.as_str()), (403, "InvalidSignatureException"));

    // The Invoke API: the SDK with the right secret and a wrong one.
    let lambda = stack.lambda();
    let dry_run = lambda
        .invoke()
        .function_name("OnMessageFunction")
        .invocation_type(aws_sdk_lambda::types::InvocationType::DryRun)
        .send()
        .await
        .expect("a signed DryRun");
    assert_eq!(dry_run.status_code(), 204);
    let wrong = aws_sdk_lambda::Client::from_conf(
        lambda
            .config()
            .to_builder()
            .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                "local", "wrong", None, None, "e2e",
            ))
            .build(),
    );
    let refused = wrong
        .invoke()
        .function_name("OnMessageFunction")
        .invocation_type(aws_sdk_lambda::types::InvocationType::DryRun)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("InvalidSignatureException"));

    // boto3 (the SDK behind the AWS CLI and most scripts).
    let output = std::process::Command::new(repo().join(".venv/bin/python"))
        .arg(repo().join("tests/python/sigv4_clients.py"))
        .args([&stack.connections_url, &stack.lambda_url, &id])
        .output()
        .expect("run tests/python/sigv4_clients.py");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Value = serde_json::from_slice(&output.stdout).unwrap();
    let code = |case: &str| {
        let text = results[case].as_str().unwrap_or_default();
        text.split(':').next().unwrap_or_default().to_owned()
    };
    assert_eq!(results["post"], "ok", "{results}");
    assert_eq!(client.json().await["message"], "from boto3");
    assert_eq!(results["invoke"], "ok", "{results}");
    for (case, expected) in [
        ("post_wrong_secret", "InvalidSignatureException"),
        ("post_wrong_region", "InvalidSignatureException"),
        ("post_unsigned", "MissingAuthenticationTokenException"),
        ("post_expired", "InvalidSignatureException"),
        ("post_unknown_token", "UnrecognizedClientException"),
        ("invoke_wrong_secret", "InvalidSignatureException"),
        ("invoke_unsigned", "MissingAuthenticationTokenException"),
        ("invoke_expired", "InvalidSignatureException"),
    ] {
        assert_eq!(code(case), expected, "{case}: {results}");
    }
    assert!(
        results["post_expired"]
            .as_str()
            .unwrap()
            .contains("Signature expired"),
        "{results}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_credentials_are_set_on_the_command_line() {
    let mut options = Options::project();
    options.credentials = Some("alice-key:alice-secret:alice-token".into());
    let stack = Stack::command(options).await;
    assert!(
        stack.printed("Credentials:     AWS_ACCESS_KEY_ID=alice-key AWS_SECRET_ACCESS_KEY as given AWS_SESSION_TOKEN as given"),
        "the banner names the key, never the secret"
    );
    assert!(!stack.printed("alice-secret"));
    let invoke = |id: &str, secret: &str, token: Option<&str>| {
        let lambda = stack.lambda();
        let client = aws_sdk_lambda::Client::from_conf(
            lambda
                .config()
                .to_builder()
                .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                    id,
                    secret,
                    token.map(str::to_owned),
                    None,
                    "e2e",
                ))
                .build(),
        );
        async move {
            client
                .invoke()
                .function_name("OnMessageFunction")
                .invocation_type(aws_sdk_lambda::types::InvocationType::DryRun)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.code().unwrap_or("none").to_owned())
        }
    };
    invoke("alice-key", "alice-secret", Some("alice-token"))
        .await
        .expect("the given credentials are accepted");
    for (id, secret, token, code) in [
        ("local", "local", None, "UnrecognizedClientException"),
        (
            "alice-key",
            "alice-secret",
            None,
            "UnrecognizedClientException",
        ),
        (
            "alice-key",
            "wrong",
            Some("alice-token"),
            "InvalidSignatureException",
        ),
    ] {
        assert_eq!(
            invoke(id, secret, token).await,
            Err(code.to_owned()),
            "{id} {secret} {token:?}"
        );
    }
    stack.stop().await;
}
