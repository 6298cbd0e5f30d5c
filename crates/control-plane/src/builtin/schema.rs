//! The OpenAPI schema of a built-in kind (k8s-openapi's, through schemars: the same definitions
//! `/openapi/v3` serves), walked definition by definition so that defaulting and validation
//! apply to a type wherever it appears (a Container in a Pod, a Deployment's template or a
//! CronJob's job template), as the API server's generated defaulters and validators do.

use serde_json::{Map, Value};

use crate::registry::ResourceType;

/// The definitions of one kind, by name (`io.k8s.api.core.v1.Container`).
pub type Definitions = Map<String, Value>;

/// The schema of a built-in kind in the version `obj` is written in: its root definition's name
/// and every definition it refers to. None for kinds without a k8s-openapi type.
pub fn of_kind(t: &ResourceType, obj: &Value) -> Option<(&'static str, &'static Definitions)> {
    let version = obj["apiVersion"]
        .as_str()
        .and_then(|v| v.rsplit('/').next())
        .filter(|v| t.serves(v))
        .unwrap_or_else(|| t.preferred_version());
    crate::openapi::builtin_schemas(&t.group, version, &t.plural)
        .map(|(name, definitions)| (name.as_str(), definitions))
}

/// Where a property's value leads: one object of a definition, a list of them, or a map of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Child<'a> {
    One(&'a str),
    Each(&'a str),
    Values(&'a str),
}

fn reference(schema: &Value) -> Option<&str> {
    schema["$ref"]
        .as_str()
        .or_else(|| schema["allOf"][0]["$ref"].as_str())
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
}

/// The definition a property refers to, if its values are objects of a named definition.
pub fn child(property: &Value) -> Option<Child<'_>> {
    if let Some(r) = reference(property) {
        return Some(Child::One(r));
    }
    if let Some(r) = reference(&property["items"]) {
        return Some(Child::Each(r));
    }
    reference(&property["additionalProperties"]).map(Child::Values)
}

/// The properties of a definition, with their schemas.
pub fn properties<'a>(
    definitions: &'a Definitions,
    definition: &str,
) -> impl Iterator<Item = (&'a String, &'a Value)> {
    definitions
        .get(definition)
        .and_then(|d| d["properties"].as_object())
        .into_iter()
        .flatten()
}

/// The properties a definition requires (non-optional fields of the Go type).
pub fn required<'a>(definitions: &'a Definitions, definition: &str) -> Vec<&'a str> {
    definitions
        .get(definition)
        .and_then(|d| d["required"].as_array())
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Visits every object of `value` with its definition, parents before children (the order of
/// the API server's generated `SetObjectDefaults_*`), `status` excepted: clients do not send it
/// and the server neither defaults nor validates it with the object.
pub fn walk_mut(
    definitions: &Definitions,
    definition: &str,
    value: &mut Value,
    visit: &mut dyn FnMut(&str, &mut Map<String, Value>),
) {
    let Some(map) = value.as_object_mut() else {
        return;
    };
    visit(definition, map);
    for (name, property) in properties(definitions, definition) {
        if name == "status" {
            continue;
        }
        let (Some(target), Some(v)) = (child(property), map.get_mut(name)) else {
            continue;
        };
        match (target, v) {
            (Child::One(d), v) => walk_mut(definitions, d, v, visit),
            (Child::Each(d), Value::Array(items)) => {
                for item in items {
                    walk_mut(definitions, d, item, visit);
                }
            }
            (Child::Values(d), Value::Object(values)) => {
                for item in values.values_mut() {
                    walk_mut(definitions, d, item, visit);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_reaches_its_containers_through_the_template() {
        let t = crate::registry::Registry::with_builtins()
            .lookup("apps", "v1", "deployments")
            .cloned()
            .unwrap();
        let mut d = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}},
            "status": {"conditions": [{"type": "Available"}]}
        });
        let (root, definitions) = of_kind(&t, &d).unwrap();
        let mut seen = Vec::new();
        walk_mut(definitions, root, &mut d, &mut |definition, _| {
            seen.push(definition.rsplit('.').next().unwrap().to_string())
        });
        assert_eq!(
            seen,
            [
                "Deployment",
                "ObjectMeta",
                "DeploymentSpec",
                "PodTemplateSpec",
                "PodSpec",
                "Container",
                "Container"
            ]
        );
    }
}
