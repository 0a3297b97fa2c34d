//! `chat-local`, the command line of the local stack: `start` (the default) and `invoke`.
//! See the library's documentation for the layers it wires together.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use chat_local::functions::{self, Functions, Pool};
use chat_local::stack::Stack;
use chat_local::template::Template;
use chat_local::{connections, dynamodb, gateway, watch};

#[derive(Parser)]
#[command(
    name = "chat-local",
    version,
    about = "Run the SAM template's WebSocket API locally: no AWS, no Docker"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    start: StartArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the WebSocket API, @connections, the functions and DynamoDB (the default).
    Start(StartArgs),
    /// Run one function once with an event file and print its response and REPORT line.
    Invoke(InvokeArgs),
}

#[derive(Args, Clone)]
struct CommonArgs {
    /// The SAM template that drives everything.
    #[arg(long, short = 't', default_value = "template.yaml")]
    template: PathBuf,
    /// Region the functions see (AWS_REGION) and ARNs carry.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Template parameter overrides, as Name=Value (repeatable).
    #[arg(long = "parameter-overrides", value_name = "NAME=VALUE", num_args = 1..)]
    parameter_overrides: Vec<String>,
    /// Use this DynamoDB API endpoint instead of starting dynalite.
    #[arg(long, value_name = "URL")]
    dynamodb_endpoint: Option<String>,
    /// Keep dynalite's data in this directory (in memory by default).
    #[arg(long, value_name = "DIR")]
    persist: Option<PathBuf>,
    /// Take the functions' binaries from this directory instead of building them.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Build the functions with --release.
    #[arg(long)]
    release: bool,
    /// Most instances per function running at once.
    #[arg(long, default_value_t = 10)]
    max_instances: usize,
    /// No START/END/REPORT lines.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Clone)]
struct StartArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Address of the WebSocket API (and the web client).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port of the WebSocket API; 0 picks a free one.
    #[arg(long, default_value_t = 3001)]
    port: u16,
    /// Port of the @connections API (always on loopback); 0 picks a free one.
    #[arg(long, default_value_t = 3002)]
    connections_port: u16,
    /// Idle timeout in seconds (API Gateway: 600).
    #[arg(long, default_value_t = 600)]
    idle_timeout: u64,
    /// Maximum connection duration in seconds (API Gateway: 7200).
    #[arg(long, default_value_t = 7200)]
    max_connection_duration: u64,
    /// Rebuild when sources change and restart each function whose binary changed
    /// (with --bin-dir: restart when a binary there changes).
    #[arg(long)]
    watch: bool,
    /// Directory of the browser client served on plain GETs.
    #[arg(long, default_value = "web")]
    web_dir: PathBuf,
}

#[derive(Args)]
struct InvokeArgs {
    /// Logical id of the function, e.g. OnMessageFunction.
    function: String,
    /// The event file, e.g. events/on_message.json.
    #[arg(long, short = 'e')]
    event: PathBuf,
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Invoke(args)) => invoke(args).await,
        Some(Command::Start(args)) => start(args).await,
        None => start(cli.start).await,
    };
    if let Err(error) = result {
        eprintln!("chat-local: {error:#}");
        std::process::exit(1);
    }
}

/// The template, the stack it declares, and the directory paths are relative to.
fn load(common: &CommonArgs) -> Result<(Stack, PathBuf)> {
    let template = Template::load(&common.template)?;
    let dir = common
        .template
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let overrides = common
        .parameter_overrides
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow!("--parameter-overrides takes Name=Value, not {pair}"))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    let stack = Stack::from_template(&template, &dir, &common.region, &overrides)?;
    Ok((stack, dir))
}

