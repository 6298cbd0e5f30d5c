//! The Upstart objects of the given files, typed and grouped into the namespaces they would live
//! in, with one dependency graph per namespace: what `validate`, `plan` and `graph` work on.
//!
//! Grouping: an UpstartEnvironment is its own namespace (its environment-wide releases and its
//! services, from inline specs or from the templates found among the files). Other
//! UpstartServices and HelmReleases join the namespace of their `metadata.namespace` (an
//! environment's when it matches); without one they share "the current namespace". An
//! UpstartService without a namespace (or in the catalog namespace) that an environment of the
//! files uses as its template is a catalog template: it is checked through the environments that
//! use it, not deployed on its own.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use upstart_api::names::child_name;
use upstart_api::v1alpha1::{
    EnvironmentService, HelmRelease, HelmReleaseSpec, UpstartEnvironment, UpstartEnvironmentSpec,
    UpstartService, UpstartServiceSpec,
};
use upstart_dag::{DependencyGraph, GraphInput, NodeId};

use crate::source::Document;

/// The namespace catalog templates live in by default (the operators' `--catalog-namespace`).
pub const CATALOG_NAMESPACE: &str = upstart_api::names::DEFAULT_CATALOG_NAMESPACE;

/// A typed Upstart object.
#[derive(Clone, Debug)]
pub enum Spec {
    /// A HelmRelease.
    Release(HelmReleaseSpec),
    /// An UpstartService.
    Service(UpstartServiceSpec),
    /// An UpstartEnvironment.
    Environment(UpstartEnvironmentSpec),
}

/// The typed form of one document.
#[derive(Clone, Debug)]
pub struct Object {
    /// Index of its document.
    pub doc: usize,
    /// `metadata.name`.
    pub name: String,
    /// The spec.
    pub spec: Spec,
}

/// Where a release is written: a document, its key and the JSON path of its spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Index of the document.
    pub doc: usize,
    /// The release key (none for a standalone HelmRelease).
    pub key: Option<String>,
    /// The path of the release spec in the document (`spec.helmReleases.app`, or `spec`).
    pub path: String,
}

/// A release of a namespace, with the spec it would be installed with.
#[derive(Clone, Debug)]
pub struct ScopeRelease {
    /// Its node in the graph.
    pub node: NodeId,
    /// Its name as users know it (`service/key`, or the object name).
    pub label: String,
    /// Where it is written.
    pub origin: Origin,
    /// The spec, with an environment's overrides applied.
    pub spec: HelmReleaseSpec,
    /// The UpstartService it belongs to, if any.
    pub service: Option<String>,
}

/// One namespace: its releases and services and their dependency graph.
#[derive(Debug)]
pub struct Scope {
    /// `namespace pr-1234 (UpstartEnvironment pr-1234)`, `the current namespace`, ...
    pub title: String,
    /// The namespace, when the files name it (empty: the current namespace).
    pub namespace: String,
    /// The environment document, for an environment's namespace.
    pub environment: Option<usize>,
    /// The environment's name and its environment-wide release keys, for an environment's
    /// namespace.
    pub environment_releases: Option<(String, BTreeSet<String>)>,
    /// The graph.
    pub graph: DependencyGraph,
    /// Every release node.
    pub releases: BTreeMap<NodeId, ScopeRelease>,
    /// Every service node, with the document that declares it.
    pub services: BTreeMap<NodeId, usize>,
    /// Label -> node, to map the graph's messages back to files.
    pub labels: HashMap<String, NodeId>,
}

impl Scope {
    /// The release a graph label names.
    pub fn release_by_label(&self, label: &str) -> Option<&ScopeRelease> {
        self.labels.get(label).and_then(|n| self.releases.get(n))
    }
}

/// The typed objects of the files, and their namespaces.
#[derive(Debug)]
pub struct Workspace {
    /// Every document, Upstart or not.
    pub documents: Vec<Document>,
    /// The documents that are typed Upstart objects.
    pub objects: Vec<Object>,
    /// One per namespace, environments first.
    pub scopes: Vec<Scope>,
}

/// Whether a document is of the Upstart API group.
pub fn is_upstart(document: &Document) -> bool {
    document
        .api_version()
        .split_once('/')
        .is_some_and(|(group, _)| group == upstart_api::GROUP)
}

