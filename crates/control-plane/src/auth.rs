//! Who a request on the HTTPS endpoint is from: the admin (the endpoint's token or a client
//! certificate from its CA) or, once enabled ([`crate::Endpoint::enable_service_account_tokens`]),
//! a ServiceAccount holding a token issued by TokenRequest
//! (`POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`, as `kubectl create token` does).
//!
//! Issued tokens are opaque random strings remembered by the endpoint, not signed JWTs: clients
//! pass a token on without reading it, and a table lookup gives the same answers the apiserver
//! gives about a JWT it issued — a token works until it expires, while its ServiceAccount (and
//! the Pod or Secret it is bound to, if any) still exists with the uid it was issued for, only
//! for the API audience. Anything else gets the apiserver's bare 401 `Unauthorized`.
//!
//! Enabled, it also plays kube-controller-manager's token controller for legacy token Secrets
//! (`type: kubernetes.io/service-account-token`, annotated `kubernetes.io/service-account.name`):
//! it fills in `token`, `ca.crt` and `namespace`, and deletes such a Secret whose account does
//! not exist (or is another account of that name); the token lives as long as the Secret.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Resource as _, ResourceExt as _};
use serde_json::{Value, json};

use crate::api::{self, ResponseBody, Shared};
use crate::error::{ApiError, ApiResult, Cause, Subject};
use crate::meta;

/// The audience the API server accepts, and gives a token that asks for none (the issuer of a
/// cluster's ServiceAccount tokens by default).
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// A token's lifetime when the TokenRequest names none (the apiserver's default).
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime the apiserver accepts.
const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest lifetime the apiserver accepts (2^32 seconds).
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// The Secret type the token controller fills in.
const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
/// The annotation naming a token Secret's ServiceAccount.
const ACCOUNT_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
/// The annotation the token controller records the account's uid in.
const ACCOUNT_UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

/// Who an authenticated request is from, as the apiserver names users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// `upstart-admin`, or `system:serviceaccount:NAMESPACE:NAME`.
    pub username: String,
    /// The ServiceAccount's uid; empty for the admin.
    pub uid: String,
    /// `system:masters` for the admin; `system:serviceaccounts`,
    /// `system:serviceaccounts:NAMESPACE` for a ServiceAccount; `system:authenticated` for all.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The endpoint's own user: its token and its client certificate (`CN=upstart-admin`,
    /// `O=system:masters`, the only one the generated CA signs).
    pub fn admin() -> Self {
        UserInfo {
            username: "upstart-admin".to_string(),
            uid: String::new(),
            groups: vec![
                "system:masters".to_string(),
                "system:authenticated".to_string(),
            ],
        }
    }

    fn service_account(namespace: &str, name: &str, uid: &str) -> Self {
        UserInfo {
            username: format!("system:serviceaccount:{namespace}:{name}"),
            uid: uid.to_string(),
            groups: vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_string(),
            ],
        }
    }
}

/// What a token was issued for.
struct Issued {
    namespace: String,
    name: String,
    /// The ServiceAccount's uid at issuance: a recreated account does not inherit tokens.
    uid: String,
    audiences: Vec<String>,
    expires: jiff::Timestamp,
    bound: Option<BoundObject>,
}

/// The Pod or Secret a token is bound to: it dies with that object.
struct BoundObject {
    plural: &'static str,
    name: String,
    uid: String,
}

/// The authenticator of one HTTPS endpoint.
pub struct Authenticator {
    /// `Bearer ADMIN_TOKEN`.
    admin_header: String,
    service_accounts: AtomicBool,
    issued: Mutex<HashMap<String, Issued>>,
    /// What the token controller needs, taken when it starts.
    controller: Mutex<Option<ControllerStart>>,
}

/// The token controller's inputs: the store, the CA it puts into Secrets, the runtime of the
/// endpoint.
struct ControllerStart {
    shared: Arc<Shared>,
    ca_pem: String,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are credentials: never printed.
        f.debug_struct("Authenticator")
            .field(
                "service_accounts",
                &self.service_accounts.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

/// `NAMESPACE` and `NAME` of `/api/v1/namespaces/NAMESPACE/serviceaccounts/NAME/token`.
fn token_request_target(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let mut parts = rest.split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(ns), Some("serviceaccounts"), Some(name), Some("token"), None)
            if !ns.is_empty() && !name.is_empty() =>
        {
            Some((ns, name))
        }
        _ => None,
    }
}

/// The object `plural`/`name` of `namespace` in the store, if any.
fn lookup(shared: &Shared, plural: &str, namespace: &str, name: &str) -> ApiResult<Arc<Value>> {
    let store = shared.lock();
    let resource = store
        .registry
        .lookup("", "v1", plural)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("the core resource {plural} is not served")))?;
    store.get(&resource, namespace, name)
}

