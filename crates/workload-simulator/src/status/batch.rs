//! Status of Jobs, and the objects a Job's `on-complete` annotation declares.

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};

use super::{Observation, Outcome, settle};
use crate::ON_COMPLETE;

/// The Job controller's condition types and reasons (Kubernetes 1.31+ sets the
/// `SuccessCriteriaMet` / `FailureTarget` interim conditions before the terminal one).
mod reason {
    pub const COMPLETE: &str = "Complete";
    pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
    pub const FAILED: &str = "Failed";
    pub const FAILURE_TARGET: &str = "FailureTarget";
    pub const COMPLETIONS_REACHED: &str = "CompletionsReached";
    pub const BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
    pub const INVALID_ON_COMPLETE: &str = "InvalidOnCompleteAnnotation";
}

/// The Job controller's default `backoffLimit`.
const DEFAULT_BACKOFF_LIMIT: i32 = 6;

/// Why an `on-complete` annotation cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OnCompleteError {
    #[error("{ON_COMPLETE} is not valid YAML: {0}")]
    Parse(String),
    #[error("{ON_COMPLETE} must hold a list of manifests")]
    NotAList,
    #[error("{ON_COMPLETE}: manifest {0} needs apiVersion, kind and metadata.name")]
    Incomplete(usize),
}

/// The manifests of a Job's `on-complete` annotation (none without the annotation).
pub fn on_complete_manifests(job: &Job) -> Result<Vec<serde_json::Value>, OnCompleteError> {
    let Some(text) = job
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ON_COMPLETE))
    else {
        return Ok(Vec::new());
    };
    // The parser's message names a position, never the content, so it is safe to show.
    let value: serde_json::Value =
        serde_yaml_ng::from_str(text).map_err(|e| OnCompleteError::Parse(e.to_string()))?;
    let items = match value {
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::Array(items) => items,
        object @ serde_json::Value::Object(_) => vec![object],
        _ => return Err(OnCompleteError::NotAList),
    };
    for (index, item) in items.iter().enumerate() {
        let has = |v: &serde_json::Value| v.as_str().is_some_and(|s| !s.is_empty());
        if !(has(&item["apiVersion"]) && has(&item["kind"]) && has(&item["metadata"]["name"])) {
            return Err(OnCompleteError::Incomplete(index));
        }
    }
    Ok(items)
}

/// Whether a Job status says the Job completed successfully.
pub fn is_complete(status: Option<&JobStatus>) -> bool {
    has_true(status, reason::COMPLETE)
}

