//! The site bucket's content: the page's files and `chat-config.json` written, or every
//! object deleted, through the AWS SDK's S3 client (`AWS_ENDPOINT_URL_S3` points it at the
//! local stack's S3, path-style, as a loopback endpoint needs).

use aws_sdk_s3::primitives::ByteStream;
use serde_json::{json, Map, Value};

use crate::assets::{ASSETS, CONFIG_KEY};

/// How long browsers and CloudFront may use a file before asking again: never (they
/// revalidate with the ETag, cheaply), so a deploy shows at once.
const CACHE_CONTROL: &str = "no-cache";

/// The sign-in modes the page knows.
const AUTH_MODES: &[&str] = &["open", "jwt", "cognito"];

pub struct Site {
    s3: aws_sdk_s3::Client,
}

impl Site {
    pub fn new(s3: aws_sdk_s3::Client) -> Site {
        Site { s3 }
    }

    /// The S3 client of the environment; path-style when an endpoint override names one.
    pub async fn from_env() -> Site {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let local = std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3 = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(local)
            .build();
        Site::new(aws_sdk_s3::Client::from_conf(s3))
    }

    /// Writes the page and its configuration; the number of objects written.
    pub async fn publish(&self, properties: &Value) -> Result<usize, String> {
        let bucket = bucket(properties)?;
        let config = page_config(&properties["Config"])?;
        for asset in ASSETS {
            self.put(bucket, asset.key, asset.body.to_vec(), asset.content_type)
                .await?;
        }
        let config = serde_json::to_vec_pretty(&config).map_err(|e| e.to_string())?;
        self.put(bucket, CONFIG_KEY, config, "application/json")
            .await?;
        Ok(ASSETS.len() + 1)
    }

    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>, kind: &str) -> Result<(), String> {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .content_type(kind)
            .cache_control(CACHE_CONTROL)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot write {key} to bucket {bucket}: {}", explain(&e)))
    }

    /// Deletes every object of the bucket (one already gone counts as empty).
    pub async fn empty(&self, properties: &Value) -> Result<usize, String> {
        let bucket = bucket(properties)?;
        let mut deleted = 0;
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_no_such_bucket()) =>
                {
                    return Ok(deleted)
                }
                Err(error) => {
                    return Err(format!("cannot list bucket {bucket}: {}", explain(&error)))
                }
            };
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                self.s3
                    .delete_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| format!("cannot delete {key} from {bucket}: {}", explain(&e)))?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

fn bucket(properties: &Value) -> Result<&str, String> {
    properties["Bucket"]
        .as_str()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| "the resource needs a Bucket (the site bucket's name)".to_owned())
}

/// The page's configuration from the resource's `Config`: `authMode` and `webSocketUrl`
/// required, `issuer` and `clientId` kept when not empty; anything else is refused.
pub fn page_config(config: &Value) -> Result<Value, String> {
    let text = |key: &str| {
        config
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let mode = text("authMode").ok_or("Config needs authMode")?;
    if !AUTH_MODES.contains(&mode) {
        return Err(format!(
            "Config.authMode {mode:?} is not one of {}",
            AUTH_MODES.join(", ")
        ));
    }
    let url = text("webSocketUrl").ok_or("Config needs webSocketUrl")?;
    if !(url.starts_with("wss://") || url.starts_with("ws://")) {
        return Err(format!(
            "Config.webSocketUrl {url:?} is not a ws:// or wss:// URL"
        ));
    }
    let mut page = Map::new();
    page.insert("authMode".into(), json!(mode));
    page.insert("webSocketUrl".into(), json!(url));
    for key in ["issuer", "clientId"] {
        if let Some(value) = text(key) {
            page.insert(key.into(), json!(value));
        }
    }
    if mode != "open" && !(page.contains_key("issuer") && page.contains_key("clientId")) {
        return Err(format!("Config.authMode {mode} needs issuer and clientId"));
    }
    Ok(Value::Object(page))
}

/// An SDK error in one line: the service's code and message where there is one.
fn explain<E, R>(error: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("error"),
            service.message().unwrap_or("no message")
        ),
        None => format!("{error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_config_is_checked_and_shaped() {
        let open = page_config(
            &json!({"authMode": "open", "webSocketUrl": "wss://a/Test", "issuer": "", "clientId": ""}),
        );
        assert_eq!(
            open.unwrap(),
            json!({"authMode": "open", "webSocketUrl": "wss://a/Test"})
        );
        let cognito = json!({"authMode": "cognito", "webSocketUrl": "wss://a/Test",
            "issuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_X", "clientId": "c1"});
        assert_eq!(page_config(&cognito).unwrap()["clientId"], "c1");
        assert!(
            page_config(&json!({"authMode": "cognito", "webSocketUrl": "wss://a"}))
                .unwrap_err()
                .contains("issuer and clientId")
        );
        assert!(
            page_config(&json!({"authMode": "magic", "webSocketUrl": "wss://a"}))
                .unwrap_err()
                .contains("magic")
        );
        assert!(
            page_config(&json!({"authMode": "open", "webSocketUrl": "https://a"}))
                .unwrap_err()
                .contains("ws://")
        );
        assert!(page_config(&Value::Null).unwrap_err().contains("authMode"));
    }
}
