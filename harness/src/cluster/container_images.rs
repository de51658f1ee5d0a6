//! The project's container images on real clusters: each image of
//! [`PROJECT_IMAGES`](super::images::PROJECT_IMAGES) is built from `deploy/docker/<name>.Dockerfile`
//! (the workspace root is the build context) and tagged [`TAG`], the tag deploy/ manifests use.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::images::{PROJECT_IMAGES, ProjectImage};
use super::tools::{Tool, ToolCommand};

/// Tag of the images built for clusters; deploy/ manifests name `hadrill/<name>:dev`.
pub const TAG: &str = "dev";

/// One image to build and load into a cluster's nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBuild {
    /// Full reference, e.g. `hadrill/controller:dev`.
    pub reference: String,
    /// Dockerfile, relative to the build context.
    pub dockerfile: PathBuf,
}

/// The Dockerfile of a project image: `deploy/docker/<name without hadrill/>.Dockerfile`.
pub fn dockerfile(image: &ProjectImage) -> PathBuf {
    let short = image.image.rsplit('/').next().unwrap_or(image.image);
    Path::new("deploy/docker").join(format!("{short}.Dockerfile"))
}

/// Every project image, tagged [`TAG`].
pub fn project_builds() -> Vec<ImageBuild> {
    PROJECT_IMAGES
        .iter()
        .map(|i| ImageBuild { reference: format!("{}:{TAG}", i.image), dockerfile: dockerfile(i) })
        .collect()
}

/// `docker build` of one image with `context` as build context.
pub fn docker_build(build: &ImageBuild, context: &Path) -> ToolCommand {
    ToolCommand::new(Tool::Docker)
        .args(["build", "--file"])
        .arg(context.join(&build.dockerfile))
        .args(["--tag", &build.reference])
        .arg(context)
}

/// The workspace root, where deploy/ and kind-configs/ live (this build's source tree).
pub fn repo_root() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().with_context(|| format!("the source tree {} is not available", root.display()))
}

/// Builds `builds` one after the other (docker parallelises inside a build).
pub async fn build_all(builds: &[ImageBuild], context: &Path) -> anyhow::Result<()> {
    for b in builds {
        docker_build(b, context).run().await.with_context(|| format!("building image {}", b.reference))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_project_image_has_a_dockerfile_and_a_build_command() {
        let builds = project_builds();
        assert_eq!(builds.len(), PROJECT_IMAGES.len());
        let controller = builds.iter().find(|b| b.reference == "hadrill/controller:dev").expect("controller");
        assert_eq!(controller.dockerfile, Path::new("deploy/docker/controller.Dockerfile"));
        let cmd = docker_build(controller, Path::new("/src"));
        assert_eq!(
            cmd.arg_strings(),
            ["build", "--file", "/src/deploy/docker/controller.Dockerfile", "--tag", "hadrill/controller:dev", "/src"]
        );
    }
}
