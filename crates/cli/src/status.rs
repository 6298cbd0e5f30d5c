//! `upstart status`: the live tree of an environment (or a namespace) — its services and
//! releases with their phase, what each waits for, ready/total progress and time so far —
//! once, or refreshed on every watch event until it is Ready.
//!
//! The tree is built by a pure function from one snapshot ([`Live`]) and a clock, and rendered
//! as text (tested) or, with `--watch` on a terminal, as indicatif progress bars.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};
use upstart_api::v1alpha1::{HelmRelease, UpstartEnvironment, UpstartService};
use upstart_dag::{DependencyGraph, NodeId, NodeKind};

use crate::cluster::Live;
use crate::error::Error;
use crate::render::{BOLD, DIM, ERROR, GOOD, WARNING, styled};

/// Arguments of `upstart status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The UpstartEnvironment to show.
    #[arg(required_unless_present = "namespace", conflicts_with = "namespace")]
    pub environment: Option<String>,

    /// Where the catalog templates are (the operators' --catalog-namespace): services not
    /// created yet are shown with their template's releases.
    #[arg(long, default_value = crate::model::CATALOG_NAMESPACE)]
    pub catalog_namespace: String,

    /// Show the UpstartServices and HelmReleases of a namespace instead (no environment).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,

    /// Keep refreshing on every change until Ready (Ctrl-C stops).
    #[arg(long, short = 'w')]
    pub watch: bool,

    /// With --watch: give up (exit non-zero) when not Ready after this long.
    #[arg(long, value_parser = humantime::parse_duration, requires = "watch")]
    pub timeout: Option<Duration>,

    /// Kubeconfig (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

/// One release in the tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The key (a service's or environment's release), or the object name.
    pub name: String,
    /// Phase, `NotCreated` when the object does not exist yet.
    pub phase: String,
    /// Ready.
    pub ready: bool,
    /// Unready dependencies (as users name them) and dependency names that resolve to nothing.
    pub waits_for: Vec<String>,
    /// The Ready condition's message, when not Ready.
    pub message: Option<String>,
    /// How long it has been in its current stage (waiting, installing), or how long the
    /// install took once Ready (from `status.timings`).
    pub time: Option<Duration>,
    /// For a chart from git: the commit applied, shortened to 7 digits as git does.
    pub commit: Option<String>,
}

/// A service, the environment's own releases, or the namespace's other releases.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// `UpstartService example-service`, `environment releases`, `other releases`.
    pub title: String,
    /// The service's phase (none for the other groups).
    pub phase: Option<String>,
    /// Ready releases.
    pub ready: usize,
    /// Releases.
    pub total: usize,
    /// What the service reports as blocking it (`blockedBy`), or why it is not Ready.
    pub note: Option<String>,
    /// Its releases.
    pub rows: Vec<Row>,
}

/// The whole tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Tree {
    /// `UpstartEnvironment pr-1234 (namespace pr-1234)` or `namespace x`.
    pub title: String,
    /// Environment phase, or `Ready`/`Provisioning` computed for a namespace.
    pub phase: String,
    /// Whether everything is Ready.
    pub ready: bool,
    /// `ready/total` services, when there are any.
    pub services: (usize, usize),
    /// `ready/total` releases.
    pub releases: (usize, usize),
    /// Time since creation, or time to ready.
    pub elapsed: Option<Duration>,
    /// The Ready condition's message when not Ready.
    pub message: Option<String>,
    /// Services, then the environment's releases, then the rest.
    pub groups: Vec<Group>,
    /// Notes under the header: when the environment expires, its critical path once Ready.
    pub notes: Vec<String>,
}

fn ready_condition(conditions: &[Condition]) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == "Ready")
}

fn release_ready(release: &HelmRelease) -> bool {
    release
        .status
        .as_ref()
        .and_then(|s| ready_condition(&s.conditions))
        .is_some_and(|c| c.status == "True")
}

fn since(time: Option<&Time>, now: jiff::Timestamp) -> Option<Duration> {
    let start = time?.0;
    let span = now.duration_since(start);
    Duration::try_from(span).ok()
}

