//! The image map of the in-cluster tests: `hadrill/controller` runs this package's binary,
//! `hadrill/test-server` the sim crate's test server.
//!
//! Cargo hands a test only the binaries of its own package, so the test server is looked up
//! next to this test executable (`target/<profile>/`, where `cargo test --workspace` puts it)
//! and built once with cargo when it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};
use sim::kubelet::{ImageEntry, ImageMap};

/// The controller binary, built by cargo for this test.
pub const CONTROLLER_BIN: &str = env!("CARGO_BIN_EXE_hadrill-controller");
/// Image of the controller in deploy/controller.
pub const CONTROLLER_IMAGE: &str = "hadrill/controller";
/// Image of the HA pair's workloads.
pub const TEST_SERVER_IMAGE: &str = "hadrill/test-server";
const TEST_SERVER_BIN: &str = "hadrill-test-server";

/// Both images mapped to their executables.
pub fn image_map() -> ImageMap {
    let map = ImageMap::new();
    map.insert(CONTROLLER_IMAGE, ImageEntry::new(CONTROLLER_BIN));
    map.insert(TEST_SERVER_IMAGE, ImageEntry::new(test_server()));
    map
}

/// The test server's path; the first caller builds it if needed, the others wait for that.
fn test_server() -> PathBuf {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PATH.get_or_init(|| tokio::task::block_in_place(|| locate_or_build().map_err(|e| format!("{e:#}"))));
    match found {
        Ok(p) => p.clone(),
        Err(e) => panic!("the test server binary is not available: {e}"),
    }
}

/// `target/<profile>/` of the running test executable (which lives in its `deps/`).
fn profile_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    let dir = exe.parent().context("the test executable has no directory")?;
    Ok(if dir.file_name().is_some_and(|n| n == "deps") { dir.parent().unwrap_or(dir) } else { dir }.to_path_buf())
}

fn locate_or_build() -> anyhow::Result<PathBuf> {
    let dir = profile_dir()?;
    let path = dir.join(TEST_SERVER_BIN);
    if path.is_file() {
        return Ok(path);
    }
    build(&dir)?;
    if !path.is_file() {
        bail!("cargo built {TEST_SERVER_BIN} but {} does not exist", path.display());
    }
    Ok(path)
}

fn build(dir: &Path) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("the package has no workspace directory")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args(["build", "--quiet", "-p", "hadrill-sim", "--bin", TEST_SERVER_BIN]);
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
    }
    eprintln!("building {TEST_SERVER_BIN} (not found in {})", dir.display());
    let status = cmd.status().context("running cargo build for the test server")?;
    if !status.success() {
        bail!("cargo build -p hadrill-sim --bin {TEST_SERVER_BIN} failed ({status})");
    }
    Ok(())
}