/// Types one Upstart document; the error is serde's message.
pub fn type_document(document: &Document) -> Result<Option<Spec>, String> {
    let value = document.value.clone();
    let spec = match document.kind() {
        "HelmRelease" => Spec::Release(
            serde_json::from_value::<HelmRelease>(value)
                .map_err(|e| e.to_string())?
                .spec,
        ),
        "UpstartService" => Spec::Service(
            serde_json::from_value::<UpstartService>(value)
                .map_err(|e| e.to_string())?
                .spec,
        ),
        "UpstartEnvironment" => Spec::Environment(
            serde_json::from_value::<UpstartEnvironment>(value)
                .map_err(|e| e.to_string())?
                .spec,
        ),
        _ => return Ok(None),
    };
    Ok(Some(spec))
}

impl Workspace {
    /// Groups the typed objects (`objects`, built from `documents`) into namespaces and builds
    /// their graphs.
    pub fn new(documents: Vec<Document>, objects: Vec<Object>) -> Self {
        let mut workspace = Workspace {
            documents,
            objects,
            scopes: Vec::new(),
        };
        workspace.scopes = workspace.build_scopes();
        workspace
    }

    /// The UpstartService a template reference names, among the files: one without a
    /// namespace or in the catalog namespace.
    pub fn template(&self, name: &str) -> Option<(&Object, &UpstartServiceSpec)> {
        self.objects.iter().find_map(|object| match &object.spec {
            Spec::Service(spec)
                if object.name == name
                    && self.documents[object.doc]
                        .namespace()
                        .is_none_or(|ns| ns == CATALOG_NAMESPACE) =>
            {
                Some((object, spec))
            }
            _ => None,
        })
    }

    /// The spec a service of an environment would be created with (template or inline, with
    /// overrides applied), and where its releases are written. None when its template is not
    /// among the files.
    pub fn environment_service(
        &self,
        environment_doc: usize,
        index: usize,
        service: &EnvironmentService,
    ) -> Option<(UpstartServiceSpec, usize, String)> {
        let (mut spec, doc, prefix) = match (&service.spec, &service.template) {
            (Some(spec), _) => (
                spec.clone(),
                environment_doc,
                format!("spec.services[{index}].spec.helmReleases"),
            ),
            (None, Some(template)) => {
                let (object, spec) = self.template(&template.name)?;
                (spec.clone(), object.doc, "spec.helmReleases".to_owned())
            }
            (None, None) => return None,
        };
        for (key, change) in &service.overrides {
            if let Some(release) = spec.helm_releases.get_mut(key) {
                // A values override that is not a mapping is reported by the schema check.
                let _ = upstart_dag::apply_override(key, release, change);
            }
        }
        Some((spec, doc, prefix))
    }

    fn build_scopes(&self) -> Vec<Scope> {
        let mut templates = BTreeSet::new();
        let mut environments: Vec<(&Object, &UpstartEnvironmentSpec, String)> = Vec::new();
        for object in &self.objects {
            if let Spec::Environment(spec) = &object.spec {
                let namespace = upstart_api::names::environment_namespace(
                    &object.name,
                    spec.namespace.as_deref(),
                );
                for service in &spec.services {
                    if let Some(template) = &service.template {
                        templates.insert(template.name.clone());
                    }
                }
                environments.push((object, spec, namespace));
            }
        }

        let mut scopes = Vec::new();
        let mut members: BTreeMap<String, Vec<&Object>> = BTreeMap::new();
        for object in &self.objects {
            let namespace = self.documents[object.doc].namespace();
            match &object.spec {
                Spec::Environment(_) => continue,
                Spec::Service(_)
                    if namespace.is_none_or(|ns| ns == CATALOG_NAMESPACE)
                        && templates.contains(&object.name) =>
                {
                    continue;
                }
                _ => {}
            }
            members
                .entry(namespace.unwrap_or_default().to_owned())
                .or_default()
                .push(object);
        }

        for (object, spec, namespace) in &environments {
            let mut builder = ScopeBuilder::default();
            builder.add_environment(object, spec);
            for (index, service) in spec.services.iter().enumerate() {
                if !service.enabled() {
                    continue;
                }
                match self.environment_service(object.doc, index, service) {
                    Some((spec, doc, prefix)) => {
                        builder.add_service(&service.name, &spec, doc, object.doc, &prefix);
                    }
                    // Its releases are unknown, but others may still depend on it by name.
                    None => builder.add_empty_service(&service.name, object.doc),
                }
            }
            for member in members.remove(namespace).unwrap_or_default() {
                builder.add_object(member);
            }
            scopes.push(builder.build(
                format!("namespace {namespace} (UpstartEnvironment {})", object.name),
                namespace.clone(),
                Some(object.doc),
            ));
        }
        for (namespace, objects) in members {
            let mut builder = ScopeBuilder::default();
            for object in objects {
                builder.add_object(object);
            }
            let title = if namespace.is_empty() {
                "the current namespace".to_owned()
            } else {
                format!("namespace {namespace}")
            };
            scopes.push(builder.build(title, namespace, None));
        }
        scopes
    }
}

