//! The `SiteContent` custom resource: CloudFormation asks it to Create, Update or Delete
//! the chat page in the site bucket, and it answers on the request's `ResponseURL`.
//!
//! - Create / Update: every file of `web/` (built into this binary, see [`assets`]) and
//!   `chat-config.json` (the resource's `Config`: auth mode, WebSocket URL, issuer, client
//!   id, in the shape the page reads everywhere) are written with `Cache-Control: no-cache`,
//!   so CloudFront and browsers revalidate and a deploy shows at once.
//! - Delete: the bucket is emptied, so CloudFormation can delete it (`sam delete` leaves
//!   nothing behind); a bucket already gone is fine.
//!
//! Whatever happens, CloudFormation gets an answer ([`cfn`]): `SUCCESS`, or `FAILED` with
//! the reason, before the invocation's deadline — never a stack waiting an hour on a
//! resource that crashed. Modules: [`cfn`] (the protocol), [`assets`], [`content`] (S3).

pub mod assets;
pub mod cfn;
pub mod content;

use std::time::{Duration, Instant};

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

use cfn::{Request, RequestType, Response};
use content::Site;

/// What is kept back from the invocation's deadline to send the answer: more than
/// [`cfn::Answerer::send`] can take (three attempts of at most 4 s, with 1.5 s of pauses).
const ANSWER_MARGIN: Duration = Duration::from_secs(15);

/// Runs one request to completion and answers CloudFormation. `Err` only when the answer
/// itself could not be delivered (Lambda then retries the event).
pub async fn handle(
    site: &Site,
    answerer: &cfn::Answerer,
    event: Value,
    deadline: Instant,
) -> Result<(), Error> {
    let request = match Request::parse(&event) {
        Ok(request) => request,
        Err(problem) => {
            // Without a ResponseURL there is nobody to answer: log, and do not retry.
            tracing::error!(%problem, "not a CloudFormation custom resource request");
            return Ok(());
        }
    };
    let budget = deadline
        .saturating_duration_since(Instant::now())
        .saturating_sub(ANSWER_MARGIN);
    let work = async {
        match request.kind {
            RequestType::Create | RequestType::Update => site.publish(&request.properties).await,
            RequestType::Delete => site.empty(&request.properties).await,
        }
    };
    let outcome = match tokio::time::timeout(budget, work).await {
        Ok(Ok(written)) => Ok(written),
        Ok(Err(problem)) => Err(problem),
        Err(_) => Err(format!(
            "did not finish within the function's time ({} s left for the work)",
            budget.as_secs()
        )),
    };
    let response = match &outcome {
        Ok(count) => {
            tracing::info!(kind = ?request.kind, objects = count, "done");
            Response::success(&request, *count)
        }
        Err(reason) => {
            tracing::error!(kind = ?request.kind, reason, "failed");
            Response::failed(&request, reason)
        }
    };
    answerer.send(&request.response_url, &response).await?;
    Ok(())
}

/// Runs under the Lambda runtime until the container is shut down.
pub async fn run() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let site = Site::from_env().await;
    let answerer = cfn::Answerer::new();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deadline = remaining(&event.context);
        let (site, answerer) = (&site, &answerer);
        async move { handle(site, answerer, event.payload, deadline).await }
    }))
    .await
}

/// The invocation's deadline as an `Instant`.
fn remaining(context: &lambda_runtime::Context) -> Instant {
    let left = context
        .deadline()
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    Instant::now() + left
}
