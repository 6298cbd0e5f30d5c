//! `upstart validate`: every check that needs no cluster, in the order a user would fix them.
//!
//! 1. YAML syntax (with the line of the error).
//! 2. Schema: each Upstart document against the generated CRD, through the same validator and
//!    with the same messages as the API server (unknown fields are errors, as with kubectl's
//!    default strict field validation), then against the Rust types.
//! 3. Objects declared twice in the files.
//! 4. Graph, per namespace (see [`crate::model`]): ambiguous dependency names and name
//!    conflicts are errors; cycles are errors naming their path; a dependency name that matches
//!    nothing among the files is a *warning*, since it may exist in the cluster (an
//!    environment-wide release, a service deployed separately) — `--strict` makes it fail —
//!    except in an environment's namespace, where nothing else creates objects: there it is an
//!    error naming the environment, the service and the release.
//! 5. Expressions: syntax, aliases, and roots that are neither a declared dependency nor a
//!    built-in root (upstart_dag's offline check), for inline values and environment
//!    overrides.
//! 6. Environments: overrides naming release keys their service does not have; templates
//!    missing from the files (a warning: the operator reads them from the catalog).
//! 7. Outputs: an expression reading a key its dependency does not publish, when the
//!    dependency lists its keys (`outputsFrom[].keys`) — a warning.
//! 8. Release names: two releases of one namespace with the same Helm `.Release.Name`
//!    (`releaseName`, default the key in kebab-case, or the object name of a standalone
//!    HelmRelease) would fight over the same objects — an error naming both.
//! 9. Variables: in an environment's namespace, `environment.variables.KEY` must name one of
//!    the environment's `variables` (elsewhere the environment is only known at install time).
//! 10. Published objects: two releases of one namespace naming the same `outputsFrom` object —
//!     a warning naming both (`--render`, in [`crate::rendered`], tells whether both charts
//!     create it, which is an error).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use upstart_api::names::{kebab_case, release_name_clashes};
use upstart_api::v1alpha1::{Dependency, EnvironmentService, HelmReleaseSpec, OutputScope};
use upstart_crd_validation::CompiledCrd;
use upstart_dag::{
    EnvironmentInfo, Error as DagError, ExpressionContext, Expressions, NodeId, NodeKind,
    OfflineContext, OutputRef, Outputs, ReleaseInfo, ServiceInfo, check_aliases,
};

use crate::diagnostic::{Diagnostic, Severity};
use crate::model::{Object, Scope, ScopeRelease, Spec, Workspace, is_upstart, type_document};
use crate::source::{Document, Segment, parse_path, read_files};

/// Arguments of `upstart validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// YAML files holding UpstartServices, HelmReleases and UpstartEnvironments (other kinds
    /// are ignored); a directory stands for the YAML files under it.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// Fail on warnings too (for instance a dependency that is not among the files).
    #[arg(long)]
    pub strict: bool,

    /// How to print problems: `text` (`FILE:LINE: error: ...`) or `github` (workflow
    /// commands, shown as annotations on the pull request).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    /// Also render every release with helm, offline, and report objects that two releases of
    /// one namespace would both create (charts from --charts or `file:` references).
    #[arg(long)]
    pub render: bool,

    /// With --render: the directory served as `upstart-charts` (`upstart-charts/NAME` is
    /// `DIR/NAME`), as `upstart dev --charts` serves it.
    #[arg(long, default_value = "charts", requires = "render")]
    pub charts: PathBuf,

    /// With --render: the helm binary (default: UPSTART_HELM, `.tools/bin/helm` of this
    /// directory or a parent, else `helm` on PATH).
    #[arg(long, requires = "render")]
    pub helm: Option<PathBuf>,

    /// Sets the environment variable NAME to VALUE in every UpstartEnvironment of the files
    /// (over its `spec.variables`), as a pipeline would: `enabled` expressions and
    /// `environment.variables` references are checked with it. Repeatable.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
}

/// `NAME=VALUE` of `--var`.
pub fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

/// How `upstart validate` prints problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// `FILE:LINE: error: KIND/NAME release KEY: problem` on stderr.
    Text,
    /// GitHub Actions workflow commands (`::error file=...,line=...::...`) on stdout.
    Github,
}

