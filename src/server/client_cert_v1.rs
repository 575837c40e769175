//! Client certificates as Kafka (Java's PKIX) accepts them: also X.509 v1
//! ones, which `openssl x509 -req` makes without extensions and Kafka's own
//! security documentation signs that way. webpki refuses any v1
//! certificate, so a v1 leaf is checked here instead: its validity dates,
//! each signature up to a trusted certificate, and every issuer between
//! being a CA (basicConstraints cA, keyCertSign when key usage is given).
//! Every other certificate goes through webpki unchanged.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use std::sync::Arc;
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};
use x509_parser::time::ASN1Time;

/// Chains longer than this are refused (webpki's bound is similar).
const MAX_ISSUERS: usize = 6;

#[derive(Debug)]
pub struct AcceptingV1 {
    inner: Arc<dyn ClientCertVerifier>,
    trusted: Vec<CertificateDer<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl AcceptingV1 {
    pub fn new(
        inner: Arc<dyn ClientCertVerifier>,
        trusted: Vec<CertificateDer<'static>>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> AcceptingV1 {
        AcceptingV1 {
            inner,
            trusted,
            algorithms,
        }
    }
}

fn parse<'a>(der: &'a [u8]) -> Option<X509Certificate<'a>> {
    X509Certificate::from_der(der).ok().map(|(_, c)| c)
}

fn is_v1(der: &[u8]) -> bool {
    parse(der).is_some_and(|c| c.version() == X509Version::V1)
}

fn bad(e: CertificateError) -> Error {
    Error::InvalidCertificate(e)
}

/// Whether `issuer` may sign certificates: a v3 CA, with keyCertSign if it
/// limits its key usage. (A v1 certificate can be no intermediate: it
/// cannot say it is a CA.)
fn is_ca(issuer: &X509Certificate<'_>) -> bool {
    let ca = matches!(issuer.basic_constraints(), Ok(Some(b)) if b.value.ca);
    let may_sign = match issuer.key_usage() {
        Ok(Some(usage)) => usage.value.key_cert_sign(),
        Ok(None) => true,
        Err(_) => false,
    };
    ca && may_sign
}

fn signed_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    cert.issuer().as_raw() == issuer.subject().as_raw() && cert.verify_signature(Some(issuer.public_key())).is_ok()
}

/// Checks a v1 leaf up to a trusted certificate.
pub fn verify_v1_chain(
    leaf: &[u8],
    intermediates: &[CertificateDer<'_>],
    trusted: &[CertificateDer<'static>],
    now: UnixTime,
) -> Result<(), Error> {
    let at = ASN1Time::from_timestamp(now.as_secs() as i64).map_err(|_| bad(CertificateError::BadEncoding))?;
    let leaf = parse(leaf).ok_or(bad(CertificateError::BadEncoding))?;
    if !leaf.validity().is_valid_at(at) {
        return Err(bad(if leaf.validity().not_after < at {
            CertificateError::Expired
        } else {
            CertificateError::NotValidYet
        }));
    }
    let anchors: Vec<X509Certificate<'_>> = trusted.iter().filter_map(|c| parse(c)).collect();
    let between: Vec<X509Certificate<'_>> = intermediates.iter().filter_map(|c| parse(c)).collect();
    let mut current = &leaf;
    for _ in 0..MAX_ISSUERS {
        // A trust anchor is trusted as configured (as by webpki and Java's PKIX).
        if anchors.iter().any(|a| signed_by(current, a)) {
            return Ok(());
        }
        match between
            .iter()
            .find(|i| is_ca(i) && i.validity().is_valid_at(at) && signed_by(current, i))
        {
            Some(issuer) => current = issuer,
            None => break,
        }
    }
    Err(bad(CertificateError::UnknownIssuer))
}

/// RFC 8446 4.2.3: the schemes a TLS 1.3 handshake may be signed with.
fn tls13_scheme(scheme: SignatureScheme) -> bool {
    use SignatureScheme as S;
    matches!(
        scheme,
        S::ECDSA_NISTP256_SHA256
            | S::ECDSA_NISTP384_SHA384
            | S::ECDSA_NISTP521_SHA512
            | S::RSA_PSS_SHA256
            | S::RSA_PSS_SHA384
            | S::RSA_PSS_SHA512
            | S::ED25519
            | S::ED448
    )
}

impl AcceptingV1 {
    /// A handshake signature by the key of a v1 certificate.
    fn verify_v1_signature(&self, message: &[u8], cert: &[u8], dss: &DigitallySignedStruct) -> Result<(), Error> {
        let cert = parse(cert).ok_or(bad(CertificateError::BadEncoding))?;
        let key = &cert.public_key().subject_public_key.data;
        let algorithms = self
            .algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algs)| *algs)
            .ok_or(Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ))?;
        algorithms
            .iter()
            .any(|alg| alg.verify_signature(key, message, dss.signature()).is_ok())
            .then_some(())
            .ok_or(bad(CertificateError::BadSignature))
    }
}

impl ClientCertVerifier for AcceptingV1 {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if is_v1(end_entity) {
            verify_v1_chain(end_entity, intermediates, &self.trusted, now)?;
            return Ok(ClientCertVerified::assertion());
        }
        self.inner.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        if is_v1(cert) {
            self.verify_v1_signature(message, cert, dss)?;
            return Ok(HandshakeSignatureValid::assertion());
        }
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        if is_v1(cert) {
            if !tls13_scheme(dss.scheme) {
                return Err(Error::PeerMisbehaved(
                    rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
                ));
            }
            self.verify_v1_signature(message, cert, dss)?;
            return Ok(HandshakeSignatureValid::assertion());
        }
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
