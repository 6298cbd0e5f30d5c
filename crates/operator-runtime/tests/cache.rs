//! `Cache::in_namespace` answers only once the cache's first list is complete (an empty store
//! before that would claim a namespace holds nothing), then with that namespace's objects as
//! the watch last saw them.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::watcher;
use upstart_control_plane::{ControlPlane, Options};
use upstart_operator_runtime::Cache;

fn named<K: kube::Resource<DynamicType = ()> + Default>(name: &str) -> K {
    let mut object = K::default();
    *object.meta_mut() = ObjectMeta {
        name: Some(name.into()),
        ..ObjectMeta::default()
    };
    object
}

fn names(objects: &[std::sync::Arc<ConfigMap>]) -> Vec<String> {
    let mut names: Vec<String> = objects
        .iter()
        .map(|o| o.metadata.name.clone().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_namespace_is_unknown_until_the_first_list_then_holds_only_its_own_objects() {
    let cp = ControlPlane::start(Options::default());
    let client = cp.client();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &named("other"))
        .await
        .unwrap();
    let create = |namespace: &str, name: &str| {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let object: ConfigMap = named(name);
        async move { api.create(&PostParams::default(), &object).await.unwrap() }
    };
    create("default", "a").await;
    create("other", "b").await;

    let (cache, events) = Cache::watch(
        Api::<ConfigMap>::all(client.clone()),
        watcher::Config::default(),
    );
    assert!(
        cache.in_namespace("default").is_none(),
        "not listed yet: unknown, not empty"
    );
    tokio::spawn(events.for_each(|_| async {}));
    let mut listed = None;
    for _ in 0..500 {
        listed = cache.in_namespace("default");
        if listed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(names(&listed.expect("the first list completes")), ["a"]);
    assert_eq!(
        names(&cache.in_namespace("empty").unwrap()),
        Vec::<String>::new()
    );

    create("default", "c").await;
    let mut seen = Vec::new();
    for _ in 0..500 {
        seen = names(&cache.in_namespace("default").unwrap());
        if seen.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, ["a", "c"], "a change reaches the cache");
    assert_eq!(names(&cache.in_namespace("other").unwrap()), ["b"]);
}
