//! The account an environment's releases act as (SPEC §7, tenant confinement): with
//! `--release-cluster-role` set, each environment namespace gets a ServiceAccount bound by a
//! RoleBinding to that ClusterRole, and every release the environment creates (its own and
//! its services') names the account as `serviceAccountName`, so the HelmRelease operator
//! writes their charts' objects as that account: within the namespace, and only what the
//! ClusterRole allows. Built by pure functions; [`apply_release_access`] applies them.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::{Client, ResourceExt};
use serde_json::json;
use upstart_api::labels::{ENVIRONMENT_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use upstart_api::v1alpha1::UpstartEnvironment;
use upstart_operator_runtime::objects;

use crate::Error;
use crate::children::{Desired, owner_reference};
use crate::constants::FIELD_MANAGER;
use crate::error::ApiStep;

/// The name of the ServiceAccount (and of its RoleBinding) in each environment namespace.
pub const RELEASE_SERVICE_ACCOUNT: &str = "upstart-release";

/// What an environment's releases may do in its namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseAccess {
    /// The ServiceAccount the releases act as, created in the environment namespace.
    pub service_account: String,
    /// The ClusterRole bound to it there (by a RoleBinding: its rules apply in the namespace
    /// only). The operator needs `bind` on it, or every right it grants.
    pub cluster_role: String,
}

impl ReleaseAccess {
    /// Access through [`RELEASE_SERVICE_ACCOUNT`] bound to `cluster_role`.
    pub fn bound_to(cluster_role: impl Into<String>) -> Self {
        ReleaseAccess {
            service_account: RELEASE_SERVICE_ACCOUNT.to_owned(),
            cluster_role: cluster_role.into(),
        }
    }
}

fn metadata(env: &UpstartEnvironment, namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(BTreeMap::from([
            (ENVIRONMENT_LABEL.to_owned(), env.name_any()),
            (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
        ])),
        owner_references: owner_reference(env).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// The ServiceAccount the environment's releases act as.
pub fn service_account(
    env: &UpstartEnvironment,
    namespace: &str,
    access: &ReleaseAccess,
) -> ServiceAccount {
    ServiceAccount {
        metadata: metadata(env, namespace, &access.service_account),
        // Nothing in the namespace runs as it: no token is mounted anywhere by default.
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// The RoleBinding granting the ClusterRole to that account, in the namespace only.
pub fn role_binding(
    env: &UpstartEnvironment,
    namespace: &str,
    access: &ReleaseAccess,
) -> RoleBinding {
    RoleBinding {
        metadata: metadata(env, namespace, &access.service_account),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: access.cluster_role.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: access.service_account.clone(),
            namespace: Some(namespace.to_owned()),
            api_group: None,
        }]),
    }
}

/// Names `account` as the `serviceAccountName` of every release in `desired` (environment-wide
/// ones and those of each service) that does not name one itself.
pub fn act_as(desired: &mut Desired, account: &str) {
    let specs = desired.releases.iter_mut().map(|r| &mut r.spec).chain(
        desired
            .services
            .iter_mut()
            .flat_map(|s| s.spec.helm_releases.values_mut()),
    );
    for spec in specs {
        if spec.service_account_name.is_none() {
            spec.service_account_name = Some(account.to_owned());
        }
    }
}

/// The environments' release accounts, applied once per environment namespace by this
/// process (again after a restart): an environment reconciles at every change of its members,
/// and two applies per reconcile would be spent for nothing.
pub(crate) struct ReleaseAccounts {
    access: ReleaseAccess,
    applied: Mutex<HashSet<(String, String)>>,
}

impl ReleaseAccounts {
    pub(crate) fn new(access: ReleaseAccess) -> Self {
        ReleaseAccounts {
            access,
            applied: Mutex::default(),
        }
    }

    /// Makes the releases of `desired` act as the account, and the account and its binding
    /// exist in `namespace` (the environment's, owned by it).
    pub(crate) async fn ensure(
        &self,
        client: &Client,
        env: &UpstartEnvironment,
        namespace: &str,
        desired: &mut Desired,
    ) -> Result<(), Error> {
        act_as(desired, &self.access.service_account);
        let key = (namespace.to_owned(), env.uid().unwrap_or_default());
        if self
            .applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
        {
            return Ok(());
        }
        apply_release_access(client, env, namespace, &self.access).await?;
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key);
        Ok(())
    }
}

