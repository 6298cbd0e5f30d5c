//! The fuzzing entry points of YAML values and rendered manifests (fuzz/fuzz_targets/), also
//! replayed over the committed corpus by e2e/tests/fuzz_corpus.rs: any text must convert or be
//! refused within the limits, and a plan never places an object outside the release.

use serde_json::Value;

use crate::manifests::{self, ClusterScopedAllowList, Limits, ReleaseScope};
use crate::yaml::{YamlLimits, to_json_documents};

/// Limits small enough that bombs are found in a fuzzer's time, large enough for real charts'
/// shapes.
pub fn limits() -> YamlLimits {
    YamlLimits {
        max_nodes: 20_000,
        max_scalar_bytes: 1 << 20,
        max_depth: 64,
    }
}

/// A `valuesFrom` document or a chart's values: converted as kubectl converts YAML, within
/// [`limits`].
pub fn yaml_values(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = limits();
    if let Ok(documents) = to_json_documents(text, &limits) {
        let mut built = Built::default();
        for document in &documents {
            built.count(document, 1);
        }
        assert!(
            built.nodes <= limits.max_nodes,
            "{} nodes built",
            built.nodes
        );
        assert!(
            built.bytes <= limits.max_scalar_bytes,
            "{} scalar bytes built",
            built.bytes
        );
        assert!(
            built.depth <= limits.max_depth + 1,
            "nesting {} built",
            built.depth
        );
    }
}

/// A rendered manifest planned for release `env-pr-1/shop`: every object either stays in the
/// release's namespace or is a cluster-scoped kind the allow list names.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let allow =
        ClusterScopedAllowList::new(["Namespace", "apiextensions.k8s.io/CustomResourceDefinition"]);
    let is_namespaced = |api_version: &str, kind: &str| match (api_version, kind) {
        ("v1", "Namespace") | ("rbac.authorization.k8s.io/v1", "ClusterRole") => Some(false),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => Some(false),
        ("example.com/v1", _) => None,
        _ => Some(true),
    };
    let scope = ReleaseScope {
        namespace: "env-pr-1",
        name: "shop",
        cluster_scoped_allow_list: &allow,
        is_namespaced: &is_namespaced,
    };
    let limits = Limits {
        max_bytes: 1 << 20,
        max_documents: 500,
        yaml: limits(),
    };
    let Ok(plan) = manifests::plan(text, &scope, &limits) else {
        return;
    };
    let objects = plan
        .crds
        .iter()
        .chain(&plan.resources)
        .chain(plan.hooks.iter().map(|h| &h.object));
    let mut count = 0;
    for object in objects {
        count += 1;
        let entry = &object.entry;
        match &entry.namespace {
            Some(namespace) => assert_eq!(namespace, "env-pr-1", "an object outside the release"),
            None => assert!(
                allow.allows(&entry.api_version, &entry.kind),
                "cluster-scoped {} not in the allow list",
                entry.kind
            ),
        }
        assert_eq!(
            object.object["metadata"]["namespace"].as_str(),
            entry.namespace.as_deref(),
            "the applied object's namespace differs from its inventory entry"
        );
    }
    assert!(count <= limits.max_documents, "{count} objects planned");
}

/// What a converted document holds.
#[derive(Default)]
struct Built {
    nodes: usize,
    bytes: usize,
    depth: usize,
}

impl Built {
    fn count(&mut self, value: &Value, depth: usize) {
        self.nodes += 1;
        self.depth = self.depth.max(depth);
        match value {
            Value::String(s) => self.bytes += s.len(),
            Value::Array(items) => items.iter().for_each(|v| self.count(v, depth + 1)),
            Value::Object(map) => {
                for (key, v) in map {
                    self.nodes += 1;
                    self.bytes += key.len();
                    self.count(v, depth + 1);
                }
            }
            _ => {}
        }
    }
}
