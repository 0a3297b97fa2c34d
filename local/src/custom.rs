//! CloudFormation's side of custom resources: at start the local stack sends each one a
//! `Create` request, as a deploy does, through its function, with a `ResponseURL` on the
//! local S3's listener ([`crate::s3::Responses`]), and waits for the answer. `FAILED`, or
//! no answer within the function's timeout (CloudFormation would wait an hour), stops the
//! start with the reason, as a failed resource rolls a deploy back.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::functions::Functions;
use crate::resources::CustomResource;
use crate::s3::Responses;
use crate::stack::{Stack, ACCOUNT_ID, STACK_NAME};
use crate::Log;

/// The `Create` request CloudFormation sends a custom resource.
pub fn create_request(stack: &Stack, resource: &CustomResource, response_url: &str) -> Value {
    json!({
        "RequestType": "Create",
        "ServiceToken": resource.properties["ServiceToken"],
        "ResponseURL": response_url,
        "StackId": format!(
            "arn:aws:cloudformation:{}:{ACCOUNT_ID}:stack/{STACK_NAME}/00000000-0000-0000-0000-000000000000",
            stack.region
        ),
        "RequestId": crate::ids::gateway_id(),
        "LogicalResourceId": resource.logical_id,
        "ResourceType": resource.kind,
        "ResourceProperties": resource.properties,
    })
}

/// Creates every custom resource of the stack, one after another; the answers' `Data`.
pub async fn create_all(
    stack: &Stack,
    functions: &Arc<Functions>,
    responses: &Arc<Responses>,
    base_url: &str,
    log: &Log,
) -> Result<Vec<(String, Value)>> {
    let mut created = Vec::new();
    for resource in &stack.custom_resources {
        let (id, mut answer) = responses.expect();
        let request = create_request(stack, resource, &format!("{base_url}/@cfn-response/{id}"));
        let timeout = stack.functions[&resource.function].timeout + Duration::from_secs(10);
        // CloudFormation invokes asynchronously; the answer comes on the ResponseURL.
        let invoked = {
            let functions = Arc::clone(functions);
            let function = resource.function.clone();
            tokio::spawn(async move { functions.invoke(&function, &request).await })
        };
        let waited = tokio::time::timeout(timeout, async {
            tokio::select! {
                answer = &mut answer => answer.map_err(|_| "the answer was lost".to_owned()),
                outcome = invoked => {
                    // The function is done: its answer is there by now, or never comes.
                    let late = tokio::time::timeout(Duration::from_secs(2), &mut answer).await;
                    match (late, outcome) {
                        (Ok(Ok(answer)), _) => Ok(answer),
                        (_, Ok(Err(error))) => Err(format!("the function failed: {error}")),
                        _ => Err("the function returned without answering".to_owned()),
                    }
                }
            }
        });
        let answer = match waited.await {
            Ok(Ok(answer)) => answer,
            Ok(Err(why)) => bail!(
                "{}: no answer on its ResponseURL ({why}); CloudFormation would wait an hour and fail the deploy",
                resource.logical_id
            ),
            Err(_) => bail!(
                "{}: no answer on its ResponseURL within {} s; CloudFormation would wait an hour and fail the deploy",
                resource.logical_id,
                timeout.as_secs()
            ),
        };
        if answer["Status"] != "SUCCESS" {
            let reason = answer["Reason"].as_str().unwrap_or("no reason given");
            bail!(
                "{} ({}) FAILED: {reason}",
                resource.logical_id,
                resource.kind
            );
        }
        log.line(&format!(
            "Custom resource {} ({}) created by {}: {}",
            resource.logical_id, resource.kind, resource.function, answer["Data"]
        ));
        created.push((resource.logical_id.clone(), answer["Data"].clone()));
    }
    Ok(created)
}
