//! `hadrill sim up`: the embedded cluster in the foreground.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use hadrill::cluster::images::{Build, add_file, planned_build, project_images};

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
    /// Extra image map (YAML: `IMAGE: {command: PATH, args: [...]}`); its entries run as
    /// processes and override the project's own images.
    #[arg(long, value_name = "FILE")]
    images: Option<PathBuf>,
    /// Do not bring the project's images (hadrill/test-server, hadrill/controller,
    /// hadrill/sample) up to date with cargo; use the binaries as built.
    #[arg(long)]
    no_build: bool,
}

/// Starts the cluster, writes the kubeconfig, waits for SIGINT (Ctrl-C) or SIGTERM, shuts down.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.nodes == 0 {
        anyhow::bail!("--nodes must be at least 1");
    }
    let policy = if args.no_build { Build::Never } else { Build::Fresh };
    if let Some(command) = planned_build(policy) {
        println!(
            "bringing the project's images up to date: {command} (a no-op when nothing changed; --no-build skips it)"
        );
    }
    let (images, absent) = project_images(policy)?;
    if let Some(file) = &args.images {
        add_file(&images, file)?;
    }
    let mut config = sim::SimConfig { bind: args.listen, nodes: args.nodes, ..Default::default() };
    config.kubelet.images = images.clone();
    let cluster = sim::Sim::start(config).await.context("starting the embedded cluster")?;
    cluster.write_kubeconfig(&args.kubeconfig)?;
    let path = args.kubeconfig.display();
    println!("embedded cluster ready at {} in {:.0?} ({} nodes)", cluster.url(), cluster.startup_time(), args.nodes);
    println!("kubeconfig: {path}");
    for (image, entry) in images.entries() {
        println!("image {image} runs {}", entry.command.display());
    }
    if !absent.is_empty() {
        println!("not built, so their pods run as virtual containers: {}", absent.join(", "));
    }
    println!("  kubectl --kubeconfig {path} get nodes");
    println!("  export KUBECONFIG={path}");
    println!("press Ctrl-C (or send SIGTERM) to stop");
    hadrill::signals::listen()?;
    let signal = hadrill::signals::first().await;
    println!("{signal}: stopping the embedded cluster");
    cluster.stop().await;
    Ok(())
}