pub(crate) fn row(
    name: String,
    node: &NodeId,
    live: &Live,
    graph: &DependencyGraph,
    ready: &dyn Fn(&NodeId) -> bool,
    now: jiff::Timestamp,
) -> Row {
    let object = live.release(node);
    let status = object.and_then(|r| r.status.as_ref());
    let is_ready = object.is_some_and(release_ready);
    let phase = match (object, status.and_then(|s| s.phase)) {
        (None, _) => "NotCreated".to_owned(),
        (Some(_), None) => "Pending".to_owned(),
        (Some(_), Some(phase)) => phase.as_str().to_owned(),
    };
    let mut waits_for = Vec::new();
    if !is_ready {
        waits_for = graph
            .waiting_for(node, ready)
            .iter()
            .map(|n| graph.label(n).unwrap_or(&n.name).to_owned())
            .collect();
        waits_for.extend(
            graph
                .unresolved(node)
                .iter()
                .map(|name| format!("{name} (does not exist)")),
        );
    }
    // While it waits for dependencies its message repeats what their own lines say.
    let repeats_dependencies = !waits_for.is_empty()
        && status.and_then(|s| s.phase).map(|p| p.as_str()) == Some("WaitingForDependencies");
    let message = status
        .and_then(|s| ready_condition(&s.conditions))
        .filter(|c| c.status != "True" && !c.message.is_empty() && !repeats_dependencies)
        .map(|c| c.message.clone());
    let timings = status.and_then(|s| s.timings.as_ref());
    let time = timings.and_then(|t| match (&t.created_at, &t.started_at, &t.ready_at) {
        (_, Some(started), Some(ready)) if is_ready => {
            Duration::try_from(ready.0.duration_since(started.0)).ok()
        }
        _ if is_ready => None,
        (_, Some(started), _) => since(Some(started), now),
        (Some(created), None, _) => since(Some(created), now),
        _ => None,
    });
    let commit = status
        .and_then(|s| s.commit.as_deref())
        .map(|c| c.chars().take(7).collect());
    Row {
        name,
        phase,
        ready: is_ready,
        waits_for,
        message,
        time,
        commit,
    }
}

fn group(title: String, phase: Option<String>, note: Option<String>, rows: Vec<Row>) -> Group {
    Group {
        title,
        phase,
        ready: rows.iter().filter(|r| r.ready).count(),
        total: rows.len(),
        note,
        rows,
    }
}

fn service_group(
    name: &str,
    live: &Live,
    graph: &DependencyGraph,
    ready: &dyn Fn(&NodeId) -> bool,
    now: jiff::Timestamp,
) -> Group {
    let service = live.service(name);
    let status = service.and_then(|s| s.status.as_ref());
    let spec = service.map(|s| &s.spec).or_else(|| live.planned.get(name));
    let rows = match spec {
        Some(spec) => spec
            .helm_releases
            .keys()
            .map(|key| {
                let node = NodeId::release(upstart_api::names::child_name(name, key));
                row(key.clone(), &node, live, graph, ready, now)
            })
            .collect(),
        None => Vec::new(),
    };
    let phase = match (service, status.and_then(|s| s.phase)) {
        (None, _) => Some("NotCreated".to_owned()),
        (Some(_), None) => Some("Pending".to_owned()),
        (Some(_), Some(phase)) => Some(format!("{phase:?}")),
    };
    let not_ready = status
        .and_then(|s| ready_condition(&s.conditions))
        .filter(|c| c.status != "True" && !c.message.is_empty())
        .map(|c| c.message.clone());
    let note = status
        .and_then(|s| s.blocked_by.clone())
        .map(|b| format!("blocked by {b}"))
        .or(not_ready);
    let mut group = group(format!("UpstartService {name}"), phase, note, rows);
    // Before the operator has created the children, the spec still says how many there are.
    if let Some(status) = status
        && let (Some(ready), Some(total)) = (status.ready_releases, status.total_releases)
        && group.rows.iter().all(|r| r.phase == "NotCreated")
    {
        group.ready = usize::try_from(ready).unwrap_or_default();
        group.total = usize::try_from(total).unwrap_or_default();
    }
    group
}

