//! What the web view's pages show, as plain serialisable data built by pure functions from what
//! the cluster holds: the environments list, one environment (its graph laid out in lanes and
//! levels, each node's phase, what it waits for, its output key names, its wiring, the critical
//! path) and the catalog.
//!
//! Nothing here reads a Secret or a ConfigMap: output *names* come from the releases' and
//! services' status (`status.outputs`, `status.exportedOutputs`), which never hold values.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::Value;
use upstart_api::v1alpha1::{HelmReleaseSpec, UpstartEnvironment, UpstartService};
use upstart_dag::{DependencyGraph, Expressions, NodeId, NodeKind, OfflineContext};

use crate::cluster::Live;
use crate::graph::GraphView;
use crate::status;

/// The annotation naming who asked for an object, as `upstart env create` sets it.
pub use upstart_api::labels::REQUESTER_ANNOTATION;

/// Events shown on an environment's page.
pub const EVENTS_SHOWN: usize = 20;

/// The lane of environment-wide releases.
pub const ENVIRONMENT_LANE: &str = "environment releases";
/// The lane of releases that belong to neither a service nor the environment.
pub const OTHER_LANE: &str = "other releases";

/// One row of the environments list.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentRow {
    /// `metadata.name`.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Who asked for it (see [`requester`]).
    pub requester: Requester,
    /// Phase (`Pending` before the operator reports one).
    pub phase: String,
    /// Ready services.
    pub ready_services: i32,
    /// Services in all.
    pub total_services: i32,
    /// Seconds from creation to Ready, once Ready.
    pub time_to_ready_seconds: Option<f64>,
    /// When it deletes itself (RFC 3339), if ever.
    pub expires_at: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
}

/// Who asked for an environment, and where that was read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Requester {
    /// The name.
    pub name: String,
    /// `annotation` ([`REQUESTER_ANNOTATION`]), `fieldManager` (the manager of the object's
    /// first managed-fields entry: the tool that created it) or `unknown`.
    pub source: &'static str,
}

/// Who asked for an object: [`REQUESTER_ANNOTATION`], else the first field manager.
pub fn requester(meta: &ObjectMeta) -> Requester {
    if let Some(name) = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(REQUESTER_ANNOTATION))
        .filter(|n| !n.is_empty())
    {
        return Requester {
            name: name.clone(),
            source: "annotation",
        };
    }
    let first_manager = meta
        .managed_fields
        .iter()
        .flatten()
        .filter(|f| f.subresource.as_deref().unwrap_or_default().is_empty())
        .min_by_key(|f| f.time.as_ref().map(|t| t.0))
        .and_then(|f| f.manager.clone());
    match first_manager {
        Some(name) => Requester {
            name,
            source: "fieldManager",
        },
        None => Requester {
            name: String::new(),
            source: "unknown",
        },
    }
}

/// The list page's row of an environment, from its status alone.
pub fn environment_row(environment: &UpstartEnvironment) -> EnvironmentRow {
    let status = environment.status.as_ref();
    EnvironmentRow {
        name: environment.metadata.name.clone().unwrap_or_default(),
        namespace: crate::cluster::environment_namespace(environment),
        requester: requester(&environment.metadata),
        phase: status
            .and_then(|s| s.phase)
            .map_or_else(|| "Pending".to_owned(), |p| format!("{p:?}")),
        ready_services: status.and_then(|s| s.ready_services).unwrap_or(0),
        total_services: status
            .and_then(|s| s.total_services)
            .unwrap_or_else(|| i32::try_from(environment.spec.services.len()).unwrap_or(0)),
        time_to_ready_seconds: status.and_then(|s| s.time_to_ready_seconds),
        expires_at: status
            .and_then(|s| s.expires_at.as_ref())
            .map(|t| t.0.to_string()),
        created_at: environment
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
    }
}

/// One environment, as its page shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentView {
    /// The summary row (requester, phase, counts, expiry).
    pub summary: EnvironmentRow,
    /// Whether it is Ready.
    pub ready: bool,
    /// Ready and total releases.
    pub releases: (usize, usize),
    /// Seconds since creation (or to Ready, once Ready).
    pub elapsed_seconds: Option<f64>,
    /// The Ready condition's message when not Ready.
    pub message: Option<String>,
    /// The graph.
    pub graph: Graph,
    /// The chain of releases that decided its time to ready, once Ready.
    pub critical_path: Vec<CriticalStep>,
    /// Its namespace's most recent Events, newest first.
    pub events: Vec<EventRow>,
}

