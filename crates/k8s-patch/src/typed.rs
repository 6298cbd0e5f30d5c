//! Schema-aware walks over JSON objects, after structured-merge-diff's `typed` package: the field
//! set of an object, the comparison of two objects, the apply merge, and removal of owned paths.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::Error;
use crate::fieldpath::{FieldSet, Path, PathElement};
use crate::semantics::{Cursor, ListType, MapType, Semantics};

/// The path element identifying item `index` (`item`) of a list of the given type.
pub(crate) fn item_element(
    list_type: &ListType,
    index: usize,
    item: &Value,
) -> Result<PathElement, Error> {
    match list_type {
        ListType::Atomic => Ok(PathElement::Index(index)),
        ListType::Set => match item {
            Value::Object(_) | Value::Array(_) => Err(Error::InvalidList(
                "a list of type set holds a non-scalar item".to_owned(),
            )),
            scalar => Ok(PathElement::Value(
                serde_json::to_string(scalar).unwrap_or_default().into(),
            )),
        },
        ListType::Map(keys) => {
            let Value::Object(fields) = item else {
                return Err(Error::InvalidList(
                    "an associative list holds a non-object item".to_owned(),
                ));
            };
            let mut pairs = Vec::with_capacity(keys.len());
            for key in keys {
                let value = fields
                    .get(&key.name)
                    .or(key.default.as_ref())
                    .ok_or_else(|| {
                        Error::InvalidList(format!(
                            "associative list with keys has an element that omits key field {:?} (and doesn't have default value)",
                            key.name
                        ))
                    })?;
                pairs.push((key.name.clone(), value));
            }
            Ok(PathElement::key(pairs))
        }
    }
}

/// The field set of an object (structured-merge-diff `ToFieldSet`): every scalar, every list
/// item, every atomic list or map, every null or empty map, and every key of a free-form map.
/// Duplicate items in associative lists and sets are an error, as in an apply configuration.
pub(crate) fn to_field_set(value: &Value, sem: &Semantics) -> Result<FieldSet, Error> {
    fn walk(
        value: &Value,
        sem: &Semantics,
        cur: &Cursor<'_>,
        path: &mut Path,
        out: &mut FieldSet,
    ) -> Result<(), Error> {
        match value {
            Value::Object(map) => {
                if !path.0.is_empty() && sem.map_type(cur) == MapType::Atomic {
                    out.insert(path.clone());
                    return Ok(());
                }
                for (key, child) in map {
                    path.0.push(PathElement::Field(key.as_str().into()));
                    walk(child, sem, &sem.field(cur, key), path, out)?;
                    let empty_map = child.as_object().is_some_and(Map::is_empty);
                    if child.is_null() || empty_map || !sem.is_declared_field(cur, key) {
                        out.insert(path.clone());
                    }
                    path.0.pop();
                }
            }
            Value::Array(items) => {
                let list_type = sem.list_type(cur);
                if list_type == ListType::Atomic {
                    out.insert(path.clone());
                    return Ok(());
                }
                let item_cur = sem.item(cur);
                let mut seen = BTreeSet::new();
                for (index, item) in items.iter().enumerate() {
                    let element = item_element(&list_type, index, item)?;
                    if !seen.insert(element.clone()) {
                        return Err(Error::InvalidList(format!(
                            "duplicate entries for key {element} in list {path}"
                        )));
                    }
                    path.0.push(element);
                    walk(item, sem, &item_cur, path, out)?;
                    out.insert(path.clone());
                    path.0.pop();
                }
            }
            _ => out.insert(path.clone()),
        }
        Ok(())
    }
    let mut out = FieldSet::new();
    walk(value, sem, &sem.root(), &mut Path::default(), &mut out)?;
    Ok(out)
}

/// What changed between two objects, as structured-merge-diff's `Comparison`.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) added: FieldSet,
    pub(crate) modified: FieldSet,
    pub(crate) removed: FieldSet,
}

impl Comparison {
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Path) -> bool) {
        self.added.retain(&mut keep);
        self.modified.retain(&mut keep);
        self.removed.retain(&mut keep);
    }
}

