//! The image map: which host executable a container image stands for.
//!
//! The embedded kubelet pulls nothing. A container whose image is in the map runs as a real
//! process (the entry's executable and arguments); a container whose image is not in the map is
//! *virtual*: it gets a status-only lifecycle (Running and Ready right after start, no
//! process), so thousands of pods fit on one machine for scale tests.
//!
//! Look-up is by the exact image string first, then by the image without its tag or digest
//! (`hadrill/test-server:dev` matches an entry `hadrill/test-server`).
//!
//! File format (YAML or JSON), one entry per image:
//!
//! ```yaml
//! hadrill/test-server:dev:
//!   command: /path/to/hadrill-test-server
//!   args: ["--port", "8080"]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What an image runs: the container's default entrypoint and arguments (Docker's
/// `ENTRYPOINT` and `CMD`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageEntry {
    /// Executable on the host; used unless the container sets `command`.
    pub command: PathBuf,
    /// Default arguments; used unless the container sets `command` or `args`.
    #[serde(default)]
    pub args: Vec<String>,
}

impl ImageEntry {
    /// An entry running `command` with no default arguments.
    pub fn new(command: impl Into<PathBuf>) -> Self {
        Self { command: command.into(), args: Vec::new() }
    }

    /// The same entry with default arguments.
    pub fn with_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }
}

/// Image → executable. Clones share the same map, so entries inserted after the cluster
/// started apply to containers started from then on.
#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    entries: Arc<RwLock<BTreeMap<String, ImageEntry>>>,
}

impl ImageMap {
    /// An empty map: every pod is virtual.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a YAML (or JSON) file of `image: {command, args}` entries.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading the image map {}", path.display()))?;
        let entries: BTreeMap<String, ImageEntry> =
            serde_saphyr::from_str(&text).with_context(|| format!("parsing the image map {}", path.display()))?;
        Ok(Self { entries: Arc::new(RwLock::new(entries)) })
    }

    /// Adds or replaces the entry of `image`.
    pub fn insert(&self, image: impl Into<String>, entry: ImageEntry) {
        self.entries.write().unwrap_or_else(|p| p.into_inner()).insert(image.into(), entry);
    }

    /// Removes the entry of `image` (its containers become virtual from the next start on).
    pub fn remove(&self, image: &str) -> Option<ImageEntry> {
        self.entries.write().unwrap_or_else(|p| p.into_inner()).remove(image)
    }

    /// The entry for `image`: exact match, else the image without tag or digest.
    pub fn lookup(&self, image: &str) -> Option<ImageEntry> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries.get(image).or_else(|| entries.get(repository(image))).cloned()
    }

    /// A copy of every entry, by image.
    pub fn entries(&self) -> Vec<(String, ImageEntry)> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when no image is mapped.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a pod-failure "pause" container runs: `sleep` (found in `/usr/bin` or `/bin`) for as
/// long as it can, so the container is a live process that listens on nothing. `None` when no
/// `sleep` exists; the container is then virtual.
pub fn pause_entry() -> Option<ImageEntry> {
    ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map(|p| ImageEntry::new(p).with_args(["2147483647"]))
}

/// The image reference without `:tag` or `@digest` (a `:` before the last `/` is a registry
/// port, not a tag).
pub fn repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].find(':') {
        Some(i) => &image[..last_slash + i],
        None => image,
    }
}

/// A stable, digest-shaped image ID (`repo@sha256:<64 hex>`) for `containerStatuses[].imageID`.
pub fn image_id(image: &str, entry: Option<&ImageEntry>) -> String {
    let seed = match entry {
        Some(e) => format!("{image}\0{}", e.command.display()),
        None => image.to_string(),
    };
    format!("{}@sha256:{}", repository(image), hex64(&seed))
}

/// 64 hex digits derived from `seed` (FNV-1a over four salts; not cryptographic).
pub fn hex64(seed: &str) -> String {
    (0u8..4)
        .map(|salt| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(salt);
            for b in seed.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            format!("{h:016x}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_falls_back_to_repository() {
        let m = ImageMap::new();
        m.insert("hadrill/test-server", ImageEntry::new("/bin/true"));
        assert!(m.lookup("hadrill/test-server:dev").is_some());
        assert!(m.lookup("hadrill/test-server@sha256:00").is_some());
        assert!(m.lookup("other").is_none());
        assert_eq!(repository("localhost:5000/a/b:1"), "localhost:5000/a/b");
        assert_eq!(repository("localhost:5000/a/b"), "localhost:5000/a/b");
        assert_eq!(hex64("x").len(), 64);
    }

    #[test]
    fn parses_a_yaml_file() {
        let dir = std::env::temp_dir().join(format!("hadrill-images-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("images.yaml");
        std::fs::write(&path, "web:1:\n  command: /bin/sleep\n  args: [\"60\"]\nbare:\n  command: /bin/true\n")
            .unwrap();
        let m = ImageMap::from_file(&path).unwrap();
        assert_eq!(m.lookup("web:1"), Some(ImageEntry::new("/bin/sleep").with_args(["60"])));
        assert_eq!(m.lookup("bare").map(|e| e.args.len()), Some(0));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
