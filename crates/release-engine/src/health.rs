//! Health of a live object (SPEC §2.6 item 4): healthy, still progressing, or failed, with a
//! short message naming the object (`Deployment/postgres 0/1 available`).
//!
//! Pure functions over the object as JSON, so any live object (typed, `DynamicObject`, or from
//! a watch cache) can be assessed. Rules per kind:
//! - Deployment: the controller has observed the current generation; updated, ready and
//!   available replicas equal the desired replicas (`spec.replicas`, default 1) and no old
//!   replicas remain; `Progressing=False` with reason `ProgressDeadlineExceeded` is a failure.
//! - StatefulSet: the current generation is observed; ready (and, where reported, available)
//!   replicas equal the desired replicas. With `RollingUpdate`, at least `replicas - partition`
//!   replicas are updated and, without a partition, the current revision has caught up with the
//!   update revision. With `OnDelete` the controller never replaces Pods by itself, so only
//!   readiness is required (old Pods may keep running the previous template).
//! - DaemonSet: the current generation is observed; available and ready Pods equal
//!   `desiredNumberScheduled`; with `RollingUpdate` every scheduled Pod is also updated (with
//!   `OnDelete`, as for StatefulSets, updates are not waited for).
//! - Job: `Complete=True` is healthy; `Failed=True` or `FailureTarget=True` is a failure (the
//!   message says where its logs are);
//!   anything else (running, suspended, `SuccessCriteriaMet` before `Complete`) is progressing.
//! - Pod: phase `Succeeded` or `Ready=True` is healthy; phase `Failed` is a failure.
//! - PersistentVolumeClaim: phase `Bound`; `Lost` is a failure.
//! - Service of type LoadBalancer: has at least one `status.loadBalancer.ingress`.
//! - CustomResourceDefinition: `Established=True` (its kind is served, so instances of it can
//!   be applied); `NamesAccepted=False` is a failure (a name clash no retry fixes).
//! - Anything with a `Ready` condition: that condition (`Stalled=True`, the kstatus convention,
//!   is a failure), counted only when it was written for the current generation (the
//!   condition's `observedGeneration`, or `status.observedGeneration`, when present).
//! - Anything else: healthy because it exists.
//!
//! An object being deleted is progressing. Messages carry counts, condition types and reasons,
//! never condition messages of foreign controllers (they may quote arbitrary data).

use serde_json::Value;
use upstart_api::v1alpha1::InventoryEntry;

/// The health of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// Not there yet; the message says what is missing.
    Progressing(String),
    /// Will not get there without a change; the message says why.
    Failed(String),
}

impl Health {
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }

    /// The message, if any.
    pub fn message(&self) -> Option<&str> {
        match self {
            Health::Healthy => None,
            Health::Progressing(m) | Health::Failed(m) => Some(m),
        }
    }

    /// The health of an inventory object that does not exist (yet, or any more).
    pub fn missing(entry: &InventoryEntry) -> Health {
        Health::Progressing(format!("{}/{} does not exist", entry.kind, entry.name))
    }
}

/// The combined health of many objects: the first failure, else the first object still
/// progressing, else healthy.
pub fn combine<I: IntoIterator<Item = Health>>(healths: I) -> Health {
    let mut progressing = None;
    for health in healths {
        match health {
            Health::Failed(_) => return health,
            Health::Progressing(_) if progressing.is_none() => progressing = Some(health),
            _ => {}
        }
    }
    progressing.unwrap_or(Health::Healthy)
}

/// Assesses a live object.
pub fn assess(object: &Value) -> Health {
    let kind = str_at(object, "/kind").unwrap_or_default();
    let api_version = str_at(object, "/apiVersion").unwrap_or_default();
    let name = str_at(object, "/metadata/name").unwrap_or_default();
    let id = format!("{kind}/{name}");
    if object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return Health::Progressing(format!("{id} is being deleted"));
    }
    match (api_version, kind) {
        ("apps/v1", "Deployment") => deployment(object, &id),
        ("apps/v1", "StatefulSet") => stateful_set(object, &id),
        ("apps/v1", "DaemonSet") => daemon_set(object, &id),
        ("batch/v1", "Job") => job(object, &id),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => crd(object, &id),
        ("v1", "Pod") => pod(object, &id),
        ("v1", "PersistentVolumeClaim") => pvc(object, &id),
        ("v1", "Service") if str_at(object, "/spec/type") == Some("LoadBalancer") => {
            load_balancer(object, &id)
        }
        _ => generic(object, &id),
    }
}

