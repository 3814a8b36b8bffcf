//! TLS for the embedded server (and the HTTP listener): rustls (ring), the
//! certificate chain and key read from PEM files named in the configuration.

use std::sync::Arc;

use tokio::net::TcpListener;

/// A second listener whose connections speak TLS (rustls).
pub struct TlsDoor {
    pub listener: TcpListener,
    pub acceptor: tokio_rustls::TlsAcceptor,
}

/// A TLS acceptor from a PEM certificate chain and private key, or what is
/// wrong with them in a sentence naming the file.
/// `section` names the configuration section in those sentences (`mqtt`, `http`).
pub fn tls_acceptor(
    section: &str,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| format!("[{section}] tls_cert_file {}: {error}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "[{section}] tls_cert_file {}: no certificate in it",
            cert.display()
        ));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|error| format!("[{section}] tls_key_file {}: {error}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|error| {
            format!(
                "[{section}] tls_cert_file {} and tls_key_file {} do not make a certificate: {error}",
                cert.display(),
                key.display()
            )
        })?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
