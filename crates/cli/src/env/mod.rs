//! `upstart env`: environments for pipelines and people — create or update one from flags
//! (every push of a pull request), list, show, extend, keep, delete, and diff a change against
//! the live environment — with output a CI job can parse and exit codes it can branch on.
//!
//! What the commands decide is pure and lives beside this file: the object to apply
//! ([`desired`]), the diff ([`diff`]), list lines and the "settled" verdict ([`summary`]).
//! This file holds the arguments and the thin cluster side.

pub mod desired;
pub mod diff;
pub mod summary;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use upstart_api::labels::KEEP_ANNOTATION;
use upstart_api::v1alpha1::{UpstartEnvironment, UpstartService, UpstartServiceSpec};

use crate::cluster::{Connection, Live};
use crate::error::Error;
use desired::{Request, ServiceArg, SetArg, VarArg};

/// The field manager of what `upstart env` writes.
pub const FIELD_MANAGER: &str = "upstart-cli";

/// Exit status: `diff` found changes.
pub const EXIT_CHANGES: u8 = 2;
/// Exit status: `--wait` ran out of time.
pub const EXIT_TIMEOUT: u8 = 3;

/// `kubectl get -o name` form of an environment.
const RESOURCE: &str = "upstartenvironment.upstartoperators.upstart.com";

/// Arguments of `upstart env`.
#[derive(Debug, clap::Args)]
pub struct EnvArgs {
    #[command(flatten)]
    pub common: Common,

    #[command(subcommand)]
    pub command: EnvCommand,
}

/// Options every `upstart env` command takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Kubeconfig (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use (default: its current context).
    #[arg(long, global = true)]
    pub context: Option<String>,

    /// Output: JSON, YAML, or `name` (`upstartenvironment.upstartoperators.upstart.com/NAME`).
    /// Default: text for people.
    #[arg(long, short = 'o', global = true, value_enum)]
    pub output: Option<Output>,

    /// Where the catalog templates are (the operators' --catalog-namespace).
    #[arg(long, global = true, default_value = crate::model::CATALOG_NAMESPACE)]
    pub catalog_namespace: String,
}

/// `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Json,
    Yaml,
    Name,
}

/// The `upstart env` commands.
#[derive(Debug, clap::Subcommand)]
pub enum EnvCommand {
    /// Create an environment, or update it to what the flags say (run it on every push).
    #[command(after_help = "\
Applied with server-side apply (field manager upstart-cli): what an earlier run set and this one
does not is removed (a service left out is torn down); a ttl is never shortened; the requester
recorded first is kept. With --wait, exit 0 once the environment and all its releases are Ready
for this change (its endpoints are printed), 3 on timeout, 1 on error.

Examples:
  upstart env create pr-1234 --service shop,payments --set shop.app.values.image.tag=pr-1234-abc \\
      --var branch=feature-x --ttl 72h --wait --timeout 15m
  upstart env create pr-1234 -f environment.yaml --set shop.app.version=1.2.0")]
    Create(CreateArgs),

    /// List environments: requester, phase, services ready/total, endpoints, expiry, age.
    List,

    /// Show an environment: its services and releases, what each waits for, its endpoints.
    Get {
        /// The environment.
        name: String,
    },

    /// Push an environment's expiry back by DURATION (from now, when it has passed).
    #[command(after_help = "\
Examples:
  upstart env extend pr-1234 24h")]
    Extend {
        /// The environment.
        name: String,
        /// How much longer (e.g. `4h`, `2h30m`).
        #[arg(value_parser = humantime::parse_duration)]
        duration: Duration,
    },

    /// Suspend an environment's expiry (the upstartoperators.upstart.com/keep annotation).
    Keep {
        /// The environment.
        name: String,
    },

    /// Let a kept environment expire again (at creation + ttl: at once when that has passed).
    Unkeep {
        /// The environment.
        name: String,
    },

