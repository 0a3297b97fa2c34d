//! The `$connect` REQUEST authorizer's Lambda: see [`chat::auth`] for what it checks.

// One thread, as for the route functions: a 128 MB Lambda has a fraction of a vCPU.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    chat::auth::run().await
}
