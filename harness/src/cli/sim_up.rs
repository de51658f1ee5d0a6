//! `hadrill sim up`: the embedded cluster in the foreground.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

/// Arguments of `hadrill sim up`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of nodes.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Where to write the kubeconfig.
    #[arg(long, default_value = "reports/sim.kubeconfig")]
    kubeconfig: PathBuf,
    /// Listen address (port 0 = ephemeral).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

/// Starts the cluster, writes the kubeconfig, waits for Ctrl-C, shuts down.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.nodes == 0 {
        anyhow::bail!("--nodes must be at least 1");
    }
    let config = sim::SimConfig { bind: args.listen, nodes: args.nodes, ..Default::default() };
    let cluster = sim::Sim::start(config).await.context("starting the embedded cluster")?;
    cluster.write_kubeconfig(&args.kubeconfig)?;
    let path = args.kubeconfig.display();
    println!("embedded cluster ready at {} in {:.0?} ({} nodes)", cluster.url(), cluster.startup_time(), args.nodes);
    println!("kubeconfig: {path}");
    println!("  kubectl --kubeconfig {path} get nodes");
    println!("  export KUBECONFIG={path}");
    println!("press Ctrl-C to stop");
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    println!("stopping the embedded cluster");
    cluster.stop().await;
    Ok(())
}
