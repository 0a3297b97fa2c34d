//! `chat-local`, the command line of the local stack: `start` (the default), `invoke`,
//! and `token` (a token from the development issuer).
//! See the library's documentation for the layers it wires together.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::{Args, Parser, Subcommand};

use chat_local::functions::Binaries;
use chat_local::server::{self, Database, Options};
use chat_local::sigv4::Credentials;
use chat_local::{cargo, Log};

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
    /// Print a token from the running stack's development issuer (AuthMode=jwt).
    Token(TokenArgs),
}

#[derive(Args)]
struct TokenArgs {
    /// The display name the token carries.
    #[arg(long)]
    name: String,
    /// Groups the token lists in `cognito:groups`, comma-separated (e.g. `moderators`).
    #[arg(long, default_value = "")]
    groups: String,
    /// The development issuer (printed by `chat-local start` as "Dev issuer").
    #[arg(long, default_value = "http://127.0.0.1:3003")]
    issuer: String,
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
    #[arg(long, value_name = "DIR", conflicts_with = "sam_build")]
    bin_dir: Option<PathBuf>,
    /// Run the artifacts `sam build` left in DIR (`<DIR>/<LogicalId>/bootstrap`, the files
    /// `sam deploy` uploads; arm64 ones run under qemu-aarch64).
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = ".aws-sam/build")]
    sam_build: Option<PathBuf>,
    /// Build the functions with --release.
    #[arg(long)]
    release: bool,
    /// Most instances per function running at once.
    #[arg(long, default_value_t = 10)]
    max_instances: usize,
    /// No START/END/REPORT lines.
    #[arg(long)]
    quiet: bool,
    /// Credentials your own tools sign @connections and Lambda Invoke requests with,
    /// ID:SECRET or ID:SECRET:SESSION_TOKEN (default: AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN when set, else local:local).
    #[arg(long, value_name = "ID:SECRET[:TOKEN]")]
    credentials: Option<String>,
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
    /// Port of the development issuer (loopback), started in AuthMode=jwt unless
    /// JwtIssuer is given; 0 picks a free one.
    #[arg(long, default_value_t = 3003)]
    issuer_port: u16,
    /// Port of the Lambda Invoke API (loopback), the functions' AWS_ENDPOINT_URL_LAMBDA;
    /// 0 picks a free one.
    #[arg(long, default_value_t = 3004)]
    lambda_port: u16,
    /// Port of the local S3 (loopback), the functions' AWS_ENDPOINT_URL_S3; 0 picks a
    /// free one.
    #[arg(long, default_value_t = 3005)]
    s3_port: u16,
    /// How long the development issuer's tokens are valid, in seconds (short ones show the
    /// page renewing them).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(i64).range(10..=86_400))]
    issuer_token_seconds: i64,
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
    /// Do not emulate the stage's throttling nor the new-connection quota (for load tests).
    #[arg(long)]
    no_throttle: bool,
    /// New connections per second the account allows (API Gateway: 500; raise it for
    /// load tests).
    #[arg(long, default_value_t = 500.0, value_parser = positive_rate)]
    connect_rate: f64,
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
        Some(Command::Token(args)) => {
            chat_local::issuer::fetch_token(&args.issuer, &args.name, &args.groups)
                .await
                .map(|token| println!("{token}"))
        }
        None => start(cli.start).await,
    };
    if let Err(error) = result {
        eprintln!("chat-local: {error:#}");
        std::process::exit(1);
    }
}

/// The library's options from the arguments shared by `start` and `invoke`; builds the
/// functions with cargo unless their binaries come from elsewhere.
fn options(common: &CommonArgs, issuer_port: u16) -> Result<Options> {
    let mut options = Options::new(&common.template, Binaries::Dir(PathBuf::new()));
    options.issuer_port = issuer_port;
    options.region = common.region.clone();
    options.parameter_overrides = common
        .parameter_overrides
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow!("--parameter-overrides takes Name=Value, not {pair}"))
        })
        .collect::<Result<_>>()?;
    options.database = match &common.dynamodb_endpoint {
        Some(endpoint) => Database::Endpoint(endpoint.clone()),
        None => Database::Dynalite {
            persist: common.persist.clone(),
        },
    };
    options.credentials = credentials(common.credentials.as_deref())?;
    options.max_instances = common.max_instances;
    options.quiet = common.quiet;
    options.binaries = match (&common.bin_dir, &common.sam_build) {
        (Some(dir), _) => Binaries::Dir(dir.clone()),
        (None, Some(dir)) => Binaries::SamBuild(dir.clone()),
        (None, None) => {
            let (stack, dir) = (options.stack()?, options.template_dir());
            cargo::build(common.release, &stack, &dir, &options.log)?;
            Binaries::Dir(cargo::output_dir(common.release, &dir)?)
        }
    };
    Ok(options)
}

fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

/// The users' credentials: `--credentials`, else the usual environment, else the default.
fn credentials(given: Option<&str>) -> Result<Credentials> {
    if let Some(text) = given {
        return Credentials::parse(text)
            .ok_or_else(|| anyhow!("--credentials takes ID:SECRET or ID:SECRET:SESSION_TOKEN"));
    }
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    Ok(
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => {
                Credentials::new(&id, &secret, var("AWS_SESSION_TOKEN").as_deref())
            }
            _ => chat_local::server::default_credentials(),
        },
    )
}

async fn start(args: StartArgs) -> Result<()> {
    let common = &args.common;
    let mut options = options(common, args.issuer_port)?;
    options.host = args.host.clone();
    options.port = args.port;
    options.connections_port = args.connections_port;
    options.lambda_port = args.lambda_port;
    options.s3_port = args.s3_port;
    options.issuer_token_seconds = args.issuer_token_seconds;
    options.limits.idle_timeout = Duration::from_secs(args.idle_timeout);
    options.limits.max_connection_duration = Duration::from_secs(args.max_connection_duration);
    options.throttle = !args.no_throttle;
    options.connect_rate = args.connect_rate;
    options.web_dir = args.web_dir.clone();
    if args.watch {
        let rebuild = (common.bin_dir.is_none() && common.sam_build.is_none()).then(|| {
            let (release, stack, dir) = (common.release, options.stack(), options.template_dir());
            let log = Log::stdout();
            Arc::new(move || match &stack {
                Ok(stack) => cargo::build(release, stack, &dir, &log).is_ok(),
                Err(_) => false,
            }) as chat_local::watch::Rebuild
        });
        options.watch = Some(rebuild);
    }
    let watching = options.watch.as_ref().map(Option::is_some);
    let mut running = server::start(options).await?;
    for line in running.banner() {
        println!("{line}");
    }
    match watching {
        Some(true) => println!("Watching the sources for changes"),
        Some(false) => println!("Watching the binaries for changes"),
        None => {}
    }
    println!("Ready. Ctrl-C stops everything.");
    tokio::select! {
        _ = shutdown_signal() => {}
        result = running.failed() => result?,
    }
    running.shutdown().await;
    Ok(())
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
    let event = std::fs::read(&args.event)
        .with_context(|| format!("cannot read {}", args.event.display()))?;
    serde_json::from_slice::<serde_json::Value>(&event)
        .with_context(|| format!("{} is not JSON", args.event.display()))?;
    let options = options(&args.common, 0)?;
    let body = server::invoke(options, &args.function, event).await?;
    println!("{}", String::from_utf8_lossy(&body));
    Ok(())
}
