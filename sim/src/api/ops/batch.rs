//! The create/update strategies of `batch/v1` Jobs and CronJobs and `policy/v1`
//! PodDisruptionBudgets, as kube-apiserver's registries run them: a Job's generated selector
//! and pod labels (k/k `pkg/registry/batch/job/strategy.go` `generateSelector`), the pod
//! template's restart policy, a CronJob's schedule (k/k `pkg/apis/batch/validation`), a budget's
//! exclusive `minAvailable`/`maxUnavailable` (k/k `pkg/apis/policy/validation`).

use serde_json::{Map, Value, json};

use crate::api::status::Cause;

/// Label of a Job's pods naming the Job's uid (the generated selector selects it).
pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
/// Label of a Job's pods naming the Job.
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
/// Pre-1.27 spellings of the two labels, still set.
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const LEGACY_JOB_NAME: &str = "job-name";

fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause { reason: reason.into(), field: field.into(), message }
}

/// `generateSelector` unless `spec.manualSelector`: the template gets the job-name and
/// controller-uid labels (user values kept: a conflict fails the selector check), the selector
/// `batch.kubernetes.io/controller-uid: <uid>`. A Job without labels of its own takes the
/// template's (SetDefaults_Job, applied when kube-apiserver decodes the stored Job).
pub fn generate_job_selector(job: &mut Value) {
    if job["spec"]["manualSelector"] == true || !job["spec"].is_object() {
        return;
    }
    let name = job["metadata"]["name"].clone();
    let uid = job["metadata"]["uid"].clone();
    let template = &mut job["spec"]["template"];
    if !template.is_object() {
        return;
    }
    if !template["metadata"].is_object() {
        template["metadata"] = json!({});
    }
    if !template["metadata"]["labels"].is_object() {
        template["metadata"]["labels"] = json!({});
    }
    if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
        for (key, value) in
            [(LEGACY_JOB_NAME, &name), (JOB_NAME, &name), (LEGACY_CONTROLLER_UID, &uid), (CONTROLLER_UID, &uid)]
        {
            labels.entry(key).or_insert_with(|| value.clone());
        }
    }
    let template_labels = template["metadata"]["labels"].clone();
    let spec = &mut job["spec"];
    if !spec["selector"].is_object() {
        spec["selector"] = json!({});
    }
    if !spec["selector"]["matchLabels"].is_object() {
        spec["selector"]["matchLabels"] = json!({});
    }
    if let Some(m) = spec["selector"]["matchLabels"].as_object_mut() {
        m.entry(CONTROLLER_UID).or_insert(uid);
    }
    if job["metadata"]["labels"].as_object().is_none_or(Map::is_empty) {
        job["metadata"]["labels"] = template_labels;
    }
}

/// An `Indexed` Job needs `completions`.
pub fn check_completions(job: &Value) -> Result<(), Cause> {
    if job["spec"]["completionMode"] == "Indexed" && job["spec"]["completions"].is_null() {
        return Err(cause(
            "FieldValueRequired",
            "spec.completions",
            "Required value: when completion mode is Indexed".into(),
        ));
    }
    Ok(())
}

/// A Job's (or CronJob's job template's) pods may only restart on failure or never.
pub fn check_restart_policy(pod_spec: &Value, at: &str) -> Result<(), Cause> {
    match pod_spec["restartPolicy"].as_str().unwrap_or_default() {
        "OnFailure" | "Never" => Ok(()),
        other => Err(cause(
            "FieldValueNotSupported",
            &format!("{at}.restartPolicy"),
            format!("Unsupported value: \"{other}\": supported values: \"OnFailure\", \"Never\""),
        )),
    }
}

/// Parses a CronJob schedule: five fields (robfig/cron's standard parser: no seconds, names and
/// `@hourly`-style descriptors allowed), day-of-month and day-of-week OR-ed when both are set.
pub fn parse_schedule(schedule: &str) -> Result<croner::Cron, String> {
    if schedule.trim_start().starts_with("TZ=") || schedule.trim_start().starts_with("CRON_TZ=") {
        return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(schedule)
        .map_err(|e| e.to_string())
}

/// CronJob rules: a valid schedule, a supported time zone (UTC only: the embedded cluster ships
/// no time zone database), the job template's restart policy.
pub fn check_cronjob(cj: &Value) -> Result<(), Cause> {
    let schedule = cj["spec"]["schedule"].as_str().unwrap_or_default();
    if schedule.is_empty() {
        return Err(cause("FieldValueRequired", "spec.schedule", "Required value".into()));
    }
    if let Err(e) = parse_schedule(schedule) {
        return Err(cause("FieldValueInvalid", "spec.schedule", format!("Invalid value: \"{schedule}\": {e}")));
    }
    if let Some(tz) = cj["spec"]["timeZone"].as_str()
        && !matches!(tz, "UTC" | "Etc/UTC")
    {
        return Err(cause(
            "FieldValueInvalid",
            "spec.timeZone",
            format!("Invalid value: \"{tz}\": unknown time zone {tz} (the embedded cluster knows only UTC)"),
        ));
    }
    check_restart_policy(&cj["spec"]["jobTemplate"]["spec"]["template"]["spec"], "spec.jobTemplate.spec.template.spec")
}

/// A budget sets `minAvailable` or `maxUnavailable`, not both.
pub fn check_pdb(pdb: &Value) -> Result<(), Cause> {
    if !pdb["spec"]["minAvailable"].is_null() && !pdb["spec"]["maxUnavailable"].is_null() {
        return Err(cause(
            "FieldValueInvalid",
            "spec",
            format!(
                "Invalid value: {}: minAvailable and maxUnavailable cannot be both set",
                serde_json::to_string(&pdb["spec"]).unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_selector_selects_the_uid_and_labels_the_template() {
        let mut job = json!({"metadata": {"name": "pi", "uid": "u-1"},
            "spec": {"template": {"metadata": {"labels": {"app": "pi"}}, "spec": {}}}});
        generate_job_selector(&mut job);
        assert_eq!(job["spec"]["selector"], json!({"matchLabels": {CONTROLLER_UID: "u-1"}}));
        let labels = &job["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["app"], "pi");
        assert_eq!(labels[JOB_NAME], "pi");
        assert_eq!(labels["job-name"], "pi");
        assert_eq!(labels["controller-uid"], "u-1");
        assert_eq!(job["metadata"]["labels"], *labels);
    }

    #[test]
    fn manual_selector_is_left_alone() {
        let mut job = json!({"metadata": {"name": "pi", "uid": "u"},
            "spec": {"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}}}});
        let before = job.clone();
        generate_job_selector(&mut job);
        assert_eq!(job, before);
    }

    #[test]
    fn schedules_follow_the_standard_parser() {
        assert!(parse_schedule("*/5 * * * *").is_ok());
        assert!(parse_schedule("@hourly").is_ok());
        assert!(parse_schedule("0 0 1 * MON").is_ok());
        assert!(parse_schedule("0 0 0 1 * *").is_err(), "six fields are refused");
        assert!(parse_schedule("TZ=UTC * * * * *").unwrap_err().contains("timeZone field"));
        assert!(parse_schedule("61 * * * *").is_err());
    }

    #[test]
    fn restart_policy_must_be_never_or_on_failure() {
        assert!(check_restart_policy(&json!({"restartPolicy": "Never"}), "spec.template.spec").is_ok());
        let e = check_restart_policy(&json!({"restartPolicy": "Always"}), "spec.template.spec").unwrap_err();
        assert_eq!(e.field, "spec.template.spec.restartPolicy");
        assert_eq!(e.message, "Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"");
    }
}
