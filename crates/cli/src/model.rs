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
    /// What `enabled` and `jobs` make wrong (a switch reading neither true nor false, a
    /// dependency on something disabled, a job named like a release), where it is written.
    pub switch_problems: Vec<SwitchProblem>,
    /// Release keys, jobs and services that `enabled` leaves out: a dependency naming one is
    /// reported as such rather than as unknown.
    pub disabled: BTreeSet<String>,
}

/// A problem of the switches or jobs of a spec, at its document and path.
#[derive(Clone, Debug)]
pub struct SwitchProblem {
    /// The document.
    pub doc: usize,
    /// The JSON path of the field at fault.
    pub path: String,
    /// What is wrong.
    pub message: String,
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
            let environment = upstart_dag::EnvironmentInfo {
                name: object.name.clone(),
                namespace: namespace.clone(),
                variables: spec.variables.clone(),
            };
            builder.environment = Some(environment.clone());
            // The services an environment's `post` jobs wait for: those switched on.
            let services: Vec<String> = spec
                .services
                .iter()
                .filter(|s| upstart_dag::switches::keeps_service(spec, s))
                .map(|s| s.name.clone())
                .collect();
            let pre_jobs = builder.add_environment(object, spec, &services);
            for (index, service) in spec.services.iter().enumerate() {
                let field = format!("spec.services[{index}].enabled");
                match upstart_dag::is_enabled(service.enabled.as_ref(), &field, Some(&environment))
                {
                    Ok(true) => {}
                    Ok(false) => {
                        builder.disabled.insert(service.name.clone());
                        continue;
                    }
                    Err(error) => {
                        builder.switch_problems.push(SwitchProblem {
                            doc: object.doc,
                            path: field,
                            message: error.to_string(),
                        });
                        continue;
                    }
                }
                match self.environment_service(object.doc, index, service) {
                    Some((mut spec, doc, prefix)) => {
                        for release in spec.helm_releases.values_mut() {
                            upstart_dag::switches::depend_on_environment_releases(
                                release, &pre_jobs,
                            );
                        }
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
    /// The environment whose variables `enabled` expressions read, in an environment.
    environment: Option<upstart_dag::EnvironmentInfo>,
    switch_problems: Vec<SwitchProblem>,
    disabled: BTreeSet<String>,
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

    /// Adds the environment's own releases and jobs (switched); returns its `pre` jobs, which
    /// every release of its services depends on.
    fn add_environment(
        &mut self,
        object: &Object,
        spec: &UpstartEnvironmentSpec,
        services: &[String],
    ) -> Vec<String> {
        let mut releases = self.switch(object.doc, "spec", "", &spec.helm_releases, &spec.jobs);
        for (key, release) in &mut releases {
            if spec.jobs.get(key).and_then(|j| j.when) == Some(upstart_api::v1alpha1::JobWhen::Post)
            {
                upstart_dag::switches::depend_on_services(release, services);
            }
        }
        self.input.add_environment(&object.name, &releases);
        self.environment_releases = Some((object.name.clone(), releases.keys().cloned().collect()));
        for (key, release) in &releases {
            let name = child_name(&object.name, key);
            self.releases.push(ScopeRelease {
                node: NodeId::release(name.clone()),
                label: name,
                origin: Origin {
                    doc: object.doc,
                    key: Some(key.clone()),
                    path: key_path("spec", &spec.jobs, key),
                },
                spec: release.clone(),
                service: None,
            });
        }
        spec.jobs
            .iter()
            .filter(|(key, job)| {
                job.when == Some(upstart_api::v1alpha1::JobWhen::Pre) && releases.contains_key(*key)
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// `releases` and `jobs` of the spec at `prefix` of document `doc`, switched
    /// ([`upstart_dag::switch_releases`]), its problems recorded where they are written.
    fn switch(
        &mut self,
        doc: usize,
        prefix: &str,
        owner: &str,
        releases: &BTreeMap<String, HelmReleaseSpec>,
        jobs: &BTreeMap<String, upstart_api::v1alpha1::JobSpec>,
    ) -> BTreeMap<String, HelmReleaseSpec> {
        let switched =
            upstart_dag::switch_releases(releases, jobs, prefix, owner, self.environment.as_ref());
        self.disabled.extend(switched.disabled.iter().cloned());
        for problem in &switched.problems {
            let path = match problem {
                upstart_dag::Error::InvalidSwitch { field, .. } => field.clone(),
                // The graph finds it too (the dependency names nothing), and validate says
                // why from `disabled`.
                upstart_dag::Error::DependsOnDisabled { .. } => continue,
                upstart_dag::Error::NameConflict { second, .. } => second.clone(),
                _ => prefix.to_owned(),
            };
            self.switch_problems.push(SwitchProblem {
                doc,
                path,
                message: problem.to_string(),
            });
        }
        switched.releases
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
        let spec_prefix = prefix.trim_end_matches(".helmReleases");
        let releases = self.switch(doc, spec_prefix, name, &spec.helm_releases, &spec.jobs);
        let spec = UpstartServiceSpec {
            helm_releases: releases,
            jobs: BTreeMap::new(),
        };
        let jobs = &spec_of_jobs(&spec, spec_prefix);
        self.input.add_service(name, &spec);
        self.services.insert(NodeId::service(name), declared_in);
        for (key, release) in &spec.helm_releases {
            self.releases.push(ScopeRelease {
                node: NodeId::release(child_name(name, key)),
                label: format!("{name}/{key}"),
                origin: Origin {
                    doc,
                    key: Some(key.clone()),
                    path: jobs
                        .get(key)
                        .cloned()
                        .unwrap_or_else(|| format!("{prefix}.{key}")),
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
            switch_problems: self.switch_problems,
            disabled: self.disabled,
        }
    }
}

/// Where the release `key` of the spec at `prefix` is written: `jobs.KEY` for a job.
fn key_path<T>(prefix: &str, jobs: &BTreeMap<String, T>, key: &str) -> String {
    if jobs.contains_key(key) {
        format!("{prefix}.jobs.{key}")
    } else {
        format!("{prefix}.helmReleases.{key}")
    }
}

/// The paths of the job keys of a switched service spec (jobs are releases of chart
/// `builtin:job` by then).
fn spec_of_jobs(spec: &UpstartServiceSpec, prefix: &str) -> BTreeMap<String, String> {
    spec.helm_releases
        .iter()
        .filter(|(_, release)| upstart_api::v1alpha1::is_job(release))
        .map(|(key, _)| (key.clone(), format!("{prefix}.jobs.{key}")))
        .collect()
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
