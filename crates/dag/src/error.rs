//! The one error type of this crate: every failure site has its variant, and every variant says
//! whether only a spec change can fix it, or whether waiting will.
//!
//! No variant holds an output value, a values document or any other user data beyond names,
//! keys, paths and the expression text itself (which is spec, not data).

use std::fmt;

/// Where an expression is: the JSON path of its string, its text and its column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// JSON path of the string holding the expression (`spec.values.global.env.URL`).
    pub path: String,
    /// The expression text, between `<<` and `>>`, trimmed.
    pub expression: String,
    /// 1-based character column of `<<` in the string.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "<< {} >> at column {}", self.expression, self.column)
    }
}

/// Everything that can go wrong while ordering releases, collecting outputs, merging values or
/// substituting expressions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A dependency names nothing in the namespace (yet). The release waits: the dependency may
    /// be created later.
    #[error("{release}: dependency {name} matches no release key, UpstartService or HelmRelease{}", kind_hint(.kind))]
    UnknownDependency {
        /// The release (as users know it) that declares the dependency.
        release: String,
        /// The dependency name as written.
        name: String,
        /// The `kind` given, if any.
        kind: Option<&'static str>,
    },

    /// An `EnvironmentRelease` dependency whose environment-wide release does not exist (yet).
    /// The release waits, like for any unknown dependency.
    #[error(
        "{release}: dependency {key} (kind EnvironmentRelease) is the HelmRelease {object}, which does not exist: declare {key} in the environment's helmReleases (outside an environment, apply a HelmRelease named {object})"
    )]
    UnknownEnvironmentRelease {
        /// The release (as users know it) that declares the dependency.
        release: String,
        /// The environment release key as written.
        key: String,
        /// The HelmRelease it resolved to.
        object: String,
    },

    /// A dependency name matches both an UpstartService and a HelmRelease and has no `kind`.
    #[error(
        "{release}: dependency {name} is ambiguous: an UpstartService and a HelmRelease are both named {name}; set kind"
    )]
    AmbiguousDependency {
        /// The release that declares the dependency.
        release: String,
        /// The dependency name as written.
        name: String,
    },

    /// Two objects would be the same node of the graph (for instance a standalone HelmRelease
    /// named like a service's child).
    #[error("{kind} {name} is declared twice: by {first} and by {second}")]
    NameConflict {
        /// `HelmRelease` or `UpstartService`.
        kind: &'static str,
        /// The object name both would have.
        name: String,
        /// Who declared it first (as users know it).
        first: String,
        /// Who declared it again.
        second: String,
    },

    /// A dependency cycle; nothing on it can ever be installed.
    #[error("dependency cycle: {}", .path.join(" -> "))]
    Cycle {
        /// The cycle as users know the names, first name repeated at the end: `a -> b -> a`.
        path: Vec<String>,
    },

    /// Two dependencies of one release use the same alias.
    #[error(
        "{release}: two dependencies are named {alias} in expressions; give one of them another `as`"
    )]
    DuplicateAlias {
        /// The release.
        release: String,
        /// The alias used twice.
        alias: String,
    },

    /// A dependency alias that would hide a built-in expression root.
    #[error(
        "{release}: dependency alias {alias} is reserved (environment, service and release are expression roots); set `as`"
    )]
    ReservedAlias {
        /// The release.
        release: String,
        /// The reserved name.
        alias: String,
    },

    /// An `outputsFrom` entry names neither a Secret nor a ConfigMap.
    #[error("outputsFrom entry {index} names neither a secretRef nor a configMapRef")]
    EmptyOutputSource {
        /// Position in `outputsFrom`.
        index: usize,
    },

    /// An output value is not UTF-8 text (values documents are text).
    #[error("{origin}: the value of key {key} is not valid UTF-8 text")]
    OutputNotUtf8 {
        /// `Secret/NAME` or `ConfigMap/NAME`.
        origin: String,
        /// The offending key (the bytes are never shown).
        key: String,
    },

    /// The same output key is published by two `outputsFrom` entries.
    #[error("output key {key} is published by both {first} and {second}")]
    DuplicateOutputKey {
        /// The key.
        key: String,
        /// The first source.
        first: String,
        /// The second source.
        second: String,
    },

    /// A `valuesFrom` document is not a mapping.
    #[error("{origin}: a values document must be a mapping, found {found}")]
    ValuesNotAMap {
        /// Where the document came from.
        origin: String,
        /// The JSON type found instead (`list`, `string`, ...).
        found: &'static str,
    },

    /// An expression that does not parse, or is not one path or helper call.
    #[error("{}: syntax error: {reason}", .at)]
    ExpressionSyntax {
        /// Where the expression is.
        at: Box<Location>,
        /// What is wrong.
        reason: String,
    },

    /// An expression whose first name is neither a declared dependency nor a built-in root.
    #[error("{}: unknown name {root} (known: {})", .at, list(.known))]
    UnknownRoot {
        /// Where the expression is.
        at: Box<Location>,
        /// The unknown first name.
        root: String,
        /// The names that would be accepted.
        known: Vec<String>,
    },

    /// An expression that names a known root in a shape that has no value (`postgres.PORT`,
    /// `environment.foo`), or calls an unknown helper.
    #[error("{}: {reason}", .at)]
    InvalidReference {
        /// Where the expression is.
        at: Box<Location>,
        /// What is wrong, naming the accepted shapes.
        reason: String,
    },

    /// An `environment.variables.KEY` that the environment does not define.
    #[error("{}: environment variable {name} is not defined (defined: {})", .at, list(.defined))]
    UnknownVariable {
        /// Where the expression is.
        at: Box<Location>,
        /// The variable.
        name: String,
        /// The variables that exist.
        defined: Vec<String>,
    },

    /// Output keys the expression needs that the dependency does not publish (yet): a wait.
    #[error("{}: {} of {alias} {} missing (it has: {})", .at, missing_keys(.missing), if .missing.len() == 1 { "is" } else { "are" }, list(.present))]
    MissingOutput {
        /// Where the expression is.
        at: Box<Location>,
        /// The dependency alias.
        alias: String,
        /// The keys that are missing.
        missing: Vec<String>,
        /// The keys the dependency does publish (names only).
        present: Vec<String>,
    },

    /// A helper failed on the data it was given (e.g. `b64dec` of text that is not base64).
    #[error("{}: {reason}", .at)]
    Evaluation {
        /// Where the expression is.
        at: Box<Location>,
        /// What failed; never the data.
        reason: String,
    },

    /// The expressions of a document write more than the cap: many references to a large
    /// output would otherwise build a document of gigabytes in the operator's memory.
    #[error(
        "{release}: the expressions of {path} write more than {limit} bytes of output values; reference large outputs fewer times or make them smaller"
    )]
    SubstitutionTooLarge {
        /// The release (`namespace/name`).
        release: String,
        /// The document (`spec.values`).
        path: String,
        /// The cap, in bytes.
        limit: usize,
    },
}

