//! SAM's `AWS::Serverless::WebSocketApi`, expanded into the CloudFormation resources
//! aws-sam-translator makes of it (the Api, a Route + Integration + Lambda permission per
//! entry of `Routes`, the Stage, and with `Auth` the `$connect` authorizer and its
//! permission), under the same logical ids, so the stack model reads one form only.
//!
//! Hand-written: no Rust crate implements SAM's transform. It follows the translator the
//! pinned SAM CLI ships (1.115), including what it refuses (an `AuthType` other than
//! `NONE`, `AWS_IAM` or `CUSTOM`, `!If` included; `CUSTOM` without `AuthArn`; `Auth`
//! without a `$connect` route; route keys that are neither alphanumeric nor one of
//! `$connect`, `$disconnect`, `$default`); the differential test compares the result with
//! the translator's own output.

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};

use crate::template::{Resource, Template};

pub const WEBSOCKET_API: &str = "AWS::Serverless::WebSocketApi";

/// The template with every `AWS::Serverless::WebSocketApi` replaced by what SAM makes of it.
pub fn expand(template: &Template) -> Result<Template> {
    let mut expanded = template.clone();
    for (id, api) in template.of_type(WEBSOCKET_API) {
        expanded.resources.remove(id);
        for (new_id, resource) in websocket_api(id, api).map_err(|e| anyhow!("{id}: {e}"))? {
            if expanded.resources.contains_key(&new_id) {
                bail!("{id} makes {new_id}, which the template already declares");
            }
            expanded.resources.insert(new_id, resource);
        }
    }
    Ok(expanded)
}

