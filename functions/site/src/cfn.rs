//! CloudFormation's custom resource protocol: the request a custom resource's function
//! receives, and the answer it must `PUT` to the request's pre-signed `ResponseURL`
//! (a JSON body, no `Content-Type`, as the URL was signed without one).
//!
//! Hand-written: the Rust crates for this protocol are unmaintained; it is a JSON shape
//! and one PUT over the HTTP client the chat's functions already share.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

/// What CloudFormation asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestType {
    Create,
    Update,
    Delete,
}

/// One custom resource request.
#[derive(Debug, Clone)]
pub struct Request {
    pub kind: RequestType,
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    /// Absent on Create.
    pub physical_resource_id: Option<String>,
    pub properties: Value,
}

impl Request {
    /// Reads a request; a clear error for anything that is not one.
    pub fn parse(event: &Value) -> Result<Request, String> {
        let text = |key: &str| {
            event
                .get(key)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("no {key}"))
        };
        let kind = match text("RequestType")?.as_str() {
            "Create" => RequestType::Create,
            "Update" => RequestType::Update,
            "Delete" => RequestType::Delete,
            other => {
                return Err(format!(
                    "RequestType {other:?} is not Create, Update or Delete"
                ))
            }
        };
        Ok(Request {
            kind,
            response_url: text("ResponseURL")?,
            stack_id: text("StackId")?,
            request_id: text("RequestId")?,
            logical_resource_id: text("LogicalResourceId")?,
            physical_resource_id: text("PhysicalResourceId").ok(),
            properties: event
                .get("ResourceProperties")
                .cloned()
                .unwrap_or(Value::Null),
        })
    }

    /// The physical id: made from the bucket on Create and Update (the same bucket keeps the
    /// same id; another bucket gets another, so CloudFormation then deletes the old resource,
    /// emptying the old bucket), the one CloudFormation names on Delete.
    fn physical_id(&self) -> String {
        let made = || {
            let bucket = self.properties["Bucket"].as_str().unwrap_or("none");
            format!("site-content-{bucket}")
        };
        match (self.kind, &self.physical_resource_id) {
            (RequestType::Delete, Some(id)) => id.clone(),
            _ => made(),
        }
    }
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Response(pub Value);

impl Response {
    pub fn success(request: &Request, objects: usize) -> Response {
        Response::new(request, "SUCCESS", None, json!({"Objects": objects}))
    }

    /// A failure with its reason (CloudFormation shows it in the stack's events; capped to
    /// stay well inside the 4 KB answer).
    pub fn failed(request: &Request, reason: &str) -> Response {
        let reason: String = reason.chars().take(1000).collect();
        Response::new(request, "FAILED", Some(reason), json!({}))
    }

    fn new(request: &Request, status: &str, reason: Option<String>, data: Value) -> Response {
        let mut body = json!({
            "Status": status,
            "PhysicalResourceId": request.physical_id(),
            "StackId": request.stack_id,
            "RequestId": request.request_id,
            "LogicalResourceId": request.logical_resource_id,
            "Data": data,
        });
        if let Some(reason) = reason {
            body["Reason"] = json!(reason);
        }
        Response(body)
    }
}

/// Sends answers: a PUT to the pre-signed URL, 4 s per attempt, three attempts.
pub struct Answerer {
    http: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Full<Bytes>,
    >,
}

impl Default for Answerer {
    fn default() -> Self {
        Answerer::new()
    }
}

impl Answerer {
    pub fn new() -> Answerer {
        Answerer {
            http: chat::http::client(1),
        }
    }

    pub async fn send(&self, url: &str, response: &Response) -> Result<(), String> {
        let body = Bytes::from(response.0.to_string());
        let mut last = String::new();
        for attempt in 0..3u64 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
            }
            let request = hyper::Request::put(url)
                .header(hyper::header::CONTENT_TYPE, "")
                .header(hyper::header::CONTENT_LENGTH, body.len())
                .body(Full::new(body.clone()))
                .map_err(|e| format!("not a ResponseURL: {e}"))?;
            let sent = tokio::time::timeout(Duration::from_secs(4), self.http.request(request));
            match sent.await {
                Ok(Ok(answer)) if answer.status().is_success() => return Ok(()),
                Ok(Ok(answer)) => {
                    let status = answer.status();
                    let detail = answer.into_body().collect().await.map(|b| b.to_bytes());
                    let detail = detail
                        .map(|b| String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned());
                    last = format!(
                        "ResponseURL answered {status}: {}",
                        detail.unwrap_or_default()
                    );
                }
                Ok(Err(error)) => last = format!("cannot reach the ResponseURL: {error}"),
                Err(_) => last = "the ResponseURL did not answer within 4 s".to_owned(),
            }
            tracing::warn!(attempt, problem = last, "answering CloudFormation");
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str) -> Value {
        json!({
            "RequestType": kind, "ResponseURL": "http://127.0.0.1:9/r", "StackId": "arn:stack",
            "RequestId": "req-1", "LogicalResourceId": "SiteContent", "ResourceType": "Custom::SiteContent",
            "ResourceProperties": {"ServiceToken": "arn:fn", "Bucket": "b-1"}
        })
    }

    #[test]
    fn requests_are_read_and_answers_carry_what_cloudformation_matches_them_by() {
        let create = Request::parse(&event("Create")).unwrap();
        assert_eq!(create.kind, RequestType::Create);
        let answer = Response::success(&create, 5).0;
        assert_eq!(answer["Status"], "SUCCESS");
        assert_eq!(answer["PhysicalResourceId"], "site-content-b-1");
        assert_eq!(answer["RequestId"], "req-1");
        assert_eq!(answer["StackId"], "arn:stack");
        assert_eq!(answer["LogicalResourceId"], "SiteContent");
        let mut update = event("Update");
        update["PhysicalResourceId"] = json!("site-content-old-bucket");
        let update = Request::parse(&update).unwrap();
        assert_eq!(
            Response::success(&update, 1).0["PhysicalResourceId"],
            "site-content-b-1",
            "another bucket, another resource: CloudFormation deletes the old one"
        );
        let mut delete = event("Delete");
        delete["PhysicalResourceId"] = json!("kept-id");
        let delete = Request::parse(&delete).unwrap();
        let failed = Response::failed(&delete, &"x".repeat(5000)).0;
        assert_eq!(failed["Status"], "FAILED");
        assert_eq!(failed["PhysicalResourceId"], "kept-id");
        assert_eq!(failed["Reason"].as_str().unwrap().len(), 1000);
    }

    #[test]
    fn what_is_not_a_request_is_a_clear_error() {
        assert!(Request::parse(&json!({}))
            .unwrap_err()
            .contains("RequestType"));
        let mut other = event("Replace");
        assert!(Request::parse(&other).unwrap_err().contains("Replace"));
        other["RequestType"] = json!("Create");
        other.as_object_mut().unwrap().remove("ResponseURL");
        assert!(Request::parse(&other).unwrap_err().contains("ResponseURL"));
    }
}
