//! Writes every artefact generated from the API types: the CRDs into `crds/` and into the
//! operators' chart (`charts/upstart-operators/crds/`, Helm's CRD directory), and the CRD
//! reference `docs/reference/crds.md`. The first argument is the root to write under (default:
//! the workspace root); the tests run it into a scratch root and compare.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// Where the CRDs go, relative to the root: the canonical copy and the chart's.
const CRD_DIRS: [&str; 2] = ["crds", "charts/upstart-operators/crds"];
/// Where the reference goes, relative to the root.
const REFERENCE: &str = "docs/reference/crds.md";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."));
    let crds = upstart_api::crd::crds();
    for dir in CRD_DIRS {
        let dir = root.join(dir);
        std::fs::create_dir_all(&dir)?;
        for crd in &crds {
            write(
                &dir.join(upstart_api::crd::file_name(crd)),
                &upstart_api::crd::to_yaml(crd)?,
            )?;
        }
    }
    let reference = root.join(REFERENCE);
    if let Some(parent) = reference.parent() {
        std::fs::create_dir_all(parent)?;
    }
    write(&reference, &reference_markdown(&crds))?;
    Ok(())
}

fn write(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The CRD reference: per kind, every field with its type, constraints and description, as the
/// generated schema states them (so the reference cannot say more than the API server checks).
fn reference_markdown(crds: &[CustomResourceDefinition]) -> String {
    let mut out = String::new();
    out.push_str(
        "<!-- Generated from crates/api by `cargo run -p upstart-api --bin crdgen`. Do not edit. -->\n\
         # CRD reference\n\n\
         The custom resources of the Upstart operators, generated from the OpenAPI schemas of the \
         CRDs in `crds/` (the same files the `upstart-operators` chart installs). Field paths use \
         `[]` for list items and `<key>` for map values. *Required* fields must be set; \
         constraints are enforced by the API server.\n\n",
    );
    for crd in crds {
        let kind = &crd.spec.names.kind;
        let _ = writeln!(out, "- [{kind}](#{})", kind.to_lowercase());
    }
    out.push('\n');
    for crd in crds {
        kind_section(&mut out, crd);
    }
    out
}

fn kind_section(out: &mut String, crd: &CustomResourceDefinition) {
    let names = &crd.spec.names;
    let _ = writeln!(out, "## {}\n", names.kind);
    for version in &crd.spec.versions {
        let _ = writeln!(
            out,
            "- API version: `{}/{}`\n- Scope: {}\n- Plural: `{}`{}\n",
            crd.spec.group,
            version.name,
            crd.spec.scope,
            names.plural,
            names
                .short_names
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| format!(
                    "; short names: {}",
                    s.iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .unwrap_or_default()
        );
        if let Some(columns) = version
            .additional_printer_columns
            .as_ref()
            .filter(|c| !c.is_empty())
        {
            let _ = writeln!(
                out,
                "`kubectl get` columns: {}.\n",
                columns
                    .iter()
                    .map(|c| format!("{} (`{}`)", c.name, c.json_path))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let Some(root) = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
        else {
            continue;
        };
        if let Some(description) = &root.description {
            let _ = writeln!(out, "{}\n", one_line(description));
        }
        rules_section(out, root, "");
        let properties = root.properties.as_ref();
        for part in ["spec", "status"] {
            let Some(schema) = properties.and_then(|p| p.get(part)) else {
                continue;
            };
            let _ = writeln!(out, "### {} `.{part}`\n", names.kind);
            if let Some(description) = &schema.description {
                let _ = writeln!(out, "{}\n", one_line(description));
            }
            rules_section(out, schema, part);
            out.push_str("| Field | Type | Description |\n|---|---|---|\n");
            let mut rows = Vec::new();
            fields(schema, part, &mut rows);
            for row in rows {
                out.push_str(&row);
            }
            out.push('\n');
        }
    }
}

/// The CEL rules of a schema node, as a list (their messages are what users see).
fn rules_section(out: &mut String, schema: &JSONSchemaProps, path: &str) {
    let Some(rules) = schema
        .x_kubernetes_validations
        .as_ref()
        .filter(|r| !r.is_empty())
    else {
        return;
    };
    let at = if path.is_empty() {
        "the object".to_owned()
    } else {
        format!("`.{path}`")
    };
    let _ = writeln!(out, "Validation rules on {at}:\n");
    for rule in rules {
        let _ = writeln!(
            out,
            "- {} (`{}`)",
            rule.message.as_deref().map(one_line).unwrap_or_default(),
            rule.rule.replace('`', "'")
        );
    }
    out.push('\n');
}

/// One table row per field below `schema`, depth first, in the schema's (sorted) order.
fn fields(schema: &JSONSchemaProps, path: &str, rows: &mut Vec<String>) {
    let required: &[String] = schema.required.as_deref().unwrap_or_default();
    for (name, child) in schema.properties.iter().flatten() {
        let child_path = format!("{path}.{name}");
        let mut description = child
            .description
            .as_deref()
            .map(one_line)
            .unwrap_or_default();
        let constraints = constraints(child);
        if !constraints.is_empty() {
            if !description.is_empty() {
                description.push(' ');
            }
            let _ = write!(description, "_{}_", constraints.join("; "));
        }
        let mark = if required.contains(name) {
            " *(required)*"
        } else {
            ""
        };
        rows.push(format!(
            "| `{}`{mark} | {} | {} |\n",
            child_path,
            type_name(child),
            escape_cell(&description)
        ));
        descend(child, &child_path, rows);
    }
}

/// Recurses into objects, list items and map values.
fn descend(schema: &JSONSchemaProps, path: &str, rows: &mut Vec<String>) {
    if schema.properties.is_some() {
        fields(schema, path, rows);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = &schema.items {
        descend(items, &format!("{path}[]"), rows);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = &schema.additional_properties {
        descend(values, &format!("{path}.<key>"), rows);
    }
}

fn type_name(schema: &JSONSchemaProps) -> String {
    if schema.x_kubernetes_int_or_string == Some(true) {
        return "integer or string".to_owned();
    }
    let base = schema.type_.as_deref().unwrap_or("any");
    let name = match base {
        "array" => match &schema.items {
            Some(JSONSchemaPropsOrArray::Schema(items)) => format!("list of {}", type_name(items)),
            _ => "list".to_owned(),
        },
        "object" => match &schema.additional_properties {
            Some(JSONSchemaPropsOrBool::Schema(values)) => {
                format!("map of {}", type_name(values))
            }
            _ if schema.x_kubernetes_preserve_unknown_fields == Some(true) => {
                "object (free-form)".to_owned()
            }
            _ => "object".to_owned(),
        },
        _ if schema.x_kubernetes_preserve_unknown_fields == Some(true) => "any".to_owned(),
        other => match &schema.format {
            Some(format) => format!("{other} ({format})"),
            None => other.to_owned(),
        },
    };
    if schema.nullable == Some(true) && base != "any" {
        format!("{name}, nullable")
    } else {
        name
    }
}

/// The checks of a field beyond its type: enum values, lengths, ranges, patterns, CEL rules.
fn constraints(schema: &JSONSchemaProps) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(values) = &schema.enum_ {
        let values: Vec<String> = values
            .iter()
            .filter(|v| !v.0.is_null())
            .map(|v| match v.0.as_str() {
                Some(s) => format!("`{s}`"),
                None => format!("`{}`", v.0),
            })
            .collect();
        out.push(format!("one of {}", values.join(", ")));
    }
    if let Some(min) = schema.min_length {
        out.push(format!("min length {min}"));
    }
    if let Some(max) = schema.max_length {
        out.push(format!("max length {max}"));
    }
    if let Some(min) = schema.minimum {
        out.push(format!("minimum {min}"));
    }
    if let Some(max) = schema.maximum {
        out.push(format!("maximum {max}"));
    }
    if let Some(min) = schema.min_items {
        out.push(format!("min items {min}"));
    }
    if let Some(max) = schema.max_items {
        out.push(format!("max items {max}"));
    }
    if let Some(max) = schema.max_properties {
        out.push(format!("max entries {max}"));
    }
    if let Some(pattern) = &schema.pattern {
        out.push(format!("pattern `{}`", pattern.replace('`', "'")));
    }
    for rule in schema.x_kubernetes_validations.iter().flatten() {
        out.push(format!(
            "rule: {}",
            rule.message
                .as_deref()
                .map(one_line)
                .unwrap_or_else(|| rule.rule.clone())
        ));
    }
    out
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Table cells cannot hold `|` or line breaks.
fn escape_cell(text: &str) -> String {
    text.replace('|', "\\|")
}
