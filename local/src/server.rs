//! The whole stack, started from code: [`start`] reads the template, starts (or connects
//! to) DynamoDB, creates the tables, starts the function pools, serves `@connections` and
//! the WebSocket API, and returns a [`Running`] stack with its addresses and an async
//! [`Running::shutdown`]. The command line, the tests and the benchmark all start it here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::dynamodb::{self, Dynalite};
use crate::functions::{Binaries, Endpoints, Functions, PoolSettings};
use crate::gateway::{self, listener, Gateway, Limits, Sessions};
use crate::issuer::{self, DevIssuer};
use crate::log::Log;
use crate::metrics::Metrics;
use crate::on_failure::OnFailure;
use crate::registry::Registry;
use crate::sigv4::{Credentials, Verifier};
use crate::stack::Stack;
use crate::template::Template;
use crate::throttle::Throttle;
use crate::{connections, custom, lambda_api, s3, watch as watcher};

/// Which DynamoDB the stack uses.
#[derive(Debug, Clone)]
pub enum Database {
    /// Start dynalite, in memory or keeping its data in a directory.
    Dynalite { persist: Option<PathBuf> },
    /// Any DynamoDB API endpoint (another dynalite, DynamoDB Local, AWS).
    Endpoint(String),
}

/// Everything [`start`] needs; [`Options::new`] gives the command line's defaults.
#[derive(Clone)]
pub struct Options {
    pub template: PathBuf,
    pub region: String,
    pub parameter_overrides: BTreeMap<String, String>,
    pub database: Database,
    pub binaries: Binaries,
    pub host: String,
    /// 0 picks a free port (for this and `connections_port`).
    pub port: u16,
    pub connections_port: u16,
    /// The development issuer's port (loopback), when `$connect` has an authorizer and
    /// the template's `JwtIssuer` is not given.
    pub issuer_port: u16,
    /// The Lambda Invoke API's port (loopback): the functions' `AWS_ENDPOINT_URL_LAMBDA`.
    pub lambda_port: u16,
    /// Port of the local S3 (loopback), the functions' AWS_ENDPOINT_URL_S3; 0 picks one.
    pub s3_port: u16,
    /// How long the development issuer's tokens are valid, in seconds.
    pub issuer_token_seconds: i64,
    pub limits: Limits,
    pub max_instances: usize,
    /// No START/END/REPORT lines.
    pub quiet: bool,
    /// Emulate the stage's throttling and the account's new-connection quota
    /// (`--no-throttle` turns both off).
    pub throttle: bool,
    /// The account's quota of new connections per second (AWS: 500; `--connect-rate`).
    pub connect_rate: f64,
    /// The browser client, relative to the template's directory.
    pub web_dir: PathBuf,
    /// Restart functions whose binary changed, rebuilding first when given a build.
    pub watch: Option<Option<watcher::Rebuild>>,
    pub log: Log,
    /// The credentials a user's own tools sign `@connections` and Invoke requests with
    /// (the functions get their own, made up at start).
    pub credentials: Credentials,
}

/// The credentials `chat-local` accepts from users' tools unless told otherwise.
pub fn default_credentials() -> Credentials {
    Credentials::new("local", "local", None)
}

/// A verifier of `service`'s requests signed by the user's or the functions' credentials.
fn verifier(
    options: &Options,
    stack: &Stack,
    service: &'static str,
    functions: &Credentials,
) -> Arc<Verifier> {
    Arc::new(Verifier {
        service,
        region: stack.region.clone(),
        accepted: vec![options.credentials.clone(), functions.clone()],
    })
}

