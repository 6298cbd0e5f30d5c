//! Names the UpstartService operator writes: field manager, controller name, condition types
//! and reasons.

/// Server-side apply field manager for status and for every child HelmRelease.
pub const FIELD_MANAGER: &str = "upstart-upstartservice";
/// Name of the controller in metrics, logs and Events.
pub const CONTROLLER: &str = "upstartservice";
/// Condition: every dependency name of every release resolved to something of the namespace.
pub const DEPENDENCIES_RESOLVED: &str = "DependenciesResolved";

/// Condition reasons (bounded: they are also Event reasons).
pub mod reasons {
    pub const SUCCEEDED: &str = "Succeeded";
    pub const PROGRESSING: &str = "Progressing";
    pub const RESOLVED: &str = "Resolved";
    pub const UNKNOWN_DEPENDENCY: &str = "UnknownDependency";
    pub const AMBIGUOUS_DEPENDENCY: &str = "AmbiguousDependency";
    pub const DEPENDENCY_CYCLE: &str = "DependencyCycle";
    pub const RELEASE_NAME_CONFLICT: &str = "ReleaseNameConflict";
    pub const NAME_CONFLICT: &str = "NameConflict";
    pub const RELEASE_FAILED: &str = "ReleaseFailed";
    pub const APPLY_FAILED: &str = "ApplyFailed";
    pub const RECONCILED: &str = "Reconciled";
    pub const TEMPLATE_VALID: &str = "TemplateValid";
    pub const TEMPLATE_INVALID: &str = "TemplateInvalid";
    pub const TEMPLATE: &str = "Template";
    pub const DELETING: &str = "Deleting";
}
