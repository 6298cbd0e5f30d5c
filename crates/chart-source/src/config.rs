//! The repository configuration the platform team writes (YAML) and the credentials the
//! operator resolves from Secrets for it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Which repositories charts may come from, and the limits that apply. See the crate
/// documentation for the YAML format.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepositoryConfig {
    /// Repositories by alias: `ALIAS/NAME` references resolve against these.
    #[serde(default)]
    pub repositories: BTreeMap<String, Repository>,
    /// Whether direct `oci://…` and `https://…` references to repositories that are not
    /// configured are accepted. Default: refused.
    #[serde(default)]
    pub allow_unlisted: bool,
    /// Whether direct `oci://…` references to unlisted registries use plain HTTP (like
    /// `helm --plain-http`). Only for development against a local registry.
    #[serde(default)]
    pub unlisted_plain_http: bool,
    /// Directories `file:` charts may come from. Empty: `file:` charts are refused.
    #[serde(default)]
    pub local_roots: Vec<PathBuf>,
    /// How long a fetched `index.yaml` is used before it is read again (conditionally).
    #[serde(default = "default_index_ttl", deserialize_with = "duration")]
    pub index_ttl: Duration,
    /// How old a cached `index.yaml` must be for a chart or version missing from it to make it
    /// be read again (conditionally) before the TTL ends: a chart published after the last
    /// read is found this soon, and a release naming a chart that does not exist costs the
    /// repository at most one request per this period.
    #[serde(
        default = "default_missing_reread_after",
        deserialize_with = "duration"
    )]
    pub missing_reread_after: Duration,
    /// Size, count and time limits.
    #[serde(default)]
    pub limits: Limits,
}

impl Default for RepositoryConfig {
    fn default() -> Self {
        Self {
            repositories: BTreeMap::new(),
            allow_unlisted: false,
            unlisted_plain_http: false,
            local_roots: Vec::new(),
            index_ttl: default_index_ttl(),
            missing_reread_after: default_missing_reread_after(),
            limits: Limits::default(),
        }
    }
}

impl RepositoryConfig {
    /// Parses the YAML configuration document.
    pub fn from_yaml(text: &str) -> Result<Self, crate::Error> {
        serde_yaml_ng::from_str(text).map_err(|e| crate::Error::Config(e.to_string()))
    }
}

/// One configured repository.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Repository {
    /// `https://host/path` (an HTTP chart repository serving `index.yaml`) or
    /// `oci://host[:port]/path` (an OCI registry namespace holding the charts).
    pub url: String,
    /// `http` or `oci`; by default taken from the URL's scheme.
    #[serde(default)]
    pub kind: Option<RepositoryKind>,
    /// OCI only: talk plain HTTP to the registry (like `helm --plain-http`).
    #[serde(default)]
    pub plain_http: bool,
    /// Name of a Secret in the operator's namespace holding the credentials (see
    /// [`Credentials::from_secret_data`] for its keys). The operator resolves it and passes the
    /// result to [`crate::ChartSource::new`] under this repository's alias.
    #[serde(default)]
    pub credentials_secret: Option<String>,
    /// PEM certificates trusted for this repository in addition to the system roots.
    #[serde(default)]
    pub ca_bundle: Option<String>,
}

/// The protocol a repository speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepositoryKind {
    /// A Helm HTTP chart repository (`index.yaml` plus archives, as ChartMuseum serves).
    Http,
    /// An OCI registry (charts pushed with `helm push`).
    Oci,
    /// A git repository (`git+https://`, `git+http://`, `git+ssh://`) holding charts as
    /// directories, read with the git command-line client.
    Git,
}

/// Limits on what a repository may make the operator download, unpack or wait for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Limits {
    /// Largest `index.yaml` accepted, in bytes. Default 64 MiB.
    pub max_index_bytes: u64,
    /// Largest chart archive (`.tgz`) accepted, in bytes. Default 20 MiB.
    pub max_archive_bytes: u64,
    /// Largest total size of a chart's unpacked files, in bytes. Default 100 MiB.
    pub max_unpacked_bytes: u64,
    /// Most entries (files, directories, links) in one chart archive. Default 10000.
    pub max_files: u64,
    /// Longest time one fetch (an index, a manifest, an archive) may take. Default 60s.
    #[serde(deserialize_with = "duration")]
    pub fetch_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_index_bytes: 64 << 20,
            max_archive_bytes: 20 << 20,
            max_unpacked_bytes: 100 << 20,
            max_files: 10_000,
            fetch_timeout: Duration::from_secs(60),
        }
    }
}

fn default_index_ttl() -> Duration {
    Duration::from_secs(300)
}

fn default_missing_reread_after() -> Duration {
    Duration::from_secs(10)
}

/// Durations as Kubernetes users write them: `30s`, `5m`, `1h 30m`.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
}

