//! The local cluster's error type.

use std::path::PathBuf;
use std::time::Duration;

use crate::instance::Instance;

/// Everything that can go wrong starting the local cluster, applying manifests or waiting for
/// them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{source_name}: {message}")]
    InvalidManifest {
        source_name: String,
        message: String,
    },
    #[error("a kubeconfig ({path}) needs an HTTPS endpoint: set https_port")]
    KubeconfigWithoutHttps { path: PathBuf },
    #[error("starting the local control plane on {addr}: {source}")]
    ControlPlane {
        addr: std::net::SocketAddr,
        source: Box<upstart_control_plane::Error>,
    },
    #[error("writing the kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    #[error(
        "port {port} is in use by another upstart dev ({holder}): stop it, or pass --port 0 \
         --kubeconfig OTHER to run a second one beside it"
    )]
    PortInUseByInstance { port: u16, holder: Box<Instance> },
    #[error(
        "port {port} of 127.0.0.1 is in use, and not by an upstart dev with its kubeconfig in \
         {}: stop what holds it, or pass --port 0 (any free port)", dir.display()
    )]
    PortInUse { port: u16, dir: PathBuf },
    #[error(
        "the kubeconfig {kubeconfig} belongs to another running upstart dev ({holder}); \
         overwriting it would point that one's users at this one: pass --kubeconfig OTHER \
         (and --port 0), or stop it"
    )]
    KubeconfigInUse {
        kubeconfig: PathBuf,
        holder: Box<Instance>,
    },
    #[error("writing the instance record {path}: {message}")]
    InstanceRecord { path: PathBuf, message: String },
    #[error("serving the charts in {path}: {source}")]
    ChartRepo {
        path: PathBuf,
        source: upstart_chart_repo::Error,
    },
    #[error("{source_name}: {kind} is not served by the control plane ({api_version}): {source}")]
    UnknownKind {
        source_name: String,
        api_version: String,
        kind: String,
        source: Box<kube::Error>,
    },
    #[error("{source_name}: applying {kind} {name}: {source}")]
    Apply {
        source_name: String,
        kind: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error("CustomResourceDefinition {name} was not established within {timeout:?}")]
    CrdNotEstablished { name: String, timeout: Duration },
    #[error("reading {kind} {name}: {source}")]
    Get {
        kind: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error(
        "no helm binary found for the HelmRelease operator: set UPSTART_HELM, run \
         scripts/bootstrap-tools (it installs .tools/bin/helm), or put helm on PATH"
    )]
    HelmNotFound,
    /// The chart source's own message, which names the configuration and the repository.
    #[error("{message} (see `upstart dev --help`: --repository, --repositories-config)")]
    RepositoryConfig { message: String },
    #[error("creating the cluster's scratch directory: {0}")]
    WorkDir(std::io::Error),
    #[error("operator {name}: {source}")]
    Operator {
        name: &'static str,
        source: Box<upstart_operator_runtime::Error>,
    },
    #[error("operator {operator} stopped with an error while waiting for Ready: {message}")]
    OperatorFailed {
        operator: &'static str,
        message: String,
    },
    #[error(
        "timed out after {} waiting for Ready: {}",
        humantime::format_duration(*timeout),
        pending.join("; ")
    )]
    ReadyTimeout {
        timeout: Duration,
        pending: Vec<String>,
    },
}

impl Error {
    /// A short, bounded label for logs and metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::ReadFile { .. } => "read_file",
            Error::InvalidManifest { .. } => "invalid_manifest",
            Error::KubeconfigWithoutHttps { .. } => "kubeconfig_without_https",
            Error::ControlPlane { .. } => "control_plane",
            Error::Kubeconfig { .. } => "kubeconfig",
            Error::PortInUseByInstance { .. } | Error::PortInUse { .. } => "port_in_use",
            Error::KubeconfigInUse { .. } => "kubeconfig_in_use",
            Error::InstanceRecord { .. } => "instance_record",
            Error::ChartRepo { .. } => "chart_repo",
            Error::UnknownKind { .. } => "unknown_kind",
            Error::Apply { .. } => "apply",
            Error::CrdNotEstablished { .. } => "crd_not_established",
            Error::Get { .. } => "get",
            Error::HelmNotFound => "helm_not_found",
            Error::RepositoryConfig { .. } => "repository_config",
            Error::WorkDir(_) => "work_dir",
            Error::Operator { .. } => "operator",
            Error::OperatorFailed { .. } => "operator_failed",
            Error::ReadyTimeout { .. } => "ready_timeout",
        }
    }
}
