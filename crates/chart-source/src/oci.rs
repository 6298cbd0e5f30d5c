//! OCI registries (charts pushed with `helm push`): tag listing, manifest resolution and the
//! chart layer download, through `oci-client`.

use base64::Engine as _;
use futures::StreamExt as _;
use oci_client::Reference;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;

use crate::http::timed;
use crate::{Credentials, Error, Limits};

/// The media type of a Helm chart's content layer.
pub const CHART_LAYER_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

/// Helm stores `+` of a version as `_` in the tag (tags cannot hold `+`).
pub(crate) fn tag_for_version(version: &str) -> String {
    version.replace('+', "_")
}

/// The version a tag stands for.
pub(crate) fn version_for_tag(tag: &str) -> String {
    tag.replace('_', "+")
}

/// Which manifest of a chart to read.
pub(crate) enum ManifestAt<'a> {
    /// The one a tag points at.
    Tag(&'a str),
    /// Exactly this one (`sha256:HEX`).
    Digest(&'a str),
}

/// The outcome of a registry call that may be a plain "not there".
pub(crate) enum Failure {
    NotFound,
    Other(Error),
}

/// One registry namespace (`oci://HOST[:PORT]/PATH`) holding charts.
pub(crate) struct OciRepo {
    /// `oci://HOST[:PORT]/PATH`, for messages.
    pub display: String,
    registry: String,
    namespace: String,
    client: oci_client::Client,
    auth: RegistryAuth,
    limits: Limits,
}

impl std::fmt::Debug for OciRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OciRepo")
            .field("url", &self.display)
            .finish_non_exhaustive()
    }
}