    /// Put an environment to sleep: its Deployments and StatefulSets scale to zero (those of
    /// spec.sleep.excludeReleases aside); the rendered replicas come back on wake.
    #[command(after_help = "\
Sets spec.sleep.manual (asleep, since now). With a schedule (spec.sleep.schedule), the manual
switch wins until the schedule's next transition, then the schedule rules again; without one,
until `upstart env wake`. The ttl runs on while asleep.

Examples:
  upstart env sleep pr-1234")]
    Sleep {
        /// The environment.
        name: String,
    },

    /// Wake a sleeping environment: its workloads get their rendered replicas back.
    #[command(after_help = "\
Sets spec.sleep.manual (awake, since now): as with sleep, it wins until the schedule's next
transition.

Examples:
  upstart env wake pr-1234")]
    Wake {
        /// The environment.
        name: String,
    },

    /// Delete an environment (its services, releases and namespace are torn down).
    #[command(after_help = "\
With --wait, exit 0 once it is gone, 3 on timeout.

Examples:
  upstart env delete pr-1234 --wait --ignore-not-found")]
    Delete {
        /// The environment.
        name: String,
        /// Wait until it is gone.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up (exit 3) after this long.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10m", requires = "wait")]
        timeout: Duration,
        /// Exit 0 when it does not exist (a pull request closed after its environment expired).
        #[arg(long)]
        ignore_not_found: bool,
    },

    /// Show what a change would do to the live environment: services and releases added or
    /// removed, releases that re-render, their values (secret-looking ones masked).
    #[command(after_help = "\
Exit status: 0 no change, 2 changes, 1 error. The change is checked by the API server (a
dry-run apply), so a spec it would refuse is an error here too.

Examples:
  upstart env diff pr-1234 --service shop --set shop.app.values.image.tag=pr-1234-def
  upstart env diff pr-1234 -f environment.yaml -o json")]
    Diff {
        /// The environment.
        name: String,
        #[command(flatten)]
        change: ChangeArgs,
    },
}

/// What an environment should be: a file and/or flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ChangeArgs {
    /// An UpstartEnvironment document; the flags apply on top of it.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,

    /// A service from the catalog template of the same name (`NAME=TEMPLATE` for another
    /// template); comma-separated or repeated.
    #[arg(long, value_delimiter = ',')]
    pub service: Vec<ServiceArg>,

    /// An override: `SERVICE.KEY.values.PATH=VALUE` (`\.` for a dot in a key), or
    /// `SERVICE.KEY.version=V`, `SERVICE.KEY.chart=C`. true/false/null/integers are typed, as
    /// with helm --set.
    #[arg(long)]
    pub set: Vec<SetArg>,

    /// As --set, the value always a string.
    #[arg(long)]
    pub set_string: Vec<SetArg>,

    /// An environment variable (`<< environment.variables.NAME >>`): NAME=VALUE.
    #[arg(long)]
    pub var: Vec<VarArg>,

    /// Lifetime from creation (e.g. `72h`). Never shortened by a later run.
    #[arg(long)]
    pub ttl: Option<String>,

    /// The namespace the environment creates (default: its name). Cannot change later.
    #[arg(long)]
    pub env_namespace: Option<String>,
}

/// Arguments of `upstart env create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The environment (a DNS label: `pr-1234`).
    pub name: String,

    #[command(flatten)]
    pub change: ChangeArgs,

    /// Who asks for it, recorded in the upstartoperators.upstart.com/requester annotation on
    /// creation (default: the user the cluster authenticates, else the kubeconfig's user).
    #[arg(long)]
    pub requester: Option<String>,

    /// Wait until the environment and all its releases are Ready for this change.
    #[arg(long)]
    pub wait: bool,

    /// With --wait: give up (exit 3) after this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15m", requires = "wait")]
    pub timeout: Duration,
}

