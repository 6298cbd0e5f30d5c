//! Strategic merge patch (`application/strategic-merge-patch+json`) for built-in kinds.
//!
//! It is JSON merge patch, except that lists with a patch merge key merge item by item and
//! lists of scalars marked `patchStrategy: merge` merge as sets (see the table in
//! [`crate::semantics`]), and that the patch may carry directives: `$patch: replace | merge |
//! delete` on a map or as a list item, `$retainKeys`, `$deleteFromPrimitiveList/<field>` and
//! `$setElementOrder/<field>`. Merged lists are ordered as the apiserver orders them (see
//! `normalize_order`).

use serde_json::{Map, Value};

use crate::Error;
use crate::semantics::{Cursor, Semantics, StrategicList};

/// Applies a strategic merge patch to `original`.
///
/// Errors: [`Error::StrategicMergeUnsupported`] (415) for custom resources,
/// [`Error::InvalidPatch`] for a patch that is not an object, an unknown `$patch` value, or a
/// keyed list item without its merge key.
pub fn strategic_merge(original: &Value, patch: &Value, sem: &Semantics) -> Result<Value, Error> {
    if !sem.supports_strategic_merge() {
        return Err(Error::StrategicMergeUnsupported);
    }
    let Value::Object(patch) = patch else {
        return Err(Error::InvalidPatch(
            "a strategic merge patch must be a JSON object".to_owned(),
        ));
    };
    let empty = Map::new();
    let original = original.as_object().unwrap_or(&empty);
    Ok(merge_map(original, patch, sem, &sem.root())?
        .map_or_else(|| Value::Object(Map::new()), Value::Object))
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// Merges a patch map into an original map; `None` means the map is deleted.
fn merge_map(
    original: &Map<String, Value>,
    patch: &Map<String, Value>,
    sem: &Semantics,
    cur: &Cursor<'_>,
) -> Result<Option<Map<String, Value>>, Error> {
    match patch.get(PATCH).map(|d| d.as_str()) {
        None | Some(Some("merge")) => {}
        Some(Some("replace")) => return Ok(Some(strip_map(patch))),
        Some(Some("delete")) => return Ok(None),
        Some(_) => {
            return Err(Error::InvalidPatch(
                "unknown $patch directive in a map".to_owned(),
            ));
        }
    }
    let mut result = original.clone();
    for (key, patch_value) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let doomed = patch_value
                .as_array()
                .ok_or_else(|| Error::InvalidPatch(format!("{key} must be a list")))?;
            if let Some(Value::Array(list)) = result.get_mut(field) {
                list.retain(|item| !doomed.contains(item));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        if patch_value.is_null() {
            result.remove(key);
            continue;
        }
        let child = sem.field(cur, key);
        let merged = match (result.get(key), patch_value) {
            (original_child, Value::Object(patch_child)) => {
                let empty = Map::new();
                let original_child = original_child.and_then(Value::as_object).unwrap_or(&empty);
                merge_map(original_child, patch_child, sem, &child)?.map(Value::Object)
            }
            (original_child, Value::Array(patch_items)) => {
                let original_items = match original_child {
                    Some(Value::Array(items)) => items.as_slice(),
                    _ => &[],
                };
                Some(Value::Array(merge_list(
                    original_items,
                    patch_items,
                    sem,
                    &child,
                )?))
            }
            (_, scalar) => Some(scalar.clone()),
        };
        match merged {
            Some(value) => result.insert(key.clone(), value),
            None => result.remove(key),
        };
    }
    // Element order is applied after merging so that it also covers lists the patch did not
    // otherwise touch (kubectl sends it for every list it diffs).
    for (key, order) in patch {
        if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
            let order = order
                .as_array()
                .ok_or_else(|| Error::InvalidPatch(format!("{key} must be a list")))?;
            let key = match sem.strategic_list(&sem.field(cur, field)) {
                StrategicList::MergeByKey(key) => Some(key),
                _ => None,
            };
            let server: &[Value] = match original.get(field) {
                Some(Value::Array(items)) => items,
                _ => &[],
            };
            if let Some(Value::Array(items)) = result.get_mut(field) {
                *items = normalize_order(std::mem::take(items), order, server, key.as_deref());
            }
        }
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let retain = retain
            .as_array()
            .ok_or_else(|| Error::InvalidPatch("$retainKeys must be a list".to_owned()))?;
        result.retain(|key, _| retain.iter().any(|r| r.as_str() == Some(key)));
    }
    Ok(Some(result))
}