impl Options {
    pub fn new(template: impl Into<PathBuf>, binaries: Binaries) -> Options {
        Options {
            template: template.into(),
            region: "us-east-1".into(),
            parameter_overrides: BTreeMap::new(),
            database: Database::Dynalite { persist: None },
            binaries,
            host: "127.0.0.1".into(),
            port: 3001,
            connections_port: 3002,
            issuer_port: 3003,
            lambda_port: 3004,
            s3_port: 3005,
            issuer_token_seconds: issuer::TOKEN_SECONDS,
            limits: Limits::default(),
            max_instances: 10,
            quiet: false,
            throttle: true,
            connect_rate: crate::throttle::NEW_CONNECTIONS_PER_SECOND,
            web_dir: "web".into(),
            watch: None,
            log: Log::stdout(),
            credentials: default_credentials(),
        }
    }

    /// The directory the template's relative paths start from.
    pub fn template_dir(&self) -> PathBuf {
        self.template
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    }

    /// The stack the template declares, with the overrides applied (and pointed at the
    /// development issuer's port when it needs one, see [`Options::stack_and_issuer`]).
    pub fn stack(&self) -> Result<Stack> {
        let url = format!("http://127.0.0.1:{}", self.issuer_port);
        Ok(self.plan(&url)?.0)
    }

    /// The stack, and the development issuer it needs: one is started when `$connect` has
    /// an authorizer and the template's `JwtIssuer` is not overridden, and the stack is
    /// pointed at it (`JwtIssuer`, and `JwtAudience` unless given).
    pub async fn stack_and_issuer(&self) -> Result<(Stack, Option<DevIssuer>)> {
        let (stack, audience) = self.plan("http://127.0.0.1")?;
        let Some(audience) = audience else {
            return Ok((stack, None));
        };
        let listener = bind("127.0.0.1", self.issuer_port).await?;
        let dev_issuer = DevIssuer::start(listener, &audience, self.issuer_token_seconds)?;
        let mut stack = self.plan(&dev_issuer.url)?.0;
        // The development issuer stands in for the template's user pool (its issuer URL,
        // the pool's API origin and the managed login's origin alike), and, in security
        // headers, for an https issuer origin made of its (http, loopback) address.
        if let Some(pool) = stack.user_pool.clone() {
            stack.stand_in(&pool.issuer, &dev_issuer.url);
            let api_origin = format!("https://cognito-idp.{}.amazonaws.com", stack.region);
            stack.stand_in(&api_origin, &dev_issuer.url);
            stack.stand_in(&pool.sign_in_origin, &dev_issuer.url);
        }
        Ok((stack, Some(dev_issuer)))
    }

    /// The stack as it runs with the development issuer at `issuer_url` if it needs one,
    /// and then the audience that issuer's tokens must carry.
    fn plan(&self, issuer_url: &str) -> Result<(Stack, Option<String>)> {
        let template = Template::load(&self.template)?;
        let (dir, region) = (self.template_dir(), &self.region);
        let overrides = &self.parameter_overrides;
        let declared = |name: &str| template.parameters.contains_key(name);
        // An issuer given by override or by a non-empty template default is used as is.
        let given = overrides.contains_key(issuer::ISSUER_PARAMETER)
            || template
                .parameters
                .get(issuer::ISSUER_PARAMETER)
                .is_some_and(|default| default.as_deref().is_some_and(|d| !d.is_empty()));
        if given || !declared(issuer::ISSUER_PARAMETER) {
            return Ok((
                Stack::from_template(&template, &dir, region, overrides)?,
                None,
            ));
        }
        let audience = overrides
            .get(issuer::AUDIENCE_PARAMETER)
            .or_else(|| {
                template
                    .parameters
                    .get(issuer::AUDIENCE_PARAMETER)?
                    .as_ref()
            })
            .filter(|audience| !audience.is_empty())
            .cloned()
            .unwrap_or_else(|| issuer::DEV_AUDIENCE.to_owned());
        let mut pointed = overrides.clone();
        pointed.insert(issuer::ISSUER_PARAMETER.into(), issuer_url.to_owned());
        if declared(issuer::AUDIENCE_PARAMETER) {
            pointed.insert(issuer::AUDIENCE_PARAMETER.into(), audience.clone());
        }
        // Whether anything needs an issuer is known once the conditions are evaluated.
        let stack = Stack::from_template(&template, &dir, region, &pointed)?;
        if stack.auth_mode() == "open" {
            return Ok((
                Stack::from_template(&template, &dir, region, overrides)?,
                None,
            ));
        }
        Ok((stack, Some(audience)))
    }
}

