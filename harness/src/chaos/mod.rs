//! Faults: typed resources, validation before anything is created, and the CRDs.
//!
//! - [`model`]: `chaos-mesh.org/v1alpha1` PodChaos, NetworkChaos and StressChaos (v2.8.3) for
//!   pod faults; `chaosblade.io/v1alpha1` ChaosBlade (chaosblade-operator 1.7) for the node
//!   network loss, which must recover on the node without the network (`scenarios/README.md`).
//! - [`validate`]: the CRD schema's rules, the admission webhook's rules and hadrill's blast-radius
//!   rules, with errors that name the field path.
//! - [`crd`]: CustomResourceDefinitions generated from the models (`deploy/crds/`).
//! - [`lifecycle`], [`ledger`], [`effect`]: injecting and recovering faults, the run ledger that
//!   removes them after a crash, and checking their effect.
//! - [`host`]: the host sweep (iptables chains and embedded clusters' ledgers of processes that
//!   are gone), which needs no cluster.

pub mod blade;
pub mod crd;
pub mod effect;
pub mod host;
pub mod ledger;
pub mod lifecycle;
pub mod model;
pub mod validate;

use serde::Serialize;

pub use model::{ChaosBlade, NetworkChaos, PodChaos, StressChaos};
pub use validate::{Finding, Validate, ValidateOptions, Validated, ValidationErrors};

/// The supported kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChaosKind {
    /// `PodChaos`.
    PodChaos,
    /// `NetworkChaos`.
    NetworkChaos,
    /// `StressChaos`.
    StressChaos,
    /// `ChaosBlade` (cluster-scoped).
    ChaosBlade,
}

impl ChaosKind {
    /// The Chaos Mesh kinds (namespaced, `chaos-mesh.org`).
    pub const MESH: [ChaosKind; 3] = [ChaosKind::PodChaos, ChaosKind::NetworkChaos, ChaosKind::StressChaos];

    /// Every kind.
    pub const ALL: [ChaosKind; 4] =
        [ChaosKind::PodChaos, ChaosKind::NetworkChaos, ChaosKind::StressChaos, ChaosKind::ChaosBlade];

    /// The `kind` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ChaosKind::PodChaos => "PodChaos",
            ChaosKind::NetworkChaos => "NetworkChaos",
            ChaosKind::StressChaos => "StressChaos",
            ChaosKind::ChaosBlade => "ChaosBlade",
        }
    }

    /// The resource name (plural == singular in Chaos Mesh).
    pub fn plural(self) -> &'static str {
        match self {
            ChaosKind::PodChaos => "podchaos",
            ChaosKind::NetworkChaos => "networkchaos",
            ChaosKind::StressChaos => "stresschaos",
            ChaosKind::ChaosBlade => "chaosblades",
        }
    }

    /// The `apiVersion`.
    pub fn api_version(self) -> &'static str {
        match self {
            ChaosKind::ChaosBlade => model::BLADE_API_VERSION,
            _ => model::API_VERSION,
        }
    }

    /// Whether its objects live in a namespace (ChaosBlade's do not).
    pub fn namespaced(self) -> bool {
        self != ChaosKind::ChaosBlade
    }

    /// The kind named `kind`, if supported.
    pub fn from_kind(kind: &str) -> Option<ChaosKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

impl std::fmt::Display for ChaosKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Any supported chaos object. Read one with [`validate::parse_value`] or [`validate::validate_value`],
/// which dispatch on `kind`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)] // a handful per run; unboxed keeps construction and matching plain
pub enum ChaosResource {
    /// A PodChaos.
    Pod(PodChaos),
    /// A NetworkChaos.
    Network(NetworkChaos),
    /// A StressChaos.
    Stress(StressChaos),
    /// A ChaosBlade.
    Blade(ChaosBlade),
}

impl ChaosResource {
    /// Its kind.
    pub fn kind(&self) -> ChaosKind {
        match self {
            ChaosResource::Pod(_) => ChaosKind::PodChaos,
            ChaosResource::Network(_) => ChaosKind::NetworkChaos,
            ChaosResource::Stress(_) => ChaosKind::StressChaos,
            ChaosResource::Blade(_) => ChaosKind::ChaosBlade,
        }
    }

    /// Its metadata.
    pub fn metadata(&self) -> &kube::api::ObjectMeta {
        match self {
            ChaosResource::Pod(r) => &r.metadata,
            ChaosResource::Network(r) => &r.metadata,
            ChaosResource::Stress(r) => &r.metadata,
            ChaosResource::Blade(r) => &r.metadata,
        }
    }