fn merge_list(
    original: &[Value],
    patch: &[Value],
    sem: &Semantics,
    cur: &Cursor<'_>,
) -> Result<Vec<Value>, Error> {
    let is_directive =
        |item: &Value, directive: &str| item.get(PATCH).and_then(Value::as_str) == Some(directive);
    // A `{"$patch": "replace"}` item replaces the whole list with the other items.
    if patch.iter().any(|item| is_directive(item, "replace")) {
        return Ok(patch
            .iter()
            .filter(|item| !is_directive(item, "replace"))
            .map(strip)
            .collect());
    }
    match sem.strategic_list(cur) {
        StrategicList::Replace => Ok(patch.iter().map(strip).collect()),
        StrategicList::MergePrimitives => {
            let mut result = original.to_vec();
            for item in patch {
                if !result.contains(item) {
                    result.push(item.clone());
                }
            }
            Ok(normalize_order(result, patch, original, None))
        }
        StrategicList::MergeByKey(merge_key) => {
            let item_cur = sem.item(cur);
            let mut result = original.to_vec();
            for item in patch {
                let Value::Object(patch_item) = item else {
                    return Err(Error::InvalidPatch(format!(
                        "the list merged by {merge_key:?} holds a non-object item"
                    )));
                };
                let key_value = patch_item.get(&merge_key).ok_or_else(|| {
                    Error::InvalidPatch(format!(
                        "map does not contain declared merge key: {merge_key}"
                    ))
                })?;
                let position = result
                    .iter()
                    .position(|o| o.get(&merge_key) == Some(key_value));
                if is_directive(item, "delete") {
                    result.retain(|o| o.get(&merge_key) != Some(key_value));
                    continue;
                }
                let empty = Map::new();
                let original_item = position
                    .and_then(|i| result[i].as_object())
                    .unwrap_or(&empty);
                let merged = merge_map(original_item, patch_item, sem, &item_cur)?;
                match (position, merged) {
                    (Some(i), Some(merged)) => result[i] = Value::Object(merged),
                    (Some(i), None) => {
                        result.remove(i);
                    }
                    (None, Some(merged)) => result.push(Value::Object(merged)),
                    (None, None) => {}
                }
            }
            let order: Vec<Value> = patch
                .iter()
                .filter(|item| item.get(PATCH).is_none())
                .cloned()
                .collect();
            Ok(normalize_order(result, &order, original, Some(&merge_key)))
        }
    }
}

/// Orders a merged list as the apiserver does (`normalizeElementOrder`): the items the patch
/// (or its `$setElementOrder`) names, in that order, interleaved with the items only the server
/// had, in their old order; a server-only item goes before a named item when it came before it
/// in the old list. An item new to the server therefore lands before the server-only items that
/// follow it in the patch, which is why a new container or env var often appears first.
fn normalize_order(
    merged: Vec<Value>,
    order: &[Value],
    server: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let same = |a: &Value, b: &Value| match key {
        Some(key) => a.get(key).is_some() && a.get(key) == b.get(key),
        None => a == b,
    };
    let index_in = |list: &[Value], item: &Value| list.iter().position(|x| same(x, item));
    let (mut named, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| index_in(order, item).is_some());
    named.sort_by_key(|item| index_in(order, item));
    server_only.sort_by_key(|item| index_in(server, item).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(named.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = named.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (index_in(server, l), index_in(server, r)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// A patch value as it is stored: directives and null fields removed.
fn strip(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(strip_map(map)),
        Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
        other => other.clone(),
    }
}

fn strip_map(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(key, value)| !key.starts_with('$') && !value.is_null())
        .map(|(key, value)| (key.clone(), strip(value)))
        .collect()
}