/// A running stack. Dropping it stops the function processes and dynalite; call
/// [`Running::shutdown`] to close connections (running `$disconnect`) first.
pub struct Running {
    pub stack: Stack,
    pub ws_addr: SocketAddr,
    pub connections_addr: SocketAddr,
    /// `http://127.0.0.1:<port>/<stage>`: the functions' callback endpoint.
    pub connections_url: String,
    /// `http://127.0.0.1:<port>`: the Lambda Invoke API (`AWS_ENDPOINT_URL_LAMBDA`).
    pub lambda_url: String,
    pub dynamodb_endpoint: String,
    /// Tables this start created (the others existed already).
    pub tables_created: Vec<String>,
    /// Whether the browser client is served at the WebSocket address.
    pub serves_web: bool,
    /// The development issuer, when the stack runs one.
    pub dev_issuer: Option<DevIssuer>,
    /// `http://127.0.0.1:<port>`: the local S3.
    pub s3_url: String,
    /// The local S3's buckets (the template's).
    pub buckets: Arc<s3::Buckets>,
    options: Options,
    functions: Arc<Functions>,
    registry: Arc<Registry>,
    sessions: Arc<Sessions>,
    stop: watch::Sender<bool>,
    ws_server: JoinHandle<std::io::Result<()>>,
    connections_server: JoinHandle<std::io::Result<()>>,
    lambda_server: JoinHandle<std::io::Result<()>>,
    s3_server: JoinHandle<std::io::Result<()>>,
    watcher: Option<JoinHandle<()>>,
    dynalite: Option<Dynalite>,
}

