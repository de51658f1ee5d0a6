//! Create, update and patch.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Api, FieldValidation, Subresource, WriteCtx, Written, meta_mut, meta_str, now_rfc3339};
use crate::api::merge::apply::{self as ssa, ApplyError, ApplyOptions};
use crate::api::merge::list_types::{BuiltinListTypes, ListTypes, SchemaListTypes};
use crate::api::merge::strategic;
use crate::api::resources::{ResourceType, Validation};
use crate::api::status::{ApiError, ApiResult, Cause};
use crate::api::store::{Committed, Mutation};
use crate::api::{crd, defaults, names, schema};

/// Patch formats, by request content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/strategic-merge-patch+json` (built-in kinds only).
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchKind {
    /// Maps a Content-Type to a patch kind.
    pub fn from_content_type(ct: &str) -> ApiResult<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/json-patch+json" => Ok(Self::Json),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" | "application/apply-patch+cbor" => {
                Ok(Self::Apply)
            }
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }
}

fn list_types(rt: &ResourceType) -> Box<dyn ListTypes + '_> {
    match &rt.validation {
        Validation::Schema(s) => Box::new(SchemaListTypes { schema: s }),
        _ => Box::new(BuiltinListTypes),
    }
}

/// Checks (and fills in when absent) `apiVersion` and `kind` against the endpoint's type.
fn check_type(rt: &ResourceType, obj: &mut Value, expect_kind: &str, expect_api: &str) -> ApiResult<()> {
    let map = obj.as_object_mut().ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(expect_api));
        }
        Some(v) if v != expect_api => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expect_api})"
            )));
        }
        Some(_) => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(expect_kind));
        }
        Some(k) if k != expect_kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({expect_kind}) for {}",
                crate::api::status::qualified(&rt.group, &rt.plural)
            )));
        }
        Some(_) => {}
    }
    Ok(())
}

/// Validates against the type and applies `fieldValidation`; returns the stored form and warnings.
fn validate(rt: &ResourceType, obj: Value, ctx: &WriteCtx) -> ApiResult<(Value, Vec<String>)> {
    let name = meta_str(&obj, "name").to_string();
    let (mut obj, unknown) = match &rt.validation {
        Validation::Builtin(f) => {
            let typed = f(&obj).map_err(|causes| ApiError::invalid(&rt.kind, &name, &rt.group, causes))?;
            (typed.pruned, typed.unknown)
        }
        Validation::Schema(s) => {
            let mut obj = obj;
            let pruned = schema::default_prune_validate(s, &mut obj).map_err(|errs| {
                let causes = errs
                    .into_iter()
                    .map(|e| Cause { reason: e.reason.as_cause_type().to_string(), field: e.field, message: e.message })
                    .collect();
                ApiError::invalid(&rt.kind, &name, &rt.group, causes)
            })?;
            (obj, pruned)
        }
        Validation::None => (obj, Vec::new()),
    };
    semantic(rt, &mut obj)?;
    let warnings = match ctx.field_validation {
        FieldValidation::Ignore => Vec::new(),
        FieldValidation::Warn => unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect(),
        FieldValidation::Strict if !unknown.is_empty() => {
            let list = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect::<Vec<_>>().join(", ");
            return Err(ApiError::bad_request(format!("strict decoding error: {list}")));
        }
        FieldValidation::Strict => Vec::new(),
    };
    Ok((obj, warnings))
}