fn has_true(status: Option<&JobStatus>, type_: &str) -> bool {
    status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// The status the Job controller writes: running, then `Complete` (or `Failed`) after the
/// delay. A finished or suspended Job is left alone.
pub fn job_status(job: &Job, obs: &Observation) -> Outcome<JobStatus> {
    let old = job.status.as_ref();
    let spec = job.spec.clone().unwrap_or_default();
    if is_complete(old) || has_true(old, reason::FAILED) || spec.suspend == Some(true) {
        return Outcome::leave();
    }
    let completions = spec.completions.unwrap_or(1).max(1);
    let parallelism = spec.parallelism.unwrap_or(1).max(1);
    let start_time = old
        .and_then(|s| s.start_time.clone())
        .or_else(|| Some(obs.time()));
    let cond = |type_: &str, reason: &str, message: String| JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_probe_time: Some(obs.time()),
        last_transition_time: Some(obs.time()),
    };
    let fail = |reason: &str, message: String| JobStatus {
        start_time: start_time.clone(),
        failed: Some(spec.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT) + 1),
        ready: Some(0),
        conditions: Some(vec![
            cond(reason::FAILURE_TARGET, reason, message.clone()),
            cond(reason::FAILED, reason, message),
        ]),
        ..Default::default()
    };
    if let Err(e) = on_complete_manifests(job) {
        return Outcome::write(fail(reason::INVALID_ON_COMPLETE, e.to_string()), None);
    }
    let status = if obs.failed() {
        fail(
            reason::BACKOFF_LIMIT_EXCEEDED,
            "Job has reached the specified backoff limit".into(),
        )
    } else if obs.ready() {
        let message = "Reached expected number of succeeded pods".to_owned();
        JobStatus {
            start_time,
            completion_time: Some(obs.time()),
            succeeded: Some(completions),
            ready: Some(0),
            conditions: Some(vec![
                cond(
                    reason::SUCCESS_CRITERIA_MET,
                    reason::COMPLETIONS_REACHED,
                    message.clone(),
                ),
                cond(reason::COMPLETE, reason::COMPLETIONS_REACHED, message),
            ]),
            ..Default::default()
        }
    } else {
        JobStatus {
            start_time,
            active: Some(parallelism.min(completions)),
            ready: Some(0),
            conditions: old.and_then(|s| s.conditions.clone()),
            ..Default::default()
        }
    };
    let status = JobStatus {
        conditions: status
            .conditions
            .map(|c| settle(old.and_then(|s| s.conditions.as_ref()), c)),
        ..status
    };
    Outcome::write(status, obs.requeue())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{obs, t0};
    use super::*;
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn job(annotation: Option<&str>) -> Job {
        let mut job = Job::default();
        job.metadata.name = Some("migrate".into());
        job.spec = Some(JobSpec::default());
        if let Some(text) = annotation {
            job.metadata.annotations = Some([(ON_COMPLETE.to_owned(), text.to_owned())].into());
        }
        job
    }

    fn types(s: &JobStatus) -> Vec<(&str, &str, &str)> {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c.type_.as_str(),
                    c.status.as_str(),
                    c.reason.as_deref().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn job_is_active_with_a_start_time_before_the_delay() {
        let out = job_status(&job(None), &obs(100, 1000, false));
        let s = out.status.unwrap();
        assert_eq!(s.active, Some(1));
        assert_eq!(
            s.start_time,
            Some(Time(t0() + std::time::Duration::from_millis(100)))
        );
        assert_eq!(s.conditions, None);
        assert_eq!(
            out.requeue_after,
            Some(std::time::Duration::from_millis(900))
        );
    }

    #[test]
    fn job_completes_after_the_delay_keeping_its_start_time() {
        let mut j = job(None);
        j.status = job_status(&j, &obs(0, 1000, false)).status;
        let s = job_status(&j, &obs(1000, 1000, false)).status.unwrap();
        assert_eq!(s.succeeded, Some(1));
        assert_eq!(s.active, None);
        assert_eq!(s.start_time, Some(Time(t0())));
        assert_eq!(
            s.completion_time,
            Some(Time(t0() + std::time::Duration::from_secs(1)))
        );
        assert_eq!(
            types(&s),
            [
                ("SuccessCriteriaMet", "True", "CompletionsReached"),
                ("Complete", "True", "CompletionsReached")
            ]
        );
        assert!(is_complete(Some(&s)));
    }

    #[test]
    fn job_succeeded_count_is_its_completions() {
        let mut j = job(None);
        j.spec.as_mut().unwrap().completions = Some(3);
        j.spec.as_mut().unwrap().parallelism = Some(2);
        assert_eq!(
            job_status(&j, &obs(0, 10, false)).status.unwrap().active,
            Some(2)
        );
        assert_eq!(
            job_status(&j, &obs(10, 10, false))
                .status
                .unwrap()
                .succeeded,
            Some(3)
        );
    }

    #[test]
    fn failing_job_fails_with_backoff_limit_exceeded() {
        let mut j = job(None);
        j.spec.as_mut().unwrap().backoff_limit = Some(2);
        let s = job_status(&j, &obs(10, 10, true)).status.unwrap();
        assert_eq!(s.failed, Some(3));
        assert_eq!(s.succeeded, None);
        assert_eq!(s.completion_time, None);
        assert_eq!(
            types(&s),
            [
                ("FailureTarget", "True", "BackoffLimitExceeded"),
                ("Failed", "True", "BackoffLimitExceeded")
            ]
        );
        assert!(!is_complete(Some(&s)));
    }

    #[test]
    fn failing_job_is_still_running_before_the_delay() {
        let s = job_status(&job(None), &obs(5, 10, true)).status.unwrap();
        assert_eq!(s.active, Some(1));
        assert_eq!(s.failed, None);
    }

    #[test]
    fn finished_jobs_are_left_alone() {
        let mut done = job(None);
        done.status = job_status(&done, &obs(10, 10, false)).status;
        assert_eq!(job_status(&done, &obs(99, 10, true)), Outcome::leave());
        let mut failed = job(None);
        failed.status = job_status(&failed, &obs(10, 10, true)).status;
        assert_eq!(job_status(&failed, &obs(99, 10, false)), Outcome::leave());
    }

    #[test]
    fn suspended_job_is_left_alone() {
        let mut j = job(None);
        j.spec.as_mut().unwrap().suspend = Some(true);
        assert_eq!(job_status(&j, &obs(99, 10, false)), Outcome::leave());
    }

    #[test]
    fn on_complete_list_of_manifests_is_parsed() {
        let j = job(Some(
            "- apiVersion: v1\n  kind: Secret\n  metadata: {name: key}\n  stringData: {k: v}\n\
             - {\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"c\"}}\n",
        ));
        let manifests = on_complete_manifests(&j).unwrap();
        assert_eq!(manifests.len(), 2);
        assert_eq!(manifests[0]["kind"], "Secret");
        assert_eq!(manifests[1]["metadata"]["name"], "c");
    }

    #[test]
    fn on_complete_single_manifest_is_accepted() {
        let j = job(Some(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: key}\n",
        ));
        assert_eq!(on_complete_manifests(&j).unwrap().len(), 1);
    }

    #[test]
    fn job_without_on_complete_has_no_manifests() {
        assert!(on_complete_manifests(&job(None)).unwrap().is_empty());
    }

    #[test]
    fn on_complete_manifest_without_name_is_refused() {
        let j = job(Some("- apiVersion: v1\n  kind: Secret\n"));
        assert_eq!(
            on_complete_manifests(&j),
            Err(OnCompleteError::Incomplete(0))
        );
        assert_eq!(
            on_complete_manifests(&job(Some("just text"))),
            Err(OnCompleteError::NotAList)
        );
    }

    #[test]
    fn invalid_on_complete_fails_the_job_at_once_without_showing_its_content() {
        let j = job(Some(
            "- apiVersion: v1\n  kind: Secret\n  stringData: {k: hunter2}\n",
        ));
        let s = job_status(&j, &obs(0, 1000, false)).status.unwrap();
        assert_eq!(
            types(&s)[1],
            ("Failed", "True", "InvalidOnCompleteAnnotation")
        );
        let message = s.conditions.as_ref().unwrap()[1].message.clone().unwrap();
        assert!(!message.contains("hunter2"), "{message}");
        let broken = job(Some("- [unclosed"));
        let s = job_status(&broken, &obs(0, 1000, false)).status.unwrap();
        assert_eq!(types(&s)[1].2, "InvalidOnCompleteAnnotation");
    }
}