/// Whether a node is Ready: a release by its Ready condition, a service when all its releases
/// are (what the service operator reports).
pub(crate) fn readiness<'a>(
    live: &Live,
    graph: &'a DependencyGraph,
) -> impl Fn(&NodeId) -> bool + 'a {
    let ready_nodes: HashMap<NodeId, bool> = live
        .releases
        .iter()
        .filter_map(|r| Some((NodeId::release(r.metadata.name.clone()?), release_ready(r))))
        .collect();
    move |node: &NodeId| match node.kind {
        NodeKind::HelmRelease => ready_nodes.get(node).copied().unwrap_or(false),
        NodeKind::UpstartService => {
            let releases = graph.depends_on(node);
            !releases.is_empty()
                && releases
                    .iter()
                    .all(|r| ready_nodes.get(r).copied().unwrap_or(false))
        }
    }
}

/// The tree of a snapshot at `now`.
pub fn tree(live: &Live, now: jiff::Timestamp) -> Tree {
    let graph = live.graph();
    let ready_fn = readiness(live, &graph);
    let ready: &dyn Fn(&NodeId) -> bool = &ready_fn;

    let mut service_names: Vec<String> = live
        .services
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    if let Some(environment) = &live.environment {
        for service in environment
            .spec
            .services
            .iter()
            .filter(|s| upstart_dag::switches::keeps_service(&environment.spec, s))
        {
            if !service_names.contains(&service.name) {
                service_names.push(service.name.clone());
            }
        }
    }
    service_names.sort();
    let mut groups: Vec<Group> = service_names
        .iter()
        .map(|name| service_group(name, live, &graph, ready, now))
        .collect();
    let mut covered: Vec<String> = live
        .services
        .iter()
        .flat_map(|s| {
            let name = s.metadata.name.clone().unwrap_or_default();
            s.spec
                .helm_releases
                .keys()
                .map(move |k| upstart_api::names::child_name(&name, k))
                .collect::<Vec<_>>()
        })
        .collect();
    if let (Some(environment), Some(name)) = (&live.environment, live.environment_name())
        && !environment.spec.helm_releases.is_empty()
    {
        let rows = environment
            .spec
            .helm_releases
            .keys()
            .map(|key| {
                let object = upstart_api::names::child_name(name, key);
                covered.push(object.clone());
                row(
                    key.clone(),
                    &NodeId::release(object),
                    live,
                    &graph,
                    ready,
                    now,
                )
            })
            .collect();
        groups.push(group("environment releases".to_owned(), None, None, rows));
    }
    let others: Vec<Row> = live
        .releases
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .filter(|name| !covered.contains(name))
        .map(|name| {
            row(
                name.clone(),
                &NodeId::release(name),
                live,
                &graph,
                ready,
                now,
            )
        })
        .collect();
    if !others.is_empty() {
        groups.push(group("other releases".to_owned(), None, None, others));
    }

    // A service's own Ready condition decides; before it has one, its releases do.
    let services_ready = service_names
        .iter()
        .zip(&groups)
        .filter(|(name, group)| {
            live.service(name)
                .and_then(|s| s.status.as_ref())
                .and_then(|s| ready_condition(&s.conditions))
                .map_or(group.total > 0 && group.ready == group.total, |c| {
                    c.status == "True"
                })
        })
        .count();
    let services_total = service_names.len();
    let releases = (
        groups.iter().map(|g| g.ready).sum(),
        groups.iter().map(|g| g.total).sum(),
    );
    let all_ready = releases.0 == releases.1 && services_ready == services_total;
    match &live.environment {
        Some(environment) => {
            let status = environment.status.as_ref();
            let condition = status.and_then(|s| ready_condition(&s.conditions));
            let ready = condition.is_some_and(|c| c.status == "True");
            let elapsed = match status.and_then(|s| s.time_to_ready_seconds) {
                Some(seconds) if ready => Some(Duration::from_secs_f64(seconds.max(0.0))),
                _ => since(environment.metadata.creation_timestamp.as_ref(), now),
            };
            Tree {
                title: format!(
                    "UpstartEnvironment {} (namespace {})",
                    live.environment_name().unwrap_or_default(),
                    live.namespace
                ),
                phase: status
                    .and_then(|s| s.phase)
                    .map_or_else(|| "Pending".to_owned(), |p| format!("{p:?}")),
                ready,
                services: (services_ready, services_total),
                releases,
                elapsed,
                message: condition
                    .filter(|c| c.status != "True" && !c.message.is_empty())
                    .map(|c| c.message.clone()),
                groups,
                notes: environment_notes(status),
            }
        }
        None => {
            let oldest = live
                .services
                .iter()
                .filter_map(|s| s.metadata.creation_timestamp.as_ref())
                .chain(
                    live.releases
                        .iter()
                        .filter_map(|r| r.metadata.creation_timestamp.as_ref()),
                )
                .min_by_key(|t| t.0);
            let ready = all_ready && releases.1 > 0;
            Tree {
                title: format!("namespace {}", live.namespace),
                phase: if ready { "Ready" } else { "Provisioning" }.to_owned(),
                ready,
                services: (services_ready, services_total),
                releases,
                elapsed: if ready { None } else { since(oldest, now) },
                message: None,
                groups,
                notes: Vec::new(),
            }
        }
    }
}

