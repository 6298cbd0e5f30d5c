//! `upstart env diff`: what a change would do to a live environment, computed by a pure
//! function from the environment's spec as it is and as it would be, with the catalog
//! templates both are read against: services added or removed, releases added, removed or
//! re-rendered (and why), and a values diff per release in which secret-looking values are
//! masked.
//!
//! Both sides are read against the same templates, so the diff shows what the change does,
//! not what a catalog edit meanwhile would. Values are compared as written in the specs:
//! `<< dep.outputs.KEY >>` expressions appear as written and are never resolved, so no output
//! value can reach the diff.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;
use upstart_api::names::child_name;
use upstart_api::v1alpha1::{
    HelmReleaseSpec, UpstartEnvironmentSpec, UpstartServiceSpec, rewrite_chart,
};

use crate::render::{BOLD, DIM, ERROR, GOOD, WARNING, styled};

/// What stands for a masked value.
pub const MASKED: &str = "(masked)";

/// Path segments that make a value secret-looking (case-insensitive substrings).
const SECRET_WORDS: [&str; 5] = ["password", "passwd", "secret", "token", "key"];

/// Whether a value at `path` (its segments) looks like a secret.
pub fn is_secret_path<'a>(path: impl IntoIterator<Item = &'a str>) -> bool {
    path.into_iter().any(|segment| {
        let segment = segment.to_ascii_lowercase();
        SECRET_WORDS.iter().any(|word| segment.contains(word))
    })
}

/// Added, removed or changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

impl Change {
    fn sign(self) -> &'static str {
        match self {
            Change::Added => "+",
            Change::Removed => "-",
            Change::Changed => "~",
        }
    }

    fn style(self) -> anstyle::Style {
        match self {
            Change::Added => GOOD,
            Change::Removed => ERROR,
            Change::Changed => WARNING,
        }
    }
}

/// A field of the environment's spec other than its services and releases (`ttl`,
/// `variables.NAME`, `namespace`, ...).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingChange {
    /// The field.
    pub field: String,
    /// Added, removed or changed.
    pub change: Change,
    /// Before (masked when secret-looking).
    pub old: Option<Value>,
    /// After (masked when secret-looking).
    pub new: Option<Value>,
}

/// A service added, removed or pointed at another template.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceChange {
    /// The service's name.
    pub name: String,
    /// Added, removed, or changed (its template).
    pub change: Change,
    /// `template NAME`, `inline spec`, or `template a -> b`.
    pub source: String,
}

/// One value of a release that changes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueChange {
    /// The dotted path in the values (`image.tag`, `hosts[0]`).
    pub path: String,
    /// Added, removed or changed.
    pub change: Change,
    /// Before ([`MASKED`] when secret-looking).
    pub old: Option<Value>,
    /// After ([`MASKED`] when secret-looking).
    pub new: Option<Value>,
    /// Whether the values are masked.
    pub masked: bool,
}

/// A release that would be installed, deleted or re-rendered.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseChange {
    /// `service/key`, or `environment/key` for an environment-wide release.
    pub release: String,
    /// The HelmRelease's name.
    pub object: String,
    /// Added, removed, or changed (re-renders).
    pub change: Change,
    /// Why it re-renders: `chart a -> b`, `version 1 -> 2`, `values`, `variable NAME`, ...
    pub reasons: Vec<String>,
    /// Its values that change.
    pub values: Vec<ValueChange>,
}

/// The whole difference.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diff {
    /// The environment's name.
    pub environment: String,
    /// Whether it exists (otherwise everything is added).
    pub exists: bool,
    /// Spec fields other than services and releases.
    pub settings: Vec<SettingChange>,
    /// Services.
    pub services: Vec<ServiceChange>,
    /// Releases.
    pub releases: Vec<ReleaseChange>,
    /// What could not be compared (a template missing from the catalog, an override of an
    /// unknown release key).
    pub notes: Vec<String>,
}

impl Diff {
    /// Whether applying the change would change anything.
    pub fn has_changes(&self) -> bool {
        !self.exists
            || !self.settings.is_empty()
            || !self.services.is_empty()
            || !self.releases.is_empty()
    }
}

/// One release of an environment with the spec it would be created with.
#[derive(Clone, Debug)]
struct Effective {
    label: String,
    spec: HelmReleaseSpec,
}

