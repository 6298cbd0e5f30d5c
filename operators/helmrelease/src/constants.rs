//! Names the HelmRelease operator writes: field manager, finalizer, condition reasons.

/// Server-side apply field manager for status and for every applied object (SPEC §2.5).
pub const FIELD_MANAGER: &str = "upstart-helmrelease";
/// Finalizer that runs the teardown of a release (SPEC §2.8).
pub const FINALIZER: &str = "upstartoperators.upstart.com/helmrelease";
/// On a hook object: the applied digest of the run that created it, so that a pass after a
/// restart recognises a hook it already ran ("retired" once it ended without success).
pub const HOOK_RUN_ANNOTATION: &str = "upstartoperators.upstart.com/hook-run";
/// On a HelmRelease: the digest of the chart archive its chart reference now serves, set by a
/// tool that knows a chart changed in place (same version, new content), as `upstart dev` does
/// for its `--charts` directory. An input of the release like its values: a new value upgrades
/// the release, which fetches the chart again and renders the new content.
pub const CHART_DIGEST_ANNOTATION: &str = "upstartoperators.upstart.com/chart-digest";
/// Name of the controller in metrics and logs.
pub const CONTROLLER: &str = "helmrelease";

/// Condition reasons (bounded: they are also metric labels).
pub mod reasons {
    pub const SUSPENDED: &str = "Suspended";
    pub const DEPENDENCIES_NOT_READY: &str = "DependenciesNotReady";
    pub const DEPENDENCIES_READY: &str = "DependenciesReady";
    pub const MISSING_OUTPUTS: &str = "MissingOutputs";
    pub const APPLYING: &str = "Applying";
    pub const PROGRESSING: &str = "Progressing";
    pub const HEALTH_CHECK_FAILED: &str = "HealthCheckFailed";
    pub const OUTPUTS_NOT_PUBLISHED: &str = "OutputsNotPublished";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const RECONCILED: &str = "Reconciled";
    pub const DELETING: &str = "Deleting";
    pub const UNRESOLVED_ENVIRONMENT_RELEASE: &str = "UnresolvedEnvironmentRelease";
    /// An object left in place at deletion or prune by `helm.sh/resource-policy: keep`.
    pub const RESOURCE_KEPT: &str = "ResourceKept";
    /// RepositoryReachable=False: the chart repository is down, the chart fetched last time
    /// is served from the cache.
    pub const REPOSITORY_UNAVAILABLE: &str = "RepositoryUnavailable";
    /// RepositoryReachable=False: the git branch or tag of the chart reference no longer
    /// exists; the chart fetched last time is kept.
    pub const GIT_REF_NOT_FOUND: &str = "GitRefNotFound";
    /// RepositoryReachable=True again after an outage.
    pub const REPOSITORY_REACHABLE: &str = "RepositoryReachable";

    // Failures (`crate::Error::reason`).
    pub const KUBERNETES_API_ERROR: &str = "KubernetesApiError";
    pub const DISCOVERY_FAILED: &str = "DiscoveryFailed";
    pub const NOT_NAMESPACED: &str = "NotNamespaced";
    pub const CHART_FETCH_FAILED: &str = "ChartFetchFailed";
    /// An `imageDigest` image on a registry the chart repository configuration does not allow.
    pub const IMAGE_DIGEST_REFUSED: &str = "ImageDigestRefused";
    pub const OWNERSHIP_CONFLICT: &str = "OwnershipConflict";
    pub const FOREIGN_NAMESPACE: &str = "ForeignNamespace";
    pub const CLUSTER_SCOPED_NOT_ALLOWED: &str = "ClusterScopedNotAllowed";
    pub const RENDER_FAILED: &str = "RenderFailed";
    pub const UNKNOWN_KIND: &str = "UnknownKind";
    pub const HOOK_FAILED: &str = "HookFailed";
    pub const HOOK_TIMEOUT: &str = "HookTimeout";
    pub const CRD_NOT_ESTABLISHED: &str = "CrdNotEstablished";
    pub const FINALIZER_FAILED: &str = "FinalizerFailed";
    pub const INVALID_CONFIGURATION: &str = "InvalidConfiguration";

    // Deletion Events.
    pub const TEARDOWN_TIMEOUT: &str = "TeardownTimeout";
    pub const DELETE_HOOKS_SKIPPED: &str = "DeleteHooksSkipped";
    /// An object the operator may not delete (403), left in place at prune or teardown.
    pub const DELETE_FORBIDDEN: &str = "DeleteForbidden";
    /// An object whose deletion kept failing past the teardown timeout, left in place.
    pub const OBJECT_LEFT_BEHIND: &str = "ObjectLeftBehind";
}