/// Runs `upstart env`, printing errors itself: its exit codes are part of its interface.
pub async fn run(args: EnvArgs) -> ExitCode {
    match dispatch(args).await {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("upstart: {}", crate::error_text::user_text(&error));
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(args: EnvArgs) -> Result<u8, Error> {
    let connection = crate::cluster::connect(
        args.common.kubeconfig.as_deref(),
        args.common.context.as_deref(),
    )
    .await?;
    let common = &args.common;
    match args.command {
        EnvCommand::Create(create_args) => create(&connection, common, &create_args).await,
        EnvCommand::List => list(&connection, common).await,
        EnvCommand::Get { name } => get(&connection, common, &name).await,
        EnvCommand::Extend { name, duration } => extend(&connection, common, &name, duration).await,
        EnvCommand::Keep { name } => keep(&connection, common, &name, true).await,
        EnvCommand::Unkeep { name } => keep(&connection, common, &name, false).await,
        EnvCommand::Sleep { name } => sleep(&connection, common, &name, true).await,
        EnvCommand::Wake { name } => sleep(&connection, common, &name, false).await,
        EnvCommand::Delete {
            name,
            wait,
            timeout,
            ignore_not_found,
        } => {
            delete(
                &connection,
                common,
                &name,
                wait.then_some(timeout),
                ignore_not_found,
            )
            .await
        }
        EnvCommand::Diff { name, change } => diff(&connection, common, &name, &change).await,
    }
}

/// Who is asking: `--requester`, else the user the cluster authenticated (a SelfSubjectReview,
/// as `kubectl auth whoami`), else the kubeconfig's user name.
async fn requester(connection: &Connection, asked: Option<&str>) -> String {
    if let Some(asked) = asked {
        return asked.to_owned();
    }
    let reviews: Api<SelfSubjectReview> = Api::all(connection.client.clone());
    let review = SelfSubjectReview::default();
    match reviews.create(&PostParams::default(), &review).await {
        Ok(answer) => {
            if let Some(name) = answer
                .status
                .and_then(|s| s.user_info)
                .and_then(|u| u.username)
                .filter(|n| !n.is_empty())
            {
                return name;
            }
        }
        Err(error) => {
            tracing::debug!(%error, "no SelfSubjectReview: the requester is the kubeconfig user");
        }
    }
    connection.kubeconfig_user.clone().unwrap_or_default()
}

fn kube_error(what: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube { what, source }
}

fn raw_api(client: &Client) -> Api<DynamicObject> {
    Api::all_with(
        client.clone(),
        &ApiResource::erase::<UpstartEnvironment>(&()),
    )
}

/// An environment, typed and as the cluster returned it (for fields this CLI does not type).
async fn read(client: &Client, name: &str) -> Result<Option<(UpstartEnvironment, Value)>, Error> {
    let object = raw_api(client)
        .get_opt(name)
        .await
        .map_err(kube_error(format!("reading UpstartEnvironment {name}")))?;
    object.map(typed).transpose()
}

fn typed(object: DynamicObject) -> Result<(UpstartEnvironment, Value), Error> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let raw = serde_json::to_value(&object)
        .map_err(|e| Error::Usage(format!("UpstartEnvironment {name}: cannot be encoded: {e}")))?;
    let environment = serde_json::from_value(raw.clone()).map_err(|e| {
        Error::Usage(format!(
            "UpstartEnvironment {name} does not read as this CLI's UpstartEnvironment ({e}): is \
             the CLI older than the operators?"
        ))
    })?;
    Ok((environment, raw))
}

async fn must_read(client: &Client, name: &str) -> Result<(UpstartEnvironment, Value), Error> {
    read(client, name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("UpstartEnvironment {name}")))
}

/// Prints `object` as `-o` asks; false when the text form is the caller's to print.
fn print_object(output: Option<Output>, name: &str, object: &Value) -> Result<bool, Error> {
    match output {
        None => Ok(false),
        Some(Output::Name) => {
            println!("{RESOURCE}/{name}");
            Ok(true)
        }
        Some(Output::Json) => {
            println!("{}", pretty_json(object));
            Ok(true)
        }
        Some(Output::Yaml) => {
            print!("{}", yaml(object)?);
            Ok(true)
        }
    }
}

fn pretty_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