/// Who asked for the environment, when it expires, the chain of releases that decided its time
/// to ready, and where it can be reached.
fn environment_notes(
    status: Option<&upstart_api::v1alpha1::UpstartEnvironmentStatus>,
) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(status) = status else {
        return notes;
    };
    if let Some(requester) = &status.requester {
        notes.push(format!("requested by {requester}"));
    }
    if let Some(expires) = &status.expires_at {
        notes.push(format!("expires at {}", expires.0));
    }
    if !status.critical_path.is_empty() {
        let steps: Vec<String> = status
            .critical_path
            .iter()
            .map(|step| {
                format!(
                    "{} (waited {}, installed in {})",
                    step.release,
                    short_duration(Duration::from_secs_f64(step.wait_seconds.max(0.0))),
                    short_duration(Duration::from_secs_f64(step.install_seconds.max(0.0)))
                )
            })
            .collect();
        notes.push(format!("critical path: {}", steps.join(" -> ")));
    }
    if !status.endpoints.is_empty() {
        let endpoints: Vec<String> = status
            .endpoints
            .iter()
            .map(|e| format!("{} {}", e.service, e.url))
            .collect();
        notes.push(format!("endpoints: {}", endpoints.join(", ")));
    }
    notes
}

#[cfg(test)]
mod notes_tests {
    use super::environment_notes;

    #[test]
    fn notes_name_the_requester_and_every_endpoint_by_service() {
        let status: upstart_api::v1alpha1::UpstartEnvironmentStatus =
            serde_json::from_value(serde_json::json!({
                "requester": "alice",
                "endpoints": [
                    {"service": "web", "kind": "Ingress", "object": "web", "url": "https://pr-1.example.com"},
                    {"service": "db", "kind": "Service", "object": "postgres", "url": "postgres.pr-1.svc:5432"}
                ]
            }))
            .expect("status");
        assert_eq!(
            environment_notes(Some(&status)),
            [
                "requested by alice",
                "endpoints: web https://pr-1.example.com, db postgres.pr-1.svc:5432"
            ]
        );
    }
}

/// `[########------------]`, `width` characters between the brackets.
pub fn bar(ready: usize, total: usize, width: usize) -> String {
    let filled = (ready * width).checked_div(total).unwrap_or(0).min(width);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

/// `1h2m`, `3m4s`, `5s`.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

fn phase_style(phase: &str, ready: bool) -> anstyle::Style {
    match phase {
        _ if ready => GOOD,
        "Failed" | "Degraded" => ERROR,
        "NotCreated" | "Pending" | "WaitingForDependencies" => DIM,
        _ => WARNING,
    }
}

fn mark(ready: bool, phase: &str) -> &'static str {
    match phase {
        _ if ready => "✔",
        "Failed" => "✘",
        "WaitingForDependencies" | "Pending" | "NotCreated" => "…",
        _ => "◌",
    }
}

/// The header line of a tree.
pub fn header(tree: &Tree) -> String {
    let mut line = format!(
        "{}  {}",
        styled(BOLD, &tree.title),
        styled(phase_style(&tree.phase, tree.ready), &tree.phase)
    );
    if tree.services.1 > 0 {
        let _ = write!(line, "  services {}/{}", tree.services.0, tree.services.1);
    }
    let _ = write!(
        line,
        "  releases {}/{} {}",
        tree.releases.0,
        tree.releases.1,
        bar(tree.releases.0, tree.releases.1, 20)
    );
    if let Some(elapsed) = tree.elapsed {
        let word = if tree.ready { "ready in" } else { "for" };
        let _ = write!(line, "  {word} {}", short_duration(elapsed));
    }
    line
}