/// Builds the functions' binaries for this machine, or finds them in --bin-dir.
fn binaries(common: &CommonArgs, stack: &Stack, dir: &Path) -> Result<PathBuf> {
    if let Some(bin_dir) = &common.bin_dir {
        return Ok(bin_dir.clone());
    }
    build(common.release, stack, dir)?;
    let metadata = std::process::Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(dir)
        .output()
        .context("cannot run cargo metadata")?;
    let metadata: serde_json::Value =
        serde_json::from_slice(&metadata.stdout).context("cargo metadata output")?;
    let target = metadata["target_directory"]
        .as_str()
        .ok_or_else(|| anyhow!("cargo metadata has no target_directory"))?;
    Ok(Path::new(target).join(if common.release { "release" } else { "debug" }))
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// `cargo build` of every function's binary, for this machine.
fn build(release: bool, stack: &Stack, dir: &Path) -> Result<()> {
    let mut build = std::process::Command::new(cargo());
    build.arg("build").current_dir(dir);
    if release {
        build.arg("--release");
    }
    for function in stack.functions.values() {
        build.args(["--bin", &function.binary]);
    }
    println!(
        "Building {} functions for this machine: {build:?}",
        stack.functions.len()
    );
    let status = build.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    Ok(())
}

/// DynamoDB for the stack: the given endpoint, or a dynalite this call starts.
async fn database(common: &CommonArgs, dir: &Path) -> Result<(String, Option<dynamodb::Dynalite>)> {
    match &common.dynamodb_endpoint {
        Some(endpoint) => Ok((endpoint.clone(), None)),
        None => {
            let dynalite = dynamodb::Dynalite::start(dir, common.persist.as_deref()).await?;
            Ok((dynalite.endpoint.clone(), Some(dynalite)))
        }
    }
}

fn pools(
    common: &CommonArgs,
    stack: &Stack,
    bin_dir: &Path,
    dynamodb: &str,
    connections: &str,
) -> Result<Functions> {
    let mut pools = BTreeMap::new();
    for (id, function) in &stack.functions {
        let binary = bin_dir.join(&function.binary);
        let binary = std::fs::canonicalize(&binary)
            .ok()
            .filter(|path| path.is_file())
            .ok_or_else(|| {
                anyhow!(
                    "{id}: no binary {}; build it or check --bin-dir",
                    binary.display()
                )
            })?;
        let env = functions::lambda_environment(function, &stack.region, dynamodb, connections);
        pools.insert(
            id.clone(),
            Pool::new(
                function.clone(),
                binary,
                env,
                common.max_instances,
                common.quiet,
            ),
        );
    }
    Ok(Functions::new(pools))
}

async fn start(args: StartArgs) -> Result<()> {
    let common = &args.common;
    let (stack, dir) = load(common)?;
    let bin_dir = binaries(common, &stack, &dir)?;

    let ws_listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let connections_listener = tokio::net::TcpListener::bind(("127.0.0.1", args.connections_port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.connections_port))?;
    let ws_address = ws_listener.local_addr()?;
    let connections_address = connections_listener.local_addr()?;
    let connections_url = format!("http://{connections_address}/{}", stack.stage);

    let (dynamodb_endpoint, dynalite) = database(common, &dir).await?;
    let client = dynamodb::client(&dynamodb_endpoint, &stack.region).await;
    let created = dynamodb::ensure_tables(&client, &stack.tables).await?;

    let functions = Arc::new(pools(
        common,
        &stack,
        &bin_dir,
        &dynamodb_endpoint,
        &connections_url,
    )?);
    let registry = Arc::new(connections::Registry::default());
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let sessions = Arc::new(gateway::Sessions::default());
    let web_dir = dir.join(&args.web_dir);
    let gateway = Arc::new(gateway::Gateway {
        api_id: stack.api_id.clone(),
        stage: stack.stage.clone(),
        route_selection_expression: stack.route_selection_expression.clone(),
        routes: stack.routes.clone(),
        functions: Arc::clone(&functions),
        registry: Arc::clone(&registry),
        limits: gateway::Limits {
            idle_timeout: Duration::from_secs(args.idle_timeout),
            max_connection_duration: Duration::from_secs(args.max_connection_duration),
        },
        web_dir: web_dir.is_dir().then_some(web_dir),
        shutdown: stopping.clone(),
        sessions: Arc::clone(&sessions),
    });

    let ws_server = tokio::spawn({
        let app = gateway::router(gateway).into_make_service_with_connect_info::<SocketAddr>();
        let mut stopping = stopping.clone();
        async move {
            axum::serve(ws_listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopping.wait_for(|s| *s).await;
                })
                .await
        }
    });
    let connections_server = tokio::spawn({
        let app = connections::router(Arc::clone(&registry), stack.stage.clone());
        async move { axum::serve(connections_listener, app).await }
    });

    println!(
        "WebSocket API:   ws://{ws_address}  (stage {}, route selection {})",
        stack.stage, stack.route_selection_expression
    );
    println!("@connections:    {connections_url}/@connections/{{connectionId}}");
    match &dynalite {
        Some(_) => println!(
            "DynamoDB:        {dynamodb_endpoint}  (dynalite, {})",
            common
                .persist
                .as_ref()
                .map_or("in memory".to_owned(), |p| format!(
                    "data in {}",
                    p.display()
                ))
        ),
        None => println!("DynamoDB:        {dynamodb_endpoint}"),
    }
    for table in &stack.tables {
        let state = if created.contains(&table.name) {
            "created"
        } else {
            "exists"
        };
        println!("  table {} ({}, {state})", table.name, table.logical_id);
    }
    println!("Routes:");
    for (route, function) in &stack.routes {
        let f = &stack.functions[function];
        println!(
            "  {route:<12} -> {function} ({}, timeout {}s, {} MB)",
            f.binary,
            f.timeout.as_secs(),
            f.memory_mb
        );
    }
    if gateway_web(&args, &dir) {
        println!("Web client:      http://{ws_address}/");
    }
    if args.watch {
        let rebuild = common.bin_dir.is_none().then(|| {
            let (release, stack, dir) = (common.release, stack.clone(), dir.clone());
            Arc::new(move || build(release, &stack, &dir).is_ok())
                as Arc<dyn Fn() -> bool + Send + Sync>
        });
        let watched = Arc::clone(&functions);
        let source_dir = dir.clone();
        tokio::spawn(async move { watch::run(source_dir, watched, rebuild).await });
        println!(
            "Watching {} for changes",
            if common.bin_dir.is_some() {
                "the binaries"
            } else {
                "the sources"
            }
        );
    }
    println!("Ready. Ctrl-C stops everything.");

    tokio::select! {
        _ = shutdown_signal() => {}
        result = connections_server => { result??; }
    }
    println!("Stopping: closing {} connection(s)", registry.len());
    let _ = stop.send(true);
    // Every connection closes with 1001 and runs its $disconnect before the functions stop.
    if !sessions.wait_until_closed(Duration::from_secs(15)).await {
        println!("Some connections did not finish their $disconnect within 15 s");
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), ws_server).await;
    functions.shutdown();
    if let Some(dynalite) = dynalite {
        dynalite.stop().await;
    }
    println!("Stopped.");
    Ok(())
}