impl Authenticator {
    /// Accepts the admin token and client certificates; ServiceAccount tokens once enabled.
    /// `ca_pem` is what token Secrets get as `ca.crt`. Call within the Tokio runtime the
    /// token controller is to run on.
    pub fn new(admin_token: &str, shared: Arc<Shared>, ca_pem: String) -> Self {
        Authenticator {
            admin_header: format!("Bearer {admin_token}"),
            service_accounts: AtomicBool::new(false),
            issued: Mutex::new(HashMap::new()),
            controller: Mutex::new(Some(ControllerStart {
                shared,
                ca_pem,
                runtime: tokio::runtime::Handle::current(),
            })),
        }
    }

    /// Serves TokenRequest, starts the token controller and accepts the tokens they issue from
    /// now on.
    pub fn enable_service_accounts(self: &Arc<Self>) {
        self.service_accounts.store(true, Ordering::SeqCst);
        let start = self
            .controller
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(start) = start {
            start.runtime.spawn(run_token_controller(
                self.clone(),
                start.shared,
                start.ca_pem,
            ));
        }
    }

    fn issued(&self) -> std::sync::MutexGuard<'_, HashMap<String, Issued>> {
        self.issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Who sent a request that presented a client certificate from the endpoint's CA (rustls
    /// verified it) or carries `authorization`; 401 `Unauthorized` otherwise.
    pub fn authenticate(
        &self,
        shared: &Shared,
        client_certificate: bool,
        authorization: Option<&HeaderValue>,
    ) -> ApiResult<UserInfo> {
        if client_certificate {
            return Ok(UserInfo::admin());
        }
        let header = authorization.ok_or_else(unauthorized)?;
        if header.as_bytes() == self.admin_header.as_bytes() {
            return Ok(UserInfo::admin());
        }
        if !self.service_accounts.load(Ordering::SeqCst) {
            return Err(unauthorized());
        }
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(unauthorized)?;
        let (namespace, name, uid, bound) = {
            let issued = self.issued();
            let entry = issued.get(token).ok_or_else(unauthorized)?;
            if entry.expires <= jiff::Timestamp::now()
                || !entry.audiences.iter().any(|a| a == API_AUDIENCE)
            {
                return Err(unauthorized());
            }
            (
                entry.namespace.clone(),
                entry.name.clone(),
                entry.uid.clone(),
                entry
                    .bound
                    .as_ref()
                    .map(|b| (b.plural, b.name.clone(), b.uid.clone())),
            )
        };
        let live = |plural: &str, name: &str, uid: &str| {
            lookup(shared, plural, &namespace, name).is_ok_and(|object| {
                meta::uid(&object) == uid
                    && object
                        .pointer("/metadata/deletionTimestamp")
                        .is_none_or(Value::is_null)
            })
        };
        let bound_alive = bound
            .as_ref()
            .is_none_or(|(plural, object, object_uid)| live(plural, object, object_uid));
        if !bound_alive || !live("serviceaccounts", &name, &uid) {
            // uids are never reused: the token can never work again.
            self.issued().remove(token);
            return Err(unauthorized());
        }
        Ok(UserInfo::service_account(&namespace, &name, &uid))
    }

    /// Whether `req` is a TokenRequest this authenticator serves.
    pub fn serves<B>(&self, req: &Request<B>) -> bool {
        self.service_accounts.load(Ordering::SeqCst)
            && req.method() == Method::POST
            && token_request_target(req.uri().path()).is_some()
    }

