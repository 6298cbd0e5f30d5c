//! Reading objects back in scenarios: by type or by kind and name, a Deployment's container
//! environment, the timestamps that show install order (object times and HelmRelease
//! timings), and server-side printed tables.

use std::fmt::Debug;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::EnvVar;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::api::{DynamicObject, GroupVersionKind};
use kube::discovery::{ApiResource, Scope};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;

use upstart_api::v1alpha1::HelmRelease;

use crate::{Error, TestEnv};

/// The environment of one container of a Deployment's pod template.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerEnv {
    /// The container's name.
    pub container: String,
    /// Its `env`, in order.
    pub vars: Vec<EnvVar>,
}

impl ContainerEnv {
    /// The literal `value` of variable `name` (`None` when absent or set through `valueFrom`).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.var(name).and_then(|v| v.value.as_deref())
    }

    /// Variable `name`.
    pub fn var(&self, name: &str) -> Option<&EnvVar> {
        self.vars.iter().find(|v| v.name == name)
    }

    /// Every variable's name, in order.
    pub fn names(&self) -> Vec<&str> {
        self.vars.iter().map(|v| v.name.as_str()).collect()
    }
}

/// When an object was created and since when it is Ready, to check install order.
///
/// Kubernetes writes both with a precision of one second, so two objects installed within
/// the same second compare equal: order checks should be "not later than", never "earlier than".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectTimes {
    /// `Kind namespace/name` or `Kind name`.
    pub object: String,
    /// `metadata.creationTimestamp`.
    pub created: Option<Timestamp>,
    /// `lastTransitionTime` of the `Ready` condition while it is `True`.
    pub ready_since: Option<Timestamp>,
}

impl ObjectTimes {
    /// The times of `object` (any kind, as JSON), described as `description`.
    pub fn of(description: &str, object: &Value) -> ObjectTimes {
        let parse = |v: &Value| v.as_str().and_then(|s| s.parse::<Timestamp>().ok());
        let ready_since = object["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .filter(|c| c["status"] == "True")
            .and_then(|c| parse(&c["lastTransitionTime"]));
        ObjectTimes {
            object: description.to_owned(),
            created: parse(&object["metadata"]["creationTimestamp"]),
            ready_since,
        }
    }
}

/// When a HelmRelease moved through its life, from its `status.timings` (the operator's clock,
/// one-second precision like every Kubernetes time: compare with "not later than").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseTimes {
    /// `namespace/name`.
    pub release: String,
    /// When it was first seen for its current generation.
    pub created_at: Option<Timestamp>,
    /// When its dependencies were all Ready and it started applying.
    pub started_at: Option<Timestamp>,
    /// When it became Ready.
    pub ready_at: Option<Timestamp>,
}

impl ReleaseTimes {
    /// The timings of `release`.
    pub fn of(release: &HelmRelease) -> ReleaseTimes {
        let timings = release.status.as_ref().and_then(|s| s.timings.as_ref());
        let at = |t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
            t.and_then(|t| serde_json::to_value(t).ok())
                .and_then(|v| v.as_str().and_then(|s| s.parse::<Timestamp>().ok()))
        };
        ReleaseTimes {
            release: format!(
                "{}/{}",
                release.metadata.namespace.as_deref().unwrap_or_default(),
                release.metadata.name.as_deref().unwrap_or_default()
            ),
            created_at: at(timings.and_then(|t| t.created_at.as_ref())),
            started_at: at(timings.and_then(|t| t.started_at.as_ref())),
            ready_at: at(timings.and_then(|t| t.ready_at.as_ref())),
        }
    }
}

/// A `meta.k8s.io/v1` Table, as `kubectl get` receives it: column names and rows of cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The column names (`Name` first, then the printer columns).
    pub columns: Vec<String>,
    /// The rows' cells, in column order.
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    /// Reads a Table answer.
    pub fn from_value(table: &Value) -> Result<Table, String> {
        if table["kind"] != "Table" {
            return Err(format!("not a Table: kind {}", table["kind"]));
        }
        let columns = table["columnDefinitions"]
            .as_array()
            .ok_or("no columnDefinitions")?
            .iter()
            .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        let rows = table["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| r["cells"].as_array().cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Table { columns, rows })
    }

    /// The cell of column `column` in the row whose `Name` cell is `name`.
    pub fn cell(&self, name: &str, column: &str) -> Option<&Value> {
        let name_at = self.columns.iter().position(|c| c == "Name")?;
        let at = self.columns.iter().position(|c| c == column)?;
        self.rows
            .iter()
            .find(|r| r.get(name_at).and_then(Value::as_str) == Some(name))?
            .get(at)
    }
}