/// The resources one WebSocket API expands into, keyed by logical id.
fn websocket_api(id: &str, api: &Resource) -> Result<Vec<(String, Resource)>> {
    let props = api.properties.as_object().cloned().unwrap_or_default();
    let routes = props
        .get("Routes")
        .and_then(Value::as_object)
        .filter(|routes| !routes.is_empty())
        .ok_or_else(|| anyhow!("WebSocket API must have at least one route"))?;
    let selection = props
        .get("RouteSelectionExpression")
        .ok_or_else(|| anyhow!("RouteSelectionExpression is required"))?;
    let auth = props.get("Auth").and_then(Value::as_object);
    if let Some(auth) = auth {
        check_auth(auth)?;
        if !routes.contains_key("$connect") {
            bail!("Authorization is only available if there is a $connect route");
        }
    }
    let resource = |kind: &str, properties: Value| Resource {
        kind: kind.to_owned(),
        properties,
        metadata: Value::Null,
        condition: api.condition.clone(),
    };
    let mut api_props = Map::new();
    api_props.insert(
        "Name".into(),
        props.get("Name").cloned().unwrap_or(json!(id)),
    );
    api_props.insert("ProtocolType".into(), json!("WEBSOCKET"));
    api_props.insert("RouteSelectionExpression".into(), selection.clone());
    for key in [
        "Description",
        "ApiKeySelectionExpression",
        "DisableSchemaValidation",
    ] {
        if let Some(value) = props.get(key) {
            api_props.insert(key.into(), value.clone());
        }
    }
    let mut out = vec![(
        id.to_owned(),
        resource("AWS::ApiGatewayV2::Api", Value::Object(api_props)),
    )];
    let stage_name = props.get("StageName").cloned().unwrap_or(json!("default"));
    let authorizer = auth
        .filter(|auth| auth["AuthType"] == "CUSTOM")
        .map(|_| format!("{id}ConnectAuthorizer"));
    for (key, spec) in routes {
        let suffix = route_suffix(key)?;
        let function = spec
            .get("FunctionArn")
            .ok_or_else(|| anyhow!("Route must have associated function"))?;
        let (route_id, integration_id) = (
            format!("{id}{suffix}Route"),
            format!("{id}{suffix}Integration"),
        );
        let mut route = json!({
            "ApiId": {"Ref": id},
            "RouteKey": key,
            "Target": {"Fn::Join": ["/", ["integrations", {"Ref": integration_id}]]},
        });
        if key == "$connect" {
            if let Some(auth) = auth {
                route["AuthorizationType"] = auth["AuthType"].clone();
            }
            if let Some(authorizer) = &authorizer {
                route["AuthorizerId"] = json!({"Ref": authorizer});
            }
        }
        let mut integration = json!({
            "ApiId": {"Ref": id},
            "IntegrationType": "AWS_PROXY",
            "IntegrationUri": {"Fn::Sub": [
                "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${FunctionArn}/invocations",
                {"FunctionArn": function},
            ]},
        });
        if let Some(timeout) = spec.get("IntegrationTimeout") {
            integration["TimeoutInMillis"] = timeout.clone();
        }
        let source = format!(
            "arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{{id}.ApiId}}/${{__StageName__}}/{key}"
        );
        let permission = json!({
            "Action": "lambda:InvokeFunction",
            "FunctionName": function,
            "Principal": "apigateway.amazonaws.com",
            "SourceArn": {"Fn::Sub": [source, {"__StageName__": stage_name}]},
        });
        out.push((route_id, resource("AWS::ApiGatewayV2::Route", route)));
        out.push((
            integration_id,
            resource("AWS::ApiGatewayV2::Integration", integration),
        ));
        out.push((
            format!("{id}{suffix}Permission"),
            resource("AWS::Lambda::Permission", permission),
        ));
    }
    let stage_id = match stage_name.as_str() {
        Some("default") => format!("{id}DefaultStage"),
        Some(name) => format!("{id}{name}Stage"),
        None => format!("{id}Stage"),
    };
    let mut stage = json!({"ApiId": {"Ref": id}, "StageName": stage_name, "AutoDeploy": true});
    for key in [
        "DefaultRouteSettings",
        "RouteSettings",
        "StageVariables",
        "AccessLogSettings",
    ] {
        if let Some(value) = props.get(key) {
            stage[key] = value.clone();
        }
    }
    out.push((stage_id, resource("AWS::ApiGatewayV2::Stage", stage)));
    if let (Some(authorizer), Some(auth)) = (authorizer, auth) {
        let arn = &auth["AuthArn"];
        let mut properties = json!({
            "ApiId": {"Ref": id},
            "AuthorizerType": "REQUEST",
            "AuthorizerUri": {"Fn::Sub": [
                "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${AuthArn}/invocations",
                {"AuthArn": arn},
            ]},
            "Name": auth.get("Name").cloned().unwrap_or(json!(authorizer)),
        });
        if let Some(sources) = auth.get("IdentitySource") {
            properties["IdentitySource"] = sources.clone();
        }
        // With an InvokeRole, API Gateway invokes the function with that role, and the
        // translator makes no resource-based permission.
        let role = auth.get("InvokeRole");
        if let Some(role) = role {
            properties["AuthorizerCredentialsArn"] = role.clone();
        }
        out.push((
            authorizer,
            resource("AWS::ApiGatewayV2::Authorizer", properties),
        ));
        if role.is_none() {
            let permission = json!({
                "Action": "lambda:InvokeFunction",
                "FunctionName": arn,
                "Principal": "apigateway.amazonaws.com",
                "SourceArn": {"Fn::Sub": [
                    "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${__ApiId__}/authorizers/*",
                    {"__ApiId__": {"Ref": id}},
                ]},
            });
            out.push((
                format!("{id}AuthorizerPermission"),
                resource("AWS::Lambda::Permission", permission),
            ));
        }
    }
    Ok(out)
}

/// What the translator checks of `Auth` before anything is deployed.
fn check_auth(auth: &Map<String, Value>) -> Result<()> {
    let kind = auth
        .get("AuthType")
        .ok_or_else(|| anyhow!("AuthType must be specified for additional auth configurations"))?;
    match kind.as_str() {
        Some("CUSTOM") if !auth.contains_key("AuthArn") => {
            bail!("AuthArn must be specified if AuthType is CUSTOM")
        }
        Some("CUSTOM") => Ok(()),
        Some(other @ ("AWS_IAM" | "NONE")) if auth.len() > 1 => {
            bail!("No additional configurations supported for AuthType {other}")
        }
        Some("AWS_IAM" | "NONE") => Ok(()),
        _ => bail!("AuthType '{kind}' is not one of AWS_IAM, CUSTOM or NONE"),
    }
}

