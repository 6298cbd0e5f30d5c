//! Names the UpstartEnvironment operator writes: field manager, finalizer, condition types and
//! reasons.

/// Server-side apply field manager for status and for every object the operator applies.
pub const FIELD_MANAGER: &str = "upstart-upstartenvironment";
/// Finalizer that runs the teardown of an environment (SPEC §4).
pub const FINALIZER: &str = "upstartoperators.upstart.com/upstartenvironment";
/// Name of the controller in metrics, logs and Events.
pub const CONTROLLER: &str = "upstartenvironment";

/// Condition type: the environment's namespace exists and belongs to it.
pub const NAMESPACE_READY: &str = "NamespaceReady";
/// Condition type: every service copied from a catalog template runs the template's current
/// revision (False: pinned to an earlier one, or the catalog's is invalid and the last good
/// copy runs).
pub const TEMPLATES_UP_TO_DATE: &str = "TemplatesUpToDate";

/// Condition reasons and Event reasons (bounded: they are also metric labels).
pub mod reasons {
    pub const PROVISIONING: &str = "Provisioning";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const DEGRADED: &str = "Degraded";
    pub const FAILED: &str = "ReleaseFailed";
    pub const RECONCILED: &str = "Reconciled";
    pub const NAMESPACE_CREATED: &str = "NamespaceCreated";
    pub const NAMESPACE_NOT_OWNED: &str = "NamespaceNotOwned";
    pub const NAMESPACE_TERMINATING: &str = "NamespaceTerminating";
    pub const TEMPLATE_NOT_FOUND: &str = "TemplateNotFound";
    /// A catalog template fails validation: it is not copied.
    pub const TEMPLATE_INVALID: &str = "TemplateInvalid";
    /// A service runs an earlier revision of its template (`templateUpdates: pinned`).
    pub const TEMPLATE_PINNED: &str = "TemplatePinned";
    /// Every service runs its template's current revision.
    pub const TEMPLATES_CURRENT: &str = "TemplatesCurrent";
    /// A dependency names nothing the environment has (and the closure does not add it).
    pub const MISSING_DEPENDENCY: &str = "MissingDependency";
    /// The closure added a service the listed ones depend on (an Event).
    pub const SERVICE_ADDED: &str = "ServiceAdded";
    pub const UNKNOWN_OVERRIDE_KEY: &str = "UnknownOverrideKey";
    pub const INVALID_OVERRIDE: &str = "InvalidOverride";
    pub const EXPIRED: &str = "Expired";
    pub const DELETING: &str = "Deleting";
    pub const TEARDOWN_TIMEOUT: &str = "TeardownTimeout";
    /// A disabled or removed service (or environment release) stays: others depend on it.
    pub const STILL_DEPENDED_ON: &str = "StillDependedOn";

    /// The environment sleeps (`spec.sleep`): its workloads are scaled to zero.
    pub const SLEEPING: &str = "Sleeping";
    /// `spec.sleep` holds a cron expression or time zone that cannot be read.
    pub const INVALID_SLEEP_SCHEDULE: &str = "InvalidSleepSchedule";
    /// Refused: the operator's cap on environments (in total or per requester) is reached.
    pub const CAP_REACHED: &str = "CapReached";
    /// Refused: `spec.quota` asks for more than the operator's maximum.
    pub const QUOTA_ABOVE_MAXIMUM: &str = "QuotaAboveMaximum";
    /// A refused environment was admitted: there is room now (an Event).
    pub const ADMITTED: &str = "Admitted";

    // Failures (`crate::Error::reason`).
    pub const KUBERNETES_API_ERROR: &str = "KubernetesApiError";
    pub const SERIALIZE_FAILED: &str = "SerializeFailed";
    pub const MISSING_UID: &str = "MissingUid";
    pub const FINALIZER_FAILED: &str = "FinalizerFailed";
    pub const INVALID_CONFIGURATION: &str = "InvalidConfiguration";
}
