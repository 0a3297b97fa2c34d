//! The `join`, `who` and `history` routes' Lambda: see [`chat::handlers`] for what it does.

// One thread: a 128 MB Lambda has a fraction of a vCPU, and cross-thread wake-ups cost
// more than they buy (measured in BENCHMARKS.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    chat::lambda::run(chat::Route::Rooms).await
}
