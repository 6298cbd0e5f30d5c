//! Reads: list with pagination (continue tokens over a snapshot resourceVersion) and the start
//! of watches, from the current state or from the watch history.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};

use super::{Event, EventType, ListQuery, ListResult, ObjKey, Store, WatchStart};
use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::registry::ResourceType;

impl Store {
    /// A list, or one page of it: later pages are read at the first page's resourceVersion, from
    /// the key after the last one returned.
    pub fn list(&self, resource: &ResourceType, query: &ListQuery) -> ApiResult<ListResult> {
        let (snapshot_rv, start) = match &query.continue_token {
            Some(token) => decode_continue(token)?,
            None => (self.rv, None),
        };
        if query.continue_token.is_some() && snapshot_rv < self.evicted_rv {
            // The apiserver's answer once etcd has compacted the first page's revision.
            return Err(ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ));
        }
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0usize;
        if let Some(bucket) = self.bucket(&resource.storage_key()) {
            // Keys are (namespace, name): a namespace's objects are one range of the bucket, as
            // they are one key prefix in etcd, so a namespaced list does not visit the others.
            let in_scope: Box<dyn Iterator<Item = (&ObjKey, &Arc<Value>)>> = match &query.namespace
            {
                Some(namespace) => Box::new(
                    bucket
                        .range((namespace.clone(), String::new())..)
                        .take_while(move |((object_namespace, _), _)| {
                            object_namespace == namespace
                        }),
                ),
                None => Box::new(bucket.iter()),
            };
            let after_start = in_scope.filter(|(object_key, _)| match &start {
                Some(start_key) => *object_key > start_key,
                None => true,
            });
            for (object_key, obj) in after_start {
                if !query.matches(obj) {
                    continue;
                }
                if query.limit.is_some_and(|limit| items.len() >= limit) {
                    if next.is_none() {
                        next = Some(object_key.clone());
                    }
                    remaining += 1;
                    continue;
                }
                items.push(obj.clone());
            }
        }
        let continue_token = next.map(|_| {
            let last = items.last().map(|obj| {
                (
                    meta::namespace(obj).to_string(),
                    meta::name(obj).to_string(),
                )
            });
            encode_continue(snapshot_rv, last.as_ref())
        });
        Ok(ListResult {
            items,
            resource_version: snapshot_rv,
            remaining: continue_token.as_ref().map(|_| remaining),
            continue_token,
        })
    }

    /// Starts a watch. `since`: None = from now with the current state as ADDED events.
    pub fn watch(
        &self,
        resource: &ResourceType,
        query: &ListQuery,
        since: Option<u64>,
    ) -> ApiResult<WatchStart> {
        let key = resource.storage_key();
        let rx = self.watchers.subscribe();
        let mut initial = Vec::new();
        match since {
            None => {
                if let Some(bucket) = self.bucket(&key) {
                    for obj in bucket.values().filter(|obj| query.matches(obj)) {
                        initial.push((EventType::Added, obj.clone()));
                    }
                }
            }
            Some(rv) => {
                if rv < self.evicted_rv {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {rv} ({})",
                        self.evicted_rv + 1
                    )));
                }
                let since_rv = self
                    .history
                    .iter()
                    .filter(|event| event.rv > rv && event.resource == key);
                for event in since_rv {
                    if let Some(event_type) = filter_event(event, query) {
                        initial.push((event_type, event.object.clone()));
                    }
                }
            }
        }
        Ok(WatchStart {
            initial,
            rx,
            rv: self.rv,
        })
    }
}

/// The watch event a watcher with `query` sees for `event`, taking selector transitions into
/// account: an object that stops matching is DELETED for that watcher, one that starts is ADDED.
pub fn filter_event(event: &Event, query: &ListQuery) -> Option<EventType> {
    let now = query.matches(&event.object);
    match event.kind {
        EventType::Modified => {
            let before = event.old.as_ref().is_some_and(|old| query.matches(old));
            match (before, now) {
                (true, true) => Some(EventType::Modified),
                (false, true) => Some(EventType::Added),
                (true, false) => Some(EventType::Deleted),
                (false, false) => None,
            }
        }
        added_or_deleted => now.then_some(added_or_deleted),
    }
}

/// A continue token in the apiserver's form: the snapshot resourceVersion and the last key
/// returned, base64-encoded JSON.
fn encode_continue(rv: u64, last: Option<&ObjKey>) -> String {
    let start = last
        .map(|(namespace, name)| format!("{namespace}/{name}"))
        .unwrap_or_default();
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start});
    base64::engine::general_purpose::STANDARD.encode(token.to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, Option<ObjKey>)> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad())?;
    let decoded: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = decoded["rv"].as_u64().ok_or_else(bad)?;
    let start = decoded["start"].as_str().ok_or_else(bad)?;
    let key = start
        .split_once('/')
        .map(|(namespace, name)| (namespace.to_string(), name.to_string()))
        .ok_or_else(bad)?;
    Ok((rv, Some(key)))
}
