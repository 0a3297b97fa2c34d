//! Least privilege in `template.yaml`, checked statement by statement: no `*` action, no
//! resource beyond this stack's table and this API's `@connections` path, each function
//! exactly the actions its route needs, invoke permissions (made by the SAM transform)
//! scoped to this API, stage and route, and onMessage allowed to invoke FanoutFunction and
//! nothing else.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chat_local::template::Template;
use serde_json::{json, Value};

fn template() -> Template {
    Template::load(&common::repo().join("template.yaml")).expect("template.yaml parses")
}

fn list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

#[test]
fn every_statement_is_scoped_to_this_stack() {
    let tables: Vec<Value> = ["ChatTable", "MembersTable", "MessagesTable", "UsersTable"]
        .iter()
        .map(|table| json!({"Fn::GetAtt": [table, "Arn"]}))
        .collect();
    let connections = json!({"Fn::Sub":
        "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${ChatApi}/${StageName}/POST/@connections/*"});
    // A kick closes connections: DELETE on the same path, and only there.
    let closes = json!({"Fn::Sub":
        "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${ChatApi}/${StageName}/DELETE/@connections/*"});
    // A user's connections: the connections table's user index, nothing else of it.
    let user_index = json!({"Fn::Sub": "${ChatTable.Arn}/index/user-index"});
    let fanout = json!({"Fn::GetAtt": ["FanoutFunction", "Arn"]});
    // The worker names itself by its FunctionName (GetAtt on itself would be a cycle).
    let fanout_by_name = json!({"Fn::Sub":
        "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-fanout"});
    let site_objects = json!({"Fn::Sub": "${SiteBucket.Arn}/*"});
    let site_bucket = json!({"Fn::GetAtt": ["SiteBucket", "Arn"]});
    let template = template();
    let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, function) in template.of_type("AWS::Serverless::Function") {
        if id == "AuthorizerFunction" {
            assert!(
                function.properties.get("Policies").is_none(),
                "the authorizer needs no AWS access: no Policies beyond SAM's logging role"
            );
            continue;
        }
        let policies = function.properties["Policies"]
            .as_array()
            .unwrap_or_else(|| panic!("{id} has inline Policies"));
        for policy in policies {
            let statements = policy["Statement"].as_array().unwrap_or_else(|| {
                panic!("{id}: policy templates or managed policies are not allowed here: {policy}")
            });
            for statement in statements {
                assert_eq!(statement["Effect"], "Allow", "{id}");
                let actions: Vec<String> = list(&statement["Action"])
                    .iter()
                    .map(|a| a.as_str().unwrap().to_owned())
                    .collect();
                for action in &actions {
                    assert!(
                        !action.contains('*'),
                        "{id} grants a wildcard action {action}"
                    );
                }
                for resource in list(&statement["Resource"]) {
                    let dynamodb = actions.iter().all(|a| a.starts_with("dynamodb:"));
                    let execute_api = actions.iter().all(|a| a == "execute-api:ManageConnections");
                    let invoke = actions.iter().all(|a| a == "lambda:InvokeFunction");
                    let s3 = actions.iter().all(|a| a.starts_with("s3:"));
                    assert!(
                        (dynamodb && tables.contains(&resource))
                            || (dynamodb && resource == user_index && actions == ["dynamodb:Query"])
                            || (execute_api && (resource == connections || resource == closes))
                            || (invoke && (resource == fanout || resource == fanout_by_name))
                            || (s3 && (resource == site_objects || resource == site_bucket)),
                        "{id} grants {actions:?} on {resource}, beyond this stack's tables, @connections path and fan-out worker"
                    );
                    let on = match resource["Fn::GetAtt"][0]
                        .as_str()
                        .or((resource == site_objects).then_some("SiteBucketObjects"))
                        .or((resource == fanout_by_name).then_some("FanoutFunction"))
                        .or((resource == user_index).then_some("ChatUserIndex"))
                        .or((resource == closes).then_some("ApiDelete"))
                    {
                        Some(table) => table
                            .trim_end_matches("Table")
                            .trim_end_matches("Function")
                            .to_owned(),
                        None => "Api".to_owned(),
                    };
                    for action in &actions {
                        granted
                            .entry(id.clone())
                            .or_default()
                            .insert(format!("{on} {action}"));
                    }
                }
            }
        }
    }
    let expect = |actions: &[&str]| {
        actions
            .iter()
            .map(|a| a.to_string())
            .collect::<BTreeSet<_>>()
    };
    // Connect/Disconnect/OnMessage/Rooms/Fanout also prune ids that answer 410: DeleteItem
    // (conditional, for ids that may be young) and BatchWriteItem (for ids gone for good).
    assert_eq!(
        granted["ConnectFunction"],
        expect(&[
            "Chat dynamodb:PutItem",
            "Chat dynamodb:DeleteItem",
            "Chat dynamodb:BatchWriteItem",
            "Members dynamodb:PutItem",
            "Members dynamodb:Query",
            "Members dynamodb:DeleteItem",
            "Members dynamodb:BatchWriteItem",
            // A signed-in user's ban from the room, and the record that they were here.
            "Users dynamodb:GetItem",
            "Users dynamodb:PutItem",
            "Api execute-api:ManageConnections",
        ])
    );
    assert_eq!(
        granted["DisconnectFunction"],
        expect(&[
            "Chat dynamodb:DeleteItem",
            "Chat dynamodb:BatchWriteItem",
            "Members dynamodb:Query",
            "Members dynamodb:DeleteItem",
            "Members dynamodb:BatchWriteItem",
            "Api execute-api:ManageConnections",
        ])
    );
    // Messages: UpdateItem takes a seq and settles a clientId, PutItem keeps a message and
    // claims a clientId, GetItem reads a claim, DeleteItem gives one up.
    assert_eq!(
        granted["OnMessageFunction"],
        expect(&[
            "Chat dynamodb:GetItem",
            "Chat dynamodb:UpdateItem",
            "Chat dynamodb:DeleteItem",
            "Chat dynamodb:BatchWriteItem",
            "Members dynamodb:Query",
            "Members dynamodb:DeleteItem",
            "Members dynamodb:BatchWriteItem",
            "Messages dynamodb:PutItem",
            "Messages dynamodb:UpdateItem",
            "Messages dynamodb:GetItem",
            "Messages dynamodb:DeleteItem",
            // A direct message: both users' connections, and whether the recipient exists.
            "ChatUserIndex dynamodb:Query",
            "Users dynamodb:GetItem",
            "Api execute-api:ManageConnections",
            "Fanout lambda:InvokeFunction",
        ])
    );
    // The worker reads nothing: the ids come in its event; 410s are deleted; what it has
    // no time for goes to itself.
    assert_eq!(
        granted["FanoutFunction"],
        expect(&[
            "Chat dynamodb:DeleteItem",
            "Chat dynamodb:BatchWriteItem",
            "Members dynamodb:DeleteItem",
            "Members dynamodb:BatchWriteItem",
            "Api execute-api:ManageConnections",
            "Fanout lambda:InvokeFunction",
        ])
    );
    assert_eq!(
        granted["RoomsFunction"],
        expect(&[
            "Chat dynamodb:GetItem",
            "Chat dynamodb:UpdateItem",
            "Chat dynamodb:DeleteItem",
            "Chat dynamodb:BatchWriteItem",
            "Members dynamodb:PutItem",
            "Members dynamodb:Query",
            "Members dynamodb:DeleteItem",
            "Members dynamodb:BatchWriteItem",
            "Messages dynamodb:Query",
            "Messages dynamodb:GetItem",
            // A moderator's kick and ban: the user's connections, the ban, the closing.
            "ChatUserIndex dynamodb:Query",
            "Users dynamodb:GetItem",
            "Users dynamodb:PutItem",
            "Users dynamodb:DeleteItem",
            "Api execute-api:ManageConnections",
            "ApiDelete execute-api:ManageConnections",
        ])
    );
    assert_eq!(
        granted["DefaultFunction"],
        expect(&["Api execute-api:ManageConnections"])
    );
    // The page's custom resource writes and deletes the page's objects and lists the bucket
    // (to empty it), nothing else.
    assert_eq!(
        granted["SiteFunction"],
        expect(&[
            "SiteBucketObjects s3:PutObject",
            "SiteBucketObjects s3:DeleteObject",
            "SiteBucket s3:ListBucket",
        ])
    );
}

