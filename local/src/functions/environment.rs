//! The environment Lambda gives a function's process: its own variables, its role's
//! (made-up, temporary) credentials, the endpoint overrides that point the SDKs at the local stack, and the
//! template's `Environment.Variables`.

use std::collections::BTreeMap;

use crate::stack::Function;

/// The local endpoints every function's SDK clients are pointed at.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub dynamodb: String,
    /// `http://127.0.0.1:<port>/<stage>`: the callback endpoint of `@connections`.
    pub connections: String,
    /// `http://127.0.0.1:<port>`: the Lambda Invoke API.
    pub lambda: String,
    /// `http://127.0.0.1:<port>`: the local S3 (path-style).
    pub s3: String,
    /// The functions' credentials (a role session, as Lambda gives them), which the local
    /// `@connections` and Invoke APIs accept.
    pub credentials: crate::sigv4::Credentials,
}

/// The environment Lambda gives every function, plus the template's variables.
pub fn lambda_environment(
    function: &Function,
    region: &str,
    endpoints: &Endpoints,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_owned(), v);
    };
    set("PATH", "/usr/local/bin:/usr/bin:/bin".into());
    set("LANG", "en_US.UTF-8".into());
    set("TZ", ":UTC".into());
    set("_HANDLER", "bootstrap".into());
    set("AWS_LAMBDA_FUNCTION_NAME", function.name.clone());
    set(
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        function.memory_mb.to_string(),
    );
    set("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into());
    set("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into());
    set(
        "AWS_LAMBDA_LOG_GROUP_NAME",
        format!("/aws/lambda/{}", function.name),
    );
    set("AWS_REGION", region.to_owned());
    set("AWS_DEFAULT_REGION", region.to_owned());
    let credentials = &endpoints.credentials;
    set("AWS_ACCESS_KEY_ID", credentials.access_key_id.clone());
    set(
        "AWS_SECRET_ACCESS_KEY",
        credentials.secret_access_key.clone(),
    );
    if let Some(token) = &credentials.session_token {
        set("AWS_SESSION_TOKEN", token.clone());
    }
    set("AWS_EC2_METADATA_DISABLED", "true".into());
    // The authorizer accepts an http:// issuer on loopback (the development issuer, or
    // one a test serves) only when told so; deployed, it never is.
    set("JWT_ALLOW_LOOPBACK_ISSUER", "true".into());
    set("AWS_ENDPOINT_URL_DYNAMODB", endpoints.dynamodb.clone());
    set(
        "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI",
        endpoints.connections.clone(),
    );
    set("AWS_ENDPOINT_URL_LAMBDA", endpoints.lambda.clone());
    set("AWS_ENDPOINT_URL_S3", endpoints.s3.clone());
    if let Some(format) = &function.log_format {
        set("AWS_LAMBDA_LOG_FORMAT", format.clone());
    }
    for name in ["RUST_LOG", "RUST_BACKTRACE", "AWS_LAMBDA_LOG_LEVEL"] {
        if let Ok(value) = std::env::var(name) {
            set(name, value);
        }
    }
    for (name, value) in &function.environment {
        set(name, value.clone());
    }
    env.into_iter().collect()
}