/// The files, checked: the workspace built from them and every problem found, sorted by file
/// and line.
#[derive(Debug)]
pub struct Checked {
    /// The typed objects and their namespaces.
    pub workspace: Workspace,
    /// Every problem.
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    /// Whether any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Reads and checks `files`.
pub fn check_files(files: &[PathBuf]) -> Checked {
    check_files_with(files, &[])
}

/// Reads and checks `files`, every UpstartEnvironment's `spec.variables` set from `vars`
/// first (`--var NAME=VALUE`).
pub fn check_files_with(files: &[PathBuf], vars: &[(String, String)]) -> Checked {
    let (mut documents, mut diagnostics) = read_files(files);
    set_variables(&mut documents, vars);
    let mut checked = check(documents);
    diagnostics.append(&mut checked.diagnostics);
    diagnostics.sort();
    diagnostics.dedup();
    checked.diagnostics = diagnostics;
    checked
}

/// Runs `upstart validate`: prints every problem on stderr and a summary; `Ok(false)` when the
/// files do not pass.
pub fn run(args: &ValidateArgs) -> bool {
    let mut checked = check_files_with(&args.files, &args.vars);
    if args.render {
        let Some(helm) = args
            .helm
            .clone()
            .or_else(upstart_local_cluster::locate_helm)
        else {
            anstream::eprintln!(
                "error: --render needs helm: pass --helm PATH, set UPSTART_HELM, or run scripts/bootstrap-tools"
            );
            return false;
        };
        let options = crate::rendered::RenderOptions {
            charts: args.charts.clone(),
            helm,
        };
        crate::rendered::check_rendered(&checked.workspace, &options, &mut checked.diagnostics);
        checked.diagnostics.sort();
        checked.diagnostics.dedup();
    }
    for diagnostic in &checked.diagnostics {
        match args.format {
            OutputFormat::Text => anstream::eprintln!("{}", crate::render::diagnostic(diagnostic)),
            OutputFormat::Github => println!("{}", crate::render::github(diagnostic)),
        }
    }
    let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = checked.diagnostics.len() - errors;
    let objects = checked.workspace.objects.len();
    let failed = errors > 0 || (args.strict && warnings > 0);
    let summary = format!(
        "{} file(s), {objects} Upstart object(s): {errors} error(s), {warnings} warning(s)",
        crate::source::expand(&args.files).len()
    );
    if failed {
        anstream::eprintln!("{summary}");
    } else {
        anstream::println!("{summary}");
    }
    !failed
}

/// Sets `vars` in the `spec.variables` of every UpstartEnvironment document (positions are
/// kept: a problem is still reported at the line the file has).
pub fn set_variables(documents: &mut [Document], vars: &[(String, String)]) {
    if vars.is_empty() {
        return;
    }
    for document in documents.iter_mut() {
        if !is_upstart(document) || document.kind() != "UpstartEnvironment" {
            continue;
        }
        let Some(spec) = document
            .value
            .get_mut("spec")
            .and_then(|s| s.as_object_mut())
        else {
            continue;
        };
        let variables = spec
            .entry("variables")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(variables) = variables.as_object_mut() {
            for (name, value) in vars {
                variables.insert(name.clone(), value.clone().into());
            }
        }
    }
}

/// Every check on already parsed documents.
pub fn check(documents: Vec<Document>) -> Checked {
    let mut out = Vec::new();
    let mut objects = check_documents(&documents, &mut out);
    // A second declaration is reported once, here, and left out of the graphs.
    let duplicates = check_duplicates(&documents, &objects, &mut out);
    objects.retain(|o| !duplicates.contains(&o.doc));
    let workspace = Workspace::new(documents, objects);
    let expressions = Expressions::new();
    for scope in &workspace.scopes {
        check_graph(&workspace, scope, &mut out);
        check_outputs(&workspace, scope, &expressions, &mut out);
        check_variables(&workspace, scope, &expressions, &mut out);
        check_release_names(&workspace, scope, &mut out);
        check_published_objects(&workspace, scope, &mut out);
        check_switches(&workspace, scope, &mut out);
    }
    check_expressions(&workspace, &expressions, &mut out);
    check_environments(&workspace, &mut out);
    out.sort();
    out.dedup();
    Checked {
        workspace,
        diagnostics: out,
    }
}

/// What `enabled` and `jobs` make wrong: a switch that reads neither true nor false, a
/// dependency on a release, job or service that is disabled, a job named like a release.
fn check_switches(workspace: &Workspace, scope: &Scope, out: &mut Vec<Diagnostic>) {
    for problem in &scope.switch_problems {
        out.push(at(
            &workspace.documents[problem.doc],
            &problem.path,
            Severity::Error,
            problem.message.clone(),
        ));
    }
}

/// The release and the dependency name of an unknown dependency that names something
/// `enabled` leaves out.
fn on_disabled<'a>(scope: &'a Scope, problem: &'a DagError) -> Option<(&'a ScopeRelease, &'a str)> {
    let (release, name) = match problem {
        DagError::UnknownDependency { release, name, .. } => (release, name),
        DagError::UnknownEnvironmentRelease { release, key, .. } => (release, key),
        _ => return None,
    };
    if !scope.disabled.contains(name) {
        return None;
    }
    Some((scope.release_by_label(release)?, name.as_str()))
}

/// A diagnostic about a field of a document; the release key is taken from the path.
fn at(document: &Document, path: &str, severity: Severity, message: String) -> Diagnostic {
    Diagnostic {
        file: document.file.clone(),
        line: document.line_of(path),
        severity,
        object: Some(document.object()),
        part: part_of_path(document, path),
        message,
    }
}

/// `spec.helmReleases.KEY...` -> `release KEY`;
/// `spec.services[i].(spec.helmReleases|overrides).KEY` -> `release SERVICE/KEY`;
/// `spec.services[i]...` -> `service SERVICE`.
fn part_of_path(document: &Document, path: &str) -> Option<String> {
    let segments = parse_path(path);
    let key = |s: Option<&Segment>| match s {
        Some(Segment::Key(k)) => Some(k.clone()),
        Some(Segment::Index(i)) => Some(i.to_string()),
        None => None,
    };
    match segments.as_slice() {
        [Segment::Key(spec), Segment::Key(releases), rest @ ..]
            if spec == "spec" && releases == "helmReleases" =>
        {
            key(rest.first()).map(|k| format!("release {k}"))
        }
        [
            Segment::Key(spec),
            Segment::Key(services),
            Segment::Index(i),
            rest @ ..,
        ] if spec == "spec" && services == "services" => {
            let service = document.value["spec"]["services"][*i]["name"]
                .as_str()
                .map_or_else(|| i.to_string(), str::to_owned);
            let release = match rest {
                [Segment::Key(spec), Segment::Key(releases), k, ..]
                    if spec == "spec" && releases == "helmReleases" =>
                {
                    key(Some(k))
                }
                [Segment::Key(overrides), k, ..] if overrides == "overrides" => key(Some(k)),
                _ => None,
            };
            Some(match release {
                Some(release) => format!("release {service}/{release}"),
                None => format!("service {service}"),
            })
        }
        _ => None,
    }
}