fn yaml(value: &Value) -> Result<String, Error> {
    serde_yaml_ng::to_string(value).map_err(|e| Error::Usage(format!("writing YAML: {e}")))
}

fn request(change: &ChangeArgs) -> Result<Request, Error> {
    let document = match &change.file {
        None => None,
        Some(path) => {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Usage(format!("reading {file}: {e}")))?;
            let documents = crate::source::parse(&file, &text)
                .map_err(|d| Error::Usage(crate::render::diagnostic(&d)))?;
            let mut environments = documents
                .into_iter()
                .filter(|d| d.kind() == "UpstartEnvironment");
            match (environments.next(), environments.next()) {
                (Some(one), None) => Some(one.value),
                (None, _) => {
                    return Err(Error::Usage(format!("{file} holds no UpstartEnvironment")));
                }
                (Some(_), Some(_)) => {
                    return Err(Error::Usage(format!(
                        "{file} holds more than one UpstartEnvironment: give one per file"
                    )));
                }
            }
        }
    };
    if document.is_none() && change.service.is_empty() {
        return Err(Error::Usage(
            "say what the environment holds: --service SERVICE[,SERVICE] or -f FILE".to_owned(),
        ));
    }
    let sets = change
        .set
        .iter()
        .map(|s| (s.clone(), false))
        .chain(change.set_string.iter().map(|s| (s.clone(), true)))
        .collect();
    Ok(Request {
        document,
        services: change.service.clone(),
        sets,
        variables: change.var.clone(),
        ttl: change.ttl.clone(),
        namespace: change.env_namespace.clone(),
    })
}

/// Applies the environment (server-side apply, or its dry run) and returns the result.
async fn apply(
    client: &Client,
    name: &str,
    object: &Value,
    dry_run: bool,
) -> Result<(UpstartEnvironment, Value), Error> {
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    let applied = raw_api(client)
        .patch(name, &params, &Patch::Apply(object))
        .await
        .map_err(kube_error(format!(
            "{} UpstartEnvironment {name}",
            if dry_run { "checking" } else { "applying" }
        )))?;
    typed(applied)
}

async fn create(connection: &Connection, common: &Common, args: &CreateArgs) -> Result<u8, Error> {
    let client = &connection.client;
    let request = request(&args.change)?;
    let existing = read(client, &args.name).await?;
    let who = requester(connection, args.requester.as_deref()).await;
    let desired = desired::desired(
        &args.name,
        &request,
        existing.as_ref().map(|(e, _)| e),
        &who,
    )
    .map_err(Error::Usage)?;
    for note in &desired.notes {
        eprintln!("upstart: {note}");
    }
    let (applied, mut raw) = apply(client, &args.name, &desired.object, false).await?;
    let verb = match &existing {
        None => "created",
        Some((before, _))
            if before.metadata.generation == applied.metadata.generation
                && before.metadata.annotations == applied.metadata.annotations =>
        {
            "unchanged"
        }
        Some(_) => "configured",
    };
    if common.output.is_none() {
        println!("{RESOURCE}/{} {verb}", args.name);
    }
    if args.wait {
        match wait_settled(client, &args.name, &common.catalog_namespace, args.timeout).await? {
            Waited::Done(live) => {
                let (environment, latest) = must_read(client, &args.name).await?;
                raw = latest;
                if common.output.is_none() {
                    print_ready(&live, &environment, &raw);
                }
            }
            Waited::TimedOut(live, why) => {
                eprint!(
                    "{}",
                    crate::status::render(&crate::status::tree(&live, jiff::Timestamp::now()))
                );
                eprintln!(
                    "upstart: UpstartEnvironment {} not Ready after {}: {why}",
                    args.name,
                    humantime::format_duration(args.timeout)
                );
                return Ok(EXIT_TIMEOUT);
            }
        }
    }
    print_object(common.output, &args.name, &raw)?;
    Ok(0)
}

