//! HTTPS repositories signed by a private CA: trusted through `caBundle` (configuration) or
//! `ca.crt` (credentials Secret), refused with a clear, non-transient error otherwise.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use common::{config, packaged, source, source_with};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use upstart_chart_source::{Credentials, Error};
use upstart_failure::Classify;

struct Https {
    url: String,
    ca_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Https {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one chart (index and archive) over HTTPS with a certificate from a fresh CA.
async fn serve_https() -> Https {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

    let chart = packaged("tiny", "1.0.0");
    let index = format!(
        "apiVersion: v1\nentries:\n  tiny:\n  - name: tiny\n    version: 1.0.0\n    urls: [{}]\n    digest: {}\n",
        chart.file_name(),
        chart.digest
    );
    let archive = Bytes::from(chart.archive.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let index = Bytes::from(index.clone());
            let archive = archive.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let body = if request.uri().path() == "/index.yaml" {
                        index.clone()
                    } else {
                        archive.clone()
                    };
                    async move {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(body)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Https {
        url: format!("https://{addr}"),
        ca_pem: ca_cert.pem(),
        task,
    }
}

#[tokio::test]
async fn private_ca_is_trusted_through_ca_bundle_or_the_credentials_secret() {
    let server = serve_https().await;

    let plain = source(config(&format!(
        "repositories: {{charts: {{url: \"{}\"}}}}",
        server.url
    )));
    let error = plain.source.fetch("charts/tiny", None).await.unwrap_err();
    assert!(
        matches!(error, Error::UntrustedCertificate { .. }),
        "{error}"
    );
    assert!(!error.is_transient());
    assert!(error.to_string().contains("caBundle"), "{error}");

    let indented: String = server
        .ca_pem
        .lines()
        .map(|l| format!("      {l}\n"))
        .collect();
    let with_bundle = source(config(&format!(
        "repositories:\n  charts:\n    url: \"{}\"\n    caBundle: |\n{indented}",
        server.url
    )));
    let chart = with_bundle.source.fetch("charts/tiny", None).await.unwrap();
    assert_eq!(chart.version, "1.0.0");

    let mut data = std::collections::BTreeMap::new();
    data.insert("ca.crt".to_owned(), server.ca_pem.clone().into_bytes());
    let with_secret = source_with(
        config(&format!(
            "repositories: {{charts: {{url: \"{}\", credentialsSecret: charts-ca}}}}",
            server.url
        )),
        HashMap::from([("charts".to_owned(), Credentials::from_secret_data(&data))]),
    );
    let chart = with_secret.source.fetch("charts/tiny", None).await.unwrap();
    assert_eq!(chart.version, "1.0.0");
}