/// Starts the stack `options` describe.
pub async fn start(options: Options) -> Result<Running> {
    let (mut stack, dev_issuer) = options.stack_and_issuer().await?;
    let dir = options.template_dir();
    let ws_listener = bind(&options.host, options.port).await?;
    // What names the API's AWS endpoint (a custom resource's page config) names this one.
    let local_api = format!("ws://{}", ws_listener.local_addr()?);
    stack.stand_in(&stack.aws_api_endpoint(), &local_api);
    // Security headers name an issuer by an https origin made of its host; a loopback issuer
    // (the development issuer, or one a test serves) is plain http.
    if let Some(issuer) = stack.loopback_issuer() {
        let host = issuer
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        let origin = format!("http://{host}");
        stack.stand_in(&format!("https://{host}"), &origin);
    }
    let s3_listener = bind("127.0.0.1", options.s3_port).await?;
    let s3_url = format!("http://{}", s3_listener.local_addr()?);
    let (s3_server, buckets, responses) = serve_s3(s3_listener, &stack);
    let connections_listener = bind("127.0.0.1", options.connections_port).await?;
    let ws_addr = ws_listener.local_addr()?;
    let connections_addr = connections_listener.local_addr()?;
    let connections_url = format!("http://{connections_addr}/{}", stack.stage);
    if let Some(issuer) = &dev_issuer {
        // The stack's page is the issuer's app client's callback and sign-out URL.
        // As a browser addresses it: a wildcard listening address (--host 0.0.0.0) is not one.
        let port = ws_addr.port();
        if !ws_addr.ip().is_unspecified() {
            issuer.allow_redirect(&format!("http://{ws_addr}/"));
        }
        issuer.allow_redirect(&format!("http://127.0.0.1:{port}/"));
        issuer.allow_redirect(&format!("http://localhost:{port}/"));
    }
    let lambda_listener = bind("127.0.0.1", options.lambda_port).await?;
    let lambda_url = format!("http://{}", lambda_listener.local_addr()?);
    let function_credentials = Credentials::temporary();
    let metrics = Arc::new(Metrics::default());
    let urls = [
        connections_url.as_str(),
        lambda_url.as_str(),
        s3_url.as_str(),
    ];
    let Backend {
        dynamodb_endpoint,
        dynalite,
        tables_created,
        functions,
    } = backend(
        &options,
        &stack,
        urls,
        &function_credentials,
        Some(&metrics),
    )
    .await?;
    let functions = Arc::new(functions);
    let lambda_verifier = verifier(&options, &stack, "lambda", &function_credentials);
    let on_failure = Arc::new(OnFailure::default());
    let lambda_server = serve_lambda_api(
        lambda_listener,
        &stack,
        &functions,
        &options.log,
        lambda_verifier,
        Arc::clone(&on_failure),
    );
    let connections_verifier = verifier(&options, &stack, "execute-api", &function_credentials);
    // As a deploy does: the custom resources are created once everything they name exists.
    custom::create_all(&stack, &functions, &responses, &s3_url, &options.log).await?;

    let registry = Arc::new(Registry::default());
    let (stop, stopping) = watch::channel(false);
    let sessions = Arc::new(Sessions::default());
    let web_dir = dir.join(&options.web_dir);
    let serves_web = web_dir.join("index.html").is_file();
    let web_config = match (stack.auth_mode(), &dev_issuer) {
        ("open", _) => serde_json::json!({"authMode": "open"}),
        (_, Some(issuer)) => {
            serde_json::json!({"authMode": "jwt", "tokenUrl": issuer.token_url()})
        }
        (_, None) => serde_json::json!({"authMode": "jwt"}),
    };
    let gateway = Arc::new(Gateway {
        api_id: stack.api_id.clone(),
        stage: stack.stage.clone(),
        route_selection_expression: stack.route_selection_expression.clone(),
        routes: stack.routes.clone(),
        authorizer: stack.connect_authorizer.clone(),
        functions: Arc::clone(&functions),
        registry: Arc::clone(&registry),
        throttle: if options.throttle {
            Throttle::new(&stack.throttle).with_connect_rate(options.connect_rate)
        } else {
            Throttle::off()
        },
        limits: options.limits.clone(),
        web: crate::web::Web {
            dir: serves_web.then_some(web_dir),
            config: web_config,
            site: stack
                .site
                .as_ref()
                .map(|site| (Arc::clone(&buckets), site.bucket.clone())),
            headers: stack
                .site
                .as_ref()
                .map(|site| site.headers.clone())
                .unwrap_or_default(),
            metrics: Arc::clone(&metrics),
            on_failure: Arc::clone(&on_failure),
        },
        shutdown: stopping.clone(),
        sessions: Arc::clone(&sessions),
        log: options.log.clone(),
    });
    let ws_server = serve_gateway(ws_listener, gateway, stopping);
    let connections_server = tokio::spawn({
        let app = connections::router(
            Arc::clone(&registry),
            stack.stage.clone(),
            connections_verifier,
            Some((Arc::clone(&metrics), stack.api_id.clone())),
        );
        async move { axum::serve(connections_listener, app).await }
    });
    let watcher = options.watch.as_ref().map(|rebuild| {
        let (functions, log) = (Arc::clone(&functions), options.log.clone());
        tokio::spawn(watcher::run(dir, functions, rebuild.clone(), log))
    });
    Ok(Running {
        stack,
        ws_addr,
        connections_addr,
        connections_url,
        lambda_url,
        dynamodb_endpoint,
        tables_created,
        serves_web,
        dev_issuer,
        s3_url,
        buckets,
        options,
        functions,
        registry,
        sessions,
        stop,
        ws_server,
        connections_server,
        lambda_server,
        s3_server,
        watcher,
        dynalite,
    })
}