/// What a Ready environment says: its endpoints, else its releases.
fn print_ready(live: &Live, environment: &UpstartEnvironment, raw: &Value) {
    let endpoints = summary::endpoints(&raw["status"]);
    let namespace = crate::cluster::environment_namespace(environment);
    let took = environment
        .status
        .as_ref()
        .and_then(|s| s.time_to_ready_seconds)
        .map(|s| {
            format!(
                " (first Ready in {})",
                crate::status::short_duration(Duration::from_secs_f64(s.max(0.0)))
            )
        })
        .unwrap_or_default();
    println!(
        "UpstartEnvironment {} is Ready in namespace {namespace}{took}",
        live.environment_name().unwrap_or_default()
    );
    if endpoints.is_empty() {
        let tree = crate::status::tree(live, jiff::Timestamp::now());
        println!("releases:");
        for group in &tree.groups {
            for row in &group.rows {
                let name = match group.title.strip_prefix("UpstartService ") {
                    Some(service) => format!("{service}/{}", row.name),
                    None => row.name.clone(),
                };
                println!("  {name}  {}", row.phase);
            }
        }
    } else {
        println!("endpoints:");
        for endpoint in endpoints {
            println!("  {endpoint}");
        }
    }
}

enum Waited {
    Done(Live),
    TimedOut(Live, String),
}

/// Waits until [`summary::settled`], woken by watches of the environment and its namespace (a
/// slow poll as a safety net), printing each new state on stderr for CI logs.
async fn wait_settled(
    client: &Client,
    name: &str,
    catalog: &str,
    timeout: Duration,
) -> Result<Waited, Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut live = Live::read_environment_with_catalog(client, name, catalog).await?;
    let mut changes = crate::status::change_stream(client, Some(name), &live.namespace);
    let mut last = String::new();
    loop {
        let verdict = summary::settled(&live);
        let why = match verdict {
            Ok(()) => return Ok(Waited::Done(live)),
            Err(why) => why,
        };
        if why != last {
            eprintln!("{name}: {why}");
            last = why.clone();
        }
        tokio::select! {
            _ = changes.next() => {
                // Let a burst of events settle into one read.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = tokio::time::sleep_until(deadline) => return Ok(Waited::TimedOut(live, why)),
        }
        live = Live::read_environment_with_catalog(client, name, catalog).await?;
    }
}

