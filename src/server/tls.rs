//! TLS on a listener (rustls): the server certificate, optional client
//! certificates checked against the trust store, and the principal a client
//! certificate names.

use crate::auth::principal_mapping::{subject_dn, PrincipalMapper};
use crate::config::security::{ClientAuth, TlsSettings};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Builds the acceptor for a listener; errors say what is wrong with the material.
pub fn acceptor(settings: &TlsSettings) -> Result<TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if settings.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if settings.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS protocol versions: {e}"))?;
    let builder = if settings.client_auth == ClientAuth::None {
        builder.with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for cert in &settings.trusted {
            roots
                .add(cert.clone())
                .map_err(|e| format!("trust store certificate: {e}"))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        let verifier = if settings.client_auth == ClientAuth::Requested {
            verifier.allow_unauthenticated()
        } else {
            verifier
        };
        let webpki = verifier.build().map_err(|e| format!("client verifier: {e}"))?;
        builder.with_client_cert_verifier(Arc::new(super::client_cert_v1::AcceptingV1::new(
            webpki,
            settings.trusted.clone(),
            provider.signature_verification_algorithms,
        )))
    };
    let config = builder
        .with_single_cert(settings.certificate_chain.clone(), settings.private_key.clone_key())
        .map_err(|e| format!("server certificate and key: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The principal of a verified client certificate, through the mapping rules.
pub fn certificate_principal(
    certificates: Option<&[rustls::pki_types::CertificateDer<'static>]>,
    mapper: &PrincipalMapper,
) -> Option<String> {
    let leaf = certificates?.first()?;
    let dn = subject_dn(leaf)?;
    Some(format!("User:{}", mapper.name_for(&dn)))
}