/// The keys of the `helmReleases` map at `path` that the CRD's key rule refuses (the rule is
/// `^[A-Za-z]([-A-Za-z0-9]*[A-Za-z0-9])?$`, at most 63 characters).
fn invalid_release_keys(document: &serde_json::Value, path: &str) -> Vec<String> {
    if !path.ends_with("helmReleases") {
        return Vec::new();
    }
    let mut node = document;
    for segment in parse_path(path) {
        node = match segment {
            Segment::Key(key) => &node[key.as_str()],
            Segment::Index(i) => &node[i],
        };
    }
    let valid = |key: &str| {
        let bytes = key.as_bytes();
        key.len() <= 63
            && bytes.first().is_some_and(u8::is_ascii_alphabetic)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
    };
    node.as_object()
        .map(|map| map.keys().filter(|k| !valid(k)).cloned().collect())
        .unwrap_or_default()
}

/// The CRDs, compiled once per process (CEL rules take a while to compile).
fn compiled_crds() -> &'static HashMap<String, CompiledCrd> {
    static CRDS: std::sync::LazyLock<HashMap<String, CompiledCrd>> =
        std::sync::LazyLock::new(compile_crds);
    &CRDS
}

fn compile_crds() -> HashMap<String, CompiledCrd> {
    upstart_api::crd::crds()
        .iter()
        .filter_map(|crd| {
            // The CRDs are generated by this very build; one that does not compile would fail
            // every test of crates/api.
            CompiledCrd::new(crd)
                .ok()
                .map(|c| (crd.spec.names.kind.clone(), c))
        })
        .collect()
}

/// Schema and types, per document. Returns the documents that are typed Upstart objects.
fn check_documents(documents: &[Document], out: &mut Vec<Diagnostic>) -> Vec<Object> {
    let crds = compiled_crds();
    let mut objects = Vec::new();
    for (doc, document) in documents.iter().enumerate() {
        if document.api_version().is_empty() || document.kind().is_empty() {
            out.push(at(
                document,
                "",
                Severity::Error,
                "not a Kubernetes object: apiVersion and kind are required".to_owned(),
            ));
            continue;
        }
        if !is_upstart(document) {
            continue;
        }
        let Some(crd) = crds.get(document.kind()) else {
            out.push(at(
                document,
                "kind",
                Severity::Error,
                format!(
                    "no kind {} in {} (known: HelmRelease, UpstartService, UpstartEnvironment)",
                    document.kind(),
                    upstart_api::GROUP
                ),
            ));
            continue;
        };
        if document.name().is_empty() {
            out.push(at(
                document,
                "metadata",
                Severity::Error,
                "metadata.name: Required value: name or generateName is required".to_owned(),
            ));
        }
        let mut object = document.value.clone();
        let schema_ok = match crd.admit(&mut object, None) {
            Err(e) => {
                out.push(at(document, "apiVersion", Severity::Error, e.to_string()));
                false
            }
            Ok(admission) => {
                for field in &admission.pruned {
                    out.push(at(
                        document,
                        field,
                        Severity::Error,
                        format!("unknown field {}", upstart_crd_validation::go_quote(field)),
                    ));
                }
                for error in &admission.errors {
                    let bad_keys = invalid_release_keys(&document.value, &error.path);
                    if bad_keys.is_empty() {
                        out.push(at(
                            document,
                            &error.path,
                            Severity::Error,
                            error.to_string(),
                        ));
                    }
                    // The API server names the map; name each offending key, at its line.
                    for key in bad_keys {
                        let path = format!("{}[{key}]", error.path);
                        let mut diagnostic =
                            at(document, &path, Severity::Error, error.to_string());
                        diagnostic.part = Some(format!("release {key}"));
                        out.push(diagnostic);
                    }
                }
                admission.pruned.is_empty() && admission.errors.is_empty()
            }
        };
        match type_document(document) {
            Ok(Some(spec)) => objects.push(Object {
                doc,
                name: document.name().to_owned(),
                spec,
            }),
            Ok(None) => {}
            // The schema's message says the same thing, closer to the API server's words.
            Err(_) if !schema_ok => {}
            Err(e) => out.push(at(
                document,
                "spec",
                Severity::Error,
                format!("does not match the {} type: {e}", document.kind()),
            )),
        }
    }
    objects
}

fn check_duplicates(
    documents: &[Document],
    objects: &[Object],
    out: &mut Vec<Diagnostic>,
) -> Vec<usize> {
    let mut duplicates = Vec::new();
    let mut seen: HashMap<(&str, &str, &str), usize> = HashMap::new();
    for object in objects {
        let document = &documents[object.doc];
        let namespace = match object.spec {
            // Cluster-scoped.
            Spec::Environment(_) => "",
            _ => document.namespace().unwrap_or_default(),
        };
        let key = (document.kind(), namespace, object.name.as_str());
        if let Some(&first) = seen.get(&key) {
            duplicates.push(object.doc);
            let first = &documents[first];
            out.push(at(
                document,
                "metadata.name",
                Severity::Error,
                format!(
                    "declared twice: {} is also declared at {}:{}",
                    document.object(),
                    first.file,
                    first.line
                ),
            ));
        } else {
            seen.insert(key, object.doc);
        }
    }
    duplicates
}

/// The line of `dependencies[i]` of a release, for the dependency named `name`.
fn dependency_path(release: &ScopeRelease, name: &str) -> String {
    match release
        .spec
        .dependencies
        .iter()
        .position(|d| d.name == name)
    {
        Some(i) => format!("{}.dependencies[{i}]", release.origin.path),
        None => release.origin.path.clone(),
    }
}

pub(crate) fn about_release(
    workspace: &Workspace,
    release: &ScopeRelease,
    path: &str,
    severity: Severity,
    message: String,
) -> Diagnostic {
    let document = &workspace.documents[release.origin.doc];
    let mut diagnostic = at(document, path, severity, message);
    // A template's release is named by its key; an inline service's as `service/key`.
    diagnostic.part = part_of_path(document, path).or_else(|| {
        release
            .origin
            .key
            .as_ref()
            .map(|key| format!("release {key}"))
    });
    diagnostic
}

