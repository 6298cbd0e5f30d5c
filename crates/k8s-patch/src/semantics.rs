//! How lists and maps of a kind merge: list types and keys, atomic maps, declared fields.
//!
//! Built-in kinds use a table keyed by field path (below), written from the Go type markers of
//! Kubernetes 1.33 (`+listType`, `+listMapKey`, `+mapType`, `+structType`, and the
//! `patchStrategy` / `patchMergeKey` tags that strategic merge patch reads; where a list has no
//! `+listType`, the apiserver's schema conversion makes a list with a merge key associative by
//! that key and a `merge` list of scalars a set, and the table does the same). Lists and maps
//! the table does not name are atomic lists and granular maps; callers can add rules with
//! [`Semantics::with_list_type`] and [`Semantics::with_map_type`]. Custom resources
//! read the same information from their CRD's `openAPIV3Schema` (`x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`); their `metadata` follows the built-in
//! `ObjectMeta` rules, since the apiserver augments every CRD schema with it.

use std::rc::Rc;

use serde_json::Value;

/// How server-side apply treats a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole; owned as one field. The default for lists with no marker.
    Atomic,
    /// A set of scalars; each value owned separately (`v:"value"`).
    Set,
    /// An associative list whose items are identified by these keys (`k:{"name":"x"}`).
    Map(Vec<ListMapKey>),
}

/// One key of an associative list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListMapKey {
    /// The key's field name.
    pub name: String,
    /// The value used when an item omits the key (from the schema's `default`), like
    /// `protocol: TCP` for container and Service ports.
    pub default: Option<Value>,
}

/// How server-side apply treats a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapType {
    /// Each field merged and owned separately. The default.
    Granular,
    /// Replaced as a whole; owned as one field.
    Atomic,
}

/// How strategic merge patch treats a list (built-in kinds only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StrategicList {
    /// The patch's list replaces the original. The default.
    Replace,
    /// A list of scalars merged as a set (`patchStrategy: merge` without a merge key).
    MergePrimitives,
    /// A list of objects merged by this field (`patchMergeKey`).
    MergeByKey(String),
}

/// The merge rules of one kind: built-in, or a custom resource described by its CRD schema.
#[derive(Clone, Debug)]
pub struct Semantics {
    crd_schema: Option<Value>,
    list_overrides: Vec<(String, ListType)>,
    map_overrides: Vec<(String, MapType)>,
}

/// Where a walk is in the object, in terms the rules are looked up by.
#[derive(Clone, Debug)]
pub(crate) struct Cursor<'s> {
    /// Field names from the root, with `[]` for "an item of the list", innermost first: a
    /// shared linked list, so that a child cursor costs one allocation whatever the depth.
    names: Option<Rc<Name>>,
    depth: usize,
    pos: Pos<'s>,
}

#[derive(Debug)]
struct Name {
    name: Box<str>,
    parent: Option<Rc<Name>>,
}

impl Cursor<'_> {
    /// The names from the innermost outwards.
    fn names_rev(&self) -> impl Iterator<Item = &str> {
        std::iter::successors(self.names.as_deref(), |n| n.parent.as_deref()).map(|n| &*n.name)
    }

    fn is_root(&self) -> bool {
        self.depth == 0
    }

    fn child(&self, name: &str) -> (Option<Rc<Name>>, usize) {
        let node = Name {
            name: name.into(),
            parent: self.names.clone(),
        };
        (Some(Rc::new(node)), self.depth + 1)
    }
}

#[derive(Clone, Copy, Debug)]
enum Pos<'s> {
    Builtin,
    Schema(&'s Value),
    /// Outside any schema (preserved unknown fields): lists atomic, maps granular, no declared
    /// fields, as structured-merge-diff's deduced type.
    Deduced,
}

struct BuiltinList {
    pattern: &'static str,
    strategic: Strategic,
    apply: Apply,
}

