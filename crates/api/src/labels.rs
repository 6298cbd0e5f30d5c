//! Labels and annotations the operators put on the objects they create, and read back: the
//! one list, so that the operator that writes a label and the one that reads it agree.

/// On a child HelmRelease of an UpstartService: the service's name.
pub const SERVICE_LABEL: &str = "upstartoperators.upstart.com/service";

/// On a child HelmRelease of an UpstartService: its key in `spec.helmReleases` (bounded with
/// [`crate::names::bounded_label`]).
pub const RELEASE_KEY_LABEL: &str = "upstartoperators.upstart.com/release-key";

/// On the namespace of an UpstartEnvironment, and on the UpstartServices and environment-wide
/// HelmReleases it creates: the environment's name. The HelmRelease operator reads it from the
/// namespace to offer `environment.*` in expressions.
pub const ENVIRONMENT_LABEL: &str = "upstartoperators.upstart.com/environment";

/// `"true"` on an UpstartEnvironment suspends its expiry (SPEC §4).
pub const KEEP_ANNOTATION: &str = "upstartoperators.upstart.com/keep";

/// On an UpstartEnvironment: who asked for it (`upstart env create` sets it from the
/// kubeconfig's user); the operator copies it to `status.requester`.
pub const REQUESTER_ANNOTATION: &str = "upstartoperators.upstart.com/requester";

/// `"true"` on a HelmRelease whose environment sleeps (the environment operator sets and
/// removes it): the HelmRelease operator applies its Deployments and StatefulSets with zero
/// replicas, and puts the rendered replicas back once it is gone.
pub const ASLEEP_ANNOTATION: &str = "upstartoperators.upstart.com/asleep";

/// On an UpstartService an environment copied from a catalog template: the template's name.
pub const TEMPLATE_ANNOTATION: &str = "upstartoperators.upstart.com/template";

/// On an UpstartService an environment copied from a catalog template: the revision copied
/// (the `sha256:` digest of the template's spec).
pub const TEMPLATE_REVISION_ANNOTATION: &str = "upstartoperators.upstart.com/template-revision";

/// On an UpstartService an environment copied from a catalog template: the template's spec as
/// copied (JSON, before the environment's overrides), the copy a `pinned` environment keeps
/// and the last good copy kept while the catalog's revision is invalid.
pub const TEMPLATE_SPEC_ANNOTATION: &str = "upstartoperators.upstart.com/template-spec";

/// `app.kubernetes.io/managed-by`, set to [`MANAGED_BY_VALUE`] on everything the operators create.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "upstart";