#[derive(Default)]
struct ScopeBuilder {
    input: GraphInput,
    releases: Vec<ScopeRelease>,
    services: BTreeMap<NodeId, usize>,
    environment_releases: Option<(String, BTreeSet<String>)>,
}

impl ScopeBuilder {
    fn add_object(&mut self, object: &Object) {
        match &object.spec {
            Spec::Release(spec) => {
                self.input.add_release(&object.name, &spec.dependencies);
                self.releases.push(ScopeRelease {
                    node: NodeId::release(object.name.clone()),
                    label: object.name.clone(),
                    origin: Origin {
                        doc: object.doc,
                        key: None,
                        path: "spec".to_owned(),
                    },
                    spec: spec.clone(),
                    service: None,
                });
            }
            Spec::Service(spec) => {
                self.add_service(
                    &object.name,
                    spec,
                    object.doc,
                    object.doc,
                    "spec.helmReleases",
                );
            }
            Spec::Environment(_) => {}
        }
    }

    fn add_environment(&mut self, object: &Object, spec: &UpstartEnvironmentSpec) {
        self.input
            .add_environment(&object.name, &spec.helm_releases);
        self.environment_releases = Some((
            object.name.clone(),
            spec.helm_releases.keys().cloned().collect(),
        ));
        for (key, release) in &spec.helm_releases {
            let name = child_name(&object.name, key);
            self.releases.push(ScopeRelease {
                node: NodeId::release(name.clone()),
                label: name,
                origin: Origin {
                    doc: object.doc,
                    key: Some(key.clone()),
                    path: format!("spec.helmReleases.{key}"),
                },
                spec: release.clone(),
                service: None,
            });
        }
    }

    /// `doc` holds the releases (under `prefix`); `declared_in` declares the service.
    fn add_service(
        &mut self,
        name: &str,
        spec: &UpstartServiceSpec,
        doc: usize,
        declared_in: usize,
        prefix: &str,
    ) {
        self.input.add_service(name, spec);
        self.services.insert(NodeId::service(name), declared_in);
        for (key, release) in &spec.helm_releases {
            self.releases.push(ScopeRelease {
                node: NodeId::release(child_name(name, key)),
                label: format!("{name}/{key}"),
                origin: Origin {
                    doc,
                    key: Some(key.clone()),
                    path: format!("{prefix}.{key}"),
                },
                spec: release.clone(),
                service: Some(name.to_owned()),
            });
        }
    }

    fn add_empty_service(&mut self, name: &str, declared_in: usize) {
        self.input
            .add_service_releases(name, std::iter::empty::<(String, Vec<_>)>());
        self.services.insert(NodeId::service(name), declared_in);
    }