    /// Its metadata, mutably.
    pub fn metadata_mut(&mut self) -> &mut kube::api::ObjectMeta {
        match self {
            ChaosResource::Pod(r) => &mut r.metadata,
            ChaosResource::Network(r) => &mut r.metadata,
            ChaosResource::Stress(r) => &mut r.metadata,
            ChaosResource::Blade(r) => &mut r.metadata,
        }
    }

    /// The action, as Chaos Mesh names it; StressChaos has none, so this is `stress:cpu`,
    /// `stress:memory`, `stress:cpu+memory` or `stress:stress-ng`; a ChaosBlade's is
    /// `scope/target/action`, e.g. `node/network/loss`.
    pub fn action(&self) -> String {
        match self {
            ChaosResource::Blade(r) => r.action(),
            ChaosResource::Pod(r) => r.spec.action.to_string(),
            ChaosResource::Network(r) => r.spec.action.to_string(),
            ChaosResource::Stress(r) => {
                if r.spec.stressng_stressors.is_some() {
                    return "stress:stress-ng".into();
                }
                let s = r.spec.stressors.as_ref();
                match (s.and_then(|s| s.cpu.as_ref()), s.and_then(|s| s.memory.as_ref())) {
                    (Some(_), Some(_)) => "stress:cpu+memory".into(),
                    (Some(_), None) => "stress:cpu".into(),
                    (None, Some(_)) => "stress:memory".into(),
                    (None, None) => "stress".into(),
                }
            }
        }
    }

    /// Whether the fault acts once and ends at once (a PodChaos pod-kill or container-kill):
    /// it reports no recovery and is only ever removed by delete.
    pub fn one_shot(&self) -> bool {
        matches!(self, ChaosResource::Pod(p) if p.spec.action.is_one_shot())
    }

    /// How long the fault lasts by itself once injected: Chaos Mesh's `spec.duration` (none for
    /// the one-shot pod-kill and container-kill, which end at once and report no recovery),
    /// or a ChaosBlade's `timeout` matcher (chaosblade's own timer on the node). `None`: it
    /// lasts until deleted.
    pub fn lasts(&self) -> Option<std::time::Duration> {
        match self {
            ChaosResource::Blade(b) => {
                let secs = b.matcher("timeout")?.first()?.trim().parse::<u64>().ok()?;
                Some(std::time::Duration::from_secs(secs))
            }
            _ if self.one_shot() => None,
            _ => {
                let text = self.to_value()["spec"]["duration"].as_str()?.to_string();
                validate::parse_go_duration(&text).ok().map(|(_, d)| d)
            }
        }
    }

    /// The object as JSON (unset fields left out, never a `status` unless one is set).
    pub fn to_value(&self) -> serde_json::Value {
        // Serializing these types cannot fail: every map key is a string.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The object as YAML.
    pub fn to_yaml(&self) -> anyhow::Result<String> {
        Ok(serde_saphyr::to_string(self)?)
    }

    /// Validates the object with `options` and only then creates it in its
    /// `metadata.namespace` (cluster-wide for a ChaosBlade); returns the object as stored and
    /// the validation warnings.
    pub async fn create(
        &self,
        client: &kube::Client,
        options: &ValidateOptions,
    ) -> anyhow::Result<(ChaosResource, Vec<Finding>)> {
        use kube::api::{Api, PostParams};
        let warnings = self.validate(options)?;
        let pp = PostParams::default();
        let fail = |e: kube::Error| anyhow::anyhow!("creating {}: {e}", self.subject());
        let ns = || {
            self.metadata()
                .namespace
                .clone()
                .ok_or_else(|| anyhow::anyhow!("{}: metadata.namespace is required to create it", self.subject()))
        };
        let created = match self {
            ChaosResource::Pod(r) => ChaosResource::Pod(
                Api::<PodChaos>::namespaced(client.clone(), &ns()?).create(&pp, r).await.map_err(fail)?,
            ),
            ChaosResource::Network(r) => ChaosResource::Network(
                Api::<NetworkChaos>::namespaced(client.clone(), &ns()?).create(&pp, r).await.map_err(fail)?,
            ),
            ChaosResource::Stress(r) => ChaosResource::Stress(
                Api::<StressChaos>::namespaced(client.clone(), &ns()?).create(&pp, r).await.map_err(fail)?,
            ),
            ChaosResource::Blade(r) => {
                ChaosResource::Blade(Api::<ChaosBlade>::all(client.clone()).create(&pp, r).await.map_err(fail)?)
            }
        };
        Ok((created, warnings))
    }
}
