//! `SiteFunction`'s Lambda: the `SiteContent` custom resource (see [`chat_site`]).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    chat_site::run().await
}
