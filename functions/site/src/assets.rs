//! The page's files, built into the binary from `web/` (so a new page is a new function
//! version, which is what makes CloudFormation rewrite them), with their content types.

/// One file of the page: its key in the bucket, its bytes and its `Content-Type`.
pub struct Asset {
    pub key: &'static str,
    pub body: &'static [u8],
    pub content_type: &'static str,
}

macro_rules! asset {
    ($key:literal, $type:literal) => {
        Asset {
            key: $key,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/", $key)),
            content_type: $type,
        }
    };
}

/// Every file the page is made of (a test checks this against `web/`).
pub const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("chat.js", "text/javascript; charset=utf-8"),
    asset!("oidc.js", "text/javascript; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
];

/// The key the page reads its configuration from (the local stack serves the same path).
pub const CONFIG_KEY: &str = "chat-config.json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_page_is_built_in() {
        let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
        let mut files: Vec<String> = std::fs::read_dir(web)
            .unwrap()
            .filter_map(|entry| {
                let entry = entry.ok()?;
                entry
                    .file_type()
                    .ok()?
                    .is_file()
                    .then(|| entry.file_name().to_string_lossy().into_owned())
            })
            .collect();
        files.sort();
        let mut built: Vec<String> = ASSETS.iter().map(|a| a.key.to_owned()).collect();
        built.sort();
        assert_eq!(files, built, "web/ and the built-in assets differ");
    }
}
