//! Field paths and field sets as structured-merge-diff models them, and their `FieldsV1` encoding.
//!
//! A [`Path`] names one node of an object: a map field (`f:name`), an item of an associative
//! list by its keys (`k:{"name":"nginx"}`), an item of a set by its value (`v:"a"`) or an item of
//! an atomic list by its index (`i:0`). A [`FieldSet`] is a set of paths; a path in the set means
//! "this node is owned", and the `FieldsV1` encoding nests paths as JSON objects, writing `.` for
//! a node that is owned itself and also has owned children.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::Error;

/// One step of a [`Path`].
///
/// The variant order is the order structured-merge-diff sorts path elements in (field names,
/// then keys, then values, then indexes), so sets iterate in the apiserver's order. Contents are
/// shared (`Arc`) because paths are cloned into sets all the time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A field of a map, `f:<name>`.
    Field(Arc<str>),
    /// An item of an associative list, `k:{...}`: (key name, key value as compact JSON),
    /// sorted by key name.
    Key(Arc<[(String, String)]>),
    /// An item of a set, `v:<value as compact JSON>`.
    Value(Arc<str>),
    /// An item of an atomic list by position, `i:<index>`.
    Index(usize),
}

impl PathElement {
    /// Builds a key element from (name, value) pairs, sorting them by name as the apiserver does.
    pub(crate) fn key(mut pairs: Vec<(String, &Value)>) -> Self {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        PathElement::Key(pairs.into_iter().map(|(k, v)| (k, compact(v))).collect())
    }

    /// The `FieldsV1` spelling of this element (`f:name`, `k:{...}`, `v:...`, `i:N`).
    pub(crate) fn to_fields_v1_key(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(pairs) => format!("k:{}", key_json(pairs)),
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    fn from_fields_v1_key(key: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidFieldsV1(format!("unknown path element {key:?}"));
        let (kind, rest) = key.split_once(':').ok_or_else(invalid)?;
        match kind {
            "f" => Ok(PathElement::Field(rest.into())),
            "k" => {
                let Ok(Value::Object(map)) = serde_json::from_str::<Value>(rest) else {
                    return Err(invalid());
                };
                Ok(PathElement::key(
                    map.iter().map(|(k, v)| (k.clone(), v)).collect(),
                ))
            }
            "v" => {
                let value: Value = serde_json::from_str(rest).map_err(|_| invalid())?;
                Ok(PathElement::Value(compact(&value).into()))
            }
            "i" => rest.parse().map(PathElement::Index).map_err(|_| invalid()),
            _ => Err(invalid()),
        }
    }
}

impl fmt::Display for PathElement {
    /// The apiserver's spelling in conflict messages: `.name`, `[name="x",port=80]`, `[="v"]`,
    /// `[0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(pairs) => {
                let parts: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={v}]"),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

fn compact(value: &Value) -> String {
    // Serialising a Value cannot fail: all its map keys are strings.
    serde_json::to_string(value).unwrap_or_default()
}

fn key_json(pairs: &[(String, String)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}:{v}", compact(&Value::String(k.clone()))))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// A path from the root of an object to one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path(pub Vec<PathElement>);

impl Path {
    /// The path with `element` appended.
    pub(crate) fn child(&self, element: PathElement) -> Path {
        let mut elements = self.0.clone();
        elements.push(element);
        Path(elements)
    }

    /// Whether `self` is `other` or lies under it.
    pub(crate) fn starts_with(&self, other: &Path) -> bool {
        self.0.starts_with(&other.0)
    }

    /// A path made of field names only, for tests and fixed paths such as `.status`.
    pub fn fields(names: &[&str]) -> Path {
        Path(
            names
                .iter()
                .map(|n| PathElement::Field((*n).into()))
                .collect(),
        )
    }
}

impl std::borrow::Borrow<[PathElement]> for Path {
    fn borrow(&self) -> &[PathElement] {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for element in &self.0 {
            write!(f, "{element}")?;
        }
        Ok(())
    }
}

/// A set of owned paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet(pub(crate) BTreeSet<Path>);

impl FieldSet {
    /// An empty set.
    pub fn new() -> Self {
        FieldSet::default()
    }

    /// Adds a path.
    pub fn insert(&mut self, path: Path) {
        self.0.insert(path);
    }

    /// Whether the set holds `path` itself (not merely paths under it).
    pub fn contains(&self, path: &Path) -> bool {
        self.0.contains(path)
    }

    pub(crate) fn contains_slice(&self, path: &[PathElement]) -> bool {
        self.0.contains(path)
    }

    /// Whether the set holds any path strictly under `path`.
    pub(crate) fn has_children_of(&self, path: &Path) -> bool {
        self.0
            .range(path.clone()..)
            .find(|p| *p != path)
            .is_some_and(|p| p.starts_with(path))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of paths in the set.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The paths, in path order.
    pub fn iter(&self) -> impl Iterator<Item = &Path> {
        self.0.iter()
    }

    pub(crate) fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&other.0).cloned().collect())
    }