/// Where to report a problem of a scope that names no release of the files.
fn about_scope(
    workspace: &Workspace,
    scope: &Scope,
    severity: Severity,
    message: String,
) -> Option<Diagnostic> {
    let doc = scope
        .environment
        .or_else(|| scope.releases.values().next().map(|r| r.origin.doc))
        .or_else(|| scope.services.values().next().copied())?;
    Some(at(
        &workspace.documents[doc],
        "metadata.name",
        severity,
        message,
    ))
}

/// A dependency nothing of the files provides. In an environment's namespace it is an error:
/// nothing but the environment creates objects there, so the release would wait for ever.
/// Elsewhere it may exist in the cluster: a warning.
fn unknown_dependency(
    scope: &Scope,
    release: &ScopeRelease,
    name: &str,
    what: &str,
) -> (Severity, String) {
    let Some((environment, keys)) = &scope.environment_releases else {
        return (
            Severity::Warning,
            format!(
                "dependency {name} is not among the files ({what} in {}); it must exist in the cluster",
                scope.title
            ),
        );
    };
    let who = match &release.service {
        Some(service) => format!(
            "service {service}, release {}",
            release.origin.key.as_deref().unwrap_or(&release.label)
        ),
        None => format!("release {}", release.label),
    };
    // A template written for one environment names that environment's release literally.
    let portable = keys
        .iter()
        .find(|key| name.ends_with(&format!("-{}", kebab_case(key))))
        .map(|key| {
            format!(
                "; to depend on the environment-wide release {key} in any environment, write {{name: {key}, kind: EnvironmentRelease}}"
            )
        })
        .unwrap_or_default();
    let declared = if keys.is_empty() {
        "none".to_owned()
    } else {
        keys.iter().cloned().collect::<Vec<_>>().join(", ")
    };
    (
        Severity::Error,
        format!(
            "UpstartEnvironment {environment}: {who} depends on {name}, which the environment does not provide ({what} in {}; its environment-wide releases: {declared}); it would wait for ever{portable}",
            scope.title
        ),
    )
}

fn check_graph(workspace: &Workspace, scope: &Scope, out: &mut Vec<Diagnostic>) {
    for problem in scope.graph.problems() {
        if let Some((release, name)) = on_disabled(scope, problem) {
            let message = format!(
                "dependency {name} is disabled (its enabled is false): enable it, or remove the dependency"
            );
            let path = dependency_path(release, name);
            out.push(about_release(
                workspace,
                release,
                &path,
                Severity::Error,
                message,
            ));
            continue;
        }
        let (release, path, severity, message) = match problem {
            DagError::UnknownDependency {
                release,
                name,
                kind,
            } => {
                let what = match kind {
                    Some(kind) => format!("no {kind} of that name"),
                    None => "no release key, UpstartService or HelmRelease of that name".to_owned(),
                };
                let Some(r) = scope.release_by_label(release) else {
                    continue;
                };
                let (severity, message) = unknown_dependency(scope, r, name, &what);
                (r, dependency_path(r, name), severity, message)
            }
            DagError::UnknownEnvironmentRelease {
                release,
                key,
                object,
            } => {
                let Some(r) = scope.release_by_label(release) else {
                    continue;
                };
                let what = format!("kind EnvironmentRelease: the HelmRelease {object}");
                let (severity, message) = unknown_dependency(scope, r, key, &what);
                (r, dependency_path(r, key), severity, message)
            }
            DagError::AmbiguousDependency { release, name } => {
                let Some(r) = scope.release_by_label(release) else {
                    continue;
                };
                (
                    r,
                    dependency_path(r, name),
                    Severity::Error,
                    format!(
                        "dependency {name} is ambiguous: an UpstartService and a HelmRelease are both named {name} in {}; set kind",
                        scope.title
                    ),
                )
            }
            DagError::NameConflict { first, .. } if scope.release_by_label(first).is_some() => {
                let Some(r) = scope.release_by_label(first) else {
                    continue;
                };
                (
                    r,
                    r.origin.path.clone(),
                    Severity::Error,
                    format!("{problem} (in {})", scope.title),
                )
            }
            other => {
                out.extend(about_scope(
                    workspace,
                    scope,
                    Severity::Error,
                    format!("{other} (in {})", scope.title),
                ));
                continue;
            }
        };
        out.push(about_release(workspace, release, &path, severity, message));
    }
    for cycle in scope.graph.ordering().cycles {
        let message = format!("dependency cycle: {cycle}; nothing on it can be installed");
        // Report at the first release of the path, on its dependency that continues the cycle.
        let found = cycle.path.windows(2).find_map(|pair| {
            let release = scope.release_by_label(&pair[0])?;
            let next = scope.labels.get(&pair[1])?;
            let dependency = scope
                .graph
                .dependencies(&release.node)
                .iter()
                .find(|d| &d.target == next)?;
            Some((release, dependency_path(release, &dependency.name)))
        });
        match found {
            Some((release, path)) => {
                out.push(about_release(
                    workspace,
                    release,
                    &path,
                    Severity::Error,
                    message,
                ));
            }
            None => out.extend(about_scope(workspace, scope, Severity::Error, message)),
        }
    }
}

/// One release as written in a document, for the expression checks.
struct Written<'a> {
    document: &'a Document,
    /// Path of the release spec.
    path: String,
    /// `service/key`, a key or the object name: how alias errors name it.
    label: String,
    dependencies: &'a [Dependency],
    values: Option<&'a serde_json::Value>,
    /// Path of the values (`PATH.values`, or an override's).
    values_path: String,
    service: bool,
}

fn written_release<'a>(
    document: &'a Document,
    path: String,
    label: String,
    spec: &'a HelmReleaseSpec,
    service: bool,
) -> Written<'a> {
    Written {
        document,
        values_path: format!("{path}.values"),
        path,
        label,
        dependencies: &spec.dependencies,
        values: spec.values.as_ref(),
        service,
    }
}

