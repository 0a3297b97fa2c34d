//! Plain GETs on the WebSocket port: the browser chat client from `web/`, if present, and
//! `/chat-config.json`, which tells it how to sign in here. Where the template hosts the
//! page (a CloudFront distribution in front of a bucket), the configuration is the one its
//! custom resource wrote to that bucket in the local S3, and every answer carries the
//! distribution's security headers, as CloudFront adds them; the files themselves come from
//! `web/`, so an edit shows on reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::metrics::Metrics;
use crate::on_failure::OnFailure;
use crate::s3::Buckets;

/// The path of the client's configuration.
pub const CONFIG_PATH: &str = "/chat-config.json";

/// What the WebSocket port serves to browsers.
#[derive(Debug, Clone, Default)]
pub struct Web {
    /// The browser client's directory; `None` when there is none.
    pub dir: Option<PathBuf>,
    /// `{"authMode":"open"}` or `{"authMode":"jwt","tokenUrl":…}`, when no bucket holds one.
    pub config: Value,
    /// The local S3 bucket the page is hosted from, when the template hosts it.
    pub site: Option<(Arc<Buckets>, String)>,
    /// Headers every answer carries (the hosting's security headers).
    pub headers: Vec<(String, String)>,
    /// The stack's metrics, drawn at [`METRICS_PAGE`] and served at [`METRICS_JSON`].
    pub metrics: Arc<Metrics>,
    /// What asynchronous invocations left at their on-failure destinations ([`ON_FAILURE_JSON`]).
    pub on_failure: Arc<OnFailure>,
}

/// The local metrics page, its script, and its data (the stack's own pages: they carry
/// none of the hosting's headers).
pub const METRICS_PAGE: &str = "/@local/metrics";
pub const METRICS_SCRIPT: &str = "/@local/metrics.js";
pub const METRICS_JSON: &str = "/@local/metrics.json";
/// The records at every on-failure destination, per destination.
pub const ON_FAILURE_JSON: &str = "/@local/on-failure.json";

impl Web {
    /// Serves `path`, with the hosting's headers.
    pub async fn serve(&self, path: &str) -> Response {
        if let Some(response) = self.local_page(path) {
            return response;
        }
        let mut response = self.answer(path).await;
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }

    /// The stack's own pages under `/@local/`.
    fn local_page(&self, path: &str) -> Option<Response> {
        let no_store = (header::CACHE_CONTROL, "no-store");
        Some(match path {
            METRICS_PAGE => (
                [(header::CONTENT_TYPE, "text/html; charset=utf-8"), no_store],
                include_str!("../assets/metrics.html"),
            )
                .into_response(),
            METRICS_SCRIPT => (
                [
                    (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                    no_store,
                ],
                include_str!("../assets/metrics.js"),
            )
                .into_response(),
            METRICS_JSON => {
                let mut snapshot = self.metrics.snapshot();
                snapshot["onFailure"] = serde_json::json!(self.on_failure.counts());
                ([no_store], axum::Json(snapshot)).into_response()
            }
            ON_FAILURE_JSON => ([no_store], axum::Json(self.on_failure.snapshot())).into_response(),
            _ => return None,
        })
    }

    async fn answer(&self, path: &str) -> Response {
        if path == CONFIG_PATH && self.dir.is_some() {
            let hosted = self.site.as_ref().and_then(|(buckets, bucket)| {
                buckets.get(bucket, CONFIG_PATH.trim_start_matches('/'))
            });
            return match hosted {
                Some(object) => crate::s3::object_response(&object, false),
                None => axum::Json(self.config.clone()).into_response(),
            };
        }
        serve_file(self.dir.as_deref(), path).await
    }
}

/// Serves `path` from `web_dir` (index.html for `/`), refusing anything outside it.
async fn serve_file(web_dir: Option<&Path>, path: &str) -> Response {
    let Some(dir) = web_dir else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "This is a WebSocket API: connect with a WebSocket client, e.g. wscat -c ws://<this host and port>\n",
        )
            .into_response();
    };
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() {
        "index.html"
    } else {
        relative
    };
    if relative
        .split('/')
        .any(|part| part == ".." || part.starts_with('.'))
    {
        return (StatusCode::NOT_FOUND, "Not found\n").into_response();
    }
    let file = dir.join(relative);
    match tokio::fs::read(&file).await {
        Ok(bytes) => {
            let kind = match file.extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("js" | "mjs") => "text/javascript; charset=utf-8",
                Some("css") => "text/css; charset=utf-8",
                Some("png") => "image/png",
                Some("svg") => "image/svg+xml",
                Some("json") => "application/json",
                _ => "application/octet-stream",
            };
            ([(header::CONTENT_TYPE, kind)], bytes).into_response()
        }
        Err(_) => (StatusCode::NOT_FOUND, "Not found\n").into_response(),
    }
}