    fn build(self, title: String, namespace: String, environment: Option<usize>) -> Scope {
        let graph = DependencyGraph::build(&self.input);
        let mut labels = HashMap::new();
        let mut releases = BTreeMap::new();
        for release in self.releases {
            // A name declared twice keeps its first declaration, as the graph does.
            if releases.contains_key(&release.node) {
                continue;
            }
            labels.insert(release.label.clone(), release.node.clone());
            releases.insert(release.node.clone(), release);
        }
        for service in self.services.keys() {
            labels.insert(service.name.clone(), service.clone());
        }
        Scope {
            title,
            namespace,
            environment,
            environment_releases: self.environment_releases,
            graph,
            releases,
            services: self.services,
            labels,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn workspace(values: Vec<Value>) -> Workspace {
        let documents: Vec<Document> = values
            .into_iter()
            .enumerate()
            .map(|(i, v)| Document::in_memory("f.yaml", i + 1, v))
            .collect();
        let objects = documents
            .iter()
            .enumerate()
            .filter_map(|(doc, d)| {
                let spec = type_document(d).expect("typed")?;
                Some(Object {
                    doc,
                    name: d.name().to_owned(),
                    spec,
                })
            })
            .collect();
        Workspace::new(documents, objects)
    }

    fn service(name: &str, releases: Value) -> Value {
        json!({"apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "UpstartService",
               "metadata": {"name": name}, "spec": {"helmReleases": releases}})
    }

    #[test]
    fn services_without_a_namespace_share_the_current_namespace() {
        let ws = workspace(vec![
            service(
                "a",
                json!({"web": {"chart": "r/web", "dependencies": [{"name": "b"}]}}),
            ),
            service("b", json!({"db": {"chart": "r/db"}})),
        ]);
        assert_eq!(ws.scopes.len(), 1);
        let scope = &ws.scopes[0];
        assert_eq!(scope.title, "the current namespace");
        assert!(
            scope.graph.problems().is_empty(),
            "{:?}",
            scope.graph.problems()
        );
        assert_eq!(
            scope.graph.depends_on(&NodeId::release("a-web")),
            vec![NodeId::service("b")]
        );
    }

    #[test]
    fn an_environment_uses_templates_from_the_files_with_its_overrides() {
        let ws = workspace(vec![
            service(
                "svc",
                json!({"app": {"chart": "r/app", "values": {"image": {"tag": "main", "x": 1}}}}),
            ),
            json!({"apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "UpstartEnvironment",
                   "metadata": {"name": "pr-1"},
                   "spec": {"helmReleases": {"ld": {"chart": "r/ld"}},
                            "services": [{"name": "svc", "template": {"name": "svc"},
                                          "overrides": {"app": {"version": "2.0.0", "values": {"image": {"tag": "pr-1"}}}}}]}}),
        ]);
        assert_eq!(
            ws.scopes.len(),
            1,
            "the template is not deployed on its own"
        );
        let scope = &ws.scopes[0];
        assert_eq!(scope.title, "namespace pr-1 (UpstartEnvironment pr-1)");
        let app = &scope.releases[&NodeId::release("svc-app")];
        assert_eq!(app.origin.doc, 0, "written in the template");
        assert_eq!(app.spec.version.as_deref(), Some("2.0.0"));
        assert_eq!(
            app.spec.values,
            Some(json!({"image": {"tag": "pr-1", "x": 1}}))
        );
        assert!(scope.releases.contains_key(&NodeId::release("pr-1-ld")));
    }

    #[test]
    fn a_catalog_template_used_by_an_environment_is_not_deployed_on_its_own() {
        let mut template = service("svc", json!({"app": {"chart": "r/app"}}));
        template["metadata"]["namespace"] = json!(CATALOG_NAMESPACE);
        let ws = workspace(vec![
            template,
            service("alone", json!({"web": {"chart": "r/web"}})),
            json!({"apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "UpstartEnvironment",
                   "metadata": {"name": "e"},
                   "spec": {"services": [{"name": "svc", "template": {"name": "svc"}}]}}),
        ]);
        let titles: Vec<&str> = ws.scopes.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "namespace e (UpstartEnvironment e)",
                "the current namespace"
            ]
        );
        assert!(
            ws.scopes[0]
                .releases
                .contains_key(&NodeId::release("svc-app"))
        );
        assert!(
            ws.scopes[1]
                .releases
                .contains_key(&NodeId::release("alone-web"))
        );
    }

    #[test]
    fn a_missing_template_still_names_a_service_others_can_depend_on() {
        let ws = workspace(vec![json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "UpstartEnvironment",
        "metadata": {"name": "e"},
        "spec": {"services": [
            {"name": "elsewhere", "template": {"name": "elsewhere"}},
            {"name": "inline", "spec": {"helmReleases": {"web": {"chart": "r/w", "dependencies": [{"name": "elsewhere"}]}}}}
        ]}})]);
        let scope = &ws.scopes[0];
        assert!(
            scope.graph.problems().is_empty(),
            "{:?}",
            scope.graph.problems()
        );
        let web = &scope.releases[&NodeId::release("inline-web")];
        assert_eq!(web.origin.path, "spec.services[1].spec.helmReleases.web");
    }
}
