//! Whom a release's objects are written as (SPEC §7, Flux's tenancy model): the ServiceAccount
//! of the release's own namespace that `spec.serviceAccountName` names, else the operator's
//! `--default-service-account`, impersonated; with neither, the operator itself. Applies,
//! reads of the inventory, prunes, deletions and hooks all go through [`Accounts::client`], so
//! a chart can only create what that account's Roles allow in its namespace. Status, the
//! release's own kinds, valuesFrom and outputs are read and written with the operator's rights.

use std::collections::HashMap;
use std::sync::Mutex;

use http::{HeaderValue, Request};
use kube::Client;
use kube::client::Body;
use upstart_api::v1alpha1::HelmRelease;

use crate::Error;

/// A ServiceAccount a release acts as.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Account {
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl Account {
    /// The account the release `hr` of `namespace` acts as: its `serviceAccountName`, else
    /// `default`; `None`: the operator's own rights. Always an account of the release's own
    /// namespace: a release cannot name another namespace's account.
    pub(crate) fn of(hr: &HelmRelease, namespace: &str, default: Option<&str>) -> Option<Account> {
        let name = hr
            .spec
            .service_account_name
            .as_deref()
            .or(default)
            .filter(|name| !name.is_empty())?;
        Some(Account {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The user name the API server knows the account by.
    pub(crate) fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceAccount {}/{}", self.namespace, self.name)
    }
}

/// The operator's client and one impersonating client per account, made on first use and
/// kept until no release uses the account any more.
pub(in crate::controller) struct Accounts {
    operator: Client,
    default: Option<String>,
    clients: Mutex<HashMap<Account, Client>>,
}

impl Accounts {
    /// `default`: the operator's `--default-service-account`.
    pub(in crate::controller) fn new(operator: Client, default: Option<String>) -> Self {
        Accounts {
            operator,
            default: default.filter(|name| !name.is_empty()),
            clients: Mutex::default(),
        }
    }

    /// The account `hr` acts as (see [`Account::of`]).
    pub(in crate::controller) fn account(
        &self,
        hr: &HelmRelease,
        namespace: &str,
    ) -> Option<Account> {
        Account::of(hr, namespace, self.default.as_deref())
    }

    /// The client the objects of `hr` are read and written with.
    pub(in crate::controller) fn client(
        &self,
        hr: &HelmRelease,
        namespace: &str,
    ) -> Result<Client, Error> {
        let Some(account) = self.account(hr, namespace) else {
            return Ok(self.operator.clone());
        };
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(&account) {
            return Ok(client.clone());
        }
        let client = impersonating(self.operator.clone(), &account.username()).map_err(|_| {
            Error::Config(format!(
                "{account} cannot be impersonated: its name is not a valid user name; set \
                 spec.serviceAccountName (or --default-service-account) to a ServiceAccount name"
            ))
        })?;
        clients.insert(account, client.clone());
        Ok(client)
    }

    /// Drops the clients of accounts no release of `releases` acts as any more.
    pub(in crate::controller) fn keep_only_used<'a>(
        &self,
        releases: impl IntoIterator<Item = &'a HelmRelease>,
    ) {
        let used: Vec<Account> = releases
            .into_iter()
            .filter(|hr| hr.metadata.deletion_timestamp.is_none())
            .filter_map(|hr| {
                let namespace = hr.metadata.namespace.as_deref()?;
                self.account(hr, namespace)
            })
            .collect();
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|account, _| used.contains(account));
    }
}

/// `client`, acting as `username`: every request carries `Impersonate-User`, as kube's
/// `Config::auth_info.impersonate` sends it. Built on the client rather than on a `Config`
/// because the operator is handed a client (in process, by `upstart dev` and the tests, too).
/// No `Impersonate-Group`: for a ServiceAccount the API server adds its groups itself.
pub(crate) fn impersonating(
    client: Client,
    username: &str,
) -> Result<Client, http::header::InvalidHeaderValue> {
    let user = HeaderValue::from_str(username)?;
    let namespace = client.default_namespace().to_owned();
    let service = tower::service_fn(move |mut request: Request<Body>| {
        let client = client.clone();
        request
            .headers_mut()
            .insert("impersonate-user", user.clone());
        async move { client.send(request).await }
    });
    Ok(Client::new(service, namespace))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::Api;
    use serde_json::json;

    use super::*;

    fn release(account: Option<&str>) -> HelmRelease {
        serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "HelmRelease",
            "metadata": {"name": "web", "namespace": "team"},
            "spec": {"chart": "repo/web", "serviceAccountName": account},
        }))
        .expect("a valid HelmRelease")
    }

    #[test]
    fn a_release_acts_as_its_own_account_else_the_default_else_the_operator() {
        let own = Account::of(&release(Some("deployer")), "team", Some("upstart-release"));
        assert_eq!(
            own.map(|a| a.username()).as_deref(),
            Some("system:serviceaccount:team:deployer")
        );
        let default = Account::of(&release(None), "team", Some("upstart-release"));
        assert_eq!(
            default.map(|a| a.to_string()).as_deref(),
            Some("ServiceAccount team/upstart-release")
        );
        assert_eq!(Account::of(&release(None), "team", None), None);
        assert_eq!(Account::of(&release(None), "team", Some("")), None);
    }

    #[tokio::test]
    async fn an_impersonating_client_sends_the_user_on_every_request() {
        let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let record = seen.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let user = request
                .headers()
                .get("impersonate-user")
                .map(|v| v.to_str().unwrap_or_default().to_owned());
            record.lock().unwrap_or_else(|p| p.into_inner()).push(user);
            async move {
                let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "settings", "namespace": "team"}});
                Ok::<_, std::convert::Infallible>(http::Response::new(Body::from(
                    serde_json::to_vec(&body).unwrap_or_default(),
                )))
            }
        });
        let operator = Client::new(service, "default");
        let acting = impersonating(operator.clone(), "system:serviceaccount:team:deployer")
            .expect("a valid user name");
        for client in [acting, operator] {
            let found = Api::<ConfigMap>::namespaced(client, "team")
                .get("settings")
                .await
                .expect("the stub answers");
            assert_eq!(found.metadata.name.as_deref(), Some("settings"));
        }
        assert_eq!(
            *seen.lock().unwrap_or_else(|p| p.into_inner()),
            vec![Some("system:serviceaccount:team:deployer".to_owned()), None]
        );
    }

    #[test]
    fn a_user_name_that_cannot_be_a_header_is_refused() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let _guard = runtime.enter();
        let service = tower::service_fn(|_: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
        });
        let operator = Client::new(service, "default");
        assert!(impersonating(operator, "bad\nname").is_err());
    }
}
