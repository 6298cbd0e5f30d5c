//! Malformed flags and configuration refused before anything starts, naming the flag (with an
//! example) or the file.

use super::*;

/// The flag examples `upstart dev` gives with a malformed repository flag.
const REPOSITORY_EXAMPLE: &str = "e.g. --repository bitnami=https://charts.bitnami.com/bitnami";
const CLUSTER_SCOPED_EXAMPLE: &str =
    "e.g. --allow-cluster-scoped rbac.authorization.k8s.io/ClusterRole,Namespace";

#[test]
fn malformed_repository_flags_are_refused_naming_the_flag_with_an_example() {
    for (flag, problem) in [
        ("bitnami", "no `=` between the name and the URL"),
        ("=https://charts.example.com", "the name is empty"),
        (
            "bit nami=https://charts.example.com",
            "the name may hold only letters, digits",
        ),
        ("b=charts.example.com", "the URL has no scheme"),
        (
            "b=ftp://charts.example.com",
            "the URL scheme ftp:// is not supported",
        ),
        ("b=https://", "the URL has no host"),
        (
            "b=https://robot:hunter2@charts.example.com/stable",
            "credentials in the URL are refused",
        ),
    ] {
        let stderr = refused_flags(&["--repository", flag]);
        assert!(
            stderr.contains("upstart: --repository ")
                && stderr.contains(problem)
                && stderr.contains(REPOSITORY_EXAMPLE),
            "--repository {flag}:\n{stderr}"
        );
        assert!(
            !stderr.contains("hunter2"),
            "the password leaked:\n{stderr}"
        );
    }
    let stderr = refused_flags(&[
        "--repository",
        "b=https://one.example.com",
        "--repository",
        "b=https://two.example.com",
    ]);
    assert!(
        stderr.contains("the repository b is given twice"),
        "{stderr}"
    );
}

#[test]
fn malformed_allow_cluster_scoped_kinds_are_refused_naming_the_flag_with_an_example() {
    for (flag, problem) in [
        (
            "clusterrole",
            "\"clusterrole\" is not a kind as manifests write it",
        ),
        (
            "rbac.authorization.k8s.io/v1/ClusterRole",
            "write the API group without its version",
        ),
        ("v1/Namespace", "\"v1\" is an API version, not a group"),
        (
            "RBAC.authorization.k8s.io/ClusterRole",
            "is not an API group",
        ),
        ("ClusterRole,", "an empty kind (a stray comma?)"),
    ] {
        let stderr = refused_flags(&["--allow-cluster-scoped", flag]);
        assert!(
            stderr.contains("upstart: --allow-cluster-scoped ")
                && stderr.contains(problem)
                && stderr.contains(CLUSTER_SCOPED_EXAMPLE),
            "--allow-cluster-scoped {flag}:\n{stderr}"
        );
    }
}

#[test]
fn a_malformed_repositories_config_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let stderr = refused_flags(&["--repositories-config", "missing.yaml"]);
    assert!(
        stderr.contains("--repositories-config missing.yaml: cannot read it"),
        "{stderr}"
    );
    let typo = write(tmp.path(), "typo.yaml", "allowUnlistd: true\n");
    let stderr = refused_flags(&["--repositories-config", typo.to_str().unwrap()]);
    assert!(
        stderr.contains("allowUnlistd")
            && stderr.contains("expected the HelmRelease operator's repository configuration"),
        "{stderr}"
    );
    // What only the operator's own checks see: they run before the cluster starts.
    let scheme = write(
        tmp.path(),
        "scheme.yaml",
        "repositories:\n  mirror: {url: ftp://charts.example.com}\n",
    );
    let stderr = refused_flags(&["--repositories-config", scheme.to_str().unwrap()]);
    assert!(
        stderr.contains("chart repository configuration")
            && stderr.contains("\"mirror\": url must start with oci://, https:// or http://"),
        "{stderr}"
    );
}
