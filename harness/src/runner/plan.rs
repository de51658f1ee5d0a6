//! The static plan of a scenario, from its step texts alone (before any cluster exists): what
//! each step needs from the steps before it (a cluster, the HA service it names, vehicles, a
//! fault's target), the faults it injects rendered with their settings, the manifests it
//! applies parsed, and what it needs of the machine (the faults that need iptables on the
//! embedded cluster). Every step's [`Role`] comes from the step library's catalogue.

use std::path::{Path, PathBuf};

use cucumber::World as _;
use cucumber::gherkin;
use cucumber::step::{Context, Location};

use super::check::Problem;
use crate::HadrillWorld;
use crate::chaos::ChaosKind;
use crate::cluster::apply::parse_manifest;
use crate::cluster::repo_path;
use crate::scenarios::{Library, RenderOptions};
use crate::steps::catalog::{CATALOG, FaultStep, Role, example_of};
use crate::steps::faults::{self, ContextSource};

/// The namespace faults are rendered into for the check (any valid name: the run's differ).
const CHECK_NAMESPACE: &str = "hadrill-check";

/// What one scenario needs, as far as its text tells.
#[derive(Debug, Clone)]
pub struct ScenarioPlan {
    /// Its feature file.
    pub file: PathBuf,
    /// Its line (of the Examples row, for a scenario of an outline).
    pub line: usize,
    /// The feature's name.
    pub feature: String,
    /// The scenario's name.
    pub scenario: String,
    /// Its cluster: `Some(true)` the embedded one whatever the provider, `Some(false)` the
    /// run's (`--cluster`), `None` none.
    pub embedded: Option<bool>,
    /// The library scenarios it injects that need iptables on the embedded cluster.
    pub network_faults: Vec<String>,
    /// Its tags with its feature's and rule's (without `@`).
    pub tags: Vec<String>,
}

impl ScenarioPlan {
    /// Whether this is the plan of `scenario` of the feature file `file` (as cucumber runs it).
    pub fn is(&self, file: Option<&Path>, scenario: &gherkin::Scenario) -> bool {
        file.is_some_and(|f| f == self.file) && scenario.position.line == self.line && scenario.name == self.scenario
    }
}

/// The step library's roles, by where each step definition is, and what faults are checked
/// against.
pub struct Planner {
    roles: Vec<(Location, Role)>,
    library: Library,
}

impl std::fmt::Debug for Planner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planner").field("roles", &self.roles.len()).finish_non_exhaustive()
    }
}

/// One step of a scenario, resolved to its definition.
pub struct Resolved<'a> {
    /// The step as written (outline placeholders filled).
    pub step: &'a gherkin::Step,
    /// Where its definition is.
    pub location: Option<Location>,
    /// The definition's match.
    pub context: Context,
}

impl Planner {
    /// The catalogue's roles, located by resolving each documented example.
    pub fn new() -> anyhow::Result<Planner> {
        let collection = HadrillWorld::collection();
        let text: String = std::iter::once("Feature: catalogue\n  Scenario: every step\n".to_string())
            .chain(CATALOG.iter().map(|d| format!("    {} {}\n", d.keyword, d.example)))
            .collect();
        let feature = gherkin::Feature::parse(text, gherkin::GherkinEnv::default())
            .map_err(|e| anyhow::anyhow!("the step catalogue does not parse as Gherkin: {e}"))?;
        let steps = feature.scenarios.first().map(|s| s.steps.as_slice()).unwrap_or_default();
        let mut roles = Vec::new();
        for (doc, step) in CATALOG.iter().zip(steps) {
            if let Ok(Some((_, _, Some(location), _))) = collection.find(step) {
                roles.push((location, doc.role));
            }
        }
        Ok(Planner { roles, library: Library::builtin()? })
    }

    /// The role of the definition at `location`.
    fn role(&self, location: Option<Location>) -> Option<Role> {
        let l = location?;
        self.roles
            .iter()
            .find(|(r, _)| r.path == l.path && r.line == l.line && r.column == l.column)
            .map(|(_, role)| *role)
    }