impl OciRepo {
    pub(crate) fn new(
        registry: &str,
        namespace: &str,
        plain_http: bool,
        credentials: Option<&Credentials>,
        ca_bundles: &[&str],
        limits: &Limits,
    ) -> Result<Self, Error> {
        let display = if namespace.is_empty() {
            format!("oci://{registry}")
        } else {
            format!("oci://{registry}/{namespace}")
        };
        // oci-client parses certificates lazily and would accept garbage: check them here.
        for pem in ca_bundles {
            crate::http::parse_ca_bundle(pem)?;
        }
        let config = ClientConfig {
            protocol: if plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates: ca_bundles
                .iter()
                .map(|pem| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: pem.as_bytes().to_vec(),
                })
                .collect(),
            connect_timeout: Some(limits.fetch_timeout),
            read_timeout: Some(limits.fetch_timeout),
            user_agent: concat!("upstart-chart-source/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        // `Client::new` would silently fall back to a default client on a bad CA bundle.
        let client = oci_client::Client::try_from(config).map_err(|_| {
            Error::Config(format!(
                "cannot build the OCI client for {display} (is the CA bundle valid PEM?)"
            ))
        })?;
        let auth = registry_auth(registry, credentials, &display)?;
        Ok(Self {
            display,
            registry: registry.to_owned(),
            namespace: namespace.to_owned(),
            client,
            auth,
            limits: limits.clone(),
        })
    }

    fn repository(&self, name: &str) -> String {
        if self.namespace.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.namespace)
        }
    }

    fn reference(&self, name: &str, tag: &str) -> Reference {
        Reference::with_tag(self.registry.clone(), self.repository(name), tag.to_owned())
    }

    fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.display)
    }

    /// All tags of chart `name`.
    pub(crate) async fn tags(&self, name: &str) -> Result<Vec<String>, Failure> {
        let reference = self.reference(name, "latest");
        let url = self.url(name);
        let response = timed(&url, self.limits.fetch_timeout, async {
            Ok(self
                .client
                .list_tags(&reference, &self.auth, None, None)
                .await)
        })
        .await
        .map_err(Failure::Other)?;
        response
            .map(|r| r.tags)
            .map_err(|e| classify(&self.display, e))
    }

    /// The digest of the manifest `name:tag` points at now: a HEAD of the manifest (a GET when
    /// the registry sends no `Docker-Content-Digest`), accepting OCI and Docker manifests and
    /// indexes, so a multi-platform image resolves to its index.
    pub(crate) async fn manifest_digest(&self, name: &str, tag: &str) -> Result<String, Failure> {
        let reference = self.reference(name, tag);
        let url = format!("{}:{tag}", self.url(name));
        let digest = timed(&url, self.limits.fetch_timeout, async {
            Ok(self
                .client
                .fetch_manifest_digest(&reference, &self.auth)
                .await)
        })
        .await
        .map_err(Failure::Other)?
        .map_err(|e| classify(&self.display, e))?;
        if !crate::reference::valid_sha256_digest(&digest) {
            return Err(Failure::Other(Error::Registry {
                registry: self.display.clone(),
                message: format!("the manifest of {url} does not have a sha256 digest"),
                transient: false,
            }));
        }
        Ok(digest)
    }

    /// The chart layer of `name` at `at` (a tag, or a manifest digest whose content is checked
    /// against it), from its manifest, and the manifest's digest.
    pub(crate) async fn chart_layer(
        &self,
        name: &str,
        at: &ManifestAt<'_>,
    ) -> Result<(OciDescriptor, String), Failure> {
        let (reference, url) = match at {
            ManifestAt::Tag(tag) => (
                self.reference(name, tag),
                format!("{}:{tag}", self.url(name)),
            ),
            ManifestAt::Digest(digest) => (
                Reference::with_digest(
                    self.registry.clone(),
                    self.repository(name),
                    (*digest).to_owned(),
                ),
                format!("{}@{digest}", self.url(name)),
            ),
        };
        let (manifest, digest) = timed(&url, self.limits.fetch_timeout, async {
            Ok(self
                .client
                .pull_image_manifest(&reference, &self.auth)
                .await)
        })
        .await
        .map_err(Failure::Other)?
        .map_err(|e| classify(&self.display, e))?;
        // oci-client checks a manifest pulled by digest against it; so does this, in case it
        // ever stops doing so.
        if let ManifestAt::Digest(pinned) = at
            && digest != *pinned
        {
            return Err(Failure::Other(Error::Registry {
                registry: self.display.clone(),
                message: format!("{url}: the registry sent the manifest {digest}"),
                transient: false,
            }));
        }
        let layers: Vec<&OciDescriptor> = manifest
            .layers
            .iter()
            .filter(|l| l.media_type == CHART_LAYER_MEDIA_TYPE)
            .collect();
        match layers.as_slice() {
            [layer] => Ok(((*layer).clone(), digest)),
            _ => Err(Failure::Other(Error::InvalidArchive {
                chart: name.to_owned(),
                reason: format!(
                    "{url} is not a Helm chart: expected one {CHART_LAYER_MEDIA_TYPE} layer, found {}",
                    layers.len()
                ),
            })),
        }
    }

    /// Downloads the chart layer (size-limited; the caller verifies the digest).
    pub(crate) async fn pull_layer(
        &self,
        name: &str,
        tag: &str,
        layer: &OciDescriptor,
    ) -> Result<Vec<u8>, Error> {
        let limit = self.limits.max_archive_bytes;
        let too_big = || Error::LimitExceeded {
            what: format!("chart archive {}:{tag}", self.url(name)),
            limit,
            setting: "maxArchiveBytes",
        };
        if u64::try_from(layer.size).is_ok_and(|size| size > limit) {
            return Err(too_big());
        }
        let reference = self.reference(name, tag);
        let url = format!("{}:{tag}", self.url(name));
        timed(&url, self.limits.fetch_timeout, async {
            let mut stream = self
                .client
                .pull_blob_stream(&reference, layer)
                .await
                .map_err(|e| match classify(&self.display, e) {
                    Failure::NotFound => Error::Registry {
                        registry: self.display.clone(),
                        message: format!("the chart layer of {url} is missing"),
                        transient: false,
                    },
                    Failure::Other(error) => error,
                })?;
            if stream.content_length.is_some_and(|len| len > limit) {
                return Err(too_big());
            }
            let mut body = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|_| Error::Network {
                    url: url.clone(),
                    kind: "response body",
                })?;
                if (body.len() + chunk.len()) as u64 > limit {
                    return Err(too_big());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        })
        .await
    }
}

/// Credentials for the registry: basic, bearer, or the `auths` entry of a docker config for
/// this host. Anonymous when none apply.
fn registry_auth(
    registry: &str,
    credentials: Option<&Credentials>,
    display: &str,
) -> Result<RegistryAuth, Error> {
    let Some(credentials) = credentials else {
        return Ok(RegistryAuth::Anonymous);
    };
    if let Some(basic) = &credentials.basic {
        return Ok(RegistryAuth::Basic(
            basic.username.clone(),
            basic.password.clone(),
        ));
    }
    if let Some(token) = &credentials.bearer_token {
        return Ok(RegistryAuth::Bearer(token.clone()));
    }
    if let Some(json) = &credentials.docker_config_json {
        return docker_config_auth(registry, json).map_err(|reason| {
            Error::Config(format!("docker config credentials for {display}: {reason}"))
        });
    }
    Ok(RegistryAuth::Anonymous)
}

