//! Subcharts a chart lists in `Chart.yaml` but does not vendor in `charts/`: which ones to
//! fetch and in which version, as `helm dependency build` decides (pure, over the chart's
//! files), and the chart directory assembled with them for `helm template`.
//!
//! With a `Chart.lock`, its versions are used after the same check helm makes: the lock's
//! `digest` must be the hash of `Chart.yaml`'s dependencies and the lock's, with `@alias` and
//! `alias:NAME` repositories replaced by the configured URL ([`lock_digest`], helm's
//! `resolver.HashReq`). Without one, each dependency's version constraint picks the newest
//! matching version. Conditions, tags, aliases and import-values are left to helm, which reads
//! them from `Chart.yaml` when it renders the assembled chart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::Error;
use crate::cache::sha256_hex;

/// One entry of `dependencies:` in `Chart.yaml` or `Chart.lock`, with the fields helm hashes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct Dependency {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub repository: Option<String>,
    #[serde(default)]
    pub condition: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default, rename = "import-values")]
    pub import_values: Option<Vec<Value>>,
    #[serde(default)]
    pub alias: Option<String>,
}

impl Dependency {
    pub(crate) fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    pub(crate) fn repository(&self) -> &str {
        self.repository.as_deref().unwrap_or_default().trim()
    }
}

#[derive(Deserialize)]
struct ChartYaml {
    #[serde(default)]
    dependencies: Option<Vec<Dependency>>,
}

#[derive(Deserialize)]
struct ChartLock {
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    dependencies: Option<Vec<Dependency>>,
}

/// A dependency to fetch: where from, and the version (a constraint, or the locked version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Needed {
    pub name: String,
    /// As `Chart.yaml` (or the lock) has it: a URL, `oci://…`, `@alias`, `alias:NAME`, `file://…`.
    pub repository: String,
    /// The version constraint, or the exact version from `Chart.lock`; empty: newest stable.
    pub version: String,
}

fn invalid(chart: &str, dependency: &str, reason: impl Into<String>) -> Error {
    Error::InvalidDependency {
        chart: chart.to_owned(),
        dependency: dependency.to_owned(),
        reason: reason.into(),
    }
}

/// The configured repository alias an `@alias` or `alias:NAME` repository names.
pub(crate) fn repository_alias(repository: &str) -> Option<&str> {
    repository
        .strip_prefix('@')
        .or_else(|| repository.strip_prefix("alias:"))
}