/// Every release of `spec` by HelmRelease name, with templates, overrides and
/// `chartRepositories` applied (as the environment operator applies them).
fn effective_releases(
    environment: &str,
    spec: &UpstartEnvironmentSpec,
    templates: &BTreeMap<String, UpstartServiceSpec>,
    notes: &mut BTreeSet<String>,
) -> BTreeMap<String, Effective> {
    let mut out = BTreeMap::new();
    for (key, release) in &spec.helm_releases {
        let mut release = release.clone();
        if let Some(chart) = rewrite_chart(&release.chart, &spec.chart_repositories) {
            release.chart = chart;
        }
        out.insert(
            child_name(environment, key),
            Effective {
                label: format!("environment/{key}"),
                spec: release,
            },
        );
    }
    for service in spec
        .services
        .iter()
        .filter(|s| upstart_dag::switches::keeps_service(spec, s))
    {
        let base = match (&service.spec, &service.template) {
            (Some(spec), _) => spec.clone(),
            (None, Some(template)) => match templates.get(&template.name) {
                Some(spec) => spec.clone(),
                None => {
                    notes.insert(format!(
                        "service {}: template {} is not in the catalog: its releases are not \
                         compared",
                        service.name, template.name
                    ));
                    continue;
                }
            },
            (None, None) => continue,
        };
        let mut releases = base.helm_releases;
        for (key, change) in &service.overrides {
            let Some(release) = releases.get_mut(key) else {
                notes.insert(format!(
                    "service {}: override of unknown release key {key} (the operator refuses it)",
                    service.name
                ));
                continue;
            };
            if let Err(error) = upstart_dag::apply_override(key, release, change) {
                notes.insert(format!(
                    "service {}: override of {key}: {error} (the operator refuses it)",
                    service.name
                ));
            }
        }
        for (key, mut release) in releases {
            if let Some(chart) = rewrite_chart(&release.chart, &spec.chart_repositories) {
                release.chart = chart;
            }
            out.insert(
                child_name(&service.name, &key),
                Effective {
                    label: format!("{}/{key}", service.name),
                    spec: release,
                },
            );
        }
    }
    out
}

fn service_source(service: &upstart_api::v1alpha1::EnvironmentService) -> String {
    match (&service.template, &service.spec) {
        (Some(template), _) => format!("template {}", template.name),
        _ => "inline spec".to_owned(),
    }
}

/// Flattens values into leaves by dotted path (`a.b`, `list[0]`); empty maps and lists are
/// leaves.
fn leaves(value: &Value, path: &mut Vec<String>, out: &mut BTreeMap<Vec<String>, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, value) in map {
                path.push(key.clone());
                leaves(value, path, out);
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, value) in items.iter().enumerate() {
                path.push(format!("[{i}]"));
                leaves(value, path, out);
                path.pop();
            }
        }
        leaf => {
            out.insert(path.clone(), leaf.clone());
        }
    }
}

fn path_text(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if !segment.starts_with('[') && !out.is_empty() {
            out.push('.');
        }
        out.push_str(segment);
    }
    out
}

fn masked(value: Option<Value>, mask: bool) -> Option<Value> {
    value.map(|v| {
        if mask {
            Value::String(MASKED.to_owned())
        } else {
            v
        }
    })
}

/// The values that differ between two documents, secret-looking ones masked.
pub fn values_diff(old: Option<&Value>, new: Option<&Value>) -> Vec<ValueChange> {
    let mut before = BTreeMap::new();
    let mut after = BTreeMap::new();
    if let Some(old) = old {
        leaves(old, &mut Vec::new(), &mut before);
    }
    if let Some(new) = new {
        leaves(new, &mut Vec::new(), &mut after);
    }
    // An empty document has one leaf at the root: nothing to compare.
    before.remove(&Vec::new());
    after.remove(&Vec::new());
    let paths: BTreeSet<&Vec<String>> = before.keys().chain(after.keys()).collect();
    let mut out = Vec::new();
    for path in paths {
        let (old, new) = (before.get(path), after.get(path));
        let change = match (old, new) {
            (Some(a), Some(b)) if a == b => continue,
            (Some(_), Some(_)) => Change::Changed,
            (None, _) => Change::Added,
            (_, None) => Change::Removed,
        };
        let mask = is_secret_path(path.iter().map(String::as_str));
        out.push(ValueChange {
            path: path_text(path),
            change,
            old: masked(old.cloned(), mask),
            new: masked(new.cloned(), mask),
            masked: mask,
        });
    }
    out
}