/// Server-side applies the ServiceAccount and its RoleBinding in `namespace`.
pub async fn apply_release_access(
    client: &Client,
    env: &UpstartEnvironment,
    namespace: &str,
    access: &ReleaseAccess,
) -> Result<(), Error> {
    let name = &access.service_account;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let mut account = json!(service_account(env, namespace, access));
    account["apiVersion"] = json!("v1");
    account["kind"] = json!("ServiceAccount");
    objects::apply(&accounts, name, &account, FIELD_MANAGER)
        .await
        .map_err(Error::kube(
            ApiStep::ApplyReleaseAccess,
            format!("applying ServiceAccount {namespace}/{name}"),
        ))?;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
    let mut binding = json!(role_binding(env, namespace, access));
    binding["apiVersion"] = json!("rbac.authorization.k8s.io/v1");
    binding["kind"] = json!("RoleBinding");
    objects::apply(&bindings, name, &binding, FIELD_MANAGER)
        .await
        .map_err(Error::kube(
            ApiStep::ApplyReleaseAccess,
            format!(
                "binding ClusterRole {} to ServiceAccount {namespace}/{name} (the operator \
                 needs `bind` on that ClusterRole)",
                access.cluster_role
            ),
        ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use upstart_api::v1alpha1::{HelmRelease, UpstartService};

    use super::*;

    fn env() -> UpstartEnvironment {
        serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "UpstartEnvironment",
            "metadata": {"name": "pr-1", "uid": "uid-1"},
            "spec": {},
        }))
        .expect("valid environment")
    }

    #[test]
    fn the_account_is_bound_to_the_cluster_role_in_the_environment_namespace_only() {
        let access = ReleaseAccess::bound_to("upstart-release-edit");
        let account = service_account(&env(), "pr-1", &access);
        assert_eq!(account.metadata.name.as_deref(), Some("upstart-release"));
        assert_eq!(account.metadata.namespace.as_deref(), Some("pr-1"));
        assert_eq!(account.automount_service_account_token, Some(false));
        let binding = role_binding(&env(), "pr-1", &access);
        assert_eq!(binding.metadata.namespace.as_deref(), Some("pr-1"));
        assert_eq!(
            (
                binding.role_ref.kind.as_str(),
                binding.role_ref.name.as_str()
            ),
            ("ClusterRole", "upstart-release-edit")
        );
        let subjects = binding.subjects.expect("a subject");
        assert_eq!(subjects.len(), 1);
        assert_eq!(
            (
                subjects[0].kind.as_str(),
                subjects[0].name.as_str(),
                subjects[0].namespace.as_deref()
            ),
            ("ServiceAccount", "upstart-release", Some("pr-1"))
        );
        for owners in [
            account.metadata.owner_references,
            binding.metadata.owner_references,
        ] {
            assert_eq!(owners.expect("owned")[0].uid, "uid-1");
        }
    }

    #[test]
    fn every_release_of_the_environment_acts_as_the_account_unless_it_names_its_own() {
        let service: UpstartService = serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "UpstartService",
            "metadata": {"name": "web", "namespace": "pr-1"},
            "spec": {"helmReleases": {
                "db": {"chart": "repo/postgres"},
                "api": {"chart": "repo/api", "serviceAccountName": "deployer"}
            }},
        }))
        .expect("valid service");
        let release: HelmRelease = serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "HelmRelease",
            "metadata": {"name": "pr-1-flags", "namespace": "pr-1"},
            "spec": {"chart": "repo/flags"},
        }))
        .expect("valid release");
        let mut wanted = Desired {
            services: vec![service],
            releases: vec![release],
            ..Desired::default()
        };
        act_as(&mut wanted, "upstart-release");
        let accounts: Vec<Option<&str>> = wanted
            .releases
            .iter()
            .map(|r| &r.spec)
            .chain(
                wanted
                    .services
                    .iter()
                    .flat_map(|s| s.spec.helm_releases.values()),
            )
            .map(|spec| spec.service_account_name.as_deref())
            .collect();
        assert_eq!(
            accounts,
            vec![
                Some("upstart-release"),
                Some("deployer"),
                Some("upstart-release")
            ]
        );
    }
}
