//! `upstart dev`: a local control plane with the workload simulator, the chart repository
//! and the operators, with the given files applied; optionally waits until they are Ready and
//! prints the resulting tree and wiring. Its repository flags give the HelmRelease operator
//! what the operators' chart gives it on a real cluster (repositories, unlisted references,
//! the cluster-scoped allow-list), so that any chart can be tried locally.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::Api;
use kube::api::ListParams;
use upstart_api::v1alpha1::UpstartService;
use upstart_local_cluster::report::{self, Snapshot};
use upstart_local_cluster::{
    ClusterScopedAllowList, LocalCluster, LocalClusterOptions, Manifest, OperatorSet,
    OverlayOptions, Repository, RepositoryConfig, apply_manifests, read_files,
};

use crate::cluster::Live;
use crate::error::Error;
use crate::status;

/// The field manager of everything `upstart dev` applies: kubectl's own for
/// `kubectl apply --server-side`. The documented edit loop is to change a file and re-apply it
/// with kubectl; under another manager that re-apply conflicts on every field whose value
/// changed (`conflict with "upstart-dev"`) and needs `--force-conflicts`. As the same manager,
/// kubectl's apply owns the same fields and simply moves them, as if kubectl had applied the
/// file in the first place.
const FIELD_MANAGER: &str = "kubectl";