/// Whether any string of `values` reads `environment.variables.NAME`.
fn reads_variable(values: Option<&Value>, name: &str) -> bool {
    fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::String(s) => out.push(s),
            Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
            Value::Object(map) => map.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let Some(values) = values else {
        return false;
    };
    let mut all = Vec::new();
    strings(values, &mut all);
    let needle = format!("environment.variables.{name}");
    all.iter().any(|s| {
        s.contains("<<")
            && s.match_indices(&needle).any(|(i, _)| {
                // `environment.variables.branch` must not match `...branchName`.
                !s[i + needle.len()..]
                    .starts_with(|c: char| c.is_alphanumeric() || c == '_' || c == '-')
            })
    })
}

/// The reasons a release re-renders, besides its values.
fn spec_reasons(old: &HelmReleaseSpec, new: &HelmReleaseSpec) -> Vec<String> {
    let mut reasons = Vec::new();
    if old.chart != new.chart {
        reasons.push(format!("chart {} -> {}", old.chart, new.chart));
    }
    if old.version != new.version {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(newest)".to_owned());
        reasons.push(format!(
            "version {} -> {}",
            show(&old.version),
            show(&new.version)
        ));
    }
    if old.values != new.values {
        reasons.push("values".to_owned());
    }
    let (mut a, mut b) = (
        serde_json::to_value(old).unwrap_or_default(),
        serde_json::to_value(new).unwrap_or_default(),
    );
    for field in ["chart", "version", "values"] {
        if let (Some(a), Some(b)) = (a.as_object_mut(), b.as_object_mut()) {
            a.remove(field);
            b.remove(field);
        }
    }
    if let (Value::Object(a), Value::Object(b)) = (&a, &b) {
        let fields: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for field in fields {
            if a.get(field) != b.get(field) {
                reasons.push(field.clone());
            }
        }
    }
    reasons
}

fn setting(
    field: &str,
    old: Option<Value>,
    new: Option<Value>,
    mask: bool,
) -> Option<SettingChange> {
    let change = match (&old, &new) {
        (a, b) if a == b => return None,
        (None, _) => Change::Added,
        (_, None) => Change::Removed,
        _ => Change::Changed,
    };
    Some(SettingChange {
        field: field.to_owned(),
        change,
        old: masked(old, mask),
        new: masked(new, mask),
    })
}