/// Serves the local S3 with the stack's buckets, and custom resources' answers.
fn serve_s3(
    listener: TcpListener,
    stack: &Stack,
) -> (
    JoinHandle<std::io::Result<()>>,
    Arc<s3::Buckets>,
    Arc<s3::Responses>,
) {
    let buckets = Arc::new(s3::Buckets::default());
    for bucket in &stack.buckets {
        buckets.create(&bucket.name);
    }
    let responses = Arc::new(s3::Responses::default());
    let app = s3::router(Arc::clone(&buckets), Arc::clone(&responses));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    (server, buckets, responses)
}

async fn bind(host: &str, port: u16) -> Result<TcpListener> {
    TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))
}

/// Serves the WebSocket API until `stopping` turns true, then lets connections close.
fn serve_gateway(
    socket: TcpListener,
    gateway: Arc<Gateway>,
    mut stopping: watch::Receiver<bool>,
) -> JoinHandle<std::io::Result<()>> {
    let app = gateway::router(gateway).into_make_service_with_connect_info::<listener::Peer>();
    tokio::spawn(async move {
        axum::serve(listener::Listener(socket), app)
            .with_graceful_shutdown(async move {
                let _ = stopping.wait_for(|s| *s).await;
            })
            .await
    })
}

/// Serves the Lambda Invoke API over `functions` until aborted.
fn serve_lambda_api(
    listener: TcpListener,
    stack: &Stack,
    functions: &Arc<Functions>,
    log: &Log,
    verifier: Arc<Verifier>,
    on_failure: Arc<OnFailure>,
) -> JoinHandle<std::io::Result<()>> {
    let app = lambda_api::router(
        stack.clone(),
        Arc::clone(functions),
        log.clone(),
        verifier,
        on_failure,
    );
    tokio::spawn(async move { axum::serve(listener, app).await })
}

/// What both [`start`] and [`invoke`] stand on: DynamoDB with the template's tables, and
/// the function pools pointed at it and at `@connections`.
struct Backend {
    dynamodb_endpoint: String,
    dynalite: Option<Dynalite>,
    tables_created: Vec<String>,
    functions: Functions,
}

async fn backend(
    options: &Options,
    stack: &Stack,
    [connections_url, lambda_url, s3_url]: [&str; 3],
    credentials: &Credentials,
    metrics: Option<&Arc<Metrics>>,
) -> Result<Backend> {
    let (dynamodb_endpoint, dynalite) = match &options.database {
        Database::Endpoint(endpoint) => (endpoint.clone(), None),
        Database::Dynalite { persist } => {
            let dynalite = Dynalite::start(&options.template_dir(), persist.as_deref()).await?;
            (dynalite.endpoint.clone(), Some(dynalite))
        }
    };
    let client = dynamodb::client(&dynamodb_endpoint, &stack.region).await;
    let tables_created = dynamodb::ensure_tables(&client, &stack.tables).await?;
    let endpoints = Endpoints {
        dynamodb: dynamodb_endpoint.clone(),
        connections: connections_url.to_owned(),
        lambda: lambda_url.to_owned(),
        s3: s3_url.to_owned(),
        credentials: credentials.clone(),
    };
    let settings = PoolSettings {
        max_instances: options.max_instances,
        quiet: options.quiet,
        log: options.log.clone(),
        metrics: metrics.cloned(),
    };
    let functions = Functions::start(stack, &options.binaries, &endpoints, &settings)?;
    Ok(Backend {
        dynamodb_endpoint,
        dynalite,
        tables_created,
        functions,
    })
}