/// Arguments of `upstart dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Manifest files to apply (multi-document YAML; a directory stands for its YAML files):
    /// CustomResourceDefinitions first, then the rest, with server-side apply as
    /// `kubectl apply --server-side` does it (field manager `kubectl`, so re-applying an edited
    /// file with kubectl just works). Namespaced objects without a namespace go to `default`.
    pub files: Vec<PathBuf>,

    /// Catalog templates: files (or directories) applied, before FILES, into the catalog
    /// namespace `upstart-catalog`, where UpstartEnvironments find the services they name.
    #[arg(long, value_name = "PATH")]
    pub catalog: Vec<PathBuf>,

    /// Where to write the kubeconfig for kubectl. The running instance is recorded next to it
    /// (KUBECONFIG.dev.json: pid, port, start), removed on exit: a second `upstart dev` refuses
    /// a kubeconfig a live instance holds, and names the instance holding a port it cannot get.
    #[arg(long, default_value = ".upstart/kubeconfig")]
    pub kubeconfig: PathBuf,

    /// Do not start the Upstart operators: applied Upstart objects are stored and served, and
    /// nothing reconciles them.
    #[arg(long)]
    pub no_operators: bool,

    /// The helm binary the HelmRelease operator renders charts with (default: .tools/bin/helm
    /// of this directory or a parent, as scripts/bootstrap-tools installs it, else PATH).
    #[arg(long, env = "UPSTART_HELM", value_name = "PATH")]
    pub helm: Option<PathBuf>,

    /// Port of the API server on 127.0.0.1 (0 picks a free one). UPSTART_DEV_PORT sets it for
    /// every `upstart dev` of a shell, so instances started side by side (tests, scripts) do not
    /// collide.
    #[arg(long, env = "UPSTART_DEV_PORT", default_value_t = 6443)]
    pub port: u16,

    /// Exit once every applied object that has a Ready condition is Ready=True (at once when
    /// none has one); exit non-zero if that takes longer than --ready-timeout. Upstart objects
    /// are waited for until their operator reports a Ready condition, unless that operator is
    /// not running.
    #[arg(long)]
    pub exit_when_ready: bool,

    /// Once the files are applied (and, with --exit-when-ready, Ready), print to stdout the
    /// tree of environments, services and releases with their phases, and the resolved wiring:
    /// the environment of the Deployments of every release that depends on others, with
    /// values of names like *PASSWORD*, *KEY*, *TOKEN*, *SECRET* and URL passwords masked.
    #[arg(long)]
    pub print_wiring: bool,

    /// How long --exit-when-ready waits.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub ready_timeout: Duration,

    /// Directory of charts served as the `upstart-charts` repository, watched while `upstart
    /// dev` runs. A chart added there is seen by the next release that resolves it; a chart
    /// version changed in place (same version, new content) upgrades the releases running it
    /// within about a second, without touching their spec (they get the new archive digest in
    /// the `upstartoperators.upstart.com/chart-digest` annotation). A repository named
    /// `upstart-charts` by --repository or --repositories-config wins: the directory is then
    /// not served.
    #[arg(long, default_value = "./charts")]
    pub charts: PathBuf,

    /// An upstream repository behind --charts, as NAME=URL (repeatable; an HTTP(S) Helm
    /// repository): the served repository becomes a development overlay that serves the
    /// directory's charts first and every other chart and version from the upstream, fetched
    /// on first use and kept in the cache (so they are served later with the upstream down),
    /// and takes over NAME as an alias besides `upstart-charts`, so releases referring to
    /// NAME/CHART get the local charts without editing them. Charts pushed with
    /// `curl --data-binary @CHART.tgz URL/api/charts` are served at once. A charts directory
    /// unpacked by `upstart charts unpack` is served with its cached upstream charts even
    /// without --upstream.
    ///
    /// Example: --upstream upstart-charts=https://charts.example.com/stable
    #[arg(long = "upstream", value_name = "NAME=URL")]
    pub upstreams: Vec<String>,

    /// Where the overlay keeps upstream indexes and archives (default: CHARTS/.upstart-cache,
    /// which `upstart charts pack` carries).
    #[arg(long, value_name = "DIR")]
    pub chart_cache: Option<PathBuf>,

    /// A chart repository beside `upstart-charts`, as NAME=URL (repeatable): an HTTP(S) chart
    /// repository serving index.yaml, or an OCI registry path (oci://HOST[:PORT]/PATH). Charts
    /// are then referenced as NAME/CHART. It replaces a repository of the same name in
    /// --repositories-config. Credentials, CA bundles and plain-HTTP OCI registries are
    /// configured in --repositories-config, never in the URL.
    ///
    /// Example: --repository bitnami=https://charts.bitnami.com/bitnami --repository
    /// podinfo=oci://ghcr.io/stefanprodan/charts
    #[arg(long = "repository", value_name = "NAME=URL")]
    pub repositories: Vec<String>,

    /// Accept direct chart references to repositories that are not configured:
    /// oci://HOST/PATH/NAME and https://HOST/PATH/NAME (http:// too), as `allowUnlisted: true`
    /// of the repository configuration.
    ///
    /// Example: --allow-unlisted, then `chart: oci://ghcr.io/stefanprodan/charts/podinfo`
    #[arg(long)]
    pub allow_unlisted: bool,

    /// Cluster-scoped kinds charts may create, as the HelmRelease operator's
    /// --allow-cluster-scoped takes them (comma-separated, repeatable): `group/Kind`, or a bare
    /// `Kind` for the core group (Namespace) or any group. Other cluster-scoped objects fail
    /// their release with ClusterScopedNotAllowed.
    ///
    /// Example: --allow-cluster-scoped
    /// rbac.authorization.k8s.io/ClusterRole,rbac.authorization.k8s.io/ClusterRoleBinding
    #[arg(long, value_name = "KIND[,KIND]", value_delimiter = ',')]
    pub allow_cluster_scoped: Vec<String>,

    /// The HelmRelease operator's repository configuration, as the operators' chart renders it
    /// into its ConfigMap (repositories.yaml: `repositories`, `allowUnlisted`,
    /// `unlistedPlainHttp`, `localRoots`, `limits`), so a platform team's configuration is
    /// tried as is. --repository and --allow-unlisted add to it. `indexTtl` is not used: indexes
    /// are read again at every resolution. A repository's `credentialsSecret` is read from the
    /// namespace upstart-system once created there.
    ///
    /// Example: --repositories-config repositories.yaml, holding `repositories: {bitnami: {url:
    /// https://charts.bitnami.com/bitnami}}`
    #[arg(long, value_name = "FILE")]
    pub repositories_config: Option<PathBuf>,

    /// Do not start the web view (`upstart ui`) beside the control plane (it is not started
    /// with --exit-when-ready either: nobody would have time to look).
    #[arg(long)]
    pub no_ui: bool,

    /// Port of the web view on 127.0.0.1 (0 picks a free one). Default: 8480, or a free port
    /// when 8480 is taken; its URL is printed under the kubeconfig line.
    #[arg(long, env = "UPSTART_UI_PORT")]
    pub ui_port: Option<u16>,

    /// How long simulated workloads (Deployments, Jobs, ...) take to become ready.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub workload_delay: Duration,
}