/// What changing the environment `name` from `old` (None: it does not exist) to `new` does,
/// with `templates` (the catalog's services by name) for both sides.
pub fn diff(
    name: &str,
    old: Option<&UpstartEnvironmentSpec>,
    new: &UpstartEnvironmentSpec,
    templates: &BTreeMap<String, UpstartServiceSpec>,
) -> Diff {
    let empty = UpstartEnvironmentSpec::default();
    let exists = old.is_some();
    let old = old.unwrap_or(&empty);
    let mut notes = BTreeSet::new();

    // Settings: every top-level field but services and releases (variables one by one).
    let mut settings = Vec::new();
    let (a, b) = (
        serde_json::to_value(old).unwrap_or_default(),
        serde_json::to_value(new).unwrap_or_default(),
    );
    let fields: BTreeSet<&String> = a
        .as_object()
        .into_iter()
        .chain(b.as_object())
        .flat_map(|m| m.keys())
        .filter(|k| !matches!(k.as_str(), "services" | "helmReleases" | "variables"))
        .collect();
    settings.extend(
        fields
            .into_iter()
            .filter_map(|f| setting(f, a.get(f).cloned(), b.get(f).cloned(), false)),
    );
    let variables: BTreeSet<&String> = old.variables.keys().chain(new.variables.keys()).collect();
    let mut changed_variables = Vec::new();
    for variable in variables {
        let (before, after) = (old.variables.get(variable), new.variables.get(variable));
        if let Some(change) = setting(
            &format!("variables.{variable}"),
            before.map(|v| Value::String(v.clone())),
            after.map(|v| Value::String(v.clone())),
            is_secret_path([variable.as_str()]),
        ) {
            settings.push(change);
            changed_variables.push(variable.clone());
        }
    }

    // Services.
    let mut services = Vec::new();
    let enabled = |spec: &UpstartEnvironmentSpec| -> BTreeMap<String, String> {
        spec.services
            .iter()
            .filter(|s| upstart_dag::switches::keeps_service(spec, s))
            .map(|s| (s.name.clone(), service_source(s)))
            .collect()
    };
    let (before, after) = (enabled(old), enabled(new));
    for (name, source) in &after {
        match before.get(name) {
            None => services.push(ServiceChange {
                name: name.clone(),
                change: Change::Added,
                source: source.clone(),
            }),
            Some(old_source) if old_source != source => services.push(ServiceChange {
                name: name.clone(),
                change: Change::Changed,
                source: format!("{old_source} -> {source}"),
            }),
            Some(_) => {}
        }
    }
    for (name, source) in &before {
        if !after.contains_key(name) {
            services.push(ServiceChange {
                name: name.clone(),
                change: Change::Removed,
                source: source.clone(),
            });
        }
    }

    // Releases.
    let before = effective_releases(name, old, templates, &mut notes);
    let after = effective_releases(name, new, templates, &mut notes);
    let objects: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut releases = Vec::new();
    for object in objects {
        let (old, new) = (before.get(object), after.get(object));
        let release = match (old, new) {
            (None, Some(new)) => ReleaseChange {
                release: new.label.clone(),
                object: object.clone(),
                change: Change::Added,
                reasons: Vec::new(),
                values: values_diff(None, new.spec.values.as_ref()),
            },
            (Some(old), None) => ReleaseChange {
                release: old.label.clone(),
                object: object.clone(),
                change: Change::Removed,
                reasons: Vec::new(),
                values: Vec::new(),
            },
            (Some(old), Some(new)) => {
                let mut reasons = spec_reasons(&old.spec, &new.spec);
                reasons.extend(
                    changed_variables
                        .iter()
                        .filter(|v| reads_variable(new.spec.values.as_ref(), v))
                        .map(|v| format!("variable {v}")),
                );
                if reasons.is_empty() {
                    continue;
                }
                ReleaseChange {
                    release: new.label.clone(),
                    object: object.clone(),
                    change: Change::Changed,
                    reasons,
                    values: values_diff(old.spec.values.as_ref(), new.spec.values.as_ref()),
                }
            }
            (None, None) => continue,
        };
        releases.push(release);
    }
    releases.sort_by(|a, b| a.release.cmp(&b.release));
    Diff {
        environment: name.to_owned(),
        exists,
        settings,
        services,
        releases,
        notes: notes.into_iter().collect(),
    }
}

fn show(value: Option<&Value>) -> String {
    match value {
        None => "(none)".to_owned(),
        Some(Value::String(s)) if s == MASKED => MASKED.to_owned(),
        Some(value) => value.to_string(),
    }
}

