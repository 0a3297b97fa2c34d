//! What you deploy is what you test: the arm64 `bootstrap`s `sam build` leaves in
//! `.aws-sam/build/` (the files `sam deploy` uploads) run as the local stack's functions,
//! under qemu on a machine of another kind, for one whole session: connect, a broadcast
//! to three clients, `$default`'s error, disconnect; and, with `AuthMode=jwt`, the arm64
//! authorizer signing users in with the development issuer's tokens.
//!
//! `make test` runs `sam build` first and sets `E2E_REQUIRE_ARTIFACTS`, so missing
//! artifacts fail the test there; only a machine without qemu skips it, saying why.

mod common;

use chat_local::functions::Binaries;
use common::{eventually, Options, Stack};

/// The `sam build` output, or `None` (having said why) when this machine cannot run it.
fn artifacts() -> Option<std::path::PathBuf> {
    let build = common::repo().join(".aws-sam/build");
    let required = std::env::var_os("E2E_REQUIRE_ARTIFACTS").is_some();
    if !build.join("OnMessageFunction/bootstrap").is_file() {
        assert!(
            !required,
            "no artifacts in {}: run `sam build` first",
            build.display()
        );
        eprintln!("SKIPPED: no .aws-sam/build artifacts; `make test` builds them with sam build");
        return None;
    }
    if std::env::consts::ARCH != "aarch64" && chat_local::process::arm64_emulator().is_none() {
        eprintln!(
            "SKIPPED: the arm64 bootstraps need qemu-aarch64 and {} \
             (Debian: apt-get install qemu-user libc6-arm64-cross; make setup does it as root)",
            chat_local::process::ARM64_SYSROOT
        );
        return None;
    }
    Some(build)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_arm64_artifacts_sam_deploy_uploads_chat_end_to_end() {
    let Some(build) = artifacts() else { return };
    let foreign = std::env::consts::ARCH != "aarch64";
    let mut options = Options::project();
    options.binaries = Binaries::SamBuild(build);
    let stack = Stack::start(options).await;
    // The arm64 SiteFunction wrote the page through the custom resource protocol at start.
    assert!(
        stack.printed("Custom resource SiteContent (Custom::SiteContent) created by SiteFunction")
    );
    let config = reqwest::get(format!(
        "{}/local-sitebucket/chat-config.json",
        stack.s3_url
    ))
    .await
    .unwrap();
    assert_eq!(config.status(), 200);
    let site = stack.instances("chat-site");
    assert!(!site.is_empty(), "the SiteFunction instance stays warm");
    assert!(
        site.iter().all(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(".aws-sam/build/SiteFunction/bootstrap")
        }),
        "the arm64 SiteFunction runs"
    );

    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(stack.client().await);
    }
    let on_message = stack.instances("chat-connect");
    assert!(!on_message.is_empty(), "ConnectFunction instances run");
    for pid in on_message {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            cmdline.contains(".aws-sam/build/ConnectFunction/bootstrap"),
            "{cmdline}"
        );
        if foreign {
            assert!(exe.to_string_lossy().contains("qemu-aarch64"), "{exe:?}");
        }
    }

    clients[0].say("Hello everyone").await;
    for client in &mut clients {
        let frame = client.json_within(std::time::Duration::from_secs(30)).await;
        assert_eq!(frame["type"], "message");
        assert_eq!(frame["message"], "Hello everyone");
    }

    clients[1]
        .send_text(r#"{"action":"shout","message":"hi"}"#)
        .await;
    let error = clients[1].json().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "unknown_action");

    let id = clients[2].own_id().await;
    for client in &mut clients[..2] {
        client.json().await;
    }
    assert!(stack.stored_ids().await.contains(&id));
    clients.pop().unwrap().close().await;
    eventually(
        "the closed client's item is removed by $disconnect",
        || async { !stack.stored_ids().await.contains(&id) },
    )
    .await;
    let output = stack.output();
    assert!(
        !output
            .iter()
            .any(|l| l.contains("ERROR") || l.contains("panicked")),
        "no function failed: {output:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_arm64_authorizer_signs_users_in() {
    let Some(build) = artifacts() else { return };
    assert!(
        build.join("AuthorizerFunction/bootstrap").is_file(),
        "sam build builds the authorizer too"
    );
    let mut options = Options::project();
    options.binaries = Binaries::SamBuild(build);
    options.overrides.push("AuthMode=jwt".into());
    let stack = Stack::start(options).await;
    let issuer = stack.dev_issuer.clone().expect("a development issuer");
    let token = chat_local::issuer::fetch_token(&issuer, "Ada", "")
        .await
        .unwrap();

    let url = format!("{}/Test?token={token}", stack.ws_url);
    let mut ada = common::Client::connect(&url).await.unwrap();
    ada.say("Hello everyone").await;
    let frame = ada.json_within(std::time::Duration::from_secs(30)).await;
    assert_eq!(frame["name"], "Ada");
    // The same token with one signature character changed.
    let at = token.rfind('.').unwrap() + 10;
    let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
    let forged = format!(
        "{}/Test?token={}{swapped}{}",
        stack.ws_url,
        &token[..at],
        &token[at + 1..]
    );
    assert_eq!(common::handshake_status(&forged).await, 403);
    ada.close().await;
    let _ = stack.stop().await;
}
