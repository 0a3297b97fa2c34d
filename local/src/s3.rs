//! A small S3 on loopback for the template's buckets (path-style: `/{bucket}/{key}`), as
//! much of S3 as the functions use: PutObject, GetObject, HeadObject, DeleteObject and
//! ListObjectsV2, with S3's XML error shapes (`NoSuchBucket`, `NoSuchKey`). Objects live in
//! memory. The same listener takes CloudFormation's side of custom resources: the answers
//! functions `PUT` to a request's `ResponseURL` (`/@cfn-response/{id}`), see [`Responses`].
//!
//! Hand-written: S3 emulators are separate services (Java, Python, Go); the local stack
//! needs these five calls in-process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, put};
use axum::Router;
use serde_json::Value;
use tokio::sync::oneshot;

/// One stored object.
#[derive(Debug, Clone)]
pub struct Object {
    pub body: Bytes,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub etag: String,
}

/// The buckets and their objects.
#[derive(Debug, Default)]
pub struct Buckets {
    buckets: Mutex<HashMap<String, BTreeMap<String, Object>>>,
}

impl Buckets {
    /// Creates `name` (nothing happens when it exists).
    pub fn create(&self, name: &str) {
        self.buckets
            .lock()
            .unwrap()
            .entry(name.to_owned())
            .or_default();
    }

    pub fn get(&self, bucket: &str, key: &str) -> Option<Object> {
        self.buckets.lock().unwrap().get(bucket)?.get(key).cloned()
    }

    /// The keys of a bucket, in order; `None` when there is no such bucket.
    pub fn keys(&self, bucket: &str) -> Option<Vec<String>> {
        Some(
            self.buckets
                .lock()
                .unwrap()
                .get(bucket)?
                .keys()
                .cloned()
                .collect(),
        )
    }
}

/// Custom resource answers awaited, by the id in their `ResponseURL`.
#[derive(Default)]
pub struct Responses {
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
}

impl Responses {
    /// A fresh id and the receiver its answer arrives on.
    pub fn expect(&self) -> (String, oneshot::Receiver<Value>) {
        // Hex: one path segment, whatever the bytes.
        let id: String = rand::random::<[u8; 12]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let (send, receive) = oneshot::channel();
        self.waiting.lock().unwrap().insert(id.clone(), send);
        (id, receive)
    }
}

#[derive(Clone)]
struct S3 {
    buckets: Arc<Buckets>,
    responses: Arc<Responses>,
}

/// The S3 API and the custom resource answers on one router.
pub fn router(buckets: Arc<Buckets>, responses: Arc<Responses>) -> Router {
    Router::new()
        .route("/@cfn-response/{id}", put(cfn_response))
        .route("/{bucket}", any(bucket_request))
        .route("/{bucket}/", any(bucket_request))
        .route("/{bucket}/{*key}", any(object_request))
        .with_state(S3 { buckets, responses })
}

async fn cfn_response(State(s3): State<S3>, Path(id): Path<String>, body: Bytes) -> Response {
    let Ok(answer) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    match s3.responses.waiting.lock().unwrap().remove(&id) {
        Some(waiter) => {
            let _ = waiter.send(answer);
            StatusCode::OK.into_response()
        }
        // As S3 does for a pre-signed URL used twice or made up: refused.
        None => error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "no request awaits this answer",
            &id,
        ),
    }
}

/// An S3 error document.
fn error(status: StatusCode, code: &str, message: &str, resource: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{}</RequestId></Error>",
        xml(message),
        xml(resource),
        crate::ids::gateway_id()
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

fn no_bucket(bucket: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NoSuchBucket",
        "The specified bucket does not exist",
        bucket,
    )
}

async fn bucket_request(
    State(s3): State<S3>,
    method: Method,
    Path(bucket): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(keys) = s3.buckets.keys(&bucket) else {
        return no_bucket(&bucket);
    };
    match method {
        Method::HEAD => StatusCode::OK.into_response(),
        Method::GET if query.get("list-type").map(String::as_str) == Some("2") => {
            list(&s3, &bucket, keys, &query)
        }
        _ => error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "the local S3 lists objects (list-type=2) only",
            &bucket,
        ),
    }
}

/// ListObjectsV2, 1 000 keys a page (`max-keys` honoured), in key order.
fn list(s3: &S3, bucket: &str, keys: Vec<String>, query: &HashMap<String, String>) -> Response {
    let prefix = query.get("prefix").cloned().unwrap_or_default();
    let after = query
        .get("continuation-token")
        .or_else(|| query.get("start-after"))
        .cloned()
        .unwrap_or_default();
    let max: usize = query
        .get("max-keys")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000)
        .min(1000);
    let matching: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with(&prefix) && k.as_str() > after.as_str())
        .collect();
    let page = &matching[..matching.len().min(max)];
    let truncated = matching.len() > page.len();
    let mut contents = String::new();
    for key in page {
        if let Some(object) = s3.buckets.get(bucket, key) {
            contents.push_str(&format!(
                "<Contents><Key>{}</Key><Size>{}</Size><ETag>{}</ETag><StorageClass>STANDARD</StorageClass></Contents>",
                xml(key),
                object.body.len(),
                xml(&object.etag)
            ));
        }
    }
    let next = match (truncated, page.last()) {
        (true, Some(last)) => format!(
            "<NextContinuationToken>{}</NextContinuationToken>",
            xml(last)
        ),
        _ => String::new(),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{}</Name><Prefix>{}</Prefix><KeyCount>{}</KeyCount><MaxKeys>{max}</MaxKeys><IsTruncated>{truncated}</IsTruncated>{contents}{next}</ListBucketResult>",
        xml(bucket),
        xml(&prefix),
        page.len()
    );
    ([(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

async fn object_request(
    State(s3): State<S3>,
    method: Method,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut buckets = s3.buckets.buckets.lock().unwrap();
    let Some(objects) = buckets.get_mut(&bucket) else {
        return no_bucket(&bucket);
    };
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match method {
        Method::PUT => {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body);
            let etag: String = digest.as_ref()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let etag = format!("\"{etag}\"");
            objects.insert(
                key,
                Object {
                    body,
                    content_type: text(header::CONTENT_TYPE),
                    cache_control: text(header::CACHE_CONTROL),
                    etag: etag.clone(),
                },
            );
            (StatusCode::OK, [(header::ETAG, etag)]).into_response()
        }
        Method::GET | Method::HEAD => match objects.get(&key) {
            Some(object) => object_response(object, method == Method::HEAD),
            None => error(
                StatusCode::NOT_FOUND,
                "NoSuchKey",
                "The specified key does not exist.",
                &key,
            ),
        },
        Method::DELETE => {
            objects.remove(&key);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "not supported by the local S3",
            &key,
        ),
    }
}

/// An object as S3 (and CloudFront in front of it) answers it.
pub fn object_response(object: &Object, head: bool) -> Response {
    let mut response = if head {
        StatusCode::OK.into_response()
    } else {
        object.body.clone().into_response()
    };
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set(headers, header::ETAG, &object.etag);
    set(
        headers,
        header::CONTENT_LENGTH,
        &object.body.len().to_string(),
    );
    let kind = object
        .content_type
        .as_deref()
        .unwrap_or("binary/octet-stream");
    set(headers, header::CONTENT_TYPE, kind);
    if let Some(cache) = &object.cache_control {
        set(headers, header::CACHE_CONTROL, cache);
    }
    response
}

/// Escapes text for XML.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}