fn str_at<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

fn int_at(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

/// The condition of a type, if present.
fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

fn condition_is(object: &Value, type_: &str, status: &str) -> bool {
    condition(object, type_)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some(status)
}

fn condition_reason<'a>(object: &'a Value, type_: &str) -> Option<&'a str> {
    condition(object, type_)
        .and_then(|c| c.get("reason"))
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
}

/// `Some(message)` while the controller has not yet seen the current generation.
fn generation_pending(object: &Value, id: &str) -> Option<Health> {
    let generation = int_at(object, "/metadata/generation")?;
    let observed = int_at(object, "/status/observedGeneration").unwrap_or(0);
    (observed < generation).then(|| {
        Health::Progressing(format!(
            "{id} generation {generation} not yet observed by its controller"
        ))
    })
}

fn count(object: &Value, pointer: &str) -> i64 {
    int_at(object, pointer).unwrap_or(0)
}

fn deployment(o: &Value, id: &str) -> Health {
    if condition_is(o, "Progressing", "False")
        && condition_reason(o, "Progressing") == Some("ProgressDeadlineExceeded")
    {
        return Health::Failed(format!("{id} exceeded its progress deadline"));
    }
    if let Some(pending) = generation_pending(o, id) {
        return pending;
    }
    let desired = int_at(o, "/spec/replicas").unwrap_or(1);
    let updated = count(o, "/status/updatedReplicas");
    let available = count(o, "/status/availableReplicas");
    let ready = count(o, "/status/readyReplicas");
    let total = count(o, "/status/replicas");
    if updated < desired {
        return Health::Progressing(format!("{id} {updated}/{desired} updated"));
    }
    if total > updated {
        return Health::Progressing(format!(
            "{id} {} old replicas pending termination",
            total - updated
        ));
    }
    if available < desired {
        return Health::Progressing(format!("{id} {available}/{desired} available"));
    }
    if ready < desired {
        return Health::Progressing(format!("{id} {ready}/{desired} ready"));
    }
    Health::Healthy
}

fn stateful_set(o: &Value, id: &str) -> Health {
    if let Some(pending) = generation_pending(o, id) {
        return pending;
    }
    let desired = int_at(o, "/spec/replicas").unwrap_or(1);
    let ready = count(o, "/status/readyReplicas");
    let on_delete = str_at(o, "/spec/updateStrategy/type") == Some("OnDelete");
    if !on_delete {
        let partition = int_at(o, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0);
        let must_update = (desired - partition).max(0);
        let updated = count(o, "/status/updatedReplicas");
        if updated < must_update {
            return Health::Progressing(format!("{id} {updated}/{must_update} updated"));
        }
        if partition == 0 {
            let current = str_at(o, "/status/currentRevision");
            let update = str_at(o, "/status/updateRevision");
            if update.is_some() && current != update {
                return Health::Progressing(format!("{id} rolling out its update revision"));
            }
        }
    }
    if ready < desired {
        return Health::Progressing(format!("{id} {ready}/{desired} ready"));
    }
    // availableReplicas is reported since Kubernetes 1.22 (minReadySeconds).
    if let Some(available) = int_at(o, "/status/availableReplicas")
        && available < desired
    {
        return Health::Progressing(format!("{id} {available}/{desired} available"));
    }
    Health::Healthy
}

fn daemon_set(o: &Value, id: &str) -> Health {
    if let Some(pending) = generation_pending(o, id) {
        return pending;
    }
    let desired = count(o, "/status/desiredNumberScheduled");
    let on_delete = str_at(o, "/spec/updateStrategy/type") == Some("OnDelete");
    if !on_delete {
        let updated = count(o, "/status/updatedNumberScheduled");
        if updated < desired {
            return Health::Progressing(format!("{id} {updated}/{desired} updated"));
        }
    }
    let available = count(o, "/status/numberAvailable");
    if available < desired {
        return Health::Progressing(format!("{id} {available}/{desired} available"));
    }
    let ready = count(o, "/status/numberReady");
    if ready < desired {
        return Health::Progressing(format!("{id} {ready}/{desired} ready"));
    }
    Health::Healthy
}

