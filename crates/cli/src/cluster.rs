//! Reading an environment (or a namespace) from a cluster for `upstart status` and
//! `upstart graph ENV`: the client from a kubeconfig, and one consistent-enough snapshot of the
//! environment, its services and its releases.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use kube::api::ListParams;
use kube::{Api, Client};
use upstart_api::names::child_name;
use upstart_api::v1alpha1::{HelmRelease, UpstartEnvironment, UpstartService, UpstartServiceSpec};
use upstart_dag::{DependencyGraph, GraphInput, NodeId};

use crate::error::Error;
use crate::graph::GraphView;

/// A client from `--kubeconfig`, else `KUBECONFIG`, else `~/.kube/config` (or in-cluster).
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, Error> {
    // kube is built with rustls on ring; make ring the process default so that no other
    // dependency's provider choice can make TLS set-up ambiguous.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig =
                kube::config::Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                })?;
            kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .map_err(|source| Error::Kubeconfig {
                path: path.display().to_string(),
                source,
            })?
        }
        None => kube::Config::infer().await.map_err(Error::InferConfig)?,
    };
    Client::try_from(config).map_err(|source| Error::Kube {
        what: "creating the client".to_owned(),
        source,
    })
}

/// A client for `--kubeconfig` and `--context`, and the user the context names (who is asking,
/// when the cluster does not say).
pub struct Connection {
    pub client: Client,
    pub kubeconfig_user: Option<String>,
}

/// Connects as kubectl would: the kubeconfig given, else `$KUBECONFIG` or `~/.kube/config`, else
/// (in a pod, with neither given) the ServiceAccount; `context`, else the current context. A
/// context the kubeconfig lacks is refused naming those it has.
pub async fn connect(
    kubeconfig_file: Option<&Path>,
    context: Option<&str>,
) -> Result<Connection, Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = kubeconfig_file.map_or_else(
        || "$KUBECONFIG or ~/.kube/config".to_owned(),
        |p| p.display().to_string(),
    );
    let kubeconfig = match kubeconfig_file {
        Some(file) => kube::config::Kubeconfig::read_from(file),
        None => kube::config::Kubeconfig::read(),
    };
    let kubeconfig = match kubeconfig {
        Ok(kubeconfig) => kubeconfig,
        // In a pod: no kubeconfig, the ServiceAccount.
        Err(_) if kubeconfig_file.is_none() && context.is_none() => {
            return Ok(Connection {
                client: client(None).await?,
                kubeconfig_user: None,
            });
        }
        Err(source) => {
            return Err(Error::Kubeconfig {
                path: path.clone(),
                source,
            });
        }
    };
    let context_name = context
        .map(str::to_owned)
        .or_else(|| kubeconfig.current_context.clone());
    if let Some(context) = context
        && !kubeconfig.contexts.iter().any(|c| c.name == context)
    {
        let known: Vec<&str> = kubeconfig
            .contexts
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        return Err(Error::Usage(format!(
            "kubeconfig {path} has no context {context} (it has: {})",
            known.join(", ")
        )));
    }
    let kubeconfig_user = kubeconfig
        .contexts
        .iter()
        .find(|c| Some(&c.name) == context_name.as_ref())
        .and_then(|c| c.context.as_ref())
        .and_then(|c| c.user.clone());
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_owned),
        ..kube::config::KubeConfigOptions::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|source| Error::Kubeconfig { path, source })?;
    let client = Client::try_from(config).map_err(|source| Error::Kube {
        what: "creating the client".to_owned(),
        source,
    })?;
    Ok(Connection {
        client,
        kubeconfig_user,
    })
}

/// Every UpstartEnvironment the client may list.
pub async fn list_environments(client: &Client) -> Result<Vec<UpstartEnvironment>, Error> {
    Api::<UpstartEnvironment>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map(|list| list.items)
        .map_err(|source| Error::Kube {
            what: "listing UpstartEnvironments".to_owned(),
            source,
        })
}

/// What the cluster holds for one environment or namespace.
#[derive(Clone, Debug, Default)]
pub struct Live {
    /// The environment, when reading one (None: a plain namespace).
    pub environment: Option<UpstartEnvironment>,
    /// The namespace read.
    pub namespace: String,
    /// Its UpstartServices, by name.
    pub services: Vec<UpstartService>,
    /// Its HelmReleases, by name.
    pub releases: Vec<HelmRelease>,
    /// The environment's services that do not exist yet, with the spec they will get (inline,
    /// or their catalog template): their releases are shown as not created yet.
    pub planned: BTreeMap<String, UpstartServiceSpec>,
}

/// The namespace an environment lives in: as reported, else as asked, else its name.
pub fn environment_namespace(environment: &UpstartEnvironment) -> String {
    environment
        .status
        .as_ref()
        .and_then(|s| s.namespace.clone())
        .unwrap_or_else(|| {
            upstart_api::names::environment_namespace(
                environment.metadata.name.as_deref().unwrap_or_default(),
                environment.spec.namespace.as_deref(),
            )
        })
}

fn kube_error(what: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube { what, source }
}

impl Live {
    /// Reads the UpstartEnvironment `name` and what is in its namespace; templates of services
    /// not created yet are read from the default catalog namespace.
    pub async fn read_environment(client: &Client, name: &str) -> Result<Live, Error> {
        Self::read_environment_with_catalog(client, name, crate::model::CATALOG_NAMESPACE).await
    }

