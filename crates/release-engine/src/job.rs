//! The manifest of a job's release (chart `builtin:job`, issue 19): one `batch/v1` Job from the
//! substituted values (`template`, `backoffLimit`), rendered here rather than by helm. Its name
//! carries the digest of the pod template, because a Job's template cannot be changed: a
//! changed template is a new Job (the old one leaves the inventory and is pruned), an
//! unchanged one is the same Job, which is not run again.

use serde_json::{Value, json};

use crate::digest::json_digest;
use crate::{Error, Result};

/// The label every job's Job and its pods carry: the release that runs it.
pub const JOB_RELEASE_LABEL: &str = "upstartoperators.upstart.com/job";

/// The name of the Job that runs `template` for the release `release_name` (at most 53
/// characters): `<release>-<8 hex digits of the template's digest>`, at most 62.
pub fn job_name(release_name: &str, template: &Value) -> String {
    let digest = json_digest(template);
    let hex = digest.trim_start_matches("sha256:");
    format!("{release_name}-{}", &hex[..8])
}

/// The Job manifest (as YAML, which JSON is) of a job's release.
pub fn job_manifest(release_name: &str, values: &Value) -> Result<String> {
    let object = |reason: &str| Error::InvalidObject {
        object: format!("Job of release {release_name}"),
        reason: reason.to_owned(),
    };
    let template = values
        .get("template")
        .filter(|t| t.is_object())
        .ok_or_else(|| object("the job has no pod template (template must be a mapping)"))?;
    if !template.get("spec").is_some_and(Value::is_object) {
        return Err(object("the pod template has no spec"));
    }
    let backoff_limit = values
        .get("backoffLimit")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut template = template.clone();
    let labels = template
        .as_object_mut()
        .and_then(|t| {
            t.entry("metadata")
                .or_insert_with(|| json!({}))
                .as_object_mut()
        })
        .and_then(|m| {
            m.entry("labels")
                .or_insert_with(|| json!({}))
                .as_object_mut()
        });
    if let Some(labels) = labels {
        labels.insert(JOB_RELEASE_LABEL.into(), release_name.into());
    }
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(release_name, values.get("template").unwrap_or(&Value::Null)),
            "labels": {JOB_RELEASE_LABEL: release_name},
        },
        "spec": {
            "backoffLimit": backoff_limit,
            "template": template,
        },
    });
    Ok(format!(
        "---\n# Source: builtin/job.yaml\n{}\n",
        serde_json::to_string(&job).map_err(|e| Error::Values(e.to_string()))?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(image: &str) -> Value {
        json!({
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "seed", "image": image}]}},
            "backoffLimit": 1,
        })
    }

    fn parsed(manifest: &str) -> Value {
        let body = manifest.lines().skip(2).collect::<Vec<_>>().join("\n");
        serde_json::from_str(&body).unwrap()
    }

    #[test]
    fn a_job_manifest_is_one_job_named_after_its_release_and_template() {
        let job = parsed(&job_manifest("seed", &values("busybox:1")).unwrap());
        assert_eq!(job["kind"], "Job");
        let name = job["metadata"]["name"].as_str().unwrap();
        assert!(
            name.starts_with("seed-") && name.len() == "seed-".len() + 8,
            "{name}"
        );
        assert_eq!(job["spec"]["backoffLimit"], 1);
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["image"],
            "busybox:1"
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"][JOB_RELEASE_LABEL],
            "seed"
        );
    }

    #[test]
    fn the_same_template_names_the_same_job_and_another_template_another() {
        let name = |image| job_name("seed", &values(image)["template"]);
        assert_eq!(name("busybox:1"), name("busybox:1"));
        assert_ne!(name("busybox:1"), name("busybox:2"));
    }

    #[test]
    fn a_job_without_a_pod_template_is_a_spec_error() {
        let error = job_manifest("seed", &json!({"backoffLimit": 0})).unwrap_err();
        assert!(upstart_failure::Classify::needs_spec_change(&error));
        assert!(error.to_string().contains("no pod template"), "{error}");
    }
}
