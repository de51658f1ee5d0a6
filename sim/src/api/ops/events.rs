//! Validation of Events on create, as k/k `pkg/apis/core/validation/events.go` does it:
//! `legacyValidateEvent` for every Event (on the core/v1 form, whichever API wrote it), and
//! the strict rules of `ValidateEventCreate` for `events.k8s.io/v1`.

use serde_json::Value;

use crate::api::status::Cause;

const REPORTING_INSTANCE_LIMIT: usize = 128;
const ACTION_LIMIT: usize = 128;
const REASON_LIMIT: usize = 128;
const NOTE_LIMIT: usize = 1024;

fn required(field: &str) -> Cause {
    Cause { reason: "FieldValueRequired".into(), field: field.into(), message: "Required value".into() }
}

fn invalid(field: &str, value: &str, detail: &str) -> Cause {
    let quoted = serde_json::to_string(value).unwrap_or_default();
    Cause {
        reason: "FieldValueInvalid".into(),
        field: field.into(),
        message: format!("Invalid value: {quoted}: {detail}"),
    }
}

fn text<'a>(event: &'a Value, field: &str) -> &'a str {
    event[field].as_str().unwrap_or_default()
}

fn set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::Object(m) => m.values().any(set),
        _ => true,
    }
}

/// The qualified-name rule of `reportingController` (apimachinery `IsQualifiedName`), for a
/// non-empty value.
fn qualified_name(value: &str) -> Option<String> {
    let name = match value.split('/').collect::<Vec<_>>().as_slice() {
        [name] => *name,
        [prefix, name] if !prefix.is_empty() => *name,
        _ => "",
    };
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    (!ok).then(|| {
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
         alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is \
         '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
            .to_string()
    })
}

/// The field errors of a new Event in its core/v1 form (`event`), created in `namespace`
/// through `events.k8s.io/v1` (`events_api`) or core/v1. Field paths are those of the
/// internal type, except `reportingComponent`, which is named as core/v1 names it when the
/// request came through core/v1.
pub fn validate_create(event: &Value, namespace: &str, events_api: bool) -> Vec<Cause> {
    let mut errs = Vec::new();
    let involved_ns = event["involvedObject"]["namespace"].as_str().unwrap_or_default();
    let mismatch = || invalid("involvedObject.namespace", involved_ns, "does not match event.namespace");
    if !set(&event["eventTime"]) {
        let ok = if involved_ns.is_empty() {
            namespace.is_empty() || namespace == "default"
        } else {
            involved_ns == namespace
        };
        if !ok {
            errs.push(mismatch());
        }
    } else {
        if involved_ns.is_empty() && namespace != "default" && namespace != "kube-system" {
            errs.push(mismatch());
        }
        let controller_field = if events_api { "reportingController" } else { "reportingComponent" };
        let controller = text(event, "reportingComponent");
        if controller.is_empty() {
            errs.push(required(controller_field));
        } else if let Some(msg) = qualified_name(controller) {
            errs.push(invalid(controller_field, controller, &msg));
        }
        for (field, limit) in
            [("reportingInstance", REPORTING_INSTANCE_LIMIT), ("action", ACTION_LIMIT), ("reason", REASON_LIMIT)]
        {
            let v = text(event, field);
            if v.is_empty() {
                errs.push(required(field));
            }
            if v.len() > limit {
                errs.push(invalid(field, "", &format!("can have at most {limit} characters")));
            }
        }
        if text(event, "message").len() > NOTE_LIMIT {
            errs.push(invalid("message", "", &format!("can have at most {NOTE_LIMIT} characters")));
        }
    }
    if !events_api {
        return errs;
    }
    if let Some(series) = event["series"].as_object() {
        if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            errs.push(invalid("series.count", "", "should be at least 2"));
        }
        if !series.get("lastObservedTime").is_some_and(set) {
            errs.push(required("series.lastObservedTime"));
        }
    }
    if !set(&event["eventTime"]) {
        errs.push(required("eventTime"));
    }
    let ty = text(event, "type");
    if ty != "Normal" && ty != "Warning" {
        errs.push(invalid("type", "", &format!("has invalid value: {ty}")));
    }
    for field in ["firstTimestamp", "lastTimestamp", "count", "source"] {
        if set(&event[field]) {
            errs.push(invalid(field, "", "needs to be unset"));
        }
    }
    errs
}
