//! `hadrill crds`: the Chaos Mesh and ChaosBlade CRDs hadrill installs, generated from its typed models.

use std::path::PathBuf;

use anyhow::Context;
use hadrill::chaos::{ChaosKind, crd};

/// Arguments of `hadrill crds`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write one file per kind under this directory (as committed in deploy/crds:
    /// chaos-mesh/<kind>.yaml, chaosblade/chaosblades.yaml) instead of printing a
    /// multi-document stream.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Prints the CRDs, or writes them into `--out-dir`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.out_dir {
        None => {
            print!("{}", crd::all_manifests_yaml()?);
        }
        Some(dir) => {
            for kind in ChaosKind::ALL {
                let path = dir.join(crd::file_name(kind));
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
                }
                std::fs::write(&path, crd::manifest_yaml(kind)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}