/// Runs `upstart dev` until it is interrupted (or, with `--exit-when-ready`, until ready).
pub async fn run(args: DevArgs) -> Result<(), Error> {
    // Read everything first, so a typo fails before anything starts.
    let repositories = repository_config(&args)?;
    let upstreams = crate::charts::upstreams(&args.upstreams)?;
    let cluster_scoped_allow_list = cluster_scoped_allow_list(&args.allow_cluster_scoped)?;
    let catalog = read_files(&args.catalog)?;
    let manifests = read_files(&args.files)?;
    let mut shutdown = Box::pin(shutdown_signal()?);

    let operators = if args.no_operators {
        tracing::info!("--no-operators: not starting the operators");
        OperatorSet::none()
    } else {
        OperatorSet::all()
    };
    let cluster = LocalCluster::start(LocalClusterOptions {
        https_port: Some(args.port),
        kubeconfig_path: Some(args.kubeconfig.clone()),
        charts_dir: Some(args.charts.clone()),
        chart_overlay: OverlayOptions {
            upstreams,
            cache_dir: args.chart_cache.clone(),
            ..OverlayOptions::default()
        },
        workload_delay: args.workload_delay,
        fail_workloads: false,
        operators,
        helm_path: args.helm.clone(),
        repositories,
        cluster_scoped_allow_list,
        environment_limits: Default::default(),
    })
    .await?;

    // stdout carries only what a user copies: how to reach the control plane and the charts.
    announce(format_args!(
        "export KUBECONFIG={}",
        absolute(&args.kubeconfig).display()
    ));
    for repo in cluster.chart_repositories() {
        announce(format_args!(
            "# chart repository {}: {}",
            repo.alias, repo.url
        ));
    }
    let ui = if args.no_ui || args.exit_when_ready {
        None
    } else {
        let loopback = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        let catalog = cluster.catalog_namespace().to_owned();
        let running =
            crate::ui::start(cluster.client().clone(), loopback, args.ui_port, &catalog).await?;
        announce(format_args!("# web view: {}", running.url));
        Some(running)
    };

    let mut interrupted = false;
    let outcome = tokio::select! {
        result = apply_and_wait(&cluster, catalog, manifests, &args) => result,
        () = &mut shutdown => {
            tracing::info!("interrupted");
            interrupted = true;
            // A script waiting for readiness must not mistake an interruption for success.
            if args.exit_when_ready { Err(Error::Interrupted) } else { Ok(()) }
        }
    };
    // Interrupted while starting: the signal is spent, there is nothing left to wait for.
    if outcome.is_ok() && !args.exit_when_ready && !interrupted {
        tracing::info!("running; press Ctrl-C to stop");
        shutdown.await;
    }

    tracing::info!("shutting down");
    if let Some(ui) = ui {
        ui.stop();
    }
    cluster.shutdown().await;
    outcome
}

async fn apply_and_wait(
    cluster: &LocalCluster,
    catalog: Vec<Manifest>,
    manifests: Vec<Manifest>,
    args: &DevArgs,
) -> Result<(), Error> {
    let client = cluster.client();
    if !catalog.is_empty() {
        let namespace = cluster.catalog_namespace();
        apply_manifests(client, catalog, FIELD_MANAGER, namespace).await?;
    }
    let applied = apply_manifests(client, manifests, FIELD_MANAGER, "default").await?;
    if args.exit_when_ready {
        let started = std::time::Instant::now();
        cluster.wait_ready(&applied, args.ready_timeout).await?;
        tracing::info!(
            elapsed = %humantime::format_duration(round_to_tenths(started.elapsed())),
            "ready"
        );
    }
    if args.print_wiring {
        print_tree_and_wiring(cluster).await?;
    }
    Ok(())
}

