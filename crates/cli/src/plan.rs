//! `upstart plan`: what would happen if the files were applied — which releases install
//! together and in which order, what each waits for, which outputs it reads and what it
//! publishes.

use std::fmt::Write as _;
use std::path::PathBuf;

use upstart_api::v1alpha1::{HelmReleaseSpec, OutputScope};
use upstart_dag::{Expressions, NodeId, NodeKind};

use crate::model::{Scope, ScopeRelease};
use crate::render::{BOLD, DIM, ERROR, WARNING, styled};
use crate::validate::{Checked, check_files_with, consumed, declared_keys};

/// Arguments of `upstart plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// YAML files holding UpstartServices, HelmReleases and UpstartEnvironments; a directory
    /// stands for the YAML files under it.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// Sets the environment variable NAME to VALUE in every UpstartEnvironment of the files
    /// (over its `spec.variables`): `enabled` expressions are evaluated with it. Repeatable.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = crate::validate::parse_var)]
    pub vars: Vec<(String, String)>,
}

/// Prints the diagnostics of `checked` on stderr; true when there is an error (the plan of
/// files that do not validate would be a guess).
pub fn report_errors(checked: &Checked) -> bool {
    for diagnostic in &checked.diagnostics {
        anstream::eprintln!("{}", crate::render::diagnostic(diagnostic));
    }
    if checked.has_errors() {
        anstream::eprintln!(
            "the files have errors: fix them first (`upstart validate` lists them)"
        );
    }
    checked.has_errors()
}

/// Runs `upstart plan`; false when the files have errors.
pub fn run(args: &PlanArgs) -> bool {
    let checked = check_files_with(&args.files, &args.vars);
    if report_errors(&checked) {
        return false;
    }
    let expressions = Expressions::new();
    let text: Vec<String> = checked
        .workspace
        .scopes
        .iter()
        .map(|scope| plan(scope, &expressions))
        .collect();
    anstream::print!("{}", text.join("\n"));
    true
}

/// `Secret/db (USER, PASSWORD)`, `ConfigMap/out (all keys, external)`.
fn publishes(spec: &HelmReleaseSpec) -> Vec<String> {
    spec.outputs_from
        .iter()
        .filter_map(|source| {
            let (kind, reference) = match (&source.secret_ref, &source.config_map_ref) {
                (Some(r), _) => ("Secret", r),
                (None, Some(r)) => ("ConfigMap", r),
                (None, None) => return None,
            };
            let mut notes = vec![match &source.keys {
                Some(keys) => keys.join(", "),
                None => "all keys".to_owned(),
            }];
            if source.scope == OutputScope::External {
                notes.push("external".to_owned());
            }
            if source.optional {
                notes.push("optional".to_owned());
            }
            Some(format!("{kind}/{} ({})", reference.name, notes.join("; ")))
        })
        .collect()
}

fn release_lines(
    out: &mut String,
    scope: &Scope,
    release: &ScopeRelease,
    expressions: &Expressions,
) {
    let chart = match &release.spec.version {
        Some(version) => format!("{} {version}", release.spec.chart),
        None => release.spec.chart.clone(),
    };
    let _ = writeln!(
        out,
        "  {}  {}",
        styled(BOLD, &release.label),
        styled(DIM, &chart)
    );
    let waits: Vec<String> = scope
        .graph
        .dependencies(&release.node)
        .iter()
        .map(|d| {
            let label = scope.graph.label(&d.target).unwrap_or(&d.target.name);
            let kind = match d.target.kind {
                NodeKind::UpstartService => " (UpstartService)",
                NodeKind::HelmRelease => "",
            };
            if d.alias == d.name && label.rsplit('/').next() == Some(d.name.as_str()) {
                format!("{label}{kind}")
            } else {
                format!("{label}{kind} as {}", d.alias)
            }
        })
        .chain(
            scope
                .graph
                .unresolved(&release.node)
                .iter()
                .map(|name| styled(WARNING, &format!("{name} (not among the files)"))),
        )
        .collect();
    if !waits.is_empty() {
        let _ = writeln!(out, "      waits for: {}", waits.join(", "));
    }
    let reads: Vec<String> = consumed(expressions, release)
        .into_iter()
        .map(|r| format!("{}.outputs.{}", r.alias, r.key))
        .collect();
    if !reads.is_empty() {
        let _ = writeln!(out, "      consumes:  {}", reads.join(", "));
    }
    let published = publishes(&release.spec);
    if !published.is_empty() {
        let _ = writeln!(out, "      publishes: {}", published.join(", "));
    }
}