/// Cross-field rules of built-in kinds that a typed model cannot express.
fn semantic(rt: &ResourceType, obj: &mut Value) -> ApiResult<()> {
    let name = meta_str(obj, "name").to_string();
    let invalid = |field: &str, reason: &str, msg: String| {
        ApiError::invalid_field(&rt.kind, &name, &rt.group, reason, field, msg)
    };
    let one = |c: Cause| ApiError::invalid(&rt.kind, &name, &rt.group, vec![c]);
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("batch", "jobs") => {
            super::batch::generate_job_selector(obj);
            selector_matches_template(obj, &invalid)?;
            super::batch::check_completions(obj).map_err(one)?;
            super::batch::check_restart_policy(&obj["spec"]["template"]["spec"], "spec.template.spec").map_err(one)?;
            containers(&obj["spec"]["template"]["spec"], "spec.template.spec")
                .map_err(|(f, r, m)| invalid(&f, r, m))?;
        }
        ("batch", "cronjobs") => {
            super::batch::check_cronjob(obj).map_err(one)?;
            containers(&obj["spec"]["jobTemplate"]["spec"]["template"]["spec"], "spec.jobTemplate.spec.template.spec")
                .map_err(|(f, r, m)| invalid(&f, r, m))?;
        }
        ("policy", "poddisruptionbudgets") => super::batch::check_pdb(obj).map_err(one)?,
        ("", "replicationcontrollers") => {
            let Some(selector) = obj["spec"]["selector"].as_object().filter(|s| !s.is_empty()) else {
                return Err(invalid("spec.selector", "FieldValueRequired", "Required value".into()));
            };
            template_labels_selected(obj, &crate::api::selectors::LabelSelector::from_labels(selector), &invalid)?;
            containers(&obj["spec"]["template"]["spec"], "spec.template.spec")
                .map_err(|(f, r, m)| invalid(&f, r, m))?;
        }
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets") => {
            selector_matches_template(obj, &invalid)?;
            containers(&obj["spec"]["template"]["spec"], "spec.template.spec")
                .map_err(|(f, r, m)| invalid(&f, r, m))?;
        }
        ("", "pods") => containers(&obj["spec"], "spec").map_err(|(f, r, m)| invalid(&f, r, m))?,
        ("apiextensions.k8s.io", "customresourcedefinitions") => crd::validate(obj)
            .map_err(|(field, msg)| invalid(&field, "FieldValueInvalid", format!("Invalid value: {msg}")))?,
        _ => {}
    }
    Ok(())
}

/// `spec.selector` (a `metav1.LabelSelector`) is set, not empty, and selects the template's
/// labels.
fn selector_matches_template(obj: &Value, invalid: &dyn Fn(&str, &str, String) -> ApiError) -> ApiResult<()> {
    let selector = &obj["spec"]["selector"];
    if selector.is_null() {
        return Err(invalid("spec.selector", "FieldValueRequired", "Required value".into()));
    }
    let sel = crate::api::selectors::LabelSelector::from_json(selector)
        .map_err(|e| invalid("spec.selector", "FieldValueInvalid", format!("Invalid value: {e}")))?;
    if sel.is_empty() {
        return Err(invalid(
            "spec.selector",
            "FieldValueInvalid",
            "Invalid value: empty selector is invalid for deployment".into(),
        ));
    }
    template_labels_selected(obj, &sel, invalid)
}

/// The template's labels are selected by `sel`.
fn template_labels_selected(
    obj: &Value,
    sel: &crate::api::selectors::LabelSelector,
    invalid: &dyn Fn(&str, &str, String) -> ApiError,
) -> ApiResult<()> {
    let labels = &obj["spec"]["template"]["metadata"]["labels"];
    if sel.matches(labels.as_object()) {
        return Ok(());
    }
    Err(invalid(
        "spec.template.metadata.labels",
        "FieldValueInvalid",
        format!(
            "Invalid value: {}: `selector` does not match template `labels`",
            serde_json::to_string(labels).unwrap_or_default()
        ),
    ))
}