enum Strategic {
    Primitives,
    Key(&'static str),
}

enum Apply {
    Set,
    /// Keys with an optional default given as JSON.
    Map(&'static [(&'static str, Option<&'static str>)]),
}

/// Lists of built-in kinds that are not atomic. A pattern is matched against the end of the
/// field path (list items written `[]`); a leading `^` anchors it at the root; `a|b` matches
/// either name. Lists not listed here are atomic for apply and replaced by strategic merge.
const BUILTIN_LISTS: &[BuiltinList] = &[
    BuiltinList {
        pattern: "^metadata.finalizers",
        strategic: Strategic::Primitives,
        apply: Apply::Set,
    },
    BuiltinList {
        pattern: "^metadata.ownerReferences",
        strategic: Strategic::Key("uid"),
        apply: Apply::Map(&[("uid", None)]),
    },
    BuiltinList {
        pattern: "containers|initContainers|ephemeralContainers",
        strategic: Strategic::Key("name"),
        apply: Apply::Map(&[("name", None)]),
    },
    BuiltinList {
        pattern: const_concat::ENV,
        strategic: Strategic::Key("name"),
        apply: Apply::Map(&[("name", None)]),
    },
    BuiltinList {
        pattern: const_concat::PORTS,
        strategic: Strategic::Key("containerPort"),
        apply: Apply::Map(&[("containerPort", None), ("protocol", Some("\"TCP\""))]),
    },
    BuiltinList {
        pattern: const_concat::VOLUME_MOUNTS,
        strategic: Strategic::Key("mountPath"),
        apply: Apply::Map(&[("mountPath", None)]),
    },
    BuiltinList {
        pattern: const_concat::VOLUME_DEVICES,
        strategic: Strategic::Key("devicePath"),
        apply: Apply::Map(&[("devicePath", None)]),
    },
    BuiltinList {
        pattern: const_concat::CLAIMS,
        strategic: Strategic::Key("name"),
        apply: Apply::Map(&[("name", None)]),
    },
    BuiltinList {
        pattern: "spec.volumes",
        strategic: Strategic::Key("name"),
        apply: Apply::Map(&[("name", None)]),
    },
    BuiltinList {
        pattern: "spec.imagePullSecrets",
        strategic: Strategic::Key("name"),
        apply: Apply::Map(&[("name", None)]),
    },
    BuiltinList {
        pattern: "spec.hostAliases",
        strategic: Strategic::Key("ip"),
        apply: Apply::Map(&[("ip", None)]),
    },
    BuiltinList {
        pattern: "spec.topologySpreadConstraints",
        strategic: Strategic::Key("topologyKey"),
        apply: Apply::Map(&[("topologyKey", None), ("whenUnsatisfiable", None)]),
    },
    BuiltinList {
        pattern: "spec.schedulingGates",
        strategic: Strategic::Key("name"),
        apply: Apply::Map(&[("name", None)]),
    },
    BuiltinList {
        pattern: "spec.resourceClaims",
        strategic: Strategic::Key("name"),
        apply: Apply::Map(&[("name", None)]),
    },
    // Service ports.
    BuiltinList {
        pattern: "^spec.ports",
        strategic: Strategic::Key("port"),
        apply: Apply::Map(&[("port", None), ("protocol", Some("\"TCP\""))]),
    },
    // Conditions of Pods, Deployments, StatefulSets, Jobs, Nodes, Namespaces, ...
    BuiltinList {
        pattern: "^status.conditions",
        strategic: Strategic::Key("type"),
        apply: Apply::Map(&[("type", None)]),
    },
    BuiltinList {
        pattern: "^status.podIPs|hostIPs",
        strategic: Strategic::Key("ip"),
        apply: Apply::Map(&[("ip", None)]),
    },
    // ServiceAccount secrets.
    BuiltinList {
        pattern: "^secrets",
        strategic: Strategic::Key("name"),
        apply: Apply::Map(&[("name", None)]),
    },
    // Mutating and validating webhook configurations.
    BuiltinList {
        pattern: "^webhooks",
        strategic: Strategic::Key("name"),
        apply: Apply::Map(&[("name", None)]),
    },
];

mod const_concat {
    //! Container sub-list patterns, spelled out because `const` string concatenation is not
    //! available.
    pub(super) const ENV: &str = "containers|initContainers|ephemeralContainers.[].env";
    pub(super) const PORTS: &str = "containers|initContainers|ephemeralContainers.[].ports";
    pub(super) const VOLUME_MOUNTS: &str =
        "containers|initContainers|ephemeralContainers.[].volumeMounts";
    pub(super) const VOLUME_DEVICES: &str =
        "containers|initContainers|ephemeralContainers.[].volumeDevices";
    pub(super) const CLAIMS: &str =
        "containers|initContainers|ephemeralContainers.[].resources.claims";
}

/// Maps (structs) of built-in kinds that apply treats atomically: label selectors
/// (`+structType=atomic`), the Service selector and pod `nodeSelector` (`+mapType=atomic`), and
/// small reference structs (`OwnerReference`, `LocalObjectReference`, key and field selectors). Patterns as in [`BUILTIN_LISTS`].
const BUILTIN_ATOMIC_MAPS: &[&str] = &[
    "^spec.selector",
    "^spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
    "^spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
    "nodeSelector",
    "podSelector",
    "namespaceSelector",
    "labelSelector",
    "secretKeyRef",
    "configMapKeyRef",
    "fieldRef",
    "resourceFieldRef",
    "spec.imagePullSecrets.[]",
    "^metadata.ownerReferences.[]",
];

fn pattern_matches(pattern: &str, cur: &Cursor<'_>) -> bool {
    let (anchored, pattern) = match pattern.strip_prefix('^') {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    // Matched from the end without allocating: this runs for every node of every walk.
    let mut count = 0;
    let mut remaining = cur.names_rev();
    for segment in pattern.rsplit('.') {
        match remaining.next() {
            Some(name) if segment.split('|').any(|alt| alt == name) => count += 1,
            _ => return false,
        }
    }
    !anchored || count == cur.depth
}

impl Default for Semantics {
    fn default() -> Self {
        Semantics::builtin()
    }
}

impl Semantics {
    /// Rules for built-in kinds (the table in this module).
    pub fn builtin() -> Self {
        Semantics {
            crd_schema: None,
            list_overrides: Vec::new(),
            map_overrides: Vec::new(),
        }
    }

    /// Rules for a custom resource, from its CRD version's `schema.openAPIV3Schema`.
    pub fn from_crd_schema(open_api_v3_schema: &Value) -> Self {
        Semantics {
            crd_schema: Some(open_api_v3_schema.clone()),
            list_overrides: Vec::new(),
            map_overrides: Vec::new(),
        }
    }

    /// These rules, with the apply list type of the lists matching `pattern` set to `list_type`
    /// (taking precedence over the table or schema). A pattern is a dotted field path matched
    /// against the end of the path, with `[]` for list items, a leading `^` to anchor it at the
    /// root and `a|b` for alternatives: `^spec.rules`, `spec.template.spec.readinessGates`,
    /// `containers|initContainers.[].resizePolicy`.
    pub fn with_list_type(mut self, pattern: &str, list_type: ListType) -> Self {
        self.list_overrides.push((pattern.to_owned(), list_type));
        self
    }

    /// These rules, with the apply map type of the maps matching `pattern` set to `map_type`
    /// (patterns as in [`Semantics::with_list_type`]).
    pub fn with_map_type(mut self, pattern: &str, map_type: MapType) -> Self {
        self.map_overrides.push((pattern.to_owned(), map_type));
        self
    }

    /// Whether strategic merge patch is available. The apiserver answers 415 Unsupported Media
    /// Type to a strategic merge patch of a custom resource.
    pub fn supports_strategic_merge(&self) -> bool {
        self.crd_schema.is_none()
    }

    pub(crate) fn root(&self) -> Cursor<'_> {
        Cursor {
            names: None,
            depth: 0,
            pos: match &self.crd_schema {
                Some(schema) => Pos::Schema(schema),
                None => Pos::Builtin,
            },
        }
    }

    /// The cursor of field `name` of the map at `cur`.
    pub(crate) fn field<'s>(&'s self, cur: &Cursor<'s>, name: &str) -> Cursor<'s> {
        let (names, depth) = cur.child(name);
        let pos = match cur.pos {
            Pos::Schema(_) if cur.is_root() && name == "metadata" => Pos::Builtin,
            Pos::Schema(schema) => {
                if let Some(property) = schema.get("properties").and_then(|p| p.get(name)) {
                    Pos::Schema(property)
                } else if let Some(additional) =
                    schema.get("additionalProperties").filter(|a| a.is_object())
                {
                    Pos::Schema(additional)
                } else {
                    Pos::Deduced
                }
            }
            other => other,
        };
        Cursor { names, depth, pos }
    }

    /// The cursor of an item of the list at `cur`.
    pub(crate) fn item<'s>(&'s self, cur: &Cursor<'s>) -> Cursor<'s> {
        let (names, depth) = cur.child("[]");
        let pos = match cur.pos {
            Pos::Schema(schema) => schema.get("items").map_or(Pos::Deduced, Pos::Schema),
            other => other,
        };
        Cursor { names, depth, pos }
    }

    /// Whether `name` is a declared field (a struct field) of the map at `cur`, as opposed to a
    /// key of a free-form map (`additionalProperties`, preserved unknown fields).
    pub(crate) fn is_declared_field(&self, cur: &Cursor<'_>, name: &str) -> bool {
        match cur.pos {
            Pos::Builtin => true,
            Pos::Schema(_) if cur.is_root() => {
                matches!(name, "apiVersion" | "kind" | "metadata") || self.has_property(cur, name)
            }
            Pos::Schema(_) => self.has_property(cur, name),
            Pos::Deduced => false,
        }
    }

    fn has_property(&self, cur: &Cursor<'_>, name: &str) -> bool {
        matches!(cur.pos, Pos::Schema(schema)
            if schema.get("properties").and_then(|p| p.get(name)).is_some())
    }

    /// The apply list type of the list at `cur`.
    pub(crate) fn list_type(&self, cur: &Cursor<'_>) -> ListType {
        if let Some((_, list_type)) = self
            .list_overrides
            .iter()
            .find(|(pattern, _)| pattern_matches(pattern, cur))
        {
            return list_type.clone();
        }
        match cur.pos {
            Pos::Builtin => BUILTIN_LISTS
                .iter()
                .find(|l| pattern_matches(l.pattern, cur))
                .map_or(ListType::Atomic, |l| match l.apply {
                    Apply::Set => ListType::Set,
                    Apply::Map(keys) => ListType::Map(
                        keys.iter()
                            .map(|(name, default)| ListMapKey {
                                name: (*name).to_owned(),
                                default: default.and_then(|d| serde_json::from_str(d).ok()),
                            })
                            .collect(),
                    ),
                }),
            Pos::Schema(schema) => {
                match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
                    Some("set") => ListType::Set,
                    Some("map") => {
                        let keys = schema
                            .get("x-kubernetes-list-map-keys")
                            .and_then(Value::as_array)
                            .map(|keys| {
                                keys.iter()
                                    .filter_map(Value::as_str)
                                    .map(|name| ListMapKey {
                                        name: name.to_owned(),
                                        default: schema
                                            .pointer(&format!("/items/properties/{name}/default"))
                                            .cloned(),
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        ListType::Map(keys)
                    }
                    _ => ListType::Atomic,
                }
            }
            Pos::Deduced => ListType::Atomic,
        }
    }

    /// The apply map type of the map at `cur`.
    pub(crate) fn map_type(&self, cur: &Cursor<'_>) -> MapType {
        if let Some((_, map_type)) = self
            .map_overrides
            .iter()
            .find(|(pattern, _)| pattern_matches(pattern, cur))
        {
            return *map_type;
        }
        let atomic = match cur.pos {
            Pos::Builtin => BUILTIN_ATOMIC_MAPS.iter().any(|p| pattern_matches(p, cur)),
            Pos::Schema(schema) => {
                schema.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic")
            }
            Pos::Deduced => false,
        };
        if atomic {
            MapType::Atomic
        } else {
            MapType::Granular
        }
    }

    /// The strategic merge strategy of the list at `cur`.
    pub(crate) fn strategic_list(&self, cur: &Cursor<'_>) -> StrategicList {
        match cur.pos {
            Pos::Builtin => BUILTIN_LISTS
                .iter()
                .find(|l| pattern_matches(l.pattern, cur))
                .map_or(StrategicList::Replace, |l| match l.strategic {
                    Strategic::Primitives => StrategicList::MergePrimitives,
                    Strategic::Key(key) => StrategicList::MergeByKey(key.to_owned()),
                }),
            _ => StrategicList::Replace,
        }
    }

    /// The apply list type of the list at a dotted field path, for documentation and tests:
    /// `spec.template.spec.containers[].ports`.
    pub fn list_type_at(&self, dotted: &str) -> ListType {
        self.list_type(&self.cursor_at(dotted))
    }

    /// The apply map type of the map at a dotted field path (see [`Semantics::list_type_at`]).
    pub fn map_type_at(&self, dotted: &str) -> MapType {
        self.map_type(&self.cursor_at(dotted))
    }

    /// The strategic merge strategy of the list at a dotted field path.
    pub fn strategic_list_at(&self, dotted: &str) -> StrategicList {
        self.strategic_list(&self.cursor_at(dotted))
    }

    fn cursor_at(&self, dotted: &str) -> Cursor<'_> {
        let mut cur = self.root();
        for part in dotted.split('.').filter(|p| !p.is_empty()) {
            let (name, items) = match part.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (part, false),
            };
            cur = self.field(&cur, name);
            if items {
                cur = self.item(&cur);
            }
        }
        cur
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map_keys(keys: &[(&str, Option<Value>)]) -> ListType {
        ListType::Map(
            keys.iter()
                .map(|(name, default)| ListMapKey {
                    name: (*name).to_owned(),
                    default: default.clone(),
                })
                .collect(),
        )
    }

    #[test]
    fn builtin_containers_are_keyed_by_name_wherever_a_pod_spec_appears() {
        let sem = Semantics::builtin();
        for path in [
            "spec.containers",
            "spec.template.spec.containers",
            "spec.jobTemplate.spec.template.spec.initContainers",
        ] {
            assert_eq!(
                sem.list_type_at(path),
                map_keys(&[("name", None)]),
                "{path}"
            );
            assert_eq!(
                sem.strategic_list_at(path),
                StrategicList::MergeByKey("name".to_owned())
            );
        }
    }

    #[test]
    fn builtin_container_ports_differ_between_apply_and_strategic_merge() {
        let sem = Semantics::builtin();
        let path = "spec.template.spec.containers[].ports";
        assert_eq!(
            sem.list_type_at(path),
            map_keys(&[("containerPort", None), ("protocol", Some(json!("TCP")))])
        );
        assert_eq!(
            sem.strategic_list_at(path),
            StrategicList::MergeByKey("containerPort".to_owned())
        );
        assert_eq!(
            sem.strategic_list_at("spec.ports"),
            StrategicList::MergeByKey("port".to_owned())
        );
    }

    #[test]
    fn builtin_lists_without_markers_are_atomic_and_replaced() {
        let sem = Semantics::builtin();
        for path in [
            "spec.template.spec.tolerations",
            "spec.template.spec.containers[].args",
            "rules",
        ] {
            assert_eq!(sem.list_type_at(path), ListType::Atomic, "{path}");
            assert_eq!(sem.strategic_list_at(path), StrategicList::Replace);
        }
        assert_eq!(sem.list_type_at("metadata.finalizers"), ListType::Set);
        assert_eq!(
            sem.strategic_list_at("metadata.finalizers"),
            StrategicList::MergePrimitives
        );
    }

    #[test]
    fn builtin_label_selectors_are_atomic_maps() {
        let sem = Semantics::builtin();
        assert_eq!(sem.map_type_at("spec.selector"), MapType::Atomic);
        assert_eq!(sem.map_type_at("spec.template"), MapType::Granular);
        assert_eq!(sem.map_type_at("metadata.labels"), MapType::Granular);
    }

    #[test]
    fn overrides_take_precedence_over_the_table() {
        let sem = Semantics::builtin()
            .with_list_type("^spec.rules", ListType::Set)
            .with_map_type("spec.template", MapType::Atomic);
        assert_eq!(sem.list_type_at("spec.rules"), ListType::Set);
        assert_eq!(sem.list_type_at("rules"), ListType::Atomic);
        assert_eq!(sem.map_type_at("spec.template"), MapType::Atomic);
        assert_eq!(sem.map_type_at("spec.selector"), MapType::Atomic);
    }

    #[test]
    fn crd_schema_markers_give_list_and_map_types() {
        let schema = json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "items": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name", "proto"],
                            "items": {"type": "object", "properties": {
                                "name": {"type": "string"},
                                "proto": {"type": "string", "default": "TCP"}
                            }}
                        },
                        "tags": {"type": "array", "x-kubernetes-list-type": "set"},
                        "args": {"type": "array"},
                        "ref": {"type": "object", "x-kubernetes-map-type": "atomic"}
                    }
                }
            }
        });
        let sem = Semantics::from_crd_schema(&schema);
        assert!(!sem.supports_strategic_merge());
        assert_eq!(
            sem.list_type_at("spec.items"),
            map_keys(&[("name", None), ("proto", Some(json!("TCP")))])
        );
        assert_eq!(sem.list_type_at("spec.tags"), ListType::Set);
        assert_eq!(sem.list_type_at("spec.args"), ListType::Atomic);
        assert_eq!(sem.map_type_at("spec.ref"), MapType::Atomic);
        assert_eq!(sem.list_type_at("metadata.finalizers"), ListType::Set);
        assert_eq!(
            sem.strategic_list_at("metadata.finalizers"),
            StrategicList::MergePrimitives
        );
    }
}
