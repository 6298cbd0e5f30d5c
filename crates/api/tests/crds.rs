//! The committed CRDs in `crds/` are exactly what the types generate, and a real API server
//! would accept them.

use std::path::PathBuf;

use upstart_api::crd;

fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds")
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
    let expected: Vec<String> = crd::crds().iter().map(crd::file_name).collect();
    let mut found: Vec<String> = std::fs::read_dir(crds_dir())
        .expect("crds/ exists")
        .map(|entry| {
            entry
                .expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    found.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(found, expected_sorted);
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
            vec!["Chart", "Version", "Phase", "Ready", "Age"],
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
            vec!["Namespace", "Services", "Phase", "Expires", "Age"],
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
