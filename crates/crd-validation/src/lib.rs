//! Validation of custom resources against a CustomResourceDefinition's `openAPIV3Schema`, the
//! way kube-apiserver does it: the same checks, the same order, the same messages.
//!
//! A write to the apiserver goes through [`CompiledSchema::admit`]: unknown fields are pruned,
//! defaults applied, then the object is validated (OpenAPI schema checks, list-type
//! uniqueness, then `x-kubernetes-validations` CEL rules, with transition rules on update
//! only). Compile a schema once with [`CompiledSchema::new`] (or every version of a CRD with
//! [`CompiledCrd::new`]) and validate many objects with it. [`check_structural`] reports why
//! the apiserver would refuse the CRD's schema itself.
//!
//! Messages are those of the oldest Kubernetes this project supports
//! (1.[`DEFAULT_KUBERNETES_MINOR`]); [`CompiledSchema::for_kubernetes_minor`] gives later ones.
//! Paths follow the apiserver, including its mix: OpenAPI errors name map entries
//! `spec.map.key` (as kube-openapi does), list-type and CEL errors `spec.map[key]` (as
//! `field.Path` does); the root is `<nil>`.
//!
//! ```
//! use serde_json::json;
//! use upstart_crd_validation::{CompiledSchema, invalid_error_message};
//!
//! let schema = CompiledSchema::new(&json!({
//!     "type": "object",
//!     "properties": {"spec": {
//!         "type": "object",
//!         "required": ["chart"],
//!         "properties": {"chart": {"type": "string"}},
//!     }},
//! }));
//! let errors = schema.validate(&json!({"spec": {}}), None);
//! assert_eq!(
//!     invalid_error_message("HelmRelease.example.com", "web", &errors),
//!     r#"HelmRelease.example.com "web" is invalid: spec.chart: Required value"#,
//! );
//! ```

mod defaults;
mod field_error;
mod formats;
mod prune;
mod schema;
mod structural;
mod validate;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

pub use field_error::{
    FieldError, FieldErrorKind, RenderOptions, go_quote, invalid_error_message,
    invalid_error_message_with, render_value,
};
pub use structural::check_structural;

/// Why a CRD or object could not be matched up for validation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object has no `apiVersion` string.
    #[error("object has no apiVersion")]
    MissingApiVersion,
    /// The object's group is not the CRD's.
    #[error("apiVersion {api_version:?} is not in group {group:?} of the CRD")]
    WrongGroup {
        /// The object's apiVersion.
        api_version: String,
        /// The CRD's group.
        group: String,
    },
    /// The CRD does not serve the object's version.
    #[error("the CRD has no version {version:?}")]
    UnknownVersion {
        /// The version asked for.
        version: String,
    },
    /// The CRD version has no `openAPIV3Schema`.
    #[error("version {version:?} of the CRD has no openAPIV3Schema")]
    NoSchema {
        /// The version without a schema.
        version: String,
    },
    /// The schema could not be turned into JSON.
    #[error("could not serialise the CRD schema: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// A schema prepared once (regexes and CEL rules compiled) to check many objects.
#[derive(Debug)]
pub struct CompiledSchema {
    root: schema::Node,
    cel_value_style: validate::CelValueStyle,
}

/// The Kubernetes minor version whose messages [`CompiledSchema::new`] reproduces: the oldest
/// one this project supports.
pub const DEFAULT_KUBERNETES_MINOR: u32 = 33;

/// What [`CompiledSchema::admit`] did to an object and found wrong with it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Admission {
    /// Paths of the unknown fields removed (`spec.foo`); the apiserver warns
    /// `unknown field "spec.foo"` for each.
    pub pruned: Vec<String>,
    /// Validation errors; empty means the object is accepted.
    pub errors: Vec<FieldError>,
}

impl CompiledSchema {
    /// Compiles `schema` (an `openAPIV3Schema` as JSON). Never fails: problems with the schema
    /// itself are what [`check_structural`] reports.
    /// Messages are those of Kubernetes 1.[`DEFAULT_KUBERNETES_MINOR`].
    #[must_use]
    pub fn new(schema: &Value) -> Self {
        Self::for_kubernetes_minor(schema, DEFAULT_KUBERNETES_MINOR)
    }

    /// Like [`CompiledSchema::new`], with the messages of Kubernetes 1.`minor`. The one known
    /// difference: from 1.35 a failed CEL rule shows the offending scalar value
    /// (`Invalid value: 7: ...`) and nothing for objects and arrays, where earlier versions show
    /// the schema type (`Invalid value: "object": ...`).
    #[must_use]
    pub fn for_kubernetes_minor(schema: &Value, minor: u32) -> Self {
        Self {
            root: schema::Node::compile(schema),
            cel_value_style: if minor >= 35 {
                validate::CelValueStyle::ScalarValue
            } else {
                validate::CelValueStyle::SchemaType
            },
        }
    }

    /// Validates `object` as it is (no pruning or defaulting). `old` is the stored object on
    /// update: transition rules run only then, and unchanged values are not re-validated.
    #[must_use]
    pub fn validate(&self, object: &Value, old: Option<&Value>) -> Vec<FieldError> {
        validate::validate(&self.root, object, old, self.cel_value_style)
    }

    /// Removes the fields the schema does not know and returns their paths.
    pub fn prune(&self, object: &mut Value) -> Vec<String> {
        prune::prune(&self.root, object)
    }

