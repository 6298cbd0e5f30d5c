//! What the operator is configured with, and the chart repositories' credentials: read at
//! start, and again at each fetch for a Secret that did not exist yet.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use crate::Error;
use crate::error::ApiStep;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use tracing::warn;
use upstart_chart_source::{ChartSource, Credentials, RepositoryConfig};
use upstart_release_engine::manifests::ClusterScopedAllowList;

/// What the operator is configured with. [`Config::default`] matches the binary's flags
/// except for the cache directory, which goes under the system temporary directory so that an
/// in-process operator (tests, `upstart dev`) runs without a writable `/var/cache`.
#[derive(Clone, Debug)]
pub struct Config {
    /// The helm binary (SPEC §2.4).
    pub helm_path: PathBuf,
    /// Chart repositories (SPEC §2.2).
    pub repositories: RepositoryConfig,
    /// Credentials by repository alias, read from the operator's own namespace.
    pub credentials: HashMap<String, Credentials>,
    /// Where the credential Secrets live (the operator's own namespace). With it, a repository
    /// whose `credentialsSecret` has no entry in [`Config::credentials`] (the Secret did not
    /// exist when [`load_credentials`] ran) has its Secret read again at each fetch until it
    /// exists; its releases fail naming the Secret meanwhile.
    pub credentials_namespace: Option<String>,
    /// Chart archive cache.
    pub cache_dir: PathBuf,
    /// Cluster-scoped kinds a chart may create.
    pub cluster_scoped_allow_list: ClusterScopedAllowList,
    /// How long a deleted release waits for its dependents to go first (SPEC §2.8).
    pub teardown_timeout: Duration,
    /// Most memory (bytes of data) one helm process may use; `None`: unlimited. Running out
    /// is the render error `RenderOutOfMemory`.
    pub helm_memory_limit: Option<u64>,
    /// The ServiceAccount (of each release's own namespace) a release without
    /// `spec.serviceAccountName` acts as; `None`: such a release uses the operator's rights.
    pub default_service_account: Option<String>,
    /// How many releases render and apply at the same time. Only that step is limited (the
    /// work gate, by priority: see `upstart_operator_runtime::WorkGate`); reconciles that only
    /// observe and write status are limited by the controller's concurrency.
    pub max_concurrent_applies: usize,
}

/// The default of [`Config::max_concurrent_applies`], as the binary's `--max-concurrent-applies`.
pub const DEFAULT_MAX_CONCURRENT_APPLIES: usize = 4;

/// The default teardown timeout (SPEC §2.8), as the binary's `--teardown-timeout`.
pub const DEFAULT_TEARDOWN_TIMEOUT: Duration = Duration::from_secs(10 * 60);

impl Default for Config {
    fn default() -> Self {
        Config {
            helm_path: PathBuf::from("helm"),
            repositories: RepositoryConfig::default(),
            credentials: HashMap::new(),
            credentials_namespace: None,
            cache_dir: std::env::temp_dir().join("upstart-helmrelease-charts"),
            cluster_scoped_allow_list: ClusterScopedAllowList::default(),
            teardown_timeout: DEFAULT_TEARDOWN_TIMEOUT,
            helm_memory_limit: Some(upstart_release_engine::render::DEFAULT_MEMORY_LIMIT),
            default_service_account: None,
            max_concurrent_applies: DEFAULT_MAX_CONCURRENT_APPLIES,
        }
    }
}

/// Reads each repository's credentials Secret from `namespace`, the operator's own, never
/// from a tenant namespace (SPEC §2.2). The binary calls it at startup; in-process users may
/// too, or fill [`Config::credentials`] themselves. A Secret that does not exist is logged and
/// left out, not an error: one missing Secret must not stop the releases of every other
/// repository, and with [`Config::credentials_namespace`] set it is read again later.
pub async fn load_credentials(
    client: &Client,
    namespace: &str,
    repositories: &RepositoryConfig,
) -> Result<HashMap<String, Credentials>, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut credentials = HashMap::new();
    for (alias, repository) in &repositories.repositories {
        let Some(name) = &repository.credentials_secret else {
            continue;
        };
        let action =
            format!("reading the credentials Secret {namespace}/{name} of repository {alias}");
        match secrets
            .get_opt(name)
            .await
            .map_err(Error::kube(ApiStep::ReadCredentials, action))?
        {
            Some(secret) => {
                credentials.insert(alias.clone(), secret_credentials(secret));
            }
            None => warn!(
                repository = %alias,
                secret = %format!("{namespace}/{name}"),
                "the credentials Secret of this repository does not exist: its releases fail until \
                 it is created in {namespace}, and pick it up then without a restart"
            ),
        }
    }
    Ok(credentials)
}

/// The credentials in a Secret's data (the keys [`Credentials::from_secret_data`] knows).
pub(in crate::controller) fn secret_credentials(secret: Secret) -> Credentials {
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| (key, value.0))
        .collect();
    Credentials::from_secret_data(&data)
}

