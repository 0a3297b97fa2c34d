//! Plain GETs on the WebSocket port: the browser chat client from `web/`, if present,
//! and `/chat-config.json`, which tells it how to sign in here.

use std::path::{Path, PathBuf};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The path of the client's configuration.
pub const CONFIG_PATH: &str = "/chat-config.json";

/// What the WebSocket port serves to browsers.
#[derive(Debug, Clone, Default)]
pub struct Web {
    /// The browser client's directory; `None` when there is none.
    pub dir: Option<PathBuf>,
    /// `{"authMode":"open"}` or `{"authMode":"jwt","tokenUrl":…}`.
    pub config: Value,
}

/// Serves `path` from `web_dir` (index.html for `/`), refusing anything outside it.
pub async fn serve(web_dir: Option<&Path>, config: &Value, path: &str) -> Response {
    if path == CONFIG_PATH && web_dir.is_some() {
        return axum::Json(config.clone()).into_response();
    }
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
