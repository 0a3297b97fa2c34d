//! Plain GETs on the WebSocket port: the browser chat client from `web/`, if present.

use std::path::Path;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// Serves `path` from `web_dir` (index.html for `/`), refusing anything outside it.
pub async fn serve(web_dir: Option<&Path>, path: &str) -> Response {
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
