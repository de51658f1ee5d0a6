//! `hadrill-sample`: the sample services and the vehicle traffic generator.
//!
//! ```text
//! hadrill-sample serve --name dispatch --role primary --downstream planner --listen :8080
//! hadrill-sample vehicles --target dispatch --count 20 --interval 200ms --timeout 1s --listen :8081
//! ```
//!
//! Both listen on `$POD_IP` unless `--listen` names a host (pods of one node share the host
//! network and differ only by IP). Spans go to `OTEL_EXPORTER_OTLP_ENDPOINT` (OTLP/HTTP
//! protobuf). SIGTERM or Ctrl-C shuts down gracefully.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use hadrill_sample::propagation::Format;
use hadrill_sample::serve::{ServeConfig, Server};
use hadrill_sample::target::Target;
use hadrill_sample::telemetry::export::ExportConfig;
use hadrill_sample::vehicles::{FormatMix, Vehicles, VehiclesConfig};

#[derive(Parser)]
#[command(name = "hadrill-sample", about = "hadrill's sample services and vehicle traffic")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve one service of the call chain.
    Serve(ServeArgs),
    /// Simulate vehicles sending heartbeats, with a results API.
    Vehicles(VehiclesArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum MixArg {
    W3c,
    Sw8,
    Mixed,
}

#[derive(clap::Args)]
struct VehiclesArgs {
    /// Where heartbeats go: a URL, or a Service name resolved from `<NAME>_SERVICE_HOST/_PORT`
    /// (else used as a DNS name).
    #[arg(long, env = "VEHICLES_TARGET")]
    target: String,
    /// Number of vehicles.
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// Time between heartbeats of one vehicle.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Time allowed for one heartbeat.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Results API: `host:port`, or `:port` on `$POD_IP`.
    #[arg(long, default_value = ":8081")]
    listen: String,
    /// Trace propagation format: w3c, sw8, or mixed (alternating per vehicle).
    #[arg(long, value_enum, default_value = "w3c")]
    format: MixArg,
    /// Vehicle ids are PREFIX-0, PREFIX-1, ... (give each vehicles pod its own prefix).
    #[arg(long, default_value = "v")]
    id_prefix: String,
    /// Reuse connections between heartbeats (default: a new connection per heartbeat).
    #[arg(long)]
    keep_alive: bool,
    /// Heartbeats kept for `GET /heartbeats`.
    #[arg(long, default_value_t = 200_000)]
    max_records: usize,
}

async fn vehicles(args: VehiclesArgs) -> anyhow::Result<()> {
    let target = Target::from_env(&args.target)?;
    let cfg = VehiclesConfig {
        pod: pod_name("vehicles"),
        target,
        count: args.count,
        interval: args.interval,
        timeout: args.timeout,
        listen: listen_addr(&args.listen)?,
        format: match args.format {
            MixArg::W3c => FormatMix::W3c,
            MixArg::Sw8 => FormatMix::Sw8,
            MixArg::Mixed => FormatMix::Mixed,
        },
        id_prefix: args.id_prefix,
        keep_alive: args.keep_alive,
        max_records: args.max_records,
    };
    let export = ExportConfig::from_env()?;
    let summary = format!(
        "hadrill-sample vehicles ({}): {} vehicles -> {} every {:?} (timeout {:?}) otlp={}",
        cfg.pod,
        cfg.count,
        cfg.target,
        cfg.interval,
        cfg.timeout,
        export.endpoint.as_deref().unwrap_or("-"),
    );
    let fleet = Vehicles::start(cfg, export).await?;
    println!("{summary}; results API on {} (pid {})", fleet.addr(), std::process::id());
    terminated().await;
    println!("received SIGTERM: stopping the vehicles");
    let r = fleet.shutdown().await?;
    println!("sent {} heartbeats, {} ok, {} failed", r.sent, r.ok, r.errors);
    Ok(())
}

#[derive(Clone, Copy, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    W3c,
    Sw8,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::W3c => Format::W3c,
            FormatArg::Sw8 => Format::Sw8,
        }
    }
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Service name (`service.name` of the spans).
    #[arg(long, env = "SAMPLE_NAME")]
    name: String,
    /// Side of an HA pair: primary or standby (shown in answers and spans).
    #[arg(long, env = "SAMPLE_ROLE")]
    role: Option<String>,
    /// Next service of the chain: a URL, or a Service name resolved from
    /// `<NAME>_SERVICE_HOST/_PORT` (else used as a DNS name).
    #[arg(long, env = "SAMPLE_DOWNSTREAM")]
    downstream: Option<String>,
    /// `host:port`, or `:port` to listen on `$POD_IP` (127.0.0.1 without it).
    #[arg(long, default_value = ":8080")]
    listen: String,
    /// Trace propagation and spans.
    #[arg(long, value_enum, default_value = "on")]
    tracing: OnOff,
    /// Format of traces started here (requests that carry no context).
    #[arg(long, value_enum, default_value = "w3c")]
    default_format: FormatArg,
    /// How long requests are still served after SIGTERM (readiness is 503 meanwhile).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// Time allowed for the downstream call.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    downstream_timeout: Duration,
}

/// `host:port`, or `:port` on `$POD_IP`.
fn listen_addr(spec: &str) -> anyhow::Result<SocketAddr> {
    if let Some(port) = spec.strip_prefix(':') {
        let port: u16 = port.parse().with_context(|| format!("--listen {spec:?}: bad port"))?;
        let ip: IpAddr = match std::env::var("POD_IP").ok().filter(|s| !s.is_empty()) {
            Some(ip) => ip.parse().with_context(|| format!("POD_IP {ip:?} is not an IP address"))?,
            None => IpAddr::from([127, 0, 0, 1]),
        };
        return Ok(SocketAddr::new(ip, port));
    }
    spec.parse().with_context(|| format!("--listen {spec:?} is not host:port or :port"))
}

fn pod_name(service: &str) -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{service}-{}", std::process::id()))
}

async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        }
        Err(e) => {
            eprintln!("hadrill-sample: cannot handle SIGTERM ({e}); only Ctrl-C stops");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if let Some(role) = &args.role
        && role.is_empty()
    {
        bail!("--role must not be empty");
    }
    let downstream = args.downstream.as_deref().map(Target::from_env).transpose()?;
    let cfg = ServeConfig {
        pod: pod_name(&args.name),
        name: args.name,
        role: args.role,
        downstream,
        listen: listen_addr(&args.listen)?,
        tracing: matches!(args.tracing, OnOff::On),
        default_format: args.default_format.into(),
        drain: args.drain,
        downstream_timeout: args.downstream_timeout,
    };
    let export = ExportConfig::from_env()?;
    let summary = format!(
        "hadrill-sample serve {} ({}) role={} downstream={} tracing={} otlp={}",
        cfg.name,
        cfg.pod,
        cfg.role.as_deref().unwrap_or("-"),
        cfg.downstream.as_ref().map_or("-".to_string(), ToString::to_string),
        if cfg.tracing { "on" } else { "off" },
        export.endpoint.as_deref().unwrap_or("-"),
    );
    let server = Server::start(cfg, export).await?;
    println!("{summary} listening on {} (pid {})", server.addr(), std::process::id());
    terminated().await;
    println!("received SIGTERM: draining");
    server.shutdown().await?;
    println!("bye");
    Ok(())
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => serve(a).await,
        Command::Vehicles(a) => vehicles(a).await,
    };
    if let Err(e) = result {
        eprintln!("hadrill-sample: {e:#}");
        std::process::exit(1);
    }
}