    /// Reads the UpstartEnvironment `name` and what is in its namespace; templates of services
    /// not created yet are read from `catalog`.
    pub async fn read_environment_with_catalog(
        client: &Client,
        name: &str,
        catalog: &str,
    ) -> Result<Live, Error> {
        let environments: Api<UpstartEnvironment> = Api::all(client.clone());
        let environment = environments
            .get_opt(name)
            .await
            .map_err(kube_error(format!("reading UpstartEnvironment {name}")))?
            .ok_or_else(|| Error::NotFound(format!("UpstartEnvironment {name}")))?;
        let namespace = environment_namespace(&environment);
        let mut live = Live::read_namespace(client, &namespace).await?;
        let templates: Api<UpstartService> = Api::namespaced(client.clone(), catalog);
        for service in environment
            .spec
            .services
            .iter()
            .filter(|s| upstart_dag::switches::keeps_service(&environment.spec, s))
        {
            if live.service(&service.name).is_some() {
                continue;
            }
            let spec = match (&service.spec, &service.template) {
                (Some(spec), _) => Some(spec.clone()),
                // Only a preview: a template that cannot be read just leaves the service empty.
                (None, Some(template)) => templates
                    .get_opt(&template.name)
                    .await
                    .ok()
                    .flatten()
                    .map(|t| t.spec),
                (None, None) => None,
            };
            if let Some(spec) = spec {
                live.planned.insert(service.name.clone(), spec);
            }
        }
        live.environment = Some(environment);
        Ok(live)
    }

    /// Reads the services and releases of a namespace.
    pub async fn read_namespace(client: &Client, namespace: &str) -> Result<Live, Error> {
        let services: Api<UpstartService> = Api::namespaced(client.clone(), namespace);
        let releases: Api<HelmRelease> = Api::namespaced(client.clone(), namespace);
        let mut services = services
            .list(&ListParams::default())
            .await
            .map_err(kube_error(format!(
                "listing UpstartServices in {namespace}"
            )))?
            .items;
        let mut releases = releases
            .list(&ListParams::default())
            .await
            .map_err(kube_error(format!("listing HelmReleases in {namespace}")))?
            .items;
        services.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        releases.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Ok(Live {
            environment: None,
            namespace: namespace.to_owned(),
            services,
            releases,
            planned: BTreeMap::new(),
        })
    }

    /// The environment's name, if any.
    pub fn environment_name(&self) -> Option<&str> {
        self.environment
            .as_ref()
            .and_then(|e| e.metadata.name.as_deref())
    }

    /// The graph of the namespace as the operators see it: services from their specs, the
    /// environment's releases, and every other HelmRelease on its own.
    pub fn graph(&self) -> DependencyGraph {
        let mut input = GraphInput::new();
        let mut covered = BTreeSet::new();
        for service in &self.services {
            let name = service.metadata.name.as_deref().unwrap_or_default();
            input.add_service(name, &service.spec);
            covered.extend(
                service
                    .spec
                    .helm_releases
                    .keys()
                    .map(|k| child_name(name, k)),
            );
        }
        for (name, spec) in &self.planned {
            input.add_service(name, spec);
            covered.extend(spec.helm_releases.keys().map(|k| child_name(name, k)));
        }
        if let (Some(environment), Some(name)) = (&self.environment, self.environment_name()) {
            input.add_environment(name, &environment.spec.helm_releases);
            covered.extend(
                environment
                    .spec
                    .helm_releases
                    .keys()
                    .map(|k| child_name(name, k)),
            );
        }
        for release in &self.releases {
            let name = release.metadata.name.as_deref().unwrap_or_default();
            if !covered.contains(name) {
                input.add_release(name, &release.spec.dependencies);
            }
        }
        DependencyGraph::build(&input)
    }

    /// The release object of a node, if it exists.
    pub fn release(&self, node: &NodeId) -> Option<&HelmRelease> {
        self.releases
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(node.name.as_str()))
    }

    /// The service object of a name, if it exists.
    pub fn service(&self, name: &str) -> Option<&UpstartService> {
        self.services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
    }

    /// Phases by node (releases and services that exist and report one).
    pub fn phases(&self) -> HashMap<NodeId, String> {
        let mut out = HashMap::new();
        for release in &self.releases {
            if let (Some(name), Some(phase)) = (
                &release.metadata.name,
                release.status.as_ref().and_then(|s| s.phase),
            ) {
                out.insert(NodeId::release(name.clone()), phase.as_str().to_owned());
            }
        }
        for service in &self.services {
            if let (Some(name), Some(phase)) = (
                &service.metadata.name,
                service.status.as_ref().and_then(|s| s.phase),
            ) {
                out.insert(NodeId::service(name.clone()), format!("{phase:?}"));
            }
        }
        out
    }

    /// The graph view, with live phases.
    pub fn view(&self) -> GraphView {
        let title = match self.environment_name() {
            Some(name) => format!("namespace {} (UpstartEnvironment {name})", self.namespace),
            None => format!("namespace {}", self.namespace),
        };
        GraphView::new(&title, &self.graph(), &self.phases())
    }
}