impl Running {
    /// `ws://<address>`: the WebSocket API (also at `/<stage>`).
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.ws_addr)
    }

    /// Process ids of a function's running instances (by logical id).
    pub fn instance_pids(&self, logical_id: &str) -> Vec<u32> {
        self.functions
            .pool(logical_id)
            .map(|pool| pool.pids())
            .unwrap_or_default()
    }

    /// The lines that tell a user what runs where.
    pub fn banner(&self) -> Vec<String> {
        let stack = &self.stack;
        let mut lines = vec![
            format!(
                "WebSocket API:   {}  (stage {}, route selection {})",
                self.ws_url(),
                stack.stage,
                stack.route_selection_expression
            ),
            format!(
                "@connections:    {}/@connections/{{connectionId}}",
                self.connections_url
            ),
            format!(
                "Lambda API:      {}/2015-03-31/functions/{{name}}/invocations  (AWS_ENDPOINT_URL_LAMBDA)",
                self.lambda_url
            ),
        ];
        let credentials = &self.options.credentials;
        let secret = if *credentials == default_credentials() {
            format!("AWS_SECRET_ACCESS_KEY={}", credentials.secret_access_key)
        } else {
            "AWS_SECRET_ACCESS_KEY as given".to_owned()
        };
        lines.push(format!(
            "Credentials:     AWS_ACCESS_KEY_ID={} {secret}{}  (SigV4, region {}; @connections and Lambda API check signatures)",
            credentials.access_key_id,
            if credentials.session_token.is_some() { " AWS_SESSION_TOKEN as given" } else { "" },
            stack.region
        ));
        lines.push(match (&self.dynalite, &self.options.database) {
            (Some(_), Database::Dynalite { persist }) => format!(
                "DynamoDB:        {}  (dynalite, {})",
                self.dynamodb_endpoint,
                persist.as_ref().map_or("in memory".to_owned(), |p| format!(
                    "data in {}",
                    p.display()
                ))
            ),
            _ => format!("DynamoDB:        {}", self.dynamodb_endpoint),
        });
        for table in &stack.tables {
            let state = if self.tables_created.contains(&table.name) {
                "created"
            } else {
                "exists"
            };
            lines.push(format!(
                "  table {} ({}, {state})",
                table.name, table.logical_id
            ));
        }
        lines.push(format!(
            "S3:              {}/{{bucket}}/{{key}}  (AWS_ENDPOINT_URL_S3, path-style, in memory)",
            self.s3_url
        ));
        let web = self.ws_url().replacen("ws://", "http://", 1);
        lines.push(format!(
            "Metrics:         {web}{}  (charts; {} as JSON, {} for failed async invokes)",
            crate::web::METRICS_PAGE,
            crate::web::METRICS_JSON,
            crate::web::ON_FAILURE_JSON
        ));
        for bucket in &stack.buckets {
            lines.push(format!("  bucket {} ({})", bucket.name, bucket.logical_id));
        }
        lines.push("Routes:".into());
        for (route, function) in &stack.routes {
            let f = &stack.functions[function];
            lines.push(format!(
                "  {route:<12} -> {function} ({}, timeout {}s, {} MB)",
                f.binary,
                f.timeout.as_secs(),
                f.memory_mb
            ));
        }
        if let Some(authorizer) = &stack.connect_authorizer {
            lines.push(format!(
                "Authorizer:      $connect -> {} ({}, identity {:?})",
                authorizer.logical_id,
                stack.functions[&authorizer.function].binary,
                authorizer.identity_sources
            ));
        }
        if let Some(issuer) = &self.dev_issuer {
            lines.push(format!(
                "Dev issuer:      {}  (audience {}; a token: chat-local token --name alice)",
                issuer.url, issuer.audience
            ));
        }
        lines.push(self.throttle_line());
        if self.serves_web {
            lines.push(format!("Web client:      http://{}/", self.ws_addr));
        }
        lines
    }

    fn throttle_line(&self) -> String {
        let settings = &self.stack.throttle;
        if !self.options.throttle {
            return "Throttling:      off (--no-throttle)".into();
        }
        let describe =
            |l: &crate::throttle::Limit| format!("{}/s, burst {}", l.rate_per_second, l.burst);
        let mut line = match &settings.stage {
            Some(limit) => format!("Throttling:      stage {}", describe(limit)),
            None => "Throttling:      none set for the stage".to_owned(),
        };
        for (route, limit) in &settings.routes {
            line.push_str(&format!("; {route} {}", describe(limit)));
        }
        line.push_str(&format!(
            "; new connections {}/s (account quota; --connect-rate)",
            self.options.connect_rate
        ));
        line
    }

    /// Resolves if the `@connections` server stops on its own (an error).
    pub async fn failed(&mut self) -> Result<()> {
        (&mut self.connections_server).await??;
        Ok(())
    }

    /// Closes every connection with 1001 (each runs its `$disconnect`), then stops the
    /// servers, the functions and dynalite.
    pub async fn shutdown(mut self) {
        let log = self.options.log.clone();
        log.line(&format!(
            "Stopping: closing {} connection(s)",
            self.registry.len()
        ));
        self.stop.send_replace(true);
        if !self
            .sessions
            .wait_until_closed(Duration::from_secs(15))
            .await
        {
            log.line("Some connections did not finish their $disconnect within 15 s");
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.ws_server).await;
        self.connections_server.abort();
        self.lambda_server.abort();
        self.s3_server.abort();
        self.functions.shutdown();
        if let Some(dynalite) = self.dynalite.take() {
            dynalite.stop().await;
        }
        log.line("Stopped.");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        if let Some(watcher) = &self.watcher {
            watcher.abort();
        }
        self.ws_server.abort();
        self.connections_server.abort();
        self.lambda_server.abort();
        self.s3_server.abort();
        self.functions.shutdown();
    }
}

