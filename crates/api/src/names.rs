//! Names the operators derive from others: child releases, kebab-case keys and label values.
//! One place, because the service operator, the environment operator and the CLI must agree.

use sha2::{Digest, Sha256};

/// The namespace whose UpstartServices are catalog templates, unless the operators are told
/// otherwise (`--catalog-namespace`).
pub const DEFAULT_CATALOG_NAMESPACE: &str = "upstart-catalog";

/// The namespace of an environment (SPEC §4): `spec.namespace`, else its name.
pub fn environment_namespace(name: &str, spec_namespace: Option<&str>) -> String {
    spec_namespace.unwrap_or(name).to_owned()
}

/// The longest name Kubernetes accepts for a DNS-1123 label (and for label values).
pub const MAX_LABEL_LENGTH: usize = 63;

/// `exampleService` -> `example-service`; `launch-darkly` and `postgres` are unchanged.
pub fn kebab_case(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let mut out = String::with_capacity(key.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let previous = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1).copied();
            let after_lower_or_digit =
                previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit());
            let ends_acronym = previous.is_some_and(|p| p.is_ascii_uppercase())
                && next.is_some_and(|n| n.is_ascii_lowercase());
            if (after_lower_or_digit || ends_acronym) && !out.ends_with('-') {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// `<parent>-<key in kebab-case>`, shortened with a hash suffix when longer than 63 characters,
/// so every child name is a valid DNS-1123 label and still unique.
pub fn child_name(parent: &str, key: &str) -> String {
    bounded_label(&format!("{parent}-{}", kebab_case(key)))
}

/// The HelmRelease an `EnvironmentRelease` dependency on `key` means: in environment `E` the
/// environment-wide release `E-<key>` (as [`child_name`] names it); outside an environment, the
/// HelmRelease named by the key in kebab-case (what a squad applies beside its service to try
/// it alone).
pub fn environment_release_name(environment: Option<&str>, key: &str) -> String {
    match environment {
        Some(environment) => child_name(environment, key),
        None => kebab_case(key),
    }
}

/// The value of the `upstartoperators.upstart.com/release` label: `<namespace>.<name>`,
/// shortened with a hash suffix when longer than a label value may be.
pub fn release_label_value(namespace: &str, name: &str) -> String {
    bounded_label(&format!("{namespace}.{name}"))
}

/// `name` when it fits in 63 characters; otherwise a prefix, `-` and 8 hex digits of its hash.
pub fn bounded_label(name: &str) -> String {
    if name.len() <= MAX_LABEL_LENGTH {
        return name.to_owned();
    }
    let digest = Sha256::digest(name.as_bytes());
    let suffix: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let keep = MAX_LABEL_LENGTH - suffix.len() - 1;
    let prefix = name[..keep].trim_end_matches(['-', '.']);
    format!("{prefix}-{suffix}")
}

/// Two releases of one namespace claiming the same Helm `.Release.Name` (SPEC §3): `first` keeps
/// it, `later` is the conflict to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseNameClash<T> {
    /// The `.Release.Name` claimed twice.
    pub release_name: String,
    /// The claim that keeps the name (the first one given).
    pub first: T,
    /// A claim that loses it.
    pub later: T,
}

/// The `.Release.Name` conflicts among `claims` (release name, claimant), given in order of
/// precedence: the first claim of a name keeps it, and each later one is a clash with it. The
/// one rule the service operator, catalog validation and `upstart validate` all apply; each
/// decides its own precedence by the order it passes.
pub fn release_name_clashes<T: Clone>(
    claims: impl IntoIterator<Item = (String, T)>,
) -> Vec<ReleaseNameClash<T>> {
    let mut first_claims: std::collections::HashMap<String, T> = std::collections::HashMap::new();
    let mut clashes = Vec::new();
    for (release_name, claimant) in claims {
        match first_claims.get(&release_name) {
            Some(first) => clashes.push(ReleaseNameClash {
                first: first.clone(),
                later: claimant,
                release_name,
            }),
            None => {
                first_claims.insert(release_name, claimant);
            }
        }
    }
    clashes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_keys_become_kebab_case() {
        assert_eq!(kebab_case("exampleService"), "example-service");
        assert_eq!(kebab_case("postgres"), "postgres");
        assert_eq!(kebab_case("launch-darkly"), "launch-darkly");
        assert_eq!(kebab_case("HTTPServer"), "http-server");
        assert_eq!(kebab_case("redis2Cache"), "redis2-cache");
        assert_eq!(kebab_case("already-Kebab"), "already-kebab");
    }

    #[test]
    fn environment_release_is_the_environment_child_inside_an_environment_and_the_key_outside() {
        assert_eq!(
            environment_release_name(Some("pr-1234"), "launch-darkly"),
            "pr-1234-launch-darkly"
        );
        assert_eq!(
            environment_release_name(Some("my-environment-name"), "launch-darkly"),
            "my-environment-name-launch-darkly"
        );
        assert_eq!(
            environment_release_name(None, "launch-darkly"),
            "launch-darkly"
        );
    }

    #[test]
    fn child_names_join_parent_and_kebab_key() {
        assert_eq!(
            child_name("example-service", "exampleService"),
            "example-service-example-service"
        );
        assert_eq!(
            child_name("my-environment-name", "launch-darkly"),
            "my-environment-name-launch-darkly"
        );
    }

    #[test]
    fn long_child_names_are_shortened_to_a_unique_valid_label() {
        let parent = "a".repeat(60);
        let one = child_name(&parent, "firstRelease");
        let two = child_name(&parent, "secondRelease");
        assert_eq!(one.len(), MAX_LABEL_LENGTH);
        assert_ne!(one, two);
        assert!(
            one.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        assert_eq!(
            one,
            child_name(&parent, "firstRelease"),
            "stable across calls"
        );
    }

    #[test]
    fn release_label_values_fit_in_a_label() {
        assert_eq!(
            release_label_value("pr-1234", "example-postgres"),
            "pr-1234.example-postgres"
        );
        let long = release_label_value(&"n".repeat(63), &"r".repeat(63));
        assert!(long.len() <= MAX_LABEL_LENGTH);
    }

    #[test]
    fn a_release_name_claimed_twice_is_kept_by_the_first_claim_and_each_later_one_clashes() {
        let clashes = release_name_clashes([
            ("postgres".to_owned(), "a/postgres"),
            ("redis".to_owned(), "a/redis"),
            ("postgres".to_owned(), "b/postgres"),
            ("postgres".to_owned(), "c/db"),
        ]);
        assert_eq!(
            clashes,
            vec![
                ReleaseNameClash {
                    release_name: "postgres".into(),
                    first: "a/postgres",
                    later: "b/postgres"
                },
                ReleaseNameClash {
                    release_name: "postgres".into(),
                    first: "a/postgres",
                    later: "c/db"
                },
            ]
        );
        assert!(release_name_clashes([("x".to_owned(), 1), ("y".to_owned(), 2)]).is_empty());
    }
}
