//! The template's resources beyond the API, functions and tables that the local stack
//! stands in for: S3 buckets (the local S3), a Cognito user pool and its app client (the
//! development issuer), custom resources (run through their functions at start, as
//! CloudFormation runs them at deploy), and a CloudFront distribution in front of a bucket
//! (the WebSocket port's page, with the distribution's security headers). Each gets its
//! `Ref` and attributes in the scope, shaped as on AWS.

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

use crate::issuer::DEV_AUDIENCE;
use crate::stack::{partition, Function, ACCOUNT_ID, STACK_NAME};
use crate::template::{Scope, Template};

/// An S3 bucket of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub logical_id: String,
    pub name: String,
}

/// The template's Cognito user pool, which the development issuer stands in for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPool {
    pub logical_id: String,
    /// Its issuer URL on AWS, `https://cognito-idp.{region}.amazonaws.com/{poolId}`.
    pub issuer: String,
    /// Its app client's id (the development issuer's client).
    pub client_id: String,
    /// Its managed login's origin on AWS, `https://{domain}.auth.{region}.amazoncognito.com`.
    pub sign_in_origin: String,
}

/// The page's hosting: a CloudFront distribution in front of one of the template's buckets,
/// and the security headers of its response headers policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub distribution: String,
    pub bucket: String,
    pub headers: Vec<(String, String)>,
}

/// A custom resource (`Custom::*` or `AWS::CloudFormation::CustomResource`) and the
/// function its `ServiceToken` names.
#[derive(Debug, Clone)]
pub struct CustomResource {
    pub logical_id: String,
    pub kind: String,
    /// The function's logical id.
    pub function: String,
    /// `ResourceProperties` as CloudFormation sends them (resolved, `ServiceToken` included).
    pub properties: Value,
}

/// Names the buckets (`BucketName`, else a generated lowercase name) in `scope`.
pub fn name_buckets(template: &Template, scope: &mut Scope, region: &str) -> Result<Vec<Bucket>> {
    let suffix = partition(region).1;
    let mut buckets = Vec::new();
    for (id, bucket) in template.of_type("AWS::S3::Bucket") {
        let name = match bucket.properties.get("BucketName") {
            Some(name) => scope
                .resolve_string(name)
                .with_context(|| format!("{id}.BucketName"))?,
            None => format!("{STACK_NAME}-{}", id.to_ascii_lowercase()),
        };
        scope.refs.insert(id.clone(), name.clone());
        let attributes = [
            ("Arn", format!("arn:{}:s3:::{name}", partition(region).0)),
            ("DomainName", format!("{name}.s3.{suffix}")),
            ("RegionalDomainName", format!("{name}.s3.{region}.{suffix}")),
        ];
        for (attribute, value) in attributes {
            scope.attributes.insert(format!("{id}.{attribute}"), value);
        }
        buckets.push(Bucket {
            logical_id: id.clone(),
            name,
        });
    }
    Ok(buckets)
}

/// Each IAM role's ARN (`RoleName`, else a generated name), as `Fn::GetAtt Role.Arn`.
pub fn name_roles(template: &Template, scope: &mut Scope, region: &str) -> Result<()> {
    for (id, role) in template.of_type("AWS::IAM::Role") {
        let name = match role.properties.get("RoleName") {
            Some(name) => scope.resolve_string(name)?,
            None => format!("{STACK_NAME}-{id}"),
        };
        let arn = format!("arn:{}:iam::{ACCOUNT_ID}:role/{name}", partition(region).0);
        scope.refs.insert(id.clone(), name);
        scope.attributes.insert(format!("{id}.Arn"), arn);
    }
    Ok(())
}