impl TestEnv {
    /// A namespaced object of type `K` in the test namespace, if it exists.
    pub async fn get<K>(&self, name: &str) -> Result<Option<K>, Error>
    where
        K: Resource<Scope = NamespaceResourceScope> + DeserializeOwned + Clone + Debug,
        K::DynamicType: Default,
    {
        self.get_in(self.namespace(), name).await
    }

    /// A namespaced object of type `K` in `namespace` (an environment's namespace, say), if it
    /// exists.
    pub async fn get_in<K>(&self, namespace: &str, name: &str) -> Result<Option<K>, Error>
    where
        K: Resource<Scope = NamespaceResourceScope> + DeserializeOwned + Clone + Debug,
        K::DynamicType: Default,
    {
        Api::<K>::namespaced(self.client().clone(), namespace)
            .get_opt(name)
            .await
            .map_err(Error::kube(format!(
                "reading {} {namespace}/{name}",
                K::kind(&K::DynamicType::default())
            )))
    }

    /// Every namespaced object of type `K` in `namespace`, in name order.
    pub async fn list_in<K>(&self, namespace: &str) -> Result<Vec<K>, Error>
    where
        K: Resource<Scope = NamespaceResourceScope> + DeserializeOwned + Clone + Debug,
        K::DynamicType: Default,
    {
        let mut items = Api::<K>::namespaced(self.client().clone(), namespace)
            .list(&Default::default())
            .await
            .map_err(Error::kube(format!(
                "listing {} in {namespace}",
                K::kind(&K::DynamicType::default())
            )))?
            .items;
        items.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
        Ok(items)
    }

    /// A cluster-scoped object of type `K`, if it exists.
    pub async fn get_cluster_scoped<K>(&self, name: &str) -> Result<Option<K>, Error>
    where
        K: Resource<Scope = ClusterResourceScope> + DeserializeOwned + Clone + Debug,
        K::DynamicType: Default,
    {
        Api::<K>::all(self.client().clone())
            .get_opt(name)
            .await
            .map_err(Error::kube(format!(
                "reading {} {name}",
                K::kind(&K::DynamicType::default())
            )))
    }