/// Credentials for one repository, resolved by the operator from the Secret named in
/// [`Repository::credentials_secret`]. `Debug` never shows the values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// HTTP basic authentication.
    pub basic: Option<BasicAuth>,
    /// A bearer token (`Authorization: Bearer …`).
    pub bearer_token: Option<String>,
    /// A docker `config.json` (`{"auths": {"HOST": {"auth": base64(user:pass)}}}`), for OCI.
    pub docker_config_json: Option<String>,
    /// PEM certificates to trust, in addition to [`Repository::ca_bundle`].
    pub ca_bundle: Option<String>,
    /// For `git+ssh://` repositories: the private key (OpenSSH or PEM form).
    pub ssh_private_key: Option<String>,
    /// For `git+ssh://` repositories: the `known_hosts` lines the server's host key must
    /// match (an unknown or changed key fails the fetch).
    pub known_hosts: Option<String>,
}

/// A user name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BasicAuth(<redacted>)")
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("basic", &self.basic.as_ref().map(|_| "<redacted>"))
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "docker_config_json",
                &self.docker_config_json.as_ref().map(|_| "<redacted>"),
            )
            .field("ca_bundle", &self.ca_bundle.is_some())
            .field(
                "ssh_private_key",
                &self.ssh_private_key.as_ref().map(|_| "<redacted>"),
            )
            .field("known_hosts", &self.known_hosts.is_some())
            .finish()
    }
}

impl Credentials {
    /// Reads credentials from a Secret's data, using the key names Helm and Kubernetes use:
    /// `username` + `password` (basic), `token` (bearer), `.dockerconfigjson` (a
    /// `kubernetes.io/dockerconfigjson` Secret), `ca.crt` (a PEM bundle), and for git over SSH
    /// `ssh-privatekey` (a `kubernetes.io/ssh-auth` Secret) and `known_hosts`. Other keys are
    /// ignored; values that are not UTF-8 are ignored.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Self {
        let text = |key: &str| {
            data.get(key)
                .and_then(|v| String::from_utf8(v.clone()).ok())
                .filter(|s| !s.is_empty())
        };
        let basic = match (text("username"), text("password")) {
            (Some(username), Some(password)) => Some(BasicAuth { username, password }),
            _ => None,
        };
        Self {
            basic,
            bearer_token: text("token"),
            docker_config_json: text(".dockerconfigjson"),
            ca_bundle: text("ca.crt"),
            ssh_private_key: text("ssh-privatekey"),
            known_hosts: text("known_hosts"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;

    #[test]
    fn full_configuration_parses_from_yaml() {
        let config = RepositoryConfig::from_yaml(
            r#"
repositories:
  upstart-charts:
    url: https://charts.example.com
    credentialsSecret: upstart-charts-auth
  registry:
    url: oci://registry.example.com/charts
    plainHttp: true
    caBundle: |
      -----BEGIN CERTIFICATE-----
allowUnlisted: true
localRoots: [/charts]
indexTtl: 2m
limits:
  maxArchiveBytes: 1000
  fetchTimeout: 10s
"#,
        )
        .unwrap();
        assert_eq!(config.repositories.len(), 2);
        let http = &config.repositories["upstart-charts"];
        assert_eq!(
            http.credentials_secret.as_deref(),
            Some("upstart-charts-auth")
        );
        assert!(config.repositories["registry"].plain_http);
        assert!(config.allow_unlisted);
        assert_eq!(config.index_ttl, Duration::from_secs(120));
        assert_eq!(config.limits.max_archive_bytes, 1000);
        assert_eq!(config.limits.fetch_timeout, Duration::from_secs(10));
        assert_eq!(config.limits.max_files, Limits::default().max_files);
    }

    #[test]
    fn empty_configuration_refuses_unlisted_repositories_by_default() {
        let config = RepositoryConfig::from_yaml("{}").unwrap();
        assert!(!config.allow_unlisted);
        assert_eq!(config, RepositoryConfig::default());
    }

    #[test]
    fn unknown_fields_are_configuration_errors() {
        let error = RepositoryConfig::from_yaml("allowUnlistd: true").unwrap_err();
        assert!(error.to_string().contains("allowUnlistd"), "{error}");
    }

    #[test]
    fn credentials_debug_output_hides_values() {
        let mut data = BTreeMap::new();
        data.insert("username".to_owned(), b"robot".to_vec());
        data.insert("password".to_owned(), b"hunter2".to_vec());
        data.insert("token".to_owned(), b"tok-123".to_vec());
        let credentials = Credentials::from_secret_data(&data);
        assert_eq!(credentials.basic.as_ref().unwrap().username, "robot");
        let shown = format!("{credentials:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok-123") && !shown.contains("robot")
        );
    }
}
