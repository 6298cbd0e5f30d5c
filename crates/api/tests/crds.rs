//! The committed CRDs in `crds/` and in the operators' chart, and the CRD reference in
//! `docs/reference/`, are exactly what the types generate; a real API server would accept the
//! CRDs.

use std::path::{Path, PathBuf};

use upstart_api::crd;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn crds_dir() -> PathBuf {
    workspace_root().join("crds")
}

/// The files under `dir`, by name.
fn file_names(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{} is readable: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    found.sort();
    found
}

/// Runs `crdgen` into a scratch root and compares everything it writes with the committed
/// files: the chart's CRDs and the reference have the same single source as `crds/`.
#[test]
fn every_generated_artefact_is_committed_unchanged() {
    let scratch =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("crdgen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_crdgen"))
        .arg(&scratch)
        .output()
        .expect("crdgen runs");
    assert!(
        output.status.success(),
        "crdgen failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut generated = Vec::new();
    for dir in ["crds", "charts/upstart-operators/crds"] {
        let names = file_names(&scratch.join(dir));
        assert_eq!(
            names,
            file_names(&workspace_root().join(dir)),
            "{dir}/ holds exactly the generated CRDs"
        );
        generated.extend(names.into_iter().map(|n| format!("{dir}/{n}")));
    }
    generated.push("docs/reference/crds.md".to_owned());
    let mut stale = Vec::new();
    for relative in &generated {
        let fresh = std::fs::read_to_string(scratch.join(relative)).expect("crdgen wrote it");
        match std::fs::read_to_string(workspace_root().join(relative)) {
            Ok(committed) if committed == fresh => {}
            Ok(_) => stale.push(format!("{relative} differs")),
            Err(error) => stale.push(format!("{relative} unreadable: {error}")),
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        stale.is_empty(),
        "generated files are stale; run `cargo run -p upstart-api --bin crdgen` and commit the result:\n{}",
        stale.join("\n")
    );
}

#[test]
fn the_reference_documents_every_spec_field_of_every_kind() {
    let reference = std::fs::read_to_string(workspace_root().join("docs/reference/crds.md"))
        .expect("docs/reference/crds.md exists");
    for generated in crd::crds() {
        let kind = &generated.spec.names.kind;
        assert!(reference.contains(&format!("## {kind}")), "{kind} section");
        let schema = generated.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema");
        let spec = &schema.properties.as_ref().expect("properties")["spec"];
        for field in spec.properties.as_ref().expect("spec fields").keys() {
            assert!(
                reference.contains(&format!("| `spec.{field}`")),
                "{kind}: spec.{field} is documented"
            );
        }
    }
}

#[test]
fn committed_crds_match_what_the_types_generate() {
    let mut stale = Vec::new();
    for generated in crd::crds() {
        let path = crds_dir().join(crd::file_name(&generated));
        let expected = crd::to_yaml(&generated).expect("CRD serialises");
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == expected => {}
            Ok(_) => stale.push(format!("{} differs", path.display())),
            Err(error) => stale.push(format!("{} unreadable: {error}", path.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "crds/ is stale; run `cargo run -p upstart-api --bin crdgen` and commit the result:\n{}",
        stale.join("\n")
    );
}

#[test]
fn crds_directory_holds_only_generated_crds() {
    let mut expected: Vec<String> = crd::crds().iter().map(crd::file_name).collect();
    expected.sort();
    assert_eq!(file_names(&crds_dir()), expected);
}

#[test]
fn generated_crds_are_structural_and_their_cel_rules_compile() {
    for generated in crd::crds() {
        let name = generated.metadata.name.clone().unwrap_or_default();
        for version in &generated.spec.versions {
            let schema = upstart_crd_validation::schema_for_version(&generated, &version.name)
                .expect("every version has a schema");
            let problems = upstart_crd_validation::check_structural(&schema);
            assert!(
                problems.is_empty(),
                "{name} {}: {problems:#?}",
                version.name
            );
        }
    }
}

#[test]
fn crds_carry_the_names_scopes_and_columns_of_the_api() {
    let by_kind = |kind: &str| {
        crd::crds()
            .into_iter()
            .find(|c| c.spec.names.kind == kind)
            .expect("kind generated")
    };
    for (kind, scope, short, columns) in [
        (
            "HelmRelease",
            "Namespaced",
            "uhr",
            vec![
                "Chart", "Version", "Phase", "Ready", "Age", "Manifest", "Commit",
            ],
        ),
        (
            "UpstartService",
            "Namespaced",
            "usvc",
            vec!["Releases", "Phase", "Age"],
        ),
        (
            "UpstartEnvironment",
            "Cluster",
            "uenv",
            vec![
                "Namespace",
                "Services",
                "Phase",
                "Requester",
                "Endpoint",
                "Expires",
                "Age",
            ],
        ),
    ] {
        let crd = by_kind(kind);
        assert_eq!(crd.spec.group, upstart_api::GROUP);
        assert_eq!(crd.spec.scope, scope, "{kind}");
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&[short.to_owned()][..]),
            "{kind}"
        );
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["upstart".to_owned()][..])
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, upstart_api::VERSION);
        assert!(version.served && version.storage);
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        let names: Vec<&str> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, columns, "{kind}");
    }
}

/// Backoff is counted in the operator's memory (`operator-runtime`'s backoff), never in status:
/// a status field no operator writes is a dead field users would read as always zero.
#[test]
fn helm_release_status_holds_no_backoff_counter() {
    let crd = crd::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "HelmRelease")
        .expect("kind generated");
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("schema generated");
    let status = schema
        .properties
        .as_ref()
        .and_then(|p| p.get("status"))
        .and_then(|s| s.properties.as_ref())
        .expect("status has properties");
    assert!(status.contains_key("phase"), "{:?}", status.keys());
    assert!(
        !status.contains_key("failures"),
        "status.failures is written by no operator: {:?}",
        status.keys()
    );
}