impl Error {
    /// Only a change of the spec (YAML) can fix this: retrying is pointless.
    pub fn is_spec_error(&self) -> bool {
        matches!(
            self,
            Error::AmbiguousDependency { .. }
                | Error::NameConflict { .. }
                | Error::Cycle { .. }
                | Error::DuplicateAlias { .. }
                | Error::ReservedAlias { .. }
                | Error::EmptyOutputSource { .. }
                | Error::DuplicateOutputKey { .. }
                | Error::ExpressionSyntax { .. }
                | Error::UnknownRoot { .. }
                | Error::InvalidReference { .. }
                | Error::UnknownVariable { .. }
                | Error::SubstitutionTooLarge { .. }
        )
    }

    /// Not a failure: something this release needs does not exist yet (a dependency, an output
    /// key). Wait for it to appear; watch events will wake the release.
    pub fn is_wait(&self) -> bool {
        matches!(
            self,
            Error::UnknownDependency { .. }
                | Error::UnknownEnvironmentRelease { .. }
                | Error::MissingOutput { .. }
        )
    }

    /// Where the expression is, for expression errors.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Error::ExpressionSyntax { at, .. }
            | Error::UnknownRoot { at, .. }
            | Error::InvalidReference { at, .. }
            | Error::UnknownVariable { at, .. }
            | Error::MissingOutput { at, .. }
            | Error::Evaluation { at, .. } => Some(at),
            _ => None,
        }
    }

    /// A short, bounded label for metrics and condition reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::UnknownDependency { .. } | Error::UnknownEnvironmentRelease { .. } => {
                "UnknownDependency"
            }
            Error::AmbiguousDependency { .. } => "AmbiguousDependency",
            Error::NameConflict { .. } => "NameConflict",
            Error::Cycle { .. } => "DependencyCycle",
            Error::DuplicateAlias { .. } => "DuplicateAlias",
            Error::ReservedAlias { .. } => "ReservedAlias",
            Error::EmptyOutputSource { .. } => "InvalidOutputSource",
            Error::OutputNotUtf8 { .. } => "OutputNotUtf8",
            Error::DuplicateOutputKey { .. } => "DuplicateOutputKey",
            Error::ValuesNotAMap { .. } => "InvalidValuesDocument",
            Error::ExpressionSyntax { .. } => "ExpressionSyntax",
            Error::UnknownRoot { .. } => "UnknownExpressionRoot",
            Error::InvalidReference { .. } => "InvalidExpressionReference",
            Error::UnknownVariable { .. } => "UnknownVariable",
            Error::MissingOutput { .. } => "MissingOutput",
            Error::Evaluation { .. } => "ExpressionEvaluation",
            Error::SubstitutionTooLarge { .. } => "SubstitutionTooLarge",
        }
    }
}

fn kind_hint(kind: &Option<&'static str>) -> String {
    kind.map(|k| format!(" (kind {k})")).unwrap_or_default()
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".to_owned()
    } else {
        names.join(", ")
    }
}

fn missing_keys(keys: &[String]) -> String {
    if keys.len() == 1 {
        format!("output key {}", keys[0])
    } else {
        format!("output keys {}", keys.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_stays_small_enough_to_return_by_value() {
        // Callers wrap it in their own error enums; clippy flags results over 128 bytes.
        assert!(
            std::mem::size_of::<Error>() < 128,
            "{}",
            std::mem::size_of::<Error>()
        );
    }

    #[test]
    fn the_engine_and_errors_can_be_shared_across_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Error>();
        shared::<crate::Expressions>();
        shared::<crate::DependencyGraph>();
    }
}
