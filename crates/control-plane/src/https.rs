//! The HTTPS endpoint on loopback: a generated CA and serving certificate, bearer-token
//! authentication, and a kubeconfig for kubectl and `kube::Client`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types};

use crate::api::Shared;
use crate::auth::Authenticator;
use crate::error::Error;

/// A running HTTPS endpoint.
#[derive(Clone)]
pub struct Endpoint {
    /// `https://127.0.0.1:{port}`.
    pub url: String,
    /// The bound address.
    pub addr: SocketAddr,
    ca_pem: String,
    token: String,
    client_cert_pem: String,
    client_key_pem: String,
    namespace: String,
    auth: Arc<Authenticator>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: never printed.
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

const NAME: &str = "upstart-local";

impl Endpoint {
    /// The CA certificate (PEM) that signed the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The bearer token requests must carry.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Serves TokenRequest (`POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`, as
    /// `kubectl create token` sends it), fills in legacy token Secrets
    /// (`kubernetes.io/service-account-token`) as kube-controller-manager does, and accepts
    /// those tokens as their ServiceAccounts, until they expire or the account (or the Secret)
    /// is deleted (see the `auth` module). Off by default: until then only the admin is let in.
    pub fn enable_service_account_tokens(&self) {
        self.auth.enable_service_accounts();
    }

    /// A kubeconfig with one cluster, user and context named `upstart-local`.
    pub fn kubeconfig_yaml(&self) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {NAME}\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: {NAME}\n  user:\n    token: {}\ncontexts:\n- name: {NAME}\n  context:\n    cluster: {NAME}\n    user: {NAME}\n    namespace: {}\ncurrent-context: {NAME}\npreferences: {{}}\n",
            self.url, self.token, self.namespace
        )
    }

    /// A kubeconfig that authenticates with a client certificate (signed by the same CA, for
    /// user `upstart-admin` in group `system:masters`) instead of the bearer token.
    pub fn kubeconfig_yaml_with_client_certificate(&self) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {NAME}\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: {NAME}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: {NAME}\n  context:\n    cluster: {NAME}\n    user: {NAME}\n    namespace: {}\ncurrent-context: {NAME}\npreferences: {{}}\n",
            self.url,
            b64(&self.ca_pem),
            b64(&self.client_cert_pem),
            b64(&self.client_key_pem),
            self.namespace
        )
    }

    /// Writes [`Self::kubeconfig_yaml`] to `path` (owner-readable only on Unix: it holds a token).
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), Error> {
        std::fs::write(path, self.kubeconfig_yaml())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }

    /// A `kube::Client` that goes through HTTPS (TLS verification against the generated CA).
    pub async fn client(&self) -> Result<kube::Client, Error> {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml())
            .map_err(|e| Error::Client(e.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(|e| Error::Client(e.to_string()))?;
        kube::Client::try_from(config).map_err(|e| Error::Client(e.to_string()))
    }
}

struct Certs {
    ca_pem: String,
    ca_der: pki_types::CertificateDer<'static>,
    client_cert_pem: String,
    client_key_pem: String,
    chain: Vec<pki_types::CertificateDer<'static>>,
    key: pki_types::PrivateKeyDer<'static>,
}

fn generate_certs() -> Result<Certs, Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "upstart-local-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate()?;
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "upstart-local-apiserver");
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;

    let client_key = KeyPair::generate()?;
    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    client_params
        .distinguished_name
        .push(DnType::CommonName, "upstart-admin");
    client_params
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    client_params.is_ca = IsCa::ExplicitNoCa;
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &issuer)?;
    Ok(Certs {
        ca_pem: ca_cert.pem(),
        ca_der: ca_cert.der().clone(),
        client_cert_pem: client_cert.pem(),
        client_key_pem: client_key.serialize_pem(),
        chain: vec![leaf.der().clone(), ca_cert.der().clone()],
        key: pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    })
}

pub async fn serve(
    shared: Arc<Shared>,
    addr: SocketAddr,
    namespace: &str,
) -> Result<Endpoint, Error> {
    let certs = generate_certs()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs.ca_der.clone())?;
    // Client certificates are optional: a request is authenticated by a certificate from our
    // CA or by the bearer token.
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| Error::Client(e.to_string()))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs.chain, certs.key)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let token = uuid::Uuid::new_v4().simple().to_string();
    let auth = Arc::new(Authenticator::new(
        &token,
        shared.clone(),
        certs.ca_pem.clone(),
    ));
    let endpoint = Endpoint {
        url: format!("https://{local}"),
        addr: local,
        ca_pem: certs.ca_pem,
        token: token.clone(),
        client_cert_pem: certs.client_cert_pem,
        client_key_pem: certs.client_key_pem,
        namespace: namespace.to_string(),
        auth: auth.clone(),
    };
    let mut shutdown = shared.shutdown.subscribe();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.changed() => return,
            };
            let Ok((tcp, _)) = accepted else { continue };
            let acceptor = acceptor.clone();
            let shared = shared.clone();
            let auth = auth.clone();
            let mut conn_shutdown = shared.shutdown.subscribe();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                // rustls verified any certificate presented against our CA.
                let client_cert = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .is_some_and(|c| !c.is_empty());
                let svc = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    let shared = shared.clone();
                    let auth = auth.clone();
                    async move {
                        let user = match auth.authenticate(
                            &shared,
                            client_cert,
                            req.headers().get(http::header::AUTHORIZATION),
                        ) {
                            Ok(user) => user,
                            Err(e) => {
                                return Ok::<_, std::convert::Infallible>(
                                    crate::api::error_response(&e),
                                );
                            }
                        };
                        // Who is asking, for whatever authorises requests.
                        req.extensions_mut().insert(user);
                        if auth.serves(&req) {
                            return Ok(auth.token_request(&shared, req).await);
                        }
                        Ok(crate::serve(shared, crate::WayIn::Https, req).await)
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc);
                tokio::select! {
                    _ = conn => {}
                    _ = conn_shutdown.changed() => {}
                }
            });
        }
    });
    Ok(endpoint)
}