fn check_expressions(workspace: &Workspace, expressions: &Expressions, out: &mut Vec<Diagnostic>) {
    let mut written = Vec::new();
    for object in &workspace.objects {
        let document = &workspace.documents[object.doc];
        match &object.spec {
            Spec::Release(spec) => written.push(written_release(
                document,
                "spec".to_owned(),
                object.name.clone(),
                spec,
                false,
            )),
            Spec::Service(spec) => {
                for (key, release) in &spec.helm_releases {
                    written.push(written_release(
                        document,
                        format!("spec.helmReleases.{key}"),
                        format!("{}/{key}", object.name),
                        release,
                        true,
                    ));
                }
            }
            Spec::Environment(spec) => {
                for (key, release) in &spec.helm_releases {
                    written.push(written_release(
                        document,
                        format!("spec.helmReleases.{key}"),
                        key.clone(),
                        release,
                        false,
                    ));
                }
                for (i, service) in spec.services.iter().enumerate() {
                    if let Some(inline) = &service.spec {
                        for (key, release) in &inline.helm_releases {
                            written.push(written_release(
                                document,
                                format!("spec.services[{i}].spec.helmReleases.{key}"),
                                format!("{}/{key}", service.name),
                                release,
                                true,
                            ));
                        }
                    }
                    // Override values are merged into the release's: same dependencies.
                    for (key, change) in &service.overrides {
                        let Some(values) = &change.values else {
                            continue;
                        };
                        let Some(release) = service_releases(workspace, service)
                            .and_then(|releases| releases.get(key))
                        else {
                            continue;
                        };
                        written.push(Written {
                            document,
                            path: format!("spec.services[{i}].overrides.{key}"),
                            label: format!("{}/{key}", service.name),
                            dependencies: &release.dependencies,
                            values: Some(values),
                            values_path: format!("spec.services[{i}].overrides.{key}.values"),
                            service: true,
                        });
                    }
                }
            }
        }
    }
    for w in written {
        let is_override = w.path.contains(".overrides.");
        if !is_override {
            for error in check_aliases(&w.label, w.dependencies) {
                let alias = match &error {
                    DagError::DuplicateAlias { alias, .. }
                    | DagError::ReservedAlias { alias, .. } => alias.as_str(),
                    _ => "",
                };
                let index = w.dependencies.iter().rposition(|d| d.alias() == alias);
                let path = match index {
                    Some(i) => format!("{}.dependencies[{i}]", w.path),
                    None => w.path.clone(),
                };
                let message = error.to_string();
                let message = message
                    .strip_prefix(&format!("{}: ", w.label))
                    .unwrap_or(&message)
                    .to_owned();
                out.push(at(w.document, &path, Severity::Error, message));
            }
        }
        let Some(values) = w.values else { continue };
        // Any environment variable name is accepted offline: the environment is only known
        // at install time for a service deployed on its own.
        let context = OfflineContext::from_dependencies(w.dependencies, true, w.service);
        let report = expressions.check_offline(values, &w.values_path, &context);
        for error in report.errors {
            let path = error
                .location()
                .map_or_else(|| w.values_path.clone(), |l| l.path.clone());
            out.push(at(w.document, &path, Severity::Error, error.to_string()));
        }
    }
}

/// The releases of an environment's service (inline, or its template among the files).
fn service_releases<'a>(
    workspace: &'a Workspace,
    service: &'a EnvironmentService,
) -> Option<&'a std::collections::BTreeMap<String, HelmReleaseSpec>> {
    match (&service.spec, &service.template) {
        (Some(spec), _) => Some(&spec.helm_releases),
        (None, Some(template)) => workspace
            .template(&template.name)
            .map(|(_, spec)| &spec.helm_releases),
        (None, None) => None,
    }
}