    /// Answers a TokenRequest ([`Authenticator::serves`]): 201 with the token in
    /// `status.token`, or the apiserver's error.
    pub async fn token_request<B>(
        &self,
        shared: &Shared,
        mut req: Request<B>,
    ) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        // `create` on `serviceaccounts/token`, when RBAC is enforced.
        if let Err(e) = crate::rbac::authorize(shared, &mut req) {
            return api::error_response(&e);
        }
        let path = req.uri().path().to_string();
        let Some((namespace, name)) = token_request_target(&path) else {
            return api::error_response(&ApiError::page_not_found());
        };
        let body = match req.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                return api::error_response(&ApiError::bad_request(format!(
                    "reading the request body failed: {e}"
                )));
            }
        };
        match self.issue(shared, namespace, name, &body) {
            Ok(answer) => {
                let mut response = Response::new(
                    Full::new(Bytes::from(serde_json::to_vec(&answer).unwrap_or_default()))
                        .boxed_unsync(),
                );
                *response.status_mut() = StatusCode::CREATED;
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            Err(e) => api::error_response(&e),
        }
    }

    /// Issues a token for ServiceAccount `name` of `namespace` as the TokenRequest `body` asks.
    fn issue(&self, shared: &Shared, namespace: &str, name: &str, body: &[u8]) -> ApiResult<Value> {
        // kubectl sends its TokenRequest as protobuf, kube-rs and client libraries as JSON.
        let request: Value = if body.starts_with(b"k8s\0") {
            crate::protobuf::decode_object(body, "authentication.k8s.io", "v1", "TokenRequest")
                .map_err(|e| {
                    ApiError::bad_request(format!(
                        "error decoding the protobuf body of a TokenRequest: {e:?}"
                    ))
                })?
        } else {
            serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the TokenRequest body is neither JSON nor protobuf ({e}); send an authentication.k8s.io/v1 TokenRequest"
                ))
            })?
        };
        let spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
        let expiration = match spec.get("expirationSeconds") {
            None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
            Some(value) => value.as_i64().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "spec.expirationSeconds must be an integer number of seconds, got {value}"
                ))
            })?,
        };
        let invalid = |detail: &str| {
            ApiError::invalid(
                "TokenRequest",
                "authentication.k8s.io",
                name,
                vec![Cause::invalid(
                    "spec.expirationSeconds",
                    &json!(expiration),
                    detail,
                )],
            )
        };
        if expiration < MIN_EXPIRATION_SECONDS {
            return Err(invalid("may not specify a duration less than 10 minutes"));
        }
        if expiration > MAX_EXPIRATION_SECONDS {
            return Err(invalid(
                "may not specify a duration larger than 2^32 seconds",
            ));
        }
        let audiences: Vec<String> = match spec.get("audiences").and_then(Value::as_array) {
            Some(list) if !list.is_empty() => list
                .iter()
                .map(|a| a.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| ApiError::bad_request("spec.audiences must be a list of strings"))?,
            _ => vec![API_AUDIENCE.to_string()],
        };

        let account = lookup(shared, "serviceaccounts", namespace, name)?;
        let bound = match spec.get("boundObjectRef") {
            None | Some(Value::Null) => None,
            Some(reference) => Some(bound_object(shared, namespace, name, reference)?),
        };

        let now = jiff::Timestamp::now();
        let expires = now
            .checked_add(jiff::SignedDuration::from_secs(expiration))
            .map_err(|e| ApiError::internal(format!("token expiry out of range: {e}")))?;
        let token = random_token();
        {
            let mut issued = self.issued();
            // Expired tokens are never accepted again: forgetting them bounds the table.
            issued.retain(|_, entry| entry.expires > now);
            issued.insert(
                token.clone(),
                Issued {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    uid: meta::uid(&account).to_string(),
                    audiences: audiences.clone(),
                    expires,
                    bound: bound.as_ref().map(|(b, _)| BoundObject {
                        plural: b.plural,
                        name: b.name.clone(),
                        uid: b.uid.clone(),
                    }),
                },
            );
        }
        let seconds = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let mut spec_out = json!({ "audiences": audiences, "expirationSeconds": expiration });
        if let Some((_, reference)) = bound {
            spec_out["boundObjectRef"] = reference;
        }
        Ok(json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": seconds(now),
            },
            "spec": spec_out,
            "status": { "token": token, "expirationTimestamp": seconds(expires) },
        }))
    }
}