/// Indexes list items by path element, keeping the first of duplicates (the apiserver tolerates
/// duplicates in stored objects).
fn index_items<'v>(
    list_type: &ListType,
    items: &'v [Value],
) -> Result<Vec<(PathElement, &'v Value)>, Error> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let element = item_element(list_type, index, item)?;
        if seen.insert(element.clone()) {
            out.push((element, item));
        }
    }
    Ok(out)
}

/// Compares two versions of an object (structured-merge-diff `Compare`): leaves added, modified
/// and removed, plus maps, lists and list items that appeared or disappeared as a whole.
pub(crate) fn compare(lhs: &Value, rhs: &Value, sem: &Semantics) -> Result<Comparison, Error> {
    fn leaf(lhs: Option<&Value>, rhs: Option<&Value>, path: &Path, out: &mut Comparison) {
        match (lhs, rhs) {
            (None, Some(_)) => out.added.insert(path.clone()),
            (Some(_), None) => out.removed.insert(path.clone()),
            (Some(l), Some(r)) if l != r => out.modified.insert(path.clone()),
            _ => {}
        }
    }
    /// Compares the children of two maps or two lists (either may be absent). Returns false when
    /// the node is a leaf instead (atomic, or empty on both sides).
    fn children(
        lhs: Option<&Value>,
        rhs: Option<&Value>,
        sem: &Semantics,
        cur: &Cursor<'_>,
        path: &mut Path,
        out: &mut Comparison,
    ) -> Result<bool, Error> {
        let is_map = matches!(lhs.or(rhs), Some(Value::Object(_)));
        if is_map {
            let l = lhs.and_then(Value::as_object);
            let r = rhs.and_then(Value::as_object);
            let both_empty = l.is_none_or(Map::is_empty) && r.is_none_or(Map::is_empty);
            if (!path.0.is_empty() && sem.map_type(cur) == MapType::Atomic) || both_empty {
                return Ok(false);
            }
            let keys: BTreeSet<&String> = l.into_iter().chain(r).flat_map(Map::keys).collect();
            for key in keys {
                path.0.push(PathElement::Field(key.as_str().into()));
                walk(
                    l.and_then(|m| m.get(key)),
                    r.and_then(|m| m.get(key)),
                    sem,
                    &sem.field(cur, key),
                    path,
                    out,
                )?;
                path.0.pop();
            }
        } else {
            let l = lhs.and_then(Value::as_array).map(Vec::as_slice);
            let r = rhs.and_then(Value::as_array).map(Vec::as_slice);
            let list_type = sem.list_type(cur);
            let both_empty = l.is_none_or(<[Value]>::is_empty) && r.is_none_or(<[Value]>::is_empty);
            if list_type == ListType::Atomic || both_empty {
                return Ok(false);
            }
            let l_map: BTreeMap<PathElement, &Value> =
                index_items(&list_type, l.unwrap_or_default())?
                    .into_iter()
                    .collect();
            let r_map: BTreeMap<PathElement, &Value> =
                index_items(&list_type, r.unwrap_or_default())?
                    .into_iter()
                    .collect();
            let elements: BTreeSet<&PathElement> = l_map.keys().chain(r_map.keys()).collect();
            let item_cur = sem.item(cur);
            for element in elements {
                path.0.push(element.clone());
                walk(
                    l_map.get(element).copied(),
                    r_map.get(element).copied(),
                    sem,
                    &item_cur,
                    path,
                    out,
                )?;
                path.0.pop();
            }
        }
        Ok(true)
    }
    fn is_container(value: Option<&Value>) -> bool {
        matches!(value, Some(Value::Object(_) | Value::Array(_)))
    }
    fn same_kind(lhs: &Value, rhs: &Value) -> bool {
        matches!(
            (lhs, rhs),
            (Value::Object(_), Value::Object(_)) | (Value::Array(_), Value::Array(_))
        ) || (!is_container(Some(lhs)) && !is_container(Some(rhs)))
    }
    fn walk(
        lhs: Option<&Value>,
        rhs: Option<&Value>,
        sem: &Semantics,
        cur: &Cursor<'_>,
        path: &mut Path,
        out: &mut Comparison,
    ) -> Result<(), Error> {
        match (lhs, rhs) {
            (Some(l), Some(r)) if !same_kind(l, r) => {
                // A change of kind (a map replaced by a scalar, ...): as structured-merge-diff,
                // each side's children are compared against nothing, and the node itself is a
                // modified leaf.
                if is_container(lhs) {
                    children(lhs, None, sem, cur, path, out)?;
                }
                if is_container(rhs) {
                    children(None, rhs, sem, cur, path, out)?;
                }
                leaf(lhs, rhs, path, out);
            }
            _ if is_container(lhs) || is_container(rhs) => {
                if children(lhs, rhs, sem, cur, path, out)? {
                    if !path.0.is_empty() {
                        match (lhs, rhs) {
                            (None, Some(_)) => out.added.insert(path.clone()),
                            (Some(_), None) => out.removed.insert(path.clone()),
                            _ => {}
                        }
                    }
                } else {
                    leaf(lhs, rhs, path, out);
                }
            }
            _ => leaf(lhs, rhs, path, out),
        }
        Ok(())
    }
    let mut out = Comparison::default();
    walk(
        Some(lhs),
        Some(rhs),
        sem,
        &sem.root(),
        &mut Path::default(),
        &mut out,
    )?;
    Ok(out)
}