/// Finds `registry` in a docker `config.json` (`auths` keys may be bare hosts or URLs).
/// Error messages never include the file's content.
pub(crate) fn docker_config_auth(registry: &str, json: &str) -> Result<RegistryAuth, String> {
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        auths: std::collections::HashMap<String, Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        auth: Option<String>,
        username: Option<String>,
        password: Option<String>,
        registrytoken: Option<String>,
    }
    let config: Config =
        serde_json::from_str(json).map_err(|_| "the docker config is not valid JSON".to_owned())?;
    let host_of = |key: &str| {
        let key = key
            .strip_prefix("https://")
            .or_else(|| key.strip_prefix("http://"))
            .unwrap_or(key);
        key.split('/').next().unwrap_or_default().to_owned()
    };
    let Some(entry) = config
        .auths
        .iter()
        .find(|(key, _)| host_of(key) == registry)
        .map(|(_, entry)| entry)
    else {
        return Ok(RegistryAuth::Anonymous);
    };
    if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
        return Ok(RegistryAuth::Basic(user.clone(), password.clone()));
    }
    if let Some(auth) = &entry.auth {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| "an `auth` value is not base64".to_owned())?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| "an `auth` value is not UTF-8".to_owned())?;
        let Some((user, password)) = decoded.split_once(':') else {
            return Err("an `auth` value is not `user:password`".to_owned());
        };
        return Ok(RegistryAuth::Basic(user.to_owned(), password.to_owned()));
    }
    if let Some(token) = &entry.registrytoken {
        return Ok(RegistryAuth::Bearer(token.clone()));
    }
    Err("the entry for this registry has no usable credentials".to_owned())
}

/// Maps an `oci-client` error to "not found" or one of ours, keeping only the error codes and
/// status (never a response body or header, which could echo a token).
fn classify(registry: &str, error: OciDistributionError) -> Failure {
    let other = |message: String, transient: bool| {
        Failure::Other(Error::Registry {
            registry: registry.to_owned(),
            message,
            transient,
        })
    };
    match error {
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::NameUnknown
                        | OciErrorCode::ManifestUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            }) {
                Failure::NotFound
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                Failure::Other(Error::AccessDenied {
                    url: registry.to_owned(),
                    status: 401,
                })
            } else {
                let transient = codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Toomanyrequests));
                other(format!("registry error codes {codes:?}"), transient)
            }
        }
        OciDistributionError::ServerError { code, .. } => match code {
            404 => Failure::NotFound,
            401 | 403 => Failure::Other(Error::AccessDenied {
                url: registry.to_owned(),
                status: code,
            }),
            _ => other(
                format!("HTTP {code}"),
                code >= 500 || code == 429 || code == 408,
            ),
        },
        OciDistributionError::UnauthorizedError { .. } => Failure::Other(Error::AccessDenied {
            url: registry.to_owned(),
            status: 401,
        }),
        OciDistributionError::AuthenticationFailure(_) => {
            other("authentication failed".into(), false)
        }
        OciDistributionError::ImageManifestNotFoundError(_) => Failure::NotFound,
        OciDistributionError::RequestError(e) => Failure::Other(Error::from_reqwest(registry, &e)),
        OciDistributionError::IoError(_) => other("I/O error".into(), true),
        OciDistributionError::DigestError(_) => other(
            "the registry sent content that does not match its digest".into(),
            true,
        ),
        e => other(format!("{e}"), false),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;

    #[test]
    fn docker_config_auth_finds_the_registry_by_host() {
        let json = r#"{"auths":{"https://reg.example.com/v1/":{"auth":"cm9ib3Q6aHVudGVyMg=="},"other:5000":{"username":"u","password":"p"}}}"#;
        match docker_config_auth("reg.example.com", json).unwrap() {
            RegistryAuth::Basic(user, password) => {
                assert_eq!((user.as_str(), password.as_str()), ("robot", "hunter2"));
            }
            _ => panic!("expected basic auth"),
        }
        assert!(matches!(
            docker_config_auth("other:5000", json).unwrap(),
            RegistryAuth::Basic(..)
        ));
        assert!(matches!(
            docker_config_auth("unknown", json).unwrap(),
            RegistryAuth::Anonymous
        ));
    }

    #[test]
    fn docker_config_errors_do_not_echo_the_content() {
        let error = docker_config_auth("h", r#"{"auths":{"h":{"auth":"hunter2!!"}}}"#).unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
        let error = docker_config_auth("h", "hunter2 not json").unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn build_metadata_travels_as_underscore_in_tags() {
        assert_eq!(tag_for_version("1.2.3+build.4"), "1.2.3_build.4");
        assert_eq!(version_for_tag("1.2.3_build.4"), "1.2.3+build.4");
    }
}