    /// The API of a kind found through discovery: in the test namespace for namespaced kinds.
    pub async fn dynamic_api(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<(Api<DynamicObject>, ApiResource, Scope), Error> {
        self.dynamic_api_in(api_version, kind, self.namespace())
            .await
    }

    /// The API of a kind found through discovery: in `namespace` for namespaced kinds.
    pub async fn dynamic_api_in(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
    ) -> Result<(Api<DynamicObject>, ApiResource, Scope), Error> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = kube::discovery::pinned_kind(self.client(), &gvk)
            .await
            .map_err(|source| Error::UnknownKind {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
                source: Box::new(source),
            })?;
        let api = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(self.client().clone(), namespace, &resource),
            Scope::Cluster => Api::all_with(self.client().clone(), &resource),
        };
        Ok((api, resource, caps.scope))
    }

    /// An object of any kind by name (in the test namespace for namespaced kinds), if it
    /// exists.
    pub async fn get_dynamic(
        &self,
        api_version: &str,
        kind: &str,
        name: &str,
    ) -> Result<Option<DynamicObject>, Error> {
        let (api, _, _) = self.dynamic_api(api_version, kind).await?;
        api.get_opt(name)
            .await
            .map_err(Error::kube(format!("reading {kind} {name}")))
    }

    /// The environment of a container (the first one when `container` is `None`) of
    /// Deployment `name` in the test namespace.
    pub async fn deployment_env(
        &self,
        name: &str,
        container: Option<&str>,
    ) -> Result<ContainerEnv, Error> {
        self.deployment_env_in(self.namespace(), name, container)
            .await
    }

    /// Like [`TestEnv::deployment_env`], for a Deployment of `namespace` (an environment's).
    pub async fn deployment_env_in(
        &self,
        namespace: &str,
        name: &str,
        container: Option<&str>,
    ) -> Result<ContainerEnv, Error> {
        let what = format!("Deployment {namespace}/{name}");
        let deployment: Deployment = self
            .get_in(namespace, name)
            .await?
            .ok_or_else(|| Error::NotFound { what: what.clone() })?;
        let containers = deployment
            .spec
            .and_then(|s| s.template.spec)
            .map(|s| s.containers)
            .unwrap_or_default();
        let found = match container {
            Some(wanted) => containers.into_iter().find(|c| c.name == wanted),
            None => containers.into_iter().next(),
        }
        .ok_or_else(|| Error::NotFound {
            what: format!("container {} of {what}", container.unwrap_or("(first)")),
        })?;
        Ok(ContainerEnv {
            container: found.name,
            vars: found.env.unwrap_or_default(),
        })
    }

    /// When an object (any kind, by name) was created and since when it is Ready.
    pub async fn times(
        &self,
        api_version: &str,
        kind: &str,
        name: &str,
    ) -> Result<ObjectTimes, Error> {
        let object = self
            .get_dynamic(api_version, kind, name)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: format!("{kind} {name}"),
            })?;
        let value = serde_json::to_value(&object).map_err(|e| Error::Unexpected {
            what: format!("{kind} {name}"),
            message: e.to_string(),
        })?;
        Ok(ObjectTimes::of(&format!("{kind} {name}"), &value))
    }

    /// The `status.timings` of HelmRelease `name` of `namespace` (`None`: the test namespace).
    pub async fn release_times(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<ReleaseTimes, Error> {
        let namespace = namespace.unwrap_or(self.namespace());
        let release: HelmRelease =
            self.get_in(namespace, name)
                .await?
                .ok_or_else(|| Error::NotFound {
                    what: format!("HelmRelease {namespace}/{name}"),
                })?;
        Ok(ReleaseTimes::of(&release))
    }

    /// The objects of a kind (in the test namespace for namespaced kinds) as a Table, the way
    /// `kubectl get` asks for them: the printer columns are the server's.
    pub async fn table(&self, api_version: &str, kind: &str) -> Result<Table, Error> {
        let (_, resource, scope) = self.dynamic_api(api_version, kind).await?;
        let namespace = (scope == Scope::Namespaced).then_some(self.namespace());
        let url = DynamicObject::url_path(&resource, namespace);
        let what = format!("a Table of {kind}");
        let request = http::Request::get(url)
            .header(
                http::header::ACCEPT,
                "application/json;as=Table;v=v1;g=meta.k8s.io",
            )
            .body(Vec::new())
            .map_err(|e| Error::Unexpected {
                what: what.clone(),
                message: e.to_string(),
            })?;
        let answer: Value = self
            .client()
            .request(request)
            .await
            .map_err(Error::kube(format!("listing {what}")))?;
        Table::from_value(&answer).map_err(|message| Error::Unexpected { what, message })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;
    use serde_json::json;

    #[test]
    fn ready_since_is_the_transition_time_of_a_true_ready_condition() {
        let o = json!({
            "metadata": {"creationTimestamp": "2026-01-02T03:04:05Z"},
            "status": {"conditions": [
                {"type": "Reconciling", "status": "True", "lastTransitionTime": "2026-01-02T03:04:06Z"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-02T03:04:09Z"}
            ]}
        });
        let t = ObjectTimes::of("X a", &o);
        assert_eq!(t.created, Some("2026-01-02T03:04:05Z".parse().unwrap()));
        assert_eq!(t.ready_since, Some("2026-01-02T03:04:09Z".parse().unwrap()));
    }

    #[test]
    fn a_false_ready_condition_has_no_ready_since() {
        let o = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-02T03:04:09Z"}
        ]}});
        let t = ObjectTimes::of("X a", &o);
        assert_eq!((t.created, t.ready_since), (None, None));
    }

    #[test]
    fn release_times_come_from_the_status_timings() {
        let release: HelmRelease = serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "HelmRelease",
            "metadata": {"name": "r", "namespace": "ns"},
            "spec": {"chart": "upstart-charts/x"},
            "status": {"timings": {
                "createdAt": "2026-01-02T03:04:05Z",
                "readyAt": "2026-01-02T03:04:09Z"
            }}
        }))
        .unwrap();
        let times = ReleaseTimes::of(&release);
        assert_eq!(times.release, "ns/r");
        assert_eq!(
            times.created_at,
            Some("2026-01-02T03:04:05Z".parse().unwrap())
        );
        assert_eq!(times.started_at, None);
        assert_eq!(
            times.ready_at,
            Some("2026-01-02T03:04:09Z".parse().unwrap())
        );
    }

    #[test]
    fn table_cells_are_found_by_row_name_and_column() {
        let t = Table::from_value(&json!({
            "kind": "Table",
            "columnDefinitions": [{"name": "Name"}, {"name": "Phase"}],
            "rows": [{"cells": ["a", "Ready"]}, {"cells": ["b", "Pending"]}]
        }))
        .unwrap();
        assert_eq!(t.cell("b", "Phase"), Some(&json!("Pending")));
        assert_eq!(t.cell("c", "Phase"), None);
        assert_eq!(t.cell("a", "Nope"), None);
        assert!(Table::from_value(&json!({"kind": "List"})).is_err());
    }

    #[test]
    fn container_env_reads_literal_values_only() {
        let env = ContainerEnv {
            container: "app".into(),
            vars: vec![
                EnvVar {
                    name: "A".into(),
                    value: Some("1".into()),
                    ..EnvVar::default()
                },
                EnvVar {
                    name: "B".into(),
                    value_from: Some(Default::default()),
                    ..EnvVar::default()
                },
            ],
        };
        assert_eq!(env.value("A"), Some("1"));
        assert_eq!(env.value("B"), None);
        assert!(env.var("B").is_some());
        assert_eq!(env.names(), ["A", "B"]);
    }
}