/// The graph: lanes (services, the environment's releases, the rest) across install levels.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Graph {
    /// Install levels (columns).
    pub levels: usize,
    /// Lanes (rows), top to bottom.
    pub lanes: Vec<Lane>,
    /// Releases, by lane then level then name.
    pub nodes: Vec<Node>,
    /// `from` depends on `to` (a release id, or a lane id for a service dependency).
    pub edges: Vec<Edge>,
    /// Cycles, as `a -> b -> a` (their releases have no level).
    pub cycles: Vec<String>,
}

/// A service, or the environment's releases, or the rest.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lane {
    /// `service-NAME`, `environment`, `other`.
    pub id: String,
    /// `UpstartService NAME`, [`ENVIRONMENT_LANE`], [`OTHER_LANE`].
    pub title: String,
    /// The service's phase (none for the other lanes).
    pub phase: Option<String>,
    /// Ready releases.
    pub ready: usize,
    /// Releases.
    pub total: usize,
    /// What blocks the service, or why it is not Ready.
    pub note: Option<String>,
    /// Output key names the service exports (never values).
    pub outputs: Vec<String>,
}

/// One release.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// `release-OBJECTNAME`: the DOM id and the SSE key.
    pub id: String,
    /// The HelmRelease's name.
    pub name: String,
    /// `service/key`, or the name.
    pub label: String,
    /// The key inside its service, or the name.
    pub short: String,
    /// Its lane's id.
    pub lane: String,
    /// Install level; none on or behind a cycle.
    pub level: Option<usize>,
    /// Phase (`NotCreated` before the object exists).
    pub phase: String,
    /// Ready.
    pub ready: bool,
    /// Unready dependencies, as users name them.
    pub waits_for: Vec<String>,
    /// The Ready condition's message, when not Ready.
    pub message: Option<String>,
    /// Seconds in its current stage, or its install time once Ready.
    pub time_seconds: Option<f64>,
    /// The chart (and version, when pinned).
    pub chart: String,
    /// Output key names it publishes (never values).
    pub outputs: Vec<String>,
    /// On the critical path: its wait and install seconds.
    pub critical: Option<CriticalStep>,
    /// What its values read from each dependency.
    pub wiring: Vec<Wire>,
}

/// `from` depends on `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Edge {
    /// A node id.
    pub from: String,
    /// A node id, or a lane id.
    pub to: String,
    /// Whether both ends are on the critical path.
    pub critical: bool,
}

/// A step of the critical path.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CriticalStep {
    /// The release.
    pub release: String,
    /// Seconds until it could start.
    pub wait_seconds: f64,
    /// Seconds from its start to Ready.
    pub install_seconds: f64,
}

/// What one dependency feeds into a release's values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Wire {
    /// The dependency as written.
    pub dependency: String,
    /// The alias expressions use.
    pub alias: String,
    /// Values keys (dotted paths) and the outputs they read: `(path, alias.outputs.KEY)`.
    pub reads: Vec<(String, String)>,
}

/// One Event.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRow {
    /// RFC 3339.
    pub time: Option<String>,
    /// `Normal`, `Warning`.
    pub type_: String,
    /// The reason.
    pub reason: String,
    /// `Kind/name`.
    pub object: String,
    /// The message.
    pub message: String,
}

/// The id of a release node in the page.
pub fn node_id(name: &str) -> String {
    format!("release-{name}")
}

