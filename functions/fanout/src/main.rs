//! `FanoutFunction`'s Lambda: posts one chunk of a large room's broadcast, handed over by
//! `onMessage` (see [`chat::delivery::fanout`]).

// One thread, as onMessage: a 128 MB Lambda has a fraction of a vCPU.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    chat::lambda::run_fanout().await
}