/// A value with its null map fields removed, recursively. structured-merge-diff merges a null
/// from an apply configuration as a value (so it conflicts and is owned like any other), and the
/// apiserver then drops it (typed decoding for built-in kinds, pruning of non-nullable fields
/// for custom resources): a null in an apply configuration unsets the field.
pub(crate) fn without_null_fields(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_null_fields(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_null_fields).collect()),
        other => other.clone(),
    }
}

/// Merges an apply configuration into a live object (structured-merge-diff `Merge`): the
/// configuration wins on every leaf; granular maps merge by field; non-atomic lists merge by
/// item identity, keeping the configuration's order for its items and live-only items near
/// their old neighbours.
pub(crate) fn merge(live: &Value, config: &Value, sem: &Semantics) -> Result<Value, Error> {
    fn walk(
        lhs: &Value,
        rhs: &Value,
        sem: &Semantics,
        cur: &Cursor<'_>,
        root: bool,
    ) -> Result<Value, Error> {
        match (lhs, rhs) {
            (Value::Object(l), Value::Object(r))
                if root || sem.map_type(cur) == MapType::Granular =>
            {
                // Built key by key rather than by cloning `l` and overwriting, which would copy
                // every merged subtree once per level.
                let mut out = Map::new();
                for (key, l_child) in l {
                    let merged = match r.get(key) {
                        Some(r_child) => walk(l_child, r_child, sem, &sem.field(cur, key), false)?,
                        None => l_child.clone(),
                    };
                    out.insert(key.clone(), merged);
                }
                for (key, r_child) in r {
                    if !l.contains_key(key) {
                        out.insert(key.clone(), r_child.clone());
                    }
                }
                Ok(Value::Object(out))
            }
            (Value::Array(l), Value::Array(r)) => {
                let list_type = sem.list_type(cur);
                if list_type == ListType::Atomic || (l.is_empty() && r.is_empty()) {
                    return Ok(rhs.clone());
                }
                merge_list(l, r, &list_type, sem, &sem.item(cur))
            }
            _ => Ok(rhs.clone()),
        }
    }
    fn merge_list(
        lhs: &[Value],
        rhs: &[Value],
        list_type: &ListType,
        sem: &Semantics,
        item_cur: &Cursor<'_>,
    ) -> Result<Value, Error> {
        let l_items = index_items(list_type, lhs)?;
        let r_items = index_items(list_type, rhs)?;
        let l_map: BTreeMap<&PathElement, &Value> = l_items.iter().map(|(e, v)| (e, *v)).collect();
        let r_map: BTreeMap<&PathElement, &Value> = r_items.iter().map(|(e, v)| (e, *v)).collect();
        let merge_item = |element: &PathElement| -> Result<Value, Error> {
            match (l_map.get(element), r_map.get(element)) {
                (Some(l), Some(r)) => walk(l, r, sem, item_cur, false),
                (Some(v), None) | (None, Some(v)) => Ok((*v).clone()),
                (None, None) => Ok(Value::Null),
            }
        };
        // The interleaving below is structured-merge-diff's `visitListItems`.
        let mut shared_order = r_items
            .iter()
            .map(|(e, _)| e)
            .filter(|e| l_map.contains_key(e))
            .collect::<Vec<_>>()
            .into_iter();
        let mut next_shared = shared_order.next();
        let mut merged_rhs: BTreeSet<&PathElement> = BTreeSet::new();
        let mut out = Vec::with_capacity(l_items.len().max(r_items.len()));
        let (mut li, mut ri) = (0, 0);
        while li < l_items.len() || ri < r_items.len() {
            if li < l_items.len() && ri < r_items.len() {
                let element = &l_items[li].0;
                if *element == r_items[ri].0 {
                    merged_rhs.insert(element);
                    out.push(merge_item(element)?);
                    li += 1;
                    ri += 1;
                    next_shared = shared_order.next();
                    continue;
                }
                if r_map.contains_key(element) && next_shared.is_some_and(|n| n != element) {
                    li += 1;
                    continue;
                }
            }
            if li < l_items.len() {
                let element = &l_items[li].0;
                if !r_map.contains_key(element) {
                    out.push(l_items[li].1.clone());
                    li += 1;
                    continue;
                } else if merged_rhs.contains(element) {
                    li += 1;
                    continue;
                }
            }
            if ri < r_items.len() {
                let element = &r_items[ri].0;
                merged_rhs.insert(element);
                out.push(merge_item(element)?);
                ri += 1;
                if next_shared.is_some_and(|n| n == element) {
                    next_shared = shared_order.next();
                }
            }
        }
        Ok(Value::Array(out))
    }
    walk(live, config, sem, &sem.root(), true)
}

