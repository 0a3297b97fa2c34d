//! The README's session, for real: the stack started as a user starts it (with its own
//! dynalite), two `wscat` clients chatting, and Ctrl-C leaving nothing behind.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Options, Stack};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

fn wscat() -> Command {
    let mut command = Command::new("node");
    command
        .arg(common::repo().join("node_modules/wscat/bin/wscat"))
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn two_wscat_clients_chat_and_ctrl_c_leaves_nothing_behind() {
    let mut options = Options::project();
    options.shared_dynamodb = false;
    // The command a user runs, Ctrl-C included.
    let stack = Stack::command(options).await;
    assert!(
        stack.dynamodb_endpoint.starts_with("http://127.0.0.1:"),
        "the stack runs its own dynalite"
    );

    // Terminal 2: a wscat that stays connected and prints what it receives.
    let mut listener = wscat()
        .args(["-c", &stack.ws_url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs wscat (make setup installs it)");
    let mut lines = BufReader::new(listener.stdout.take().unwrap()).lines();
    common::eventually("the first wscat has connected", || async {
        stack.printed("[ConnectFunction] REPORT")
    })
    .await;

    // Terminal 3: a wscat that sends the article's message.
    // wscat quits when its input ends, so its stdin stays open, as a terminal's would.
    let mut sender = wscat()
        .args([
            "-c",
            &stack.ws_url,
            "-x",
            r#"{"action":"onMessage","message":"Hello everyone"}"#,
            "-w",
            "2",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _terminal = sender.stdin.take();
    let sender = tokio::time::timeout(Duration::from_secs(20), sender.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let sent = String::from_utf8_lossy(&sender.stdout);
    assert!(
        sent.contains(r#""message":"Hello everyone""#),
        "the sender sees its own message: {sent}"
    );

    let received = tokio::time::timeout(common::WAIT, async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("wscat still running");
            if line.contains("Hello everyone") {
                return line;
            }
        }
    })
    .await
    .expect("the listener sees the message");
    assert!(received.contains(r#""type":"message""#), "{received}");
    drop(lines);
    let _ = listener.kill().await;

    // Ctrl-C: open sockets close with 1001 (running $disconnect), every child process ends.
    let mut client = stack.client().await;
    let pid = stack.pid();
    let children: Vec<u32> = common::children_of(pid)
        .into_iter()
        .map(|(child, _)| child)
        .collect();
    assert!(
        children.len() >= 2,
        "dynalite and function instances run as children: {children:?}"
    );
    assert!(stack.stop().await, "a clean exit on Ctrl-C");
    loop {
        match client.next().await {
            Some(Message::Close(Some(frame))) => break assert_eq!(frame.code, CloseCode::Away),
            // The wscat clients' `left` may still be on its way.
            Some(Message::Text(text)) if text.contains(r#""type":"left""#) => continue,
            other => panic!("expected close 1001 on shutdown, got {other:?}"),
        }
    }
    common::eventually("every child process has ended", || async {
        children.iter().all(|&child| !common::is_running(child))
    })
    .await;
}