/// Pod spec container rules: at least one container, each with a DNS-label name (unique) and
/// an image.
fn containers(spec: &Value, at: &str) -> Result<(), (String, &'static str, String)> {
    let list = spec["containers"].as_array().filter(|l| !l.is_empty());
    let Some(list) = list else {
        return Err((format!("{at}.containers"), "FieldValueRequired", "Required value".into()));
    };
    let mut seen = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let name = c["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            return Err((format!("{at}.containers[{i}].name"), "FieldValueRequired", "Required value".into()));
        }
        if let Err(msg) = names::dns_label(name) {
            return Err((
                format!("{at}.containers[{i}].name"),
                "FieldValueInvalid",
                format!("Invalid value: \"{name}\": {msg}"),
            ));
        }
        if seen.contains(&name) {
            return Err((
                format!("{at}.containers[{i}].name"),
                "FieldValueDuplicate",
                format!("Duplicate value: \"{name}\""),
            ));
        }
        seen.push(name);
        if c["image"].as_str().is_none_or(str::is_empty) {
            return Err((format!("{at}.containers[{i}].image"), "FieldValueRequired", "Required value".into()));
        }
        super::admission::validate_probes(c, &format!("{at}.containers[{i}]")).map_err(|cause| {
            let reason = match cause.reason.as_str() {
                "FieldValueRequired" => "FieldValueRequired",
                "FieldValueForbidden" => "FieldValueForbidden",
                _ => "FieldValueInvalid",
            };
            (cause.field, reason, cause.message)
        })?;
    }
    Ok(())
}

/// Everything but metadata (and status when it is a subresource): a change bumps generation.
fn spec_part(rt: &ResourceType, obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        if rt.status {
            m.remove("status");
        }
    }
    v
}

/// Object without volatile bookkeeping, to detect no-op writes.
fn comparable(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        if let Some(mf) = meta.get_mut("managedFields").and_then(Value::as_array_mut) {
            for e in mf {
                if let Some(e) = e.as_object_mut() {
                    e.remove("time");
                }
            }
        }
    }
    v
}