/// Removes the subtrees at the paths of `set` from `value` (structured-merge-diff
/// `RemoveItems`). Atomic lists and maps are never entered.
pub(crate) fn remove_items(
    value: &Value,
    set: &FieldSet,
    owned: &FieldSet,
    sem: &Semantics,
) -> Result<Value, Error> {
    fn walk(
        value: &Value,
        set: &FieldSet,
        owned: &FieldSet,
        sem: &Semantics,
        cur: &Cursor<'_>,
        path: &Path,
    ) -> Result<Value, Error> {
        match value {
            Value::Object(map) if path.0.is_empty() || sem.map_type(cur) == MapType::Granular => {
                let mut out = Map::new();
                for (key, child) in map {
                    let child_path = path.child(PathElement::Field(key.as_str().into()));
                    if set.contains(&child_path) {
                        continue;
                    }
                    if !set.has_children_of(&child_path) {
                        out.insert(key.clone(), child.clone());
                        continue;
                    }
                    let pruned = walk(child, set, owned, sem, &sem.field(cur, key), &child_path)?;
                    // structured-merge-diff turns a map or list emptied by removal into null,
                    // which the apiserver then drops: the field disappears, unless someone owns
                    // it as such (applied `{}`), in which case it stays, empty.
                    let is_empty = |v: &Value| match v {
                        Value::Object(m) => m.is_empty(),
                        Value::Array(a) => a.is_empty(),
                        _ => false,
                    };
                    let emptied =
                        is_empty(&pruned) && !is_empty(child) && !owned.contains(&child_path);
                    if !emptied {
                        out.insert(key.clone(), pruned);
                    }
                }
                Ok(Value::Object(out))
            }
            Value::Array(items) => {
                let list_type = sem.list_type(cur);
                if list_type == ListType::Atomic {
                    return Ok(value.clone());
                }
                let item_cur = sem.item(cur);
                let mut out = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    let item_path = path.child(item_element(&list_type, index, item)?);
                    if set.contains(&item_path) {
                        continue;
                    }
                    out.push(if set.has_children_of(&item_path) {
                        walk(item, set, owned, sem, &item_cur, &item_path)?
                    } else {
                        item.clone()
                    });
                }
                Ok(Value::Array(out))
            }
            _ => Ok(value.clone()),
        }
    }
    walk(value, set, owned, sem, &sem.root(), &Path::default())
}