/// Runs one function once with `event` against a fresh DynamoDB (unless the options name
/// one) and an `@connections` where nothing is connected: a Docker-free `sam local invoke`.
pub async fn invoke(options: Options, logical_id: &str, event: Vec<u8>) -> Result<Vec<u8>> {
    let (stack, _dev_issuer) = options.stack_and_issuer().await?;
    if !stack.functions.contains_key(logical_id) {
        let known: Vec<_> = stack.functions.keys().cloned().collect();
        anyhow::bail!(
            "no function {logical_id} in the template; it has {}",
            known.join(", ")
        );
    }
    // Nothing is connected during a one-off invoke: posts to @connections get 410 Gone.
    let listener = bind("127.0.0.1", 0).await?;
    let connections = format!("http://{}/{}", listener.local_addr()?, stack.stage);
    let function_credentials = Credentials::temporary();
    let router = connections::router(
        Arc::new(Registry::default()),
        stack.stage.clone(),
        verifier(&options, &stack, "execute-api", &function_credentials),
        None,
    );
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    // Functions that invoke functions reach them through the Invoke API here too.
    let lambda_listener = bind("127.0.0.1", 0).await?;
    let lambda_url = format!("http://{}", lambda_listener.local_addr()?);
    let s3_listener = bind("127.0.0.1", 0).await?;
    let s3_url = format!("http://{}", s3_listener.local_addr()?);
    let (s3_server, _, _) = serve_s3(s3_listener, &stack);
    let Backend {
        dynalite,
        functions,
        ..
    } = backend(
        &options,
        &stack,
        [&connections, &lambda_url, &s3_url],
        &function_credentials,
        None,
    )
    .await?;
    let functions = Arc::new(functions);
    let lambda_server = serve_lambda_api(
        lambda_listener,
        &stack,
        &functions,
        &options.log,
        verifier(&options, &stack, "lambda", &function_credentials),
        Arc::new(OnFailure::default()),
    );
    let pool = functions.pool(logical_id).expect("checked above");
    let (result, _report) = pool.invoke(event).await;
    functions.shutdown();
    server.abort();
    lambda_server.abort();
    s3_server.abort();
    if let Some(dynalite) = dynalite {
        dynalite.stop().await;
    }
    result.map_err(|error| anyhow::anyhow!("{logical_id} failed: {error}"))
}