    /// The plan of one scenario whose steps (Background first) are `steps`; what the text
    /// gets wrong goes to `problems`.
    pub fn scenario(
        &self,
        file: &Path,
        feature: &gherkin::Feature,
        scenario: &gherkin::Scenario,
        steps: &[Resolved<'_>],
        problems: &mut Vec<Problem>,
    ) -> ScenarioPlan {
        let mut state = State::default();
        let mut plan = ScenarioPlan {
            file: file.to_path_buf(),
            line: scenario.position.line,
            feature: feature.name.clone(),
            scenario: scenario.name.clone(),
            embedded: None,
            network_faults: Vec::new(),
            tags: Vec::new(),
        };
        for r in steps {
            let Some(role) = self.role(r.location) else { continue };
            let args = arguments(&r.context);
            let quoted = args.iter().find(|a| a.quoted).map(|a| a.value.clone()).unwrap_or_default();
            let args: Vec<String> = args.into_iter().map(|a| a.value).collect();
            let mut problem = |reason: String| problems.push(Problem::step(file, r.step, reason));
            if !matches!(role, Role::Cluster { .. }) && plan.embedded.is_none() {
                problem(format!(
                    "needs a cluster first: add `{}` before it",
                    example(Role::Cluster { embedded: false })
                ));
                plan.embedded = Some(false);
            }
            match role {
                Role::Cluster { embedded } => plan.embedded = Some(embedded),
                Role::OnCluster => {}
                Role::Manifest => {
                    if let Err(e) = check_manifest(&quoted) {
                        problem(e);
                    }
                }
                Role::Controller => state.controller = true,
                Role::HaService => state.services.push(quoted),
                Role::OnService { fault } => {
                    state.need_service(&quoted, &mut problem);
                    state.fault |= fault;
                }
                Role::Vehicles => {
                    state.need_service(&quoted, &mut problem);
                    state.vehicles = true;
                }
                Role::OnVehicles => {
                    if !state.vehicles {
                        problem(format!("needs vehicles first: add `{}` before it", example(Role::Vehicles)));
                        state.vehicles = true;
                    }
                }
                Role::Fault(step) => {
                    if matches!(step, FaultStep::NodeNetwork | FaultStep::CpuStress) {
                        state.need_service(&quoted, &mut problem);
                    }
                    if let Some(name) = self.fault(step, &args, &mut state, &mut problem) {
                        plan.network_faults.push(name);
                    }
                    state.fault = true;
                }
                Role::AfterFault => {
                    if !state.fault {
                        problem(format!(
                            "needs a fault before it: add a fault step such as `{}` before it",
                            example(Role::Fault(FaultStep::Scenario))
                        ));
                        state.fault = true;
                    }
                }
            }
        }
        plan.network_faults.dedup();
        plan
    }

    /// Renders the fault of a fault step as the run would (with the scenario's defaults for
    /// what the context fills) and checks its target was set up; the scenario's name when it
    /// needs iptables on the embedded cluster.
    fn fault(
        &self,
        step: FaultStep,
        args: &[String],
        state: &mut State,
        problem: &mut impl FnMut(String),
    ) -> Option<String> {
        let planned = match faults::planned(step, args) {
            Ok(p) => p,
            Err(e) => {
                problem(format!("{e:#}"));
                return None;
            }
        };
        let scenario = match self.library.get(&planned.scenario) {
            Ok(s) => s,
            Err(e) => {
                problem(e.to_string());
                return None;
            }
        };
        for p in &scenario.parameters {
            if planned.settings.iter().any(|(k, _)| *k == p.name) {
                continue;
            }
            match faults::context_source(&p.name) {
                Some(ContextSource::HaService) if state.services.is_empty() => {
                    problem(format!(
                        "scenario {} targets the HA service (its parameter {} comes from it): add `{}` before it",
                        scenario.name,
                        p.name,
                        example(Role::HaService)
                    ));
                    state.services.push(String::new());
                }
                Some(ContextSource::Controller) if !state.controller => {
                    problem(format!(
                        "scenario {} targets the failover controller (its parameter {} comes from it): add `{}` before it",
                        scenario.name,
                        p.name,
                        example(Role::Controller)
                    ));
                    state.controller = true;
                }
                _ => {}
            }
        }
        let mut options = RenderOptions::in_namespace(faults::namespace_for(scenario, CHECK_NAMESPACE));
        for (k, v) in &planned.settings {
            options = options.set(k, v);
        }
        match scenario.render(&options) {
            Ok(rendered) => {
                let needs_iptables = match rendered.resource.kind() {
                    ChaosKind::NetworkChaos => sim::chaos::network::needs_iptables(&rendered.resource.to_value()),
                    // A node's network loss is DROP rules for the node's addresses on the
                    // embedded cluster (sim/src/chaos/blade.rs), as chaosblade's tool on a node.
                    ChaosKind::ChaosBlade => true,
                    ChaosKind::PodChaos | ChaosKind::StressChaos => false,
                };
                needs_iptables.then(|| scenario.name.clone())
            }
            Err(e) => {
                problem(format!("scenario {} cannot be rendered with these settings: {e}", scenario.name));
                None
            }
        }
    }
}

/// What the steps so far have set up.
#[derive(Debug, Default)]
struct State {
    controller: bool,
    services: Vec<String>,
    vehicles: bool,
    fault: bool,
}

impl State {
    /// The HA service `name` must have been set up (reported once; later steps assume it).
    fn need_service(&mut self, name: &str, problem: &mut impl FnMut(String)) {
        if !self.services.iter().any(|s| s == name) {
            let add = example(Role::HaService).replacen("\"dispatch\"", &format!("{name:?}"), 1);
            problem(format!("needs the HA service {name:?} first: add `{add}` before it"));
            self.services.push(name.to_string());
        }
    }
}

/// The catalogue's example of `role`, as written in a feature.
fn example(role: Role) -> String {
    example_of(role).unwrap_or_else(|| format!("{role:?}"))
}

/// One argument of a step's match.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Arg {
    /// As written, a quoted string without its quotes.
    value: String,
    /// A `{string}` parameter.
    quoted: bool,
}

