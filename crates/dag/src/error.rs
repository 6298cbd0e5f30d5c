//! The one error type of this crate: every failure site has its variant, and every variant says
//! whether only a spec change can fix it, or whether waiting will.
//!
//! No variant holds an output value, a values document or any other user data beyond names,
//! keys, paths and the expression text itself (which is spec, not data).

use std::fmt;

/// The condition reasons of this crate's failures, as constants (compared by name, never as
/// string literals).
pub mod reasons {
    /// A dependency names nothing that exists (yet).
    pub const UNKNOWN_DEPENDENCY: &str = "UnknownDependency";
    /// A dependency names both a HelmRelease and an UpstartService: set its kind.
    pub const AMBIGUOUS_DEPENDENCY: &str = "AmbiguousDependency";
    /// Two releases would share a `.Release.Name` or an object.
    pub const NAME_CONFLICT: &str = "NameConflict";
    /// The dependency graph has a cycle.
    pub const DEPENDENCY_CYCLE: &str = "DependencyCycle";
    /// Two dependencies use the same alias.
    pub const DUPLICATE_ALIAS: &str = "DuplicateAlias";
    /// A dependency alias is a reserved expression root.
    pub const RESERVED_ALIAS: &str = "ReservedAlias";
    /// An `outputsFrom` entry names no Secret nor ConfigMap.
    pub const INVALID_OUTPUT_SOURCE: &str = "InvalidOutputSource";
    /// An output value is not UTF-8.
    pub const OUTPUT_NOT_UTF8: &str = "OutputNotUtf8";
    /// Two output sources publish the same key.
    pub const DUPLICATE_OUTPUT_KEY: &str = "DuplicateOutputKey";
    /// A values document is not a map.
    pub const INVALID_VALUES_DOCUMENT: &str = "InvalidValuesDocument";
    /// An expression does not parse.
    pub const EXPRESSION_SYNTAX: &str = "ExpressionSyntax";
    /// An expression names a root that is not a declared dependency.
    pub const UNKNOWN_EXPRESSION_ROOT: &str = "UnknownExpressionRoot";
    /// An expression's path is not `ALIAS.outputs.KEY` or a known field.
    pub const INVALID_EXPRESSION_REFERENCE: &str = "InvalidExpressionReference";
    /// An expression names an environment variable the environment does not set.
    pub const UNKNOWN_VARIABLE: &str = "UnknownVariable";
    /// An output key does not exist yet (a wait).
    pub const MISSING_OUTPUT: &str = "MissingOutput";
    /// An `imageDigest` image has not been resolved to its digest yet (a wait).
    pub const IMAGE_DIGEST_UNRESOLVED: &str = "ImageDigestUnresolved";
    /// A helper failed on the values it was given.
    pub const EXPRESSION_EVALUATION: &str = "ExpressionEvaluation";
    /// Substitution would produce more than the output cap.
    pub const SUBSTITUTION_TOO_LARGE: &str = "SubstitutionTooLarge";
    /// An `enabled` is neither a bool nor a string that reads `true` or `false`.
    pub const INVALID_SWITCH: &str = "InvalidSwitch";
    /// A release depends on a release, job or service that `enabled` leaves out.
    pub const DEPENDS_ON_DISABLED: &str = "DependsOnDisabled";
}

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

    /// An `imageDigest` image the caller has not resolved (yet): a wait.
    #[error("{}: image {image} is not resolved to a digest yet", .at)]
    ImageNotResolved {
        /// Where the expression is.
        at: Box<Location>,
        /// The image as written.
        image: String,
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

    /// An `enabled` that is neither `true`/`false` nor a string reading one of them once its
    /// expressions are substituted.
    #[error(
        "{field}: enabled must be true, false or an expression over environment.variables that reads true or false; it reads {found}"
    )]
    InvalidSwitch {
        /// The field (`spec.services[search].enabled`).
        field: String,
        /// What it read (a JSON type, or the substituted text, shortened).
        found: String,
    },

    /// A release (job, service) that depends on one `enabled` leaves out: it would wait for ever.
    #[error(
        "{release}: dependency {dependency} is disabled (its enabled is false): enable it, or remove the dependency"
    )]
    DependsOnDisabled {
        /// The release as users know it (`service/key`, an environment release's key).
        release: String,
        /// The disabled dependency as written.
        dependency: String,
    },
}

impl Error {
    /// Where the expression is, for expression errors.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Error::ExpressionSyntax { at, .. }
            | Error::UnknownRoot { at, .. }
            | Error::InvalidReference { at, .. }
            | Error::UnknownVariable { at, .. }
            | Error::MissingOutput { at, .. }
            | Error::ImageNotResolved { at, .. }
            | Error::Evaluation { at, .. } => Some(at),
            _ => None,
        }
    }

    /// A short, bounded label for metrics and condition reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::UnknownDependency { .. } | Error::UnknownEnvironmentRelease { .. } => {
                reasons::UNKNOWN_DEPENDENCY
            }
            Error::AmbiguousDependency { .. } => reasons::AMBIGUOUS_DEPENDENCY,
            Error::NameConflict { .. } => reasons::NAME_CONFLICT,
            Error::Cycle { .. } => reasons::DEPENDENCY_CYCLE,
            Error::DuplicateAlias { .. } => reasons::DUPLICATE_ALIAS,
            Error::ReservedAlias { .. } => reasons::RESERVED_ALIAS,
            Error::EmptyOutputSource { .. } => reasons::INVALID_OUTPUT_SOURCE,
            Error::OutputNotUtf8 { .. } => reasons::OUTPUT_NOT_UTF8,
            Error::DuplicateOutputKey { .. } => reasons::DUPLICATE_OUTPUT_KEY,
            Error::ValuesNotAMap { .. } => reasons::INVALID_VALUES_DOCUMENT,
            Error::ExpressionSyntax { .. } => reasons::EXPRESSION_SYNTAX,
            Error::UnknownRoot { .. } => reasons::UNKNOWN_EXPRESSION_ROOT,
            Error::InvalidReference { .. } => reasons::INVALID_EXPRESSION_REFERENCE,
            Error::UnknownVariable { .. } => reasons::UNKNOWN_VARIABLE,
            Error::MissingOutput { .. } => reasons::MISSING_OUTPUT,
            Error::ImageNotResolved { .. } => reasons::IMAGE_DIGEST_UNRESOLVED,
            Error::Evaluation { .. } => reasons::EXPRESSION_EVALUATION,
            Error::SubstitutionTooLarge { .. } => reasons::SUBSTITUTION_TOO_LARGE,
            Error::InvalidSwitch { .. } => reasons::INVALID_SWITCH,
            Error::DependsOnDisabled { .. } => reasons::DEPENDS_ON_DISABLED,
        }
    }
}

impl upstart_failure::Classify for Error {
    /// Spec errors need a change of the YAML (retrying is pointless); a dependency or an output
    /// key that does not exist yet is a wait (watch events wake the release); the rest (an
    /// output that is not UTF-8, a helper failing on an output's value) may heal when the
    /// outputs change, so it is retried.
    fn class(&self) -> upstart_failure::Class {
        match self {
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
            | Error::InvalidSwitch { .. }
            | Error::DependsOnDisabled { .. } => upstart_failure::Class::NeedsSpecChange,
            Error::UnknownDependency { .. }
            | Error::UnknownEnvironmentRelease { .. }
            | Error::MissingOutput { .. }
            | Error::ImageNotResolved { .. } => upstart_failure::Class::Waiting,
            _ => upstart_failure::Class::Transient,
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