/// The diff as text: one line per change, `+` added, `-` removed, `~` changed.
pub fn render(diff: &Diff) -> String {
    let mut out = String::new();
    let title = format!("UpstartEnvironment {}", diff.environment);
    if !diff.has_changes() {
        let _ = writeln!(out, "{}: no changes", styled(BOLD, &title));
    } else if !diff.exists {
        let _ = writeln!(
            out,
            "{}: does not exist yet, would be created",
            styled(BOLD, &title)
        );
    } else {
        let _ = writeln!(out, "{}: changes", styled(BOLD, &title));
    }
    let sign = |change: Change| styled(change.style(), change.sign());
    for setting in &diff.settings {
        let _ = writeln!(
            out,
            "{} {}: {} -> {}",
            sign(setting.change),
            setting.field,
            show(setting.old.as_ref()),
            show(setting.new.as_ref())
        );
    }
    for service in &diff.services {
        let _ = writeln!(
            out,
            "{} service {} ({})",
            sign(service.change),
            service.name,
            service.source
        );
    }
    for release in &diff.releases {
        let mut line = format!("{} release {}", sign(release.change), release.release);
        match release.change {
            Change::Added => line.push_str(" (installed)"),
            Change::Removed => line.push_str(" (uninstalled)"),
            Change::Changed => {
                let _ = write!(line, " re-renders: {}", release.reasons.join(", "));
            }
        }
        let _ = writeln!(out, "{line}");
        for value in &release.values {
            let text = match value.change {
                Change::Added => format!("{}: {}", value.path, show(value.new.as_ref())),
                Change::Removed => format!("{}: {}", value.path, show(value.old.as_ref())),
                Change::Changed => format!(
                    "{}: {} -> {}",
                    value.path,
                    show(value.old.as_ref()),
                    show(value.new.as_ref())
                ),
            };
            let _ = writeln!(out, "    {} {text}", sign(value.change));
        }
    }
    for note in &diff.notes {
        let _ = writeln!(out, "{}", styled(DIM, &format!("note: {note}")));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(value: Value) -> UpstartEnvironmentSpec {
        serde_json::from_value(value).expect("environment spec")
    }

    fn templates() -> BTreeMap<String, UpstartServiceSpec> {
        let shop: UpstartServiceSpec = serde_json::from_value(json!({"helmReleases": {
            "db": {"chart": "r/postgres", "version": "0.1.3", "values": {"password": "x"}},
            "app": {"chart": "r/app", "dependencies": [{"name": "db"}], "values": {
                "image": {"tag": "main"},
                "env": {"DB_PASSWORD": "<< db.outputs.POSTGRES_PASSWORD >>",
                        "BRANCH": "<< environment.variables.branch >>"}}}
        }}))
        .expect("template");
        let queue: UpstartServiceSpec =
            serde_json::from_value(json!({"helmReleases": {"broker": {"chart": "r/queue"}}}))
                .expect("template");
        [("shop".to_owned(), shop), ("queue".to_owned(), queue)]
            .into_iter()
            .collect()
    }

    fn live() -> UpstartEnvironmentSpec {
        spec(json!({
            "ttl": "72h",
            "variables": {"branch": "feature-x"},
            "services": [
                {"name": "shop", "template": {"name": "shop"},
                 "overrides": {"app": {"values": {"image": {"tag": "pr-1-aaa"}, "apiToken": "t0k3n-old"}}}},
                {"name": "legacy", "spec": {"helmReleases": {"web": {"chart": "r/web"}}}}
            ]
        }))
    }

    #[test]
    fn the_same_spec_is_no_change() {
        let diff = diff("pr-1", Some(&live()), &live(), &templates());
        assert!(!diff.has_changes(), "{diff:#?}");
        assert_eq!(
            anstream::adapter::strip_str(&render(&diff)).to_string(),
            "UpstartEnvironment pr-1: no changes\n"
        );
    }

    #[test]
    fn a_chart_repository_override_re_renders_the_releases_of_that_alias_only() {
        let mut pushed = live();
        pushed
            .chart_repositories
            .insert("r".to_owned(), "https://charts.example.com/pr-1".to_owned());
        pushed.services[1].spec = Some(
            serde_json::from_value(json!({"helmReleases": {"web": {"chart": "other/web"}}}))
                .expect("service spec"),
        );
        let mut base = live();
        base.services[1].spec = pushed.services[1].spec.clone();
        let diff = diff("pr-1", Some(&base), &pushed, &templates());
        let changed: Vec<(&str, &[String])> = diff
            .releases
            .iter()
            .map(|r| (r.release.as_str(), r.reasons.as_slice()))
            .collect();
        assert_eq!(
            changed,
            [
                (
                    "shop/app",
                    &["chart r/app -> https://charts.example.com/pr-1/app".to_owned()][..]
                ),
                (
                    "shop/db",
                    &["chart r/postgres -> https://charts.example.com/pr-1/postgres".to_owned()][..]
                ),
            ],
            "{diff:#?}"
        );
    }

    #[test]
    fn a_second_push_shows_the_release_that_re_renders_with_secrets_masked() {
        let new = spec(json!({
            "ttl": "96h",
            "variables": {"branch": "feature-x"},
            "services": [
                {"name": "shop", "template": {"name": "shop"},
                 "overrides": {"app": {"values": {"image": {"tag": "pr-1-bbb"}, "apiToken": "t0k3n-new"}},
                               "db": {"version": "0.1.4"}}},
                {"name": "queue", "template": {"name": "queue"}}
            ]
        }));
        let diff = diff("pr-1", Some(&live()), &new, &templates());
        assert!(diff.has_changes());
        let text = anstream::adapter::strip_str(&render(&diff)).to_string();
        assert_eq!(
            text,
            "UpstartEnvironment pr-1: changes
~ ttl: \"72h\" -> \"96h\"
+ service queue (template queue)
- service legacy (inline spec)
- release legacy/web (uninstalled)
+ release queue/broker (installed)
~ release shop/app re-renders: values
    ~ apiToken: (masked) -> (masked)
    ~ image.tag: \"pr-1-aaa\" -> \"pr-1-bbb\"
~ release shop/db re-renders: version 0.1.3 -> 0.1.4
"
        );
        assert!(!text.contains("t0k3n"), "{text}");
        let json = serde_json::to_string(&diff).unwrap();
        assert!(!json.contains("t0k3n"), "{json}");
    }

    #[test]
    fn a_changed_variable_re_renders_only_the_releases_that_read_it() {
        let mut new = live();
        new.variables.insert("branch".into(), "feature-y".into());
        let diff = diff("pr-1", Some(&live()), &new, &templates());
        let releases: Vec<(&str, &[String])> = diff
            .releases
            .iter()
            .map(|r| (r.release.as_str(), r.reasons.as_slice()))
            .collect();
        assert_eq!(
            releases,
            [("shop/app", &["variable branch".to_owned()][..])]
        );
        assert!(
            diff.releases[0].values.is_empty(),
            "the expression itself did not change"
        );
    }

    #[test]
    fn secret_looking_keys_are_masked_wherever_they_are_in_the_path() {
        let old = json!({"db": {"password": "a"}, "secrets": {"url": "u1"}, "sshKey": "k1",
                         "auth": {"token": "t1"}, "host": "h1"});
        let new = json!({"db": {"password": "b"}, "secrets": {"url": "u2"}, "sshKey": "k2",
                         "auth": {"token": "t2"}, "host": "h2"});
        let changes = values_diff(Some(&old), Some(&new));
        let shown: Vec<(&str, bool)> = changes
            .iter()
            .map(|c| (c.path.as_str(), c.masked))
            .collect();
        assert_eq!(
            shown,
            [
                ("auth.token", true),
                ("db.password", true),
                ("host", false),
                ("secrets.url", true),
                ("sshKey", true)
            ]
        );
        let json = serde_json::to_string(&changes).unwrap();
        for secret in ["\"a\"", "u1", "u2", "k1", "k2", "t1", "t2"] {
            assert!(!json.contains(secret), "{secret} in {json}");
        }
    }

    #[test]
    fn output_expressions_are_shown_as_written_never_resolved() {
        let new = spec(json!({
            "variables": {"branch": "feature-x"}, "ttl": "72h",
            "services": [{"name": "shop", "template": {"name": "shop"},
                "overrides": {"app": {"values": {"image": {"tag": "pr-1-aaa"}, "apiToken": "t0k3n-old",
                    "env": {"DB_URL": "postgres://<< db.outputs.POSTGRES_USER >>@db"}}}}},
                {"name": "legacy", "spec": {"helmReleases": {"web": {"chart": "r/web"}}}}]
        }));
        let diff = diff("pr-1", Some(&live()), &new, &templates());
        let values = &diff.releases[0].values;
        assert_eq!(values.len(), 1);
        assert_eq!(
            values[0].new,
            Some(json!("postgres://<< db.outputs.POSTGRES_USER >>@db"))
        );
    }

    #[test]
    fn an_environment_that_does_not_exist_is_all_added() {
        let diff = diff("pr-1", None, &live(), &templates());
        assert!(diff.has_changes() && !diff.exists);
        let added: Vec<&str> = diff.releases.iter().map(|r| r.release.as_str()).collect();
        assert_eq!(added, ["legacy/web", "shop/app", "shop/db"]);
        assert!(diff.releases.iter().all(|r| r.change == Change::Added));
    }

    #[test]
    fn a_template_missing_from_the_catalog_is_a_note_not_a_failure() {
        let mut new = live();
        new.services.push(
            serde_json::from_value(json!({"name": "ghost", "template": {"name": "ghost"}}))
                .unwrap(),
        );
        let diff = diff("pr-1", Some(&live()), &new, &templates());
        assert_eq!(diff.services.len(), 1);
        assert_eq!(
            diff.notes,
            ["service ghost: template ghost is not in the catalog: its releases are not compared"]
        );
    }
}