fn gateway_web(args: &StartArgs, dir: &Path) -> bool {
    dir.join(&args.web_dir).join("index.html").is_file()
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

async fn invoke(args: InvokeArgs) -> Result<()> {
    let common = &args.common;
    let (stack, dir) = load(common)?;
    if !stack.functions.contains_key(&args.function) {
        bail!(
            "no function {} in the template; it has {}",
            args.function,
            stack
                .functions
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let event = std::fs::read(&args.event)
        .with_context(|| format!("cannot read {}", args.event.display()))?;
    serde_json::from_slice::<serde_json::Value>(&event)
        .with_context(|| format!("{} is not JSON", args.event.display()))?;
    let bin_dir = binaries(common, &stack, &dir)?;
    let (dynamodb_endpoint, dynalite) = database(common, &dir).await?;
    let client = dynamodb::client(&dynamodb_endpoint, &stack.region).await;
    dynamodb::ensure_tables(&client, &stack.tables).await?;
    // Nothing is connected during a one-off invoke: posts to @connections get 410 Gone.
    let registry = Arc::new(connections::Registry::default());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let connections_url = format!("http://{}/{}", listener.local_addr()?, stack.stage);
    let router = connections::router(registry, stack.stage.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let functions = pools(
        common,
        &stack,
        &bin_dir,
        &dynamodb_endpoint,
        &connections_url,
    )?;
    let pool = functions
        .pools()
        .find(|p| p.function().logical_id == args.function)
        .expect("checked above");
    let (result, _report) = pool.invoke(event).await;
    functions.shutdown();
    if let Some(dynalite) = dynalite {
        dynalite.stop().await;
    }
    match result {
        Ok(body) => {
            println!("{}", String::from_utf8_lossy(&body));
            Ok(())
        }
        Err(error) => bail!("{} failed: {error}", args.function),
    }
}
