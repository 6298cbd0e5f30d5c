//! Stands in for kubelet and the built-in controllers on a control plane that has neither.
//!
//! The simulator watches workload objects through any [`kube::Client`] (the in-process control
//! plane, or anything else that serves the API) and, after a delay, writes the status the real
//! controllers would write, through the `/status` subresource with server-side apply under the
//! field manager [`FIELD_MANAGER`]. It creates no Pods or ReplicaSets: a Deployment's status
//! reports its replicas as if they existed.
//!
//! | kind | before the delay | after the delay | failing (after the delay) |
//! | --- | --- | --- | --- |
//! | Deployment | `replicas`/`updatedReplicas` = desired, 0 ready; `Available=False` (`MinimumReplicasUnavailable`), `Progressing=True` (`ReplicaSetUpdated`) | all counts = desired; `Available=True` (`MinimumReplicasAvailable`), `Progressing=True` (`NewReplicaSetAvailable`) | `Progressing=False` (`ProgressDeadlineExceeded`) |
//! | ReplicaSet | 0 ready | ready = available = desired | stays at 0 ready |
//! | StatefulSet | 0 ready; `updateRevision` = `NAME-<template hash>` | ready = current = updated = available = desired; `currentRevision` = `updateRevision` | stays at 0 ready |
//! | DaemonSet (one node) | `desiredNumberScheduled` 1, `numberReady` 0 | ready = updated = available = 1 | `numberUnavailable` 1 |
//! | Job | `active`, `startTime` | `succeeded` = completions, `completionTime`, `SuccessCriteriaMet` + `Complete` | `failed` = backoffLimit + 1, `FailureTarget` + `Failed` (`BackoffLimitExceeded`) |
//! | Pod, `restartPolicy: Always` | `Pending` | `Running`, `Ready=True` | `Running`, container in `CrashLoopBackOff`, `Ready=False` |
//! | Pod, `Never`/`OnFailure` | `Pending` | `Succeeded` (exit code 0) | `Failed` (exit code 1) |
//! | PersistentVolumeClaim | `Pending` | `Bound`, capacity = requested storage | stays `Pending` |
//! | Service `type: LoadBalancer` | no ingress | `status.loadBalancer.ingress[0].ip` in `127.0.0.0/8` | no ingress |
//!
//! Every `observedGeneration` follows the object's generation, and a new generation (a spec
//! change) starts the delay again: the object goes back to not-ready, then to ready. The delay
//! runs from the moment the simulator first sees a generation (it keeps that in memory). A
//! state reached for a generation is kept: the simulator does not move a ready object back to
//! not-ready after a restart, and a finished Job or Pod, a Bound claim or a Service with an
//! ingress is never touched again. Suspended Jobs are left alone.
//!
//! # Annotations
//!
//! Read on the object itself and, for Deployments, ReplicaSets, StatefulSets, DaemonSets and
//! Jobs, on the pod template (`spec.template.metadata.annotations`, which charts usually let
//! users set); the object's own annotation wins.
//!
//! - [`READY_AFTER`] (`simulator.upstart.dev/ready-after`): the delay for this object, as a
//!   duration such as `2s`, `500ms` or `0s`. Overrides [`Options::ready_after`].
//! - [`FAIL`] (`simulator.upstart.dev/fail`): `"true"` makes this object fail, `"false"`
//!   makes it succeed even when [`Options::fail`] is set.
//! - [`ON_COMPLETE`] (`simulator.upstart.dev/on-complete`), Jobs only: objects that appear
//!   when the Job completes successfully, standing in for what its container would create in a
//!   real cluster (an API key published to a Secret, say). A YAML or JSON list of manifests (a
//!   single manifest is accepted too). They are created in the Job's namespace with
//!   server-side apply (field manager [`FIELD_MANAGER`]) just before the Job is marked
//!   `Complete`, so whoever sees `Complete` finds them. An annotation that does not parse fails
//!   the Job with reason `InvalidOnCompleteAnnotation`.
//!
//! ```yaml
//! apiVersion: batch/v1
//! kind: Job
//! metadata:
//!   name: publish-key
//!   annotations:
//!     simulator.upstart.dev/ready-after: 3s
//!     simulator.upstart.dev/on-complete: |
//!       - apiVersion: v1
//!         kind: Secret
//!         metadata: {name: api-key}
//!         stringData: {key: generated}
//! ```
//!
//! The status of each kind is computed by a pure function in [`status`] from the object, the
//! time elapsed since its generation was first seen and the [`Settings`]; [`Simulator`] is the
//! thin controller part that observes, calls them, and writes.

mod controller;
pub mod settings;
pub mod status;

pub use controller::{RunningSimulator, SHUTDOWN_GRACE, Simulator};
pub use settings::{FAIL, ON_COMPLETE, READY_AFTER, Settings};

use std::time::Duration;

/// The field manager of every write the simulator makes.
pub const FIELD_MANAGER: &str = "upstart-simulator";

/// Global behaviour, which annotations override per object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// How long after a generation is first seen its workload becomes ready (or fails).
    pub ready_after: Duration,
    /// Make every workload fail instead of becoming ready.
    pub fail: bool,
}

/// Everything that can go wrong while simulating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing the status of {kind} {namespace}/{name}: {source}")]
    WriteStatus {
        kind: String,
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("Job {namespace}/{name}: on-complete object {index} has no apiVersion/kind/name")]
    IncompleteManifest {
        namespace: String,
        name: String,
        index: usize,
    },
    #[error("Job {namespace}/{name}: looking up {api_version} {kind}: {source}")]
    Discovery {
        namespace: String,
        name: String,
        api_version: String,
        kind: String,
        source: kube::Error,
    },
    #[error("Job {namespace}/{name}: applying on-complete {kind} {object}: {source}")]
    ApplyOnComplete {
        namespace: String,
        name: String,
        kind: String,
        object: String,
        source: kube::Error,
    },
}

impl Error {
    /// A short, bounded label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::WriteStatus { .. } => "write_status",
            Error::IncompleteManifest { .. } => "incomplete_manifest",
            Error::Discovery { .. } => "discovery",
            Error::ApplyOnComplete { .. } => "apply_on_complete",
        }
    }
}