/// The user pool (at most one is emulated) with its app client's id: the development
/// issuer's audience, so tokens it signs are the pool's tokens for that client.
pub fn name_user_pool(template: &Template, scope: &mut Scope, region: &str) -> Option<UserPool> {
    let (id, _) = template.of_type("AWS::Cognito::UserPool").next()?;
    let pool_id = format!("{region}_LocalPool");
    scope.refs.insert(id.clone(), pool_id.clone());
    scope.attributes.insert(
        format!("{id}.Arn"),
        format!(
            "arn:{}:cognito-idp:{region}:{ACCOUNT_ID}:userpool/{pool_id}",
            partition(region).0
        ),
    );
    for (client, _) in template.of_type("AWS::Cognito::UserPoolClient") {
        scope.refs.insert(client.clone(), DEV_AUDIENCE.to_owned());
    }
    let domain = "local-sign-in";
    for (id, _) in template.of_type("AWS::Cognito::UserPoolDomain") {
        scope.refs.insert(id.clone(), domain.to_owned());
    }
    Some(UserPool {
        logical_id: id.clone(),
        issuer: format!("https://cognito-idp.{region}.amazonaws.com/{pool_id}"),
        client_id: DEV_AUDIENCE.to_owned(),
        sign_in_origin: format!("https://{domain}.auth.{region}.amazoncognito.com"),
    })
}

/// `Ref`s of the versions and aliases SAM publishes for functions with `AutoPublishAlias`
/// (`!Ref Fn.Version`, `!Ref Fn.Alias`): one version, `1`, locally.
pub fn name_function_versions(template: &Template, scope: &mut Scope) -> Result<()> {
    for (id, function) in template.of_type("AWS::Serverless::Function") {
        let Some(alias) = function.properties.get("AutoPublishAlias") else {
            continue;
        };
        let alias = scope.resolve_string(alias)?;
        let arn = scope
            .attributes
            .get(&format!("{id}.Arn"))
            .cloned()
            .ok_or_else(|| anyhow!("{id} has no ARN"))?;
        scope
            .refs
            .insert(format!("{id}.Version"), format!("{arn}:1"));
        scope
            .refs
            .insert(format!("{id}.Alias"), format!("{arn}:{alias}"));
    }
    Ok(())
}

/// The custom resources, their properties resolved, each with the function it runs.
pub fn custom_resources(
    template: &Template,
    scope: &Scope,
    functions: &std::collections::BTreeMap<String, Function>,
) -> Result<Vec<CustomResource>> {
    let mut found = Vec::new();
    for (id, resource) in &template.resources {
        let custom = resource.kind.starts_with("Custom::")
            || resource.kind == "AWS::CloudFormation::CustomResource";
        if !custom {
            continue;
        }
        let mut properties = scope
            .resolve(&resource.properties)
            .with_context(|| format!("{id}.Properties"))?;
        // CloudFormation hands a custom resource every scalar as a string.
        stringify_scalars(&mut properties);
        let token = properties["ServiceToken"]
            .as_str()
            .ok_or_else(|| anyhow!("{id} has no ServiceToken"))?;
        // A function's ARN, or a version's or alias's (arn:…:function:name:qualifier).
        let function = functions
            .values()
            .find(|f| token == f.arn || token.starts_with(&format!("{}:", f.arn)))
            .ok_or_else(|| {
                anyhow!("{id}.ServiceToken {token} is no function of the template (SNS topics are not emulated)")
            })?;
        found.push(CustomResource {
            logical_id: id.clone(),
            kind: resource.kind.clone(),
            function: function.logical_id.clone(),
            properties,
        });
    }
    Ok(found)
}