/// Prints the tree of every environment (as `upstart status` shows it) and of every other
/// namespace holding Upstart objects, the catalog aside, then the resolved wiring.
async fn print_tree_and_wiring(cluster: &LocalCluster) -> Result<(), Error> {
    let client = cluster.client();
    let catalog_namespace = cluster.catalog_namespace();
    let now = jiff::Timestamp::now();
    let environments = crate::cluster::list_environments(client).await?;
    let mut shown = BTreeSet::from([catalog_namespace.to_owned()]);
    let mut trees = Vec::new();
    for environment in &environments {
        let name = environment.metadata.name.as_deref().unwrap_or_default();
        let live = Live::read_environment(client, name).await?;
        shown.insert(live.namespace.clone());
        trees.push(live);
    }
    let snapshot = Snapshot::read(client).await?;
    let services = Api::<UpstartService>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|source| Error::Kube {
            what: "listing UpstartServices".to_owned(),
            source,
        })?;
    let others: BTreeSet<String> = snapshot
        .releases
        .iter()
        .filter_map(|r| r["metadata"]["namespace"].as_str().map(str::to_owned))
        .chain(
            services
                .items
                .iter()
                .filter_map(|s| s.metadata.namespace.clone()),
        )
        .filter(|ns| !shown.contains(ns))
        .collect();
    for namespace in &others {
        trees.push(Live::read_namespace(client, namespace).await?);
    }
    println!();
    for live in &trees {
        anstream::print!("{}", status::render(&status::tree(live, now)));
    }
    if trees.is_empty() {
        println!("(no Upstart objects)");
    }
    println!(
        "\nResolved wiring (the environment of the Deployments of the releases that depend on others; secrets masked):"
    );
    print!("{}", report::wiring(&snapshot, catalog_namespace));
    Ok(())
}

const REPOSITORY_EXAMPLE: &str = "--repository bitnami=https://charts.bitnami.com/bitnami";
const CLUSTER_SCOPED_EXAMPLE: &str =
    "--allow-cluster-scoped rbac.authorization.k8s.io/ClusterRole,Namespace";

/// The HelmRelease operator's repository configuration: --repositories-config, with each
/// --repository replacing the file's repository of its name, and --allow-unlisted.
fn repository_config(args: &DevArgs) -> Result<RepositoryConfig, Error> {
    let mut config = match &args.repositories_config {
        Some(path) => read_repositories_config(path)?,
        None => RepositoryConfig::default(),
    };
    let mut given = BTreeSet::new();
    for flag in &args.repositories {
        let (name, repository) = parse_repository(flag)?;
        if !given.insert(name.clone()) {
            return Err(Error::Usage(format!(
                "--repository {}: the repository {name} is given twice; give each name once",
                redact_url(flag)
            )));
        }
        config.repositories.insert(name, repository);
    }
    config.allow_unlisted |= args.allow_unlisted;
    Ok(config)
}

fn read_repositories_config(path: &Path) -> Result<RepositoryConfig, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "--repositories-config {}: cannot read it: {e}",
            path.display()
        ))
    })?;
    RepositoryConfig::from_yaml(&text).map_err(|e| {
        Error::Usage(format!(
            "--repositories-config {}: {e}; expected the HelmRelease operator's repository \
             configuration (the repositories.yaml of the operators' chart), e.g. \
             `repositories: {{bitnami: {{url: https://charts.bitnami.com/bitnami}}}}` and \
             optionally `allowUnlisted: true`",
            path.display()
        ))
    })
}