fn lane_of_service(name: &str) -> String {
    format!("service-{name}")
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn chart(spec: &HelmReleaseSpec) -> String {
    match &spec.version {
        Some(version) => format!("{} {version}", spec.chart),
        None => spec.chart.clone(),
    }
}

/// The spec of a release node: the object's, else its planned service's or environment's.
fn release_spec<'a>(live: &'a Live, node: &NodeId, lane: &LaneKey) -> Option<&'a HelmReleaseSpec> {
    if let Some(release) = live.release(node) {
        return Some(&release.spec);
    }
    let key = |owner: &str| {
        node.name
            .strip_prefix(owner)
            .and_then(|rest| rest.strip_prefix('-'))
            .map(str::to_owned)
    };
    match lane {
        LaneKey::Service(service) => {
            let spec = live
                .service(service)
                .map(|s| &s.spec)
                .or_else(|| live.planned.get(service))?;
            spec.helm_releases.get(&key(service)?)
        }
        LaneKey::Environment => {
            let environment = live.environment.as_ref()?;
            let name = live.environment_name()?;
            environment.spec.helm_releases.get(&key(name)?)
        }
        LaneKey::Other => None,
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum LaneKey {
    Service(String),
    Environment,
    Other,
}

/// What each dependency of `spec` feeds into its values: every values key whose string holds
/// an expression reading `alias.outputs.KEY`, as `upstart plan` lists them under `consumes`.
pub fn wiring(spec: &HelmReleaseSpec, expressions: &Expressions, in_service: bool) -> Vec<Wire> {
    let context = OfflineContext::from_dependencies(&spec.dependencies, true, in_service);
    let mut reads: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    if let Some(values) = &spec.values {
        let mut leaves = Vec::new();
        string_leaves(values, String::new(), &mut leaves);
        for (path, text) in leaves {
            let report =
                expressions.check_offline(&Value::String(text.to_owned()), &path, &context);
            for reference in report.consumes {
                reads.entry(reference.alias.clone()).or_default().insert((
                    path.clone(),
                    format!("{}.outputs.{}", reference.alias, reference.key),
                ));
            }
        }
    }
    spec.dependencies
        .iter()
        .map(|d| Wire {
            dependency: d.name.clone(),
            alias: d.alias().to_owned(),
            reads: reads
                .remove(d.alias())
                .map(|r| r.into_iter().collect())
                .unwrap_or_default(),
        })
        .collect()
}

/// Every string of a values document with its dotted path (`image.tag`, `env[0].value`).
fn string_leaves<'a>(value: &'a Value, path: String, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::String(s) => out.push((path, s)),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                string_leaves(item, format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                string_leaves(item, path, out);
            }
        }
        _ => {}
    }
}