/// The object a TokenRequest binds its token to: a Pod or Secret of the account's namespace,
/// with the uid the reference names (when it names one). Also returns the reference as echoed.
fn bound_object(
    shared: &Shared,
    namespace: &str,
    account: &str,
    reference: &Value,
) -> ApiResult<(BoundObject, Value)> {
    let text = |key: &str| {
        reference
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (kind, api_version, name, uid) =
        (text("kind"), text("apiVersion"), text("name"), text("uid"));
    let plural = match (api_version.as_str(), kind.as_str()) {
        ("v1" | "", "Pod") => "pods",
        ("v1" | "", "Secret") => "secrets",
        _ => {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount {account:?} to object of type {api_version}, Kind={kind}; only v1 Pods and Secrets are supported"
            )));
        }
    };
    let object = lookup(shared, plural, namespace, &name).map_err(|_| {
        ApiError::not_found(Subject {
            group: "",
            plural,
            name: &name,
        })
    })?;
    let actual = meta::uid(&object).to_string();
    if !uid.is_empty() && uid != actual {
        return Err(ApiError::conflict(
            Subject {
                group: "",
                plural: &kind,
                name: &name,
            },
            &format!(
                "the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        ));
    }
    let mut echoed = json!({ "kind": kind, "apiVersion": "v1", "name": name, "uid": actual });
    if api_version.is_empty() {
        echoed["apiVersion"] = json!("v1");
    }
    Ok((
        BoundObject {
            plural,
            name,
            uid: actual,
        },
        echoed,
    ))
}

/// A client of the store in process, for the token controller (as kube-controller-manager's
/// is a client of the API server).
fn in_process_client(shared: Arc<Shared>) -> kube::Client {
    let service = tower::service_fn(move |req: Request<kube::client::Body>| {
        let shared = shared.clone();
        async move {
            Ok::<_, std::convert::Infallible>(
                crate::serve(shared, crate::WayIn::InProcess, req).await,
            )
        }
    });
    kube::Client::new(service, "default")
}

/// Watches token Secrets until the control plane shuts down, filling each in.
async fn run_token_controller(auth: Arc<Authenticator>, shared: Arc<Shared>, ca_pem: String) {
    let client = in_process_client(shared.clone());
    let mut shutdown = shared.shutdown.subscribe();
    let config = watcher::Config::default().fields(&format!("type={TOKEN_SECRET_TYPE}"));
    let mut secrets = watcher(Api::<Secret>::all(client.clone()), config)
        .default_backoff()
        .applied_objects()
        .boxed();
    loop {
        let next = tokio::select! {
            next = secrets.next() => next,
            _ = shutdown.changed() => return,
        };
        match next {
            Some(Ok(secret)) => {
                if let Err(e) = auth.fill_token_secret(&client, &secret, &ca_pem).await {
                    tracing::warn!(
                        secret = %secret.name_any(),
                        namespace = secret.namespace().unwrap_or_default(),
                        error = %e,
                        "filling a ServiceAccount token Secret failed"
                    );
                }
            }
            Some(Err(e)) => tracing::debug!(error = %e, "token Secret watch interrupted"),
            None => return,
        }
    }
}

impl Authenticator {
    /// What kube-controller-manager does with a token Secret: delete it when its account does
    /// not exist (or is not the account it was filled for), else give it a token, the CA and
    /// the namespace once. A token already present is left alone, as the controller does; one
    /// this endpoint did not issue does not authenticate.
    async fn fill_token_secret(
        self: &Arc<Self>,
        client: &kube::Client,
        secret: &Secret,
        ca_pem: &str,
    ) -> Result<(), kube::Error> {
        if secret.meta().deletion_timestamp.is_some() {
            return Ok(());
        }
        let (Some(namespace), Some(name), Some(secret_uid)) = (
            secret.namespace(),
            secret.meta().name.clone(),
            secret.meta().uid.clone(),
        ) else {
            return Ok(());
        };
        let Some(account) = secret.annotations().get(ACCOUNT_NAME_ANNOTATION) else {
            return Ok(());
        };
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        let account_uid = Api::<ServiceAccount>::namespaced(client.clone(), &namespace)
            .get_opt(account)
            .await?
            .and_then(|a| a.metadata.uid);
        let recorded_uid = secret.annotations().get(ACCOUNT_UID_ANNOTATION);
        let Some(account_uid) = account_uid.filter(|uid| recorded_uid.is_none_or(|r| r == uid))
        else {
            return match secrets.delete(&name, &DeleteParams::default()).await {
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
        };
        if secret
            .data
            .as_ref()
            .is_some_and(|data| data.contains_key("token"))
        {
            return Ok(());
        }
        let token = random_token();
        self.issued().insert(
            token.clone(),
            Issued {
                namespace: namespace.clone(),
                name: account.clone(),
                uid: account_uid.clone(),
                audiences: vec![API_AUDIENCE.to_string()],
                // Legacy tokens do not expire; they die with their Secret.
                expires: jiff::Timestamp::MAX,
                bound: Some(BoundObject {
                    plural: "secrets",
                    name: name.clone(),
                    uid: secret_uid,
                }),
            },
        );
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let patch = json!({
            "metadata": { "annotations": { ACCOUNT_UID_ANNOTATION: account_uid } },
            "data": { "token": b64(&token), "ca.crt": b64(ca_pem), "namespace": b64(&namespace) },
        });
        secrets
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }
}

/// 256 random bits, URL-safe base64: unguessable, and safe in a header or a file.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_subresource_of_a_service_account_is_a_token_request() {
        assert_eq!(
            token_request_target("/api/v1/namespaces/ns/serviceaccounts/sa/token"),
            Some(("ns", "sa"))
        );
        for path in [
            "/api/v1/namespaces/ns/serviceaccounts/sa",
            "/api/v1/namespaces/ns/serviceaccounts/sa/token/x",
            "/api/v1/namespaces/ns/secrets/sa/token",
            "/api/v1/namespaces//serviceaccounts/sa/token",
            "/apis/v1/namespaces/ns/serviceaccounts/sa/token",
        ] {
            assert_eq!(token_request_target(path), None, "{path}");
        }
    }

    #[test]
    fn tokens_are_distinct_and_header_safe() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }
}