/// Only this API may invoke the functions, each only for its own routes on this stage,
/// and the authorizer only through this API's authorizers: checked on the template as
/// CloudFormation receives it (the SAM transform makes the permissions).
#[test]
fn only_this_api_may_invoke_the_functions() {
    let translated = common::sam_translate(&[]);
    let resources = translated["Resources"].as_object().unwrap();
    let mut allowed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, resource) in resources {
        if resource["Type"] != "AWS::Lambda::Permission" {
            continue;
        }
        let p = &resource["Properties"];
        assert_eq!(p["Action"], "lambda:InvokeFunction", "{id}");
        assert_eq!(p["Principal"], "apigateway.amazonaws.com", "{id}");
        let function = p["FunctionName"]["Fn::GetAtt"][0].as_str().unwrap();
        let (arn, variables) = (&p["SourceArn"]["Fn::Sub"][0], &p["SourceArn"]["Fn::Sub"][1]);
        let arn = arn.as_str().unwrap();
        let prefix = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:";
        let scope = arn
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{id}: {arn} is not this account's execute-api"));
        let route = {
            let route = scope
                .strip_prefix("${ChatApi.ApiId}/${__StageName__}/")
                .unwrap_or_else(|| panic!("{id}: {arn} is not scoped to this API's stage"));
            assert_eq!(variables["__StageName__"], json!({"Ref": "StageName"}));
            route.to_owned()
        };
        allowed
            .entry(function.to_owned())
            .or_default()
            .insert(route);
    }
    let routes = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<BTreeSet<_>>();
    let expected: BTreeMap<String, BTreeSet<String>> = [
        ("ConnectFunction", routes(&["$connect"])),
        ("DefaultFunction", routes(&["$default"])),
        ("DisconnectFunction", routes(&["$disconnect"])),
        (
            "OnMessageFunction",
            routes(&["onMessage", "dm", "edit", "delete", "typing"]),
        ),
        (
            "RoomsFunction",
            routes(&["join", "who", "history", "kick", "ban", "unban"]),
        ),
    ]
    .into_iter()
    .map(|(f, r)| (f.to_owned(), r))
    .collect();
    // The fan-out worker is invoked by onMessage's role (no resource policy needed within
    // the account, and none is wanted): API Gateway may not invoke it. The authorizer is
    // invoked with AuthorizerInvokeRole, which may invoke it and nothing else.
    assert_eq!(allowed, expected);
    let authorizer = &resources["ChatApiConnectAuthorizer"]["Properties"];
    assert_eq!(
        authorizer["AuthorizerCredentialsArn"],
        json!({"Fn::GetAtt": ["AuthorizerInvokeRole", "Arn"]})
    );
    let role = &resources["AuthorizerInvokeRole"]["Properties"];
    let trust = &role["AssumeRolePolicyDocument"]["Statement"];
    assert_eq!(
        trust,
        &json!([{"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "sts:AssumeRole"}])
    );
    let statements = &role["Policies"][0]["PolicyDocument"]["Statement"];
    let by_name = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-authorizer";
    assert_eq!(
        statements,
        &json!([{"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": {"Fn::Sub": by_name}}])
    );
    assert_eq!(
        resources["AuthorizerFunction"]["Properties"]["FunctionName"],
        json!({"Fn::Sub": "${AWS::StackName}-authorizer"}),
        "the role's resource names the authorizer"
    );
}

/// The hosted page: a private bucket only this distribution may read (Origin Access
/// Control), HTTPS only, the security headers, and a user pool client with no secret and
/// only the code flow.
#[test]
fn the_page_is_private_behind_cloudfront_and_the_client_is_public_code_only() {
    let translated = common::sam_translate(&["AuthMode=cognito".to_owned()]);
    let r = &translated["Resources"];
    let bucket = &r["SiteBucket"]["Properties"];
    let block = &bucket["PublicAccessBlockConfiguration"];
    for key in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[key], true, "{key}");
    }
    assert_eq!(
        bucket["OwnershipControls"]["Rules"][0]["ObjectOwnership"],
        "BucketOwnerEnforced"
    );
    let statements = r["SiteBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    let allow: Vec<&Value> = statements
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .collect();
    assert_eq!(allow.len(), 1, "one Allow: CloudFront's read");
    assert_eq!(
        allow[0]["Principal"],
        json!({"Service": "cloudfront.amazonaws.com"})
    );
    assert_eq!(allow[0]["Action"], "s3:GetObject");
    let source = &allow[0]["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"];
    assert!(
        source
            .as_str()
            .unwrap()
            .ends_with(":distribution/${SiteDistribution}"),
        "{source}"
    );
    let oac = &r["SiteOriginAccessControl"]["Properties"]["OriginAccessControlConfig"];
    assert_eq!(oac["SigningBehavior"], "always");
    assert_eq!(oac["OriginAccessControlOriginType"], "s3");
    let config = &r["SiteDistribution"]["Properties"]["DistributionConfig"];
    let origin = &config["Origins"][0];
    assert_eq!(
        origin["OriginAccessControlId"],
        json!({"Fn::GetAtt": ["SiteOriginAccessControl", "Id"]})
    );
    assert_eq!(origin["S3OriginConfig"]["OriginAccessIdentity"], "");
    assert_eq!(
        config["DefaultCacheBehavior"]["ViewerProtocolPolicy"],
        "redirect-to-https"
    );
    assert_eq!(
        config["DefaultCacheBehavior"]["ResponseHeadersPolicyId"],
        json!({"Ref": "SiteHeaders"})
    );
    let headers =
        &r["SiteHeaders"]["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"];
    let csp = headers["ContentSecurityPolicy"]["ContentSecurityPolicy"]["Fn::Sub"][0]
        .as_str()
        .unwrap();
    for part in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "connect-src 'self' wss://${ChatApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}${Issuer}",
        "script-src 'self'",
    ] {
        assert!(csp.contains(part), "CSP lacks {part}: {csp}");
    }
    assert!(
        headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"]
            .as_u64()
            .unwrap()
            >= 31_536_000
    );
    assert_eq!(headers["ContentTypeOptions"]["Override"], true);
    assert_eq!(headers["ReferrerPolicy"]["ReferrerPolicy"], "no-referrer");
    assert_eq!(headers["FrameOptions"]["FrameOption"], "DENY");
    // No function URL anywhere: the page is CloudFront's only.
    let kinds: Vec<&str> = r
        .as_object()
        .unwrap()
        .values()
        .map(|v| v["Type"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"AWS::Lambda::Url"));
    let client = &r["UserPoolClient"]["Properties"];
    assert_eq!(client["GenerateSecret"], false);
    assert_eq!(client["AllowedOAuthFlows"], json!(["code"]));
    assert_eq!(
        client["AllowedOAuthScopes"],
        json!(["openid", "email", "profile"])
    );
    let page = json!({"Fn::Sub": "https://${SiteDistribution.DomainName}/"});
    assert_eq!(client["CallbackURLs"], json!([page]));
    assert_eq!(client["LogoutURLs"], json!([page]));
    assert_eq!(r["UserPool"]["Properties"]["UserPoolTier"], "ESSENTIALS");
    assert_eq!(r["UserPoolDomain"]["Properties"]["ManagedLoginVersion"], 2);
    // The moderators' group is the one the authorizer looks for, in the claim Cognito
    // lists groups in.
    assert_eq!(
        r["ModeratorsGroup"]["Properties"]["GroupName"],
        json!({"Ref": "ModeratorGroup"})
    );
    assert_eq!(
        translated["Parameters"]["ModeratorGroup"]["Default"],
        "moderators"
    );
    let authorizer = &r["AuthorizerFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        authorizer["MODERATOR_GROUP"],
        json!({"Ref": "ModeratorGroup"})
    );
    assert_eq!(
        authorizer["GROUPS_CLAIM"],
        json!({"Fn::If": ["UseCognito", "cognito:groups", {"Ref": "GroupsClaim"}]})
    );
    for output in ["WebURL", "UserPoolId", "UserPoolClientId", "SignInURL"] {
        assert!(
            translated["Outputs"].get(output).is_some(),
            "output {output}"
        );
    }
}

