//! What the cluster serves, as discovery reports it: the one source for both the renderer's
//! `.Capabilities` and the planner's namespaced/cluster-scoped knowledge, so the two never
//! disagree.
//!
//! The operator fills it from API discovery (for every served group version, every resource's
//! kind and whether it is namespaced; sub-resources such as `deployments/status` are left out)
//! and refreshes it periodically and when CRDs change.

use std::collections::{BTreeSet, HashMap};

use crate::render::Capabilities;

/// Served kinds and their scope, plus the Kubernetes version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiCatalog {
    kube_version: String,
    /// (apiVersion, kind) -> namespaced.
    kinds: HashMap<(String, String), bool>,
    /// Served group versions, including ones without kinds of interest.
    group_versions: BTreeSet<String>,
}

impl ApiCatalog {
    /// An empty catalog for a cluster of this version (`v1.33.2`).
    pub fn new(kube_version: impl Into<String>) -> Self {
        ApiCatalog {
            kube_version: kube_version.into(),
            ..Default::default()
        }
    }

    /// Records that `api_version` (`apps/v1`, `v1`) serves `kind`.
    pub fn add(&mut self, api_version: &str, kind: &str, namespaced: bool) {
        self.group_versions.insert(api_version.to_owned());
        self.kinds
            .insert((api_version.to_owned(), kind.to_owned()), namespaced);
    }

    /// Records a served group version with no kinds (yet).
    pub fn add_group_version(&mut self, api_version: &str) {
        self.group_versions.insert(api_version.to_owned());
    }

    /// The Kubernetes version.
    pub fn kube_version(&self) -> &str {
        &self.kube_version
    }

    /// `Some(true)` when namespaced, `Some(false)` when cluster-scoped, `None` when not served.
    pub fn is_namespaced(&self, api_version: &str, kind: &str) -> Option<bool> {
        self.kinds
            .get(&(api_version.to_owned(), kind.to_owned()))
            .copied()
    }

    /// `.Capabilities` for helm: the version, every group version and every
    /// `group/version/Kind`.
    pub fn capabilities(&self) -> Capabilities {
        let mut api_versions = self.group_versions.clone();
        api_versions.extend(
            self.kinds
                .keys()
                .map(|(api_version, kind)| format!("{api_version}/{kind}")),
        );
        Capabilities {
            kube_version: self.kube_version.clone(),
            api_versions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> ApiCatalog {
        let mut c = ApiCatalog::new("v1.33.2");
        c.add("v1", "ConfigMap", true);
        c.add("v1", "Namespace", false);
        c.add("apps/v1", "Deployment", true);
        c.add_group_version("example.com/v1");
        c
    }

    #[test]
    fn the_catalog_answers_scope_questions_for_served_kinds_only() {
        let c = catalog();
        assert_eq!(c.is_namespaced("v1", "ConfigMap"), Some(true));
        assert_eq!(c.is_namespaced("v1", "Namespace"), Some(false));
        assert_eq!(c.is_namespaced("apps/v1beta1", "Deployment"), None);
        assert_eq!(c.is_namespaced("example.com/v1", "Widget"), None);
    }

    #[test]
    fn capabilities_list_group_versions_and_kinds() {
        let caps = catalog().capabilities();
        assert_eq!(caps.kube_version, "v1.33.2");
        let listed: Vec<&str> = caps.api_versions.iter().map(String::as_str).collect();
        assert_eq!(
            listed,
            [
                "apps/v1",
                "apps/v1/Deployment",
                "example.com/v1",
                "v1",
                "v1/ConfigMap",
                "v1/Namespace"
            ]
        );
    }
}