/// Repositories whose credentials Secret did not exist when the operator started. Each fetch
/// from one of them reads its Secret again; once it exists, the repository gets a chart source
/// of its own with those credentials (and a cache directory of its own: a chart source owns
/// its cache directory), so creating the Secret heals its releases without a restart, and the
/// shared source, with its caches, stays as it is.
pub(in crate::controller) struct LateCredentials {
    pub(in crate::controller) namespace: String,
    pub(in crate::controller) repositories: RepositoryConfig,
    pub(in crate::controller) cache_dir: PathBuf,
    /// By repository alias: the Secret's name, and the source built once the Secret was read.
    pub(in crate::controller) pending:
        tokio::sync::Mutex<BTreeMap<String, (String, Option<ChartSource>)>>,
}

impl LateCredentials {
    /// The repositories of `config` that name a credentials Secret absent from its credentials;
    /// `None` when there are none or nowhere to read them from.
    pub(in crate::controller) fn of(config: &Config) -> Option<Self> {
        let namespace = config.credentials_namespace.clone()?;
        let pending: BTreeMap<String, (String, Option<ChartSource>)> = config
            .repositories
            .repositories
            .iter()
            .filter(|(alias, _)| !config.credentials.contains_key(*alias))
            .filter_map(|(alias, repository)| {
                let secret = repository.credentials_secret.clone()?;
                Some((alias.clone(), (secret, None)))
            })
            .collect();
        (!pending.is_empty()).then(|| LateCredentials {
            namespace,
            repositories: config.repositories.clone(),
            cache_dir: config.cache_dir.clone(),
            pending: tokio::sync::Mutex::new(pending),
        })
    }
}

/// The alias of the configured repository `chart` is fetched from: `ALIAS/NAME`, or a direct
/// `oci://…`/`https://…` reference to a configured repository's URL, or a
/// `git+SCHEME://HOST/PATH@DIR?ref=REF` reference to a configured `git+SCHEME://HOST/PATH` (as
/// the chart source resolves them).
pub(in crate::controller) fn repository_alias<'a>(
    repositories: &'a RepositoryConfig,
    chart: &str,
) -> Option<&'a str> {
    let chart = chart.trim();
    if chart.starts_with("file:") {
        return None;
    }
    if chart.starts_with("git+") {
        // The repository is what precedes `@DIR` in the path (an SSH user's `@` is before it).
        let reference = chart.split('?').next()?;
        let host_start = reference.find("://")? + 3;
        let (authority, path) = reference[host_start..].split_once('/')?;
        let repository_path = path.split_once('@').map_or(path, |(path, _)| path);
        let base = format!(
            "{}{authority}/{}",
            &reference[..host_start],
            repository_path.trim_end_matches('/')
        );
        return repositories
            .repositories
            .iter()
            .find(|(_, repository)| repository.url.trim().trim_end_matches('/') == base)
            .map(|(alias, _)| alias.as_str());
    }
    if chart.starts_with("oci://") || chart.starts_with("https://") || chart.starts_with("http://")
    {
        let (base, _name) = chart.rsplit_once('/')?;
        return repositories
            .repositories
            .iter()
            .find(|(_, repository)| repository.url.trim_end_matches('/') == base)
            .map(|(alias, _)| alias.as_str());
    }
    let (alias, _name) = chart.split_once('/')?;
    repositories
        .repositories
        .get_key_value(alias)
        .map(|(alias, _)| alias.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_matches_the_binary_defaults_with_a_temporary_cache() {
        let config = Config::default();
        assert_eq!(config.helm_path, PathBuf::from("helm"));
        assert!(config.repositories.repositories.is_empty());
        assert!(config.cache_dir.starts_with(std::env::temp_dir()));
        assert_eq!(
            config.teardown_timeout,
            upstart_operator_runtime::CommonArgs::default().teardown_timeout
        );
        assert_eq!(
            config.cluster_scoped_allow_list,
            ClusterScopedAllowList::default()
        );
    }

    #[test]
    fn a_chart_reference_names_its_configured_repository_as_the_chart_source_resolves_it() {
        let config = RepositoryConfig::from_yaml(
            "repositories: {reg: {url: \"oci://registry.example.com/charts/\"}, \
             web: {url: \"https://charts.example.com/stable\"}, \
             team: {url: \"git+ssh://git@git.example.com/team/charts.git\"}}",
        )
        .expect("valid");
        for (chart, alias) in [
            ("reg/app", Some("reg")),
            ("oci://registry.example.com/charts/app", Some("reg")),
            ("https://charts.example.com/stable/app", Some("web")),
            ("web/app", Some("web")),
            ("other/app", None),
            ("oci://registry.example.com/other/app", None),
            ("file:charts/reg/app", None),
            (
                "git+ssh://git@git.example.com/team/charts.git@charts/app?ref=main",
                Some("team"),
            ),
            ("git+ssh://git@git.example.com/team/other.git@app", None),
        ] {
            assert_eq!(repository_alias(&config, chart), alias, "{chart}");
        }
    }
}