impl Api {
    /// Fails unless `namespace` exists and is not terminating.
    pub fn check_namespace_writable(&self, namespace: &str) -> ApiResult<()> {
        let gr = crate::api::resources::GroupResource { group: String::new(), resource: "namespaces".into() };
        let ns = self.store.get(&gr, "", namespace).ok_or_else(|| ApiError::not_found("", "namespaces", namespace))?;
        if !ns["metadata"]["deletionTimestamp"].is_null() {
            return Err(ApiError::forbidden(format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            )));
        }
        Ok(())
    }

    /// Creates an object (POST to a collection).
    pub fn create(&self, rt: &ResourceType, namespace: &str, body: Value, ctx: &WriteCtx) -> ApiResult<Written> {
        // ClusterIP allocation reads the IPs in use: one Service create at a time.
        let _allocating = (rt.group.is_empty() && rt.plural == "services")
            .then(|| self.service_ips.lock().unwrap_or_else(|p| p.into_inner()));
        let mut obj = body;
        check_type(rt, &mut obj, &rt.kind, &rt.api_version())?;
        let name = self.prepare_create(rt, namespace, &mut obj)?;
        if rt.namespaced {
            self.check_namespace_writable(namespace)?;
        }
        let now = now_rfc3339();
        let (mut obj, warnings) = validate(rt, obj, ctx)?;
        // managedFields describe the object as this API version names its fields.
        ssa::record_update(None, &mut obj, &*list_types(rt), &ctx.manager, &rt.api_version(), &now, None);
        let obj = to_storage(rt, obj);
        if ctx.dry_run {
            return Ok(Written { object: Arc::new(obj), created: true, warnings });
        }
        let committed = self.store.mutate(&rt.group_resource(), namespace, &name, |cur, _| {
            if cur.is_some() {
                return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
            }
            Ok(Mutation::Create(obj))
        })?;
        self.after_commit(rt, &committed);
        Ok(Written { object: committed.object, created: true, warnings })
    }

    /// Fills in server-set metadata of a new object and returns its name.
    fn prepare_create(&self, rt: &ResourceType, namespace: &str, obj: &mut Value) -> ApiResult<String> {
        let kind = rt.kind.clone();
        let group = rt.group.clone();
        let meta = meta_mut(obj)?;
        let body_ns = meta.get("namespace").and_then(Value::as_str).unwrap_or_default().to_string();
        if rt.namespaced {
            if !body_ns.is_empty() && body_ns != namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta.insert("namespace".into(), json!(namespace));
        } else {
            meta.remove("namespace");
        }
        let mut name = meta.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        if name.is_empty() {
            let gen_name = meta.get("generateName").and_then(Value::as_str).unwrap_or_default();
            if gen_name.is_empty() {
                return Err(ApiError::invalid_field(
                    &kind,
                    "",
                    &group,
                    "FieldValueRequired",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
            name = format!("{gen_name}{}", names::random_suffix());
            meta.insert("name".into(), json!(name));
        }
        if let Err(msg) = names::validate(&rt.group, &rt.plural, &name) {
            return Err(ApiError::invalid_field(
                &kind,
                &name,
                &group,
                "FieldValueInvalid",
                "metadata.name",
                format!("Invalid value: \"{name}\": {msg}"),
            ));
        }
        if meta.get("resourceVersion").and_then(Value::as_str).is_some_and(|rv| !rv.is_empty()) {
            return Err(ApiError::internal("resourceVersion should not be set on objects to be created"));
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.remove("managedFields");
        if rt.tracks_generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        if rt.status {
            // Status is written by controllers through /status; a create starts from scratch.
            if let Some(map) = obj.as_object_mut() {
                map.remove("status");
                if rt.group.is_empty() && rt.plural == "pods" {
                    map.insert("status".into(), json!({"phase": "Pending", "qosClass": "BestEffort"}));
                }
                if rt.group == "policy" && rt.plural == "poddisruptionbudgets" {
                    // PodDisruptionBudgetStatus' four counters are not omitempty.
                    map.insert(
                        "status".into(),
                        json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}),
                    );
                }
            }
        }
        defaults::apply(&rt.group, &rt.plural, obj);
        match (rt.group.as_str(), rt.plural.as_str()) {
            ("apiextensions.k8s.io", "customresourcedefinitions") => crd::prepare_create(obj),
            ("", "services") => self.allocate_cluster_ip(obj)?,
            ("", "pods") => super::admission::default_tolerations(obj),
            ("", "events") | ("events.k8s.io", "events") => {
                let events_api = !rt.group.is_empty();
                let core;
                let event = if events_api {
                    core = crate::api::conversion::event_to_storage(obj);
                    &core
                } else {
                    &*obj
                };
                let causes = super::events::validate_create(event, namespace, events_api);
                if !causes.is_empty() {
                    return Err(ApiError::invalid(&rt.kind, &name, &rt.group, causes));
                }
            }
            _ => {}
        }
        self.check_crd_not_terminating(rt, &name)?;
        Ok(name)
    }

    /// Refuses to create a custom resource while its CRD is being deleted (1.34+: 403 from
    /// apiextensions-apiserver's `forbidCreateAdmission`, `customresource_handler.go`).
    fn check_crd_not_terminating(&self, rt: &ResourceType, name: &str) -> ApiResult<()> {
        let Some(crd_name) = &rt.crd else { return Ok(()) };
        let gr = crate::api::resources::GroupResource {
            group: "apiextensions.k8s.io".into(),
            resource: "customresourcedefinitions".into(),
        };
        let terminating =
            self.store.get(&gr, "", crd_name).is_some_and(|crd| !crd["metadata"]["deletionTimestamp"].is_null());
        if terminating {
            return Err(ApiError::forbidden_object(
                &rt.group,
                &rt.plural,
                name,
                "create not allowed while custom resource definition is terminating",
            ));
        }
        Ok(())
    }

    /// Replaces an object (PUT), the object itself or its `/status` or `/scale`.
    pub fn update(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        body: Value,
        sub: Subresource,
        ctx: &WriteCtx,
    ) -> ApiResult<Written> {
        let mut warnings = Vec::new();
        let committed = self.store.mutate(&rt.group_resource(), namespace, name, |cur, _| {
            let cur = cur.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
            let view = rt.from_storage(cur);
            let desired = match sub {
                Subresource::Scale => scale_to_object(rt, &view, body)?,
                _ => body,
            };
            let (next, w) = self.next_version(rt, &view, desired, sub, ctx, false)?;
            warnings = w;
            Ok(decide(cur, to_storage(rt, next), ctx.dry_run))
        })?;
        self.after_commit(rt, &committed);
        Ok(Written { object: self.present(rt, committed.object, sub), created: false, warnings })
    }

    /// Patches an object (PATCH); server-side apply creates it when absent.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        kind: PatchKind,
        patch: Value,
        sub: Subresource,
        ctx: &WriteCtx,
    ) -> ApiResult<Written> {
        if kind == PatchKind::Strategic && rt.crd.is_some() {
            return Err(ApiError::unsupported_media_type(
                "application/strategic-merge-patch+json (strategic merge patch is not supported for custom resources)",
            ));
        }
        if kind == PatchKind::Apply && ctx.manager.is_empty() {
            return Err(ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        let gr = rt.group_resource();
        let exists = self.store.get(&gr, namespace, name).is_some();
        if !exists {
            if kind != PatchKind::Apply || sub != Subresource::Main {
                return Err(ApiError::not_found(&rt.group, &rt.plural, name));
            }
            return self.apply_create(rt, namespace, name, patch, ctx);
        }
        let now = now_rfc3339();
        let mut warnings = Vec::new();
        let committed = self.store.mutate(&gr, namespace, name, |cur, _| {
            let cur = cur.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
            let view = rt.from_storage(cur);
            let base = match sub {
                Subresource::Scale => scale_view(rt, &view),
                _ => view.clone(),
            };
            let patched = self.apply_patch(rt, base, kind, &patch, sub, ctx, &now)?;
            let desired = match sub {
                Subresource::Scale => scale_to_object(rt, &view, patched)?,
                _ => patched,
            };
            let (next, w) = self.next_version(rt, &view, desired, sub, ctx, kind == PatchKind::Apply)?;
            warnings = w;
            Ok(decide(cur, to_storage(rt, next), ctx.dry_run))
        })?;
        self.after_commit(rt, &committed);
        Ok(Written { object: self.present(rt, committed.object, sub), created: false, warnings })
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_patch(
        &self,
        rt: &ResourceType,
        mut base: Value,
        kind: PatchKind,
        patch: &Value,
        sub: Subresource,
        ctx: &WriteCtx,
        now: &str,
    ) -> ApiResult<Value> {
        let obj_name = meta_str(&base, "name").to_string();
        let invalid_patch =
            |msg: String| ApiError::invalid_field(&rt.kind, &obj_name, &rt.group, "FieldValueInvalid", "patch", msg);
        match kind {
            PatchKind::Merge => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request("merge patch must be a JSON object"));
                }
                json_patch::merge(&mut base, patch);
                Ok(base)
            }
            PatchKind::Json => {
                let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                    .map_err(|e| ApiError::bad_request(format!("json patch is invalid: {e}")))?;
                json_patch::patch(&mut base, &ops)
                    .map_err(|e| invalid_patch(format!("the JSON patch could not be applied: {e}")))?;
                Ok(base)
            }
            PatchKind::Strategic => strategic::strategic_merge(&base, patch, &BuiltinListTypes)
                .map_err(|e| ApiError::bad_request(format!("strategic merge patch is invalid: {e}"))),
            PatchKind::Apply => {
                let mut applied = patch.clone();
                check_type(rt, &mut applied, &rt.kind, &rt.api_version())?;
                // A resourceVersion in the apply configuration makes the apply conditional.
                let want_rv = meta_str(&applied, "resourceVersion");
                if !want_rv.is_empty() && want_rv != meta_str(&base, "resourceVersion") {
                    return Err(ApiError::stale(&rt.group, &rt.plural, &obj_name));
                }
                let api_version = rt.api_version();
                let opts = ApplyOptions {
                    manager: &ctx.manager,
                    force: ctx.force,
                    api_version: &api_version,
                    now,
                    subresource: (sub == Subresource::Status).then_some("status"),
                    ignore_status: rt.status && sub == Subresource::Main,
                };
                ssa::apply(Some(&base), &applied, &*list_types(rt), &opts).map_err(|e| match e {
                    ApplyError::Conflicts(_) => {
                        ApiError::apply_conflict(&rt.group, &rt.plural, meta_str(&base, "name"), e.to_string())
                    }
                    ApplyError::Invalid(msg) => ApiError::bad_request(msg),
                })
            }
        }
    }

    /// Server-side apply of an object that does not exist yet: a create.
    fn apply_create(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        patch: Value,
        ctx: &WriteCtx,
    ) -> ApiResult<Written> {
        let mut applied = patch;
        check_type(rt, &mut applied, &rt.kind, &rt.api_version())?;
        let body_name = meta_str(&applied, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let now = now_rfc3339();
        let api_version = rt.api_version();
        let opts = ApplyOptions {
            manager: &ctx.manager,
            force: ctx.force,
            api_version: &api_version,
            now: &now,
            subresource: None,
            ignore_status: rt.status,
        };
        let merged =
            ssa::apply(None, &applied, &*list_types(rt), &opts).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let managed = merged["metadata"]["managedFields"].clone();
        let mut obj = merged;
        meta_mut(&mut obj)?.insert("name".into(), json!(name));
        let name = self.prepare_create(rt, namespace, &mut obj)?;
        if rt.namespaced {
            self.check_namespace_writable(namespace)?;
        }
        let (obj, warnings) = validate(rt, obj, ctx)?;
        let mut obj = to_storage(rt, obj);
        meta_mut(&mut obj)?.insert("managedFields".into(), managed);
        if ctx.dry_run {
            return Ok(Written { object: Arc::new(obj), created: true, warnings });
        }
        let committed = self.store.mutate(&rt.group_resource(), namespace, &name, |cur, _| {
            if cur.is_some() {
                return Err(ApiError::conflict(
                    &rt.group,
                    &rt.plural,
                    &name,
                    "the object was created concurrently; retry",
                ));
            }
            Ok(Mutation::Create(obj))
        })?;
        self.after_commit(rt, &committed);
        Ok(Written { object: committed.object, created: true, warnings })
    }

    /// Computes the next stored version of `cur` from a full desired object.
    /// `applied`: the desired object comes from server-side apply, which already computed
    /// its managedFields (recording an Update on top would take the fields from the Apply entry).
    #[allow(clippy::too_many_arguments)]
    fn next_version(
        &self,
        rt: &ResourceType,
        cur: &Value,
        mut desired: Value,
        sub: Subresource,
        ctx: &WriteCtx,
        applied: bool,
    ) -> ApiResult<(Value, Vec<String>)> {
        check_type(rt, &mut desired, &rt.kind, &rt.api_version())?;
        let name = meta_str(cur, "name").to_string();
        let body_name = meta_str(&desired, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let want_rv = meta_str(&desired, "resourceVersion");
        if !want_rv.is_empty() && want_rv != meta_str(cur, "resourceVersion") {
            return Err(ApiError::stale(&rt.group, &rt.plural, &name));
        }
        match sub {
            Subresource::Status => {
                let status = desired.get("status").cloned();
                let mut next = cur.clone();
                if let Some(m) = next.as_object_mut() {
                    match status {
                        Some(s) => m.insert("status".into(), s),
                        None => m.remove("status"),
                    };
                }
                desired = next;
            }
            Subresource::Main | Subresource::Scale => {
                if rt.status
                    && let Some(m) = desired.as_object_mut()
                {
                    match cur.get("status") {
                        Some(s) => m.insert("status".into(), s.clone()),
                        None => m.remove("status"),
                    };
                }
            }
        }
        let cur_meta = &cur["metadata"];
        let deleting = !cur_meta["deletionTimestamp"].is_null();
        {
            let meta = meta_mut(&mut desired)?;
            for key in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "namespace",
                "name",
                "generation",
            ] {
                match cur_meta.get(key) {
                    Some(v) if !v.is_null() => meta.insert(key.into(), v.clone()),
                    _ => meta.remove(key),
                };
            }
            if meta.get("managedFields").is_none_or(|m| m.as_array().is_none_or(Vec::is_empty))
                && let Some(mf) = cur_meta.get("managedFields")
            {
                meta.insert("managedFields".into(), mf.clone());
            }
            if deleting {
                let old: Vec<&Value> =
                    cur_meta["finalizers"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
                let added = meta
                    .get("finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|new| new.iter().any(|f| !old.contains(&f)));
                if added {
                    return Err(ApiError::invalid_field(
                        &rt.kind,
                        &name,
                        &rt.group,
                        "FieldValueForbidden",
                        "metadata.finalizers",
                        "Forbidden: no new finalizers can be added if the object is being deleted",
                    ));
                }
            }
        }
        defaults::apply(&rt.group, &rt.plural, &mut desired);
        if rt.group.is_empty() && rt.plural == "services" && desired["spec"].is_object() && cur["spec"].is_object() {
            // spec.clusterIP is allocated once and immutable; an update that omits it keeps it.
            let old_ip = &cur["spec"]["clusterIP"];
            match desired["spec"]["clusterIP"].as_str() {
                None | Some("") if !old_ip.is_null() => {
                    desired["spec"]["clusterIP"] = old_ip.clone();
                    desired["spec"]["clusterIPs"] = cur["spec"]["clusterIPs"].clone();
                }
                Some(ip) if Some(ip) != old_ip.as_str() => {
                    return Err(ApiError::invalid_field(
                        &rt.kind,
                        &name,
                        &rt.group,
                        "FieldValueInvalid",
                        "spec.clusterIPs[0]",
                        format!("Invalid value: \"{ip}\": may not change once set"),
                    ));
                }
                _ => {}
            }
            for key in ["clusterIPs", "ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"] {
                if desired["spec"].get(key).is_none_or(Value::is_null) && !cur["spec"][key].is_null() {
                    desired["spec"][key] = cur["spec"][key].clone();
                }
            }
        }
        let (mut desired, warnings) = validate(rt, desired, ctx)?;
        if rt.tracks_generation && sub != Subresource::Status && spec_part(rt, cur) != spec_part(rt, &desired) {
            let generation = cur_meta["generation"].as_i64().unwrap_or(0) + 1;
            meta_mut(&mut desired)?.insert("generation".into(), json!(generation));
        }
        let now = now_rfc3339();
        let subresource = (sub == Subresource::Status).then_some("status");
        if !applied {
            ssa::record_update(
                Some(cur),
                &mut desired,
                &*list_types(rt),
                &ctx.manager,
                &rt.api_version(),
                &now,
                subresource,
            );
        }
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            crd::prepare_update(&mut desired);
        }
        Ok((desired, warnings))
    }

    /// Type-specific effects of a committed write that happen outside the store lock (none
    /// today: CRD registration runs in the store's commit hook, see `Api::new`).
    pub(crate) fn after_commit(&self, _rt: &ResourceType, _committed: &Committed) {}

    /// The object as a response for the given subresource.
    fn present(&self, rt: &ResourceType, obj: Arc<Value>, sub: Subresource) -> Arc<Value> {
        match sub {
            Subresource::Scale => Arc::new(scale_view(rt, &obj)),
            _ => obj,
        }
    }
}

/// An object of this served type in its stored form (see `api::conversion`).
fn to_storage(rt: &ResourceType, obj: Value) -> Value {
    match &rt.conversion {
        Some(c) => (c.to_storage)(&obj),
        None => obj,
    }
}

/// Decides the store mutation for a computed next version.
fn decide(cur: &Arc<Value>, next: Value, dry_run: bool) -> Mutation {
    if comparable(cur) == comparable(&next) {
        return Mutation::Unchanged(cur.clone());
    }
    if dry_run {
        return Mutation::Unchanged(Arc::new(next));
    }
    let deleting = !next["metadata"]["deletionTimestamp"].is_null();
    let no_finalizers = next["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty);
    if deleting && no_finalizers && !super::delete::blocks_removal(&next) {
        Mutation::Delete(next)
    } else {
        Mutation::Update(next)
    }
}

/// Reads a JSON path like `.spec.replicas`.
fn at_path<'a>(obj: &'a Value, path: &str) -> &'a Value {
    path.trim_start_matches('.').split('.').fold(obj, |v, k| &v[k])
}

/// The `autoscaling/v1` Scale view of an object.
pub fn scale_view(rt: &ResourceType, obj: &Value) -> Value {
    let Some(paths) = &rt.scale else { return Value::Null };
    let selector = paths
        .label_selector
        .as_deref()
        .map(|p| at_path(obj, p))
        .map(|s| match s {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            // The core group's one scalable kind, ReplicationController, selects with a plain map.
            Value::Object(labels) if rt.group.is_empty() => {
                crate::api::selectors::LabelSelector::from_labels(labels).to_string()
            }
            other => crate::api::selectors::LabelSelector::from_json(other).map(|l| l.to_string()).unwrap_or_default(),
        })
        .unwrap_or_default();
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": at_path(obj, &paths.spec_replicas).as_i64().unwrap_or(0)},
        "status": {"replicas": at_path(obj, &paths.status_replicas).as_i64().unwrap_or(0), "selector": selector},
    })
}