async fn list(connection: &Connection, common: &Common) -> Result<u8, Error> {
    let objects = raw_api(&connection.client)
        .list(&Default::default())
        .await
        .map_err(kube_error("listing UpstartEnvironments".to_owned()))?;
    let mut rows = Vec::new();
    for object in objects.items {
        let (environment, raw) = typed(object)?;
        rows.push(summary::summary(&environment, &raw));
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    match common.output {
        None => print!("{}", summary::table(&rows, jiff::Timestamp::now())),
        Some(Output::Name) => {
            for row in &rows {
                println!("{RESOURCE}/{}", row.name);
            }
        }
        Some(Output::Json) => println!("{}", pretty_json(&json!({"items": rows}))),
        Some(Output::Yaml) => print!("{}", yaml(&json!({"items": rows}))?),
    }
    Ok(0)
}

async fn get(connection: &Connection, common: &Common, name: &str) -> Result<u8, Error> {
    let (environment, raw) = must_read(&connection.client, name).await?;
    if print_object(common.output, name, &raw)? {
        return Ok(0);
    }
    let live =
        Live::read_environment_with_catalog(&connection.client, name, &common.catalog_namespace)
            .await?;
    anstream::print!(
        "{}",
        crate::status::render(&crate::status::tree(&live, jiff::Timestamp::now()))
    );
    // The tree's notes show status.requester and status.endpoints; an operator that does not
    // report them yet leaves the annotation and whatever endpoints its status holds.
    let row = summary::summary(&environment, &raw);
    let status = environment.status.as_ref();
    if status.and_then(|s| s.requester.as_ref()).is_none() && !row.requester.is_empty() {
        println!("requested by {}", row.requester);
    }
    if row.kept {
        println!("kept: expiry suspended (upstart env unkeep {name} lets it expire)");
    }
    if status.is_none_or(|s| s.endpoints.is_empty()) && !row.endpoints.is_empty() {
        println!("endpoints:");
        for endpoint in &row.endpoints {
            println!("  {endpoint}");
        }
    }
    Ok(0)
}

/// Patches an environment with a merge patch (under [`FIELD_MANAGER`]).
async fn merge_patch(
    client: &Client,
    name: &str,
    patch: &Value,
    what: &str,
) -> Result<(UpstartEnvironment, Value), Error> {
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let patched = raw_api(client)
        .patch(name, &params, &Patch::Merge(patch))
        .await
        .map_err(kube_error(format!("{what} UpstartEnvironment {name}")))?;
    typed(patched)
}

fn expiry_text(created: Option<jiff::Timestamp>, ttl: &str) -> String {
    let at = upstart_api::duration::parse_duration(ttl)
        .ok()
        .and_then(|ttl| created?.checked_add(ttl).ok());
    match at {
        Some(at) if at <= jiff::Timestamp::now() => {
            format!("expired at {at} (deleted now unless kept)")
        }
        Some(at) => format!("expires at {at}"),
        None => format!("ttl {ttl}"),
    }
}

async fn extend(
    connection: &Connection,
    common: &Common,
    name: &str,
    by: Duration,
) -> Result<u8, Error> {
    let (environment, _) = must_read(&connection.client, name).await?;
    let created = environment
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0);
    let now = jiff::Timestamp::now();
    let ttl = desired::extended_ttl(
        environment.spec.ttl.as_deref(),
        created.unwrap_or(now),
        now,
        by,
    )
    .map_err(|e| Error::Usage(format!("UpstartEnvironment {name}: {e}")))?
    .ok_or_else(|| {
        Error::Usage(format!(
            "UpstartEnvironment {name} has no ttl: it does not expire, there is nothing to extend"
        ))
    })?;
    // Guarded by the resourceVersion read: an edit meanwhile makes this fail, not lose it.
    let patch = json!({
        "metadata": {"resourceVersion": environment.metadata.resource_version},
        "spec": {"ttl": ttl},
    });
    let (_, raw) = merge_patch(&connection.client, name, &patch, "extending").await?;
    if !print_object(common.output, name, &raw)? {
        let kept = summary::summary(&environment, &raw).kept;
        println!(
            "{RESOURCE}/{name} extended: ttl {ttl}, {}{}",
            expiry_text(created, &ttl),
            if kept {
                " (kept: expiry suspended until unkeep)"
            } else {
                ""
            }
        );
    }
    Ok(0)
}

async fn keep(
    connection: &Connection,
    common: &Common,
    name: &str,
    kept: bool,
) -> Result<u8, Error> {
    let value = if kept { json!("true") } else { Value::Null };
    let patch = json!({"metadata": {"annotations": {KEEP_ANNOTATION: value}}});
    let (environment, raw) = merge_patch(
        &connection.client,
        name,
        &patch,
        if kept { "keeping" } else { "unkeeping" },
    )
    .await?;
    if !print_object(common.output, name, &raw)? {
        let created = environment
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0);
        let expiry = match &environment.spec.ttl {
            None => "it has no ttl: it does not expire".to_owned(),
            Some(ttl) => expiry_text(created, ttl),
        };
        if kept {
            println!(
                "{RESOURCE}/{name} kept: it does not expire until unkeep (otherwise {expiry})"
            );
        } else {
            println!("{RESOURCE}/{name} unkept: {expiry}");
        }
    }
    Ok(0)
}

