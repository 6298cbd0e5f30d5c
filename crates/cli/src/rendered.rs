//! `upstart validate --render`: every release of the files rendered with helm, offline, and the
//! objects that two releases of one namespace would both create reported as errors naming both
//! owners (the HelmRelease operator refuses the second apply as a conflict).
//!
//! Charts come from a local directory served as `upstart-charts` (as `upstart dev --charts`
//! serves it) or from `file:` references; expressions are replaced by a placeholder, since
//! outputs exist only in a cluster (object names seldom depend on them).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;
use upstart_release_engine::manifests::{Limits, parse_documents};

use crate::diagnostic::{Diagnostic, Severity};
use crate::model::{Scope, ScopeRelease, Workspace};

/// The repository alias a charts directory stands for, as in `upstart dev`.
pub const LOCAL_REPOSITORY: &str = "upstart-charts";

/// What stands in for an expression's value in a render.
const PLACEHOLDER: &str = "upstart-validate-placeholder";

/// Where charts and helm come from.
#[derive(Clone, Debug)]
pub struct RenderOptions {
    /// The directory served as `upstart-charts`: `upstart-charts/NAME` is `DIR/NAME`.
    pub charts: PathBuf,
    /// The helm binary.
    pub helm: PathBuf,
}

/// An object a render creates, by kind and name.
type ObjectKey = (String, String);

/// Renders each release of each scope and reports objects rendered by two releases.
pub fn check_rendered(workspace: &Workspace, options: &RenderOptions, out: &mut Vec<Diagnostic>) {
    for scope in &workspace.scopes {
        let mut owners: BTreeMap<ObjectKey, String> = BTreeMap::new();
        for release in scope.releases.values() {
            let objects = match render(scope, release, options) {
                Ok(objects) => objects,
                Err(problem) => {
                    out.push(about(workspace, release, problem.severity, problem.message));
                    continue;
                }
            };
            for (kind, name) in objects {
                match owners.get(&(kind.clone(), name.clone())) {
                    Some(first) if *first != release.label => out.push(about(
                        workspace,
                        release,
                        Severity::Error,
                        format!(
                            "renders {kind}/{name}, which {first} renders too (in {}): the second to apply is refused as a conflict; give one of them values that name it differently (most charts name their objects after the release)",
                            scope.title
                        ),
                    )),
                    Some(_) => {}
                    None => {
                        owners.insert((kind, name), release.label.clone());
                    }
                }
            }
        }
    }
}

struct Problem {
    severity: Severity,
    message: String,
}

fn about(
    workspace: &Workspace,
    release: &ScopeRelease,
    severity: Severity,
    message: String,
) -> Diagnostic {
    crate::validate::about_release(workspace, release, &release.origin.path, severity, message)
}

/// The chart directory of a reference, when it is one this check can read offline.
fn chart_dir(chart: &str, options: &RenderOptions) -> Result<PathBuf, Problem> {
    let dir = if let Some(path) = chart.strip_prefix("file:") {
        PathBuf::from(path)
    } else if let Some(name) = chart
        .strip_prefix(LOCAL_REPOSITORY)
        .and_then(|rest| rest.strip_prefix('/'))
    {
        options.charts.join(name)
    } else {
        return Err(Problem {
            severity: Severity::Warning,
            message: format!(
                "not rendered: chart {chart} is neither {LOCAL_REPOSITORY}/NAME (read from {}) nor file:PATH",
                options.charts.display()
            ),
        });
    };
    if dir.join("Chart.yaml").is_file() {
        Ok(dir)
    } else {
        Err(Problem {
            severity: Severity::Error,
            message: format!(
                "chart {chart}: no chart directory at {} (pass --charts DIR)",
                dir.display()
            ),
        })
    }
}

/// The kinds and names of the objects one release renders.
fn render(
    scope: &Scope,
    release: &ScopeRelease,
    options: &RenderOptions,
) -> Result<Vec<ObjectKey>, Problem> {
    let dir = chart_dir(&release.spec.chart, options)?;
    let values = release
        .spec
        .values
        .as_ref()
        .map(without_expressions)
        .unwrap_or_else(|| Value::Object(Default::default()));
    let failed = |message: String| Problem {
        severity: Severity::Error,
        message,
    };
    let mut file = tempfile::NamedTempFile::new()
        .map_err(|e| failed(format!("writing the values for helm: {e}")))?;
    serde_json::to_writer(&mut file, &values)
        .map_err(|e| failed(format!("writing the values for helm: {e}")))?;
    let output = Command::new(&options.helm)
        .arg("template")
        .arg(crate::validate::effective_release_name(release))
        .arg(&dir)
        .arg("--namespace")
        .arg(scope_namespace(scope))
        .arg("--values")
        .arg(file.path())
        .output()
        .map_err(|e| failed(format!("running {}: {e}", options.helm.display())))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        return Err(failed(format!(
            "helm template of {} failed: {first}",
            release.spec.chart
        )));
    }
    let manifest = String::from_utf8_lossy(&output.stdout);
    let documents = parse_documents(&manifest, &Limits::default())
        .map_err(|e| failed(format!("the render of {}: {e}", release.spec.chart)))?;
    Ok(documents
        .iter()
        .filter_map(|d| {
            let kind = d.object.get("kind")?.as_str()?;
            let name = d.object.pointer("/metadata/name")?.as_str()?;
            Some((kind.to_owned(), name.to_owned()))
        })
        .collect())
}

/// The namespace a scope's releases render into (`.Release.Namespace`): `default` for the
/// current one, as kubectl's default context has it.
fn scope_namespace(scope: &Scope) -> &str {
    if scope.namespace.is_empty() {
        "default"
    } else {
        &scope.namespace
    }
}

/// The values with every `<< expression >>` replaced by a placeholder string.
fn without_expressions(values: &Value) -> Value {
    static EXPRESSION: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"<<.*?>>").expect("a valid pattern"));
    match values {
        Value::String(s) => Value::String(EXPRESSION.replace_all(s, PLACEHOLDER).into_owned()),
        Value::Array(items) => Value::Array(items.iter().map(without_expressions).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), without_expressions(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn expressions_become_placeholders_and_the_rest_stays() {
        let values = json!({
            "env": {"URL": "postgres://<< postgres.outputs.USER >>@<< postgres.outputs.HOST >>:5432"},
            "list": ["<< a.outputs.B >>", 3],
            "plain": "text",
        });
        assert_eq!(
            without_expressions(&values),
            json!({
                "env": {"URL": format!("postgres://{PLACEHOLDER}@{PLACEHOLDER}:5432")},
                "list": [PLACEHOLDER, 3],
                "plain": "text",
            })
        );
    }
}
