//! `chat-local invoke`: one function, one event file, the real binary and a real dynalite,
//! like `sam local invoke` without Docker.

mod common;

use std::process::Stdio;

async fn invoke(function: &str, event: &str) -> (bool, String, String) {
    invoke_with(function, event, &[]).await
}

async fn invoke_with(function: &str, event: &str, extra: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(common::bin_dir().join("chat-local"))
        .args(["invoke", function, "-e", event, "--bin-dir"])
        .arg(common::bin_dir())
        .args(extra)
        .current_dir(common::repo())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), output)
        .await
        .unwrap()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn invoke_runs_a_function_once_and_prints_its_response_and_report() {
    let (ok, stdout, stderr) = invoke("ConnectFunction", "events/connect.json").await;
    assert!(ok, "{stdout}{stderr}");
    let last = stdout.lines().last().unwrap();
    let response: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{last}: {e}"));
    assert_eq!(
        response["statusCode"], 200,
        "the connection was stored in the local table"
    );
    assert!(
        stdout.contains("[ConnectFunction] REPORT RequestId:"),
        "{stdout}"
    );
    assert!(stdout.contains("Init Duration:"), "{stdout}");

    // A one-off invoke starts a fresh table: the sample's sender was never connected, so
    // its message is refused (it was once broadcast as a guest, spending from no rate).
    let (ok, stdout, _) = invoke("OnMessageFunction", "events/on_message.json").await;
    assert!(ok);
    assert!(stdout.contains(r#""statusCode":403"#), "{stdout}");
    assert!(
        stdout.contains("sender is not in the table; refused"),
        "{stdout}"
    );
}

#[tokio::test]
async fn invoke_runs_the_authorizer_against_the_development_issuer() {
    let jwt = ["--parameter-overrides", "AuthMode=jwt"];
    let (ok, stdout, stderr) = invoke_with(
        "AuthorizerFunction",
        "events/authorizer/connect_request.json",
        &jwt,
    )
    .await;
    assert!(ok, "{stdout}{stderr}");
    let last = stdout.lines().last().unwrap();
    let answer: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{last}: {e}"));
    // The sample's token is not signed by the development issuer.
    assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Deny");
    assert_eq!(
        answer["policyDocument"]["Statement"][0]["Resource"],
        "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/Test/$connect"
    );
    // In open mode the authorizer lets everyone in, with no user.
    let (ok, stdout, stderr) = invoke(
        "AuthorizerFunction",
        "events/authorizer/connect_request.json",
    )
    .await;
    assert!(ok, "{stdout}{stderr}");
    let answer: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Allow");
    assert!(answer.get("context").is_none(), "{answer}");
}

#[tokio::test]
async fn invoke_explains_bad_arguments() {
    let (ok, _, stderr) = invoke("NoSuchFunction", "events/connect.json").await;
    assert!(!ok);
    assert!(
        stderr.contains("no function NoSuchFunction") && stderr.contains("ConnectFunction"),
        "{stderr}"
    );
    let (ok, _, stderr) = invoke("ConnectFunction", "events/missing.json").await;
    assert!(!ok);
    assert!(
        stderr.contains("cannot read events/missing.json"),
        "{stderr}"
    );
}
