//! `hadrill scenarios`: list and render the fault scenario library.

use std::path::PathBuf;

use anyhow::bail;
use hadrill::scenarios::{DEFAULT_NAMESPACE, Library, RenderOptions};

/// Subcommands of `hadrill scenarios`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the scenarios: name, kind/action, parameters with their defaults.
    List(LibraryArgs),
    /// Render a scenario to a validated Chaos Mesh object (YAML on stdout).
    Render(RenderArgs),
}

/// Where the scenarios come from.
#[derive(Debug, clap::Args)]
pub struct LibraryArgs {
    /// Load the scenarios from this directory instead of the library built into hadrill.
    #[arg(long, value_name = "DIR", env = "HADRILL_SCENARIOS")]
    dir: Option<PathBuf>,
}

/// Arguments of `hadrill scenarios render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The scenario's name (see `hadrill scenarios list`).
    name: String,
    /// Set a parameter: `--set loss=50 --set primary=app=db,role=primary`.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// The run's namespace: the object's namespace and the only one its selectors may name.
    #[arg(long, short = 'n', default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// Accept selectors that pick every pod of the namespace.
    #[arg(long)]
    allow_namespace_wide_selector: bool,
    #[command(flatten)]
    library: LibraryArgs,
}

fn load(args: &LibraryArgs) -> anyhow::Result<Library> {
    Ok(match &args.dir {
        Some(dir) => Library::load_dir(dir)?,
        None => Library::builtin()?,
    })
}

/// Runs a `scenarios` subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::List(args) => {
            print!("{}", list(&load(&args)?));
            Ok(())
        }
        Command::Render(args) => {
            let library = load(&args.library)?;
            let mut options = RenderOptions::in_namespace(&args.namespace);
            options.allow_namespace_wide_selector = args.allow_namespace_wide_selector;
            for s in &args.set {
                let Some((k, v)) = s.split_once('=') else {
                    bail!("--set {s}: expected NAME=VALUE");
                };
                options.set.push((k.trim().to_string(), v.to_string()));
            }
            let rendered = library.render(&args.name, &options)?;
            for w in &rendered.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", rendered.to_yaml()?);
            Ok(())
        }
    }
}

/// The `list` table: one block per scenario.
pub fn list(library: &Library) -> String {
    let width = library.scenarios().iter().map(|s| s.name.len()).max().unwrap_or(0).max(4);
    let kind_width =
        library.scenarios().iter().map(|s| s.kind.as_str().len() + 1 + s.action.len()).max().unwrap_or(0).max(11);
    let mut out = format!("{:width$}  {:kind_width$}  PARAMETERS (name:type=default)\n", "NAME", "KIND/ACTION");
    for s in library.scenarios() {
        let kind = format!("{}/{}", s.kind, s.action);
        let params: Vec<String> = s
            .parameters
            .iter()
            .map(|p| match &p.default {
                Some(d) => format!("{}:{}={d}", p.name, p.ty),
                None => format!("{}:{} (required)", p.name, p.ty),
            })
            .collect();
        out.push_str(&format!("{:width$}  {kind:kind_width$}  {}\n", s.name, params.join(" ")));
    }
    out
}
