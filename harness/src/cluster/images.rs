//! The image map of the embedded cluster: which workspace binary each project image stands for.
//!
//! On kind the images are built by `make images` from deploy/docker/; on the embedded cluster
//! the same image names run the same programs as local processes. The binaries are looked up in
//! the cargo target directory of the running executable (`target/<profile>/`); when some are
//! missing and the source tree is present, they are built once with `cargo build`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use sim::kubelet::{ImageEntry, ImageMap};

/// A project image and the workspace binary that implements it.
#[derive(Debug, Clone, Copy)]
pub struct ProjectImage {
    /// Image repository (without tag), as in deploy/ manifests.
    pub image: &'static str,
    /// Cargo package building the binary.
    pub package: &'static str,
    /// Binary name.
    pub binary: &'static str,
}

/// The project's images. deploy/docker/ builds exactly these.
pub const PROJECT_IMAGES: &[ProjectImage] = &[
    ProjectImage { image: "hadrill/test-server", package: "hadrill-sim", binary: "hadrill-test-server" },
    ProjectImage { image: "hadrill/controller", package: "hadrill-controller", binary: "hadrill-controller" },
    ProjectImage { image: "hadrill/sample", package: "hadrill-sample", binary: "hadrill-sample" },
];

/// Whether missing binaries may be built with cargo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// In a source tree, bring every image's binary up to date with cargo (once per process;
    /// a no-op when nothing changed), so a changed controller is what the pods run. Without a
    /// source tree, use what is built.
    Fresh,
    /// Use only what is already built.
    Never,
}

/// The directory holding the workspace's binaries for the running executable: the executable's
/// own directory, or its parent for test executables in `target/<profile>/deps/`.
pub fn binary_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the running executable")?;
    let dir = exe.parent().context("the running executable has no directory")?;
    Ok(if dir.file_name().is_some_and(|n| n == "deps") { dir.parent().unwrap_or(dir) } else { dir }.to_path_buf())
}

/// The workspace root, when this build of the harness runs from a source tree.
fn workspace_root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.to_path_buf();
    root.join("Cargo.toml").is_file().then_some(root)
}

/// The cargo arguments that bring the binaries of `images` up to date in the profile of `dir`.
///
/// The package selection is the workspace's own (`--workspace`, only the image binaries as
/// targets): cargo then resolves dependency features exactly as a plain `cargo build` in the
/// workspace does, so after one the build is a no-op. Selecting the image packages with `-p`
/// would unify features over those packages only and recompile shared dependencies
/// (k8s-openapi: tens of seconds) although the binaries were fresh.
pub fn build_args(images: &[ProjectImage], dir: &Path) -> Vec<String> {
    let mut args = vec!["build".to_string(), "--workspace".to_string()];
    if dir.file_name().is_some_and(|n| n == "release") {
        args.push("--release".into());
    }
    for i in images {
        args.extend(["--bin".to_string(), i.binary.to_string()]);
    }
    args
}

/// The images [`project_images`] would build with `policy`, and the cargo command it would run
/// (`None` when nothing is built: no source tree, or `Build::Never`), so that a caller can
/// say so before the build starts.
pub fn planned_build(policy: Build) -> Option<String> {
    if policy == Build::Never || workspace_root().is_none() {
        return None;
    }
    let dir = binary_dir().ok()?;
    let buildable: Vec<ProjectImage> = PROJECT_IMAGES.iter().filter(|i| workspace_has(i.package)).copied().collect();
    (!buildable.is_empty()).then(|| format!("cargo {}", build_args(&buildable, &dir).join(" ")))
}

/// Builds the binaries of `images` with cargo, in the profile of `dir` (`debug` or `release`).
fn build(images: &[ProjectImage], dir: &Path) -> anyhow::Result<()> {
    let Some(root) = workspace_root() else {
        bail!("the binaries {:?} are missing and there is no source tree to build them from", names(images));
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root).args(build_args(images, dir)).arg("--quiet");
    tracing::info!(binaries = ?names(images), "building the project's images for the embedded cluster");
    let status = cmd.status().context("running cargo build for the project's images")?;
    if !status.success() {
        bail!("cargo build of {:?} failed ({status})", names(images));
    }
    Ok(())
}