/// The set plus every ancestor reached through a declared (struct) field, as
/// structured-merge-diff's `EnsureNamedFieldsAreMembers`: owning `.spec.strategy.type` also
/// means owning `.spec.strategy` and `.spec`, but not a list item or a free-form map key.
pub(crate) fn ensure_named_fields(set: &FieldSet, sem: &Semantics) -> FieldSet {
    let mut out = set.clone();
    for path in set.iter() {
        let mut cur = sem.root();
        let last = path.0.len().saturating_sub(1);
        for (depth, element) in path.0.iter().enumerate().take(last) {
            match element {
                PathElement::Field(name) => {
                    let prefix = &path.0[..=depth];
                    if !out.contains_slice(prefix) && sem.is_declared_field(&cur, name.as_ref()) {
                        out.insert(Path(prefix.to_vec()));
                    }
                    if depth + 1 < last {
                        cur = sem.field(&cur, name.as_ref());
                    }
                }
                _ => {
                    if depth + 1 < last {
                        cur = sem.item(&cur);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(set: &FieldSet) -> Vec<String> {
        set.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn field_set_owns_leaves_list_items_and_atomic_values() {
        let sem = Semantics::builtin();
        let obj = json!({
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "x"}},
                "template": {"spec": {"containers": [{"name": "app", "image": "i", "args": ["a"]}]}}
            }
        });
        assert_eq!(
            paths(&to_field_set(&obj, &sem).unwrap()),
            [
                ".spec.replicas",
                ".spec.selector",
                r#".spec.template.spec.containers[name="app"]"#,
                r#".spec.template.spec.containers[name="app"].args"#,
                r#".spec.template.spec.containers[name="app"].image"#,
                r#".spec.template.spec.containers[name="app"].name"#,
            ]
        );
    }

    #[test]
    fn field_set_rejects_duplicate_keys_in_an_associative_list() {
        let sem = Semantics::builtin();
        let obj = json!({"spec": {"containers": [{"name": "a"}, {"name": "a"}]}});
        assert!(matches!(
            to_field_set(&obj, &sem),
            Err(Error::InvalidList(_))
        ));
    }

    #[test]
    fn compare_reports_new_maps_and_items_as_added_non_leaves() {
        let sem = Semantics::builtin();
        let old = json!({"metadata": {"name": "x"}});
        let new = json!({"metadata": {"name": "y", "labels": {"a": "1"}}});
        let cmp = compare(&old, &new, &sem).unwrap();
        assert_eq!(
            paths(&cmp.added),
            [".metadata.labels", ".metadata.labels.a"]
        );
        assert_eq!(paths(&cmp.modified), [".metadata.name"]);
        assert!(cmp.removed.is_empty());
    }

    #[test]
    fn merge_keeps_live_only_items_and_takes_config_order_for_shared_items() {
        let sem = Semantics::builtin();
        let live = json!({"spec": {"containers": [
            {"name": "a", "image": "1"}, {"name": "b", "image": "1"}, {"name": "c", "image": "1"}
        ]}});
        let config = json!({"spec": {"containers": [
            {"name": "c", "image": "2"}, {"name": "a", "image": "2"}
        ]}});
        let merged = merge(&live, &config, &sem).unwrap();
        assert_eq!(
            merged,
            json!({"spec": {"containers": [
                {"name": "b", "image": "1"}, {"name": "c", "image": "2"}, {"name": "a", "image": "2"}
            ]}})
        );
    }

    #[test]
    fn remove_items_drops_whole_subtrees() {
        let sem = Semantics::builtin();
        let obj = json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"x": {"y": 1}, "z": 2}});
        let set: FieldSet = [
            Path::fields(&["spec", "x"]),
            Path::fields(&["metadata", "finalizers"]).child(PathElement::Value("\"a\"".into())),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            remove_items(&obj, &set, &FieldSet::new(), &sem).unwrap(),
            json!({"metadata": {"finalizers": ["b"]}, "spec": {"z": 2}})
        );
    }
}