    /// Applies the schema's defaults to `object`.
    pub fn apply_defaults(&self, object: &mut Value) {
        defaults::apply_defaults(&self.root, object);
    }

    /// What the apiserver does with a create (`old` = `None`) or update: prune, default, then
    /// validate. `object` is left pruned and defaulted, as it would be stored.
    pub fn admit(&self, object: &mut Value, old: Option<&Value>) -> Admission {
        let pruned = self.prune(object);
        self.apply_defaults(object);
        let errors = self.validate(object, old);
        Admission { pruned, errors }
    }
}

/// Validates `object` against `schema` without pruning or defaulting; see
/// [`CompiledSchema::validate`]. Compile the schema once instead when validating many objects.
#[must_use]
pub fn validate(schema: &Value, object: &Value, old: Option<&Value>) -> Vec<FieldError> {
    CompiledSchema::new(schema).validate(object, old)
}

/// Removes unknown fields from `object`; see [`CompiledSchema::prune`].
pub fn prune(schema: &Value, object: &mut Value) -> Vec<String> {
    CompiledSchema::new(schema).prune(object)
}

/// Applies `schema`'s defaults to `object`; see [`CompiledSchema::apply_defaults`].
pub fn apply_defaults(schema: &Value, object: &mut Value) {
    CompiledSchema::new(schema).apply_defaults(object);
}

/// The `openAPIV3Schema` of `version` of `crd`, as JSON.
pub fn schema_for_version(crd: &CustomResourceDefinition, version: &str) -> Result<Value, Error> {
    let v = crd
        .spec
        .versions
        .iter()
        .find(|v| v.name == version)
        .ok_or_else(|| Error::UnknownVersion {
            version: version.to_string(),
        })?;
    let schema = v
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .ok_or_else(|| Error::NoSchema {
            version: version.to_string(),
        })?;
    Ok(serde_json::to_value(schema)?)
}

/// The CRD's `Kind.group`, as the apiserver names it in its 422 messages.
#[must_use]
pub fn qualified_kind(crd: &CustomResourceDefinition) -> String {
    if crd.spec.group.is_empty() {
        crd.spec.names.kind.clone()
    } else {
        format!("{}.{}", crd.spec.names.kind, crd.spec.group)
    }
}

/// Every served version's schema of a CRD, compiled once: what an API server keeps per CRD.
#[derive(Debug)]
pub struct CompiledCrd {
    group: String,
    qualified_kind: String,
    /// Version name and its schema (`None`: the version has no schema).
    versions: Vec<(String, Option<CompiledSchema>)>,
}

impl CompiledCrd {
    /// Compiles the schema of every version of `crd`, with the messages of Kubernetes
    /// 1.[`DEFAULT_KUBERNETES_MINOR`].
    pub fn new(crd: &CustomResourceDefinition) -> Result<Self, Error> {
        Self::for_kubernetes_minor(crd, DEFAULT_KUBERNETES_MINOR)
    }

    /// Like [`CompiledCrd::new`], with the messages of Kubernetes 1.`minor`.
    pub fn for_kubernetes_minor(crd: &CustomResourceDefinition, minor: u32) -> Result<Self, Error> {
        let mut versions = Vec::with_capacity(crd.spec.versions.len());
        for v in &crd.spec.versions {
            let schema = match v
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
            {
                Some(schema) => Some(CompiledSchema::for_kubernetes_minor(
                    &serde_json::to_value(schema)?,
                    minor,
                )),
                None => None,
            };
            versions.push((v.name.clone(), schema));
        }
        Ok(Self {
            group: crd.spec.group.clone(),
            qualified_kind: qualified_kind(crd),
            versions,
        })
    }

    /// `Kind.group`, as the apiserver names the resource in its 422 messages.
    #[must_use]
    pub fn qualified_kind(&self) -> &str {
        &self.qualified_kind
    }

    /// The compiled schema of `version`.
    pub fn schema(&self, version: &str) -> Result<&CompiledSchema, Error> {
        let (_, schema) = self
            .versions
            .iter()
            .find(|(name, _)| name == version)
            .ok_or_else(|| Error::UnknownVersion {
                version: version.to_string(),
            })?;
        schema.as_ref().ok_or_else(|| Error::NoSchema {
            version: version.to_string(),
        })
    }

    /// Prunes, defaults and validates `object` (`old` on update) against the schema of the
    /// version its `apiVersion` names; see [`CompiledSchema::admit`].
    pub fn admit(&self, object: &mut Value, old: Option<&Value>) -> Result<Admission, Error> {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .ok_or(Error::MissingApiVersion)?;
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        if group != self.group {
            return Err(Error::WrongGroup {
                api_version: api_version.to_string(),
                group: self.group.clone(),
            });
        }
        let schema = self.schema(version)?;
        Ok(schema.admit(object, old))
    }

    /// The apiserver's 422 message for `errors` about the object called `name`.
    #[must_use]
    pub fn invalid_error_message(&self, name: &str, errors: &[FieldError]) -> String {
        invalid_error_message(&self.qualified_kind, name, errors)
    }
}

/// Prunes, defaults and validates `object` against the schema of the CRD version named by its
/// `apiVersion`, like [`CompiledSchema::admit`] (`old` on update). Compiles the CRD on every
/// call: to validate many objects, keep a [`CompiledCrd`].
pub fn validate_against_crd(
    crd: &CustomResourceDefinition,
    object: &mut Value,
    old: Option<&Value>,
) -> Result<Admission, Error> {
    CompiledCrd::new(crd)?.admit(object, old)
}