    pub(crate) fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&other.0).cloned().collect())
    }

    pub(crate) fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.intersection(&other.0).cloned().collect())
    }

    pub(crate) fn retain(&mut self, keep: impl FnMut(&Path) -> bool) {
        self.0.retain(keep);
    }

    /// The paths in the order structured-merge-diff iterates a set: at each level the owned
    /// nodes first, then the children's subtrees. Conflict messages list paths in this order.
    pub(crate) fn in_iteration_order(&self) -> Vec<Path> {
        let mut paths: Vec<Path> = self.0.iter().cloned().collect();
        paths.sort_by(|a, b| {
            let common = a.0.iter().zip(&b.0).take_while(|(x, y)| x == y).count();
            let a_member = a.0.len() == common + 1;
            let b_member = b.0.len() == common + 1;
            match (a.0.get(common), b.0.get(common)) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Less,
                (Some(_), None) => std::cmp::Ordering::Greater,
                (Some(x), Some(y)) if a_member == b_member => x.cmp(y),
                _ => b_member.cmp(&a_member),
            }
        });
        paths
    }

    /// Encodes the set as a `FieldsV1` object.
    pub fn to_fields_v1(&self) -> Value {
        #[derive(Default)]
        struct Node {
            member: bool,
            children: BTreeMap<PathElement, Node>,
        }
        fn encode(node: &Node) -> Value {
            let mut map = Map::new();
            if node.member && !node.children.is_empty() {
                map.insert(".".to_owned(), Value::Object(Map::new()));
            }
            for (element, child) in &node.children {
                map.insert(element.to_fields_v1_key(), encode(child));
            }
            Value::Object(map)
        }
        let mut root = Node::default();
        for path in &self.0 {
            let mut node = &mut root;
            for element in &path.0 {
                node = node.children.entry(element.clone()).or_default();
            }
            node.member = true;
        }
        encode(&root)
    }

    /// Decodes a `FieldsV1` object.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, Error> {
        fn decode(value: &Value, path: &Path, out: &mut FieldSet) -> Result<(), Error> {
            let Value::Object(map) = value else {
                return Err(Error::InvalidFieldsV1(format!(
                    "expected an object at {path}"
                )));
            };
            for (key, child) in map {
                if key == "." {
                    out.insert(path.clone());
                    continue;
                }
                let child_path = path.child(PathElement::from_fields_v1_key(key)?);
                if child.as_object().is_some_and(Map::is_empty) {
                    out.insert(child_path);
                } else {
                    decode(child, &child_path, out)?;
                }
            }
            Ok(())
        }
        let mut out = FieldSet::new();
        decode(value, &Path::default(), &mut out)?;
        Ok(out)
    }
}

impl FromIterator<Path> for FieldSet {
    fn from_iter<T: IntoIterator<Item = Path>>(iter: T) -> Self {
        FieldSet(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_v1_round_trips_with_dot_for_owned_items_that_have_children() {
        let fields = json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:containers": {
                    "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}
                },
                "f:finalizers": {"v:\"a\"": {}},
                "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {}}
            }
        });
        let set = FieldSet::from_fields_v1(&fields).unwrap();
        assert_eq!(set.len(), 6);
        assert_eq!(set.to_fields_v1(), fields);
    }

    #[test]
    fn key_elements_sort_their_fields_by_name() {
        let element = PathElement::key(vec![
            ("protocol".to_owned(), &json!("TCP")),
            ("containerPort".to_owned(), &json!(80)),
        ]);
        assert_eq!(
            element.to_fields_v1_key(),
            r#"k:{"containerPort":80,"protocol":"TCP"}"#
        );
        assert_eq!(element.to_string(), r#"[containerPort=80,protocol="TCP"]"#);
    }

    #[test]
    fn paths_display_as_in_apiserver_conflict_messages() {
        let path = Path::fields(&["spec", "template"])
            .child(PathElement::key(vec![("name".to_owned(), &json!("app"))]))
            .child(PathElement::Field("image".into()))
            .child(PathElement::Value("\"x\"".into()));
        assert_eq!(
            path.to_string(),
            r#".spec.template[name="app"].image[="x"]"#
        );
    }

    #[test]
    fn malformed_fields_v1_is_an_error() {
        assert!(FieldSet::from_fields_v1(&json!({"x:y": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"k:notjson": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
    }

    #[test]
    fn iteration_order_lists_members_before_deeper_paths() {
        let set: FieldSet = [
            Path::fields(&["spec", "template", "replicas"]),
            Path::fields(&["spec", "replicas"]),
            Path::fields(&["data"]),
        ]
        .into_iter()
        .collect();
        let order: Vec<String> = set
            .in_iteration_order()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            order,
            [".data", ".spec.replicas", ".spec.template.replicas"]
        );
    }
}