/// Applies a Scale's `spec.replicas` (and resourceVersion precondition) to the object.
fn scale_to_object(rt: &ResourceType, cur: &Value, scale: Value) -> ApiResult<Value> {
    let paths = rt.scale.as_ref().ok_or_else(|| ApiError::no_route("scale"))?;
    if let Some(kind) = scale["kind"].as_str()
        && kind != "Scale"
    {
        return Err(ApiError::bad_request(format!("expected kind Scale, got {kind}")));
    }
    let replicas = scale["spec"]["replicas"].as_i64().ok_or_else(|| {
        ApiError::invalid_field(
            "Scale",
            meta_str(cur, "name"),
            "autoscaling",
            "FieldValueRequired",
            "spec.replicas",
            "Required value",
        )
    })?;
    if replicas < 0 {
        return Err(ApiError::invalid_field(
            "Scale",
            meta_str(cur, "name"),
            "autoscaling",
            "FieldValueInvalid",
            "spec.replicas",
            format!("Invalid value: {replicas}: must be greater than or equal to 0"),
        ));
    }
    let mut obj = cur.clone();
    let mut target = &mut obj;
    let keys: Vec<&str> = paths.spec_replicas.trim_start_matches('.').split('.').collect();
    for (i, k) in keys.iter().enumerate() {
        let map = target.as_object_mut().ok_or_else(|| ApiError::internal("scale path is not an object"))?;
        if i + 1 == keys.len() {
            map.insert((*k).to_string(), json!(replicas));
            break;
        }
        target = map.entry((*k).to_string()).or_insert_with(|| json!({}));
    }
    let rv = meta_str(&scale, "resourceVersion").to_string();
    meta_mut(&mut obj)?.insert("resourceVersion".into(), json!(rv));
    Ok(obj)
}
