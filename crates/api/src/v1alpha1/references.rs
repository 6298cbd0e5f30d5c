//! What a release references: values documents, dependencies and the outputs it publishes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validation::{CONFIG_KEY, DEPENDENCY_NAME, DNS1123_SUBDOMAIN, RELEASE_KEY};
use crate::names::environment_release_name;

/// A `valuesFrom` entry: exactly one of `secretRef` or `configMapRef`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.secretRef) != has(self.configMapRef)",
    "message": "exactly one of secretRef or configMapRef must be set"
}]))]
pub struct ValuesReference {
    /// A Secret of the release's namespace holding a values document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<KeyReference>,
    /// A ConfigMap of the release's namespace holding a values document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<KeyReference>,
}

impl ValuesReference {
    /// The reference, whichever kind it is.
    pub fn reference(&self) -> Option<&KeyReference> {
        self.secret_ref.as_ref().or(self.config_map_ref.as_ref())
    }
}

/// A key of a Secret or ConfigMap in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyReference {
    /// Object name.
    #[schemars(pattern(DNS1123_SUBDOMAIN), length(min = 1, max = 253))]
    pub name: String,
    /// The key holding the YAML document. Default `values.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(CONFIG_KEY), length(max = 253))]
    pub key: Option<String>,
    /// A missing object or key is skipped instead of waited for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

impl KeyReference {
    /// The key read when `key` is not set.
    pub const DEFAULT_KEY: &'static str = "values.yaml";

    /// The key to read.
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or(Self::DEFAULT_KEY)
    }
}

/// A dependency: something of the same namespace that must be Ready first, and whose outputs
/// this release can read as `<< ALIAS.outputs.KEY >>`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    /// A sibling release key (in an UpstartService), or a HelmRelease or UpstartService of the
    /// namespace; with `kind: EnvironmentRelease`, the key of an environment-wide release.
    #[schemars(pattern(DEPENDENCY_NAME), length(min = 1, max = 253))]
    pub name: String,
    /// Which kind `name` is. Default: whichever exists (both: ambiguous, set `kind`).
    /// `EnvironmentRelease`: the environment-wide release of that key of whichever environment
    /// the service runs in (`<environment>-<key>`; outside an environment, the HelmRelease
    /// named `<key>`), so a catalog template works in every environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<DependencyKind>,
    /// The name used in expressions. Default: `name`.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(RELEASE_KEY), length(max = 253))]
    pub alias: Option<String>,
}

impl Dependency {
    /// The name expressions use for this dependency.
    pub fn alias(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }

    /// This dependency with an `EnvironmentRelease` made concrete for `environment` (see
    /// [`environment_release_name`]): the HelmRelease it means, with the key kept as the alias
    /// so expressions need no change. Other dependencies are returned unchanged.
    pub fn in_environment(&self, environment: Option<&str>) -> Dependency {
        if self.kind != Some(DependencyKind::EnvironmentRelease) {
            return self.clone();
        }
        Dependency {
            name: environment_release_name(environment, &self.name),
            kind: Some(DependencyKind::HelmRelease),
            alias: Some(self.alias().to_owned()),
        }
    }
}

/// The kinds a dependency can be.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum DependencyKind {
    HelmRelease,
    UpstartService,
    // An environment-wide release, by its key (documented on `Dependency::kind`: a doc comment
    // here would turn the schema into one description per variant and drop the field's).
    EnvironmentRelease,
}

/// An `outputsFrom` entry: a Secret or ConfigMap whose keys become the release's outputs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.secretRef) != has(self.configMapRef)",
    "message": "exactly one of secretRef or configMapRef must be set"
}]))]
pub struct OutputSource {
    /// A Secret of the release's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<ObjectReference>,
    /// A ConfigMap of the release's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ObjectReference>,
    /// Only these keys (default: all keys); listed keys must exist for the release to be Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        extend("x-kubernetes-list-type" = "set"),
        inner(pattern(CONFIG_KEY), length(min = 1, max = 253))
    )]
    pub keys: Option<Vec<String>>,
    /// A missing object does not hold the release back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// `internal` (default): for dependents that name this release; `external`: also exported
    /// by the owning UpstartService.
    #[serde(default, skip_serializing_if = "OutputScope::is_internal")]
    pub scope: OutputScope,
}

impl OutputSource {
    /// The referenced object, whichever kind it is.
    pub fn reference(&self) -> Option<&ObjectReference> {
        self.secret_ref.as_ref().or(self.config_map_ref.as_ref())
    }
}

/// A Secret or ConfigMap of the same namespace, by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ObjectReference {
    /// Object name.
    #[schemars(pattern(DNS1123_SUBDOMAIN), length(min = 1, max = 253))]
    pub name: String,
}

/// Who may read an output.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputScope {
    /// Dependents that name this release.
    #[default]
    Internal,
    /// Also exported by the owning UpstartService to whoever depends on the service.
    External,
}

impl OutputScope {
    /// `true` for the default scope.
    pub fn is_internal(&self) -> bool {
        *self == OutputScope::Internal
    }
}