/// Which of `Chart.yaml`'s dependencies must be fetched for the chart unpacked at `dir`: those
/// with a repository and no subchart of their name under `charts/`. `aliases` maps configured
/// repository aliases to their URLs (for the `Chart.lock` check). Empty when nothing is missing.
pub(crate) fn needed(
    chart: &str,
    dir: &Path,
    aliases: &BTreeMap<String, String>,
) -> Result<Vec<Needed>, Error> {
    let chart_yaml = std::fs::read(dir.join("Chart.yaml")).map_err(|e| Error::cache(dir, e))?;
    let parsed: ChartYaml =
        serde_yaml_ng::from_slice(&chart_yaml).map_err(|e| Error::InvalidArchive {
            chart: chart.to_owned(),
            reason: format!("Chart.yaml dependencies: {e}"),
        })?;
    let Some(requested) = parsed.dependencies.filter(|d| !d.is_empty()) else {
        return Ok(Vec::new());
    };
    let vendored = vendored_names(&dir.join("charts"));
    let missing: Vec<&Dependency> = requested
        .iter()
        .filter(|d| !d.repository().is_empty() && !vendored.contains(d.name()))
        .collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    for dependency in &missing {
        if !crate::reference::valid_chart_name(dependency.name()) {
            return Err(invalid(chart, dependency.name(), "not a chart name"));
        }
    }
    let lock = match std::fs::read(dir.join("Chart.lock")) {
        Ok(text) => Some(serde_yaml_ng::from_slice::<ChartLock>(&text).map_err(|e| {
            Error::InvalidArchive {
                chart: chart.to_owned(),
                reason: format!("Chart.lock: {e}"),
            }
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::cache(dir.join("Chart.lock"), e)),
    };
    let Some(lock) = lock else {
        return Ok(missing
            .into_iter()
            .map(|d| Needed {
                name: d.name().to_owned(),
                repository: d.repository().to_owned(),
                version: d.version.clone().unwrap_or_default().trim().to_owned(),
            })
            .collect());
    };
    let expected = lock.digest.clone().unwrap_or_default();
    let actual = lock_digest(&requested, lock.dependencies.as_deref(), aliases);
    if expected != actual {
        return Err(Error::ChartLockOutOfSync {
            chart: chart.to_owned(),
            lock_digest: expected,
            dependencies_digest: actual,
        });
    }
    let locked = lock.dependencies.unwrap_or_default();
    missing
        .into_iter()
        .map(|d| {
            let entry = locked
                .iter()
                .find(|l| l.name() == d.name())
                .ok_or_else(|| invalid(chart, d.name(), "Chart.lock does not list it"))?;
            Ok(Needed {
                name: d.name().to_owned(),
                repository: entry.repository().to_owned(),
                version: entry.version.clone().unwrap_or_default().trim().to_owned(),
            })
        })
        .collect()
}

/// The names of the subcharts under `charts/`: directories with a `Chart.yaml` and `.tgz`
/// archives (named by their top-level directory, as helm names them when it loads them).
fn vendored_names(charts: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(charts) else {
        return names;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.join("Chart.yaml").is_file() {
            if let Ok(meta) = crate::archive::read_chart_yaml("subchart", &path) {
                names.insert(meta.name);
            }
        } else if path.extension().is_some_and(|e| e == "tgz")
            && let Ok(bytes) = std::fs::read(&path)
            && let Some(name) = crate::archive::top_level_name(&bytes)
        {
            names.insert(name);
        }
    }
    names
}

/// The digest `helm dependency build` expects in `Chart.lock`: sha256 of Go's JSON encoding of
/// `[requested, locked]`, with `@alias`/`alias:NAME` repositories of `requested` replaced by the
/// configured URL (as helm's `resolveRepoNames` does before hashing).
pub(crate) fn lock_digest(
    requested: &[Dependency],
    locked: Option<&[Dependency]>,
    aliases: &BTreeMap<String, String>,
) -> String {
    let resolved: Vec<Dependency> = requested
        .iter()
        .map(|d| {
            let mut d = d.clone();
            if let Some(url) = repository_alias(d.repository()).and_then(|a| aliases.get(a)) {
                d.repository = Some(url.clone());
            }
            d
        })
        .collect();
    let mut json = String::from("[");
    go_list(Some(&resolved), &mut json);
    json.push(',');
    go_list(locked, &mut json);
    json.push(']');
    format!("sha256:{}", sha256_hex(go_escape(&json).as_bytes()))
}

fn go_list(list: Option<&[Dependency]>, out: &mut String) {
    let Some(list) = list else {
        out.push_str("null");
        return;
    };
    out.push('[');
    for (i, d) in list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        go_dependency(d, out);
    }
    out.push(']');
}

/// One `chart.Dependency` as Go's `encoding/json` writes it: fields in the struct's order,
/// `omitempty` ones left out when empty.
fn go_dependency(d: &Dependency, out: &mut String) {
    let string = |s: &str| Value::String(s.to_owned()).to_string();
    let non_empty = |s: &Option<String>| s.as_deref().filter(|s| !s.is_empty()).map(string);
    let mut fields = vec![format!("\"name\":{}", string(d.name()))];
    if let Some(v) = non_empty(&d.version) {
        fields.push(format!("\"version\":{v}"));
    }
    fields.push(format!(
        "\"repository\":{}",
        string(d.repository.as_deref().unwrap_or_default())
    ));
    if let Some(v) = non_empty(&d.condition) {
        fields.push(format!("\"condition\":{v}"));
    }
    if let Some(tags) = d.tags.as_ref().filter(|t| !t.is_empty()) {
        let tags: Vec<String> = tags.iter().map(|t| string(t)).collect();
        fields.push(format!("\"tags\":[{}]", tags.join(",")));
    }
    if d.enabled == Some(true) {
        fields.push("\"enabled\":true".to_owned());
    }
    if let Some(values) = d.import_values.as_ref().filter(|v| !v.is_empty()) {
        let values: Vec<String> = values.iter().map(sorted_json).collect();
        fields.push(format!("\"import-values\":[{}]", values.join(",")));
    }
    if let Some(v) = non_empty(&d.alias) {
        fields.push(format!("\"alias\":{v}"));
    }
    out.push('{');
    out.push_str(&fields.join(","));
    out.push('}');
}

/// JSON with object keys sorted, as Go writes a map.
fn sorted_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            let fields: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), sorted_json(v)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(sorted_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// Go's `encoding/json` escapes `<`, `>`, `&`, U+2028 and U+2029 inside strings; they can only
/// occur inside strings here, so replacing them everywhere is the same.
fn go_escape(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Where a `file://PATH` dependency of a chart is: relative to the chart's own directory
/// (`base`), which must hold it; `roots` are the directories it may resolve into (the chart
/// itself for a chart from a repository, the local chart roots for a `file:` chart).
pub(crate) fn local_dependency(
    chart: &str,
    dependency: &str,
    repository: &str,
    base: &Path,
    roots: &[PathBuf],
) -> Result<PathBuf, Error> {
    let path = repository.strip_prefix("file://").unwrap_or(repository);
    let joined = base.join(path);
    let real = joined.canonicalize().map_err(|e| {
        invalid(
            chart,
            dependency,
            format!("{repository}: no chart there ({e})"),
        )
    })?;
    if !roots.iter().any(|root| real.starts_with(root)) {
        return Err(invalid(
            chart,
            dependency,
            format!(
                "{repository} leads outside {}",
                if roots.len() == 1 && roots[0] == base {
                    "the chart (a chart from a repository can only hold file:// dependencies inside itself)"
                } else {
                    "every local chart root (localRoots)"
                }
            ),
        ));
    }
    Ok(real)
}

/// A fetched dependency to put into the assembled chart's `charts/`.
pub(crate) struct Inserted {
    pub name: String,
    pub version: String,
    /// Its archive in the cache, when there (copied as `NAME-VERSION.tgz`, as helm does).
    pub archive: Option<PathBuf>,
    /// Its unpacked directory in the cache (copied when the archive is not there).
    pub dir: PathBuf,
}

/// The digest of a chart together with the dependencies put into it: what identifies the
/// assembled directory and the renders made from it.
pub(crate) fn assembled_hex(base_hex: &str, dependencies: &[(String, String)]) -> String {
    let mut text = format!("chart {base_hex}\n");
    let mut sorted: Vec<&(String, String)> = dependencies.iter().collect();
    sorted.sort();
    for (name, digest) in sorted {
        text.push_str(&format!("dependency {name} {digest}\n"));
    }
    sha256_hex(text.as_bytes())
}

/// Builds `dest` (which must not exist) as a copy of the chart at `base` with `dependencies`
/// added under `charts/`, staged in `tmp` and renamed into place.
pub(crate) fn assemble(
    tmp: &Path,
    base: &Path,
    dependencies: &[Inserted],
    dest: &Path,
) -> Result<(), Error> {
    let work = tempfile::Builder::new()
        .prefix("assemble-")
        .tempdir_in(tmp)
        .map_err(|e| Error::cache(tmp, e))?;
    let staged = work.path().join("chart");
    copy_tree(base, &staged)?;
    let charts = staged.join("charts");
    std::fs::create_dir_all(&charts).map_err(|e| Error::cache(&charts, e))?;
    for dependency in dependencies {
        let stem = format!("{}-{}", dependency.name, dependency.version);
        match &dependency.archive {
            Some(archive) => {
                let target = charts.join(format!("{stem}.tgz"));
                std::fs::copy(archive, &target).map_err(|e| Error::cache(&target, e))?;
            }
            None => copy_tree(&dependency.dir, &charts.join(stem))?,
        }
    }
    match std::fs::rename(&staged, dest) {
        Ok(()) => Ok(()),
        // Another fetch assembled the same content first.
        Err(_) if dest.is_dir() => Ok(()),
        Err(e) => Err(Error::cache(dest, e)),
    }
}

/// Copies a chart directory of the cache, links as links (they were checked at unpacking).
fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::create_dir(to).map_err(|e| Error::cache(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::cache(from, e))? {
        let entry = entry.map_err(|e| Error::cache(from, e))?;
        let kind = entry
            .file_type()
            .map_err(|e| Error::cache(entry.path(), e))?;
        let target = to.join(entry.file_name());
        if kind.is_symlink() {
            let link =
                std::fs::read_link(entry.path()).map_err(|e| Error::cache(entry.path(), e))?;
            let link = link.to_str().ok_or_else(|| {
                Error::cache(
                    entry.path(),
                    std::io::Error::other("link target is not UTF-8"),
                )
            })?;
            crate::archive::make_symlink(link, &target)?;
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(|e| Error::cache(&target, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;

    fn chart(dir: &Path, chart_yaml: &str, lock: Option<&str>) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("Chart.yaml"), chart_yaml).unwrap();
        if let Some(lock) = lock {
            std::fs::write(dir.join("Chart.lock"), lock).unwrap();
        }
    }

    const WITH_DEPENDENCIES: &str = "apiVersion: v2
name: app
version: 0.1.0
dependencies:
  - name: db
    version: ~1.0.0
    repository: '@parity-deps'
    alias: database
  - name: cache
    version: ^2
    repository: https://charts.example.com/stable
    condition: cache.enabled
    tags: [backend]
  - name: common
    version: 1.x
    repository: ''
";

    fn aliases() -> BTreeMap<String, String> {
        BTreeMap::from([("parity-deps".to_owned(), "http://127.0.0.1:8879".to_owned())])
    }

    #[test]
    fn dependencies_without_a_lock_use_their_constraints_and_vendored_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        chart(dir.path(), WITH_DEPENDENCIES, None);
        let charts = dir.path().join("charts/cache");
        chart(
            &charts,
            "apiVersion: v2\nname: cache\nversion: 2.0.0\n",
            None,
        );
        let needed = needed("app", dir.path(), &aliases()).unwrap();
        assert_eq!(
            needed,
            vec![Needed {
                name: "db".into(),
                repository: "@parity-deps".into(),
                version: "~1.0.0".into(),
            }],
            "cache is vendored and common has no repository: helm finds them in charts/"
        );
    }

    #[test]
    fn a_chart_lock_in_sync_gives_its_versions() {
        let dir = tempfile::tempdir().unwrap();
        let requested: ChartYaml = serde_yaml_ng::from_str(WITH_DEPENDENCIES).unwrap();
        let locked: Vec<Dependency> = serde_yaml_ng::from_str(
            "- {name: db, repository: 'http://127.0.0.1:8879', version: 1.0.3}
- {name: cache, repository: 'https://charts.example.com/stable', version: 2.4.0}
- {name: common, repository: '', version: 1.2.0}",
        )
        .unwrap();
        let digest = lock_digest(
            requested.dependencies.as_deref().unwrap(),
            Some(&locked),
            &aliases(),
        );
        let lock = format!(
            "dependencies:
- name: db
  repository: http://127.0.0.1:8879
  version: 1.0.3
- name: cache
  repository: https://charts.example.com/stable
  version: 2.4.0
- name: common
  repository: ''
  version: 1.2.0
digest: {digest}
generated: \"2026-12-07T09:00:00Z\"
"
        );
        chart(dir.path(), WITH_DEPENDENCIES, Some(&lock));
        let needed = needed("app", dir.path(), &aliases()).unwrap();
        assert_eq!(
            needed
                .iter()
                .map(|n| (n.name.as_str(), n.version.as_str(), n.repository.as_str()))
                .collect::<Vec<_>>(),
            vec![
                ("db", "1.0.3", "http://127.0.0.1:8879"),
                ("cache", "2.4.0", "https://charts.example.com/stable"),
            ]
        );
    }

    #[test]
    fn a_chart_lock_out_of_sync_with_chart_yaml_is_refused_naming_both_digests() {
        let dir = tempfile::tempdir().unwrap();
        let lock = "dependencies:
- {name: db, repository: 'http://127.0.0.1:8879', version: 1.0.3}
digest: sha256:0000000000000000000000000000000000000000000000000000000000000000
";
        chart(dir.path(), WITH_DEPENDENCIES, Some(lock));
        let error = needed("app", dir.path(), &aliases()).unwrap_err();
        assert!(matches!(error, Error::ChartLockOutOfSync { .. }), "{error}");
        let text = error.to_string();
        assert!(
            text.contains("\"app\"") && text.contains("sha256:0000"),
            "{text}"
        );
        assert!(text.contains("helm dependency update"), "{text}");
    }

    #[test]
    fn the_lock_digest_is_helms_hash_of_go_json() {
        // Computed by helm v4.3.1 (`helm dependency update`) for this Chart.yaml and lock.
        let requested: Vec<Dependency> = serde_yaml_ng::from_str(
            "- {name: remote-db, version: ~1.0.0, repository: '@parity-deps', alias: db}
- {name: remote-cache, version: ^1.0.0, repository: '@parity-deps', condition: cache.enabled}",
        )
        .unwrap();
        let locked: Vec<Dependency> = serde_yaml_ng::from_str(
            "- {name: remote-db, repository: 'http://127.0.0.1:8879', version: 1.0.1}
- {name: remote-cache, repository: 'http://127.0.0.1:8879', version: 1.1.0}",
        )
        .unwrap();
        let aliases =
            BTreeMap::from([("parity-deps".to_owned(), "http://127.0.0.1:8879".to_owned())]);
        assert_eq!(
            lock_digest(&requested, Some(&locked), &aliases),
            HELM_DIGEST
        );
    }

    /// See `the_lock_digest_is_helms_hash_of_go_json`.
    const HELM_DIGEST: &str =
        "sha256:329dc1c71dd5bf7f0be1800f1890d0dac9f86423a89ae029b007bf2e2744482a";

    #[test]
    fn go_json_escapes_html_characters_like_encoding_json() {
        assert_eq!(go_escape(r#"{"a":"<&>"}"#), r#"{"a":"\u003c\u0026\u003e"}"#);
    }

    #[test]
    fn file_dependencies_resolve_relative_to_the_chart_and_stay_inside_the_roots() {
        let root = tempfile::tempdir().unwrap();
        let root_path = root.path().canonicalize().unwrap();
        let app = root_path.join("app");
        chart(&app, "apiVersion: v2\nname: app\nversion: 0.1.0\n", None);
        chart(
            &root_path.join("lib"),
            "apiVersion: v2\nname: lib\nversion: 0.1.0\n",
            None,
        );
        let found = local_dependency(
            "app",
            "lib",
            "file://../lib",
            &app,
            std::slice::from_ref(&root_path),
        )
        .unwrap();
        assert_eq!(found, root_path.join("lib"));
        let refused = local_dependency(
            "app",
            "lib",
            "file://../lib",
            &app,
            std::slice::from_ref(&app),
        )
        .unwrap_err();
        assert!(
            refused.to_string().contains("leads outside the chart"),
            "{refused}"
        );
        let missing = local_dependency("app", "x", "file://../x", &app, &[root_path]).unwrap_err();
        assert!(missing.to_string().contains("no chart there"), "{missing}");
    }

    #[test]
    fn the_assembled_digest_depends_on_every_dependency_but_not_their_order() {
        let a = assembled_hex(
            "base",
            &[("x".into(), "1".into()), ("y".into(), "2".into())],
        );
        let b = assembled_hex(
            "base",
            &[("y".into(), "2".into()), ("x".into(), "1".into())],
        );
        let c = assembled_hex(
            "base",
            &[("x".into(), "1".into()), ("y".into(), "3".into())],
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