/// The graph of a snapshot at `now`.
pub fn graph(live: &Live, dag: &DependencyGraph, now: jiff::Timestamp) -> Graph {
    let view = GraphView::new("", dag, &live.phases());
    let ready_fn = status::readiness(live, dag);
    let ready: &dyn Fn(&NodeId) -> bool = &ready_fn;
    let expressions = Expressions::new();
    let critical: HashMap<&str, CriticalStep> = live
        .environment
        .as_ref()
        .and_then(|e| e.status.as_ref())
        .map(|s| {
            s.critical_path
                .iter()
                .map(|step| {
                    (
                        step.release.as_str(),
                        CriticalStep {
                            release: step.release.clone(),
                            wait_seconds: step.wait_seconds,
                            install_seconds: step.install_seconds,
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let environment_releases: BTreeSet<String> = match (&live.environment, live.environment_name())
    {
        (Some(environment), Some(name)) => environment
            .spec
            .helm_releases
            .keys()
            .map(|k| upstart_api::names::child_name(name, k))
            .collect(),
        _ => BTreeSet::new(),
    };
    let lane_key = |node: &crate::graph::ViewNode| match &node.service {
        Some(service) => LaneKey::Service(service.clone()),
        None if environment_releases.contains(&node.id.name) => LaneKey::Environment,
        None => LaneKey::Other,
    };

    let mut nodes: Vec<(LaneKey, Node)> = Vec::new();
    for view_node in view
        .nodes
        .iter()
        .filter(|n| n.id.kind == NodeKind::HelmRelease)
    {
        let lane = lane_key(view_node);
        // An environment release is named `<env>-<key>`: its key is enough inside its lane.
        let short = match (&lane, live.environment_name()) {
            (LaneKey::Environment, Some(env)) => view_node
                .id
                .name
                .strip_prefix(&format!("{env}-"))
                .unwrap_or(&view_node.short)
                .to_owned(),
            _ => view_node.short.clone(),
        };
        let row = status::row(short.clone(), &view_node.id, live, dag, ready, now);
        let spec = release_spec(live, &view_node.id, &lane);
        let outputs = live
            .release(&view_node.id)
            .and_then(|r| r.status.as_ref())
            .map(|s| s.outputs.clone())
            .unwrap_or_default();
        nodes.push((
            lane.clone(),
            Node {
                id: node_id(&view_node.id.name),
                name: view_node.id.name.clone(),
                label: view_node.label.clone(),
                short,
                lane: match &lane {
                    LaneKey::Service(s) => lane_of_service(s),
                    LaneKey::Environment => "environment".to_owned(),
                    LaneKey::Other => "other".to_owned(),
                },
                level: view_node.level,
                phase: row.phase,
                ready: row.ready,
                waits_for: row.waits_for,
                message: row.message,
                time_seconds: row.time.map(seconds),
                chart: spec.map(chart).unwrap_or_default(),
                outputs,
                critical: critical.get(view_node.id.name.as_str()).cloned(),
                wiring: spec
                    .map(|s| wiring(s, &expressions, matches!(lane, LaneKey::Service(_))))
                    .unwrap_or_default(),
            },
        ));
    }
    nodes.sort_by(|(a_lane, a), (b_lane, b)| {
        (a_lane, a.level.is_none(), a.level, &a.short).cmp(&(
            b_lane,
            b.level.is_none(),
            b.level,
            &b.short,
        ))
    });

    let mut lane_keys: Vec<LaneKey> = view
        .nodes
        .iter()
        .filter(|n| n.id.kind == NodeKind::UpstartService)
        .map(|n| LaneKey::Service(n.id.name.clone()))
        .chain(nodes.iter().map(|(lane, _)| lane.clone()))
        .collect();
    lane_keys.sort();
    lane_keys.dedup();
    let lanes = lane_keys
        .iter()
        .map(|key| {
            let members: Vec<&Node> = nodes
                .iter()
                .filter(|(lane, _)| lane == key)
                .map(|(_, n)| n)
                .collect();
            let ready_count = members.iter().filter(|n| n.ready).count();
            match key {
                LaneKey::Service(name) => service_lane(live, name, ready_count, members.len()),
                LaneKey::Environment | LaneKey::Other => Lane {
                    id: if *key == LaneKey::Environment {
                        "environment"
                    } else {
                        "other"
                    }
                    .to_owned(),
                    title: if *key == LaneKey::Environment {
                        ENVIRONMENT_LANE
                    } else {
                        OTHER_LANE
                    }
                    .to_owned(),
                    phase: None,
                    ready: ready_count,
                    total: members.len(),
                    note: None,
                    outputs: Vec::new(),
                },
            }
        })
        .collect();

    let edges = view
        .edges
        .iter()
        .filter(|e| e.from.kind == NodeKind::HelmRelease)
        .map(|e| Edge {
            from: node_id(&e.from.name),
            to: match e.to.kind {
                NodeKind::HelmRelease => node_id(&e.to.name),
                NodeKind::UpstartService => lane_of_service(&e.to.name),
            },
            critical: critical.contains_key(e.from.name.as_str())
                && match e.to.kind {
                    NodeKind::HelmRelease => critical.contains_key(e.to.name.as_str()),
                    // Depending on a service is waiting for all its releases.
                    NodeKind::UpstartService => dag
                        .depends_on(&e.to)
                        .iter()
                        .any(|r| critical.contains_key(r.name.as_str())),
                },
        })
        .collect();
    Graph {
        levels: nodes
            .iter()
            .filter_map(|(_, n)| n.level)
            .max()
            .map_or(0, |l| l + 1),
        lanes,
        nodes: nodes.into_iter().map(|(_, n)| n).collect(),
        edges,
        cycles: view.cycles,
    }
}

fn service_lane(live: &Live, name: &str, ready: usize, total: usize) -> Lane {
    let service: Option<&UpstartService> = live.service(name);
    let status = service.and_then(|s| s.status.as_ref());
    let phase = match (service, status.and_then(|s| s.phase)) {
        (None, _) => "NotCreated".to_owned(),
        (Some(_), None) => "Pending".to_owned(),
        (Some(_), Some(phase)) => format!("{phase:?}"),
    };
    let note = status.and_then(|s| s.blocked_by.clone()).or_else(|| {
        status
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .filter(|c| c.status != "True" && !c.message.is_empty())
            .map(|c| c.message.clone())
    });
    Lane {
        id: lane_of_service(name),
        title: format!("UpstartService {name}"),
        phase: Some(phase),
        ready,
        total,
        note,
        outputs: status
            .map(|s| s.exported_outputs.clone())
            .unwrap_or_default(),
    }
}

/// The most recent `limit` Events, newest first.
pub fn events(events: &[Event], limit: usize) -> Vec<EventRow> {
    let time = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| std::cmp::Reverse(time(e)));
    sorted
        .into_iter()
        .take(limit)
        .map(|e| EventRow {
            time: time(e).map(|t| t.to_string()),
            type_: e.type_.clone().unwrap_or_default(),
            reason: e.reason.clone().unwrap_or_default(),
            object: format!(
                "{}/{}",
                e.involved_object.kind.as_deref().unwrap_or_default(),
                e.involved_object.name.as_deref().unwrap_or_default()
            ),
            message: e.message.clone().unwrap_or_default(),
        })
        .collect()
}

/// The environment page's data from a snapshot and its namespace's Events at `now`.
pub fn environment_view(live: &Live, events_in: &[Event], now: jiff::Timestamp) -> EnvironmentView {
    let dag = live.graph();
    let tree = status::tree(live, now);
    let summary = match &live.environment {
        Some(environment) => environment_row(environment),
        None => EnvironmentRow {
            name: String::new(),
            namespace: live.namespace.clone(),
            requester: Requester {
                name: String::new(),
                source: "unknown",
            },
            phase: tree.phase.clone(),
            ready_services: i32::try_from(tree.services.0).unwrap_or(0),
            total_services: i32::try_from(tree.services.1).unwrap_or(0),
            time_to_ready_seconds: None,
            expires_at: None,
            created_at: None,
        },
    };
    let graph = graph(live, &dag, now);
    let critical_path = live
        .environment
        .as_ref()
        .and_then(|e| e.status.as_ref())
        .map(|s| {
            s.critical_path
                .iter()
                .map(|step| CriticalStep {
                    release: step.release.clone(),
                    wait_seconds: step.wait_seconds,
                    install_seconds: step.install_seconds,
                })
                .collect()
        })
        .unwrap_or_default();
    EnvironmentView {
        summary,
        ready: tree.ready,
        releases: tree.releases,
        elapsed_seconds: tree.elapsed.map(seconds),
        message: tree.message,
        graph,
        critical_path,
        events: events(events_in, EVENTS_SHOWN),
    }
}

/// One catalog template.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// Its name.
    pub name: String,
    /// Its generation: the revision environments get when they create the service now.
    pub revision: Option<i64>,
    /// Its `Valid` condition: `True`, `False`, or `Unknown` before the operator checked it.
    pub valid: String,
    /// The condition's message (its problems) when not valid.
    pub message: Option<String>,
    /// Its release keys.
    pub releases: Vec<String>,
    /// Environments whose services use it.
    pub used_by: Vec<String>,
}

/// The catalog page's data.
pub fn catalog(templates: &[UpstartService], environments: &[UpstartEnvironment]) -> Vec<Template> {
    let mut out: Vec<Template> = templates
        .iter()
        .map(|template| {
            let name = template.metadata.name.clone().unwrap_or_default();
            let valid = template.status.as_ref().and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == upstart_api::conditions::VALID)
            });
            let used_by = environments
                .iter()
                .filter(|e| {
                    e.spec.services.iter().any(|s| {
                        upstart_dag::switches::keeps_service(&e.spec, s)
                            && s.template.as_ref().is_some_and(|t| t.name == name)
                    })
                })
                .filter_map(|e| e.metadata.name.clone())
                .collect();
            Template {
                revision: template.metadata.generation,
                valid: valid.map_or_else(|| "Unknown".to_owned(), |c| c.status.clone()),
                message: valid
                    .filter(|c| c.status != "True" && !c.message.is_empty())
                    .map(|c| c.message.clone()),
                releases: template.spec.helm_releases.keys().cloned().collect(),
                used_by,
                name,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use serde_json::json;
    use upstart_api::v1alpha1::{UpstartEnvironmentSpec, UpstartServiceSpec};

    use super::*;

    fn release(name: &str, phase: &str, ready: bool, outputs: &[&str]) -> HelmRelease {
        serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": "pr-1"},
            "spec": {"chart": "r/x"},
            "status": {"phase": phase, "outputs": outputs, "conditions": [{
                "type": "Ready", "status": if ready { "True" } else { "False" },
                "reason": phase, "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .expect("release")
    }

    use upstart_api::v1alpha1::HelmRelease;

    /// Environment `pr-1`: service `svc` (db, then app reading db's outputs and the
    /// environment's flags), and the environment release `flags`.
    fn live() -> Live {
        let environment: UpstartEnvironmentSpec = serde_json::from_value(json!({
            "helmReleases": {"flags": {"chart": "r/flags"}},
            "services": [{"name": "svc", "spec": {"helmReleases": {
                "db": {"chart": "r/db", "version": "1.2.3"},
                "app": {"chart": "r/app",
                        "dependencies": [{"name": "db"}, {"name": "pr-1-flags", "as": "flags"}],
                        "values": {"env": {"DB": "postgres://<< db.outputs.USER >>:<< db.outputs.PASSWORD >>@h",
                                           "FLAGS": "<< flags.outputs.KEY >>"},
                                   "replicas": 2}}
            }}}]
        }))
        .expect("environment");
        let mut env = UpstartEnvironment::new("pr-1", environment);
        env.status = Some(
            serde_json::from_value(json!({"phase": "Provisioning", "namespace": "pr-1",
                "criticalPath": [{"release": "svc-db", "waitSeconds": 0.5, "installSeconds": 4.0}]}))
            .expect("status"),
        );
        let spec: UpstartServiceSpec = env.spec.services[0].spec.clone().expect("inline");
        let mut service = UpstartService::new("svc", spec);
        service.metadata.namespace = Some("pr-1".into());
        Live {
            environment: Some(env),
            namespace: "pr-1".into(),
            services: vec![service],
            releases: vec![
                release("pr-1-flags", "Ready", true, &["KEY"]),
                release("svc-db", "Installing", false, &["USER", "PASSWORD"]),
            ],
            planned: BTreeMap::new(),
        }
    }

    #[test]
    fn the_graph_puts_releases_in_their_service_lane_by_level_with_what_each_waits_for() {
        let live = live();
        let view = environment_view(&live, &[], "2026-01-01T00:01:00Z".parse().expect("now"));
        let graph = &view.graph;
        let lanes: Vec<&str> = graph.lanes.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(lanes, ["service-svc", "environment"]);
        let nodes: Vec<(&str, &str, Option<usize>, &str)> = graph
            .nodes
            .iter()
            .map(|n| (n.short.as_str(), n.lane.as_str(), n.level, n.phase.as_str()))
            .collect();
        assert_eq!(
            nodes,
            [
                ("db", "service-svc", Some(0), "Installing"),
                ("app", "service-svc", Some(1), "NotCreated"),
                ("flags", "environment", Some(0), "Ready"),
            ]
        );
        let app = &graph.nodes[1];
        assert_eq!(app.id, "release-svc-app");
        assert_eq!(
            app.waits_for,
            ["svc/db"],
            "the Ready flags are not waited for"
        );
        assert_eq!(graph.nodes[0].chart, "r/x", "the object's spec");
        assert_eq!(
            graph.nodes[1].chart, "r/app",
            "the service's spec, before it exists"
        );
        assert_eq!(graph.levels, 2);
        assert_eq!(view.releases, (1, 3));
    }

    #[test]
    fn outputs_are_key_names_from_the_status_and_the_critical_path_is_marked() {
        let view = environment_view(&live(), &[], jiff::Timestamp::now());
        let db = &view.graph.nodes[0];
        assert_eq!(db.outputs, ["USER", "PASSWORD"]);
        assert_eq!(db.critical.as_ref().map(|c| c.install_seconds), Some(4.0));
        assert!(view.graph.nodes[1].critical.is_none());
        assert_eq!(view.critical_path.len(), 1);
        let edge = view
            .graph
            .edges
            .iter()
            .find(|e| e.to == "release-svc-db")
            .expect("app -> db");
        assert_eq!(edge.from, "release-svc-app");
        assert!(!edge.critical, "app is not on the critical path");
    }

    #[test]
    fn wiring_lists_the_values_keys_each_dependency_feeds() {
        let live = live();
        let view = environment_view(&live, &[], jiff::Timestamp::now());
        let app = &view.graph.nodes[1];
        assert_eq!(
            app.wiring,
            [
                Wire {
                    dependency: "db".into(),
                    alias: "db".into(),
                    reads: vec![
                        ("env.DB".into(), "db.outputs.PASSWORD".into()),
                        ("env.DB".into(), "db.outputs.USER".into()),
                    ],
                },
                Wire {
                    dependency: "pr-1-flags".into(),
                    alias: "flags".into(),
                    reads: vec![("env.FLAGS".into(), "flags.outputs.KEY".into())],
                },
            ]
        );
        // The values themselves (which could hold anything a user wrote) are not part of it.
        let json = serde_json::to_string(&view).expect("json");
        assert!(!json.contains("postgres://"), "{json}");
    }

    #[test]
    fn the_requester_is_the_annotation_else_the_first_field_manager() {
        let mut meta = ObjectMeta::default();
        assert_eq!(requester(&meta).source, "unknown");
        let entry = |manager: &str, time: &str, subresource: Option<&str>| ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Apply".into()),
            time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                time.parse().expect("time"),
            )),
            subresource: subresource.map(str::to_owned),
            ..ManagedFieldsEntry::default()
        };
        meta.managed_fields = Some(vec![
            entry(
                "upstart-environment-operator",
                "2026-01-01T00:00:00Z",
                Some("status"),
            ),
            entry("ci-bot", "2026-01-01T00:00:05Z", None),
            entry("kubectl", "2026-01-01T00:00:01Z", None),
        ]);
        assert_eq!(
            requester(&meta),
            Requester {
                name: "kubectl".into(),
                source: "fieldManager"
            }
        );
        meta.annotations = Some(
            [(REQUESTER_ANNOTATION.to_owned(), "alice".to_owned())]
                .into_iter()
                .collect(),
        );
        assert_eq!(
            requester(&meta),
            Requester {
                name: "alice".into(),
                source: "annotation"
            }
        );
    }

    #[test]
    fn the_catalog_names_the_environments_that_use_each_template() {
        let template = |name: &str, valid: Option<&str>| {
            let mut t = UpstartService::new(name, UpstartServiceSpec::default());
            t.metadata.generation = Some(3);
            if let Some(status) = valid {
                t.status = Some(
                    serde_json::from_value(json!({"conditions": [{"type": "Valid",
                        "status": status, "reason": "Checked", "message": "db: no chart",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}))
                    .expect("status"),
                );
            }
            t
        };
        let environment = |name: &str, template: &str| {
            UpstartEnvironment::new(
                name,
                serde_json::from_value(
                    json!({"services": [{"name": "s", "template": {"name": template}}]}),
                )
                .expect("spec"),
            )
        };
        let catalog = catalog(
            &[
                template("web", Some("True")),
                template("api", Some("False")),
                template("new", None),
            ],
            &[
                environment("pr-2", "web"),
                environment("pr-1", "web"),
                environment("pr-3", "api"),
            ],
        );
        let rows: Vec<(&str, &str, Vec<&str>)> = catalog
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    t.valid.as_str(),
                    t.used_by.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("api", "False", vec!["pr-3"]),
                ("new", "Unknown", vec![]),
                ("web", "True", vec!["pr-2", "pr-1"]),
            ]
        );
        assert_eq!(catalog[0].message.as_deref(), Some("db: no chart"));
        assert_eq!(catalog[2].revision, Some(3));
    }

    #[test]
    fn events_are_the_most_recent_first_and_bounded() {
        let event = |reason: &str, time: &str| -> Event {
            serde_json::from_value(json!({
                "metadata": {"name": reason, "namespace": "pr-1"},
                "involvedObject": {"kind": "HelmRelease", "name": "svc-db"},
                "reason": reason, "message": "m", "type": "Normal", "lastTimestamp": time
            }))
            .expect("event")
        };
        let all = [
            event("Old", "2026-01-01T00:00:00Z"),
            event("New", "2026-01-01T00:00:09Z"),
            event("Mid", "2026-01-01T00:00:05Z"),
        ];
        let rows = events(&all, 2);
        let reasons: Vec<&str> = rows.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["New", "Mid"]);
        assert_eq!(rows[0].object, "HelmRelease/svc-db");
    }
}