/// One release line, without its tree prefix.
pub fn row_text(row: &Row) -> String {
    let mut line = format!(
        "{} {:<20} {}",
        mark(row.ready, &row.phase),
        row.name,
        styled(phase_style(&row.phase, row.ready), &row.phase)
    );
    if let Some(time) = row.time {
        let word = if row.ready { "in" } else { "for" };
        let _ = write!(line, " {word} {}", short_duration(time));
    }
    if let Some(commit) = &row.commit {
        let _ = write!(line, "  commit {commit}");
    }
    if !row.waits_for.is_empty() {
        let _ = write!(line, "  waits for {}", row.waits_for.join(", "));
    }
    if let Some(message) = &row.message {
        let _ = write!(line, "  {}", styled(DIM, message));
    }
    line
}

/// One group line, without its tree prefix.
pub fn group_text(group: &Group) -> String {
    let mut line = styled(BOLD, &group.title);
    if let Some(phase) = &group.phase {
        let ready = group.total > 0 && group.ready == group.total;
        let _ = write!(line, "  {}", styled(phase_style(phase, ready), phase));
    }
    let _ = write!(
        line,
        "  {}/{} {}",
        group.ready,
        group.total,
        bar(group.ready, group.total, 10)
    );
    if let Some(note) = &group.note {
        let _ = write!(line, "  {}", styled(DIM, note));
    }
    line
}