/// The distribution serving one of `buckets`, with its response headers policy's security
/// headers (resolved as CloudFront sends them); `None` when the template hosts no page.
pub fn site(template: &Template, scope: &Scope, buckets: &[Bucket]) -> Result<Option<Site>> {
    for (id, distribution) in template.of_type("AWS::CloudFront::Distribution") {
        let config = &distribution.properties["DistributionConfig"];
        let origins = config["Origins"].as_array().cloned().unwrap_or_default();
        let bucket = origins.iter().find_map(|origin| {
            let domain = scope.resolve_string(&origin["DomainName"]).ok()?;
            buckets
                .iter()
                .find(|b| domain.starts_with(&format!("{}.s3.", b.name)))
        });
        let Some(bucket) = bucket else { continue };
        let policy = config["DefaultCacheBehavior"]["ResponseHeadersPolicyId"]["Ref"]
            .as_str()
            .and_then(|policy| template.resources.get(policy));
        let security = policy
            .map(|p| &p.properties["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"])
            .cloned()
            .unwrap_or(Value::Null);
        let headers = security_headers(&security, scope)
            .with_context(|| format!("{id}'s response headers policy"))?;
        return Ok(Some(Site {
            distribution: id.clone(),
            bucket: bucket.name.clone(),
            headers,
        }));
    }
    Ok(None)
}

/// A response headers policy's `SecurityHeadersConfig` as the headers CloudFront adds.
fn security_headers(config: &Value, scope: &Scope) -> Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    let text = |value: &Value| scope.resolve_string(value);
    if let Some(csp) = config.pointer("/ContentSecurityPolicy/ContentSecurityPolicy") {
        headers.push(("content-security-policy".to_owned(), text(csp)?));
    }
    if let Some(hsts) = config.get("StrictTransportSecurity") {
        let mut value = format!("max-age={}", text(&hsts["AccessControlMaxAgeSec"])?);
        if hsts["IncludeSubdomains"] == true {
            value.push_str("; includeSubDomains");
        }
        if hsts["Preload"] == true {
            value.push_str("; preload");
        }
        headers.push(("strict-transport-security".to_owned(), value));
    }
    if config.get("ContentTypeOptions").is_some() {
        headers.push(("x-content-type-options".to_owned(), "nosniff".to_owned()));
    }
    if let Some(frame) = config.pointer("/FrameOptions/FrameOption") {
        headers.push(("x-frame-options".to_owned(), text(frame)?));
    }
    if let Some(referrer) = config.pointer("/ReferrerPolicy/ReferrerPolicy") {
        headers.push(("referrer-policy".to_owned(), text(referrer)?));
    }
    Ok(headers)
}

/// Numbers and booleans as strings, everywhere in `value`, as CloudFormation sends them.
fn stringify_scalars(value: &mut Value) {
    match value {
        Value::Number(n) => *value = Value::String(n.to_string()),
        Value::Bool(b) => *value = Value::String(b.to_string()),
        Value::Array(items) => items.iter_mut().for_each(stringify_scalars),
        Value::Object(map) => map.values_mut().for_each(stringify_scalars),
        _ => {}
    }
}

/// Replaces `aws` by `local` at the start of every string in `value` (an emulated
/// resource's AWS endpoint by its local one).
pub fn stand_in(value: &mut Value, aws: &str, local: &str) {
    match value {
        Value::String(text) if text.starts_with(aws) => {
            *text = format!("{local}{}", &text[aws.len()..]);
        }
        Value::Array(items) => items.iter_mut().for_each(|item| stand_in(item, aws, local)),
        Value::Object(map) => map.values_mut().for_each(|item| stand_in(item, aws, local)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn custom_resources_get_scalars_as_strings() {
        let mut value = json!({"a": 1, "b": [true, 2.5, null], "c": {"d": "x"}});
        stringify_scalars(&mut value);
        assert_eq!(
            value,
            json!({"a": "1", "b": ["true", "2.5", null], "c": {"d": "x"}})
        );
    }

    #[test]
    fn stand_ins_replace_an_aws_endpoint_at_the_start_only() {
        let mut value = json!({"a": "wss://x.example/Test", "b": ["wss://x.example"], "c": "see wss://x.example", "d": 1});
        stand_in(&mut value, "wss://x.example", "ws://127.0.0.1:3001");
        assert_eq!(
            value,
            json!({"a": "ws://127.0.0.1:3001/Test", "b": ["ws://127.0.0.1:3001"], "c": "see wss://x.example", "d": 1})
        );
    }
}
