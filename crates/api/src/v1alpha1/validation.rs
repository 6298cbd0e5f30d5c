//! Patterns and schema fragments shared by the types: the validation that lives in the CRD schema.

use schemars::{Schema, SchemaGenerator, json_schema};

/// A DNS-1123 label: what Kubernetes needs for namespaces, release names and name prefixes.
pub const DNS1123_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A DNS-1123 subdomain: what Kubernetes needs for most object names.
pub const DNS1123_SUBDOMAIN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A dependency names a sibling release key (`exampleService`) or an object of the namespace.
pub const DEPENDENCY_NAME: &str = "^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$";

/// A `helmReleases` key or an alias: becomes a kebab-case name part and an expression root.
pub const RELEASE_KEY: &str = "^[A-Za-z]([-A-Za-z0-9]*[A-Za-z0-9])?$";

/// A key of a Secret or ConfigMap.
pub const CONFIG_KEY: &str = "^[-._a-zA-Z0-9]+$";

/// A Go duration (`90s`, `10m`, `1h30m`), as `kubectl` and Flux write them.
pub const DURATION: &str = "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

/// A chart reference: `ALIAS/NAME`, `oci://HOST/PATH/NAME`, `https://HOST/PATH/NAME`,
/// `git+https://HOST/PATH@DIR?ref=REF` (`git+http://`, `git+ssh://`), `file:PATH`, or
/// `builtin:job` (a job's release, see `JOB_CHART`).
pub const CHART: &str = "^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-z0-9]([-a-z0-9_.]*[a-z0-9])?|oci://[^\\s/]+/\\S+|https?://[^\\s/]+/\\S+|git\\+(https?|ssh)://[^\\s/]+/\\S+|file:\\S+|builtin:job)$";

/// An exact semver version or a range in Helm's constraint syntax: comparators (`=`, `!=`, `>`,
/// `<`, `>=`, `<=`, `~`, `^`), wildcards (`1.2.x`, `*`), hyphen ranges (`1.2 - 1.4`), `,` or
/// spaces for AND, `||` for OR. Built from named parts because the whole is unreadable.
pub fn version_constraint_pattern() -> String {
    let part = "(0|[1-9][0-9]*|[xX*])";
    let ident = "[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*";
    let version = format!("v?{part}(\\.{part}){{0,2}}(-{ident})?(\\+{ident})?");
    let operator = "(=|!=|>=|<=|=>|=<|>|<|~>|~|\\^)";
    let clause = format!("({version}\\s+-\\s+{version}|{operator}?\\s*{version})");
    let and_set = format!("{clause}((\\s*,\\s*|\\s+){clause})*");
    format!("^\\s*{and_set}(\\s*\\|\\|\\s*{and_set})*\\s*$")
}

/// The schema of `version`. The pattern is checked by a CEL rule rather than `pattern`, so that a
/// refusal explains the format instead of printing the regular expression.
pub fn version_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "nullable": true,
        "maxLength": 128,
        "description": "Chart version: exact (`0.1.3`) or a semver range (`^0.1`, `>=1.2 <2`). Default: the newest stable version.",
        "x-kubernetes-validations": [{
            "rule": format!("self.matches('{}')", version_constraint_pattern().replace('\\', "\\\\")),
            "message": "must be an exact semver version (1.2.3) or a range (^1.2, ~1.2.3, >=1.2 <2, 1.x, 1.2 - 1.4, ^1 || ^2)"
        }]
    })
}

/// Free-form Helm values: any object, kept as written.
pub fn values_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "description": "Helm values (free-form). Strings may hold `<< EXPR >>` expressions."
    })
}

/// Optional free-form Helm values.
pub fn optional_values_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = values_schema(generator);
    schema.insert("nullable".into(), true.into());
    schema
}
