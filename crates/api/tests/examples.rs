//! Every example and the original write-up's UpstartService are accepted by the types and the
//! generated schema; each invalid document is refused with a message naming its field.

use std::path::{Path, PathBuf};

use serde_json::Value;
use upstart_api::v1alpha1::{HelmRelease, UpstartEnvironment, UpstartService};
use upstart_crd_validation::{CompiledSchema, invalid_error_message, qualified_kind};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Every document of a YAML file, as JSON.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            <Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

/// What the API server would answer for this document: `Ok` or the 422 message.
fn admit(document: &Value, old: Option<&Value>) -> Result<(), String> {
    let kind = document["kind"].as_str().expect("document has a kind");
    let crd = upstart_api::crd::crds()
        .into_iter()
        .find(|crd| crd.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for kind {kind}"));
    let schema = upstart_crd_validation::schema_for_version(&crd, upstart_api::VERSION)
        .expect("schema of the served version");
    let mut object = document.clone();
    let admission = CompiledSchema::new(&schema).admit(&mut object, old);
    let name = document["metadata"]["name"].as_str().unwrap_or_default();
    if admission.errors.is_empty() {
        Ok(())
    } else {
        Err(invalid_error_message(
            &qualified_kind(&crd),
            name,
            &admission.errors,
        ))
    }
}

/// Deserialises into the typed resource, as the operators will.
fn deserialize_typed(document: &Value) -> Result<(), String> {
    let result = match document["kind"].as_str() {
        Some("HelmRelease") => serde_json::from_value::<HelmRelease>(document.clone()).map(drop),
        Some("UpstartService") => {
            serde_json::from_value::<UpstartService>(document.clone()).map(drop)
        }
        Some("UpstartEnvironment") => {
            serde_json::from_value::<UpstartEnvironment>(document.clone()).map(drop)
        }
        other => return Err(format!("unexpected kind {other:?}")),
    };
    result.map_err(|e| e.to_string())
}

fn assert_accepted(path: &Path) {
    let docs = documents(path);
    assert!(!docs.is_empty(), "{} holds no document", path.display());
    for document in docs {
        deserialize_typed(&document).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        admit(&document, None).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn every_example_deserializes_and_passes_the_generated_schema() {
    // examples/broken holds files that are wrong on purpose (`upstart validate`'s tests).
    let broken = workspace_root().join("examples").join("broken");
    let files: Vec<PathBuf> = yaml_files(&workspace_root().join("examples"))
        .into_iter()
        .filter(|path| !path.starts_with(&broken))
        .collect();
    assert!(files.len() >= 4, "expected the examples, found {files:?}");
    for path in files {
        assert_accepted(&path);
    }
}

/// The original write-up's UpstartService lives outside the repository (CI passes its folder in
/// `UPSTART_FIXTURES_DIR`; next to a checkout it is `../shared/fixtures`).
#[test]
fn the_write_up_upstart_service_is_accepted_unchanged() {
    let dir = match std::env::var_os("UPSTART_FIXTURES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("../shared/fixtures"),
    };
    let path = dir.join("writeup-upstart-service.yaml");
    if std::env::var_os("UPSTART_FIXTURES_DIR").is_none() && !path.exists() {
        eprintln!(
            "skipping: {} not found and UPSTART_FIXTURES_DIR unset",
            path.display()
        );
        return;
    }
    assert_accepted(&path);
    let service: UpstartService =
        serde_json::from_value(documents(&path).remove(0)).expect("typed UpstartService");
    let example = &service.spec.helm_releases["exampleService"];
    assert_eq!(example.dependencies.len(), 5);
    assert_eq!(
        example.dependencies[3].alias(),
        "my-environment-name-launch-darkly"
    );
}

#[test]
fn each_invalid_document_is_refused_with_a_message_naming_its_field() {
    let files = yaml_files(&workspace_root().join("crates/api/tests/invalid"));
    assert!(
        files.len() >= 20,
        "expected one invalid document per rule, found {}",
        files.len()
    );
    let mut mismatches = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        let expected = text
            .lines()
            .find_map(|line| line.strip_prefix("# refused: "))
            .unwrap_or_else(|| panic!("{} has no `# refused:` line", path.display()));
        let document = documents(&path).remove(0);
        match admit(&document, None) {
            Ok(()) => mismatches.push(format!("{}: accepted", path.display())),
            Err(message) if !message.contains(expected) => mismatches.push(format!(
                "{}:\n  expected to contain: {expected}\n  got: {message}",
                path.display()
            )),
            Err(_) => {}
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn an_environment_namespace_cannot_change_once_set() {
    let old = serde_json::json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "UpstartEnvironment",
        "metadata": {"name": "pr-1"}, "spec": {"namespace": "pr-1"}
    });
    let mut new = old.clone();
    new["spec"]["namespace"] = "pr-2".into();
    let message = admit(&new, Some(&old)).expect_err("namespace change refused");
    assert!(
        message.contains("spec.namespace: Invalid value"),
        "{message}"
    );
    assert!(message.contains("namespace is immutable"), "{message}");
    assert_eq!(admit(&old, Some(&old)), Ok(()));
}