fn check_environments(workspace: &Workspace, out: &mut Vec<Diagnostic>) {
    for object in &workspace.objects {
        let Spec::Environment(spec) = &object.spec else {
            continue;
        };
        let document = &workspace.documents[object.doc];
        for (i, service) in spec.services.iter().enumerate() {
            let releases = service_releases(workspace, service);
            if let (None, Some(template)) = (&releases, &service.template) {
                out.push(at(
                    document,
                    &format!("spec.services[{i}].template.name"),
                    Severity::Warning,
                    format!(
                        "template {} is not among the files: its releases and overrides are not checked (the operator reads it from the catalog namespace)",
                        template.name
                    ),
                ));
            }
            let Some(releases) = releases else { continue };
            for key in service.overrides.keys() {
                if !releases.contains_key(key) {
                    let from = match &service.template {
                        Some(t) if service.spec.is_none() => format!("template {}", t.name),
                        _ => "the inline spec".to_owned(),
                    };
                    out.push(at(
                        document,
                        &format!("spec.services[{i}].overrides.{key}"),
                        Severity::Error,
                        format!(
                            "override of release key {key}, which {from} does not have (it has: {})",
                            releases.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
    }
}

/// The output keys a release is known to publish: `Some` when every source lists its keys.
pub fn declared_keys(spec: &HelmReleaseSpec, external_only: bool) -> Option<BTreeSet<String>> {
    let mut keys = BTreeSet::new();
    for source in &spec.outputs_from {
        if external_only && source.scope != OutputScope::External {
            continue;
        }
        keys.extend(source.keys.clone()?);
    }
    Some(keys)
}

/// The keys a node publishes to its dependents, when known.
fn published_keys(scope: &Scope, target: &NodeId) -> Option<BTreeSet<String>> {
    match target.kind {
        NodeKind::HelmRelease => declared_keys(&scope.releases.get(target)?.spec, false),
        NodeKind::UpstartService => {
            let mut keys = BTreeSet::new();
            for release in scope.graph.depends_on(target) {
                keys.extend(declared_keys(&scope.releases.get(&release)?.spec, true)?);
            }
            Some(keys)
        }
    }
}

/// The outputs a release reads, from its (effective) inline values.
pub fn consumed(expressions: &Expressions, release: &ScopeRelease) -> BTreeSet<OutputRef> {
    let Some(values) = &release.spec.values else {
        return BTreeSet::new();
    };
    let context = OfflineContext::from_dependencies(
        &release.spec.dependencies,
        true,
        release.service.is_some(),
    );
    expressions
        .check_offline(values, "spec.values", &context)
        .consumes
}

fn check_outputs(
    workspace: &Workspace,
    scope: &Scope,
    expressions: &Expressions,
    out: &mut Vec<Diagnostic>,
) {
    for release in scope.releases.values() {
        for reference in consumed(expressions, release) {
            let Some(dependency) = scope
                .graph
                .dependencies(&release.node)
                .iter()
                .find(|d| d.alias == reference.alias)
            else {
                continue;
            };
            let Some(keys) = published_keys(scope, &dependency.target) else {
                continue;
            };
            if keys.contains(&reference.key) {
                continue;
            }
            let target = scope
                .graph
                .label(&dependency.target)
                .unwrap_or(&dependency.target.name);
            let publishes = if keys.is_empty() {
                match dependency.target.kind {
                    NodeKind::HelmRelease => "publishes no outputs (no outputsFrom)".to_owned(),
                    NodeKind::UpstartService => {
                        "exports no outputs (no outputsFrom with scope: external)".to_owned()
                    }
                }
            } else {
                format!(
                    "publishes only the keys its outputsFrom list: {}",
                    keys.into_iter().collect::<Vec<_>>().join(", ")
                )
            };
            out.push(about_release(
                workspace,
                release,
                &format!("{}.values", release.origin.path),
                Severity::Warning,
                format!(
                    "reads {}.outputs.{}, but {target} {publishes}",
                    reference.alias, reference.key
                ),
            ));
        }
    }
}

/// The Helm `.Release.Name` a release gets: `releaseName`, else its key in kebab-case (a
/// service's or environment's release), else its object name.
pub(crate) fn effective_release_name(release: &ScopeRelease) -> String {
    match &release.origin.key {
        Some(key) => release.spec.release_name_of_key(key),
        None => release.spec.release_name_of_object(&release.node.name),
    }
}

fn check_release_names(workspace: &Workspace, scope: &Scope, out: &mut Vec<Diagnostic>) {
    // In a stable order, so "first" and "second" do not depend on hashing.
    let claims = scope
        .releases
        .values()
        .map(|release| (effective_release_name(release), release));
    for clash in release_name_clashes(claims) {
        let release = clash.later;
        let path = if release.spec.release_name.is_some() {
            format!("{}.releaseName", release.origin.path)
        } else {
            release.origin.path.clone()
        };
        out.push(about_release(
            workspace,
            release,
            &path,
            Severity::Error,
            format!(
                "release name \"{}\" (the Helm .Release.Name) is also used by {} in {}; set releaseName on one of them",
                clash.release_name, clash.first.label, scope.title
            ),
        ));
    }
}

/// Two releases of one namespace publishing (`outputsFrom`) the same Secret or ConfigMap: if
/// both charts create it, the second apply is refused as a conflict; if neither does, both read
/// one object. A warning naming both; `--render` tells which.
fn check_published_objects(workspace: &Workspace, scope: &Scope, out: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<(&str, &str), &ScopeRelease> = HashMap::new();
    for release in scope.releases.values() {
        for (index, source) in release.spec.outputs_from.iter().enumerate() {
            let (kind, Some(reference)) = (
                if source.secret_ref.is_some() {
                    "Secret"
                } else {
                    "ConfigMap"
                },
                source.reference(),
            ) else {
                continue;
            };
            match seen.get(&(kind, reference.name.as_str())) {
                Some(first) if first.node != release.node => out.push(about_release(
                    workspace,
                    release,
                    &format!("{}.outputsFrom[{index}]", release.origin.path),
                    Severity::Warning,
                    format!(
                        "{kind}/{} is published by {} too (in {}): if both charts create it, the second is refused as a conflict; name one after its release (`upstart validate --render` checks what the charts create)",
                        reference.name, first.label, scope.title
                    ),
                )),
                Some(_) => {}
                None => {
                    seen.insert((kind, reference.name.as_str()), release);
                }
            }
        }
    }
}

/// `environment.variables.KEY` naming a variable the environment does not define, for the
/// releases of an environment's namespace: substitution with the environment's variables and
/// no output values reports it (and nothing else of interest: missing outputs are expected).
fn check_variables(
    workspace: &Workspace,
    scope: &Scope,
    expressions: &Expressions,
    out: &mut Vec<Diagnostic>,
) {
    let Some(environment_doc) = scope.environment else {
        return;
    };
    let Some(Spec::Environment(environment)) = workspace
        .objects
        .iter()
        .find(|o| o.doc == environment_doc)
        .map(|o| &o.spec)
    else {
        return;
    };
    let name = workspace.documents[environment_doc].name().to_owned();
    let namespace = environment
        .namespace
        .clone()
        .unwrap_or_else(|| name.clone());
    for release in scope.releases.values() {
        let Some(values) = &release.spec.values else {
            continue;
        };
        let context = ExpressionContext {
            dependencies: release
                .spec
                .dependencies
                .iter()
                .map(|d| (d.alias().to_owned(), Outputs::new()))
                .collect(),
            environment: Some(EnvironmentInfo {
                name: name.clone(),
                namespace: namespace.clone(),
                variables: environment.variables.clone(),
            }),
            service: release
                .service
                .as_ref()
                .map(|name| ServiceInfo { name: name.clone() }),
            release: ReleaseInfo {
                name: release.node.name.clone(),
                namespace: namespace.clone(),
            },
            // `imageDigest` is resolved online only; offline its argument was checked.
            images: Default::default(),
        };
        let path = format!("{}.values", release.origin.path);
        if let Err(error @ DagError::UnknownVariable { .. }) =
            expressions.substitute(values.clone(), &path, &context)
        {
            let at = error.location().map_or(path, |l| l.path.clone());
            out.push(about_release(
                workspace,
                release,
                &at,
                Severity::Error,
                format!("{error} (in UpstartEnvironment {name})"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::parse;

    fn problems(yaml: &str) -> Vec<String> {
        let documents = parse("t.yaml", yaml).expect("YAML");
        check(documents)
            .diagnostics
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const HEAD: &str = "apiVersion: upstartoperators.upstart.com/v1alpha1\nkind: UpstartService\n";

    const ENVIRONMENT: &str = "apiVersion: upstartoperators.upstart.com/v1alpha1
kind: UpstartEnvironment
metadata: {name: pr-1}
spec:
  variables: {withSearch: 'false'}
  helmReleases:
    search:
      chart: r/search
      enabled: '<< environment.variables.withSearch >>'
    api:
      chart: r/api
      dependencies:
        - name: search
";

    fn problems_with(yaml: &str, vars: &[(&str, &str)]) -> Vec<String> {
        let mut documents = parse("t.yaml", yaml).expect("YAML");
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        set_variables(&mut documents, &vars);
        check(documents)
            .diagnostics
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_dependency_on_a_release_disabled_by_a_variable_is_an_error_at_its_line() {
        assert_eq!(
            problems(ENVIRONMENT),
            [
                "t.yaml:13: error: UpstartEnvironment/pr-1 release api: dependency search is disabled (its enabled is false): enable it, or remove the dependency"
            ]
        );
    }

    #[test]
    fn a_dependency_on_a_disabled_service_is_an_error_naming_it() {
        let yaml = "apiVersion: upstartoperators.upstart.com/v1alpha1
kind: UpstartEnvironment
metadata: {name: pr-1}
spec:
  services:
    - name: search
      enabled: false
      spec: {helmReleases: {es: {chart: r/es}}}
    - name: web
      spec:
        helmReleases:
          app:
            chart: r/app
            dependencies: [{name: search}]
";
        let found = problems(yaml);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("release web/app: dependency search is disabled"),
            "{found:?}"
        );
    }

    #[test]
    fn var_sets_the_variable_an_enabled_expression_reads() {
        assert_eq!(
            problems_with(ENVIRONMENT, &[("withSearch", "true")]),
            Vec::<String>::new()
        );
        // Left out (and said so at its line), so its dependent is reported too.
        let wrong = problems_with(ENVIRONMENT, &[("withSearch", "yes")]);
        assert_eq!(wrong.len(), 2, "{wrong:?}");
        assert!(
            wrong[0].starts_with("t.yaml:9: error: UpstartEnvironment/pr-1 release search: spec.helmReleases.search.enabled: enabled must be true, false"),
            "{wrong:?}"
        );
    }

    #[test]
    fn parse_var_takes_name_equals_value() {
        assert_eq!(parse_var("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_var("=b").is_err());
        assert!(parse_var("ab").is_err());
    }

    #[test]
    fn a_job_cycle_is_refused_like_a_release_cycle() {
        let yaml = format!(
            "{HEAD}metadata: {{name: s}}
spec:
  helmReleases:
    api:
      chart: r/api
      dependencies:
        - name: seed
  jobs:
    seed:
      template: {{spec: {{containers: [{{name: c, image: busybox}}]}}}}
      dependencies:
        - name: api
"
        );
        let found = problems(&yaml);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("dependency cycle"), "{found:?}");
        assert!(
            found[0].contains("s/seed") && found[0].contains("s/api"),
            "{found:?}"
        );
    }

    #[test]
    fn jobs_with_when_validate_and_take_expressions_like_releases() {
        let yaml = format!(
            "{HEAD}metadata: {{name: s}}
spec:
  helmReleases:
    db: {{chart: r/db, outputsFrom: [{{secretRef: {{name: db}}, keys: [USER]}}]}}
  jobs:
    seed:
      when: post
      template:
        spec:
          containers:
            - name: seed
              image: busybox
              env: [{{name: U, value: '<< db.outputs.USER >>'}}]
"
        );
        assert_eq!(problems(&yaml), Vec::<String>::new());
    }

    #[test]
    fn a_valid_service_has_no_problem() {
        let yaml = format!(
            "{HEAD}metadata: {{name: s}}
spec:
  helmReleases:
    db: {{chart: r/db, outputsFrom: [{{secretRef: {{name: db}}, keys: [USER]}}]}}
    app:
      chart: r/app
      dependencies: [{{name: db}}]
      values: {{url: '<< db.outputs.USER >>'}}
"
        );
        assert_eq!(problems(&yaml), Vec::<String>::new());
    }

    #[test]
    fn a_cycle_is_reported_on_the_dependency_that_closes_it() {
        let yaml = format!(
            "{HEAD}metadata: {{name: s}}
spec:
  helmReleases:
    a:
      chart: r/a
      dependencies:
        - name: b
    b:
      chart: r/b
      dependencies:
        - name: a
"
        );
        assert_eq!(
            problems(&yaml),
            [
                "t.yaml:9: error: UpstartService/s release a: dependency cycle: s/a -> s/b -> s/a; nothing on it can be installed"
            ]
        );
    }

    #[test]
    fn an_unknown_dependency_is_only_a_warning() {
        let yaml = format!(
            "{HEAD}metadata: {{name: s}}\nspec:\n  helmReleases:\n    a:\n      chart: r/a\n      dependencies: [{{name: elsewhere}}]\n"
        );
        let found = problems(&yaml);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("t.yaml:8: warning: UpstartService/s release a: dependency elsewhere is not among the files"),
            "{found:?}"
        );
    }

    #[test]
    fn an_expression_naming_an_undeclared_dependency_is_an_error_at_its_line() {
        let yaml = format!(
            "{HEAD}metadata: {{name: s}}\nspec:\n  helmReleases:\n    a:\n      chart: r/a\n      values:\n        x: '<< db.outputs.URL >>'\n"
        );
        let found = problems(&yaml);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("t.yaml:9: error: UpstartService/s release a: spec.helmReleases.a.values.x: << db.outputs.URL >> at column 1: unknown name db"),
            "{found:?}"
        );
    }

    #[test]
    fn an_image_pinned_by_image_digest_validates_offline_and_a_short_name_is_refused_at_its_line() {
        let yaml = format!(
            "{HEAD}metadata: {{name: s}}\nspec:\n  helmReleases:\n    a:\n      chart: r/a\n      values:\n        image: '<< imageDigest \"registry.example.com/team/api:1.4\" >>'\n"
        );
        assert_eq!(problems(&yaml), Vec::<String>::new());
        let yaml = format!(
            "{HEAD}metadata: {{name: s}}\nspec:\n  helmReleases:\n    a:\n      chart: r/a\n      values:\n        image: '<< imageDigest \"team/api:1.4\" >>'\n"
        );
        let found = problems(&yaml);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(
                "t.yaml:9: error: UpstartService/s release a: spec.helmReleases.a.values.image:"
            ),
            "{found:?}"
        );
        assert!(found[0].contains("write the registry out"), "{found:?}");
    }

    #[test]
    fn a_schema_error_carries_the_api_servers_message_and_the_field_line() {
        let yaml = format!(
            "{HEAD}metadata: {{name: s}}\nspec:\n  helmReleases:\n    a:\n      chart: r/a\n      version: not-a-range\n"
        );
        let found = problems(&yaml);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("t.yaml:8: error: UpstartService/s release a: spec.helmReleases[a].version: Invalid value: \"string\": must be an exact semver version"),
            "{found:?}"
        );
    }

    #[test]
    fn an_unknown_field_is_an_error() {
        let yaml = format!(
            "{HEAD}metadata: {{name: s}}\nspec:\n  helmReleases:\n    a:\n      chart: r/a\n      chrat: r/b\n"
        );
        assert_eq!(
            problems(&yaml),
            [
                "t.yaml:8: error: UpstartService/s release a: unknown field \"spec.helmReleases[a].chrat\""
            ]
        );
    }

    #[test]
    fn an_override_of_a_key_the_template_lacks_is_an_error() {
        let yaml = format!(
            "{HEAD}metadata: {{name: s}}\nspec:\n  helmReleases:\n    a: {{chart: r/a}}\n---
apiVersion: upstartoperators.upstart.com/v1alpha1
kind: UpstartEnvironment
metadata: {{name: e}}
spec:
  services:
    - name: s
      template: {{name: s}}
      overrides:
        b: {{version: 1.0.0}}
"
        );
        assert_eq!(
            problems(&yaml),
            [
                "t.yaml:16: error: UpstartEnvironment/e release s/b: override of release key b, which template s does not have (it has: a)"
            ]
        );
    }

    #[test]
    fn reading_a_key_a_dependency_does_not_list_is_a_warning() {
        let yaml = format!(
            "{HEAD}metadata: {{name: s}}
spec:
  helmReleases:
    db: {{chart: r/db, outputsFrom: [{{secretRef: {{name: db}}, keys: [USER]}}]}}
    app:
      chart: r/app
      dependencies: [{{name: db}}]
      values: {{url: '<< db.outputs.PASSWORD >>'}}
"
        );
        let found = problems(&yaml);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("warning: UpstartService/s release app: reads db.outputs.PASSWORD, but s/db publishes only the keys its outputsFrom list: USER"), "{found:?}");
    }

    /// Every example with any one line removed: whatever the result, no panic, and every
    /// diagnostic names a line of the file.
    #[test]
    fn no_example_with_a_line_removed_makes_validate_panic() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let files = crate::source::expand(&[root]);
        assert!(files.len() >= 4, "{files:?}");
        for file in files {
            let text = std::fs::read_to_string(&file).expect("readable");
            let lines: Vec<&str> = text.lines().collect();
            for skip in 0..lines.len() {
                let edited: Vec<&str> = lines
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != skip)
                    .map(|(_, l)| *l)
                    .collect();
                let edited = edited.join("\n");
                let diagnostics = match parse("e.yaml", &edited) {
                    Ok(documents) => check(documents).diagnostics,
                    Err(problem) => vec![problem],
                };
                for d in diagnostics {
                    assert!(d.line <= lines.len(), "{}: {d}", file.display());
                }
            }
        }
    }

    #[test]
    fn a_billion_laughs_document_is_refused_without_expanding_it() {
        let mut yaml = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut previous = 'a';
        for name in 'b'..='j' {
            yaml.push_str(&format!(
                "{name}: &{name} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}]\n"
            ));
            previous = name;
        }
        let problem = parse("laughs.yaml", &yaml).expect_err("refused");
        assert!(problem.message.starts_with("not valid YAML"), "{problem}");
    }

    #[test]
    fn the_same_object_twice_is_an_error_naming_the_first() {
        let doc =
            format!("{HEAD}metadata: {{name: s}}\nspec:\n  helmReleases:\n    a: {{chart: r/a}}\n");
        let found = problems(&format!("{doc}---\n{doc}"));
        assert_eq!(
            found,
            [
                "t.yaml:10: error: UpstartService/s: declared twice: UpstartService/s is also declared at t.yaml:1"
            ]
        );
    }
}