/// The part of a route's logical ids its key gives (`$connect` → `Connect`, `onMessage` →
/// `Onmessage`, as Python's `str.capitalize`).
fn route_suffix(key: &str) -> Result<String> {
    let word = match key {
        "$connect" | "$disconnect" | "$default" => &key[1..],
        _ if !key.is_empty() && key.chars().all(|c| c.is_alphanumeric()) => key,
        _ => bail!(
            "Route key '{key}' must be alphanumeric. Only $connect, $disconnect, and $default special routes are supported."
        ),
    };
    let mut chars = word.chars();
    let first = chars
        .next()
        .map(|c| c.to_uppercase().to_string())
        .unwrap_or_default();
    Ok(first + &chars.as_str().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(body: &str) -> Result<Template> {
        let text = format!(
            "Resources:\n  Api:\n    Type: AWS::Serverless::WebSocketApi\n    Properties:\n{body}"
        );
        expand(&Template::parse(&text)?)
    }

    #[test]
    fn routes_stage_and_authorizer_get_the_translators_logical_ids() {
        let template = api(
            "      RouteSelectionExpression: $request.body.action
      StageName: !Ref Stage
      Auth: {AuthType: CUSTOM, AuthArn: !GetAtt Auth.Arn, IdentitySource: [route.request.querystring.t]}
      Routes:
        $connect: {FunctionArn: !GetAtt Fn.Arn}
        onMessage: {FunctionArn: !GetAtt Fn.Arn, IntegrationTimeout: 5000}",
        )
        .unwrap();
        let ids: Vec<&str> = template.resources.keys().map(String::as_str).collect();
        assert_eq!(
            ids,
            [
                "Api",
                "ApiAuthorizerPermission",
                "ApiConnectAuthorizer",
                "ApiConnectIntegration",
                "ApiConnectPermission",
                "ApiConnectRoute",
                "ApiOnmessageIntegration",
                "ApiOnmessagePermission",
                "ApiOnmessageRoute",
                "ApiStage",
            ]
        );
        let connect = &template.resources["ApiConnectRoute"].properties;
        assert_eq!(connect["AuthorizationType"], "CUSTOM");
        assert_eq!(
            connect["AuthorizerId"],
            json!({"Ref": "ApiConnectAuthorizer"})
        );
        let on_message = &template.resources["ApiOnmessageRoute"].properties;
        assert!(on_message.get("AuthorizationType").is_none());
        assert_eq!(
            template.resources["ApiOnmessageIntegration"].properties["TimeoutInMillis"],
            5000
        );
        assert_eq!(
            template.resources["ApiConnectAuthorizer"].properties["IdentitySource"],
            json!(["route.request.querystring.t"])
        );
    }

    #[test]
    fn what_the_translator_refuses_is_refused() {
        let refused = |body: &str| format!("{:#}", api(body).unwrap_err());
        let routes = "      Routes: {$connect: {FunctionArn: x}}\n";
        let select = "      RouteSelectionExpression: $request.body.action\n";
        let chosen = refused(&format!(
            "{select}{routes}      Auth: {{AuthType: !If [C, CUSTOM, NONE], AuthArn: x}}"
        ));
        assert!(
            chosen.contains("is not one of AWS_IAM, CUSTOM or NONE"),
            "{chosen}"
        );
        let no_arn = refused(&format!("{select}{routes}      Auth: {{AuthType: CUSTOM}}"));
        assert!(no_arn.contains("AuthArn must be specified"), "{no_arn}");
        let no_connect = refused(&format!(
            "{select}      Routes: {{$default: {{FunctionArn: x}}}}\n      Auth: {{AuthType: NONE}}"
        ));
        assert!(no_connect.contains("$connect route"), "{no_connect}");
        let bad_key = refused(&format!(
            "{select}      Routes: {{send-it: {{FunctionArn: x}}}}"
        ));
        assert!(bad_key.contains("must be alphanumeric"), "{bad_key}");
        let no_routes = refused(&format!("{select}      Routes: {{}}"));
        assert!(no_routes.contains("at least one route"), "{no_routes}");
    }
}
