//! The `onMessage` route's Lambda: see [`chat::handlers`] for what it does.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    chat::lambda::run(chat::Route::OnMessage).await
}