#[test]
fn every_mode_puts_the_authorizer_on_connect_and_open_mode_lets_everyone_in() {
    use chat_local::stack::Stack;
    let stack = |overrides: &[(&str, &str)]| {
        let overrides = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Stack::from_template(&template(), &common::repo(), "us-east-1", &overrides).unwrap()
    };
    let open = stack(&[]);
    let authorizer = open
        .connect_authorizer
        .clone()
        .expect("$connect has the authorizer");
    assert_eq!(authorizer.function, "AuthorizerFunction");
    assert!(
        authorizer.identity_sources.is_empty(),
        "no identity source: a token may come in the query or in Sec-WebSocket-Protocol"
    );
    assert_eq!(open.auth_mode(), "open");
    assert_eq!(
        open.functions["AuthorizerFunction"].environment["AUTH_MODE"],
        "open"
    );
    let issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example";
    let jwt = stack(&[
        ("AuthMode", "jwt"),
        ("JwtIssuer", issuer),
        ("JwtAudience", "client"),
    ]);
    assert_eq!(jwt.auth_mode(), "jwt");
    let environment = &jwt.functions["AuthorizerFunction"].environment;
    assert_eq!(environment["JWT_ISSUER"], issuer);
    assert_eq!(environment["JWT_AUDIENCE"], "client");
}

#[test]
fn jwt_mode_without_an_issuer_or_with_an_unknown_mode_does_not_deploy() {
    let stack = |overrides: &[(&str, &str)]| {
        let overrides = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        chat_local::stack::Stack::from_template(
            &template(),
            &common::repo(),
            "us-east-1",
            &overrides,
        )
    };
    let error = stack(&[("AuthMode", "jwt"), ("JwtAudience", "client")]).unwrap_err();
    assert!(format!("{error:#}").contains("JwtIssuer"), "{error:#}");
    let error = stack(&[("AuthMode", "JWT")]).unwrap_err();
    assert!(format!("{error:#}").contains("AllowedValues"), "{error:#}");
}