/// The arguments of a step's match, in order. A `{string}` parameter captures twice (`__N_0`
/// double-quoted, `__N_1` single-quoted, the other empty); other parameters once.
fn arguments(context: &Context) -> Vec<Arg> {
    let mut out: Vec<Arg> = Vec::new();
    let mut last_string: Option<String> = None;
    for (name, value) in context.matches.iter().skip(1) {
        match name.as_deref().and_then(|n| n.strip_prefix("__")).and_then(|n| n.split_once('_')) {
            Some((id, _)) if last_string.as_deref() == Some(id) => {
                if let Some(prev) = out.last_mut().filter(|p| p.value.is_empty()) {
                    prev.value = value.clone();
                }
            }
            Some((id, _)) => {
                last_string = Some(id.to_string());
                out.push(Arg { value: value.clone(), quoted: true });
            }
            None => {
                last_string = None;
                out.push(Arg { value: value.clone(), quoted: false });
            }
        }
    }
    out
}

/// Checks the manifest a step applies: the file exists and every document is a Kubernetes
/// object of a kind the embedded cluster serves (or a Chaos Mesh kind).
fn check_manifest(path: &str) -> Result<(), String> {
    let file = repo_path(path);
    if !file.is_file() {
        return Err(format!("manifest {path}: no such file ({}; paths are from the repository root)", file.display()));
    }
    // The first line: the YAML parser's message; a source snippet follows it.
    let docs = parse_manifest(&file).map_err(|e| format!("{e:#}").lines().next().unwrap_or_default().to_string())?;
    if docs.is_empty() {
        return Err(format!("manifest {path} holds no objects"));
    }
    let registry = sim::api::resources::Registry::with_builtins();
    for doc in docs {
        let api_version = doc.object["apiVersion"].as_str().unwrap_or_default();
        let kind = doc.object["kind"].as_str().unwrap_or_default();
        let chaos = api_version == "chaos-mesh.org/v1alpha1" && ChaosKind::from_kind(kind).is_some();
        if registry.by_kind(api_version, kind).is_none() && !chaos {
            let mut known: Vec<String> = registry.all().iter().map(|t| t.kind.clone()).collect();
            known.sort();
            known.dedup();
            return Err(format!(
                "manifest {path} document {}: unknown kind {kind} in {api_version}; expected one of {}",
                doc.index,
                known.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogued_step_has_its_role_located() {
        let planner = Planner::new().unwrap();
        assert_eq!(planner.roles.len(), CATALOG.len());
    }

    #[test]
    fn arguments_come_in_order_without_quotes() {
        let collection = HadrillWorld::collection();
        let feature = gherkin::Feature::parse(
            "Feature: f\n  Scenario: s\n    When the primary of \"dispatch\" is CPU-stressed by 2 workers at 100% for 60 s\n    When the scenario 'x' is injected with \"\"\n",
            gherkin::GherkinEnv::default(),
        )
        .unwrap();
        let args: Vec<Vec<String>> = feature.scenarios[0]
            .steps
            .iter()
            .map(|s| match collection.find(s) {
                Ok(Some((_, _, _, ctx))) => arguments(&ctx).into_iter().map(|a| a.value).collect(),
                _ => panic!("{} does not resolve", s.value),
            })
            .collect();
        assert_eq!(args[0], ["dispatch", "2", "100%", "60 s"]);
        assert_eq!(args[1], ["x", ""]);
        let step = &feature.scenarios[0].steps[0];
        let Ok(Some((_, _, _, ctx))) = collection.find(step) else { panic!("resolves") };
        let quoted: Vec<bool> = arguments(&ctx).iter().map(|a| a.quoted).collect();
        assert_eq!(quoted, [true, false, false, false]);
    }
}