fn names(images: &[ProjectImage]) -> Vec<&'static str> {
    images.iter().map(|i| i.binary).collect()
}

/// Packages of the workspace (from the root manifest), so images of packages that do not exist
/// in this checkout are not built.
fn workspace_has(package: &str) -> bool {
    let Some(root) = workspace_root() else { return false };
    let dir = package.strip_prefix("hadrill-").unwrap_or(package);
    root.join(dir).join("Cargo.toml").is_file()
}

/// The image map of the project's images, from the binaries next to the running executable
/// (building missing ones when `build` allows). Images whose binary cannot be found are left
/// out (their pods would run as virtual containers) and reported in the returned list.
pub fn project_images(build_policy: Build) -> anyhow::Result<(ImageMap, Vec<&'static str>)> {
    let dir = binary_dir()?;
    let path = |i: &ProjectImage| dir.join(i.binary);
    if build_policy == Build::Fresh {
        static BUILT: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
        // Held while building: concurrent scenarios wait for the one build.
        let mut built = BUILT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let buildable: Vec<ProjectImage> =
            PROJECT_IMAGES.iter().filter(|i| workspace_has(i.package)).copied().collect();
        if !*built && !buildable.is_empty() {
            build(&buildable, &dir)?;
            *built = true;
        }
    }
    let map = ImageMap::new();
    let mut absent = Vec::new();
    for i in PROJECT_IMAGES {
        if path(i).is_file() {
            map.insert(i.image, ImageEntry::new(path(i)));
        } else {
            absent.push(i.image);
        }
    }
    Ok((map, absent))
}

/// Adds the entries of an image map file (YAML or JSON) to `map`, replacing entries of the same
/// image, after checking that each executable exists.
pub fn add_file(map: &ImageMap, file: &Path) -> anyhow::Result<()> {
    let extra = ImageMap::from_file(file)?;
    for (image, entry) in extra.entries() {
        if !entry.command.is_file() {
            bail!(
                "{}: image {image:?}: command {} does not exist (expected a path to an executable)",
                file.display(),
                entry.command.display()
            );
        }
        map.insert(image, entry);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_build_with_the_workspace_package_selection() {
        let args = build_args(PROJECT_IMAGES, Path::new("/w/target/release"));
        assert_eq!(
            args,
            [
                "build",
                "--workspace",
                "--release",
                "--bin",
                "hadrill-test-server",
                "--bin",
                "hadrill-controller",
                "--bin",
                "hadrill-sample"
            ]
        );
        assert!(!args.iter().any(|a| a == "-p"), "no -p: features unify as in the workspace build");
        assert_eq!(planned_build(Build::Never), None);
    }

    #[test]
    fn image_files_are_merged_and_missing_commands_named() {
        let dir = std::env::temp_dir().join(format!("hadrill-images-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let good = dir.join("good.yaml");
        std::fs::write(&good, "acme/shell:1:\n  command: /bin/sh\n  args: [\"-c\", \"sleep 1\"]\n").expect("write");
        let map = ImageMap::new();
        add_file(&map, &good).expect("valid file");
        assert_eq!(map.lookup("acme/shell:1").map(|e| e.command), Some(PathBuf::from("/bin/sh")));

        let bad = dir.join("bad.yaml");
        std::fs::write(&bad, "acme/gone:\n  command: /nonexistent/gone\n").expect("write");
        let err = add_file(&map, &bad).expect_err("missing command").to_string();
        assert!(err.contains("bad.yaml") && err.contains("acme/gone") && err.contains("/nonexistent/gone"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_binary_dir_of_a_test_executable_is_the_profile_dir() {
        let dir = binary_dir().expect("binary dir");
        assert_ne!(dir.file_name().and_then(|n| n.to_str()), Some("deps"));
    }
}