async fn sleep(
    connection: &Connection,
    common: &Common,
    name: &str,
    asleep: bool,
) -> Result<u8, Error> {
    let since = jiff::Timestamp::now().to_string();
    let patch = json!({"spec": {"sleep": {"manual": {"asleep": asleep, "since": since}}}});
    let (environment, raw) = merge_patch(
        &connection.client,
        name,
        &patch,
        if asleep { "putting to sleep" } else { "waking" },
    )
    .await?;
    if !print_object(common.output, name, &raw)? {
        let until = if environment
            .spec
            .sleep
            .as_ref()
            .is_some_and(|s| s.schedule.is_some())
        {
            "until the schedule's next transition"
        } else if asleep {
            "until upstart env wake"
        } else {
            "until upstart env sleep"
        };
        if asleep {
            println!(
                "{RESOURCE}/{name} asleep {until}: its Deployments and StatefulSets scale to zero"
            );
        } else {
            println!("{RESOURCE}/{name} awake {until}: its workloads get their replicas back");
        }
    }
    Ok(0)
}

async fn delete(
    connection: &Connection,
    common: &Common,
    name: &str,
    wait: Option<Duration>,
    ignore_not_found: bool,
) -> Result<u8, Error> {
    let api = raw_api(&connection.client);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {
            if ignore_not_found {
                if common.output.is_none() {
                    println!("{RESOURCE}/{name} not found: nothing to delete");
                }
                return Ok(0);
            }
            return Err(Error::NotFound(format!(
                "UpstartEnvironment {name} (--ignore-not-found makes this a success)"
            )));
        }
        Err(source) => {
            return Err(Error::Kube {
                what: format!("deleting UpstartEnvironment {name}"),
                source,
            });
        }
    }
    if common.output.is_none() {
        println!("{RESOURCE}/{name} deleted");
    } else if common.output == Some(Output::Name) {
        println!("{RESOURCE}/{name}");
    }
    let Some(timeout) = wait else {
        return Ok(0);
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let Some((environment, _)) = read(&connection.client, name).await? else {
            if common.output.is_none() {
                println!("{RESOURCE}/{name} gone");
            }
            return Ok(0);
        };
        let phase = environment
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .map_or("Deleting", |p| p.as_str());
        let message = environment
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.message.clone())
            .unwrap_or_default();
        let now = format!("{name}: {phase} {message}");
        if now != last {
            eprintln!("{}", now.trim_end());
            last = now;
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!(
                "upstart: UpstartEnvironment {name} still exists after {}",
                humantime::format_duration(timeout)
            );
            return Ok(EXIT_TIMEOUT);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn diff(
    connection: &Connection,
    common: &Common,
    name: &str,
    change: &ChangeArgs,
) -> Result<u8, Error> {
    let client = &connection.client;
    let request = request(change)?;
    let existing = read(client, name).await?;
    // The annotation does not take part in the diff; the dry run only needs a valid object.
    let desired = desired::desired(name, &request, existing.as_ref().map(|(e, _)| e), "")
        .map_err(Error::Usage)?;
    let (after, _) = apply(client, name, &desired.object, true).await?;
    let before = existing.as_ref().map(|(e, _)| &e.spec);
    let mut names: Vec<&str> = after
        .spec
        .services
        .iter()
        .chain(before.iter().flat_map(|s| s.services.iter()))
        .filter_map(|s| s.template.as_ref().map(|t| t.name.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let catalog: Api<UpstartService> = Api::namespaced(client.clone(), &common.catalog_namespace);
    let mut templates: BTreeMap<String, UpstartServiceSpec> = BTreeMap::new();
    for template in names {
        let found = catalog.get_opt(template).await.map_err(kube_error(format!(
            "reading template {template} in {}",
            common.catalog_namespace
        )))?;
        if let Some(found) = found {
            templates.insert(template.to_owned(), found.spec);
        }
    }
    let result = diff::diff(name, before, &after.spec, &templates);
    match common.output {
        None => anstream::print!("{}", diff::render(&result)),
        Some(Output::Json) => println!(
            "{}",
            pretty_json(&serde_json::to_value(&result).unwrap_or_default())
        ),
        Some(Output::Yaml) => print!(
            "{}",
            yaml(&serde_json::to_value(&result).unwrap_or_default())?
        ),
        Some(Output::Name) => {
            if result.has_changes() {
                println!("{RESOURCE}/{name}");
            }
        }
    }
    Ok(if result.has_changes() {
        EXIT_CHANGES
    } else {
        0
    })
}