/// The tree as text.
pub fn render(tree: &Tree) -> String {
    let mut out = header(tree);
    out.push('\n');
    if let Some(message) = &tree.message {
        let _ = writeln!(out, "  {}", styled(DIM, message));
    }
    for note in &tree.notes {
        let _ = writeln!(out, "  {}", styled(DIM, note));
    }
    for (g, group) in tree.groups.iter().enumerate() {
        let last_group = g + 1 == tree.groups.len();
        let (branch, indent) = if last_group {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        let _ = writeln!(out, "{branch}{}", group_text(group));
        for (r, row) in group.rows.iter().enumerate() {
            let branch = if r + 1 == group.rows.len() {
                "└─ "
            } else {
                "├─ "
            };
            let _ = writeln!(out, "{indent}{branch}{}", row_text(row));
        }
    }
    out
}

/// Runs `upstart status`.
pub async fn run(args: &StatusArgs) -> Result<(), Error> {
    let client = crate::cluster::client(args.kubeconfig.as_deref()).await?;
    let read = || async {
        match (&args.environment, &args.namespace) {
            (Some(environment), _) => {
                Live::read_environment_with_catalog(&client, environment, &args.catalog_namespace)
                    .await
            }
            (None, Some(namespace)) => Live::read_namespace(&client, namespace).await,
            (None, None) => Err(Error::Usage(
                "name an environment or --namespace".to_owned(),
            )),
        }
    };
    let live = read().await?;
    if !args.watch {
        anstream::print!("{}", render(&tree(&live, jiff::Timestamp::now())));
        return Ok(());
    }

    let namespace = live.namespace.clone();
    let mut changes = change_stream(&client, args.environment.as_deref(), &namespace);
    let mut display = Display::new();
    let deadline = args.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut live = live;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let tree = tree(&live, jiff::Timestamp::now());
        display.show(&tree);
        if tree.ready {
            display.finish(&tree);
            return Ok(());
        }
        tokio::select! {
            change = changes.next() => {
                if change.is_none() {
                    return Err(Error::Usage("the watch ended".to_owned()));
                }
                // Let a burst of events settle into one refresh.
                tokio::time::sleep(Duration::from_millis(100)).await;
                live = read().await?;
            }
            // Only the elapsed time moves; the terminal view shows it.
            _ = tick.tick() => {}
            () = sleep_until(deadline) => {
                display.finish(&tree);
                return Err(Error::Timeout(humantime::format_duration(args.timeout.unwrap_or_default()).to_string()));
            }
            _ = tokio::signal::ctrl_c() => {
                display.finish(&tree);
                return Err(Error::Interrupted);
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Any change of the environment, or of a service or release of the namespace.
pub(crate) fn change_stream(
    client: &Client,
    environment: Option<&str>,
    namespace: &str,
) -> futures::stream::SelectAll<futures::stream::BoxStream<'static, ()>> {
    let services: Api<UpstartService> = Api::namespaced(client.clone(), namespace);
    let releases: Api<HelmRelease> = Api::namespaced(client.clone(), namespace);
    let mut streams: Vec<futures::stream::BoxStream<'static, ()>> = vec![
        watcher(services, watcher::Config::default())
            .default_backoff()
            .map(|_| ())
            .boxed(),
        watcher(releases, watcher::Config::default())
            .default_backoff()
            .map(|_| ())
            .boxed(),
    ];
    if let Some(name) = environment {
        let environments: Api<UpstartEnvironment> = Api::all(client.clone());
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        streams.push(
            watcher(environments, config)
                .default_backoff()
                .map(|_| ())
                .boxed(),
        );
    }
    futures::stream::select_all(streams)
}

/// Where a watched tree goes: progress bars on a terminal, a new text tree on each change
/// otherwise (logs, CI).
enum Display {
    Bars(Bars),
    Text(Option<String>),
}

struct Bars {
    multi: indicatif::MultiProgress,
    lines: Vec<indicatif::ProgressBar>,
    /// Whether styles reach the terminal.
    colour: bool,
}

impl Display {
    fn new() -> Self {
        use std::io::IsTerminal as _;
        if std::io::stdout().is_terminal() {
            Display::Bars(Bars {
                multi: indicatif::MultiProgress::with_draw_target(
                    indicatif::ProgressDrawTarget::stdout(),
                ),
                lines: Vec::new(),
                colour: anstream::AutoStream::choice(&std::io::stdout())
                    != anstream::ColorChoice::Never,
            })
        } else {
            Display::Text(None)
        }
    }

    fn show(&mut self, tree: &Tree) {
        match self {
            Display::Text(last) => {
                // Time moves every second; print only when something else changed.
                let mut timeless = tree.clone();
                timeless.elapsed = None;
                for row in timeless.groups.iter_mut().flat_map(|g| g.rows.iter_mut()) {
                    if !row.ready {
                        row.time = None;
                    }
                }
                let key = render(&timeless);
                if last.as_deref() != Some(key.as_str()) {
                    anstream::println!("{}", render(tree));
                    *last = Some(key);
                }
            }
            Display::Bars(bars) => bars.show(tree),
        }
    }

    fn finish(&mut self, tree: &Tree) {
        if let Display::Bars(bars) = self {
            bars.show(tree);
            for line in &bars.lines {
                line.abandon();
            }
        }
    }
}

impl Bars {
    /// One progress bar per line of the tree: the header and each group carry a ready/total
    /// bar, releases a spinner while they are not Ready.
    fn show(&mut self, tree: &Tree) {
        // Text, ready/total for a counted line, and whether it is done.
        type Line = (String, Option<(usize, usize)>, bool);
        let mut wanted: Vec<Line> =
            vec![(header_without_bar(tree), Some(tree.releases), tree.ready)];
        if let Some(message) = &tree.message {
            wanted.push((format!("  {}", styled(DIM, message)), None, true));
        }
        for note in &tree.notes {
            wanted.push((format!("  {}", styled(DIM, note)), None, true));
        }
        for (g, group) in tree.groups.iter().enumerate() {
            let last = g + 1 == tree.groups.len();
            let (branch, indent) = if last {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            let mut title = styled(BOLD, &group.title);
            if let Some(phase) = &group.phase {
                let ready = group.total > 0 && group.ready == group.total;
                let _ = write!(title, "  {}", styled(phase_style(phase, ready), phase));
            }
            if let Some(note) = &group.note {
                let _ = write!(title, "  {}", styled(DIM, note));
            }
            wanted.push((
                format!("{branch}{title}"),
                Some((group.ready, group.total)),
                true,
            ));
            for (r, row) in group.rows.iter().enumerate() {
                let branch = if r + 1 == group.rows.len() {
                    "└─ "
                } else {
                    "├─ "
                };
                wanted.push((
                    format!("{indent}{branch}{}", row_text(row)),
                    None,
                    row.ready,
                ));
            }
        }
        while self.lines.len() < wanted.len() {
            let line = self.multi.add(indicatif::ProgressBar::new(0));
            self.lines.push(line);
        }
        while self.lines.len() > wanted.len() {
            if let Some(line) = self.lines.pop() {
                line.finish_and_clear();
                self.multi.remove(&line);
            }
        }
        let counted =
            indicatif::ProgressStyle::with_template("{msg} [{bar:20.green/dim}] {pos}/{len}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("#>-");
        let spinning = indicatif::ProgressStyle::with_template("{msg} {spinner}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        let still = indicatif::ProgressStyle::with_template("{msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        for (line, (text, counts, ready)) in self.lines.iter().zip(wanted) {
            match counts {
                Some((_, 0)) => {
                    line.set_style(still.clone());
                    line.disable_steady_tick();
                    let text = format!("{text} 0/0");
                    if self.colour {
                        line.set_message(text);
                    } else {
                        line.set_message(anstream::adapter::strip_str(&text).to_string());
                    }
                    continue;
                }
                Some((done, total)) => {
                    line.set_style(counted.clone());
                    line.set_length(u64::try_from(total).unwrap_or_default());
                    line.set_position(u64::try_from(done).unwrap_or_default());
                }
                None if !ready => {
                    line.set_style(spinning.clone());
                    line.enable_steady_tick(Duration::from_millis(120));
                }
                None => {
                    line.set_style(still.clone());
                    line.disable_steady_tick();
                }
            }
            // indicatif writes to the terminal itself: drop the styles when colour is off
            // (NO_COLOR), as anstream does for everything else.
            if self.colour {
                line.set_message(text);
            } else {
                line.set_message(anstream::adapter::strip_str(&text).to_string());
            }
        }
    }
}

/// The header without its text bar (the progress bar draws it).
fn header_without_bar(tree: &Tree) -> String {
    let mut line = format!(
        "{}  {}",
        styled(BOLD, &tree.title),
        styled(phase_style(&tree.phase, tree.ready), &tree.phase)
    );
    if tree.services.1 > 0 {
        let _ = write!(line, "  services {}/{}", tree.services.0, tree.services.1);
    }
    if let Some(elapsed) = tree.elapsed {
        let word = if tree.ready { "ready in" } else { "for" };
        let _ = write!(line, "  {word} {}", short_duration(elapsed));
    }
    line.push_str("  releases");
    line
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::Value;
    use serde_json::json;
    use upstart_api::v1alpha1::{ReleaseTimings, UpstartEnvironmentSpec, UpstartServiceSpec};

    use super::*;

    fn time(s: &str) -> Time {
        Time(s.parse().expect("timestamp"))
    }

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("pr-1".into()),
            creation_timestamp: Some(time("2026-01-01T00:00:00Z")),
            ..ObjectMeta::default()
        }
    }

    fn release(name: &str, phase: &str, ready: bool, message: &str) -> HelmRelease {
        serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": "pr-1", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"chart": "r/x"},
            "status": {"phase": phase, "conditions": [{
                "type": "Ready", "status": if ready { "True" } else { "False" },
                "reason": phase, "message": message,
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .expect("release")
    }

    fn live() -> Live {
        let service: UpstartServiceSpec = serde_json::from_value(json!({"helmReleases": {
            "db": {"chart": "r/db"},
            "app": {"chart": "r/app", "dependencies": [{"name": "db"}, {"name": "pr-1-flags"}]}
        }}))
        .expect("spec");
        let environment: UpstartEnvironmentSpec = serde_json::from_value(json!({
            "helmReleases": {"flags": {"chart": "r/flags"}},
            "services": [{"name": "svc", "spec": {"helmReleases": {"db": {"chart": "r/db"}}}},
                         {"name": "later", "template": {"name": "later"}}]
        }))
        .expect("spec");
        let mut env = UpstartEnvironment::new("pr-1", environment);
        env.metadata.creation_timestamp = Some(time("2026-01-01T00:00:00Z"));
        env.status = Some(
            serde_json::from_value(json!({"phase": "Provisioning", "namespace": "pr-1",
                "conditions": [{"type": "Ready", "status": "False", "reason": "Provisioning",
                    "message": "waiting for svc", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}))
            .expect("status"),
        );
        let mut svc = UpstartService::new("svc", service);
        svc.metadata = meta("svc");
        svc.status = Some(
            serde_json::from_value(json!({"phase": "Provisioning", "blockedBy": "db: installing"}))
                .expect("status"),
        );
        let mut releases = vec![
            release("pr-1-flags", "Ready", true, ""),
            release("svc-app", "WaitingForDependencies", false, "waiting for db"),
            release("svc-db", "Installing", false, "applying 3 objects"),
        ];
        let timings =
            |value: Value| Some(serde_json::from_value::<ReleaseTimings>(value).expect("timings"));
        releases[0].status.as_mut().expect("status").timings = timings(json!({
            "createdAt": "2026-01-01T00:00:00Z", "startedAt": "2026-01-01T00:00:01Z",
            "readyAt": "2026-01-01T00:00:08Z"}));
        // A chart from git: the commit applied.
        releases[0].status.as_mut().expect("status").commit =
            Some("0123456789abcdef0123456789abcdef01234567".into());
        releases[2].status.as_mut().expect("status").timings = timings(json!({
            "createdAt": "2026-01-01T00:00:00Z", "startedAt": "2026-01-01T00:01:00Z"}));
        let later: UpstartServiceSpec =
            serde_json::from_value(json!({"helmReleases": {"queue": {"chart": "r/queue"}}}))
                .expect("spec");
        Live {
            environment: Some(env),
            namespace: "pr-1".into(),
            services: vec![svc],
            releases,
            planned: [("later".to_owned(), later)].into_iter().collect(),
        }
    }

    #[test]
    fn the_tree_shows_services_releases_and_what_each_waits_for() {
        let now: jiff::Timestamp = "2026-01-01T00:02:05Z".parse().expect("now");
        let tree = tree(&live(), now);
        assert_eq!(tree.releases, (1, 4));
        assert_eq!(tree.services, (0, 2));
        assert_eq!(tree.elapsed, Some(Duration::from_secs(125)));
        assert!(!tree.ready);
        let svc = &tree.groups[1];
        assert_eq!(svc.title, "UpstartService svc");
        assert_eq!(svc.note.as_deref(), Some("blocked by db: installing"));
        let app = &svc.rows[0];
        assert_eq!(app.name, "app");
        assert_eq!(
            app.waits_for,
            ["svc/db"],
            "the Ready environment release is not waited for"
        );
        assert_eq!(tree.groups[0].title, "UpstartService later");
        assert_eq!(tree.groups[0].phase.as_deref(), Some("NotCreated"));
        let text = anstream::adapter::strip_str(&render(&tree)).to_string();
        let expected = "UpstartEnvironment pr-1 (namespace pr-1)  Provisioning  services 0/2  releases 1/4 [#####---------------]  for 2m5s
  waiting for svc
├─ UpstartService later  NotCreated  0/1 [----------]
│  └─ … queue                NotCreated
├─ UpstartService svc  Provisioning  0/2 [----------]  blocked by db: installing
│  ├─ … app                  WaitingForDependencies  waits for svc/db
│  └─ ◌ db                   Installing for 1m5s  applying 3 objects
└─ environment releases  1/1 [##########]
   └─ ✔ flags                Ready in 7s  commit 0123456
";
        assert_eq!(text, expected);
    }

    #[test]
    fn a_namespace_is_ready_when_every_release_is() {
        let mut live = live();
        live.environment = None;
        live.services.clear();
        live.releases = vec![release("a", "Ready", true, "")];
        let tree = tree(&live, jiff::Timestamp::now());
        assert!(tree.ready);
        assert_eq!(tree.title, "namespace pr-1");
        assert_eq!(tree.groups[0].title, "other releases");
    }

    #[test]
    fn bars_and_durations_read_well() {
        assert_eq!(bar(1, 4, 8), "[##------]");
        assert_eq!(bar(0, 0, 4), "[----]");
        assert_eq!(short_duration(Duration::from_secs(5)), "5s");
        assert_eq!(short_duration(Duration::from_secs(3725)), "1h2m");
    }
}