/// One `--repository NAME=URL`. The URL is checked for what a flag can get wrong (its scheme,
/// credentials in it); the operator's own checks run when the cluster starts.
fn parse_repository(flag: &str) -> Result<(String, Repository), Error> {
    let fail = |problem: &str| {
        Error::Usage(format!(
            "--repository {}: {problem}; expected NAME=URL with an http://, https:// or oci:// \
             URL, e.g. {REPOSITORY_EXAMPLE}",
            redact_url(flag)
        ))
    };
    let Some((name, url)) = flag.split_once('=') else {
        return Err(fail("no `=` between the name and the URL"));
    };
    let (name, url) = (name.trim(), url.trim());
    if name.is_empty() {
        return Err(fail("the name is empty"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(fail(
            "the name may hold only letters, digits, '-', '_' and '.' (charts are referenced as \
             NAME/CHART)",
        ));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(fail("the URL has no scheme"));
    };
    if !matches!(scheme, "http" | "https" | "oci") {
        return Err(fail(&format!(
            "the URL scheme {scheme}:// is not supported"
        )));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(fail(
            "credentials in the URL are refused (they would show in logs); name a Secret in \
             the repository's `credentialsSecret` of --repositories-config instead",
        ));
    }
    if authority.is_empty() {
        return Err(fail("the URL has no host"));
    }
    Ok((
        name.to_owned(),
        Repository {
            url: url.trim_end_matches('/').to_owned(),
            kind: None,
            plain_http: false,
            credentials_secret: None,
            ca_bundle: None,
        },
    ))
}

/// `flag` with the user-info of a URL in it masked, for error messages.
fn redact_url(flag: &str) -> String {
    let Some((before, rest)) = flag.split_once("://") else {
        return flag.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{before}://***{}", &rest[at..]),
        None => flag.to_owned(),
    }
}

/// The --allow-cluster-scoped entries, each `Kind` or `group/Kind` as the release engine
/// matches them: a typo would otherwise allow nothing, silently.
fn cluster_scoped_allow_list(entries: &[String]) -> Result<ClusterScopedAllowList, Error> {
    let mut kinds = Vec::with_capacity(entries.len());
    for entry in entries {
        let fail = |problem: &str| {
            Error::Usage(format!(
                "--allow-cluster-scoped {entry:?}: {problem}; expected Kind or group/Kind, \
                 comma-separated, e.g. {CLUSTER_SCOPED_EXAMPLE}"
            ))
        };
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(fail("an empty kind (a stray comma?)"));
        }
        let (group, kind) = match entry.split('/').collect::<Vec<_>>()[..] {
            [kind] => (None, kind),
            [group, kind] => (Some(group), kind),
            _ => {
                return Err(fail(
                    "too many `/`: write the API group without its version \
                     (rbac.authorization.k8s.io/ClusterRole, not \
                     rbac.authorization.k8s.io/v1/ClusterRole)",
                ));
            }
        };
        if !kind.starts_with(|c: char| c.is_ascii_uppercase())
            || !kind.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(fail(&format!(
                "{kind:?} is not a kind as manifests write it (CamelCase, e.g. ClusterRole)"
            )));
        }
        if let Some(group) = group {
            if is_version(group) {
                return Err(fail(&format!(
                    "{group:?} is an API version, not a group: core kinds are written bare \
                     ({kind})"
                )));
            }
            if group.is_empty()
                || !group
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-'))
            {
                return Err(fail(&format!(
                    "{group:?} is not an API group (lowercase DNS name, e.g. \
                     rbac.authorization.k8s.io)"
                )));
            }
        }
        kinds.push(entry.to_owned());
    }
    Ok(ClusterScopedAllowList::new(kinds))
}

/// Whether `text` is a Kubernetes API version (`v1`, `v1beta1`, `v2alpha3`).
fn is_version(text: &str) -> bool {
    static VERSION: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^v[0-9]+((alpha|beta)[0-9]+)?$").expect("a valid regex")
    });
    VERSION.is_match(text)
}

fn round_to_tenths(elapsed: Duration) -> Duration {
    Duration::from_secs_f64((elapsed.as_secs_f64() * 10.0).round() / 10.0)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, Error> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(Error::Signal)?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Prints one line of what a user copies to stdout. A reader that stopped reading (a script
/// that took the first line and closed the pipe) must not stop the control plane, so a write
/// that fails is ignored (`println!` would panic on the broken pipe).
pub(crate) fn announce(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_fmt(format_args!("{line}\n"))
        .and_then(|()| out.flush());
}