fn service_line(out: &mut String, scope: &Scope, service: &NodeId) {
    let releases = scope.graph.depends_on(service);
    let mut exports = Vec::new();
    let mut all_known = true;
    for release in &releases {
        match scope
            .releases
            .get(release)
            .map(|r| declared_keys(&r.spec, true))
        {
            Some(Some(keys)) => exports.extend(keys),
            _ => all_known = false,
        }
        if let Some(r) = scope.releases.get(release)
            && r.spec
                .outputs_from
                .iter()
                .any(|s| s.scope == OutputScope::External && s.keys.is_none())
        {
            exports.push(format!("all keys of {}", publishes_external(&r.spec)));
        }
    }
    let exports = if exports.is_empty() && all_known {
        "nothing".to_owned()
    } else {
        exports.join(", ")
    };
    let _ = writeln!(
        out,
        "  {}  {}",
        styled(BOLD, &format!("UpstartService {}", service.name)),
        styled(
            DIM,
            &format!(
                "Ready when its {} release(s) are; exports {exports}",
                releases.len()
            )
        )
    );
}

fn publishes_external(spec: &HelmReleaseSpec) -> String {
    spec.outputs_from
        .iter()
        .filter(|s| s.scope == OutputScope::External && s.keys.is_none())
        .filter_map(|s| {
            s.secret_ref
                .as_ref()
                .map(|r| format!("Secret/{}", r.name))
                .or_else(|| {
                    s.config_map_ref
                        .as_ref()
                        .map(|r| format!("ConfigMap/{}", r.name))
                })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The plan of one namespace, as text.
pub fn plan(scope: &Scope, expressions: &Expressions) -> String {
    let ordering = scope.graph.ordering();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        styled(
            BOLD,
            &format!(
                "Plan for {}: {} release(s), {} level(s)",
                scope.title,
                scope.releases.len(),
                ordering.install_levels.len()
            )
        )
    );
    for (level, nodes) in ordering.install_levels.iter().enumerate() {
        let heading = if level == 0 {
            "Level 1: installs at once".to_owned()
        } else {
            format!("Level {}: installs once level {level} is Ready", level + 1)
        };
        let _ = writeln!(out, "{}", styled(BOLD, &heading));
        let mut releases: Vec<&ScopeRelease> =
            nodes.iter().filter_map(|n| scope.releases.get(n)).collect();
        releases.sort_by(|a, b| a.label.cmp(&b.label));
        for release in releases {
            release_lines(&mut out, scope, release, expressions);
        }
        for service in nodes.iter().filter(|n| n.kind == NodeKind::UpstartService) {
            service_line(&mut out, scope, service);
        }
    }
    if !ordering.blocked.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            styled(ERROR, "Never installed (on or behind a dependency cycle):")
        );
        for node in &ordering.blocked {
            let _ = writeln!(out, "  {}", scope.graph.label(node).unwrap_or(&node.name));
        }
        for cycle in &ordering.cycles {
            let _ = writeln!(out, "  cycle: {cycle}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::parse;
    use crate::validate::check;

    #[test]
    fn levels_list_waits_reads_and_outputs() {
        let yaml = "apiVersion: upstartoperators.upstart.com/v1alpha1
kind: UpstartService
metadata: {name: s}
spec:
  helmReleases:
    db: {chart: r/db, version: 1.0.0, outputsFrom: [{secretRef: {name: db}, keys: [USER]}]}
    app:
      chart: r/app
      dependencies: [{name: db, as: database}]
      values: {url: '<< database.outputs.USER >>'}
      outputsFrom: [{configMapRef: {name: out}, scope: external}]
";
        let checked = check(parse("t.yaml", yaml).expect("YAML"));
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        let text =
            anstream::adapter::strip_str(&plan(&checked.workspace.scopes[0], &Expressions::new()))
                .to_string();
        let expected = "Plan for the current namespace: 2 release(s), 3 level(s)
Level 1: installs at once
  s/db  r/db 1.0.0
      publishes: Secret/db (USER)
Level 2: installs once level 1 is Ready
  s/app  r/app
      waits for: s/db as database
      consumes:  database.outputs.USER
      publishes: ConfigMap/out (all keys; external)
Level 3: installs once level 2 is Ready
  UpstartService s  Ready when its 2 release(s) are; exports all keys of ConfigMap/out
";
        assert_eq!(text, expected);
    }
}
