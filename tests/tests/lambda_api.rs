//! The local Lambda Invoke API, through the AWS SDK for Rust pointed at it as
//! `AWS_ENDPOINT_URL_LAMBDA` points the functions' SDKs: names, ARNs and partial ARNs,
//! `RequestResponse` answers and function errors, `Event` queued and retried twice on a
//! crash, and Lambda's payload limits and error codes.

mod common;

use std::time::Duration;

use aws_sdk_lambda::operation::RequestId;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use chat_local::stack::ACCOUNT_ID;
use common::{EventLog, Stack};
use serde_json::{json, Value};

fn client(stack: &Stack) -> aws_sdk_lambda::Client {
    stack.lambda()
}

/// A fault-function event that answers `status` (see `chat-fault`).
fn answering(status: u16, tag: &str) -> Vec<u8> {
    json!({"queryStringParameters": {"status": status.to_string()}, "tag": tag})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn request_response_by_name_arn_and_partial_arn() {
    let log = EventLog::new("lambda-sync");
    let stack = Stack::start(log.options()).await;
    let lambda = client(&stack);
    for name in [
        "FaultFunction".to_owned(),
        "FaultFunction:$LATEST".to_owned(),
        format!("arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:FaultFunction"),
        format!("{ACCOUNT_ID}:function:FaultFunction"),
    ] {
        let output = lambda
            .invoke()
            .function_name(&name)
            .payload(Blob::new(answering(201, &name)))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name}: {:?}", aws_sdk_lambda::Error::from(e)));
        assert_eq!(output.status_code(), 200, "{name}");
        assert_eq!(output.executed_version(), Some("$LATEST"));
        assert_eq!(output.function_error(), None);
        let answer: Value = serde_json::from_slice(output.payload().unwrap().as_ref()).unwrap();
        assert_eq!(answer, json!({"statusCode": 201}), "{name}");
        // The id Invoke answers with is the invocation's own, as its START line shows.
        let id = output.request_id().expect("x-amzn-RequestId").to_owned();
        let start = format!("START RequestId: {id} ");
        common::eventually("the invocation's START line", || {
            let found = stack.output().iter().any(|line| line.contains(&start));
            async move { found }
        })
        .await;
    }
    // The function received each payload as it was sent.
    let events = log.wait_for(4).await;
    assert_eq!(
        events[2]["tag"],
        format!("arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:FaultFunction")
    );

    // A function error is a 200 with X-Amz-Function-Error and the error as the payload.
    let failed = lambda
        .invoke()
        .function_name("FaultFunction")
        .payload(Blob::new(
            json!({"body": "{\"mode\":\"error\"}"}).to_string(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status_code(), 200);
    assert_eq!(failed.function_error(), Some("Unhandled"));
    let error: Value = serde_json::from_slice(failed.payload().unwrap().as_ref()).unwrap();
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap()
            .contains("asked to fail"),
        "{error}"
    );
}

#[tokio::test]
async fn unknown_functions_and_oversized_or_malformed_payloads_get_lambdas_errors() {
    let log = EventLog::new("lambda-errors");
    let stack = Stack::start(log.options()).await;
    let lambda = client(&stack);
    for name in [
        "NoSuchFunction",
        "FaultFunction:prod",
        "arn:aws:lambda:eu-west-1:999999999999:function:FaultFunction",
        "3:function:FaultFunction",
    ] {
        let error = lambda
            .invoke()
            .function_name(name)
            .payload(Blob::new("{}"))
            .send()
            .await
            .expect_err(name);
        assert!(
            matches!(
                aws_sdk_lambda::Error::from(error),
                aws_sdk_lambda::Error::ResourceNotFoundException(_)
            ),
            "{name}"
        );
    }

    // 1 MB for Event, 6 MB for RequestResponse.
    let fits = json!({"padding": "x".repeat(1000 * 1024)}).to_string();
    let queued = lambda
        .invoke()
        .function_name("FaultFunction")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(fits))
        .send()
        .await
        .expect("an Event payload under 1 MB is queued");
    assert_eq!(queued.status_code(), 202);
    let big = json!({"padding": "x".repeat(1024 * 1024)}).to_string();
    let error = lambda
        .invoke()
        .function_name("FaultFunction")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(big.clone()))
        .send()
        .await
        .expect_err("an Event payload over 1 MB is refused");
    assert!(matches!(
        aws_sdk_lambda::Error::from(error),
        aws_sdk_lambda::Error::RequestTooLargeException(_)
    ));
    let sync = lambda
        .invoke()
        .function_name("FaultFunction")
        .payload(Blob::new(big))
        .send()
        .await
        .expect("1 MB is fine for RequestResponse");
    assert_eq!(sync.status_code(), 200);
    let huge = json!({"padding": "x".repeat(6 * 1024 * 1024)}).to_string();
    let status = signed_post(
        &format!(
            "{}/2015-03-31/functions/FaultFunction/invocations",
            stack.lambda_url
        ),
        huge,
    )
    .await;
    assert_eq!(status.status().as_u16(), 413);
    assert_eq!(
        status.headers()["x-amzn-errortype"],
        "RequestTooLargeException"
    );

    let malformed = signed_post(
        &format!(
            "{}/2015-03-31/functions/FaultFunction/invocations",
            stack.lambda_url
        ),
        "{not json".to_owned(),
    )
    .await;
    assert_eq!(malformed.status().as_u16(), 400);
    assert_eq!(
        malformed.headers()["x-amzn-errortype"],
        "InvalidRequestContentException"
    );
    // Nothing that was refused reached the function; only the two that fit did.
    assert_eq!(log.wait_for(2).await.len(), 2);
}

#[tokio::test]
async fn an_event_is_queued_and_a_crash_is_retried_twice() {
    let log = EventLog::new("lambda-async");
    let stack = Stack::start(log.options()).await;
    let lambda = client(&stack);
    let accepted = lambda
        .invoke()
        .function_name("FaultFunction")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(answering(200, "queued")))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status_code(), 202);
    assert!(accepted.payload().is_none_or(|p| p.as_ref().is_empty()));
    assert_eq!(log.wait_for(1).await[0]["tag"], "queued");

    // A crash on every attempt: the first try and two retries (after 1 s and 2 s), no more.
    let crash = json!({"body": "{\"mode\":\"crash\"}", "tag": "crash"}).to_string();
    let accepted = lambda
        .invoke()
        .function_name("FaultFunction")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(crash))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status_code(), 202);
    let crashes = |events: Vec<Value>| events.iter().filter(|e| e["tag"] == "crash").count();
    common::eventually_within(Duration::from_secs(15), "three attempts", || async {
        crashes(log.events()) == 3
    })
    .await;
    common::eventually_within(Duration::from_secs(5), "the drop is logged", || async {
        stack.printed("failed 3 time(s), dropped")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(crashes(log.events()), 3, "no fourth attempt");
}

/// A POST to the Invoke API, signed as the SDK signs it.
async fn signed_post(url: &str, body: String) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(url);
    for (name, value) in common::signed_headers("POST", url, body.as_bytes(), "lambda") {
        request = request.header(name, value);
    }
    request.body(body).send().await.unwrap()
}