fn job(o: &Value, id: &str) -> Health {
    if condition_is(o, "Complete", "True") {
        return Health::Healthy;
    }
    for type_ in ["Failed", "FailureTarget"] {
        if condition_is(o, type_, "True") {
            let reason = condition_reason(o, type_).unwrap_or("Failed");
            return Health::Failed(format!("{id} failed: {reason}{}", job_logs(o)));
        }
    }
    if condition_is(o, "Suspended", "True") {
        return Health::Progressing(format!("{id} is suspended"));
    }
    let completions = int_at(o, "/spec/completions").unwrap_or(1);
    let succeeded = count(o, "/status/succeeded");
    Health::Progressing(format!("{id} {succeeded}/{completions} completed"))
}

/// Where a failed Job's logs are, when its namespace is known (a live object): its pods
/// carry the `job-name` label, so `kubectl logs job/NAME` finds them.
fn job_logs(o: &Value) -> String {
    match (
        str_at(o, "/metadata/namespace"),
        str_at(o, "/metadata/name"),
    ) {
        (Some(namespace), Some(name)) => {
            format!(" (logs: kubectl logs -n {namespace} job/{name})")
        }
        _ => String::new(),
    }
}

fn crd(o: &Value, id: &str) -> Health {
    if condition_is(o, "NamesAccepted", "False") {
        let reason = condition_reason(o, "NamesAccepted").unwrap_or("NamesNotAccepted");
        return Health::Failed(format!("{id} names not accepted: {reason}"));
    }
    if condition_is(o, "Established", "True") {
        Health::Healthy
    } else {
        Health::Progressing(format!("{id} not yet established"))
    }
}

fn pod(o: &Value, id: &str) -> Health {
    match str_at(o, "/status/phase") {
        Some("Succeeded") => return Health::Healthy,
        Some("Failed") => {
            let reason = str_at(o, "/status/reason").unwrap_or("Failed");
            return Health::Failed(format!("{id} failed: {reason}"));
        }
        _ => {}
    }
    if condition_is(o, "Ready", "True") {
        return Health::Healthy;
    }
    match waiting_reason(o) {
        Some(reason) => Health::Progressing(format!("{id} not ready: {reason}")),
        None => Health::Progressing(format!("{id} not ready")),
    }
}

/// Why a container is waiting (`CrashLoopBackOff`, `ImagePullBackOff`), the most telling part
/// of a Pod's status.
fn waiting_reason(o: &Value) -> Option<&str> {
    ["/status/initContainerStatuses", "/status/containerStatuses"]
        .iter()
        .filter_map(|p| o.pointer(p).and_then(Value::as_array))
        .flatten()
        .find_map(|c| {
            c.pointer("/state/waiting/reason")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
        })
}

fn pvc(o: &Value, id: &str) -> Health {
    match str_at(o, "/status/phase") {
        Some("Bound") => Health::Healthy,
        Some("Lost") => Health::Failed(format!("{id} lost its volume")),
        Some(phase) => Health::Progressing(format!("{id} {phase}")),
        None => Health::Progressing(format!("{id} Pending")),
    }
}

fn load_balancer(o: &Value, id: &str) -> Health {
    let has_ingress = o
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .is_some_and(|i| !i.is_empty());
    if has_ingress {
        Health::Healthy
    } else {
        Health::Progressing(format!("{id} has no load balancer ingress yet"))
    }
}

fn generic(o: &Value, id: &str) -> Health {
    if condition_is(o, "Stalled", "True") {
        let reason = condition_reason(o, "Stalled").unwrap_or("Stalled");
        return Health::Failed(format!("{id} stalled: {reason}"));
    }
    let Some(ready) = condition(o, "Ready") else {
        return Health::Healthy;
    };
    let generation = int_at(o, "/metadata/generation");
    let observed = ready
        .get("observedGeneration")
        .and_then(Value::as_i64)
        .or_else(|| int_at(o, "/status/observedGeneration"));
    if let (Some(generation), Some(observed)) = (generation, observed)
        && observed < generation
    {
        return Health::Progressing(format!(
            "{id} generation {generation} not yet observed by its controller"
        ));
    }
    match ready.get("status").and_then(Value::as_str) {
        Some("True") => Health::Healthy,
        status => {
            let reason = ready
                .get("reason")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
                .unwrap_or(status.unwrap_or("Unknown"));
            Health::Progressing(format!("{id} not ready: {reason}"))
        }
    }
}

#[cfg(test)]
mod tests;
